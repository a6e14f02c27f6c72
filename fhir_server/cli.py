"""The ``fhir-server`` command: serve, seed, mongo shard-plan."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fhir_server.config import Settings
from fhir_server.store.base import Store, StoreError


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "store", None):
        settings = replace(settings, store_url=args.store)
    return settings


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="store URL: sqlite:///path/to/file.db or mongodb://host/database "
             "(default: $FHIR_STORE or ./data/fhir.db)",
    )


def _install_conformance(settings: Settings, store: Store | None = None) -> None:
    """Write terminology/ and profiles/ into the store (unchanged ones are skipped)."""
    from fhir_server.conformance import install_conformance
    from fhir_server.errors import FhirError
    from fhir_server.interactions.context import Services
    from fhir_server.store import open_store

    own = store is None
    store = store or open_store(settings)
    try:
        written = install_conformance(Services(settings, store))
    except FhirError as exc:
        raise ValueError(f"conformance resources: {exc.message}") from exc
    finally:
        if own:
            store.close()
    if written:
        print(f"Installed {written} conformance resources", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from fhir_server.server import serve

    settings = _settings(args)
    _install_conformance(settings)  # once, before gunicorn forks the workers
    serve(settings, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
          worker_class=args.worker_class)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from fhir_server.interactions.context import Services
    from fhir_server.interactions.load import load
    from fhir_server.store import HistoryQuery, open_store
    from seed import generate, total_hint
    from seed.progress import ProgressBar

    settings = _settings(args)
    store = open_store(settings)
    try:
        _install_conformance(settings, store)
        if args.if_empty and store.history(HistoryQuery(type="Patient", limit=1)):
            print("The store already holds patients; not seeding (--if-empty).", file=sys.stderr)
            return 0
        bar = ProgressBar(total_hint(args.patients), "seeding")
        svc = Services(settings, store)
        resources = generate(args.patients, seed=args.seed, base=settings.canonical_base)
        count = load(svc, resources, progress=bar.update)
        bar.close()
        print(f"Seeded {count} resources ({args.patients} patients, seed {args.seed}) "
              f"into {settings.store_url}", file=sys.stderr)
    finally:
        store.close()
    return 0


#: The shard keys of docs/SCALING.md: one patient's record on one shard (``pc``, the patient
#: compartment, hashed); history by resource (keeps the unique version index, so Type/id stays
#: unique across shards); identifier claims by "system|value" (unique ``_id``, hashed).
SHARD_KEYS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("resources", {"pc": "hashed"}),
    ("history", {"type": 1, "id": 1}),
    ("claims", {"_id": "hashed"}),
    ("audit", {"_id": "hashed"}),  # the audit log: appends spread over the shards
)


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def shard_plan(database: str) -> list[str]:
    """The mongosh commands that shard ``database`` (see docs/SCALING.md), one per line."""
    from fhir_server.store.mongo.store import INDEXES

    db = f"db.getSiblingDB({_js(database)})"
    lines = [
        "// fhir-server mongo shard-plan: run in mongosh connected to a mongos of the cluster,",
        "// after the replica sets are shards (sh.addShard) and before the servers take writes.",
        "// Design and caveats: docs/SCALING.md.",
        f"sh.enableSharding({_js(database)})",
        "",
        "// Indexes (the server also creates them at start-up; createIndexes is idempotent).",
        "// Unique indexes must start with the shard key: only history's (type, id, version) does.",
    ]
    indexes: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        (collection, dict(keys), options) for collection, keys, options in INDEXES]
    indexes.append(("resources", {"pc": "hashed"}, {}))
    for collection, key, options in indexes:
        extra = f", {_js(options)}" if options else ""
        lines.append(f"{db}.getCollection({_js(collection)}).createIndex({_js(key)}{extra})")
    lines += ["", "// Shard keys: resources by patient compartment (the pc field every resources",
              "// document must carry), history by resource, identifier claims by system|value,",
              "// the audit log by event id (hashed: appends spread; audit searches fan out)."]
    for collection, key in SHARD_KEYS:
        lines.append(f"sh.shardCollection({_js(f'{database}.{collection}')}, {_js(key)})")
    lines += ["", "// Check: chunks spread over the shards once the balancer has run.",
              f"{db}.resources.getShardDistribution()"]
    return lines


def cmd_mongo_shard_plan(args: argparse.Namespace) -> int:
    database = args.database
    if database is None:
        from fhir_server.store.mongo.store import database_from_url

        url = args.store or os.environ.get("FHIR_STORE") or "mongodb://localhost/"
        database = database_from_url(url)  # ValueError (a message) for a non-MongoDB URL
    print("\n".join(shard_plan(database)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the FHIR server under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                       help="worker processes (default: one per CPU)")
    serve.add_argument("--threads", type=int, default=4, help="threads per worker (gthread)")
    serve.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"],
                       help="gunicorn worker class (default gthread: keeps connections alive)")
    _add_store(serve)
    serve.set_defaults(func=cmd_serve)

    seed = sub.add_parser("seed", help="load a deterministic synthetic population")
    seed.add_argument("--patients", type=int, required=True)
    seed.add_argument("--seed", type=int, default=1)
    seed.add_argument("--if-empty", action="store_true",
                      help="do nothing if the store already holds patients")
    _add_store(seed)
    seed.set_defaults(func=cmd_seed)

    mongo = sub.add_parser("mongo", help="MongoDB operations")
    mongo_sub = mongo.add_subparsers(dest="mongo_command", required=True)
    plan = mongo_sub.add_parser(
        "shard-plan", help="print the mongosh commands that shard the database (docs/SCALING.md)")
    plan.add_argument("--store", help="mongodb://host/database (default: $FHIR_STORE); only the "
                                      "database name is used, nothing is contacted")
    plan.add_argument("--database", help="database name (default: from the URL, else ehc_fhir)")
    plan.set_defaults(func=cmd_mongo_shard_plan)

    from fhir_server.auth import commands as auth_commands  # clients, token, keys

    auth_commands.register(sub, _add_store)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (ValueError, StoreError) as exc:  # bad settings, URLs or stores: a message, no traceback
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
