"""Opaque, tamper-evident paging cursors: base64url(JSON payload) + truncated HMAC-SHA256.

Stateless: any worker process holding the store's cursor secret can continue a page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from fhir_server.errors import InvalidRequest

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, payload: Any) -> str:
    body = orjson.dumps(payload)
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return _b64(mac + body)


def decode(key: bytes, token: str, parameter: str = "_cursor") -> Any:
    try:
        raw = _unb64(token)
    except (ValueError, TypeError):
        raw = b""
    mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    expected = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
        raise InvalidRequest(
            f"{parameter} is not a cursor issued by this server (altered or expired)",
            expression=parameter,
        )
    return orjson.loads(body)
