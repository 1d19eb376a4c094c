"""The connector toolkit: what every HTTP connector (Tryton's JSON-RPC, REST vendors) shares.

- :class:`HttpSession`: one ``requests`` session with (connect, read) timeouts, the outbound policy
  (:mod:`connectors.outbound`, checked at connect time; redirects never followed), no retries of
  its own, and the rate-limit slot (:class:`~connectors.ratelimit.RateWindow`) taken around every
  request it sends, retries included. A transport failure comes out as a :class:`TransportFailure`
  whose ``kind`` is a key of the error table (``connection``, ``dropped``, ``timeout``,
  ``blocked``), said in our words only.
- :class:`ErrorTable`: the vendor's errors as data. Each :class:`ErrorRow` maps an HTTP status (or
  a class, ``"4xx"``), a vendor error code, a transport failure and optionally a message pattern
  to a catalogue :class:`~connectors.errors.ErrorCode`, a sentence and an :class:`Action`
  (``retry``, ``reauthenticate``, ``rate_limited`` with Retry-After, ``fail``); the table's
  ``default`` row takes the rest.
- :class:`HttpClient`: a REST vendor's calls on one session: the table chooses, the one retry
  policy (:mod:`connectors.retry`) retries (any call when nothing was applied, idempotent ones
  only when the outcome is unknown), a refused token is renewed once.
- :class:`Scrubber`: secrets (passwords, tokens, API keys, in clear or URL-encoded) and sensitive
  query values never reach a message or a log; :func:`display_url` shows an address without its
  user info and query string.
- Pagination helpers (:func:`paginate_cursor`, :func:`paginate_pages`, :func:`paginate_offset`):
  generators that fetch one page at a time, the next only once the previous one is consumed.

This module takes no ORM (import-linter's ``forbidden`` contract in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from connectors.errors import ConnectorError, ErrorCode, RateLimitPause, connection_message_key
from connectors.oauth import TokenSource
from connectors.outbound import OutboundAdapter, OutboundPolicy, refusal_in
from connectors.ratelimit import PAUSE_AFTER, RateWindow
from connectors.retry import Delivery, Retrier, RetryPolicy, Verdict

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0  # seconds to wait for an answer
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to wait for a connection
MESSAGE_LIMIT = 500  # characters of a server message kept in an error

# Transport failures, as keys of an error table's rows (``failure``).
CONNECTION = "connection"  # no connection made: nothing was sent
DROPPED = "dropped"  # closed after sending, no answer: the outcome is unknown
TIMEOUT = "timeout"  # no answer in time: the outcome is unknown
BLOCKED = "blocked"  # refused here by the outbound policy: nothing was sent


# -- the error table -------------------------------------------------------------------------


class Action(StrEnum):
    RETRY = "retry"  # a passing failure: sent again as its delivery allows
    REAUTHENTICATE = "reauthenticate"  # log in (or renew the token) once, then send again
    RATE_LIMITED = "rate_limited"  # refused unprocessed: wait Retry-After, then send again
    FAIL = "fail"  # a final answer: never sent again


_ACTION_DELIVERY = {
    Action.RETRY: Delivery.UNKNOWN,
    Action.REAUTHENTICATE: Delivery.FINAL,
    Action.RATE_LIMITED: Delivery.NOT_APPLIED,
    Action.FAIL: Delivery.FINAL,
}


@dataclass(frozen=True)
class ErrorRow:
    """One row of a vendor's error table.

    Matching: ``status`` (an HTTP status, or a class ``"3xx"``/``"4xx"``/``"5xx"``),
    ``vendor_code`` (the vendor's own error code or name), ``failure`` (a transport failure:
    :data:`CONNECTION`, :data:`DROPPED`, :data:`TIMEOUT`, :data:`BLOCKED`, or the vendor's own key
    such as ``"protocol"``) and ``pattern`` (searched in the vendor's message); a row matches
    when every criterion it sets matches. ``message`` is formatted with ``vendor``, ``url``,
    ``method``, ``status``, ``detail``, ``timeout`` and the client's own values. ``delivery`` is
    what the failure tells about the request (:class:`~connectors.retry.Delivery`); by default
    the action's: ``retry`` unknown (idempotent calls only), ``rate_limited`` not applied,
    the others final. A ``retry`` row whose request certainly was not applied says
    ``delivery=Delivery.NOT_APPLIED``."""

    code: ErrorCode
    message: str
    action: Action = Action.FAIL
    status: int | str | None = None
    vendor_code: str | None = None
    failure: str | None = None
    pattern: str | None = None
    delivery: Delivery | None = None

    def __post_init__(self) -> None:
        if self.delivery is None:
            object.__setattr__(self, "delivery", _ACTION_DELIVERY[self.action])

    @property
    def key(self) -> int | str | None:
        """What the row is known by (its status, vendor code or failure)."""
        return self.status if self.status is not None else self.vendor_code or self.failure

    @property
    def relogin(self) -> bool:
        return self.action is Action.REAUTHENTICATE

    def matches(
        self,
        status: int | None,
        vendor_code: str | None,
        failure: str | None,
        message: str,
    ) -> bool:
        if self.status is not None:
            if status is None:
                return False
            if isinstance(self.status, int):
                if self.status != status:
                    return False
            elif not (len(self.status) == 3 and str(status)[0] == self.status[0]):
                return False
        if self.vendor_code is not None and self.vendor_code != vendor_code:
            return False
        if self.failure is not None and self.failure != failure:
            return False
        if self.pattern is not None and not re.search(self.pattern, message or ""):
            return False
        return any(x is not None for x in (self.status, self.vendor_code, self.failure))


@dataclass(frozen=True)
class ErrorTable:
    """A vendor's error rows, tried in order (put the narrower rows first), and the ``default``
    row for whatever none matches."""

    rows: tuple[ErrorRow, ...]
    default: ErrorRow

    def match(
        self,
        *,
        status: int | None = None,
        vendor_code: str | None = None,
        failure: str | None = None,
        message: str = "",
    ) -> ErrorRow:
        for row in self.rows:
            if row.matches(status, vendor_code, failure, message):
                return row
        return self.default

    def __getitem__(self, key: int | str) -> ErrorRow:
        """The first row known by ``key`` (a status, vendor code or failure)."""
        for row in self.rows:
            if row.key == key:
                return row
        if key == self.default.key:
            return self.default
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(row.key == key for row in (*self.rows, self.default))


# -- secrets ---------------------------------------------------------------------------------

# Query parameters and headers whose values are secret whatever they hold.
SENSITIVE_NAMES = (
    "access_token", "refresh_token", "id_token", "token", "api_key", "apikey", "key", "secret",
    "client_secret", "password", "passwd", "signature", "sig", "code", "authorization", "auth",
    "session", "x-api-key",
)  # fmt: skip
_SENSITIVE_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(n) for n in SENSITIVE_NAMES) + r")=)[^&#\s\"']*"
)
_AUTH_VALUE = re.compile(r"(?i)\b(Bearer|Basic|Session|Token)\s+[A-Za-z0-9._~+/=-]{3,}")
_HEADER_LINE = re.compile(
    r"(?i)((?:authorization|x-api-key|cookie|set-cookie|proxy-authorization)\s*[:=]\s*)[^\r\n,}]+"
)


class Scrubber:
    """Takes secrets out of text: each secret given (at least three characters), in clear and
    URL-encoded, the values of sensitive query parameters, and authorization values."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:
            for form in (secret, quote(secret, safe=""), quote_plus(secret)):
                if form not in self._secrets:
                    self._secrets.append(form)
            self._secrets.sort(key=len, reverse=True)

    def discard(self, secret: str | None) -> None:
        if secret:
            for form in (secret, quote(secret, safe=""), quote_plus(secret)):
                if form in self._secrets:
                    self._secrets.remove(form)

    def scrub(self, text: Any) -> str:
        value = str(text or "")
        for secret in self._secrets:
            value = value.replace(secret, "***")
        value = _SENSITIVE_QUERY.sub(r"\1***", value)
        value = _HEADER_LINE.sub(r"\1***", value)
        return _AUTH_VALUE.sub(r"\1 ***", value)


def display_url(url: str) -> str:
    """``url`` as messages and logs show it: without ``user:password@`` nor the query string."""
    without_user = re.sub(r"(?<=://)[^/@]*@", "", url or "")
    return without_user.split("?", 1)[0].split("#", 1)[0]


def cut(text: Any, limit: int = MESSAGE_LIMIT, *, first_line: bool = False) -> str:
    """A server message made fit for people and logs: stripped, optionally its first line only,
    whitespace runs collapsed, at most ``limit`` characters."""
    value = str(text or "").strip()
    if first_line:
        value = value.splitlines()[0] if value else ""
    value = re.sub(r"\s+", " ", value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds (decimals tolerated) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


# -- the session -----------------------------------------------------------------------------


class TransportFailure(Exception):
    """A request that got no HTTP answer: ``kind`` is the error table's failure key, ``detail``
    the kind of failure in our words (never the peer's text nor the URL)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class HttpSession:
    """One ``requests`` session under the outbound policy, with (connect, read) timeouts and the
    rate-limit slot taken around every request. ``outbound`` None checks nothing (tests of a
    transport on loopback); the services always give one."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        rate_window: RateWindow | None = None,
        outbound: OutboundPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.rate_window = rate_window
        self.outbound = outbound
        self.session = session or requests.Session()
        # No silent retries below our own table; every connection under the outbound policy.
        adapter = OutboundAdapter(outbound) if outbound else HTTPAdapter(max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def send(
        self,
        method: str,
        url: str,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request in a slot of the rate window; redirects are never followed. Raises
        :class:`TransportFailure` when no answer came."""
        wait = timeout or self.timeout
        slot = self.rate_window.slot() if self.rate_window else contextlib.nullcontext()
        with slot:
            try:
                return self.session.request(
                    method,
                    url,
                    timeout=(self.connect_timeout, wait),
                    allow_redirects=False,
                    **kwargs,
                )
            except requests.ConnectTimeout:
                raise TransportFailure(CONNECTION, "connection timed out") from None
            except requests.Timeout:
                raise TransportFailure(TIMEOUT) from None
            except requests.RequestException as error:
                refused = refusal_in(error)
                if refused is not None:
                    raise TransportFailure(BLOCKED, refused.reason) from None
                kind = CONNECTION if not_connected(error) else DROPPED
                raise TransportFailure(kind, transport_detail(error)) from None

    def close(self) -> None:
        self.session.close()


def not_connected(error: requests.RequestException) -> bool:
    """Whether the connection was never made (refused, unresolvable, connect timeout): then
    nothing was sent. Otherwise it broke after the request may have gone out."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    # urllib3's NewConnectionError (refused, unresolvable) is a ConnectTimeoutError.
    return isinstance(reason, ConnectTimeoutError)


def transport_detail(error: requests.RequestException) -> str:
    """The kind of transport failure in words (connection refused, host name not found...),
    without the URL (it may hold credentials) or any text of the peer's."""
    chain: list[BaseException] = []
    item: Any = error
    while isinstance(item, BaseException) and item not in chain and len(chain) < 10:
        chain.append(item)
        following = getattr(item, "reason", None)
        if not isinstance(following, BaseException):
            following = item.__cause__ or item.__context__
        if not isinstance(following, BaseException) and item.args:
            following = item.args[0]
        item = following
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, NameResolutionError | socket.gaierror):
            return "host name not found"
        if isinstance(link, ConnectionResetError):
            return "connection reset"
        if isinstance(link, ssl.SSLError | requests.exceptions.SSLError):
            return "TLS handshake failed (certificate or protocol)"
        if isinstance(link, requests.ConnectTimeout | ConnectTimeoutError) and not isinstance(
            link, NewConnectionError
        ):
            return "connection timed out"
    return " / ".join(dict.fromkeys(type(link).__name__ for link in chain[:3]))


# -- a REST vendor's client ------------------------------------------------------------------


class HttpError(ConnectorError):
    """A vendor's failure, through its error table: the catalogue code, our sentence (scrubbed),
    and what the vendor said (``status``, ``vendor_code``, ``detail``, cut and scrubbed).
    ``unknown_outcome``: a write that may or may not have been applied and was not sent again:
    its caller looks the outcome up before writing again."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        vendor_code: str | None = None,
        detail: str = "",
        retry_after: float | None = None,
        delivery: Delivery = Delivery.FINAL,
        action: Action = Action.FAIL,
        key: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after, key=key, params=params)
        self.status = status
        self.vendor_code = vendor_code
        self.detail = detail
        self.delivery = delivery
        self.action = action
        self.unknown_outcome = False


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass
class HttpClient:
    """A REST vendor's client: ``base_url`` + endpoint paths, its :class:`ErrorTable`, and how to
    read the vendor's error code and message from an answer (``vendor_error``: response ->
    (code, message), both may be None). ``authenticate`` (optional) renews the credentials; it is
    called once when a row says ``reauthenticate``. ``headers`` are sent with every request
    (their values are secrets: scrubbed from every message).

    ``bearer`` (OAuth2, :class:`connectors.oauth.TokenSource`): every request carries
    ``Authorization: Bearer <access token>`` (refreshed by the source before it expires); a 401
    answer, or a row saying ``reauthenticate``, has the source refresh the refused token once
    and the call is sent again. A refused grant comes out as the source's ``OAUTH_GRANT_REVOKED``
    error."""

    base_url: str
    vendor: str
    table: ErrorTable
    http: HttpSession = field(default_factory=HttpSession)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    vendor_error: Callable[[requests.Response], tuple[str | None, str | None]] | None = None
    authenticate: Callable[[HttpClient], None] | None = None
    bearer: TokenSource | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None
    scrubber: Scrubber = field(default_factory=Scrubber, repr=False)
    # A rate-limited answer asking to wait longer than this pauses the flow (RateLimitPause).
    pause_after: float = PAUSE_AFTER

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/") + "/"
        self.retrier = Retrier(self.retry, sleep=self.sleep, rng=self.rng)

    def set_header(self, name: str, value: str) -> None:
        """Set a header sent with every request; its value is scrubbed from every message."""
        old = self.headers.get(name)
        if old:
            self.scrubber.discard(old)
        self.headers[name] = value
        self.scrubber.add(value)
        if " " in value:
            self.scrubber.add(value.split(" ", 1)[1])

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send ``method`` on ``path`` (relative to ``base_url``) and return a 2xx answer, else
        raise :class:`HttpError` as the table says. ``idempotent`` (default: the HTTP method's)
        says whether a failure of unknown outcome is sent again."""
        method = method.upper()
        url = self.base_url + path.lstrip("/")
        read = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        renewed = False

        def attempt() -> requests.Response:
            nonlocal renewed
            while True:
                token = self._bearer_token()
                try:
                    return self._once(method, url, timeout, kwargs)
                except HttpError as error:
                    refused = error.action is Action.REAUTHENTICATE or (
                        self.bearer is not None and error.status == 401
                    )
                    if refused and not renewed and (self.bearer or self.authenticate):
                        renewed = True
                        if self.bearer is not None and token is not None:
                            self.bearer.refresh(token)
                        elif self.authenticate:
                            self.authenticate(self)
                        continue
                    raise

        try:
            return self.retrier.call(
                attempt,
                retry_on=HttpError,
                classify=lambda e: Verdict(e.delivery, e.retry_after),  # type: ignore[attr-defined]
                idempotent=read,
                what=f"{self.vendor}: {method} {display_url(url)}",
            )
        except HttpError as error:
            if error.delivery is Delivery.UNKNOWN and not read:
                error.unknown_outcome = True
            raise

    def _bearer_token(self) -> str | None:
        """The bearer's current token, set as the Authorization header (None: no bearer)."""
        if self.bearer is None:
            return None
        token = self.bearer.access_token()
        # Every token ever sent stays scrubbed (a refused one is still a secret).
        self.scrubber.add(token)
        self.headers["Authorization"] = f"Bearer {token}"
        return token

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def _once(
        self, method: str, url: str, timeout: float | None, kwargs: Mapping[str, Any]
    ) -> requests.Response:
        headers = {**self.headers, **(kwargs.get("headers") or {})}
        extra = {k: v for k, v in kwargs.items() if k != "headers"}
        try:
            response = self.http.send(method, url, timeout=timeout, headers=headers, **extra)
        except TransportFailure as failure:
            row = self.table.match(failure=failure.kind)
            raise self.error(row, method, url, detail=failure.detail, timeout=timeout) from None
        if 200 <= response.status_code < 300:
            return response
        vendor_code, vendor_message = (None, None)
        if self.vendor_error is not None:
            try:
                vendor_code, vendor_message = self.vendor_error(response)
            except ValueError:
                vendor_code, vendor_message = None, None
        row = self.table.match(
            status=response.status_code, vendor_code=vendor_code, message=vendor_message or ""
        )
        wait = None
        if row.action in (Action.RATE_LIMITED, Action.RETRY):
            wait = retry_after(response.headers.get("Retry-After"))
        if row.action is Action.RATE_LIMITED and wait is not None and wait > self.pause_after:
            # A day's limit reached (or the like): not slept, not failed: the flow pauses.
            raise RateLimitPause(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait))
        raise self.error(
            row, method, url, status=response.status_code, vendor_code=vendor_code,
            detail=vendor_message or "", retry_after=wait, timeout=timeout,
        )  # fmt: skip

    def error(
        self,
        row: ErrorRow,
        method: str,
        url: str,
        *,
        status: int | None = None,
        vendor_code: str | None = None,
        detail: str = "",
        retry_after: float | None = None,
        timeout: float | None = None,
    ) -> HttpError:
        detail = self.scrubber.scrub(cut(detail))
        message = row.message.format(
            vendor=self.vendor,
            url=display_url(url),
            method=method,
            status=status,
            detail=detail or "no details",
            timeout=timeout or self.http.timeout,
        )
        # The common failures also as a message key, for the admin to show in the reader's
        # language (connectors.messages); the parameters hold nothing the vendor said.
        key = connection_message_key(row.code, failure=row.failure, status=status)
        params = {
            "vendor": self.vendor,
            "url": self.scrubber.scrub(display_url(url)),
            "status": status,
            "timeout": f"{timeout or self.http.timeout:g}",
        }
        return HttpError(
            row.code,
            self.scrubber.scrub(message),
            status=status,
            vendor_code=vendor_code,
            detail=detail,
            retry_after=retry_after,
            delivery=row.delivery or Delivery.FINAL,
            action=row.action,
            key=key,
            params=params if key else None,
        )

    def close(self) -> None:
        self.http.close()


# -- pagination ------------------------------------------------------------------------------


def paginate_cursor(
    fetch: Callable[[str | None], tuple[Sequence[T], str | None]],
) -> Iterator[T]:
    """Items of every page: ``fetch(cursor)`` returns a page and the next cursor (None: the
    last page); the first call gets None. A page is fetched once the previous one is consumed."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        items, cursor = fetch(cursor)
        yield from items
        if not cursor or cursor in seen:  # a cursor seen twice would loop for ever
            return
        seen.add(cursor)


def paginate_pages(
    fetch: Callable[[int], Sequence[T]], *, first: int = 1, page_size: int | None = None
) -> Iterator[T]:
    """Items of pages ``first``, ``first + 1``... until an empty page (or, with ``page_size``,
    a short one)."""
    page = first
    while True:
        items = fetch(page)
        yield from items
        if not items or (page_size is not None and len(items) < page_size):
            return
        page += 1


def paginate_offset(fetch: Callable[[int, int], Sequence[T]], *, limit: int) -> Iterator[T]:
    """Items of ``fetch(offset, limit)`` for offsets 0, ``limit``, ``2 * limit``... until a page
    shorter than ``limit``."""
    if limit < 1:
        raise ValueError("a page holds at least one item")
    offset = 0
    while True:
        items = fetch(offset, limit)
        yield from items
        if len(items) < limit:
            return
        offset += len(items)
