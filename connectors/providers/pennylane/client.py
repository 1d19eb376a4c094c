"""Pennylane's Company API v2 on the shared HTTP toolkit: the endpoints invsync calls, the error
table as data, the cursor pagination, the token (company API token or OAuth2) and the company
acted on.

- Base address: ``https://app.pennylane.com/api/external/v2`` (the ``api_url`` setting changes
  it for a sandbox or a test server).
- Authentication: ``Authorization: Bearer <token>``: a company API token (auth kind ``api_key``,
  one company per token) or an OAuth2 access token (auth kind ``oauth2``, through the
  connection's :class:`~connectors.oauth.TokenSource`: refreshed before expiry and after a 401).
  A firm token or an OAuth2 grant reaching several companies says which one it acts on with the
  ``X-Company-Id`` header (the ``company_id`` setting).
- Rate limit: 25 requests every 5 seconds per token (Pennylane's "Rate Limiting in API v2"); a 429
  carries ``retry-after`` (seconds), obeyed by the one retry policy; 5xx answers are retried per
  that policy (reads always, writes only when nothing was applied).
- Listings: cursor pagination (``cursor``, ``limit`` up to 100; the answer's ``has_more`` and
  ``next_cursor``), filters as a JSON array of ``{field, operator, value}`` in ``filter``.

This module takes no ORM and imports no django (connectors' layers, pyproject.toml).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    SettingField,
    http_url,
    transport_settings,
    whole_number,
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
    HttpSession,
    paginate_cursor,
)
from connectors.messages import N_
from connectors.outbound import OutboundPolicy
from connectors.ratelimit import PROCESS_WINDOWS, effective_rate_limit
from connectors.retry import Delivery, RetryPolicy

VENDOR = "Pennylane"
DEFAULT_API_URL = "https://app.pennylane.com/api/external/v2"
# Pennylane's published limit: 25 requests every 5 seconds, per token.
RATE_LIMIT = (25, 5.0)
PAGE_SIZE = 100  # the largest page Pennylane serves

# Pennylane's errors as data. Its answers carry a JSON body with ``error`` (and sometimes
# ``message`` or ``errors``); a refused entry's own message names what is wrong, and the narrower
# rows turn it into the catalogue code a person acts on.
ERROR_TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "{vendor} refused the token (HTTP 401): check the connection's API token, or "
            "reconnect it.",
            Action.REAUTHENTICATE,
            status=401,
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "{vendor} refused access (HTTP 403): the token lacks a scope this needs, or may "
            "not act on this company: {detail}",
            status=403,
        ),
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "{vendor} rate-limits {method} (HTTP 429): 25 requests every 5 seconds per token.",
            Action.RATE_LIMITED,
            status=429,
        ),
        ErrorRow(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "{vendor} needs to know which company to act on (the token reaches several): set "
            "the connection's company id. {detail}",
            status="4xx",
            pattern=r"(?i)x-company-id",
        ),
        ErrorRow(
            ErrorCode.AMOUNT_VALIDATION,
            "{vendor} refused the entry: {detail}",
            status="4xx",
            pattern=r"(?i)balanc|équilibr|debit.*credit|crédit.*débit",
        ),
        ErrorRow(
            ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
            "{vendor} refused the entry's account: {detail}",
            status="4xx",
            pattern=r"(?i)ledger.?account|compte",
        ),
        ErrorRow(
            ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
            "{vendor} refused the entry's journal: {detail}",
            status="4xx",
            pattern=r"(?i)journal",
        ),
        ErrorRow(
            ErrorCode.PDF,
            "{vendor} refused the invoice's file: {detail}",
            status="4xx",
            pattern=r"(?i)file|attachment|pdf",
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


def vendor_error(response: requests.Response) -> tuple[str | None, str | None]:
    """Pennylane's (code, message) from an error answer: ``error`` and ``message``, or the first
    of ``errors``; the text itself when it is not JSON (a 429 says "Rate limit exceeded...")."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or "")[:500] or None
    if not isinstance(body, Mapping):
        return None, str(body)[:500]
    code = body.get("code") or body.get("error_code")
    parts: list[str] = []
    for key in ("error", "error_description", "message", "details", "errors"):
        value = body.get(key)
        if isinstance(value, list | tuple):
            parts += [json.dumps(v) if isinstance(v, dict) else str(v) for v in value]
        elif isinstance(value, Mapping):
            parts += [f"{k}: {v}" for k, v in value.items()]
        elif value:
            parts.append(str(value))
    message = " — ".join(dict.fromkeys(parts)) or None
    return (str(code) if code else None), message


SETTINGS_FIELDS = (
    SettingField(
        "company_id",
        N_("Company id"),
        N_(
            "Pennylane's numeric id of the company to write to. Needed with a firm token or an "
            "OAuth2 grant reaching several companies (sent as X-Company-Id); empty with a company "
            "API token, which reaches one company."
        ),
        required=False,
        check=whole_number,
        addresses_credentials=False,
    ),
    SettingField(
        "api_url",
        N_("API address"),
        N_("Pennylane's API v2 address (default %(default)s)."),
        help_params={"default": DEFAULT_API_URL},
        required=False,
        default=DEFAULT_API_URL,
        check=http_url,
        addresses_credentials=True,
    ),
    *transport_settings(
        timeout=DEFAULT_TIMEOUT,
        rate_limit_help=N_(
            "At most this many requests per window of seconds (default 25/5, Pennylane's limit "
            "per token)."
        ),
    ),
)


class PennylaneClient:
    """Pennylane's endpoints on one :class:`~connectors.http.HttpClient`."""

    def __init__(self, http: HttpClient, *, company_id: str = "") -> None:
        self.http = http
        self.company_id = company_id
        if company_id:
            self.http.headers["X-Company-Id"] = company_id

    # -- plumbing ---------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.http.get_json(path, params=dict(params or {}))

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.http.request("POST", path, json=dict(body)).json()

    def put(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.http.request("PUT", path, json=dict(body)).json()

    def list(
        self,
        path: str,
        filters: Sequence[tuple[str, str, Any]] = (),
        *,
        sort: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a listing, page by page (the next page once the previous one is
        consumed). ``filters``: ``(field, operator, value)``."""
        params: dict[str, Any] = {"limit": limit}
        if filters:
            params["filter"] = json.dumps(
                [{"field": f, "operator": op, "value": v} for f, op, v in filters]
            )
        if sort:
            params["sort"] = sort

        def page(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
            body = self.get(path, {**params, **({"cursor": cursor} if cursor else {})})
            items = list(body.get("items") or [])
            following = body.get("next_cursor") if body.get("has_more") else None
            return items, following

        return paginate_cursor(page)

    def close(self) -> None:
        self.http.close()

    # -- endpoints --------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.get("me")

    def upload_file(self, filename: str, content: bytes, content_type: str) -> dict[str, Any]:
        response = self.http.request(
            "POST",
            "file_attachments",
            files={"file": (filename, content, content_type)},
            data={"filename": filename},
        )
        return response.json()


def client_from_config(config: ConnectionConfig) -> PennylaneClient:
    """A client for a stored connection. Settings: ``company_id`` (optional), ``api_url``,
    ``timeout``, ``rate_limit`` and the retry settings; credentials: ``api_key`` (auth kind
    api_key) or, with OAuth2, the token source handed in as ``config.tokens``. Raises
    InvsyncError(CONFIGURATION_INCOMPLETE) when something is missing or malformed."""
    settings = config.settings
    label = f" {config.label!r}" if config.label else ""
    api_url = (settings.get("api_url") or DEFAULT_API_URL).strip()
    if http_url(api_url):
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"The Pennylane connection{label} has an API address that is not an http(s) address.",
            field="api_url",
        )
    company_id = str(settings.get("company_id") or "").strip()
    try:
        timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
        policy = RetryPolicy.from_settings(settings)
        limit = effective_rate_limit(settings.get("rate_limit"), RATE_LIMIT)
    except ValueError as error:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"Pennylane connection{label}: {error}",
            field="settings",
        ) from None
    token_key: str
    bearer = None
    if config.auth_kind == AuthKind.OAUTH2:
        if config.tokens is None:
            raise InvsyncError(
                ErrorCode.AUTHENTICATION_FAILED,
                f"The Pennylane connection{label} is not connected: use its Connect button.",
                field="connection",
            )
        bearer = config.tokens
        token_key = f"oauth2\n{config.label}\n{company_id}"
        api_key = ""
    else:
        api_key = (config.credentials.get("api_key") or "").strip()
        if not api_key:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The Pennylane connection{label} needs its API token.",
                field="credentials",
            )
        token_key = hashlib.sha256(api_key.encode()).hexdigest()
    # The limit is per token: every client of one token shares one window (never in clear).
    windows = config.rate_windows or PROCESS_WINDOWS
    hold = 2 * (DEFAULT_CONNECT_TIMEOUT + timeout)
    window = windows.window(f"pennylane\n{api_url}\n{token_key}", limit, hold=hold)
    http = HttpClient(
        api_url,
        VENDOR,
        ERROR_TABLE,
        http=HttpSession(
            timeout=timeout, rate_window=window, outbound=config.outbound or OutboundPolicy()
        ),
        retry=policy,
        vendor_error=vendor_error,
        bearer=bearer,
    )
    if api_key:
        http.set_header("Authorization", f"Bearer {api_key}")
    return PennylaneClient(http, company_id=company_id)
