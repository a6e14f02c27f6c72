"""create, read, vread, update, patch and delete through HTTP (Flask test client, real SQLite)."""

from __future__ import annotations

import time
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import FHIR_JSON, post

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "client-chosen",
    "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "11010020171225006X"}],
    "name": [{"text": "王小明", "family": "王", "given": ["小明"]}],
    "gender": "male",
    "birthDate": "2017-12-25",
}


def create(client: FlaskClient, body: dict[str, Any] | None = None) -> tuple[str, Any]:
    response = post(client, "/fhir/Patient", body or PATIENT)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"], response


class TestCreate:
    def test_server_assigns_id_version_and_headers(self, client: FlaskClient) -> None:
        rid, response = create(client)
        body = response.get_json()
        assert rid != "client-chosen"
        assert body["meta"]["versionId"] == "1"
        assert body["meta"]["lastUpdated"].endswith("Z")
        assert response.headers["Location"] == f"http://localhost/fhir/Patient/{rid}/_history/1"
        assert response.headers["ETag"] == 'W/"1"'
        assert response.headers["Last-Modified"].endswith("GMT")
        assert response.headers["Content-Type"].startswith(FHIR_JSON)
        assert body["name"] == PATIENT["name"]

    def test_client_meta_is_kept_but_version_is_server_owned(self, client: FlaskClient) -> None:
        body = {**PATIENT, "meta": {"versionId": "99", "lastUpdated": "2001-01-01T00:00:00Z",
                                    "profile": ["http://example.org/p"]}}
        _, response = create(client, body)
        meta = response.get_json()["meta"]
        assert meta["versionId"] == "1"
        assert meta["lastUpdated"] != "2001-01-01T00:00:00Z"
        assert meta["profile"] == ["http://example.org/p"]

    def test_prefer_minimal(self, client: FlaskClient) -> None:
        response = post(client, "/fhir/Patient", PATIENT, Prefer="return=minimal")
        assert response.status_code == 201
        assert response.data == b""
        assert response.headers["Location"]
        assert response.headers["ETag"] == 'W/"1"'

    def test_prefer_operation_outcome(self, client: FlaskClient) -> None:
        response = post(client, "/fhir/Patient", PATIENT, Prefer="return=OperationOutcome")
        assert response.status_code == 201
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] == "information"

    def test_decimal_precision_is_kept(self, client: FlaskClient) -> None:
        body = (b'{"resourceType":"Observation","status":"final","code":{"text":"t"},'
                b'"valueQuantity":{"value":1.50,"unit":"mmol/L"}}')
        response = client.post("/fhir/Observation", data=body,
                               headers={"Content-Type": FHIR_JSON})
        assert response.status_code == 201
        assert b'"value":1.50' in response.data
        read = client.get(f"/fhir/Observation/{response.get_json()['id']}")
        assert b'"value":1.50' in read.data

    def test_unknown_type_is_404(self, client: FlaskClient) -> None:
        response = post(client, "/fhir/Patientx", {"resourceType": "Patientx"})
        assert response.status_code == 404
        assert response.get_json()["resourceType"] == "OperationOutcome"

    def test_resource_type_must_match_url(self, client: FlaskClient) -> None:
        response = post(client, "/fhir/Observation", PATIENT)
        assert response.status_code == 400
        assert response.get_json()["issue"][0]["code"] in ("invalid", "structure")


class TestRead:
    def test_read_and_vread(self, client: FlaskClient) -> None:
        rid, created = create(client)
        read = client.get(f"/fhir/Patient/{rid}")
        assert read.status_code == 200
        assert read.get_json() == created.get_json()
        assert read.headers["ETag"] == 'W/"1"'
        assert read.headers["Last-Modified"] == created.headers["Last-Modified"]
        vread = client.get(f"/fhir/Patient/{rid}/_history/1")
        assert vread.status_code == 200
        assert vread.get_json() == created.get_json()

    def test_unknown_id_and_version_are_404(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        assert client.get("/fhir/Patient/does-not-exist").status_code == 404
        assert client.get(f"/fhir/Patient/{rid}/_history/2").status_code == 404
        assert client.get(f"/fhir/Patient/{rid}/_history/x").status_code == 404

    def test_if_none_match_gives_304(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        response = client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"1"'})
        assert response.status_code == 304
        assert response.data == b""
        assert response.headers["ETag"] == 'W/"1"'
        other = client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"7"'})
        assert other.status_code == 200

    def test_if_modified_since(self, client: FlaskClient) -> None:
        rid, created = create(client)
        last = created.headers["Last-Modified"]
        assert client.get(f"/fhir/Patient/{rid}",
                          headers={"If-Modified-Since": last}).status_code == 304
        old = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert client.get(f"/fhir/Patient/{rid}",
                          headers={"If-Modified-Since": old}).status_code == 200

    def test_pretty_and_format(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        pretty = client.get(f"/fhir/Patient/{rid}?_pretty=true")
        assert b'\n  "resourceType"' in pretty.data
        assert client.get(f"/fhir/Patient/{rid}?_format=json").status_code == 200
        assert client.get(f"/fhir/Patient/{rid}?_format=application/fhir%2Bjson").status_code == 200
        xml = client.get(f"/fhir/Patient/{rid}?_format=xml")
        assert xml.status_code == 406
        assert xml.get_json()["issue"][0]["expression"] == ["_format"]

    def test_summary_and_elements(self, client: FlaskClient) -> None:
        rid, _ = create(client, {**PATIENT, "maritalStatus": {"text": "未婚"}})
        summary = client.get(f"/fhir/Patient/{rid}?_summary=true").get_json()
        assert "name" in summary and "maritalStatus" not in summary
        assert {"code": "SUBSETTED"}.items() <= summary["meta"]["tag"][0].items()
        elements = client.get(f"/fhir/Patient/{rid}?_elements=gender").get_json()
        assert elements["gender"] == "male"
        assert "name" not in elements and "birthDate" not in elements
        bad = client.get(f"/fhir/Patient/{rid}?_summary=maybe")
        assert bad.status_code == 400

    def test_unknown_parameter_is_rejected_unless_lenient(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        strict = client.get(f"/fhir/Patient/{rid}?color=blue")
        assert strict.status_code == 400
        assert strict.get_json()["issue"][0]["expression"] == ["color"]
        lenient = client.get(f"/fhir/Patient/{rid}?color=blue",
                             headers={"Prefer": "handling=lenient"})
        assert lenient.status_code == 200


class TestUpdate:
    def test_update_makes_a_new_version(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        body = {**PATIENT, "id": rid, "gender": "female"}
        response = client.put(f"/fhir/Patient/{rid}", json=body,
                              headers={"Content-Type": FHIR_JSON})
        assert response.status_code == 200
        assert response.headers["ETag"] == 'W/"2"'
        assert response.get_json()["meta"]["versionId"] == "2"
        assert client.get(f"/fhir/Patient/{rid}").get_json()["gender"] == "female"
        assert client.get(f"/fhir/Patient/{rid}/_history/1").get_json()["gender"] == "male"

    def test_if_match(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        body = {**PATIENT, "id": rid}
        ok = client.put(f"/fhir/Patient/{rid}", json=body,
                        headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
        assert ok.status_code == 200
        stale = client.put(f"/fhir/Patient/{rid}", json=body,
                           headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
        assert stale.status_code == 412
        assert stale.get_json()["resourceType"] == "OperationOutcome"
        garbage = client.put(f"/fhir/Patient/{rid}", json=body,
                             headers={"Content-Type": FHIR_JSON, "If-Match": "yesterday"})
        assert garbage.status_code == 400

    def test_id_must_match_url(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        wrong = client.put(f"/fhir/Patient/{rid}", json={**PATIENT, "id": "other"},
                           headers={"Content-Type": FHIR_JSON})
        assert wrong.status_code == 400
        assert wrong.get_json()["issue"][0]["expression"] == ["Patient.id"]
        missing = {k: v for k, v in PATIENT.items() if k != "id"}
        assert client.put(f"/fhir/Patient/{rid}", json=missing,
                          headers={"Content-Type": FHIR_JSON}).status_code == 400

    def test_update_as_create_is_off_by_default(self, client: FlaskClient) -> None:
        response = client.put("/fhir/Patient/new-one", json={**PATIENT, "id": "new-one"},
                              headers={"Content-Type": FHIR_JSON})
        assert response.status_code == 404
        assert "update" in response.get_json()["issue"][0]["diagnostics"]


class TestPatch:
    def test_json_patch(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        ops = [{"op": "replace", "path": "/gender", "value": "female"},
               {"op": "add", "path": "/active", "value": True}]
        response = client.patch(f"/fhir/Patient/{rid}", json=ops,
                                headers={"Content-Type": "application/json-patch+json",
                                         "If-Match": 'W/"1"'})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["gender"] == "female" and body["active"] is True
        assert body["meta"]["versionId"] == "2"

    def test_patch_result_is_validated(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        ops = [{"op": "add", "path": "/birthDate", "value": "2017-02-30"}]
        response = client.patch(f"/fhir/Patient/{rid}", json=ops,
                                headers={"Content-Type": "application/json-patch+json"})
        assert response.status_code == 400
        assert response.get_json()["issue"][0]["expression"] == ["Patient.birthDate"]
        assert client.get(f"/fhir/Patient/{rid}").get_json()["birthDate"] == "2017-12-25"

    def test_patch_if_match_and_failures(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        headers = {"Content-Type": "application/json-patch+json"}
        stale = client.patch(f"/fhir/Patient/{rid}", json=[{"op": "remove", "path": "/gender"}],
                             headers={**headers, "If-Match": 'W/"5"'})
        assert stale.status_code == 412
        test_failed = client.patch(
            f"/fhir/Patient/{rid}", json=[{"op": "test", "path": "/gender", "value": "other"}],
            headers=headers)
        assert test_failed.status_code == 422
        malformed = client.patch(f"/fhir/Patient/{rid}", json={"op": "remove"}, headers=headers)
        assert malformed.status_code == 400
        wrong_type = client.patch(f"/fhir/Patient/{rid}", json=[], headers={
            "Content-Type": FHIR_JSON})
        assert wrong_type.status_code == 415
        assert client.patch("/fhir/Patient/nope", json=[{"op": "remove", "path": "/gender"}],
                            headers=headers).status_code == 404


class TestDelete:
    def test_soft_delete(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        response = client.delete(f"/fhir/Patient/{rid}")
        assert response.status_code == 204
        gone = client.get(f"/fhir/Patient/{rid}")
        assert gone.status_code == 410
        assert gone.get_json()["issue"][0]["code"] == "deleted"
        assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200
        assert client.get(f"/fhir/Patient/{rid}/_history/2").status_code == 410
        again = client.delete(f"/fhir/Patient/{rid}")
        assert again.status_code == 204
        history = client.get(f"/fhir/Patient/{rid}/_history").get_json()
        assert len(history["entry"]) == 2  # deleting again wrote nothing
        assert client.delete("/fhir/Patient/never-was").status_code == 404

    def test_update_after_delete_restores(self, client: FlaskClient) -> None:
        rid, _ = create(client)
        client.delete(f"/fhir/Patient/{rid}")
        response = client.put(f"/fhir/Patient/{rid}", json={**PATIENT, "id": rid},
                              headers={"Content-Type": FHIR_JSON})
        assert response.status_code == 200
        assert response.get_json()["meta"]["versionId"] == "3"
        assert client.get(f"/fhir/Patient/{rid}").status_code == 200


def test_last_updated_increases(client: FlaskClient) -> None:
    rid, first = create(client)
    time.sleep(0.001)
    second = client.put(f"/fhir/Patient/{rid}", json={**PATIENT, "id": rid},
                        headers={"Content-Type": FHIR_JSON})
    assert second.get_json()["meta"]["lastUpdated"] > first.get_json()["meta"]["lastUpdated"]


def test_update_as_create_when_enabled_and_public_base_url(tmp_path: Any) -> None:
    from fhir_server.app import create_app
    from fhir_server.config import Settings

    settings = Settings.from_env(
        {"FHIR_STORE": f"sqlite:///{tmp_path / 'f.db'}", "FHIR_ALLOW_UPDATE_CREATE": "true",
         "FHIR_BASE_URL": "https://fhir.example.org/r4/", "FHIR_ACCESS_LOG": "0", "FHIR_AUTH": "off"})
    client = create_app(settings).test_client()
    response = client.put("/fhir/Patient/card-holder-1", json={**PATIENT, "id": "card-holder-1"},
                          headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 201
    assert response.headers["Location"] == \
        "https://fhir.example.org/r4/Patient/card-holder-1/_history/1"
    bad_id = client.put("/fhir/Patient/bad_id!", json={**PATIENT, "id": "bad_id!"},
                        headers={"Content-Type": FHIR_JSON})
    assert bad_id.status_code == 400
    cs = client.get("/fhir/metadata").get_json()
    assert cs["rest"][0]["resource"][0]["updateCreate"] is True
