"""The ``fhir-server`` command: serve, seed."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fhir_server.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "store", None):
        settings = replace(settings, store_url=args.store)
    return settings


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="store URL: sqlite:///path/to/file.db (default: $FHIR_STORE or ./data/fhir.db)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from fhir_server.server import serve

    settings = _settings(args)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValueError as exc:  # bad settings or URLs: a message, not a traceback
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
