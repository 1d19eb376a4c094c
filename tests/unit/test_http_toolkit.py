"""The connector toolkit (connectors.http) against a real HTTP server on 127.0.0.1 (stdlib
``http.server`` in a thread): timeouts, retries of idempotent calls only, Retry-After, the error
table chosen by status, vendor code and message, re-authentication, scrubbing, the rate-limit
slot around every request, and pagination that streams one page at a time."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from connectors.errors import ErrorCode
from connectors.http import (
    CONNECTION,
    DROPPED,
    TIMEOUT,
    Action,
    ErrorRow,
    ErrorTable,
    HttpClient,
    HttpError,
    HttpSession,
    Scrubber,
    display_url,
    paginate_cursor,
    paginate_offset,
    paginate_pages,
)
from connectors.retry import Delivery, RetryPolicy

TOKEN = "tok-SECRET-9f8e7d6c"

Reply = tuple[int, dict[str, str], bytes] | Callable[[], tuple[int, dict[str, str], bytes]]


def reply(status: int, body: Any = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body if body is not None else {}).encode()
    return status, {"Content-Type": "application/json", **headers}, data


class Server:
    """Answers each path with its scripted replies in order (the last one repeats); notes every
    request (method, path with query, headers, body)."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, dict(self.headers), body))
                if server.delay:
                    time.sleep(server.delay)
                replies = server.script.get(self.path.split("?", 1)[0]) or [reply(404)]
                answer = replies.pop(0) if len(replies) > 1 else replies[0]
                status, headers, data = answer() if callable(answer) else answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


TABLE = ErrorTable(
    rows=(
        ErrorRow(
            ErrorCode.AUTHENTICATION_FAILED,
            "{vendor} refused the token.",
            Action.REAUTHENTICATE,
            status=401,
        ),
        ErrorRow(
            ErrorCode.RATE_LIMITED,
            "{vendor} rate-limits {method}.",
            Action.RATE_LIMITED,
            status=429,
        ),
        ErrorRow(
            ErrorCode.PERMISSION_DENIED,
            "{vendor} forbids it: {detail}",
            status=400,
            vendor_code="insufficient_scope",
        ),
        ErrorRow(
            ErrorCode.PARTNER_VALIDATION,
            "{vendor} refused the contact: {detail}",
            status=400,
            pattern=r"(?i)contact",
        ),
        ErrorRow(ErrorCode.TARGET_REJECTED, "{vendor} refused it: {detail}", status="4xx"),
        ErrorRow(
            ErrorCode.UNAVAILABLE, "{vendor} failed (HTTP {status}).", Action.RETRY, status="5xx"
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} at {url} cannot be reached: {detail}.",
            Action.RETRY,
            failure=CONNECTION,
            delivery=Delivery.NOT_APPLIED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} dropped {method} {url}: {detail}.",
            Action.RETRY,
            failure=DROPPED,
        ),
        ErrorRow(
            ErrorCode.UNAVAILABLE,
            "{vendor} did not answer {method} {url} in {timeout} s.",
            Action.RETRY,
            failure=TIMEOUT,
        ),
    ),
    default=ErrorRow(ErrorCode.UNEXPECTED, "{vendor} answered HTTP {status}: {detail}"),
)


def vendor_error(response: requests.Response) -> tuple[str | None, str | None]:
    body = response.json()
    return body.get("code"), body.get("message")


class CountingWindow:
    """A rate window that counts the slots taken (and checks each is released)."""

    requests, window = 100, 1.0

    def __init__(self) -> None:
        self.taken = 0
        self.held = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self.taken += 1
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


def make_client(server: Server, sleeps: list[float] | None = None, **kwargs: Any) -> HttpClient:
    session = HttpSession(
        timeout=kwargs.pop("timeout", 5.0), rate_window=kwargs.pop("rate_window", None)
    )
    client = HttpClient(
        server.url, "Acme", TABLE, http=session, vendor_error=vendor_error,
        retry=kwargs.pop("retry", RetryPolicy(max_attempts=3, base_delay=0.01)),
        sleep=(sleeps.append if sleeps is not None else (lambda _: None)), **kwargs,
    )  # fmt: skip
    client.set_header("Authorization", f"Bearer {TOKEN}")
    return client


# -- timeouts and retries --------------------------------------------------------------------


def test_a_read_that_times_out_is_the_timeout_row_retried_then_unavailable(server):
    server.script["/api/items"] = [reply(200, {"items": []})]
    server.delay = 0.5
    client = make_client(server, timeout=0.1)
    with pytest.raises(HttpError) as caught:
        client.request("GET", "items")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "did not answer GET" in caught.value.message and "0.1 s" in caught.value.message
    assert len(server.requests) == 3  # an idempotent read: tried max_attempts times
    assert caught.value.unknown_outcome is False


def test_a_write_of_unknown_outcome_is_not_sent_again_and_says_so(server):
    server.script["/api/invoices"] = [reply(502, {"message": "bad gateway"})]
    client = make_client(server)
    with pytest.raises(HttpError) as caught:
        client.request("POST", "invoices", json={"n": 1})
    assert len(server.requests) == 1
    assert caught.value.delivery is Delivery.UNKNOWN and caught.value.unknown_outcome


def test_an_idempotent_read_is_retried_after_a_passing_failure(server):
    server.script["/api/items"] = [reply(502), reply(200, {"items": [1]})]
    sleeps: list[float] = []
    client = make_client(server, sleeps)
    assert client.get_json("items") == {"items": [1]}
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_a_refused_connection_is_retried_even_for_a_write(server):
    url = server.url
    server.close()  # nothing listens: the connection is refused, nothing was sent
    client = make_client(server)
    client.base_url = url
    with pytest.raises(HttpError) as caught:
        client.request("POST", "invoices", json={})
    assert (
        caught.value.code == ErrorCode.UNAVAILABLE and "cannot be reached" in caught.value.message
    )
    assert caught.value.delivery is Delivery.NOT_APPLIED and not caught.value.unknown_outcome


def test_retry_after_is_honoured_before_the_call_is_sent_again(server):
    server.script["/api/items"] = [reply(429, {}, **{"Retry-After": "7"}), reply(200, {"ok": 1})]
    sleeps: list[float] = []
    client = make_client(server, sleeps, retry=RetryPolicy(max_attempts=3, max_total_delay=30))
    assert client.get_json("items") == {"ok": 1}
    assert sleeps and sleeps[0] >= 7.0
    # Even a write: a 429 was refused unprocessed.
    server.script["/api/invoices"] = [reply(429, {}, **{"Retry-After": "2"}), reply(201, {})]
    assert client.request("POST", "invoices", json={}).status_code == 201


def test_retry_after_beyond_the_policy_gives_up_at_once_keeping_it(server):
    server.script["/api/items"] = [reply(429, {}, **{"Retry-After": "600"})]
    client = make_client(server, retry=RetryPolicy(max_retry_after=60))
    with pytest.raises(HttpError) as caught:
        client.request("GET", "items")
    assert caught.value.code == ErrorCode.RATE_LIMITED and caught.value.retry_after == 600
    assert len(server.requests) == 1


def test_every_request_retries_included_takes_a_slot_of_the_rate_window(server):
    server.script["/api/items"] = [reply(503), reply(500), reply(200, {})]
    window = CountingWindow()
    client = make_client(server, rate_window=window)
    client.request("GET", "items")
    assert window.taken == len(server.requests) == 3 and window.held == 0


# -- the error table -------------------------------------------------------------------------


def test_rows_are_chosen_by_vendor_code_before_the_status_class(server):
    server.script["/api/a"] = [reply(400, {"code": "insufficient_scope", "message": "scope"})]
    server.script["/api/b"] = [reply(400, {"code": "other", "message": "bad date"})]
    client = make_client(server)
    with pytest.raises(HttpError) as by_code:
        client.request("GET", "a")
    with pytest.raises(HttpError) as by_status:
        client.request("GET", "b")
    assert by_code.value.code == ErrorCode.PERMISSION_DENIED
    assert by_code.value.vendor_code == "insufficient_scope"
    assert by_status.value.code == ErrorCode.TARGET_REJECTED
    assert by_status.value.message == "Acme refused it: bad date"


def test_a_row_may_also_match_the_vendor_message(server):
    server.script["/api/c"] = [reply(400, {"message": "The contact has no name"})]
    with pytest.raises(HttpError) as caught:
        make_client(server).request("POST", "c", json={})
    assert caught.value.code == ErrorCode.PARTNER_VALIDATION


def test_the_default_row_takes_what_no_row_matches(server):
    server.script["/api/d"] = [reply(302, {"message": "moved"})]
    with pytest.raises(HttpError) as caught:
        make_client(server).request("GET", "d")
    assert caught.value.code == ErrorCode.UNEXPECTED and caught.value.status == 302
    assert len(server.requests) == 1  # redirects are never followed


def test_a_refused_token_is_renewed_once_then_the_call_sent_again(server):
    server.script["/api/e"] = [reply(401), reply(200, {"ok": True})]
    renewals = []

    def authenticate(client: HttpClient) -> None:
        renewals.append(1)
        client.set_header("Authorization", "Bearer renewed-token")

    client = make_client(server, authenticate=authenticate)
    assert client.get_json("e") == {"ok": True}
    assert renewals == [1]
    assert server.requests[-1][2]["Authorization"] == "Bearer renewed-token"
    server.script["/api/f"] = [reply(401)]
    with pytest.raises(HttpError) as caught:
        client.request("GET", "f")
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED and len(renewals) == 2


def test_table_lookup_by_key_and_default():
    assert TABLE[429].action is Action.RATE_LIMITED
    assert TABLE[429].delivery is Delivery.NOT_APPLIED
    assert TABLE[TIMEOUT].delivery is Delivery.UNKNOWN
    assert TABLE.match(status=418).code == ErrorCode.TARGET_REJECTED  # the 4xx class
    assert TABLE.match(status=301) is TABLE.default


# -- secrets ---------------------------------------------------------------------------------


def test_a_token_in_the_url_a_header_or_an_echoing_body_never_reaches_the_message(server):
    server.script["/api/g"] = [
        reply(400, {"message": f"bad request: Authorization: Bearer {TOKEN} ?api_key={TOKEN}"})
    ]
    client = make_client(server)
    with pytest.raises(HttpError) as caught:
        client.request("GET", f"g?api_key={TOKEN}&page=2")
    assert TOKEN not in caught.value.message and TOKEN not in caught.value.detail
    assert TOKEN not in str(caught.value)
    assert server.requests[0][1].endswith(f"api_key={TOKEN}&page=2")  # it was sent, though
    server.delay = 0.3
    slow = make_client(server, timeout=0.05, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(HttpError) as timed_out:
        slow.request("GET", f"g?access_token={TOKEN}")
    assert TOKEN not in timed_out.value.message and "/api/g" in timed_out.value.message


def test_scrubber_takes_out_secrets_encoded_query_values_and_auth_values():
    scrubber = Scrubber(["p@ss word!"])
    text = scrubber.scrub(
        "pw=p%40ss%20word%21 pw2=p%40ss+word%21 raw=p@ss word! "
        "url=https://h/x?client_secret=abc123&q=1 Authorization: Basic dXNlcjpwYXNz"
    )
    assert "p@ss" not in text and "p%40ss" not in text
    assert "abc123" not in text and "q=1" in text and "dXNlcjpwYXNz" not in text
    assert display_url("https://user:pw@h.example/api/x?token=abc#f") == "https://h.example/api/x"


# -- pagination ------------------------------------------------------------------------------


def test_cursor_pages_stream_the_next_page_is_fetched_once_the_first_is_consumed(server):
    server.script["/api/list"] = [
        reply(200, {"items": [1, 2], "next": "c2"}),
        reply(200, {"items": [3], "next": None}),
    ]
    client = make_client(server)

    def fetch(cursor: str | None) -> tuple[list[int], str | None]:
        body = client.get_json("list", params={"cursor": cursor} if cursor else None)
        return body["items"], body["next"]

    items = paginate_cursor(fetch)
    assert next(items) == 1
    assert len(server.requests) == 1
    assert next(items) == 2
    assert len(server.requests) == 1  # the first page is not consumed past its last item yet
    assert list(items) == [3]
    assert len(server.requests) == 2 and server.requests[1][1].endswith("cursor=c2")


def test_page_number_and_offset_pagination_stop_at_a_short_or_empty_page():
    calls: list[tuple[int, ...]] = []

    def page(number: int) -> list[int]:
        calls.append((number,))
        return {1: [1, 2], 2: [3, 4], 3: [5]}.get(number, [])

    pages = paginate_pages(page, page_size=2)
    assert next(pages) == 1 and calls == [(1,)]
    assert list(pages) == [2, 3, 4, 5] and calls == [(1,), (2,), (3,)]

    calls.clear()

    def window(offset: int, limit: int) -> list[int]:
        calls.append((offset, limit))
        return list(range(offset, min(offset + limit, 5)))

    assert list(paginate_offset(window, limit=2)) == [0, 1, 2, 3, 4]
    assert calls == [(0, 2), (2, 2), (4, 2)]


def test_a_cursor_seen_twice_ends_the_listing():
    assert list(paginate_cursor(lambda c: ([c or "first"], "same"))) == ["first", "same"]
