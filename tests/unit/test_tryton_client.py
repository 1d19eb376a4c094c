"""The Tryton JSON-RPC client against a scripted HTTP server on 127.0.0.1: the error table, the
retries it allows (reads after any passing failure, writes only when they certainly did not reach
the server), the rate limiter, typed values, and that credentials never leak."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors import http as http_module
from connectors.base import AuthKind, ConnectionConfig, EntryToWrite
from connectors.canonical import Direction, EntryLine, EntryRef, InvoiceType, Posting, TaxRole
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.providers.tryton.client import TrytonClient, client_from_config
from connectors.providers.tryton.entries import external_id_of
from connectors.providers.tryton.lookups import AccountRow, PeriodRow
from connectors.providers.tryton.source import TrytonSource
from connectors.providers.tryton.target import TrytonTarget
from connectors.providers.tryton.transport import (
    ERROR_TABLE,
    TrytonError,
    TrytonWarning,
    decode_value,
    dumps,
    encode,
    is_idempotent,
    loads,
)
from connectors.ratelimit import RateLimiter
from connectors.ratelimit_store import forget_shared_limiters
from connectors.retry import NO_RETRY, Delivery, RetryPolicy

PASSWORD = "s3cr3t-Pa55word!"
TOKEN = "tok-9f8e7d6c5b4a"
CONTEXT = {"company": 1, "companies": [1], "language": "en"}

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[dict[str, Any], dict[str, str]], Reply]


def result(value: Any) -> Reply:
    return 200, {}, dumps({"id": 1, "result": value}).encode()


def error(value: Any) -> Reply:
    return 200, {}, json.dumps({"id": 1, "error": value}).encode()


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Reply:
    return code, headers or {}, body


# Read the request, then close the connection without answering.
DROP: Reply = (0, {}, b"")


class FakeTryton:
    """A scripted server: ``script[method]`` is a list of replies (or callables) consumed in
    order; login and preferences answer by default. Every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.script: dict[str, list[Reply | Handler]] = {}
        self.tokens = iter([TOKEN, TOKEN + "-2", TOKEN + "-3"])
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                headers = {k: v for k, v in self.headers.items()}
                fake.requests.append((body, headers))
                code, extra, payload = fake.reply(body, headers)
                if code == 0:  # DROP
                    self.close_connection = True
                    return
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The client may have given up waiting (timeout tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        method = body["method"]
        queue = self.script.get(method)
        if queue:
            item = queue.pop(0)
            return item(body, headers) if callable(item) else item
        if method == "common.db.login":
            return result([7, next(self.tokens), None])
        if method == "model.res.user.get_preferences":
            return result(CONTEXT)
        if method == "common.db.logout":
            return result(None)
        return result({"echo": body["params"]})

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [body for body, _ in self.requests if body["method"] == method]

    def headers_of(self, method: str) -> list[dict[str, str]]:
        return [headers for body, headers in self.requests if body["method"] == method]


@pytest.fixture
def server():
    fake = FakeTryton()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    tryton = TrytonClient(
        server.url, "demo", "alice", PASSWORD, timeout=2, connect_timeout=2, sleep=sleeps.append
    )
    yield tryton
    tryton.close()


# -- session ---------------------------------------------------------------------------------


def test_login_sends_the_password_in_the_login_body_only_then_a_session_header(server, client):
    assert client.call("model.party.party.search", [], {}) == {"echo": [[], {}]}

    (login,) = server.calls("common.db.login")
    assert login["params"] == ["alice", {"password": PASSWORD}, "en"]
    assert "Authorization" not in server.headers_of("common.db.login")[0]
    expected = "Session " + base64.b64encode(f"alice:7:{TOKEN}".encode()).decode()
    assert server.headers_of("model.party.party.search")[0]["Authorization"] == expected
    assert server.calls("model.res.user.get_preferences")[0]["params"] == [True, {}]


def test_model_calls_pass_the_user_context_last_merged_with_the_callers(server, client):
    client.search_read(
        "account.move", [("id", ">", 1)], ["number"], limit=5, order=[("id", "ASC")],
        context={"active_test": False},
    )  # fmt: skip
    (call,) = server.calls("model.account.move.search_read")
    assert call["params"] == [
        [["id", ">", 1]], 0, 5, [["id", "ASC"]], ["number"], {**CONTEXT, "active_test": False}
    ]  # fmt: skip


def test_create_sends_one_call_for_many_records(server, client):
    server.script["model.account.move.create"] = [result([11, 12])]
    assert client.create("account.move", [{"journal": 1}, {"journal": 1}]) == [11, 12]
    (call,) = server.calls("model.account.move.create")
    assert call["params"][0] == [{"journal": 1}, {"journal": 1}]


def test_report_comes_back_as_bytes_with_filename_and_content_type(server, client):
    server.script["report.account.invoice.execute"] = [
        result(["odt", b"PK\x03\x04 odt", False, "Invoice-F1"])
    ]
    report = client.report("account.invoice", [3])
    assert report.content == b"PK\x03\x04 odt"
    assert report.filename == "Invoice-F1.odt"
    assert report.content_type == "application/vnd.oasis.opendocument.text"
    assert server.calls("report.account.invoice.execute")[0]["params"][:2] == [[3], {}]


def test_close_logs_out_and_is_safe_twice(server, client):
    client.call("model.x.y")
    client.close()
    client.close()
    assert len(server.calls("common.db.logout")) == 1
    assert not client.logged_in


# -- typed values ----------------------------------------------------------------------------


def test_typed_values_round_trip_through_the_wire_format():
    values = {
        "amount": Decimal("120.00"),
        "tiny": Decimal("-0.0001"),
        "date": dt.date(2026, 2, 28),
        "when": dt.datetime(2026, 2, 28, 13, 45, 7, 123456),
        "time": dt.time(8, 30, 15, 5),
        "delay": dt.timedelta(hours=1, seconds=2),
        "file": b"%PDF-1.4\x00\xff binary",
        "nested": [{"lines": [["create", [{"debit": Decimal("1.10")}]]]}],
        "plain": ["text", 3, 1.5, None, True],
    }
    assert loads(dumps(values)) == values


def test_encoding_uses_trytons_class_markers():
    assert encode(Decimal("20.00")) == {"__class__": "Decimal", "decimal": "20.00"}
    assert encode(dt.date(2026, 1, 2)) == {"__class__": "date", "year": 2026, "month": 1, "day": 2}
    assert encode(b"ab") == {"__class__": "bytes", "base64": "YWI="}
    aware = dt.datetime(2026, 1, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert encode(aware)["hour"] == 8  # Tryton compares naive UTC
    assert decode_value({"__class__": "Decimal", "decimal": "0.2"}) == Decimal("0.2")


def test_typed_values_survive_a_server_round_trip(server, client):
    sent = [Decimal("99.99"), dt.date(2026, 3, 1), b"\x00\x01"]
    assert client.call("model.echo.it", *sent) == {"echo": sent}


# -- the error table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "code", "tries"),
    [
        (403, ErrorCode.PERMISSION_DENIED, 1),
        (404, ErrorCode.CONFIGURATION_INCOMPLETE, 1),
        (500, ErrorCode.UNAVAILABLE, 4),
        (502, ErrorCode.UNAVAILABLE, 4),
        (504, ErrorCode.UNAVAILABLE, 4),
        (400, ErrorCode.UNEXPECTED, 1),
        (507, ErrorCode.UNAVAILABLE, 4),
    ],
)
def test_http_statuses_map_to_catalogue_codes(server, client, http_status, code, tries):
    """Permanent errors are never retried; a read is retried after a passing server error."""
    server.script["model.account.move.read"] = [status(http_status, body=b"<h1>Oops</h1>")] * 9
    with pytest.raises(ConnectorError) as caught:
        client.read("account.move", [1], ["number"])
    assert caught.value.code == code
    assert caught.value.status == http_status
    assert len(server.calls("model.account.move.read")) == tries
    assert tries == 1 or tries == client.retry_policy.max_attempts


@pytest.mark.parametrize("http_status", [500, 502, 504])
def test_write_of_unknown_outcome_is_never_sent_twice(server, client, sleeps, http_status):
    server.script["model.account.move.create"] = [status(http_status)] * 3
    with pytest.raises(TrytonError) as caught:
        client.create("account.move", [{"journal": 1}])
    assert len(server.calls("model.account.move.create")) == 1 and not sleeps
    assert caught.value.code == ErrorCode.UNAVAILABLE and caught.value.is_transient
    assert caught.value.delivery is Delivery.UNKNOWN and caught.value.unknown_outcome


def test_read_after_a_passing_error_is_retried_and_succeeds(server, client, sleeps):
    server.script["model.account.move.search_read"] = [status(502), status(500), result([])]
    assert client.search_read("account.move", [], ["id"]) == []
    assert len(server.calls("model.account.move.search_read")) == 3 and len(sleeps) == 2


def test_methods_that_are_reads():
    for method in ("model.account.move.search_read", "model.a.read", "model.a.search_count",
                   "model.res.user.get_preferences", "common.db.login",
                   "report.account.invoice.execute"):  # fmt: skip
        assert is_idempotent(method), method
    for method in ("model.account.move.create", "model.account.move.write", "model.a.delete",
                   "model.account.move.post", "model.a.copy", "wizard.a.execute",
                   "model.slow.call"):  # fmt: skip
        assert not is_idempotent(method), method


def test_unknown_database_on_login_is_a_configuration_error(server, client):
    server.script["common.db.login"] = [status(404)]
    with pytest.raises(ConnectorError) as caught:
        client.login()
    assert caught.value.code == ErrorCode.CONFIGURATION_INCOMPLETE
    assert "'demo'" in caught.value.message


def test_refused_login_is_authentication_failed_without_retry(server, client):
    server.script["common.db.login"] = [status(401)]
    with pytest.raises(ConnectorError) as caught:
        client.call("model.x.y")
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED
    assert len(server.calls("common.db.login")) == 1


def test_retry_after_is_obeyed_then_the_call_is_sent_again(server, client, sleeps):
    server.script["common.db.login"] = [status(429, {"Retry-After": "7"})]
    client.login()
    assert sleeps == [7.0]
    assert len(server.calls("common.db.login")) == 2


def test_retry_after_beyond_the_cap_gives_up_at_once_keeping_it(server, sleeps):
    server.script["common.db.login"] = [status(429, {"Retry-After": "120"})]
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, sleep=sleeps.append,
                          retry=RetryPolicy(max_retry_after=60))  # fmt: skip
    with pytest.raises(ConnectorError) as caught:
        tryton.login()
    assert caught.value.code == ErrorCode.RATE_LIMITED
    assert caught.value.retry_after == 120.0
    assert caught.value.is_transient
    assert not sleeps and len(server.calls("common.db.login")) == 1


def test_rate_limited_write_is_retried_as_it_was_not_processed(server, client, sleeps):
    """A 429 refuses the request unprocessed: even a write is sent again (with backoff when
    there is no Retry-After); when it persists the error has no retry_after."""
    server.script["model.a.b"] = [status(429)] * 9
    with pytest.raises(ConnectorError) as caught:
        client.call("model.a.b")
    assert (caught.value.code, caught.value.retry_after) == (ErrorCode.RATE_LIMITED, None)
    assert len(server.calls("model.a.b")) == client.retry_policy.max_attempts
    assert len(sleeps) == client.retry_policy.max_attempts - 1


def test_expired_session_logs_in_again_once_and_retries(server, client):
    client.login()
    server.script["model.account.move.search"] = [status(401)]
    assert client.search("account.move", []) == {"echo": [[], 0, None, None, CONTEXT]}
    assert len(server.calls("common.db.login")) == 2
    second = "Session " + base64.b64encode(f"alice:7:{TOKEN}-2".encode()).decode()
    assert server.headers_of("model.account.move.search")[-1]["Authorization"] == second


def test_session_refused_twice_gives_up_with_authentication_failed(server, client):
    client.login()
    server.script["model.account.move.search"] = [status(401), status(401)]
    with pytest.raises(ConnectorError) as caught:
        client.search("account.move", [])
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED
    assert len(server.calls("common.db.login")) == 2
    assert len(server.calls("model.account.move.search")) == 2


def test_lock_conflict_is_retried_with_bounded_backoff_then_succeeds(server, client, sleeps):
    server.script["model.account.move.post"] = [status(503), status(503), result(None)]
    assert client.execute("account.move", "post", [5]) is None
    assert len(server.calls("model.account.move.post")) == 3
    assert len(sleeps) == 2
    # Exponential with jitter: attempt n waits within [base*2^n/2, base*2^n], capped.
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


def test_lock_conflict_that_persists_becomes_unavailable(server, client, sleeps):
    server.script["model.account.move.post"] = [status(503)] * 10
    with pytest.raises(ConnectorError) as caught:
        client.execute("account.move", "post", [5])
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert len(server.calls("model.account.move.post")) == client.retry_policy.max_attempts
    assert all(delay <= client.retry_policy.max_delay for delay in sleeps)
    assert not caught.value.unknown_outcome  # rolled back: nothing to look up


def test_503_retry_after_is_obeyed(server, client, sleeps):
    server.script["model.account.move.post"] = [status(503, {"Retry-After": "2"}), result(None)]
    client.execute("account.move", "post", [5])
    assert sleeps == [2.0]


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("1.5", 1.5), ("soon", None), ("", None)]
)
def test_retry_after_header_values(header, seconds):
    assert http_module.retry_after(header) == seconds
    date = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
    assert 25 <= http_module.retry_after(date) <= 30


def test_backoff_never_exceeds_its_cap():
    policy = RetryPolicy(base_delay=1, max_delay=4)
    assert max(policy.backoff(attempt) for attempt in range(12)) <= 4


def test_unreachable_server_is_unavailable_after_bounded_retries(sleeps):
    """Nothing was sent: every call is retried, the login included."""
    tryton = TrytonClient("http://127.0.0.1:9/", "demo", "alice", PASSWORD, connect_timeout=1,
                          sleep=sleeps.append)  # fmt: skip
    with pytest.raises(TrytonError) as caught:
        tryton.login()
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "127.0.0.1:9" in caught.value.message
    assert caught.value.delivery is Delivery.NOT_APPLIED
    assert len(sleeps) == tryton.retry_policy.max_attempts - 1
    assert sum(sleeps) <= tryton.retry_policy.max_total_delay


def test_connection_dropped_after_sending_retries_a_read_never_a_write(server, client, sleeps):
    server.script["model.account.move.read"] = [DROP, result([{"id": 1}])]
    assert client.read("account.move", [1], ["id"]) == [{"id": 1}]
    assert len(server.calls("model.account.move.read")) == 2
    server.script["model.account.move.write"] = [DROP, result(None)]
    with pytest.raises(TrytonError) as caught:
        client.write("account.move", [1], {"description": "x"})
    assert len(server.calls("model.account.move.write")) == 1
    assert caught.value.code == ErrorCode.UNAVAILABLE and caught.value.unknown_outcome
    assert "closed the connection" in caught.value.message


def slow(seconds: float, reply: Reply | None = None) -> Handler:
    def handler(body, headers):
        time.sleep(seconds)
        return reply or result(None)

    return handler


def test_slow_answer_times_out_as_unavailable(server, sleeps):
    server.script["model.slow.call"] = [slow(0.6)]
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, timeout=0.2, sleep=sleeps.append)
    with pytest.raises(TrytonError) as caught:
        tryton.call("model.slow.call")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "did not answer" in caught.value.message
    # A write that timed out is not sent again; its caller waits at least as long before
    # looking its outcome up.
    assert len(server.calls("model.slow.call")) == 1
    assert caught.value.unknown_outcome and caught.value.settle == 0.2


def test_read_that_timed_out_is_sent_again(server, sleeps):
    server.script["model.a.search"] = [slow(0.6, result([1])), result([2])]
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, timeout=0.2, sleep=sleeps.append)
    assert tryton.search("a", []) == [2]
    assert len(server.calls("model.a.search")) == 2


def test_user_error_is_target_rejected_with_its_message(server, client):
    server.script["model.account.move.post"] = [
        error(["UserError", ['To post move "12", you must balance all its lines.', "", None]])
    ]
    with pytest.raises(TrytonError) as caught:
        client.execute("account.move", "post", [12])
    assert caught.value.code == ErrorCode.TARGET_REJECTED
    assert caught.value.tryton_error == "UserError"
    assert "you must balance all its lines" in caught.value.message
    assert caught.value.detail.startswith('To post move "12"')


def test_access_error_is_permission_denied(server, client):
    server.script["model.account.move.create"] = [
        error(["UserError", ['You are not allowed to create records of "Account Move".', "", None]])
    ]
    with pytest.raises(ConnectorError) as caught:
        client.create("account.move", [{}])
    assert caught.value.code == ErrorCode.PERMISSION_DENIED


def test_user_warning_is_a_typed_warning_that_can_be_acknowledged(server, client):
    warning = error(["UserWarning", ["invoice_date_12", "The payment date is past.", ""]])
    server.script["model.account.invoice.post"] = [warning]
    with pytest.raises(TrytonWarning) as caught:
        client.execute("account.invoice", "post", [12])
    assert caught.value.key == "invoice_date_12"
    assert "The payment date is past." in caught.value.message

    server.script["model.account.invoice.post"] = [warning, result(None)]
    server.script["model.res.user.warning.create"] = [result([1])]
    client.execute("account.invoice", "post", [12], acknowledge=True)
    (ack,) = server.calls("model.res.user.warning.create")
    assert ack["params"][0] == [{"user": 7, "name": "invoice_date_12", "always": False}]


def test_internal_error_keeps_only_the_exception_name_of_its_message(server, client):
    message = "KeyError: 'account'\n" + "x" * 30_000
    traceback = "Traceback (most recent call last):\n" + "  File ...\n" * 3000
    server.script["model.account.move.create"] = [error([message, traceback])]
    with pytest.raises(ConnectorError) as caught:
        client.create("account.move", [{}])
    assert caught.value.code == ErrorCode.UNEXPECTED
    assert "internal error (KeyError)" in caught.value.message
    assert "'account'" not in caught.value.message
    assert len(caught.value.message) <= 600
    assert "Traceback" not in caught.value.message


def test_huge_user_error_is_capped(server, client):
    server.script["model.a.b"] = [error(["UserError", ["Refused " + "y" * 40_000, "", None]])]
    with pytest.raises(ConnectorError) as caught:
        client.call("model.a.b")
    assert len(caught.value.message) <= http_module.MESSAGE_LIMIT + 100


def test_answer_that_is_not_json_rpc_is_unexpected(server, client):
    server.script["model.a.b"] = [status(200, body=b"<html>proxy login page</html>")]
    with pytest.raises(ConnectorError) as caught:
        client.call("model.a.b")
    assert caught.value.code == ErrorCode.UNEXPECTED


def test_every_documented_status_has_a_rule():
    keys = (401, 403, 404, 429, 500, 502, 503, 504, "connection", "dropped", "timeout", "UserError")
    for key in keys:
        assert key in ERROR_TABLE
    not_applied = {r.key for r in ERROR_TABLE.rows if r.delivery is Delivery.NOT_APPLIED}
    assert not_applied == {429, 503, "connection"}
    unknown = {r.key for r in ERROR_TABLE.rows if r.delivery is Delivery.UNKNOWN}
    assert unknown == {500, 502, 504, "5xx", "dropped", "timeout"}
    assert ERROR_TABLE[401].relogin and ERROR_TABLE[401].delivery is Delivery.FINAL


def test_requests_never_retries_on_its_own(client):
    adapter = client._http.get_adapter(client.endpoint)
    assert adapter.max_retries.total == 0


# -- secrets ---------------------------------------------------------------------------------


def test_password_and_token_never_appear_in_logs_messages_or_reprs(server, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    echo = f"Login failed for alice with password {PASSWORD} and session {TOKEN}"
    server.script["model.a.b"] = [
        status(503),
        error(["UserError", [echo, PASSWORD, None]]),
    ]
    server.script["model.c.d"] = [error([f"ValueError: {PASSWORD}", f"tb {PASSWORD}"])]
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, sleep=sleeps.append)
    errors = []
    for method in ("model.a.b", "model.c.d"):
        with pytest.raises(ConnectorError) as caught:
            tryton.call(method)
        errors.append(caught.value)
    server.script["common.db.login"] = [status(401)]
    tryton._drop_session()
    with pytest.raises(ConnectorError) as caught:
        tryton.login()
    errors.append(caught.value)
    tryton.close()

    texts = [caplog.text, repr(tryton), str(tryton), repr(tryton.__dict__.get("_http"))]
    for found in errors:
        texts += [str(found), repr(found), found.message, found.detail, repr(found.args)]
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text
    assert "***" in errors[0].message


def test_repr_shows_neither_login_nor_password():
    tryton = TrytonClient("http://127.0.0.1:9/", "demo", "alice", PASSWORD)
    assert PASSWORD not in repr(tryton)
    assert "alice" not in repr(tryton)


# -- the connectors on top of the client -------------------------------------------------------

TARGET_CONFIG = ConnectionConfig(
    AuthKind.CREDENTIALS,
    {"url": "http://127.0.0.1:9/", "database": "demo"},
    {"username": "alice", "password": PASSWORD},
)


def _row(id_, code, *, party=False, has_type=True):
    return AccountRow(id_, code, code, has_type, False, True, party)


def _target(client: TrytonClient) -> TrytonTarget:
    target = TrytonTarget(TARGET_CONFIG, client=client)
    target._journals = {"REV": 1}
    target._periods[1] = [
        PeriodRow(9, "2026-03", dt.date(2026, 3, 1), dt.date(2026, 3, 31), "open")
    ]
    target._accounts[1] = {
        "4111": _row(10, "4111", party=True),
        "706": _row(20, "706"),
        "44571": _row(30, "44571"),
        "70": _row(40, "70", has_type=False),
    }
    target._taxes[1] = {44: {"id": 44, "type": "percentage", "rate": Decimal("0.2"), "childs": []}}
    return target


def _posting(key: str, invoice_type=InvoiceType.CUSTOMER_INVOICE, draft=False) -> Posting:
    refund = invoice_type.is_refund
    amounts = [(Decimal("120.00"), Decimal(0)), (Decimal(0), Decimal("100.00")),
               (Decimal(0), Decimal("20.00"))]  # fmt: skip
    if refund:
        amounts = [(credit, debit) for debit, credit in amounts]
    (d1, c1), (d2, c2), (d3, c3) = amounts
    return Posting(
        journal="REV", date=dt.date(2026, 3, 10), reference=f"F-{key}",
        external_id=f"invsync:1:invoice:{key}", currency="EUR", company_currency="EUR",
        draft=draft, partner_ref="5", invoice_type=invoice_type,
        lines=(
            EntryLine("4111", d1, c1, "Acme", partner="Acme", maturity_date=dt.date(2026, 4, 9)),
            EntryLine("706", d2, c2, "Service", vat_code="44", tax_role=TaxRole.BASE),
            EntryLine("44571", d3, c3, "VAT 20 %", vat_code="44", tax_role=TaxRole.TAX),
        ),
    )  # fmt: skip


def test_move_keeps_the_external_id_in_its_description_and_party_on_the_collective_only(client):
    values = _target(client)._move_values(1, _posting("42"))
    assert values["description"] == "F-42 [invsync:1:invoice:42]"
    assert external_id_of(values["description"]) == "invsync:1:invoice:42"
    (_, lines), = values["lines"]  # fmt: skip
    assert [line.get("party") for line in lines] == [5, None, None]
    assert lines[0]["maturity_date"] == dt.date(2026, 4, 9)
    assert lines[1]["tax_lines"] == [
        ["create", [{"tax": 44, "amount": Decimal("100.00"), "type": "base"}]]
    ]


def test_refund_tax_lines_are_negative_as_tryton_signs_credit_notes(client):
    values = _target(client)._move_values(1, _posting("7", InvoiceType.CUSTOMER_REFUND))
    (_, lines), = values["lines"]  # fmt: skip
    assert lines[1]["debit"] == Decimal("100.00")
    assert lines[1]["tax_lines"][0][1][0]["amount"] == Decimal("-100.00")
    assert lines[2]["tax_lines"][0][1][0] == {"tax": 44, "amount": Decimal("-20.00"), "type": "tax"}


def test_view_account_refuses_the_entry_alone_without_calling_tryton(server, client):
    posting = _posting("9")
    bad = replace(posting, lines=(posting.lines[0], replace(posting.lines[1], account="70"),
                                  posting.lines[2]))  # fmt: skip
    server.script["model.account.move.search_read"] = [result([])]
    (only,) = _target(client).create_entries("1", [EntryToWrite(bad)])
    assert only.error.code == ErrorCode.TARGET_REJECTED
    assert "view account" in only.error.message
    assert not server.calls("model.account.move.create")


def test_batch_is_created_in_one_call_and_a_move_refused_at_posting_is_discarded(server, client):
    refused = error(["UserError", ['To post move "12", you must balance all its lines.', "", None]])
    server.script.update({
        "model.account.move.search_read": [result([])],
        "model.account.move.create": [result([11, 12])],
        "model.account.move.post": [refused, result(None), refused],
        "model.account.move.delete": [result(None)],
        "model.account.move.read": [result([{"id": 11, "number": "2026-000007"}])],
    })  # fmt: skip
    results = _target(client).create_entries(
        "1", [EntryToWrite(_posting("1")), EntryToWrite(_posting("2"))]
    )
    assert len(server.calls("model.account.move.create")) == 1
    assert [c["params"][0] for c in server.calls("model.account.move.post")] == [
        [11, 12], [11], [12]
    ]  # fmt: skip
    assert server.calls("model.account.move.delete")[0]["params"][0] == [12]
    assert results[0].ref == EntryRef("11", "2026-000007", False)
    assert results[1].ref is None
    assert results[1].error.code == ErrorCode.TARGET_REJECTED
    assert "F-2" in results[1].error.message and "balance" in results[1].error.message


def test_entries_already_in_tryton_are_never_written_again(server, client):
    server.script.update({
        "model.account.move.search_read": [result([
            {"id": 3, "number": "9", "state": "posted", "origin": None,
             "description": "F-1 [invsync:1:invoice:1]"},
            # Near misses that the widened LIKE pattern also returns.
            {"id": 4, "number": "10", "state": "posted", "origin": None,
             "description": "F-1x [invsync:1:invoice:1x]"},
            {"id": 5, "number": "11", "state": "posted", "origin": "account.move,3",
             "description": "F-1 [invsync:1:invoice:1]"},
        ])],
        "model.ir.attachment.search_read": [result([{"id": 1, "resource": "account.move,3"}])],
    })  # fmt: skip
    (only,) = _target(client).create_entries("1", [EntryToWrite(_posting("1"))])
    assert only.ref == EntryRef("3", "9", True)
    assert not server.calls("model.account.move.create")
    domain = server.calls("model.account.move.search_read")[0]["params"][0]
    assert domain[1] == ["OR", ["description", "like", "%[invsync:1:invoice:1]"]]


class _StubClient:
    def __init__(self, taxes):
        self.taxes = taxes

    def search_read(self, model, domain, fields, **kwargs):
        assert model == "account.tax"
        return self.taxes


def test_source_line_tax_uses_the_child_valid_on_the_tax_date_and_half_even_rounding():
    taxes = [
        {"id": 1, "type": "none", "childs": [42, 43], "parent": None, "group.": {"kind": "sale"}},
        {"id": 42, "type": "percentage", "rate": Decimal("0.20"), "childs": [], "parent": 1,
         "start_date": dt.date(2014, 1, 1), "end_date": None},
        {"id": 43, "type": "percentage", "rate": Decimal("0.196"), "childs": [], "parent": 1,
         "start_date": None, "end_date": dt.date(2013, 12, 31)},
    ]  # fmt: skip
    source = TrytonSource(TARGET_CONFIG, client=_StubClient(taxes))
    cent = Decimal("0.01")
    rate, tax, kind = source._line_tax([1], dt.date(2026, 1, 1), Decimal("0.125"), Decimal(1), cent)
    assert (rate, tax) == (Decimal(20), Decimal("0.02"))  # 0.025 rounds half even
    assert kind == "standard"
    rate, tax, _ = source._line_tax([1], dt.date(2012, 6, 1), Decimal("100.00"), Decimal(1), cent)
    assert (rate, tax) == (Decimal("19.6"), Decimal("19.60"))
    (sales,) = source.list_tax_rates()
    assert (sales.tax_id, sales.rate, sales.direction) == ("1", Decimal(20), Direction.SALES)


def test_credentials_in_the_url_are_not_shown():
    tryton = TrytonClient(
        "http://bob:hunter22@127.0.0.1:9/", "demo", "alice", PASSWORD, retry=NO_RETRY
    )
    assert "hunter22" not in repr(tryton)
    with pytest.raises(ConnectorError) as caught:
        tryton.login()
    assert "hunter22" not in caught.value.message


# -- rate limit and settings -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_every_request_retries_included_waits_for_the_rate_limiter(server, sleeps):
    clock = FakeClock()
    limiter = RateLimiter(3, 10, clock=clock, sleep=clock.sleep)
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, rate_limiter=limiter,
                          sleep=sleeps.append)  # fmt: skip
    server.script["model.a.search"] = [status(502), result([1])]
    # login + preferences + 502 + retry: the 4th request waits for the window to roll.
    assert tryton.search("a", []) == [1]
    assert len(server.requests) == 4
    assert clock.slept == [10.0]
    assert len(sleeps) == 1  # the retry's own backoff


def test_connection_settings_set_timeout_rate_limit_and_retries():
    forget_shared_limiters()
    settings = {"url": "http://127.0.0.1:9/", "database": "demo", "timeout": "2.5",
                "rate_limit": "25/5s", "retry_attempts": "2", "retry_base_delay": "0.1",
                "retry_max_total_delay": "3", "retry_after_max": "9"}  # fmt: skip
    config = ConnectionConfig(AuthKind.CREDENTIALS, settings, {"username": "a", "password": "p"})
    tryton = client_from_config(config)
    assert tryton.timeout == 2.5
    assert tryton.retry_policy == RetryPolicy(
        max_attempts=2, base_delay=0.1, max_total_delay=3, max_retry_after=9
    )
    assert (tryton.rate_limiter.requests, tryton.rate_limiter.window) == (25, 5.0)
    # One limiter per connection in the process: a second client of it shares the window.
    assert client_from_config(config).rate_limiter is tryton.rate_limiter
    other = ConnectionConfig(AuthKind.CREDENTIALS, {**settings, "database": "other"},
                             {"username": "a", "password": "p"})  # fmt: skip
    assert client_from_config(other).rate_limiter is not tryton.rate_limiter
    # The connector's default applies without a setting; "none" turns it off.
    plain = ConnectionConfig(AuthKind.CREDENTIALS, {"url": "http://127.0.0.1:9/", "database": "d"},
                             {"username": "a", "password": "p"})  # fmt: skip
    assert client_from_config(plain).rate_limiter is None
    assert client_from_config(plain, rate_limit=(60, 60.0)).rate_limiter.requests == 60
    off = replace(plain, settings={**plain.settings, "rate_limit": "none"})
    assert client_from_config(off, rate_limit=(60, 60.0)).rate_limiter is None


@pytest.mark.parametrize(
    ("name", "value"), [("rate_limit", "fast"), ("rate_limit", "10/"), ("retry_attempts", "-1")]
)
def test_malformed_transport_settings_are_configuration_errors(name, value):
    settings = {"url": "http://127.0.0.1:9/", "database": "demo", name: value}
    config = ConnectionConfig(AuthKind.CREDENTIALS, settings, {"username": "a", "password": "p"})
    with pytest.raises(InvsyncError) as caught:
        client_from_config(config)
    assert caught.value.code == ErrorCode.CONFIGURATION_INCOMPLETE


def test_tryton_connections_declare_their_transport_settings():
    for cls in (TrytonSource, TrytonTarget):
        names = {field.name for field in cls.settings_fields}
        assert {"timeout", "rate_limit", "retry_attempts", "retry_max_total_delay"} <= names
        assert cls.rate_limit is None  # self-hosted: no published limit


# -- a write of unknown outcome, retried as a whole by the target ------------------------------


def _move_row(move_id: int, key: str, state: str) -> dict[str, Any]:
    return {"id": move_id, "number": "" if state == "draft" else f"N{move_id}", "state": state,
            "origin": None, "description": f"F-{key} [invsync:1:invoice:{key}]"}  # fmt: skip


def test_create_dropped_after_it_was_applied_is_completed_not_written_again(server, client):
    """The connection dropped after Tryton created the move: the target looks again, finds the
    draft, posts it and attaches its file; one create call in all."""
    from connectors.canonical import Attachment

    server.script.update({
        "model.account.move.search_read": [result([]), result([_move_row(11, "1", "draft")])],
        "model.account.move.create": [DROP],
        "model.account.move.post": [result(None)],
        "model.ir.attachment.search_read": [result([])],
        "model.ir.attachment.create": [result([1])],
        "model.account.move.read": [result([{"id": 11, "number": "N11"}])],
    })  # fmt: skip
    pdf = Attachment("F-1.pdf", "application/pdf", b"%PDF")
    (only,) = _target(client).create_entries("1", [EntryToWrite(_posting("1"), pdf)])
    assert only.ref == EntryRef("11", "N11", True)
    assert len(server.calls("model.account.move.create")) == 1
    assert [c["params"][0] for c in server.calls("model.account.move.post")] == [[11]]
    assert len(server.calls("model.ir.attachment.create")) == 1


def test_create_dropped_before_it_was_applied_is_written_once_on_the_next_try(server, client):
    server.script.update({
        "model.account.move.search_read": [result([]), result([])],
        "model.account.move.create": [DROP, result([12])],
        "model.account.move.post": [result(None)],
        "model.account.move.read": [result([{"id": 12, "number": "N12"}])],
    })  # fmt: skip
    (only,) = _target(client).create_entries("1", [EntryToWrite(_posting("2"))])
    assert only.ref == EntryRef("12", "N12", False)
    assert len(server.calls("model.account.move.create")) == 2
    assert len(server.calls("model.account.move.search_read")) == 2


def test_timed_out_create_waits_at_least_the_timeout_before_looking_again(server, sleeps):
    tryton = TrytonClient(server.url, "demo", "alice", PASSWORD, timeout=0.3, sleep=sleeps.append)
    server.script.update({
        "model.account.move.search_read": [result([]), result([_move_row(13, "3", "posted")])],
        "model.account.move.create": [slow(0.6, result([13]))],
        "model.ir.attachment.search_read": [result([])],
    })  # fmt: skip
    (only,) = _target(tryton).create_entries("1", [EntryToWrite(_posting("3"))])
    assert only.ref == EntryRef("13", "N13", False)
    assert len(server.calls("model.account.move.create")) == 1
    assert sleeps and sleeps[0] >= 0.3
    tryton.close()


def test_target_gives_up_when_writes_keep_failing_and_the_error_stays_transient(server, client):
    server.script.update({
        "model.account.move.search_read": [result([])] * 9,
        "model.account.move.create": [DROP] * 9,
    })  # fmt: skip
    with pytest.raises(TrytonError) as caught:
        _target(client).create_entries("1", [EntryToWrite(_posting("4"))])
    assert caught.value.code == ErrorCode.UNAVAILABLE and caught.value.unknown_outcome
    assert len(server.calls("model.account.move.create")) == client.retry_policy.max_attempts


def test_permanent_refusal_of_a_create_is_not_retried(server, client):
    server.script.update({
        "model.account.move.search_read": [result([])] * 3,
        "model.account.move.create": [
            error(["UserError", ['You are not allowed to create records of "Move".', "", None]])
        ],
    })  # fmt: skip
    with pytest.raises(ConnectorError) as caught:
        _target(client).create_entries("1", [EntryToWrite(_posting("5"))])
    assert caught.value.code == ErrorCode.PERMISSION_DENIED
    assert len(server.calls("model.account.move.create")) == 1
