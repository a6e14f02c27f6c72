"""JWKS URLs: fetched over https only, never from private addresses (SSRF), no redirects, size and
time limits, Cache-Control honoured; and the token endpoint with a JWKS-URL client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from fhir_server.api.auth_views import server
from fhir_server.app import create_app
from fhir_server.auth.jwks import JwksError, JwksFetcher, address_allowed, max_age
from fhir_server.auth.tokens import BackendAuthorizationServer
from fhir_server.config import Settings
from fhir_server.store.sqlite import SqliteStore
from tests.jwks_server import JwksServer
from tests.oauth import assertion, ec_key, jwks, register, rsa_key, token_form

KEY = ec_key("url-1")


@pytest.fixture
def keys_host(tmp_path: Path) -> Iterator[JwksServer]:
    with JwksServer(tmp_path) as srv:
        srv.jwks = jwks(KEY)
        yield srv


def _fetcher(srv: JwksServer, **kwargs: object) -> JwksFetcher:
    return JwksFetcher(allow_private=True, ssl_context=srv.client_context(), **kwargs)  # type: ignore[arg-type]


# -- SSRF guards --------------------------------------------------------------------------------
@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fe80::1%eth0",
])
def test_private_addresses_are_refused(address: str) -> None:
    assert address_allowed(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address) is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_without_any_request(keys_host: JwksServer, host: str) -> None:
    fetcher = JwksFetcher(ssl_context=keys_host.client_context())  # allow_private off: production
    with pytest.raises(JwksError, match="private, loopback or link-local"):
        fetcher.get(keys_host.url(host=host))
    assert sum(keys_host.hits.values()) == 0


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/jwks.json",
    "https://[::1]/jwks.json", "https://[::ffff:127.0.0.1]/jwks.json", "https://0.0.0.0/jwks.json",
])
def test_metadata_and_private_urls_are_refused(url: str) -> None:
    with pytest.raises(JwksError, match="private, loopback or link-local"):
        JwksFetcher(timeout_s=0.5).get(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1/jwks.json", "file:///etc/passwd",
                                 "ftp://example.org/jwks", "https:///nohost", "gopher://x/"])
def test_only_https(url: str) -> None:
    with pytest.raises(JwksError, match="https"):
        JwksFetcher(allow_private=True).get(url)


def test_fetch_and_cache(keys_host: JwksServer) -> None:
    fetcher = _fetcher(keys_host)
    assert fetcher.get(keys_host.url()) == jwks(KEY)
    assert fetcher.get(keys_host.url()) == jwks(KEY)
    assert keys_host.hits["/jwks.json"] == 1  # max-age=600: served from the cache
    fetcher.get(keys_host.url(), refresh=True)  # unknown kid, but the copy is fresh (< 30 s)
    assert keys_host.hits["/jwks.json"] == 1


def test_refresh_after_the_minimum_interval(keys_host: JwksServer) -> None:
    fetcher = _fetcher(keys_host, min_refetch_s=0.2)
    fetcher.get(keys_host.url())
    time.sleep(0.3)
    fetcher.get(keys_host.url())
    assert keys_host.hits["/jwks.json"] == 1
    fetcher.get(keys_host.url(), refresh=True)
    assert keys_host.hits["/jwks.json"] == 2


@pytest.mark.parametrize("header", ["no-store", "no-cache", "max-age=0", "private, max-age=0"])
def test_cache_control_forbidding_reuse_is_honoured(keys_host: JwksServer, header: str) -> None:
    keys_host.cache_control = header
    fetcher = _fetcher(keys_host)
    fetcher.get(keys_host.url())
    fetcher.get(keys_host.url())
    assert keys_host.hits["/jwks.json"] == 2


def test_max_age_expiry(keys_host: JwksServer) -> None:
    keys_host.cache_control = "public, max-age=1"
    fetcher = _fetcher(keys_host)
    fetcher.get(keys_host.url())
    fetcher.get(keys_host.url())
    assert keys_host.hits["/jwks.json"] == 1
    time.sleep(1.1)
    fetcher.get(keys_host.url())
    assert keys_host.hits["/jwks.json"] == 2


@pytest.mark.parametrize(("header", "seconds"), [
    (None, 300), ("", 300), ("max-age=60", 60), ("public, max-age=3600", 3600),
    ("max-age=99999999", 86400), ("no-store", 0), ("no-cache, max-age=60", 0),
    ('max-age="120"', 120), ("must-revalidate", 300), ("s-maxage=5", 300),
])
def test_max_age_parsing(header: str | None, seconds: int) -> None:
    assert max_age(header) == seconds


def test_redirects_are_not_followed(keys_host: JwksServer) -> None:
    with pytest.raises(JwksError, match=r"302.*redirects are not followed"):
        _fetcher(keys_host).get(keys_host.url("/redirect"))
    assert keys_host.hits["/jwks.json"] == 0


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_size_cap(keys_host: JwksServer, path: str) -> None:
    with pytest.raises(JwksError, match="larger than 65536 bytes"):
        _fetcher(keys_host).get(keys_host.url(path))


def test_timeout(keys_host: JwksServer) -> None:
    started = time.monotonic()
    with pytest.raises(JwksError, match=r"timed out|TimeoutError"):
        _fetcher(keys_host, timeout_s=0.5).get(keys_host.url("/slow"))
    assert time.monotonic() - started < 1.8


@pytest.mark.parametrize(("path", "match"), [("/not-json", "not acceptable"), ("/missing", "404")])
def test_bad_answers(keys_host: JwksServer, path: str, match: str) -> None:
    with pytest.raises(JwksError, match=match):
        _fetcher(keys_host).get(keys_host.url(path))


def test_private_keys_in_a_published_jwks_are_refused(keys_host: JwksServer) -> None:
    keys_host.jwks = {"keys": [KEY.as_dict(private=True)]}
    with pytest.raises(JwksError, match="private or secret key material"):
        _fetcher(keys_host).get(keys_host.url())


def test_untrusted_certificate(keys_host: JwksServer) -> None:
    with pytest.raises(JwksError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        JwksFetcher(allow_private=True).get(keys_host.url())


# -- the token endpoint with a JWKS-URL client ---------------------------------------------------
def _app(settings: Settings, store: SqliteStore, fetcher: JwksFetcher) -> Flask:
    app = create_app(settings, store)
    app.extensions["oauth"] = BackendAuthorizationServer(app.extensions["fhir"], fetcher)
    return app


def test_token_with_a_jwks_url(settings: Settings, store: SqliteStore, keys_host: JwksServer) -> None:
    register(store, "mch-1", "mch", jwks_url=keys_host.url())
    client = _app(settings, store, _fetcher(keys_host, min_refetch_s=0)).test_client()
    response = client.post("/auth/token", data=token_form(assertion(KEY, "mch-1"), "system/Patient.rs"))
    assert response.status_code == 200, response.get_json()
    same_jku = assertion(KEY, "mch-1", header={"jku": keys_host.url()})
    assert client.post("/auth/token", data=token_form(same_jku)).status_code == 200
    other_jku = assertion(KEY, "mch-1", header={"jku": keys_host.url("/jwks.json?x=1")})
    assert client.post("/auth/token", data=token_form(other_jku)).get_json()["error"] == "invalid_client"
    assert keys_host.hits["/jwks.json"] == 1
    assert keys_host.hits["/jwks.json?x=1"] == 0  # a jku is compared, never fetched

    rotated = rsa_key("url-2")  # key rotation: an unknown kid triggers one refetch
    keys_host.jwks = jwks(rotated)
    response = client.post("/auth/token", data=token_form(assertion(rotated, "mch-1")))
    assert response.status_code == 200, response.get_json()
    assert keys_host.hits["/jwks.json"] == 2
    old = client.post("/auth/token", data=token_form(assertion(KEY, "mch-1")))
    assert old.get_json()["error"] == "invalid_client"


def test_token_endpoint_never_fetches_private_urls_in_production(
        settings: Settings, store: SqliteStore, keys_host: JwksServer) -> None:
    register(store, "mch-1", "mch", jwks_url=keys_host.url())
    app = create_app(settings, store)  # FHIR_JWKS_ALLOW_PRIVATE off
    response = app.test_client().post("/auth/token", data=token_form(assertion(KEY, "mch-1")))
    assert response.get_json()["error"] == "invalid_client"
    assert sum(keys_host.hits.values()) == 0


def test_settings_allow_private_reaches_the_fetcher(settings: Settings, store: SqliteStore) -> None:
    app = create_app(replace(settings, jwks_allow_private=True), store)
    with app.app_context():
        assert server().fetcher.allow_private is True
    with create_app(settings, store).app_context():
        assert server().fetcher.allow_private is False
