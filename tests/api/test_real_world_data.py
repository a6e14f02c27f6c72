"""The server accepts real-world data unchanged: every official R4 example and every resource of
the Synthea bundles, created through HTTP and read back identical apart from ``id`` and ``meta``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_server.fhir import jsonio
from tests.conftest import FHIR_JSON
from tests.shared_data import examples, shared_dir, synthea_bundles

pytestmark = pytest.mark.skipif(not shared_dir().is_dir(), reason="../shared is not present")


def _exact(data: bytes | str) -> Any:
    """JSON with numbers kept as their exact text, so 1.50 and 1.5 differ."""
    return json.loads(data, parse_float=lambda s: ("decimal", s))


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def test_all_official_examples_are_accepted_and_read_back_identical(client: FlaskClient) -> None:
    found = examples()
    assert len(found) == 199
    for name, _ in found:
        raw = (shared_dir() / "fhir-r4-examples" / name).read_bytes()
        original = _exact(raw)
        created = client.post(f"/fhir/{original['resourceType']}", data=raw,
                              headers={"Content-Type": FHIR_JSON})
        assert created.status_code == 201, (name, created.get_json())
        read = client.get(created.headers["Location"].replace("http://localhost", ""))
        assert read.status_code == 200, name
        assert _strip(_exact(read.data)) == _strip(original), name


def test_every_synthea_resource_is_accepted_as_an_individual_create(client: FlaskClient) -> None:
    bundles = synthea_bundles()
    assert len(bundles) == 100
    counts: dict[str, int] = {}
    for name, bundle in bundles:
        for index, entry in enumerate(bundle["entry"]):
            resource = entry["resource"]
            body = jsonio.dumps(resource)
            response = client.post(f"/fhir/{resource['resourceType']}", data=body,
                                   headers={"Content-Type": FHIR_JSON,
                                            "Prefer": "return=minimal"})
            assert response.status_code == 201, (name, index, response.get_json())
            counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
    expected = json.loads((shared_dir() / "synthea" / "_counts.json").read_text())["by_type"]
    assert counts == expected
