"""A real OAuth2 authorization server on 127.0.0.1 for the tests and the dev sandbox (never a
mock of our functions): invsync's OAuth2 connections run their whole dance against it.

- ``GET /oauth/authorize``: the authorization-code request (``response_type=code``, the client
  id, ``redirect_uri``, ``state``, PKCE ``code_challenge`` with ``S256``). With ``auto_approve``
  it redirects back at once with a code; otherwise it shows a consent page with an Allow and a
  Deny button (Deny redirects back with ``error=access_denied``).
- ``POST /oauth/token``: ``authorization_code`` (client checked, code used once, same
  ``redirect_uri``, the PKCE verifier checked against the challenge) and ``refresh_token``, which
  ROTATES: a used refresh token is dead (``invalid_grant``), as Pennylane's and Xero's are.
- ``POST /oauth/revoke`` (RFC 7009): revokes the grant of the token given (the client
  authenticated by HTTP Basic or in the body). ``stats.revoke_requests`` records each revocation's
  target as an access log writes it (to show no secret travels in a URL).
- The API a grant opens: ``GET /api/external/v2/me`` (Pennylane's user profile: the first company
  granted), ``GET /api/external/firm/v1/companies`` (every company granted) and
  ``GET /api/ping``; each answers 401 to an unknown, expired or revoked access token.
- Stripe Connect (``stripe_connect=True``): no PKCE (Stripe's OAuth has none), the token
  endpoint authenticated with the platform's secret key (``Authorization: Bearer <secret>`` or
  ``client_secret``), its answer carrying ``stripe_user_id`` (the connected account:
  ``connect_account``), ``stripe_publishable_key`` and ``livemode``, and
  ``POST /oauth/deauthorize`` (``client_id``, ``stripe_user_id``) revoking the grant;
  ``on_deauthorize`` is called with the account id (the fake Stripe disconnects it).
- Switches for the tests: :meth:`expire_access_tokens`, :meth:`expire_grants` (refresh tokens
  past their lifetime), :meth:`revoke_all`, ``companies``,
  ``access_ttl``, ``refresh_delay`` (to widen a refresh race).

    python -m connectors.devtools.oauth_server --port 8765   # for the dev sandbox
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "invsync-dev-client"
CLIENT_SECRET = "invsync-dev-secret-0b9d"
COMPANIES = (("101", "Boulangerie Martin SAS"), ("202", "Atelier Dubois SARL"))


@dataclass
class Grant:
    client_id: str
    scope: str
    companies: tuple[tuple[str, str], ...]
    revoked: bool = False


@dataclass
class Code:
    grant: Grant
    redirect_uri: str
    challenge: str
    method: str
    used: bool = False


@dataclass
class Access:
    grant: Grant
    expires_at: float


@dataclass
class Refresh:
    grant: Grant
    used: bool = False
    expired: bool = False


@dataclass
class Stats:
    refreshes: int = 0  # refresh grants answered with new tokens
    refused_refreshes: int = 0
    exchanges: int = 0
    revocations: int = 0
    deauthorizations: int = 0
    token_requests: list[dict[str, str]] = field(default_factory=list)  # forms, secrets removed
    api_calls: int = 0
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    # Each revocation or deauthorization request: its target (path and query, as an access log
    # would write it) and how the client authenticated ("basic", "bearer", "body" or "").
    revoke_requests: list[tuple[str, str]] = field(default_factory=list)


class OAuthServer:
    """The server, in a thread. ``url`` is its root (``http://127.0.0.1:<port>``)."""

    def __init__(
        self,
        *,
        port: int = 0,
        auto_approve: bool = True,
        clients: dict[str, str] | None = None,
        companies: tuple[tuple[str, str], ...] = COMPANIES,
        access_ttl: float = 3600.0,
        stripe_connect: bool = False,
        connect_account: str = "acct_1FakeConnected0001",
    ) -> None:
        self.clients = dict(clients or {CLIENT_ID: CLIENT_SECRET})
        self.stripe_connect = stripe_connect
        self.connect_account = connect_account
        self.on_deauthorize: Callable[[str], None] | None = None
        self.auto_approve = auto_approve
        self.companies = companies
        self.access_ttl = access_ttl
        self.refresh_delay = 0.0
        self.stats = Stats()
        self._codes: dict[str, Code] = {}
        self._access: dict[str, Access] = {}
        self._refresh: dict[str, Refresh] = {}
        self._pending: dict[str, dict[str, str]] = {}  # consent page id -> authorize params
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OAuthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- switches ------------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self._lock:
            for access in self._access.values():
                access.expires_at = 0.0

    def expire_grants(self) -> None:
        """Every refresh token outlives its lifetime (Pennylane's last 90 days): refused."""
        with self._lock:
            for refresh in self._refresh.values():
                refresh.expired = True

    def revoke_all(self) -> None:
        with self._lock:
            for item in (*self._access.values(), *self._refresh.values()):
                item.grant.revoked = True

    def is_live(self, access_token: str) -> bool:
        with self._lock:
            access = self._access.get(access_token)
            return bool(access and not access.grant.revoked and access.expires_at > time.time())

    def grant_revoked(self, token: str) -> bool:
        with self._lock:
            item = self._access.get(token) or self._refresh.get(token)
            return bool(item and item.grant.revoked)

    # -- the endpoints -------------------------------------------------------------------------

    def authorize(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.stats.authorize_requests.append(dict(params))
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") not in self.clients or not redirect_uri.startswith("http"):
            return _json(400, {"error": "invalid_client"})
        pkce_missing = not params.get("code_challenge") and not self.stripe_connect
        if params.get("response_type") != "code" or pkce_missing:
            return _redirect(redirect_uri, error="invalid_request", state=params.get("state"))
        if self.auto_approve:
            return self.decide(params, allow=True)
        page = secrets.token_urlsafe(12)
        with self._lock:
            self._pending[page] = params
        names = "".join(f"<li>{html.escape(name)}</li>" for _, name in self.companies)
        body = (
            "<!doctype html><title>Authorize</title><h1>Authorize invsync</h1>"
            f"<p>invsync asks to access: {html.escape(params.get('scope', ''))}</p>"
            f"<ul>{names}</ul>"
            f'<form method="post" action="/oauth/authorize/decide"><input type="hidden" '
            f'name="page" value="{page}"><button name="decision" value="allow">Allow</button> '
            '<button name="decision" value="deny">Deny</button></form>'
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()

    def decide_page(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            params = self._pending.pop(form.get("page", ""), None)
        if params is None:
            return _json(400, {"error": "invalid_request"})
        return self.decide(params, allow=form.get("decision") == "allow")

    def decide(self, params: dict[str, str], *, allow: bool) -> tuple[int, dict[str, str], bytes]:
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if not allow:
            return _redirect(redirect_uri, error="access_denied", state=state)
        code = secrets.token_urlsafe(24)
        grant = Grant(params["client_id"], params.get("scope", ""), tuple(self.companies))
        with self._lock:
            self._codes[code] = Code(
                grant,
                redirect_uri,
                params.get("code_challenge", ""),
                params.get("code_challenge_method", "plain"),
            )
        return _redirect(redirect_uri, code=code, state=state)

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None, bearer: str = ""
    ) -> tuple[int, dict, bytes]:
        self.stats.token_requests.append(
            {k: v for k, v in form.items() if k not in ("client_secret", "code_verifier")}
            | ({"code_verifier": "<given>"} if "code_verifier" in form else {})
        )
        if self.stripe_connect and (bearer or form.get("client_secret")):
            # Stripe: the platform's secret key is the client secret; the client id is implied.
            secret = bearer or form.get("client_secret", "")
            client_id = next((c for c, s in self.clients.items() if s == secret), "")
            client_secret = secret
        else:
            client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if not client_id or self.clients.get(client_id) != client_secret:
            return _json(401, {"error": "invalid_client"})
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form, client_id)
        if grant_type == "refresh_token":
            return self._refresh_grant(form, client_id)
        return _json(400, {"error": "unsupported_grant_type"})

    def _exchange(self, form: dict[str, str], client_id: str) -> tuple[int, dict, bytes]:
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is None or code.used or code.grant.client_id != client_id:
                return _json(400, {"error": "invalid_grant", "error_description": "bad code"})
            code.used = True
            if self.stripe_connect:  # no redirect_uri nor PKCE in Stripe's exchange
                self.stats.exchanges += 1
                return _json(200, self._issue(code.grant))
            if code.redirect_uri != form.get("redirect_uri"):
                return _json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
            verifier = form.get("code_verifier", "")
            if code.method != "S256" or _s256(verifier) != code.challenge:
                return _json(400, {"error": "invalid_grant", "error_description": "PKCE"})
            self.stats.exchanges += 1
            return _json(200, self._issue(code.grant))

    def _refresh_grant(self, form: dict[str, str], client_id: str) -> tuple[int, dict, bytes]:
        if self.refresh_delay:
            time.sleep(self.refresh_delay)  # widens the window a racing refresh would hit
        with self._lock:
            refresh = self._refresh.get(form.get("refresh_token", ""))
            if (
                refresh is None
                or refresh.used
                or refresh.expired
                or refresh.grant.revoked
                or refresh.grant.client_id != client_id
            ):
                self.stats.refused_refreshes += 1
                return _json(400, {"error": "invalid_grant", "error_description": "refresh"})
            refresh.used = True  # rotation: this refresh token never works again
            self.stats.refreshes += 1
            return _json(200, self._issue(refresh.grant))

    def issue(self, client_id: str = CLIENT_ID) -> dict[str, Any]:
        """A grant's tokens, issued without the browser's dance (for tests of what follows)."""
        with self._lock:
            return self._issue(Grant(client_id, "", self.companies))

    def _issue(self, grant: Grant) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        if self.stripe_connect:  # Stripe's shapes: a secret key of the account, rt_…
            access, refresh = "sk_test_" + access, "rt_" + refresh
        self._access[access] = Access(grant, time.time() + self.access_ttl)
        self._refresh[refresh] = Refresh(grant)
        if self.stripe_connect:  # Stripe's answer: no expiry; the connected account's id
            return {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "bearer",
                "scope": grant.scope or "read_write",
                "livemode": False,
                "stripe_user_id": self.connect_account,
                "stripe_publishable_key": "pk_test_" + secrets.token_urlsafe(12),
            }
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
            "scope": grant.scope,
        }

    def revoke(
        self, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> tuple[int, dict, bytes]:
        """RFC 7009: the client authenticates (HTTP Basic, as Xero's revocation endpoint asks,
        or ``client_id``/``client_secret`` in the body, as Pennylane's takes them)."""
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if not client_id or self.clients.get(client_id) != client_secret:
            return _json(401, {"error": "invalid_client", "error_description": "client"})
        with self._lock:
            item = self._access.get(form.get("token", "")) or self._refresh.get(
                form.get("token", "")
            )
            if item is not None:
                item.grant.revoked = True
                self.stats.revocations += 1
        return _json(200, {})  # RFC 7009: unknown tokens are answered alike

    def deauthorize(self, form: dict[str, str], bearer: str) -> tuple[int, dict, bytes]:
        """Stripe Connect's ``POST /oauth/deauthorize``: the platform (its secret key) cuts its
        access to ``stripe_user_id``; every token of the grants to that account stops working."""
        client_id = form.get("client_id", "")
        secret = bearer or form.get("client_secret", "")
        if not secret or self.clients.get(client_id) != secret:
            return _json(401, {"error": "invalid_client", "error_description": "client"})
        account = form.get("stripe_user_id", "")
        if account != self.connect_account:
            return _json(400, {"error": "invalid_client", "error_description": "not connected"})
        with self._lock:
            for item in (*self._access.values(), *self._refresh.values()):
                if item.grant.client_id == client_id:
                    item.grant.revoked = True
            self.stats.deauthorizations += 1
        if self.on_deauthorize is not None:
            self.on_deauthorize(account)
        return _json(200, {"stripe_user_id": account})

    def api(self, path: str, authorization: str) -> tuple[int, dict, bytes]:
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        self.stats.api_calls += 1
        with self._lock:
            access = self._access.get(token)
            live = access and not access.grant.revoked and access.expires_at > time.time()
        if not live:
            return _json(401, {"error": "invalid_token", "message": "Unauthorized"})
        companies = [{"id": int(i), "name": n} for i, n in access.grant.companies]
        if path == "/api/external/v2/me":
            return _json(200, {"user": {"id": 1}, "company": companies[0] if companies else None})
        if path == "/api/external/firm/v1/companies":
            return _json(200, {"items": companies})
        return _json(200, {"ok": True})


def _handler(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def _basic(self) -> tuple[str, str] | None:
            value = self.headers.get("Authorization", "")
            if not value.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
            return user, password

        def _send(self, answer: tuple[int, dict[str, str], bytes]) -> None:
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/oauth/authorize":
                self._send(server.authorize(params))
            elif parts.path.startswith("/api/"):
                self._send(server.api(parts.path, self.headers.get("Authorization", "")))
            else:
                self._send(_json(404, {"error": "not_found"}))

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            form = self._form()
            bearer = self.headers.get("Authorization", "")
            bearer = bearer[7:].strip() if bearer.startswith("Bearer ") else ""
            if path in ("/oauth/revoke", "/oauth/deauthorize"):
                how = (
                    "basic" if self._basic() else "bearer" if bearer
                    else "body" if form.get("client_secret") else ""
                )  # fmt: skip
                server.stats.revoke_requests.append((self.path, how))
            if path == "/oauth/token":
                self._send(server.token(form, self._basic(), bearer))
            elif path == "/oauth/deauthorize":
                self._send(server.deauthorize(form, bearer))
            elif path == "/oauth/revoke":
                self._send(server.revoke(form, self._basic()))
            elif path == "/oauth/authorize/decide":
                self._send(server.decide_page(form))
            else:
                self._send(_json(404, {"error": "not_found"}))

    return Handler


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _json(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _redirect(uri: str, **params: str | None) -> tuple[int, dict[str, str], bytes]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return 302, {"Location": f"{uri}{'&' if '?' in uri else '?'}{query}"}, b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--consent", action="store_true", help="show the consent page")
    args = parser.parse_args()
    server = OAuthServer(port=args.port, auto_approve=not args.consent)
    print(f"OAuth2 dev server on {server.url} (client {CLIENT_ID} / {CLIENT_SECRET})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
