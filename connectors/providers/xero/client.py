"""Xero's Accounting API on the shared HTTP toolkit: the endpoints invsync calls, the error table
as data, the tenant header, the rate limits.

- Base address: ``https://api.xero.com/api.xro/2.0`` (the ``api_url`` setting changes it for a
  test server); the grant's tenants come from ``https://api.xero.com/connections`` (the
  ``connections_url`` setting; by default the API address's host + ``/connections``).
- Authentication: OAuth2 only (``Authorization: Bearer``, through the connection's
  :class:`~connectors.oauth.TokenSource`: refreshed before expiry and after a 401; Xero rotates
  refresh tokens). Every Accounting API call names its organisation with ``xero-tenant-id``.
- Rate limits (per tenant): 60 calls a minute, 5 at once, 5,000 a day; 10,000 a minute per app.
  A 429 carries ``Retry-After`` (seconds) and ``X-Rate-Limit-Problem`` (``minute``,
  ``concurrent``, ``day``, ``appminute``): a minute or concurrency limit is waited out by the
  one retry policy; the daily limit stops the run (see :func:`vendor_error`).
- Writes: up to 50 documents per call, ``summarizeErrors=false`` (each refused document comes
  back with its own ``ValidationErrors``, the others are written), and an ``Idempotency-Key``
  header (≤ 128 characters) so a call sent again after a lost answer is applied once.

This module takes no ORM and imports no django (connectors' layers, pyproject.toml).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    SettingField,
    http_url,
    transport_settings,
)
from connectors.errors import ErrorCode, InvsyncError, RateLimitPause
from connectors.http import (
    BLOCKED,
    CONNECTION,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    DROPPED,
    TIMEOUT,
    Action,
    ErrorRow,
    ErrorTable,
    HttpClient,
    HttpError,
    HttpSession,
    paginate_pages,
)
from connectors.messages import N_
from connectors.outbound import OutboundPolicy
from connectors.providers.xero.documents import jsonable
from connectors.ratelimit import APP, PROCESS_WINDOWS, Limits, Window, effective_limits
from connectors.retry import Delivery, RetryPolicy

VENDOR = "Xero"
DEFAULT_API_URL = "https://api.xero.com/api.xro/2.0"
DEFAULT_CONNECTIONS_URL = "https://api.xero.com/connections"
TENANT_HEADER = "xero-tenant-id"
# Xero's published limits per tenant (https://developer.xero.com/documentation/guides/
# oauth2/limits/): 60 calls in any minute, 5 at once, 5,000 a day.
RATE_LIMIT = (60, 60.0)
DAILY_LIMIT = 5_000
CONCURRENT_LIMIT = 5
APP_MINUTE_LIMIT = 10_000
RATE_LIMITS = Limits(
    windows=(
        Window(RATE_LIMIT[0], RATE_LIMIT[1]),  # 60 a minute, per organisation
        Window(DAILY_LIMIT, 86_400),  # 5,000 a day, per organisation
        Window(APP_MINUTE_LIMIT, 60, per=APP),  # 10,000 a minute over every organisation
    ),
    concurrency=CONCURRENT_LIMIT,  # 5 in flight at once, per organisation
)
BATCH_SIZE = 50  # documents per write call (Xero's advice: up to 50 per request)
PAGE_SIZE = 100  # contacts per page (Xero pages contacts by 100)
IDEMPOTENCY_KEY_LIMIT = 128
DAY = "day"  # X-Rate-Limit-Problem when the daily limit is spent

# Xero's errors as data. A refused document's own ValidationErrors message names what is wrong;
# the narrower rows turn it into the catalogue code a person acts on (also used for the
# per-document errors of a batch written with summarizeErrors=false: :func:`document_error`).
ERROR_TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "{vendor} refused the token (HTTP 401): reconnect the connection.",
            Action.REAUTHENTICATE,
            status=401,
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "{vendor} refused access (HTTP 403): the grant lacks a scope this needs, or no "
            "longer reaches this organisation: {detail}",
            status=403,
        ),
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "{vendor}'s daily limit for this organisation is spent (5,000 calls a day): the "
            "flow goes on once it resets.",
            Action.RATE_LIMITED,  # Retry-After read; hours away: not waited for (a pause)
            status=429,
            vendor_code=DAY,
        ),
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "{vendor} rate-limits {method} (HTTP 429: 60 calls a minute and 5 at once per "
            "organisation).",
            Action.RATE_LIMITED,
            status=429,
        ),
        ErrorRow(
            ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
            "{vendor} refused the document's account: {detail}",
            status="4xx",
            pattern=r"(?i)account.*(archived|not active|inactive)",
        ),
        ErrorRow(
            ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
            "{vendor} refused the document's account: {detail}",
            status="4xx",
            pattern=r"(?i)account code|account.*(not valid|does not exist|cannot be used)",
        ),
        ErrorRow(
            ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
            "{vendor} refused the document's tax type: {detail}",
            status="4xx",
            pattern=r"(?i)tax ?type|tax rate",
        ),
        ErrorRow(
            ErrorCode.DUPLICATE_IN_TARGET,
            "{vendor} already holds this number: {detail}",
            status="4xx",
            pattern=r"(?i)must be unique|already (exists|been used)",
        ),
        ErrorRow(
            ErrorCode.PARTNER_NOT_FOUND,
            "{vendor} refused the document's contact: {detail}",
            status="4xx",
            pattern=r"(?i)contact",
        ),
        ErrorRow(
            ErrorCode.AMOUNT_VALIDATION,
            "{vendor} refused the document's amounts: {detail}",
            status="4xx",
            pattern=r"(?i)total|amount|rounding|currency rate",
        ),
        ErrorRow(
            ErrorCode.PDF,
            "{vendor} refused the invoice's file: {detail}",
            status="4xx",
            pattern=r"(?i)attachment|file",
        ),
        ErrorRow(
            ErrorCode.TARGET_REJECTED,
            "{vendor} refused it (HTTP {status}): {detail}",
            status="4xx",
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} failed (HTTP {status}); it will be tried again.",
            Action.RETRY,
            status="5xx",
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} cannot be reached: {detail}.",
            Action.RETRY,
            failure=CONNECTION,
            delivery=Delivery.NOT_APPLIED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} did not answer in {timeout} s.",
            Action.RETRY,
            failure=TIMEOUT,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE, "{vendor} dropped the connection.", Action.RETRY, failure=DROPPED
        ),
        ErrorRow(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "{vendor}'s address is not allowed here: {detail}.",
            failure=BLOCKED,
        ),
    ),
    default=ErrorRow(ErrorCode.UNEXPECTED, "{vendor} answered HTTP {status}: {detail}"),
)


def validation_messages(item: Mapping[str, Any]) -> list[str]:
    """The messages of a Xero object's ``ValidationErrors``."""
    errors = item.get("ValidationErrors") or []
    return [str(e.get("Message") or "") for e in errors if isinstance(e, Mapping)]


def vendor_error(response: requests.Response) -> tuple[str | None, str | None]:
    """Xero's (code, message) from an error answer. The code of a 429 is its
    ``X-Rate-Limit-Problem`` (``day``: the daily limit); otherwise the body's ``Type``
    (``ValidationException``...). The message: the validation messages of the refused elements,
    else ``Message``/``Detail``/``Title``, else the text."""
    if response.status_code == 429:
        problem = (response.headers.get("X-Rate-Limit-Problem") or "").strip().lower()
        return problem or None, f"rate limit: {problem or 'unknown'}"
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or "")[:500] or None
    if not isinstance(body, Mapping):
        return None, str(body)[:500]
    messages: list[str] = []
    for element in body.get("Elements") or []:
        if isinstance(element, Mapping):
            messages += validation_messages(element)
    for key in ("Message", "Detail", "Title", "error"):
        if body.get(key) and not messages:
            messages.append(str(body[key]))
    code = body.get("Type") or body.get("ErrorNumber")
    return (str(code) if code else None), " — ".join(dict.fromkeys(messages)) or None


def document_error(messages: Sequence[str], what: str) -> InvsyncError:
    """The catalogue error for one document Xero refused in a batch (its validation messages),
    through the error table's 4xx rows."""
    detail = "; ".join(m for m in messages if m) or "no details"
    row = ERROR_TABLE.match(status=400, message=detail)
    return InvsyncError(row.code, f"Xero refused {what}: {detail}")


def idempotency_key(kind: str, keys: Sequence[str]) -> str:
    """A key derived from what a call writes (the batch's external ids, or a document and file):
    the same batch sent again carries the same key, another batch another one."""
    digest = hashlib.sha256("\n".join([kind, *keys]).encode("utf-8")).hexdigest()
    return f"invsync-{kind}-{digest}"[:IDEMPOTENCY_KEY_LIMIT]


SETTINGS_FIELDS = (
    SettingField(
        "company_id",
        N_("Organisation (tenant id)"),
        N_(
            "The Xero organisation the connection acts on, picked when connecting (sent as "
            "xero-tenant-id)."
        ),
        required=False,
        addresses_credentials=False,
    ),
    SettingField(
        "api_url",
        N_("API address"),
        N_("Xero's Accounting API address (default %(default)s)."),
        help_params={"default": DEFAULT_API_URL},
        required=False,
        default=DEFAULT_API_URL,
        check=http_url,
        addresses_credentials=True,
    ),
    SettingField(
        "connections_url",
        N_("Connections address"),
        N_("Where the grant's organisations are listed (default %(default)s)."),
        help_params={"default": DEFAULT_CONNECTIONS_URL},
        required=False,
        check=http_url,
        addresses_credentials=True,
    ),
    *transport_settings(
        timeout=DEFAULT_TIMEOUT,
        rate_limit_help=N_(
            "At most this many requests per window of seconds (default 60/60, Xero's limit per "
            "organisation; its 5 at once and 5,000 a day always apply)."
        ),
    ),
)


class XeroClient:
    """Xero's endpoints for one organisation (tenant) on one :class:`HttpClient`."""

    def __init__(self, http: HttpClient, tenant_id: str, *, connections: HttpClient) -> None:
        self.http = http
        self.tenant_id = tenant_id
        self.connections_http = connections
        if tenant_id:
            self.http.headers[TENANT_HEADER] = tenant_id
        self.calls = 0  # requests sent through this client (figures)

    def close(self) -> None:
        self.http.close()
        self.connections_http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        try:
            return self.http.request(method, path, **kwargs)
        except HttpError as error:
            if error.status == 429 and error.vendor_code == DAY:
                raise daily_limit_error(error) from None
            raise

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._request("GET", path, params=dict(params or {})).json()

    # -- the grant -----------------------------------------------------------------------------

    def connections(self) -> list[dict[str, Any]]:
        """The organisations (tenants) the grant reaches: ``GET /connections``."""
        self.calls += 1
        answer = self.connections_http.request("GET", "").json()
        return [c for c in answer or [] if isinstance(c, Mapping)]

    # -- settings ------------------------------------------------------------------------------

    def organisation(self) -> dict[str, Any]:
        rows = self.get("Organisation").get("Organisations") or []
        return dict(rows[0]) if rows else {}

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.get("Accounts").get("Accounts") or [])

    def tax_rates(self) -> list[dict[str, Any]]:
        return list(self.get("TaxRates").get("TaxRates") or [])

    def tracking_categories(self) -> list[dict[str, Any]]:
        return list(self.get("TrackingCategories").get("TrackingCategories") or [])

    # -- contacts ------------------------------------------------------------------------------

    def contacts(self) -> Iterator[dict[str, Any]]:
        """Every active contact, page by page."""

        def page(number: int) -> list[dict[str, Any]]:
            body = self.get(
                "Contacts",
                {"page": number, "pageSize": PAGE_SIZE, "where": 'ContactStatus=="ACTIVE"'},
            )
            return list(body.get("Contacts") or [])

        return paginate_pages(page, page_size=PAGE_SIZE)

    def create_contact(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        # Keyed by what it creates: sent again after a lost answer, it creates nothing more.
        key = idempotency_key("contact", [str(v) for v in jsonable(contact).values()])
        body = self._request(
            "PUT", "Contacts", json={"Contacts": [jsonable(contact)]},
            params={"summarizeErrors": "false"}, headers={"Idempotency-Key": key},
            idempotent=True,
        ).json()  # fmt: skip
        return dict((body.get("Contacts") or [{}])[0])

    # -- documents -----------------------------------------------------------------------------

    def find_documents(self, path: str, where: str) -> list[dict[str, Any]]:
        """The documents (``Invoices`` or ``CreditNotes``) a ``where`` filter selects, every page
        (100 a page)."""

        def page(number: int) -> list[dict[str, Any]]:
            body = self.get(path, {"where": where, "page": number, "pageSize": PAGE_SIZE})
            return list(body.get(path) or [])

        return list(paginate_pages(page, page_size=PAGE_SIZE))

    def create_documents(
        self, path: str, documents: Sequence[Mapping[str, Any]], key: str
    ) -> list[dict[str, Any]]:
        """Create up to 50 documents in one call (``PUT``, create only), each refused one alone:
        the answer lists every document, the refused ones with ``HasErrors`` and their
        ``ValidationErrors``."""
        body = self._request(
            "PUT", path, json={path: [jsonable(d) for d in documents]},
            params={"summarizeErrors": "false"}, headers={"Idempotency-Key": key},
            idempotent=True,  # the Idempotency-Key makes sending it again safe
        ).json()  # fmt: skip
        return list(body.get(path) or [])

    def approve(self, path: str, document_id: str, id_field: str) -> dict[str, Any]:
        """Approve a draft document (``POST /{Invoices|CreditNotes}/{id}``, Status AUTHORISED)."""
        body = self._request(
            "POST", f"{path}/{document_id}",
            json={path: [{id_field: document_id, "Status": "AUTHORISED"}]},
            headers={"Idempotency-Key": idempotency_key("approve", [path, document_id])},
            idempotent=True,
        ).json()  # fmt: skip
        return dict((body.get(path) or [{}])[0])

    def attach(
        self, path: str, document_id: str, filename: str, content: bytes, content_type: str
    ) -> dict[str, Any]:
        """Attach a file to a document: ``PUT /{Invoices|CreditNotes}/{id}/Attachments/{name}``
        with the file as the body."""
        key = idempotency_key("attach", [path, document_id, filename])
        body = self._request(
            "PUT", f"{path}/{document_id}/Attachments/{quote(filename, safe='')}",
            data=content,
            # The spec declares the body application/octet-stream (the name says the type).
            headers={"Content-Type": "application/octet-stream", "Idempotency-Key": key},
            idempotent=True,
        ).json()  # fmt: skip
        return dict((body.get("Attachments") or [{}])[0])


def daily_limit_error(error: HttpError) -> RateLimitPause:
    """Xero's daily limit is spent: the run stops (nothing is failed) and the flow pauses until
    it resets (``Retry-After`` says when; an hour when it does not)."""
    wait = error.retry_after if error.retry_after is not None else 3600.0
    resume_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
    return RateLimitPause(
        resume_at,
        f"Xero's daily limit for this organisation is spent (5,000 calls a day): the flow goes "
        f"on once it resets, at {resume_at:%Y-%m-%d %H:%M} UTC.",
    )


def client_from_config(config: ConnectionConfig, tenant_id: str | None = None) -> XeroClient:
    """A client for a stored connection acting on ``tenant_id`` (default: the connection's
    ``company_id`` setting). Raises InvsyncError when something is missing or malformed."""
    settings = config.settings
    label = f" {config.label!r}" if config.label else ""
    api_url = (settings.get("api_url") or DEFAULT_API_URL).strip()
    connections_url = (settings.get("connections_url") or "").strip()
    if not connections_url:
        parts = urlsplit(api_url)
        connections_url = f"{parts.scheme}://{parts.netloc}/connections"
    for name, url in (("api_url", api_url), ("connections_url", connections_url)):
        if http_url(url):
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The Xero connection{label} has an address that is not an http(s) address.",
                field=name,
            )
    if config.auth_kind != AuthKind.OAUTH2 or config.tokens is None:
        raise InvsyncError(
            ErrorCode.AUTHENTICATION_FAILED,
            f"The Xero connection{label} is not connected: use its Connect button.",
            field="connection",
        )
    tenant = str(tenant_id or settings.get("company_id") or "").strip()
    try:
        timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
        policy = RetryPolicy.from_settings(settings)
        limits = effective_limits(settings.get("rate_limit"), RATE_LIMITS)
    except ValueError as error:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"Xero connection{label}: {error}",
            field="settings",
        ) from None
    # Xero's limits are per organisation (and per app for the minute over every organisation):
    # every client of one tenant shares its windows and its cap of 5 at once, in every process.
    windows = config.rate_windows or PROCESS_WINDOWS
    hold = 2 * (DEFAULT_CONNECT_TIMEOUT + timeout)
    window = windows.limiter(
        f"xero\n{api_url}\n{tenant}", limits, app_key=f"xero\n{api_url}", hold=hold
    )
    outbound = config.outbound or OutboundPolicy()

    def http(base: str, rate_window: Any = None) -> HttpClient:
        return HttpClient(
            base,
            VENDOR,
            ERROR_TABLE,
            http=HttpSession(timeout=timeout, rate_window=rate_window, outbound=outbound),
            retry=policy,
            vendor_error=vendor_error,
            bearer=config.tokens,
        )

    connections = http(connections_url)
    connections.base_url = connections_url  # the listing is the address itself
    return XeroClient(http(api_url, window), tenant, connections=connections)
