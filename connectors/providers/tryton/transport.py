"""Tryton's JSON-RPC on the wire: typed values and the error table.

Encode and decode Tryton's typed values; :data:`ERROR_TABLE` (a :class:`connectors.http.ErrorTable`,
data), the one place where an HTTP status, a transport failure or a Tryton error becomes a
:class:`ConnectorError` with a catalogue code, a sentence and an action (which says what the
failure tells about the request, its :class:`~connectors.retry.Delivery`); and the errors
(:class:`TrytonError`, :class:`TrytonWarning`). The session that uses them is
:class:`~connectors.providers.tryton.client.TrytonClient`, on :class:`connectors.http.HttpSession`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors.errors import ConnectorError, ErrorCode
from connectors.http import BLOCKED, CONNECTION, DROPPED, TIMEOUT, Action, ErrorRow, ErrorTable, cut
from connectors.retry import Delivery, Verdict

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


# Rows by HTTP status (then status class), Tryton error name (the first item of a JSON-RPC
# "error", ``vendor_code``) and transport failure (connectors.http: "connection": none made,
# nothing sent; "dropped": closed after sending, no answer; "timeout": no answer in time;
# "blocked": refused by the outbound policy, nothing sent; and Tryton's own "protocol": an answer
# not in Tryton's form). Tryton's unexpected failure is the default row.
_RETRY_NOT_APPLIED = {"action": Action.RETRY, "delivery": Delivery.NOT_APPLIED}
ERROR_TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "Tryton refused the login or password for database {database!r}.",
            Action.REAUTHENTICATE,
            status=401,
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "Tryton refused the call {method}: it is unknown or not allowed to this user.",
            status=403,
        ),
        ErrorRow(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "Tryton at {url} has no database {database!r} (HTTP 404): check the connection's "
            "database name, and that the address is the Tryton server's.",
            status=404,
        ),
        ErrorRow(
            ErrorCode.TARGET_REJECTED,
            "Tryton refused {method}: the request is too large.",
            status=413,
        ),
        # Tryton answers 429 to logins after too many failures; a proxy or gateway may
        # rate-limit any call. Refused unprocessed, with Retry-After.
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "Tryton (or its proxy) refuses requests for now (rate limit or too many failed "
            "logins) on {method}; it will accept them again after a while.",
            Action.RATE_LIMITED,
            status=429,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton failed on {method} (HTTP 500); the Tryton server's log tells why.",
            Action.RETRY,
            status=500,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton at {url} is unreachable behind its proxy (HTTP 502).",
            Action.RETRY,
            status=502,
        ),
        # Tryton's 503 is a lock conflict it gave up on: the transaction was rolled back.
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton's database stayed busy (lock conflict) or the server was unavailable on "
            "{method}; retried without success.",
            status=503,
            **_RETRY_NOT_APPLIED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton timed out on {method} (HTTP 504).",
            Action.RETRY,
            status=504,
        ),
        # Tryton's JSON-RPC never redirects: a redirect is another server (or a login page).
        ErrorRow(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "The server at {url} is not a Tryton server: it answered {method} with a redirect "
            "(HTTP {status}), which invsync does not follow. Check the connection's address.",
            status="3xx",
        ),
        ErrorRow(ErrorCode.UNEXPECTED, "Tryton answered HTTP {status} to {method}.", status="4xx"),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton answered HTTP {status} to {method}.",
            Action.RETRY,
            status="5xx",
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton at {url} cannot be reached: {detail}.",
            failure=CONNECTION,
            **_RETRY_NOT_APPLIED,
        ),
        # Refused here before any connection (connectors.outbound): final, never retried.
        ErrorRow(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "Tryton at {url} is not called: its address is {detail}, which invsync's outbound "
            "policy does not allow. A tool on a private network must be allowed by the "
            "administrator (setting INVSYNC_OUTBOUND_ALLOWED_NETWORKS).",
            failure=BLOCKED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton at {url} closed the connection without answering {method}: {detail}.",
            Action.RETRY,
            failure=DROPPED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton at {url} did not answer {method} within {timeout} s.",
            Action.RETRY,
            failure=TIMEOUT,
        ),
        ErrorRow(
            ErrorCode.UNEXPECTED,
            "The server at {url} does not answer {method} as Tryton's JSON-RPC does "
            "({detail}): check that the connection's address is the Tryton server's.",
            failure="protocol",
        ),
        # UserErrors whose message says more than "refused".
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "Tryton refused {method}: {detail}",
            vendor_code="UserError",
            pattern=r"^You are not allowed to|^Calling button .* is not allowed",
        ),
        ErrorRow(
            ErrorCode.TARGET_REJECTED, "Tryton refused {method}: {detail}", vendor_code="UserError"
        ),
        ErrorRow(
            ErrorCode.TARGET_REJECTED,
            "Tryton asks to confirm {method}: {detail}",
            vendor_code="UserWarning",
        ),
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "Tryton asks for more login parameters: {detail}",
            vendor_code="LoginException",
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "Tryton reports a concurrent change on {method}: {detail}",
            vendor_code="ConcurrencyException",
        ),
    ),
    # Tryton's own failure ([message, traceback]): only the exception's name is kept (its text
    # may hold anything); the Tryton server's log has the rest.
    default=ErrorRow(
        ErrorCode.UNEXPECTED,
        "Tryton failed on {method} with an internal error ({detail}); the Tryton server's log "
        "tells why.",
        failure="unexpected",
    ),
)

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
        key: str = "",
        params: dict | None = None,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after, key=key, params=params)
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


class RpcFailure(Exception):
    """Internal: a mapped error and whether the table says to log in again."""

    def __init__(self, error: TrytonError, relogin: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.relogin = relogin


def verdict_of(failure: BaseException) -> Verdict:
    assert isinstance(failure, RpcFailure)
    return Verdict(failure.error.delivery, failure.error.retry_after)


_EXCEPTION_NAME = re.compile(r"([A-Za-z_][\w.]{0,99}(?:Error|Exception|Warning|Fault))(?::|$)")


def exception_name(message: Any, traceback: Any) -> str:
    """The name of the exception behind a Tryton internal error (``KeyError``), from the last
    line of its traceback or the first of its message; "" when neither starts with one. Never
    anything else of the server's text."""
    lines = [line.strip() for line in str(traceback or "")[-2000:].splitlines() if line.strip()]
    first = str(message or "").strip().splitlines()
    for line in (lines[-1] if lines else "", first[0] if first else ""):
        if found := _EXCEPTION_NAME.match(line):
            return found.group(1)
    return ""


def is_refusal(error: TrytonError) -> bool:
    """Tryton refused this request on its merits (not the transport, the login or the rights)."""
    return error.code == ErrorCode.TARGET_REJECTED and not isinstance(error, TrytonWarning)


def rejected(error: TrytonError, what: str) -> ConnectorError:
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
