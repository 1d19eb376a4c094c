"""The OAuth2 backends: one small social-core ``BaseOAuth2PKCE`` subclass per vendor (PKCE S256
and ``state``), and the explicit registry of them (:data:`BACKENDS`), looked up by connector key.

A backend knows its vendor's authorize, token and revoke addresses, the scopes invsync asks for,
and how to list the companies (tenants) a grant gives. The OAuth app's client id and secret come
from the connection (a firm's own app: its ``client_id``/``client_secret`` credentials) or else
from the settings (``INVSYNC_OAUTH_<VENDOR>_CLIENT_ID`` / ``_CLIENT_SECRET``); the vendor's base
address may be replaced by ``INVSYNC_OAUTH_<VENDOR>_BASE_URL`` (tests and the dev sandbox point it
at :mod:`connectors.devtools.oauth_server`).

Only the authorization-code dance and the token calls go through social-core; its user pipeline
never runs (the tokens belong to a Connection, not to a user: :mod:`connectors.oauth_flow`).
Xero and Stripe Connect add one class each and list it in :data:`BACKENDS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from django.conf import settings
from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import SocialAuthBaseException


class InvsyncOAuth2(BaseOAuth2PKCE):
    """What every vendor's backend shares. Subclasses set ``vendor`` (the settings' name),
    ``connector_keys``, ``BASE_URL``, the paths and ``DEFAULT_SCOPE``, and may override
    :meth:`granted_companies`."""

    vendor: ClassVar[str] = ""
    title: ClassVar[str] = ""
    connector_keys: ClassVar[tuple[str, ...]] = ()
    BASE_URL: ClassVar[str] = ""
    AUTHORIZATION_PATH: ClassVar[str] = "/oauth/authorize"
    TOKEN_PATH: ClassVar[str] = "/oauth/token"
    REVOKE_PATH: ClassVar[str] = ""  # "": the vendor cannot revoke
    ACCESS_TOKEN_METHOD = "POST"
    REVOKE_TOKEN_METHOD = "POST"
    SCOPE_SEPARATOR = " "
    REDIRECT_STATE = False  # one fixed redirect address; the state travels as ``state``
    STATE_PARAMETER = True
    SEND_USER_AGENT = True

    def __init__(
        self,
        strategy: Any,
        redirect_uri: str | None = None,
        *,
        client: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(strategy, redirect_uri)
        self._client = client if client and all(client) else None

    # -- where, and as whom --------------------------------------------------------------------

    @classmethod
    def configured(cls, name: str) -> str:
        """``INVSYNC_OAUTH_<VENDOR>_<NAME>`` from the settings ("" when unset)."""
        table = getattr(settings, "INVSYNC_OAUTH", {}) or {}
        return str((table.get(cls.vendor) or {}).get(name) or "")

    def root(self) -> str:
        return (self.configured("base_url") or self.BASE_URL).rstrip("/")

    def authorization_url(self) -> str:
        return self.root() + self.AUTHORIZATION_PATH

    def access_token_url(self) -> str:
        return self.root() + self.TOKEN_PATH

    def revoke_token_url(self, token: str, uid: str) -> str:
        return self.root() + self.REVOKE_PATH if self.REVOKE_PATH else ""

    def revoke_token_params(self, token: str, uid: str) -> dict[str, Any]:
        client_id, client_secret = self.get_key_and_secret()
        return {"token": token, "client_id": client_id, "client_secret": client_secret}

    def revoke_token_credentials(self, token: str, uid: str) -> tuple[str, str] | None:
        """HTTP Basic credentials for the revocation request (None: the client authenticates in
        the body or a header, as :meth:`revoke_token_params` / ``revoke_token_headers`` say)."""
        return None

    def revoke_token(self, token: str, uid: str) -> Any:
        """Revoke at the vendor with the parameters in the form body only. social-core's own
        ``revoke_token`` also puts them in the query string, which would write the client secret
        into URLs (proxies' and the vendor's access logs)."""
        url = self.revoke_token_url(token, uid)
        if not url:
            return None
        response = self.request(
            url,
            method=self.REVOKE_TOKEN_METHOD,
            data=self.revoke_token_params(token, uid),
            headers=self.revoke_token_headers(token, uid),
            auth=self.revoke_token_credentials(token, uid),
            stage="disconnect",
        )
        return self.process_revoke_token_response(response)

    def get_key_and_secret(self) -> tuple[str, str]:
        if self._client:
            return self._client
        return self.configured("client_id"), self.configured("client_secret")

    def get_scope(self) -> list[str]:
        configured = self.configured("scopes")
        return configured.split() if configured else list(self.DEFAULT_SCOPE or [])

    @classmethod
    def has_client(cls, own: tuple[str, str] | None = None) -> bool:
        return bool(own and all(own)) or bool(
            cls.configured("client_id") and cls.configured("client_secret")
        )

    # -- the dance, without social-auth's user pipeline ------------------------------------------

    def exchange_code(self) -> dict[str, Any]:
        """The callback's half of the dance, on ``self.data`` (the callback's query): the
        vendor's error (declined...) raised, ``state`` checked against this session's (once,
        within its lifetime), the code exchanged with the PKCE verifier. Returns the token
        endpoint's answer. Raises social-core's exceptions (``AuthCanceled``,
        ``AuthSessionError``, ``AuthCredentialError``, ``AuthProviderError``...)."""
        self.process_error(self.data)
        state = self.validate_state()
        response = self.request_access_token(
            self.access_token_url(),
            data=self.auth_complete_params(state),
            headers=self.auth_headers(),
            auth=self.auth_complete_credentials(),
            method=self.ACCESS_TOKEN_METHOD,
        )
        self.get_access_token(response)  # raises when the answer holds none
        return response

    def granted_companies(self, access_token: str) -> list[tuple[str, str]]:
        """The companies (tenants) the grant gives, as (id, name); [] when the vendor does not
        say (the grant is then for one account)."""
        return []

    def api_get(self, path: str, access_token: str) -> Any:
        return self.get_json(
            self.root() + path, headers={"Authorization": f"Bearer {access_token}"}
        )


class PennylaneOAuth2(InvsyncOAuth2):
    """Pennylane (https://pennylane.readme.io/docs/oauth-20-walkthrough): authorization code at
    ``app.pennylane.com/oauth/authorize``, tokens at ``/oauth/token`` (access tokens for 24 h,
    refresh tokens rotated on use), revocation at ``/oauth/revoke``. A company grant is for one
    company (``GET /api/external/v2/me`` names it); a firm grant gives several, listed by the
    firm API."""

    name = "invsync-pennylane"
    vendor = "pennylane"
    title = "Pennylane"
    connector_keys = ("pennylane",)
    BASE_URL = "https://app.pennylane.com"
    REVOKE_PATH = "/oauth/revoke"
    # Pennylane API v2 scopes (https://pennylane.readme.io/docs/v2-scopes; the former `ledger`
    # scope is gone since the 2026 changes) for a target writing ledger entries with their PDF
    # and creating customers and suppliers: least privilege, INVSYNC_OAUTH_PENNYLANE_SCOPES
    # replaces them.
    DEFAULT_SCOPE = [
        "ledger_entries:all",
        "ledger_accounts:readonly",
        "journals:readonly",
        "customers:all",
        "suppliers:all",
        "file_attachments:all",
    ]

    def granted_companies(self, access_token: str) -> list[tuple[str, str]]:
        try:
            listed = self.api_get("/api/external/firm/v1/companies", access_token)
        except SocialAuthBaseException:  # a company grant has no firm API: ask /me below
            listed = None
        items = listed.get("items") if isinstance(listed, dict) else None
        if isinstance(items, list) and items:
            return [(str(c.get("id")), str(c.get("name") or c.get("id"))) for c in items]
        me = self.api_get("/api/external/v2/me", access_token)
        company = me.get("company") if isinstance(me, dict) else None
        if isinstance(company, dict) and company.get("id") is not None:
            return [(str(company["id"]), str(company.get("name") or company["id"]))]
        return []


class XeroOAuth2(InvsyncOAuth2):
    """Xero (https://developer.xero.com/documentation/guides/oauth2/auth-flow/): authorization
    code at ``login.xero.com/identity/connect/authorize``, tokens at
    ``identity.xero.com/connect/token`` (access tokens for 30 minutes; refresh tokens rotated on
    use, 60 days unused), revocation at ``identity.xero.com/connect/revocation``. A grant reaches
    one or more organisations, listed by ``GET https://api.xero.com/connections`` (tenant id and
    name); the one picked is the connection's ``company_id``, sent as ``xero-tenant-id``.
    ``INVSYNC_OAUTH_XERO_BASE_URL`` points all of them at one server (the tests' authorization
    server: its ``/oauth/...`` paths, the listing at ``/connections``); the settings'
    ``INVSYNC_OAUTH["xero"]["connections_url"]`` may name another listing (tests: the fake
    Xero's)."""

    name = "invsync-xero"
    vendor = "xero"
    title = "Xero"
    connector_keys = ("xero",)
    AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
    TOKEN_URL = "https://identity.xero.com/connect/token"
    REVOKE_URL = "https://identity.xero.com/connect/revocation"
    CONNECTIONS_URL = "https://api.xero.com/connections"
    REVOKE_PATH = "/oauth/revoke"
    # Xero's granular scopes (apps created from 2 March 2026 have no accounting.transactions):
    # invoices, bills and credit notes; contacts; the chart, tax rates and tracking read;
    # attachments; offline_access for the refresh token. Older apps may set
    # INVSYNC_OAUTH_XERO_SCOPES="offline_access accounting.transactions accounting.contacts
    # accounting.settings.read accounting.attachments".
    DEFAULT_SCOPE = [
        "offline_access",
        "accounting.invoices",
        "accounting.contacts",
        "accounting.settings.read",
        "accounting.attachments",
    ]

    def authorization_url(self) -> str:
        return (
            self.root() + self.AUTHORIZATION_PATH
            if self.configured("base_url")
            else (self.AUTHORIZE_URL)
        )

    def access_token_url(self) -> str:
        return self.root() + self.TOKEN_PATH if self.configured("base_url") else self.TOKEN_URL

    def revoke_token_url(self, token: str, uid: str) -> str:
        return self.root() + self.REVOKE_PATH if self.configured("base_url") else self.REVOKE_URL

    # Xero's revocation endpoint takes the refresh token in the body and the client as HTTP Basic
    # (https://developer.xero.com/documentation/guides/oauth2/auth-flow/#revoking-tokens).
    def revoke_token_params(self, token: str, uid: str) -> dict[str, Any]:
        return {"token": token}

    def revoke_token_credentials(self, token: str, uid: str) -> tuple[str, str] | None:
        return self.get_key_and_secret()

    def granted_companies(self, access_token: str) -> list[tuple[str, str]]:
        url = self.configured("connections_url") or (
            self.root() + "/connections" if self.configured("base_url") else self.CONNECTIONS_URL
        )
        listed = self.get_json(url, headers={"Authorization": f"Bearer {access_token}"})
        return [
            (str(c["tenantId"]), str(c.get("tenantName") or c["tenantId"]))
            for c in listed or []
            if isinstance(c, dict)
            and c.get("tenantId")
            and str(c.get("tenantType") or "ORGANISATION") == "ORGANISATION"
        ]


class StripeConnectOAuth2(InvsyncOAuth2):
    """Stripe Connect (https://docs.stripe.com/connect/oauth-reference), for a platform reading
    its connected accounts' invoices: authorization code at ``connect.stripe.com/oauth/authorize``
    (``scope`` read_write, Stripe's default; ``INVSYNC_OAUTH_STRIPE_SCOPES`` may say read_only),
    the code exchanged at ``/oauth/token`` with the platform's secret key as the client secret
    (sent as ``Authorization: Bearer``, as social-core's ``StripeOAuth2`` does), deauthorization at
    ``/oauth/deauthorize`` (``client_id`` and ``stripe_user_id``). Stripe's OAuth has no PKCE:
    this backend turns it off (``DEFAULT_USE_PKCE``); the ``state`` is still checked. The grant
    is for one connected account: ``stripe_user_id`` from the token answer is the connection's
    ``company_id``, sent by the connector as ``Stripe-Account`` on every call."""

    name = "invsync-stripe"
    vendor = "stripe"
    title = "Stripe"
    connector_keys = ("stripe",)
    BASE_URL = "https://connect.stripe.com"
    REVOKE_PATH = "/oauth/deauthorize"
    DEFAULT_SCOPE = ["read_write"]
    DEFAULT_USE_PKCE = False

    def auth_complete_params(self, state=None):
        return {"grant_type": "authorization_code", "code": self.data.get("code", "")}

    def auth_headers(self) -> dict[str, str]:
        _client_id, client_secret = self.get_key_and_secret()
        return {"Accept": "application/json", "Authorization": f"Bearer {client_secret}"}

    def auth_complete_credentials(self):
        return None  # the secret key travels in the Bearer header, not as Basic auth

    def exchange_code(self) -> dict[str, Any]:
        response = super().exchange_code()
        self._connected_account = str(response.get("stripe_user_id") or "")
        return response

    def granted_companies(self, access_token: str) -> list[tuple[str, str]]:
        account = getattr(self, "_connected_account", "")
        return [(account, account)] if account else []

    def revoke_token_params(self, token: str, uid: str) -> dict[str, Any]:
        client_id, _client_secret = self.get_key_and_secret()
        return {"client_id": client_id, "stripe_user_id": uid}

    def revoke_token_headers(self, token: str, uid: str) -> dict[str, str]:
        return self.auth_headers()

    def revoke_token(self, token: str, uid: str) -> Any:
        """Deauthorize the connected account ``uid`` (the connection's company)."""
        return super().revoke_token(token, uid) if uid else None


# The explicit registry: a vendor's backend is available when its class is named here.
BACKENDS: tuple[type[InvsyncOAuth2], ...] = (PennylaneOAuth2, XeroOAuth2, StripeConnectOAuth2)


_active: tuple[type[InvsyncOAuth2], ...] = BACKENDS


def backend_for(connector_key: str) -> type[InvsyncOAuth2] | None:
    """The OAuth2 backend of the connector ``connector_key`` (None: it has none)."""
    for cls in _active:
        if connector_key in cls.connector_keys:
            return cls
    return None


def backend_named(name: str) -> type[InvsyncOAuth2] | None:
    for cls in _active:
        if cls.name == name:
            return cls
    return None


@contextlib.contextmanager
def override(backends: Sequence[type[InvsyncOAuth2]]) -> Iterator[None]:
    """Use ``backends`` as the registry inside the block (tests add a backend for a double)."""
    global _active
    previous = _active
    _active = tuple(backends)
    try:
        yield
    finally:
        _active = previous
