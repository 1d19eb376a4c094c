"""Stripe's REST API v1 on the shared HTTP toolkit (not the ``stripe`` SDK): the endpoints invsync
reads, the error table as data, Stripe's cursor pages walked oldest first, the API key (or
Stripe Connect) and the rate limit by key.

Why the toolkit and not the official SDK: the SDK brings its own HTTP client, its own retries
(``max_network_retries``) and its own exception classes. invsync needs one retry policy, one
shared rate-limit window, the outbound policy checked at connect time and secrets scrubbed from
every message, as every other connector has them (``connectors/http.py``); wrapping the SDK would
mean replacing its HTTP client and translating its errors, for the dozen read-only GETs invsync
sends. See ``docs/stripe.md``.

- Base address ``https://api.stripe.com`` (the ``api_url`` setting changes it for a test server);
  paths ``/v1/...``; the answers' shape is pinned with ``Stripe-Version`` (:data:`API_VERSION`).
- Authentication: ``Authorization: Bearer <key>``: a secret key (``sk_``) or a restricted key
  (``rk_``, read access to invoices, credit notes, customers, tax rates and events is enough);
  with Stripe Connect (auth kind ``oauth2``) the connection's token, and the connected account's
  id (``company_id`` setting, ``acct_...``) in ``Stripe-Account`` on every call.
- Rate limit: Stripe allows 100 operations per second in live mode and 25 in test mode; the mode
  is read from the key's prefix (``sk_test_``/``rk_test_``: 25). A 429 carries no Retry-After:
  the retry policy backs off exponentially with jitter, as Stripe asks.
- Lists: newest first, ``limit`` up to 100, cursors ``starting_after``/``ending_before``. To yield
  the oldest first without reading every page before the first item, :meth:`StripeClient.ascending`
  splits the ``created`` range in two until a window fits in one page (in halves, or eight
  spans of its newest page back when that page spans little of it); the newest page of a range
  is reused for its newer part, so only the older parts cost a call.

This module takes no ORM and imports no django (connectors' layers, pyproject.toml).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    SettingField,
    http_url,
    transport_settings,
)
from connectors.errors import ErrorCode, InvsyncError
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
    TransportFailure,
)
from connectors.messages import N_
from connectors.outbound import OutboundPolicy
from connectors.ratelimit import PROCESS_WINDOWS, effective_rate_limit
from connectors.retry import Delivery, RetryPolicy, Verdict

VENDOR = "Stripe"
DEFAULT_API_URL = "https://api.stripe.com"
# The shape of the objects read (invoice line ``taxes``, ``total_taxes``, ``pricing``).
API_VERSION = "2025-03-31.basil"
PAGE_SIZE = 100  # the largest page Stripe serves
LIVE_RATE_LIMIT = (100, 1.0)  # operations per second, live mode
TEST_RATE_LIMIT = (25, 1.0)  # test mode
MAX_REDIRECTS = 3  # a PDF link (pay.stripe.com) redirects to the file (files.stripe.com)

ERROR_TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "{vendor} refused the API key (HTTP 401: expired, revoked or mistyped): enter a "
            "valid secret or restricted key, or reconnect the account.",
            status=401,
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "{vendor} refused access to the connected account (HTTP {status}): it may have "
            "disconnected the platform. {detail}",
            status="4xx",
            vendor_code="account_invalid",
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "{vendor} refused access (HTTP 403): the restricted key lacks a read permission "
            "this needs (invoices, credit notes, customers, tax rates, events). {detail}",
            status=403,
        ),
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "{vendor} rate-limits {method} (HTTP 429): 100 operations per second in live mode, "
            "25 in test mode.",
            Action.RATE_LIMITED,
            status=429,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} could not lock the object (HTTP 409); it will be tried again.",
            Action.RETRY,
            status=409,
            vendor_code="lock_timeout",
        ),
        ErrorRow(
            ErrorCode.INVALID_SOURCE_DATA,
            "{vendor} does not hold it (HTTP 404): {detail}",
            status=404,
        ),
        ErrorRow(
            ErrorCode.UNEXPECTED,
            "{vendor} refused the request (HTTP {status}): {detail}",
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

# The invoice's PDF: a link Stripe serves without the API key (pay.stripe.com, files.stripe.com).
FILE_TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.PDF,
            "{vendor} no longer serves the document's PDF (HTTP {status}).",
            status="4xx",
        ),
        *(row for row in ERROR_TABLE.rows if row.failure is not None or row.status in (429, "5xx")),
    ),
    default=ErrorRow(ErrorCode.PDF, "{vendor} answered HTTP {status} for the PDF."),
)


def vendor_error(response: requests.Response) -> tuple[str | None, str | None]:
    """Stripe's ``{"error": {"type", "code", "message", "param"}}`` as (code, message)."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or "")[:500] or None
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, None
    code = error.get("code") or error.get("type")
    message = str(error.get("message") or "")
    if error.get("param"):
        message = f"{message} (parameter {error['param']})"
    return (str(code) if code else None), message or None


SETTINGS_FIELDS = (
    SettingField(
        "company_id",
        N_("Connected account id"),
        N_(
            "Stripe Connect: the id of the connected account to read (acct_…), sent as "
            "Stripe-Account. Empty with an API key of the account itself."
        ),
        required=False,
        addresses_credentials=True,
    ),
    SettingField(
        "api_url",
        N_("API address"),
        N_("Stripe's API address (default %(default)s)."),
        help_params={"default": DEFAULT_API_URL},
        required=False,
        default=DEFAULT_API_URL,
        check=http_url,
        addresses_credentials=True,
    ),
    *transport_settings(
        timeout=DEFAULT_TIMEOUT,
        rate_limit_help=N_(
            "At most this many requests per window of seconds (default: 100/1 with a live key, "
            "25/1 with a test key or through Stripe Connect)."
        ),
        retry_after=False,  # Stripe sends no Retry-After
    ),
)


def key_rate_limit(api_key: str) -> tuple[int, float]:
    """Stripe's limit for a key: 25 operations/s for a test-mode key, 100 for a live one."""
    return TEST_RATE_LIMIT if "_test_" in api_key[:8] else LIVE_RATE_LIMIT


class StripeClient:
    """Stripe's endpoints on one :class:`~connectors.http.HttpClient` (the API) and a second one
    for the PDF links (no key sent there)."""

    def __init__(self, http: HttpClient, files: HttpClient, *, account: str = "") -> None:
        self.http = http
        self.files = files
        self.account = account
        self.http.headers["Stripe-Version"] = API_VERSION
        if account:
            self.http.headers["Stripe-Account"] = account

    def close(self) -> None:
        self.http.close()
        self.files.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = self.http.get_json(path, params=list(_query(params or {})))
        if not isinstance(body, dict):
            raise InvsyncError(ErrorCode.UNEXPECTED, f"Stripe answered {path} with no object.")
        return body

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, first: dict | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list, newest first, page by page (``starting_after``)."""
        query = {"limit": PAGE_SIZE, **(params or {})}
        page = first if first is not None else self.get(path, query)
        while True:
            items = list(page.get("data") or [])
            yield from items
            if not page.get("has_more") or not items:
                return
            page = self.get(path, {**query, "starting_after": items[-1]["id"]})

    def ascending(
        self,
        path: str,
        params: Mapping[str, Any],
        lo: int,
        hi: int,
        *,
        page_size: int = PAGE_SIZE,
        reads: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The items of a list created in ``[lo, hi)`` (Unix seconds), oldest first. Stripe
        lists newest first: a range whose first page is not the whole range is halved, its
        older half listed first. The newest page of a range, when all its items fall in the
        newer half, is that half's first page; when some fall in the older half, it holds the
        whole newer half. Items of one second are read in full (they cannot be split)."""

        def page(start: int, end: int) -> dict[str, Any]:
            if reads is not None:
                reads()
            query = {**params, "limit": page_size, "created[gte]": start, "created[lt]": end}
            return self.get(path, query)

        def window(start: int, end: int, first: dict | None) -> Iterator[dict[str, Any]]:
            if start >= end:
                return
            newest = first if first is not None else page(start, end)
            items = list(newest.get("data") or [])
            if not newest.get("has_more"):
                yield from _oldest_first(items)
                return
            if end - start <= 1:
                query = {**params, "limit": page_size, "created[gte]": start, "created[lt]": end}
                yield from _oldest_first(list(self.pages(path, query, first=newest)))
                return
            # Halved, or nearer the newest page when it spans little of the range (an
            # account's invoices are recent next to Stripe's start): eight of its spans back.
            oldest = min(int(item.get("created") or 0) for item in items) if items else start
            middle = max((start + end) // 2, end - 8 * max(1, end - oldest))
            middle = min(max(middle, start + 1), end - 1)
            newer = [item for item in items if int(item.get("created") or 0) >= middle]
            yield from window(start, middle, None)
            if len(newer) < len(items):
                yield from _oldest_first(newer)  # the page went below the middle: all of it
            else:
                yield from window(middle, end, newest)

        return window(lo, hi, None)

    def download(self, url: str) -> requests.Response:
        """GET a PDF link (redirects followed, at most :data:`MAX_REDIRECTS`), through the one
        retry policy; no API key is sent there."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self.files.retrier.call(
                lambda current=url: self._file_once(current),
                retry_on=HttpError,
                classify=lambda e: Verdict(e.delivery, e.retry_after),  # type: ignore[attr-defined]
                idempotent=True,
                what=f"{VENDOR}: GET PDF",
            )
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("Location") or ""
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    break
                continue
            return response
        raise HttpError(ErrorCode.PDF, f"{VENDOR}'s PDF link redirects too often or nowhere.")

    def _file_once(self, url: str) -> requests.Response:
        try:
            response = self.files.http.send("GET", url)
        except TransportFailure as failure:
            row = self.files.table.match(failure=failure.kind)
            raise self.files.error(row, "GET", url, detail=failure.detail) from None
        if response.status_code < 400:
            return response
        row = self.files.table.match(status=response.status_code)
        raise self.files.error(row, "GET", url, status=response.status_code)


def _oldest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A page is newest first; reversed, equal seconds keep Stripe's own order, reversed.
    return sorted(reversed(items), key=lambda item: int(item.get("created") or 0))


def _query(params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Stripe's form-style query: lists as ``name[]``, booleans in lower case."""
    for name, value in params.items():
        if isinstance(value, list | tuple):
            for item in value:
                yield f"{name}[]", str(item)
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif value is not None:
            yield name, str(value)


def client_from_config(config: ConnectionConfig) -> StripeClient:
    """A client for a stored connection. Settings: ``company_id`` (Stripe Connect), ``api_url``,
    ``timeout``, ``rate_limit`` and the retry settings; credentials: ``api_key`` or, with
    OAuth2, the token source handed in as ``config.tokens``. Raises
    InvsyncError(CONFIGURATION_INCOMPLETE) when something is missing or malformed."""
    settings = config.settings
    label = f" {config.label!r}" if config.label else ""
    api_url = (settings.get("api_url") or DEFAULT_API_URL).strip()
    if http_url(api_url):
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"The Stripe connection{label} has an API address that is not an http(s) address.",
            field="api_url",
        )
    account = str(settings.get("company_id") or "").strip()
    bearer = None
    api_key = ""
    if config.auth_kind == AuthKind.OAUTH2:
        if config.tokens is None:
            raise InvsyncError(
                ErrorCode.AUTHENTICATION_FAILED,
                f"The Stripe connection{label} is not connected: use its Connect button.",
                field="connection",
            )
        bearer = config.tokens
        token_key = f"oauth2\n{config.label}\n{account}"
        default_limit = TEST_RATE_LIMIT  # the token's mode is not known offline: the lower
    else:
        api_key = (config.credentials.get("api_key") or "").strip()
        if not api_key:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The Stripe connection{label} needs its secret or restricted API key.",
                field="credentials",
            )
        token_key = hashlib.sha256(api_key.encode()).hexdigest()
        default_limit = key_rate_limit(api_key)
    try:
        timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
        policy = RetryPolicy.from_settings(settings)
        limit = effective_rate_limit(settings.get("rate_limit"), default_limit)
    except ValueError as error:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"Stripe connection{label}: {error}",
            field="settings",
        ) from None
    outbound = config.outbound or OutboundPolicy()
    # Stripe counts operations per account: every client of one key shares one window.
    windows = config.rate_windows or PROCESS_WINDOWS
    hold = 2 * (DEFAULT_CONNECT_TIMEOUT + timeout)
    window = windows.window(f"stripe\n{api_url}\n{token_key}\n{account}", limit, hold=hold)
    http = HttpClient(
        api_url,
        VENDOR,
        ERROR_TABLE,
        http=HttpSession(timeout=timeout, rate_window=window, outbound=outbound),
        retry=policy,
        vendor_error=vendor_error,
        bearer=bearer,
    )
    if api_key:
        http.set_header("Authorization", f"Bearer {api_key}")
    files = HttpClient(
        api_url,
        VENDOR,
        FILE_TABLE,
        http=HttpSession(timeout=timeout, outbound=outbound),
        retry=policy,
    )
    files.scrubber = http.scrubber  # the key never shows, whichever client speaks
    return StripeClient(http, files, account=account)
