"""Fetching a client's JWKS from its registered URL, without becoming an SSRF tool.

* https only; no redirects (a 3xx is an error); 3 s for connecting and for the whole read; at most
  64 KB;
* the host name is resolved once and every address checked: private, loopback, link-local,
  multicast, reserved and unspecified addresses are refused (unless ``allow_private``, for tests
  and closed networks: ``FHIR_JWKS_ALLOW_PRIVATE``); the connection then goes to the checked
  address (so a second DNS answer cannot point it elsewhere) with the certificate verified for the
  host name;
* ``Cache-Control: max-age`` is honoured (``no-store``/``no-cache``: not cached), 5 minutes when
  absent, a day at most; cached per process. A key id not found in a cached set triggers one
  refetch, at most every 30 s per URL, so forged assertions cannot make the server hammer a host.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir_server.auth.clients import ClientError, check_jwks

TIMEOUT_S = 3.0
MAX_BYTES = 64 * 1024
DEFAULT_MAX_AGE_S = 300
MAX_MAX_AGE_S = 86400
MIN_REFETCH_S = 30.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)


class JwksError(Exception):
    """The JWKS could not be fetched or is not acceptable (the reason is for logs, not clients)."""


def max_age(cache_control: str | None) -> int:
    """Seconds a response may be cached under its ``Cache-Control`` header."""
    if not cache_control:
        return DEFAULT_MAX_AGE_S
    if _NO_CACHE.search(cache_control):
        return 0
    match = _MAX_AGE.search(cache_control)
    return min(int(match[1]), MAX_MAX_AGE_S) if match else DEFAULT_MAX_AGE_S


def address_allowed(address: str) -> bool:
    """A public unicast address (IPv4-mapped IPv6 addresses are judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address already checked, with SNI and certificate checks for the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


@dataclass
class _Cached:
    jwks: dict[str, Any]
    fetched: float  # time.monotonic()
    max_age: int


class JwksFetcher:
    def __init__(self, *, allow_private: bool = False, ssl_context: ssl.SSLContext | None = None,
                 timeout_s: float = TIMEOUT_S, max_bytes: int = MAX_BYTES,
                 min_refetch_s: float = MIN_REFETCH_S) -> None:
        self.allow_private = allow_private
        self.min_refetch_s = min_refetch_s
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JWKS at ``url``, from the cache while fresh. ``refresh``: a key was not found in the
        cached set; fetch again unless the cached copy is younger than 30 s."""
        now = time.monotonic()
        cached = self._cache.get(url)
        if cached is not None:
            age = now - cached.fetched
            if (age < cached.max_age and not refresh) or (refresh and age < self.min_refetch_s):
                return cached.jwks
        jwks, seconds = self.fetch(url)
        with self._lock:
            if seconds > 0:
                self._cache[url] = _Cached(jwks, time.monotonic(), seconds)
            else:
                self._cache.pop(url, None)
        return jwks

    def fetch(self, url: str) -> tuple[dict[str, Any], int]:
        """Fetch and validate the JWKS; returns it and how long it may be cached."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise JwksError(f"JWKS URL {url!r} is not an https URL")
        host = parts.hostname
        try:
            port = parts.port or 443
        except ValueError:
            raise JwksError(f"JWKS URL {url!r} has an invalid port") from None
        address = self._resolve(host, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + self.timeout_s
        conn = _PinnedHTTPSConnection(host, address, port, self.timeout_s, self.ssl_context)
        try:
            conn.request("GET", path, headers={"Accept": "application/json, application/jwk-set+json",
                                               "User-Agent": "ehc-fhir-jwks/1"})
            response = conn.getresponse()
            if response.status != 200:
                raise JwksError(f"JWKS URL {url!r} answered {response.status}"
                                + (" (redirects are not followed)"
                                   if 300 <= response.status < 400 else ""))
            length = response.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise JwksError(f"JWKS at {url!r} is larger than {self.max_bytes} bytes")
            body = self._read(response, deadline, url)
            seconds = max_age(response.getheader("Cache-Control"))
        except (OSError, http.client.HTTPException) as exc:
            raise JwksError(f"cannot fetch JWKS from {url!r}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        try:
            jwks = check_jwks(json.loads(body))
        except (ValueError, ClientError) as exc:
            raise JwksError(f"JWKS at {url!r} is not acceptable: {exc}") from None
        return jwks, seconds

    def _resolve(self, host: str, port: int) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise JwksError(f"cannot resolve JWKS host {host!r}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise JwksError(f"JWKS host {host!r} has no address")
        if not self.allow_private:
            refused = [a for a in addresses if not address_allowed(a)]
            if refused:
                raise JwksError(f"JWKS host {host!r} resolves to a private, loopback or link-local"
                                f" address ({refused[0]}): refused")
        return addresses[0]

    def _read(self, response: http.client.HTTPResponse, deadline: float, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise JwksError(f"JWKS at {url!r}: read timed out")
            chunk = response.read1(8192)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise JwksError(f"JWKS at {url!r} is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
