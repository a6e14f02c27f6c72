"""CLI subcommands for OAuth: ``clients``, ``token`` and ``keys`` (added to ``fhir-server`` by
``fhir_server.cli``). Heavy imports happen inside the commands, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fhir_server.auth.roles import POLICY_SYNTAX, ROLES
from fhir_server.config import Settings
from fhir_server.store import Store

AddStore = Callable[[argparse.ArgumentParser], None]


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Store]:
    from fhir_server.store import open_store

    settings = Settings.from_env()
    if getattr(args, "store", None):
        settings = replace(settings, store_url=args.store)
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def _read_jwks(path: str) -> Any:
    from fhir_server.auth.clients import ClientError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClientError(f"cannot read the JWKS file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ClientError(f"the JWKS file {path} is not JSON: {exc}") from None


def _summary(client: Any) -> str:
    keys = client.jwks_url or f"{len(client.jwks['keys'])} registered key(s)"
    limit = f"  rate limit: {client.rate_limit}/min" if client.rate_limit is not None else ""
    return (f"{client.client_id}  role={client.role}  {client.organization}  {client.status}"
            f"  keys: {keys}{limit}")


def cmd_clients_add(args: argparse.Namespace) -> int:
    from fhir_server.auth.clients import ClientRegistry, new_client

    client = new_client(
        args.client_id, args.role, args.organization,
        jwks=_read_jwks(args.jwks) if args.jwks else None, jwks_url=args.jwks_url,
        scope=args.scope, policy=args.policy, rate_limit=args.rate_limit)
    with _store(args) as store:
        ClientRegistry(store).add(client)
    print(f"Registered {_summary(client)}")
    print(f"  scope ceiling: {client.scope}")
    print(f"  data policy:   {'; '.join(client.policy) or '(none: every instance of its types)'}")
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    from fhir_server.auth.clients import ClientRegistry

    with _store(args) as store:
        clients = ClientRegistry(store).list()
    for client in clients:
        print(_summary(client))
    if not clients:
        print("No clients are registered.", file=sys.stderr)
    return 0


def cmd_clients_show(args: argparse.Namespace) -> int:
    from fhir_server.auth.clients import ClientRegistry

    with _store(args) as store:
        client = ClientRegistry(store).require(args.client_id)
    print(json.dumps(client.to_json(), indent=2, ensure_ascii=False))
    return 0


def _clients_change(verb: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from fhir_server.auth.clients import ClientRegistry

        with _store(args) as store:
            client = getattr(ClientRegistry(store), verb)(args.client_id)
        done = {"suspend": "Suspended (its tokens are revoked)", "activate": "Activated",
                "remove": "Removed (its tokens are revoked)"}[verb]
        print(f"{done}: {client.client_id}")
        return 0

    return command


def cmd_clients_set_rate_limit(args: argparse.Namespace) -> int:
    from fhir_server.auth.clients import ClientRegistry

    with _store(args) as store:
        client = ClientRegistry(store).set_rate_limit(args.client_id, args.per_minute)
    limit = "no limit" if client.rate_limit is None else f"{client.rate_limit} requests per minute"
    print(f"Rate limit of {client.client_id}: {limit} (applied by the running server within ~2 s)")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from fhir_server.auth.keys import load_private_key, request_token

    key = load_private_key(args.key, kid=args.kid)
    body = request_token(args.url, args.client_id, key, args.scope)
    if "access_token" not in body:
        error = body.get("error", "error")
        print(f"fhir-server token: {error}: {body.get('error_description', '')}".rstrip(": "),
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(body["access_token"])
        print(f"scope: {body.get('scope', '')}; expires in {body.get('expires_in')} s",
              file=sys.stderr)
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from fhir_server.auth.keys import generate, private_pem, public_jwks

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private_path, jwks_path = out / f"{args.client_id}.key.pem", out / f"{args.client_id}.jwks.json"
    if private_path.exists() and not args.force:
        raise ValueError(f"{private_path} exists; use --force to replace it")
    key = generate(args.alg)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key))
    os.chmod(private_path, 0o600)
    jwks_path.write_text(json.dumps(public_jwks(key), indent=2) + "\n", encoding="utf-8")
    print(f"private key: {private_path} (keep it secret)")
    print(f"public JWKS: {jwks_path} (kid {key.kid}, {args.alg})")
    print(f"register:    fhir-server clients add --client-id {args.client_id} --role ROLE"
          f" --organization Organization/ID --jwks {jwks_path}")
    print(f"token:       fhir-server token --client-id {args.client_id} --key {private_path}"
          " --scope 'system/*.rs'")
    return 0


_CLIENTS_HELP = f"""\
Roles and their presets (the scope ceiling is the most a client may be granted):
{chr(10).join(f"  {r.name:9} {r.description}" for r in ROLES.values())}

{POLICY_SYNTAX}"""


def register(sub: Any, add_store: AddStore) -> None:
    """Add ``clients``, ``token`` and ``keys`` to the ``fhir-server`` subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    clients = sub.add_parser("clients", help="manage OAuth client registrations",
                             description=_CLIENTS_HELP, formatter_class=raw)
    csub = clients.add_subparsers(dest="clients_command", required=True)

    add = csub.add_parser("add", help="register a client (SMART Backend Services)",
                          description=_CLIENTS_HELP, formatter_class=raw)
    add.add_argument("--client-id", required=True)
    add.add_argument("--role", required=True, choices=sorted(ROLES))
    add.add_argument("--organization", required=True, help="Organization/ID the client acts for")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", metavar="FILE", help="the client's public JWKS (JSON file)")
    keys.add_argument("--jwks-url", metavar="URL", help="https URL of the client's public JWKS")
    add.add_argument("--scope", help="scope ceiling replacing the role's (space-separated"
                                     " system/ scopes, e.g. 'system/Encounter.rs')")
    add.add_argument("--policy", action="append", metavar="CRITERIA",
                     help="data policy criteria replacing the role's (repeatable; see above)")
    add.add_argument("--rate-limit", type=int, metavar="N",
                     help="requests per minute, counted across every worker (default: no limit)")
    add_store(add)
    add.set_defaults(func=cmd_clients_add)

    listing = csub.add_parser("list", help="list registered clients")
    add_store(listing)
    listing.set_defaults(func=cmd_clients_list)
    for name, verb, text in (("show", None, "print a registration as JSON"),
                             ("suspend", "suspend", "refuse new tokens and revoke its tokens"),
                             ("activate", "activate", "let a suspended client in again"),
                             ("remove", "remove", "delete a registration and revoke its tokens")):
        command = csub.add_parser(name, help=text)
        command.add_argument("client_id", metavar="ID")
        add_store(command)
        command.set_defaults(func=cmd_clients_show if verb is None else _clients_change(verb))
    rate = csub.add_parser("set-rate-limit", help="change a client's rate limit (requests per"
                                                  " minute, counted across every worker)")
    rate.add_argument("client_id", metavar="ID")
    limit = rate.add_mutually_exclusive_group(required=True)
    limit.add_argument("--per-minute", type=int, metavar="N", help="at most N requests per minute")
    limit.add_argument("--none", dest="per_minute", action="store_const", const=None,
                       help="no limit")
    add_store(rate)
    rate.set_defaults(func=cmd_clients_set_rate_limit)

    token = sub.add_parser("token", help="sign a client assertion and print an access token")
    token.add_argument("--client-id", required=True)
    token.add_argument("--key", required=True, metavar="FILE",
                       help="private key: PEM or JWK (RSA: RS384; EC P-384: ES384)")
    token.add_argument("--kid", help="key id, if the registered JWKS names the key otherwise"
                                     " (default: the key's RFC 7638 thumbprint)")
    token.add_argument("--scope", default="system/*.rs", help="requested scopes (default"
                                                              " system/*.rs)")
    token.add_argument("--url", default="http://127.0.0.1:8080",
                       help="the running server (root or FHIR base; default http://127.0.0.1:8080)")
    token.add_argument("--json", action="store_true", help="print the whole token response")
    token.set_defaults(func=cmd_token)

    keys_parser = sub.add_parser("keys", help="key pairs for OAuth clients")
    ksub = keys_parser.add_subparsers(dest="keys_command", required=True)
    gen = ksub.add_parser("generate", help="write a private key and its public JWKS")
    gen.add_argument("--out", required=True, metavar="DIR")
    gen.add_argument("--client-id", required=True)
    gen.add_argument("--alg", default="ES384", choices=["ES384", "RS384"])
    gen.add_argument("--force", action="store_true", help="replace an existing key")
    gen.set_defaults(func=cmd_keys_generate)
