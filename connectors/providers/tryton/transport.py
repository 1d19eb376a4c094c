"""Tryton's JSON-RPC on the wire: typed values, the error table and the transport failures.

Encode and decode Tryton's typed values; :data:`ERROR_TABLE`, the one place where an HTTP status,
a transport failure or a Tryton error becomes a :class:`ConnectorError` with a catalogue code and
what it tells about the request (its :class:`~connectors.retry.Delivery`); the errors
(:class:`TrytonError`, :class:`TrytonWarning`) and the helpers that classify a transport failure
without repeating what the peer said. The session that uses them is
:class:`~connectors.providers.tryton.client.TrytonClient`.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from connectors.errors import ConnectorError, ErrorCode
from connectors.retry import Delivery, Verdict

MESSAGE_LIMIT = 500  # characters of a server message kept in an error (tracebacks reach 30 KB)


# -- Typed values ----------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """``value`` as plain JSON data, Tryton's typed values spelled as its server reads them.

    Aware datetimes are converted to UTC and sent naive: Tryton stores and compares UTC."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"__class__": "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(item) for item in value]
    return value


def decode_value(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"], obj["month"], obj["day"], obj.get("hour", 0), obj.get("minute", 0),
            obj.get("second", 0), obj.get("microsecond", 0),
        )  # fmt: skip
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "time":
        return dt.time(
            obj.get("hour", 0), obj.get("minute", 0), obj.get("second", 0),
            obj.get("microsecond", 0),
        )  # fmt: skip
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """Parse a Tryton answer; typed values come back as Python values (datetimes naive UTC)."""
    return json.loads(text, object_hook=decode_value)


# -- The error table -------------------------------------------------------------------------


_NOT_APPLIED, _UNKNOWN = Delivery.NOT_APPLIED, Delivery.UNKNOWN


@dataclass(frozen=True)
class Rule:
    code: ErrorCode
    message: str  # formatted with url, database, method, status, detail, timeout
    # What the failure tells about the request: retried for any call (NOT_APPLIED), for reads
    # only (UNKNOWN), never (FINAL).
    delivery: Delivery = Delivery.FINAL
    relogin: bool = False  # an expired session: log in again once, then send the call again


# Keys: HTTP statuses, Tryton error names (the first item of a JSON-RPC "error"), transport
# failures ("connection": none made, nothing sent; "dropped": closed after sending, no answer;
# "timeout": no answer in time; "blocked": refused by the outbound policy, nothing sent) and
# fallbacks ("3xx", "4xx", "5xx", "unexpected", "protocol").
ERROR_TABLE: dict[int | str, Rule] = {
    401: Rule(
        ErrorCode.AUTHENTICATION_FAILED,
        "Tryton refused the login or password for database {database!r}.",
        relogin=True,
    ),
    403: Rule(
        ErrorCode.PERMISSION_DENIED,
        "Tryton refused the call {method}: it is unknown or not allowed to this user.",
    ),
    404: Rule(
        ErrorCode.CONFIGURATION_INCOMPLETE,
        "Tryton at {url} has no database {database!r} (HTTP 404): check the connection's "
        "database name, and that the address is the Tryton server's.",
    ),
    413: Rule(ErrorCode.TARGET_REJECTED, "Tryton refused {method}: the request is too large."),
    # Tryton answers 429 to logins after too many failures; a proxy or gateway may rate-limit
    # any call. Refused unprocessed, with Retry-After.
    429: Rule(
        ErrorCode.RATE_LIMITED,
        "Tryton (or its proxy) refuses requests for now (rate limit or too many failed logins) "
        "on {method}; it will accept them again after a while.",
        _NOT_APPLIED,
    ),
    500: Rule(
        ErrorCode.UNAVAILABLE,
        "Tryton failed on {method} (HTTP 500); the Tryton server's log tells why.",
        _UNKNOWN,
    ),
    502: Rule(
        ErrorCode.UNAVAILABLE,
        "Tryton at {url} is unreachable behind its proxy (HTTP 502).",
        _UNKNOWN,
    ),
    # Tryton's 503 is a lock conflict it gave up on: the transaction was rolled back.
    503: Rule(
        ErrorCode.UNAVAILABLE,
        "Tryton's database stayed busy (lock conflict) or the server was unavailable on "
        "{method}; retried without success.",
        _NOT_APPLIED,
    ),
    504: Rule(ErrorCode.UNAVAILABLE, "Tryton timed out on {method} (HTTP 504).", _UNKNOWN),
    # Tryton's JSON-RPC never redirects: a redirect is another server (or a login page).
    "3xx": Rule(
        ErrorCode.CONFIGURATION_INCOMPLETE,
        "The server at {url} is not a Tryton server: it answered {method} with a redirect "
        "(HTTP {status}), which invsync does not follow. Check the connection's address.",
    ),
    "4xx": Rule(ErrorCode.UNEXPECTED, "Tryton answered HTTP {status} to {method}."),
    "5xx": Rule(ErrorCode.UNAVAILABLE, "Tryton answered HTTP {status} to {method}.", _UNKNOWN),
    "connection": Rule(
        ErrorCode.UNAVAILABLE, "Tryton at {url} cannot be reached: {detail}.", _NOT_APPLIED
    ),
    # Refused here before any connection (connectors.outbound): final, never retried.
    "blocked": Rule(
        ErrorCode.CONFIGURATION_INCOMPLETE,
        "Tryton at {url} is not called: its address is {detail}, which invsync's outbound "
        "policy does not allow. A tool on a private network must be allowed by the "
        "administrator (setting INVSYNC_OUTBOUND_ALLOWED_NETWORKS).",
    ),
    "dropped": Rule(
        ErrorCode.UNAVAILABLE,
        "Tryton at {url} closed the connection without answering {method}: {detail}.",
        _UNKNOWN,
    ),
    "timeout": Rule(
        ErrorCode.UNAVAILABLE,
        "Tryton at {url} did not answer {method} within {timeout} s.",
        _UNKNOWN,
    ),
    "protocol": Rule(
        ErrorCode.UNEXPECTED,
        "The server at {url} does not answer {method} as Tryton's JSON-RPC does ({detail}): "
        "check that the connection's address is the Tryton server's.",
    ),
    "UserError": Rule(ErrorCode.TARGET_REJECTED, "Tryton refused {method}: {detail}"),
    "UserWarning": Rule(ErrorCode.TARGET_REJECTED, "Tryton asks to confirm {method}: {detail}"),
    "LoginException": Rule(
        ErrorCode.AUTHENTICATION_FAILED, "Tryton asks for more login parameters: {detail}"
    ),
    "ConcurrencyException": Rule(
        ErrorCode.UNAVAILABLE, "Tryton reports a concurrent change on {method}: {detail}"
    ),
    # Tryton's own failure ([message, traceback]): only the exception's name is kept (its text
    # may hold anything); the Tryton server's log has the rest.
    "unexpected": Rule(
        ErrorCode.UNEXPECTED,
        "Tryton failed on {method} with an internal error ({detail}); the Tryton server's log "
        "tells why.",
    ),
}

# Calls that change nothing (or nothing that matters when repeated): sent again after a failure
# whose outcome is unknown. Every other call (create, write, delete, copy, buttons such as post,
# wizards) is a write.
READ_METHODS = frozenset({
    "read", "search", "search_read", "search_count", "fields_get", "default_get",
    "get_preferences", "fields_view_get", "view_toolbar_get", "view_get",
})  # fmt: skip
READ_CALLS = frozenset({
    "common.db.login", "common.db.logout", "common.server.version", "common.db.list",
    "common.version",
})  # fmt: skip


def is_idempotent(method: str) -> bool:
    """Whether sending ``method`` twice is harmless: reads, logins, and reports (rendering one
    may fill Tryton's report cache, which is the same every time)."""
    if method in READ_CALLS:
        return True
    parts = method.split(".")
    if parts[0] == "model" and len(parts) > 2:
        return parts[-1] in READ_METHODS
    return parts[0] == "report" and parts[-1] == "execute"


# UserErrors whose message says more than "refused": (pattern on the message, code).
USER_ERROR_CODES: tuple[tuple[re.Pattern[str], ErrorCode], ...] = (
    (
        re.compile(r"^You are not allowed to|^Calling button .* is not allowed"),
        ErrorCode.PERMISSION_DENIED,
    ),
)


class TrytonError(ConnectorError):
    """A ConnectorError from Tryton, with what the server said (cut and scrubbed) so that callers
    can refine the message: ``status`` (HTTP), ``tryton_error`` (Tryton's error name, e.g.
    "UserError") and ``detail`` (the server's message)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        tryton_error: str = "",
        detail: str = "",
        retry_after: float | None = None,
        delivery: Delivery = Delivery.FINAL,
        settle: float = 0.0,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)
        self.status = status
        self.tryton_error = tryton_error
        self.detail = detail
        self.delivery = delivery
        # Set by the client when a write failed this way: it may or may not have been applied,
        # and it was not sent again. Its caller looks the outcome up before writing again, after
        # ``settle`` seconds (a timed-out request may still be running on the server).
        self.unknown_outcome = False
        self.settle = settle


class TrytonWarning(TrytonError):
    """A Tryton UserWarning: the server wants a person to confirm ``key`` before it goes on.
    Acknowledge it with :meth:`TrytonClient.acknowledge_warning` and call again."""

    def __init__(self, key: str, message: str, *, detail: str = "") -> None:
        super().__init__(
            ErrorCode.TARGET_REJECTED, message, tryton_error="UserWarning", detail=detail
        )
        self.key = key


class _Failure(Exception):
    """Internal: a mapped error and whether the table says to log in again."""

    def __init__(self, error: TrytonError, relogin: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.relogin = relogin


def _verdict(failure: BaseException) -> Verdict:
    assert isinstance(failure, _Failure)
    return Verdict(failure.error.delivery, failure.error.retry_after)


def cut(text: Any, limit: int = MESSAGE_LIMIT, *, first_line: bool = False) -> str:
    """A server message made fit for people and logs: stripped, optionally its first line only,
    whitespace runs collapsed, at most ``limit`` characters."""
    value = str(text or "").strip()
    if first_line:
        value = value.splitlines()[0] if value else ""
    value = re.sub(r"\s+", " ", value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _retry_after(value: str | None) -> float | None:
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


_EXCEPTION_NAME = re.compile(r"([A-Za-z_][\w.]{0,99}(?:Error|Exception|Warning|Fault))(?::|$)")


def _exception_name(message: Any, traceback: Any) -> str:
    """The name of the exception behind a Tryton internal error (``KeyError``), from the last
    line of its traceback or the first of its message; "" when neither starts with one. Never
    anything else of the server's text."""
    lines = [line.strip() for line in str(traceback or "")[-2000:].splitlines() if line.strip()]
    first = str(message or "").strip().splitlines()
    for line in (lines[-1] if lines else "", first[0] if first else ""):
        if found := _EXCEPTION_NAME.match(line):
            return found.group(1)
    return ""


def _not_connected(error: requests.RequestException) -> bool:
    """Whether the connection was never made (refused, unresolvable, connect timeout): then
    nothing was sent. Otherwise it broke after the request may have gone out."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    # urllib3's NewConnectionError (refused, unresolvable) is a ConnectTimeoutError.
    return isinstance(reason, ConnectTimeoutError)


def _transport_detail(error: requests.RequestException) -> str:
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


def _is_refusal(error: TrytonError) -> bool:
    """Tryton refused this request on its merits (not the transport, the login or the rights)."""
    return error.code == ErrorCode.TARGET_REJECTED and not isinstance(error, TrytonWarning)


def _rejected(error: TrytonError, what: str) -> ConnectorError:
    """Keep transport and access codes; say what was refused for the rest."""
    if error.is_transient or error.code != ErrorCode.TARGET_REJECTED:
        return error
    detail = error.detail or error.message
    return TrytonError(
        ErrorCode.TARGET_REJECTED,
        f"{what}: {cut(detail)}",
        status=error.status,
        tryton_error=error.tryton_error,
        detail=error.detail,
    )
