"""Register the demo OAuth clients of ``make run``: one per role, for organisations of the seeded data.

    .venv/bin/python scripts/demo_clients.py --store sqlite:///data/fhir.db --keys data/keys \
        --url http://127.0.0.1:8080

Clients: ``demo-hospital-1`` and ``demo-hospital-2`` (two hospitals), ``demo-insurer``,
``demo-mch`` (the maternal-child health hospital) and ``demo-referral`` (a community health centre
receiving referrals: the one most active referrals are addressed to). The organisations are looked
up in the store (their ``type`` and name), not hard-coded. Each client gets an ES384 key pair in
``--keys`` (private key ``<client>.key.pem``, mode 0600, and ``<client>.jwks.json``), a directory that
must stay out of version control (``data/`` is git-ignored).

Idempotent: an existing key is reused, a registration that already names that key and organisation
is left alone (a suspended one stays suspended), and one that does not (a new key, another
organisation) is replaced. Prints how to get
a token and a first request with it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

from fhir_server.auth.clients import ClientRegistry, new_client
from fhir_server.auth.keys import PrivateKey, generate, load_private_key, private_pem, public_jwks
from fhir_server.config import Settings
from fhir_server.fhir import jsonio
from fhir_server.search.query import build_search
from fhir_server.store import Store, open_store
from fhir_server.store.base import SearchQuery


@dataclass(frozen=True)
class Org:
    id: str
    name: str
    kind: str  # hospital | mch | insurer | community | other


def kind_of(doc: dict[str, Any]) -> str:
    """What kind of partner an Organization is, from its ``type`` (code and text) and name."""
    codes = {c.get("code") for t in doc.get("type", []) for c in t.get("coding", [])}
    text = " ".join([*(t.get("text", "") for t in doc.get("type", [])), doc.get("name", "")])
    if "ins" in codes or "医疗保障" in text or "保险" in text:
        return "insurer"
    if "妇幼" in text:
        return "mch"
    if "社区卫生服务" in text:
        return "community"
    if "医院" in text and "prov" in codes | {None}:
        return "hospital"
    return "other"


def organizations(store: Store) -> list[Org]:
    rows = store.search(SearchQuery(("Organization",), limit=1000)).rows
    out = []
    for row in rows:
        if row.body is None:
            continue
        doc = jsonio.loads_trusted(row.body)
        out.append(Org(row.id, str(doc.get("name", row.id)), kind_of(doc)))
    return sorted(out, key=lambda o: o.id)


def referral_counts(store: Store) -> Counter[str]:
    """Active referrals per performing Organization id."""
    where = build_search(("ServiceRequest",), [("status", "active")]).where
    counts: Counter[str] = Counter()
    for row in store.search(SearchQuery(("ServiceRequest",), where, limit=1000)).rows:
        if row.body is None:
            continue
        for performer in jsonio.loads_trusted(row.body).get("performer", []):
            ref = str(performer.get("reference", ""))
            if ref.startswith("Organization/"):
                counts[ref.partition("/")[2]] += 1
    return counts


def choose(orgs: list[Org], store: Store) -> list[tuple[str, str, Org]]:
    """(client id, role, organisation) of every demo client that has an organisation."""
    by_kind: dict[str, list[Org]] = {}
    for org in orgs:
        by_kind.setdefault(org.kind, []).append(org)
    out: list[tuple[str, str, Org]] = []
    for n, org in enumerate(by_kind.get("hospital", [])[:2], start=1):
        out.append((f"demo-hospital-{n}", "hospital", org))
    for client_id, role, kind in (("demo-insurer", "insurer", "insurer"), ("demo-mch", "mch", "mch")):
        if by_kind.get(kind):
            out.append((client_id, role, by_kind[kind][0]))
    community = by_kind.get("community", [])
    if community:
        counts = referral_counts(store)
        partner = max(community, key=lambda o: (counts[o.id], [-ord(c) for c in o.id]))
        out.append(("demo-referral", "referral", partner))
    return out


def key_for(keys_dir: Path, client_id: str) -> tuple[PrivateKey, Path, bool]:
    """The client's private key (created if absent), its path, and whether it was created now."""
    private_path = keys_dir / f"{client_id}.key.pem"
    jwks_path = keys_dir / f"{client_id}.jwks.json"
    if private_path.exists():
        key = load_private_key(private_path)
        created = False
    else:
        key = generate("ES384")
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem(key))
        created = True
    jwks_path.write_text(jsonio.dumps(public_jwks(key), pretty=True).decode() + "\n", encoding="utf-8")
    return key, private_path, created


def register(store: Store, client_id: str, role: str, org: Org, key: PrivateKey) -> str:
    """Register (or replace) the client; what was done, in a word."""
    registry = ClientRegistry(store)
    wanted = new_client(client_id, role, f"Organization/{org.id}", jwks=public_jwks(key))
    current = registry.get(client_id)
    if current is not None:
        kids = {k.get("kid") for k in (current.jwks or {}).get("keys", [])}
        if dc_replace(current, created=wanted.created, status=wanted.status) == wanted \
                and key.kid in kids:
            return "unchanged" if current.active else "unchanged, suspended"
        registry.remove(client_id)
        registry.add(wanted)
        return "replaced"
    registry.add(wanted)
    return "registered"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="store URL (default: $FHIR_STORE or ./data/fhir.db)")
    parser.add_argument("--keys", required=True, type=Path, help="directory for the private keys")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's root URL")
    parser.add_argument("--fhir-server", default="fhir-server",
                        help="how to call the CLI in the printed commands")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.store:
        settings = dc_replace(settings, store_url=args.store)
    args.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(settings)
    try:
        chosen = choose(organizations(store), store)
        done = []
        for client_id, role, org in chosen:
            key, path, _ = key_for(args.keys, client_id)
            done.append((client_id, role, org, path, register(store, client_id, role, org, key)))
    finally:
        store.close()
    if not done:
        print("demo clients: the store holds no seeded Organizations; none registered",
              file=sys.stderr)
        return 0
    missing = {"demo-hospital-1", "demo-hospital-2", "demo-insurer", "demo-mch",
               "demo-referral"} - {d[0] for d in done}
    print(f"Demo OAuth clients (SMART Backend Services, ES384 keys in {args.keys}/, not in git):")
    for client_id, role, org, _, what in done:
        print(f"  {client_id:16} {role:9} Organization/{org.id:12} {org.name}  [{what}]")
    if missing:
        print(f"  (no organisation found for: {', '.join(sorted(missing))})")
    client_id, _, _, path, _ = done[0]
    cli, url = args.fhir_server, args.url.rstrip("/")
    print("Get an access token (valid 300 s) while the server runs, then call the API with it:")
    print(f"  TOKEN=$({cli} token --url {url} --client-id {client_id} --key {shlex.quote(str(path))})")
    print(f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{url}/fhir/Patient?_count=1'")
    print("  (--scope 'system/Encounter.rs' asks for less; any client above works the same way;")
    print("   without a token every FHIR request except /fhir/metadata gets 401)")
    if not settings.auth:
        print("FHIR_AUTH=off: the server will not check tokens (local development only).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
