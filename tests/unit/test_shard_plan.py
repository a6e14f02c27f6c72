"""``fhir-server mongo shard-plan``: the commands an operator runs to shard the MongoDB store
(docs/SCALING.md), checked against the collections and indexes the store really uses."""

from __future__ import annotations

import json
import re

import pytest

from fhir_server.cli import main, shard_plan
from fhir_server.store.mongo.store import INDEXES


def test_shard_keys_of_the_design() -> None:
    plan = shard_plan("ehc")
    assert 'sh.enableSharding("ehc")' in plan
    assert 'sh.shardCollection("ehc.resources", {"pc": "hashed"})' in plan
    assert 'sh.shardCollection("ehc.history", {"type": 1, "id": 1})' in plan
    assert 'sh.shardCollection("ehc.claims", {"_id": "hashed"})' in plan
    assert 'sh.shardCollection("ehc.audit", {"_id": "hashed"})' in plan
    # the hashed shard-key index exists before resources is sharded
    hashed = plan.index('db.getSiblingDB("ehc").getCollection("resources").createIndex({"pc": "hashed"})')
    assert hashed < plan.index('sh.shardCollection("ehc.resources", {"pc": "hashed"})')


def test_every_index_the_store_creates_is_in_the_plan() -> None:
    plan = "\n".join(shard_plan("ehc"))
    for collection, keys, options in INDEXES:
        spec = json.dumps(dict(keys))
        line = f'db.getSiblingDB("ehc").getCollection("{collection}").createIndex({spec}'
        assert line in plan, line
        if options.get("unique"):
            assert re.search(re.escape(line) + r', \{"unique": true\}\)', plan)


def test_command_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mongo", "shard-plan", "--store", "mongodb://db.example:27017/city"]) == 0
    out = capsys.readouterr().out
    assert 'sh.shardCollection("city.resources", {"pc": "hashed"})' in out
