"""Audit records (IHE BALP). STUB written by the authentication half of issue 6: the enforcement
half replaces this module; keep the signature of :func:`record_token_request`."""

from __future__ import annotations

from fhir_server.interactions.context import Services


def record_token_request(svc: Services, client_id: str | None, outcome: str, reason: str,
                         remote_addr: str | None, request_id: str | None) -> None:
    """Record one token request (called by ``POST /auth/token`` for every request).

    ``client_id``: the client the request claimed to be (the assertion's ``iss``), None if it
    named none; ``outcome``: ``"success"`` or the OAuth error code returned (``invalid_client``,
    ``invalid_scope``, ``invalid_request``, ``unsupported_grant_type``...); ``reason``: which check
    failed, in a few words ("" on success; never the assertion or token). If this raises, a token
    just issued is revoked and the client gets 503 ``temporarily_unavailable``.
    """
    return None
