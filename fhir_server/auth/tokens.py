"""The OAuth 2.0 authorization server (authlib): SMART Backend Services only.

* grant: ``client_credentials`` (RFC 6749 section 4.4), no refresh tokens;
* client authentication: ``private_key_jwt`` (RFC 7523 client assertions), verified by
  :mod:`fhir_server.auth.assertions` (authlib's own ``JWTBearerClientAssertion`` is not used: it
  accepts only joserfc's "recommended" algorithms, which excludes RS384/ES384, and checks neither
  the exp ceiling nor ``jku``);
* scopes: the request's ``scope`` (required) mediated against the client's ceiling; nothing
  grantable is ``invalid_scope`` and no token;
* tokens: :func:`fhir_server.auth.grants.issue` (random, stored hashed, at most 300 s);
* RFC 7662 introspection and RFC 7009 revocation, authenticated the same way; a client sees and
  revokes only its own tokens (anything else is ``{"active": false}`` / a silent no-op).

Failure details for the audit trail are left on ``flask.g`` (``oauth_client_id``,
``oauth_reason``); responses carry only a short ``error_description``.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.consts import default_json_headers  # type: ignore[import-untyped]
from authlib.integrations.flask_oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.integrations.flask_oauth2.requests import (  # type: ignore[import-untyped]
    FlaskOAuth2Payload,
    FlaskOAuth2Request,
)
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    ClientMixin,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant  # type: ignore[import-untyped]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from flask import g
from flask import request as flask_request

from fhir_server.auth import grants
from fhir_server.auth.assertions import ASSERTION_TYPE, AssertionRejected, AssertionVerifier
from fhir_server.auth.clients import Client
from fhir_server.auth.discovery import (
    AUTH_METHOD,
    GRANT_TYPE,
    INTROSPECT_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    endpoints,
)
from fhir_server.auth.jwks import JwksFetcher
from fhir_server.auth.scopes import format_scopes, mediate
from fhir_server.interactions.context import Services


def note(reason: str, client_id: str | None = None) -> None:
    """Remember why this request failed (and who claimed to make it) for the audit record."""
    g.oauth_reason = reason
    if client_id is not None:
        g.oauth_client_id = client_id


def _printable(text: str) -> str:
    """RFC 6749 section 5.2: error_description is printable ASCII without quote or backslash."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def fhir_base(svc: Services) -> str:
    return svc.settings.base_url or flask_request.host_url.rstrip("/") + "/fhir"


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registration as authlib sees it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == AUTH_METHOD

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def get_allowed_scope(self, scope: str) -> str | None:
        return format_scopes(mediate(scope or "", self.client.scope)) or None


class PrivateKeyJwt:
    """The ``private_key_jwt`` client authentication method."""

    def __init__(self, server: BackendAuthorizationServer) -> None:
        self.server = server

    def __call__(self, query_client: Any, request: Any) -> OAuthClient | None:
        form = request.form
        kind, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if kind is None and assertion is None:
            if request.headers.get("Authorization"):  # RFC 6749 5.2: 401 for header attempts
                note("HTTP authentication attempted")
                raise InvalidClientError(status_code=401, description="authenticate with a"
                                         " private_key_jwt client assertion")
            note("no client assertion")
            raise InvalidClientError(description="client_assertion_type and client_assertion"
                                     " are required")
        if kind != ASSERTION_TYPE:
            note("wrong client_assertion_type")
            raise InvalidClientError(description=f"client_assertion_type must be {ASSERTION_TYPE}")
        if not assertion:
            note("no client assertion")
            raise InvalidClientError(description="client_assertion is required")
        urls = endpoints(fhir_base(self.server.svc))
        audiences = [urls["token"]]  # introspection and revocation also accept their own URL
        audiences += [urls[name] for name, path in (("introspect", INTROSPECT_PATH),
                                                    ("revoke", REVOKE_PATH))
                      if flask_request.path == path]
        try:
            client = self.server.verifier.verify(assertion, audiences)
        except AssertionRejected as exc:
            note(exc.reason, exc.client_id)
            raise InvalidClientError(description=_printable(exc.description)) from None
        claimed = form.get("client_id")
        if claimed is not None and claimed != client.client_id:
            note("client_id differs from the assertion", client.client_id)
            raise InvalidClientError(description="client_id differs from the assertion issuer")
        g.oauth_client_id = client.client_id
        return OAuthClient(client)


class BackendClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [AUTH_METHOD]  # noqa: RUF012 (authlib's class attribute)

    def validate_token_request(self) -> None:
        client: OAuthClient = self.authenticate_token_endpoint_client()
        self.request.client = client
        scope = self.request.payload.scope
        if not scope or not scope.strip():
            note("no scope")
            raise InvalidScopeError(description="scope is required (space-separated SMART"
                                    " system scopes)")
        granted = mediate(scope, client.client.scope)
        if not granted:
            note("nothing grantable")
            raise InvalidScopeError(description="none of the requested scopes can be granted"
                                    " to this client")
        self.request.granted_scopes = granted

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.request.client.client
        settings = self.server.svc.settings
        token, grant = grants.issue(
            self.server.svc.store, client.client_id, client.role, client.organization,
            self.request.granted_scopes, client.policy, min(settings.token_lifetime_s, 300))
        g.oauth_token_hash = grant.token_hash
        body = {"access_token": token, "token_type": "bearer",
                "expires_in": grant.expires - int(time.time()), "scope": grant.scope}
        return 200, body, default_json_headers


class _Token:
    """An active token as authlib's endpoints expect it."""

    def __init__(self, raw: str, grant: grants.Grant) -> None:
        self.raw, self.grant = raw, grant

    def is_expired(self) -> bool:
        return self.grant.expires <= time.time()

    def is_revoked(self) -> bool:
        return False  # revoked tokens are deleted: lookup() does not find them

    def check_client(self, client: OAuthClient) -> bool:
        return bool(client.get_client_id() == self.grant.client_id)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [AUTH_METHOD]  # noqa: RUF012

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        grant = grants.lookup(self.server.svc.store, token_string)
        return _Token(token_string, grant) if grant is not None else None

    def check_permission(self, token: _Token, client: OAuthClient, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        grant = token.grant
        return {"active": True, "scope": grant.scope, "client_id": grant.client_id,
                "exp": grant.expires, "token_type": "bearer"}


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [AUTH_METHOD]  # noqa: RUF012

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        grant = grants.lookup(self.server.svc.store, token_string)
        return _Token(token_string, grant) if grant is not None else None

    def authenticate_token(self, request: Any, client: OAuthClient) -> _Token | None:
        """Another client's token is treated as unknown: nothing revoked, nothing disclosed."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: _Token, request: Any) -> None:
        grants.revoke(self.server.svc.store, token.raw)


class _Request(FlaskOAuth2Request):  # type: ignore[misc]
    """authlib checks the request URL is https (or loopback); behind a TLS-terminating proxy the
    configured public base (FHIR_BASE_URL) is what the client used."""

    def __init__(self, request: Any, public_url: str) -> None:
        OAuth2Request.__init__(self, method=request.method, uri=public_url,
                               headers=request.headers)
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class BackendAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, svc: Services, fetcher: JwksFetcher | None = None) -> None:
        super().__init__(query_client=self._query_client, save_token=self._no_save)
        self.svc = svc
        self.fetcher = fetcher or JwksFetcher(allow_private=svc.settings.jwks_allow_private)
        self.verifier = AssertionVerifier(svc.store, self._jwks)
        self.register_client_auth_method(AUTH_METHOD, PrivateKeyJwt(self))
        self.register_grant(BackendClientCredentials)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    def _jwks(self, client: Client, refresh: bool) -> dict[str, Any]:
        if client.jwks is not None:
            return client.jwks
        assert client.jwks_url is not None
        return self.fetcher.get(client.jwks_url, refresh=refresh)

    def _query_client(self, client_id: str) -> OAuthClient | None:
        client = self.verifier.clients.get(client_id)
        return OAuthClient(client) if client is not None and client.active else None

    @staticmethod
    def _no_save(token: dict[str, Any], request: Any) -> None:
        raise RuntimeError("tokens are stored by grants.issue")

    def create_oauth2_request(self, request: Any) -> _Request:
        url = flask_request.url
        if self.svc.settings.base_url:
            root = endpoints(self.svc.settings.base_url)["token"][: -len(TOKEN_PATH)]
            url = root + flask_request.full_path.rstrip("?")
        return _Request(flask_request, url)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None  # no blinker signals
