"""A JSON-RPC client for Tryton 8.2, on one ``requests`` session.

The session: log in, keep the user context, send calls (typed values encoded by
:mod:`~connectors.providers.tryton.transport`), and turn every HTTP status, transport failure and
Tryton error into a :class:`ConnectorError` with a catalogue code through the transport's
:data:`~connectors.providers.tryton.transport.ERROR_TABLE`, the one place where that decision is
made.

Retries (:mod:`connectors.retry`, one policy for every connector): the table also says what each
failure tells about the request (its :class:`~connectors.retry.Delivery`). A request that certainly
did not take effect (connection refused, 503 lock conflict rolled back, 429) is sent again whatever
it does; one whose outcome is unknown (timeout, connection dropped after sending, 500/502/504) is
sent again only when it is a read (:func:`is_idempotent`); a write is then left to its caller,
which looks the outcome up (the error says ``unknown_outcome``; see the target's
``create_entries``).
Final answers are never retried; 401 gets one new login. ``requests`` itself never retries.

Rate limit (:mod:`connectors.ratelimit`): every request, retries included, waits for a slot of
the connection's window when it has one (setting ``rate_limit``, e.g. ``"60/60"``); the window is
an object handed in with the connection's config (no ORM here).

Secrets: the password and the session token live in private attributes, are never logged (only
method names, databases and outcomes are), never appear in ``repr`` and are scrubbed from every
message built from a server answer.
"""

from __future__ import annotations

import base64
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from connectors.base import (
    ConnectionConfig,
    transport_settings,
)
from connectors.canonical import ConnectionCheck
from connectors.errors import ConnectorError, ErrorCode, InvsyncError, connection_message_key
from connectors.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    TIMEOUT,
    ErrorRow,
    HttpSession,
    TransportFailure,
    cut,
    display_url,
    retry_after,
)
from connectors.messages import N_, Msg, json_params
from connectors.outbound import OutboundPolicy
from connectors.providers.tryton.transport import (
    ERROR_TABLE,
    RpcFailure,
    TrytonError,
    TrytonWarning,
    dumps,
    exception_name,
    is_idempotent,
    loads,
    verdict_of,
)
from connectors.ratelimit import PROCESS_WINDOWS, RateWindow, effective_rate_limit
from connectors.retry import SETTINGS as RETRY_SETTINGS
from connectors.retry import Delivery, Retrier, RetryPolicy

logger = logging.getLogger(__name__)

REPORT_TIMEOUT = 120.0  # seconds to wait for a rendered report (other answers: DEFAULT_TIMEOUT)


# -- The client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A rendered Tryton report."""

    extension: str
    content: bytes
    name: str

    @property
    def filename(self) -> str:
        name = re.sub(r"[\\/:*?\"<>|\r\n]+", "_", self.name or "report").strip() or "report"
        return f"{name}.{self.extension}" if self.extension else name

    @property
    def content_type(self) -> str:
        return {
            "pdf": "application/pdf",
            "odt": "application/vnd.oasis.opendocument.text",
            "html": "text/html",
            "txt": "text/plain",
            "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        }.get(self.extension.lower(), "application/octet-stream")


class TrytonClient:
    """One user's session on one Tryton database. Logs in lazily on the first call.

    ``timeout`` bounds the wait for each answer and ``connect_timeout`` each connection;
    ``retry`` bounds the retries of each call (:class:`~connectors.retry.RetryPolicy`; attempts,
    backoff, total wait, Retry-After cap); ``rate_limiter`` (shared by every client of the same
    connection, see :func:`client_from_config`) spaces the requests. ``outbound`` is where its
    calls may go (:mod:`connectors.outbound`, checked at connect time); None checks nothing and is
    for tests of the transport: :func:`client_from_config` always gives one. Redirects are never
    followed (Tryton's JSON-RPC does not redirect). ``sleep`` and ``rng`` are injectable for
    tests.
    """

    def __init__(
        self,
        url: str,
        database: str,
        username: str,
        password: str,
        *,
        language: str = "en",
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        rate_limiter: RateWindow | None = None,
        http: requests.Session | None = None,
        outbound: OutboundPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.url = (url or "").strip().rstrip("/") + "/"
        # What messages and reprs show: the URL without any user:password@ part.
        self.display_url = display_url(self.url)
        self.database = (database or "").strip()
        self.language = language
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry_policy = retry or RetryPolicy()
        # Public so that callers retry their own operations under the same policy.
        self.retrier = Retrier(self.retry_policy, sleep=sleep, rng=rng)
        self._username = username or ""
        self._password = password or ""
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._uid: int | None = None
        self._token: str | None = None
        self._authorization: str | None = None
        self._context: dict[str, Any] | None = None
        # The toolkit's session: (connect, read) timeouts, the outbound policy, no retries of
        # its own, the rate-limit slot around every request.
        self.transport = HttpSession(
            timeout=timeout, connect_timeout=connect_timeout, rate_window=rate_limiter,
            outbound=outbound, session=http,
        )  # fmt: skip
        self._http = self.transport.session
        self.outbound = outbound
        self.endpoint = f"{self.url}{quote(self.database, safe='')}/rpc/"

    @property
    def rate_limiter(self) -> RateWindow | None:
        """The rate-limit window every request of this client waits for (None: none)."""
        return self.transport.rate_window

    @rate_limiter.setter
    def rate_limiter(self, window: RateWindow | None) -> None:
        self.transport.rate_window = window

    def __repr__(self) -> str:
        state = "logged in" if self._token else "not logged in"
        return f"<TrytonClient {self.display_url} database={self.database!r} ({state})>"

    # -- session -----------------------------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    @property
    def user_id(self) -> int:
        if self._uid is None:
            self.login()
        assert self._uid is not None
        return self._uid

    @property
    def context(self) -> dict[str, Any]:
        """The user's preferences (language, company, companies...), read once after login."""
        if self._context is None:
            if not self.logged_in:
                self.login()
            else:
                self._context = self._rpc(
                    "model.res.user.get_preferences", [True, {}], relogin=False
                )
        return dict(self._context or {})

    def login(self) -> None:
        """Open a session (and read the user context). Raises ConnectorError; a refused login is
        AUTHENTICATION_FAILED, an unknown database CONFIGURATION_INCOMPLETE."""
        self._drop_session()
        result = self._rpc(
            "common.db.login",
            [self._username, {"password": self._password}, self.language],
            authenticated=False,
        )
        if not isinstance(result, list | tuple) or len(result) < 2:
            raise self._failure("protocol", "common.db.login", detail="no session").error
        self._uid, self._token = int(result[0]), str(result[1])
        raw = f"{self._username}:{self._uid}:{self._token}".encode()
        self._authorization = "Session " + base64.b64encode(raw).decode("ascii")
        logger.debug("tryton: logged in on %s as user id %s", self.database, self._uid)
        preferences = self._rpc("model.res.user.get_preferences", [True, {}], relogin=False)
        self._context = dict(preferences or {})

    def close(self) -> None:
        """Log out and release the HTTP session. Safe to call twice; never raises."""
        if self._token is not None:
            try:
                # Best effort, once: a server that is gone keeps the session until it expires.
                self._rpc("common.db.logout", [], relogin=False, retry=False)
            except ConnectorError as error:
                logger.debug("tryton: logout from %s failed: %s", self.database, error.code)
        self._drop_session()
        self.transport.close()

    def _drop_session(self) -> None:
        self._uid = self._token = self._authorization = None
        self._context = None

    # -- calls -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        *params: Any,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call ``method`` with ``params`` as given (add the context yourself). ``idempotent``
        overrides :func:`is_idempotent` (whether a failure of unknown outcome is retried)."""
        return self._rpc(method, list(params), timeout=timeout, idempotent=idempotent)

    def model(
        self,
        model: str,
        method: str,
        *params: Any,
        context: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call ``model.<model>.<method>`` with ``params`` and the user context (merged with
        ``context``) as the last parameter."""
        return self.call(
            f"model.{model}.{method}", *params, self._merged(context), timeout=timeout,
            idempotent=idempotent,
        )  # fmt: skip

    def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        fields: Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: Sequence[tuple[str, str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        order_param = [list(item) for item in order] if order is not None else None
        return self.model(
            model, "search_read", list(domain), offset, limit, order_param, list(fields),
            context=context,
        )  # fmt: skip

    def search(
        self,
        model: str,
        domain: Sequence[Any],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: Sequence[tuple[str, str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        order_param = [list(item) for item in order] if order is not None else None
        return self.model(
            model, "search", list(domain), offset, limit, order_param, context=context
        )

    def read(
        self,
        model: str,
        ids: Iterable[int],
        fields: Sequence[str],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return self.model(model, "read", list(ids), list(fields), context=context)

    def create(
        self,
        model: str,
        values: Sequence[Mapping[str, Any]],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Create the records in one call (one transaction: all or none)."""
        return self.model(model, "create", [dict(v) for v in values], context=context)

    def write(
        self,
        model: str,
        ids: Iterable[int],
        values: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.model(model, "write", list(ids), dict(values), context=context)

    def delete(
        self, model: str, ids: Iterable[int], *, context: Mapping[str, Any] | None = None
    ) -> None:
        self.model(model, "delete", list(ids), context=context)

    def execute(
        self,
        model: str,
        button: str,
        ids: Iterable[int],
        *,
        context: Mapping[str, Any] | None = None,
        acknowledge: bool = False,
        max_warnings: int = 5,
    ) -> Any:
        """Click ``button`` on the records. With ``acknowledge``, UserWarnings are acknowledged
        (as a person clicking "yes" would) and the call repeated, at most ``max_warnings``
        times; without it they raise :class:`TrytonWarning`."""
        ids = list(ids)
        for _ in range(max_warnings + 1):
            try:
                return self.model(model, button, ids, context=context)
            except TrytonWarning as warning:
                if not acknowledge:
                    raise
                self.acknowledge_warning(warning.key)
        raise TrytonError(
            ErrorCode.TARGET_REJECTED,
            f"Tryton kept asking for confirmations on {model}.{button}.",
            tryton_error="UserWarning",
        )

    def acknowledge_warning(self, key: str) -> None:
        """Confirm a UserWarning once for this user (Tryton's ``res.user.warning``)."""
        self.create("res.user.warning", [{"user": self.user_id, "name": key, "always": False}])

    def report(
        self,
        report: str,
        ids: Iterable[int],
        *,
        data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Report:
        """Render ``report`` (e.g. ``account.invoice``) for the records."""
        result = self.call(
            f"report.{report}.execute",
            list(ids),
            dict(data or {}),
            self._merged(context),
            timeout=timeout or max(self.timeout, REPORT_TIMEOUT),
        )
        if not isinstance(result, list | tuple) or len(result) < 2:
            raise self._failure("protocol", f"report.{report}", detail="no report").error
        extension, content = str(result[0] or ""), result[1]
        name = str(result[3]) if len(result) > 3 and result[3] else report
        if isinstance(content, str):
            content = content.encode("utf-8")
        return Report(extension, bytes(content or b""), name)

    def _merged(self, context: Mapping[str, Any] | None) -> dict[str, Any]:
        merged = self.context
        if context:
            merged.update(context)
        return merged

    # -- transport ---------------------------------------------------------------------------

    def _rpc(
        self,
        method: str,
        params: list[Any],
        *,
        authenticated: bool = True,
        relogin: bool = True,
        timeout: float | None = None,
        idempotent: bool | None = None,
        retry: bool = True,
    ) -> Any:
        read = is_idempotent(method) if idempotent is None else idempotent
        relogged = False

        def attempt() -> Any:
            nonlocal relogged
            while True:
                if authenticated and self._token is None:
                    self.login()  # retried on its own; its errors are final here
                try:
                    return self._post(method, params, authenticated, timeout)
                except RpcFailure as failure:
                    if (
                        failure.relogin
                        and authenticated
                        and relogin
                        and not relogged
                        and method not in ("common.db.login", "common.db.logout")
                    ):
                        relogged = True
                        logger.info(
                            "tryton: session on %s expired; logging in again", self.database
                        )
                        self._drop_session()
                        continue
                    raise

        try:
            if not retry:
                return attempt()
            return self.retrier.call(
                attempt,
                retry_on=RpcFailure,
                classify=verdict_of,
                idempotent=read,
                what=f"tryton: {method} on {self.database}",
            )
        except RpcFailure as failure:
            error = failure.error
            if error.delivery is Delivery.UNKNOWN and not read:
                error.unknown_outcome = True
            raise error from None

    def _post(self, method: str, params: list[Any], authenticated: bool, timeout: float | None):
        body = dumps({"id": next(self._ids), "method": method, "params": params})
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authenticated and self._authorization:
            headers["Authorization"] = self._authorization
        wait = timeout or self.timeout
        started = time.monotonic()
        try:
            # JSON-RPC over POST, in a slot of the rate window; redirects never followed.
            response = self.transport.send(
                "POST", self.endpoint, data=body.encode("utf-8"), headers=headers, timeout=wait
            )
        except TransportFailure as failure:
            if failure.kind == TIMEOUT:
                raise self._failure(TIMEOUT, method, timeout=wait, settle=wait) from None
            raise self._failure(failure.kind, method, detail=failure.detail) from None
        elapsed = (time.monotonic() - started) * 1000
        logger.debug(
            "tryton: %s on %s: HTTP %s in %.0f ms", method, self.database, response.status_code,
            elapsed,
        )  # fmt: skip
        if response.status_code != 200:
            raise self._http_failure(method, response, wait)
        try:
            answer = loads(response.content)
        except (ValueError, KeyError, TypeError):
            raise self._failure("protocol", method, detail="not JSON") from None
        if not isinstance(answer, dict):
            raise self._failure("protocol", method, detail="not an object")
        if answer.get("error") is not None:
            raise self._tryton_failure(method, answer["error"])
        if "result" not in answer:
            raise self._failure("protocol", method, detail="no result")
        return answer["result"]

    def _http_failure(self, method: str, response: requests.Response, wait: float) -> RpcFailure:
        # The answer's body is never read into a message: it may be anything (another server's
        # error page, a private service's data); the status classifies the failure.
        status = response.status_code
        wait_asked = None
        if status in (429, 503):
            wait_asked = retry_after(response.headers.get("Retry-After"))
        return self._failure(
            ERROR_TABLE.match(status=status), method, status=status, retry_after=wait_asked,
            settle=wait if status == 504 else 0.0,
        )  # fmt: skip

    def _tryton_failure(self, method: str, error: Any) -> RpcFailure:
        kind = error[0] if isinstance(error, list) and error and isinstance(error[0], str) else ""
        args = error[1] if isinstance(error, list) and len(error) > 1 else None
        if kind == "UserError":
            parts = args if isinstance(args, list) else [args]
            message = str(parts[0] or "") if parts else ""
            description = str(parts[1] or "") if len(parts) > 1 else ""
            detail = f"{message} {description}".strip()
            row = ERROR_TABLE.match(vendor_code=kind, message=message)
            return self._failure(row, method, detail=detail, kind=kind)
        if kind == "UserWarning":
            parts = args if isinstance(args, list) else [args]
            key = str(parts[0] or "") if parts else ""
            text = " ".join(str(p) for p in parts[1:3] if p)
            detail = self._scrub(cut(text))
            row = ERROR_TABLE.match(vendor_code=kind)
            message = row.message.format(**self._format_args(method, detail=detail))
            return RpcFailure(TrytonWarning(key, message, detail=detail))
        if kind in ("LoginException", "ConcurrencyException"):
            parts = args if isinstance(args, list) else [args]
            detail = " ".join(str(p) for p in parts[:2] if p)
            return self._failure(
                ERROR_TABLE.match(vendor_code=kind), method, detail=detail, kind=kind
            )
        if not kind:
            # Not Tryton's form of an error (a JSON-RPC 2.0 object, a bare text...): another
            # server. What it said is not repeated.
            return self._failure("protocol", method, detail="an error not in Tryton's form")
        # Tryton's unexpected failure: [message, traceback]. Only the exception's name is kept.
        traceback = error[1] if len(error) > 1 else ""
        return self._failure(
            ERROR_TABLE.default, method, detail=exception_name(kind, traceback), kind="unexpected"
        )

    def _failure(
        self,
        row: ErrorRow | str,
        method: str,
        *,
        status: int | None = None,
        detail: str = "",
        kind: str = "",
        timeout: float | None = None,
        retry_after: float | None = None,
        settle: float = 0.0,
    ) -> RpcFailure:
        """The error of ``row`` (or of the row known by that key: a transport failure)."""
        rule = row if isinstance(row, ErrorRow) else ERROR_TABLE[row]
        detail = self._scrub(cut(detail))
        message = rule.message.format(
            **self._format_args(method, status=status, detail=detail, timeout=timeout)
        )
        # The common failures also as a message key (connectors.messages), for the admin to
        # show in the reader's language; the parameters hold nothing the server said.
        key = connection_message_key(rule.code, failure=rule.failure, status=status)
        params = {
            "vendor": "Tryton",
            "url": self.display_url,
            "status": status,
            "timeout": f"{timeout or self.timeout:g}",
        }
        error = TrytonError(
            rule.code,
            self._scrub(message),
            status=status,
            tryton_error=kind,
            detail=detail,
            retry_after=retry_after,
            delivery=rule.delivery or Delivery.FINAL,
            settle=settle,
            key=key,
            params=params if key else None,
        )
        return RpcFailure(error, rule.relogin)

    def _format_args(self, method: str, **values: Any) -> dict[str, Any]:
        return {
            "url": self.display_url,
            "database": self.database,
            "method": method,
            "status": values.get("status"),
            "detail": values.get("detail") or "no details",
            "timeout": values.get("timeout") or self.timeout,
        }

    def _scrub(self, text: str) -> str:
        """Remove anything secret an echoing server (or proxy) could have put in a message."""
        for secret in (self._password, self._token, self._authorization):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text


# Optional settings every Tryton connection takes (sources and targets declare them).
TRANSPORT_SETTINGS_FIELDS = transport_settings(
    timeout=DEFAULT_TIMEOUT,
    rate_limit_help=N_(
        "At most this many requests per window of seconds, e.g. 60/60; empty: none."
    ),
)
assert {f.name for f in TRANSPORT_SETTINGS_FIELDS} >= set(RETRY_SETTINGS)


def client_from_config(
    config: ConnectionConfig, *, rate_limit: tuple[int, float] | None = None
) -> TrytonClient:
    """A client for a stored connection: settings ``url`` and ``database`` (optional ``timeout``
    in seconds, ``rate_limit`` overriding the connector's ``rate_limit`` given here, and the retry
    settings of :data:`TRANSPORT_SETTINGS_FIELDS`), credentials ``username`` and ``password``.
    Raises InvsyncError with CONFIGURATION_INCOMPLETE when one is missing or malformed.

    Every client of the same server, database and login shares one rate-limit window, taken from
    the config's ``rate_windows`` (the deployment's, handed in by the service that builds the
    connector), else counted in this process."""
    settings, credentials = config.settings, config.credentials
    url = (settings.get("url") or "").strip()
    database = (settings.get("database") or "").strip()
    label = f" {config.label!r}" if config.label else ""
    if not url.lower().startswith(("http://", "https://")):
        raise InvsyncError.of(
            ErrorCode.CONFIGURATION_INCOMPLETE, "check.tryton_no_url", field="url", label=label
        )
    if not database:
        raise InvsyncError.of(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "check.tryton_no_database",
            field="database",
            label=label,
        )
    username, password = credentials.get("username") or "", credentials.get("password") or ""
    if not username or not password:
        raise InvsyncError.of(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "check.tryton_no_login",
            field="credentials",
            label=label,
        )
    try:
        timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    if not 0 < timeout < float("inf"):
        timeout = DEFAULT_TIMEOUT
    try:
        policy = RetryPolicy.from_settings(settings)
    except ValueError as error:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE, f"Tryton connection{label}: {error}", field="retry"
        ) from None
    try:
        limit = effective_rate_limit(settings.get("rate_limit"), rate_limit)
    except ValueError as error:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"Tryton connection{label}: {error}.",
            field="rate_limit",
        ) from None
    # Without a policy in the config, the strictest: public addresses only.
    client = TrytonClient(
        url, database, username, password, timeout=timeout, retry=policy,
        outbound=config.outbound or OutboundPolicy(),
    )  # fmt: skip
    # A request in flight keeps its slot at most twice as long as the client lets it last.
    hold = 2 * (DEFAULT_CONNECT_TIMEOUT + max(timeout, REPORT_TIMEOUT))
    windows = config.rate_windows or PROCESS_WINDOWS
    client.rate_limiter = windows.window(
        f"tryton\n{client.url}\n{database}\n{username}", limit, hold=hold
    )
    return client


def connection_check(client: TrytonClient, probe: Callable[[TrytonClient], str]) -> ConnectionCheck:
    """Log in and run ``probe`` (one cheap read returning a sentence); never raises for a refused
    login or an unreachable server. A failure is told by its class (refused login, not a Tryton
    server, HTTP status, refused connection, timeout, address not allowed), never with what the
    server said: the check may reach a server that is not Tryton, and its message is shown to
    everyone who may read the connection."""
    try:
        client.login()
        summary = probe(client)
    except InvsyncError as error:
        return failed_check(client, error)
    ok = Msg("check.tryton_ok", database=repr(client.database), summary=summary)
    return ConnectionCheck(True, ok.english(), "", ok.key, json_params(ok.params))


def failed_check(client: TrytonClient, error: InvsyncError) -> ConnectionCheck:
    """A failed check: the error table's sentence when it holds nothing the server said, else a
    sentence of the failure's class alone (with its message key, for the admin)."""
    failure = _check_failure(client, error)
    if failure is None:  # built from the table with our own words only
        return ConnectionCheck(False, error.message, error.code, error.key, error.params)
    return ConnectionCheck(
        False, failure.english(), error.code, failure.key, json_params(failure.params)
    )


def check_failure_message(client: TrytonClient, error: InvsyncError) -> str:
    """A failed check's message, in English."""
    return failed_check(client, error).message


def _check_failure(client: TrytonClient, error: InvsyncError) -> Msg | None:
    where = {"url": client.display_url, "database": repr(client.database)}
    if error.code == ErrorCode.AUTHENTICATION_FAILED and not getattr(error, "tryton_error", ""):
        return Msg("check.tryton_login_refused", **where)  # HTTP 401
    if not isinstance(error, TrytonError) or not error.tryton_error:
        return None
    if error.tryton_error == "LoginException":
        return Msg("check.tryton_login_method", **where)
    if error.code == ErrorCode.AUTHENTICATION_FAILED:
        return Msg("check.tryton_login_refused", **where)
    if error.code == ErrorCode.PERMISSION_DENIED:
        return Msg("check.tryton_read_refused", **where)
    if error.tryton_error == "unexpected":
        return Msg("check.tryton_internal_error", **where)
    return Msg("check.tryton_refused", **where, reason=error.tryton_error)


class TrytonConnection:
    """What both Tryton connectors share: one client per connector instance, opened on first use
    and closed by ``close``, and a connection check that logs in and runs the connector's probe
    (``_probe``: one cheap read that says what the connection sees)."""

    _client: TrytonClient | None = None
    config: ConnectionConfig

    @property
    def client(self) -> TrytonClient:
        if self._client is None:
            self._client = client_from_config(self.config, rate_limit=self.rate_limit)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def check_connection(self) -> ConnectionCheck:
        try:
            client = self.client
        except InvsyncError as error:
            return ConnectionCheck(False, error.message, error.code, error.key, error.params)
        return connection_check(client, self._probe)

    def _probe(self, client: TrytonClient) -> str:
        raise NotImplementedError
