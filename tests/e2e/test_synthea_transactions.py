"""All 100 Synthea bundles load unchanged as transactions through ``POST /fhir``; afterwards every
reference in every stored resource resolves to a stored resource, and the resource counts by type
equal the bundles' entries (``shared/synthea/_counts.json``)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_server.fhir import jsonio
from fhir_server.store import HistoryQuery
from fhir_server.store.base import iter_history
from fhir_server.store.sqlite import SqliteStore
from tests.conftest import FHIR_JSON
from tests.shared_data import shared_dir, synthea_bundles

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shared_dir().is_dir(), reason="../shared is not present")]


def _references(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                out.append(value)
            elif isinstance(value, dict | list):
                _references(value, out)
    elif isinstance(node, list):
        for item in node:
            _references(item, out)


def test_all_synthea_bundles_load_as_transactions(client: FlaskClient, store: SqliteStore) -> None:
    bundles = synthea_bundles()
    assert len(bundles) == 100
    for name, _ in bundles:
        raw = (shared_dir() / "synthea" / name).read_bytes()  # sent unchanged, byte for byte
        response = client.post("/fhir", data=raw,
                               headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
        assert response.status_code == 200, (name, response.get_json())
        result = response.get_json()
        assert result["type"] == "transaction-response"
        sent = json.loads(raw)["entry"]
        assert len(result["entry"]) == len(sent), name
        for request, answer in zip(sent, result["entry"], strict=True):  # request order
            assert answer["response"]["status"] == "201 Created", (name, answer)
            assert answer["response"]["location"].startswith(
                request["resource"]["resourceType"] + "/"), (name, answer)

    stored: dict[tuple[str, str], Any] = {}
    for row in iter_history(store, HistoryQuery(limit=1000)):
        assert row.version == 1 and row.body is not None
        stored[(row.type, row.id)] = jsonio.loads(row.body)
    counts = Counter(rtype for rtype, _ in stored)
    expected = json.loads((shared_dir() / "synthea" / "_counts.json").read_text())["by_type"]
    assert dict(counts) == expected

    checked = 0
    for (rtype, rid), body in stored.items():
        refs: list[str] = []
        _references(body, refs)
        contained = {c.get("id") for c in body.get("contained", [])}
        for ref in refs:
            if ref.startswith("#"):
                assert ref[1:] in contained, (rtype, rid, ref)
                continue
            assert not ref.startswith("urn:"), (rtype, rid, ref)
            target_type, _, target_id = ref.partition("/")
            assert (target_type, target_id) in stored, (rtype, rid, ref)
            checked += 1
    assert checked > 60000  # the bundles hold 61,275 urn:uuid references
