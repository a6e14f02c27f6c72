"""Bad input always gets the right status and an OperationOutcome; never a 500 or a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from tests.conftest import FHIR_JSON


def _outcome(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.data  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and body["issue"][0]["diagnostics"]
    assert response.headers["Content-Type"].startswith(FHIR_JSON)  # type: ignore[attr-defined]
    return body  # type: ignore[no-any-return]


def _post(client: FlaskClient, data: bytes, content_type: str = FHIR_JSON) -> object:
    return client.post("/fhir/Patient", data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"resourceType": "Patient",', "Malformed JSON"),
        (b'{"resourceType": "Patient", "gender": "male", "gender": "female"}', "duplicate"),
        (b'{"resourceType": "Patient", "multipleBirthDecimal": NaN}', "NaN"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"   ", "empty"),
        (b'["resourceType"]', "JSON object"),
    ],
)
def test_malformed_bodies(client: FlaskClient, data: bytes, fragment: str) -> None:
    body = _outcome(_post(client, data), 400)
    assert fragment.lower() in str(body["issue"]).lower()


def test_nesting_deeper_than_the_limit(client: FlaskClient) -> None:
    deep = b'{"resourceType": "Patient", "extension": ' + b"[" * 100 + b"]" * 100 + b"}"
    body = _outcome(_post(client, deep), 400)
    assert "nested deeper" in str(body)


def test_body_over_the_size_limit(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'f.db'}", max_body_bytes=1000,
                        access_log=False, auth=False)
    client = create_app(settings).test_client()
    big = b'{"resourceType": "Patient", "id": "' + b"a" * 2000 + b'"}'
    _outcome(_post(client, big), 413)


def test_structural_errors_name_the_element(client: FlaskClient) -> None:
    response = _post(client, b'{"resourceType": "Patient", "birthDate": "1990-13-01", '
                             b'"name": [{"given": [""]}], "colour": "red", "active": "yes"}')
    body = _outcome(response, 400)
    expressions = {e for i in body["issue"] for e in i.get("expression", [])}  # type: ignore[union-attr]
    assert {"Patient.birthDate", "Patient.name[0].given[0]", "Patient.colour",
            "Patient.active"} <= expressions


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_unsupported_media_types(client: FlaskClient, content_type: str) -> None:
    _outcome(_post(client, b"<Patient/>", content_type), 415)


def test_missing_content_type(client: FlaskClient) -> None:
    _outcome(client.post("/fhir/Patient", data=b'{"resourceType":"Patient"}'), 415)


def test_charset_other_than_utf8(client: FlaskClient) -> None:
    _outcome(_post(client, b'{"resourceType":"Patient"}', FHIR_JSON + "; charset=latin-1"), 415)


def test_json_content_types_accepted(client: FlaskClient) -> None:
    for ct in ("application/json", "application/fhir+json; charset=utf-8",
               "application/json+fhir"):
        assert _post(client, b'{"resourceType":"Patient"}', ct).status_code == 201  # type: ignore[attr-defined]


def test_not_acceptable(client: FlaskClient) -> None:
    _outcome(client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    assert client.get("/fhir/metadata", headers={"Accept": "*/*"}).status_code == 200
    assert client.get("/fhir/metadata", headers={
        "Accept": "application/fhir+xml;q=0.9, application/fhir+json"}).status_code == 200


def test_unknown_paths_types_and_methods(client: FlaskClient) -> None:
    _outcome(client.get("/fhir/Unknowntype/1"), 404)
    _outcome(client.get("/nowhere"), 404)
    _outcome(client.get("/fhir/Patient/1/_history/1/extra"), 404)
    response = client.post("/fhir/Patient/123", data=b"{}", headers={"Content-Type": FHIR_JSON})
    _outcome(response, 405)
    assert "PUT" in response.headers["Allow"]


def test_unexpected_exception_is_a_generic_outcome(app: Flask, client: FlaskClient,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("secret internals")

    app.view_functions["fhir.read"] = lambda rtype, rid: boom()
    response = client.get("/fhir/Patient/1", headers={"X-Request-Id": "req-42"})
    body = _outcome(response, 500)
    assert "secret internals" not in response.data.decode()
    assert "Traceback" not in response.data.decode()
    assert "req-42" in str(body["issue"])
    assert any("req-42" in r.getMessage() for r in caplog.records)


def test_store_unavailable_is_503(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    settings = Settings(store_url=f"sqlite:///{db}", access_log=False, auth=False)
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    store = app.extensions["fhir"].store
    store.close()
    db.unlink()
    (tmp_path / "f.db").mkdir()  # the database file is now a directory: unusable
    ready = client.get("/readyz")
    assert ready.status_code == 503
    _outcome(client.get("/fhir/Patient/1"), 503)
