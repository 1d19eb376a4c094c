"""A fault-injecting HTTP proxy on 127.0.0.1, for tests that put it in front of a live server.

Point a connection's URL at :attr:`FaultProxy.url`; every request is forwarded to the upstream
server unless a scheduled :class:`Fault` matches it. Faults match by JSON-RPC method (read from the
request body, ``fnmatch`` patterns), by request number (counted by the proxy from 1), or both, and
fire a given number of times:

- ``Fault.timeout(hold=...)``: hold the request longer than the client waits, then close without
  answering; with ``after=True`` the request is forwarded first (the server applied it, the client
  saw a timeout).
- ``Fault.drop()``: close the connection without answering, before forwarding or, with
  ``after=True``, after the server answered (the nasty case: a write happened, the client saw an
  error).
- ``Fault.status(502)`` (500, 503...), ``Fault.rate_limited(retry_after=1)`` (429 with
  ``Retry-After``): answer that status instead of forwarding (``after=True``: forward, then answer
  the status instead of the server's answer).
- ``Fault.down()``: the server goes away: this request is dropped (forwarded first with
  ``after=True``) and the proxy stops listening, so that the next connections are refused, until
  :meth:`FaultProxy.up`. :meth:`FaultProxy.down` does the same at once.

Every request is logged (:attr:`FaultProxy.log`): number, method, arrival and end times, the fault
applied, whether the upstream got it, the status answered.

Safety: binds 127.0.0.1 only and serves 127.0.0.1 clients only; the upstream must be a loopback
address; holds are capped (``max_hold``) and cut short when the proxy stops; at most
``max_requests`` are served (later ones are dropped); the proxy stops by itself after
``lifetime`` seconds, and when its ``with`` block (or test) ends. Threads are daemons.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
    "server", "date",  # the proxy sends its own
})  # fmt: skip


@dataclass
class Fault:
    """One scheduled fault (build them with the class methods)."""

    kind: str  # "timeout", "drop", "status", "down"
    method: str | None = None  # fnmatch pattern on the JSON-RPC method; None: any request
    nth: int | None = None  # only the proxy's request number ``nth`` (1-based)
    every: int | None = None  # only request numbers that are multiples of ``every``
    skip: int = 0  # let the first ``skip`` matching requests through
    times: int | None = 1  # how many requests it hits; None: all that match
    after: bool = False  # forward first (the server applies the request), then fault
    code: int = 503  # for "status"
    headers: dict[str, str] = field(default_factory=dict)  # for "status", e.g. Retry-After
    hold: float = 0.0  # for "timeout": seconds to hold the request
    fired: int = 0

    @classmethod
    def timeout(cls, hold: float, **match) -> Fault:
        return cls("timeout", hold=hold, **match)

    @classmethod
    def drop(cls, **match) -> Fault:
        return cls("drop", **match)

    @classmethod
    def status(cls, code: int, headers: dict[str, str] | None = None, **match) -> Fault:
        return cls("status", code=code, headers=dict(headers or {}), **match)

    @classmethod
    def rate_limited(cls, retry_after: float, **match) -> Fault:
        return cls.status(429, {"Retry-After": f"{retry_after:g}"}, **match)

    @classmethod
    def down(cls, **match) -> Fault:
        return cls("down", **match)

    def _matches(self, number: int, method: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method is not None and not fnmatch.fnmatchcase(method, self.method):
            return False
        if self.nth is not None and number != self.nth:
            return False
        if self.every is not None and number % self.every:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


@dataclass
class Record:
    """One request as the proxy saw it."""

    number: int
    method: str
    path: str
    arrived: float  # time.monotonic()
    ended: float = 0.0
    fault: str = ""  # the fault applied ("" when forwarded untouched)
    forwarded: bool = False
    status: int | None = None  # what the client got (None: no answer)


class FaultProxy:
    """See the module docstring. Use as a context manager, or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        upstream: str,
        *,
        max_requests: int = 20_000,
        max_hold: float = 30.0,
        lifetime: float = 900.0,
        upstream_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK or not parts.port:
            raise ValueError(f"the upstream must be http://127.0.0.1:<port>/, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.max_requests = max_requests
        self.max_hold = max_hold
        self.lifetime = lifetime
        self.upstream_timeout = upstream_timeout
        self.faults: list[Fault] = []
        self.log: list[Record] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._port = 0
        self._count = 0

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def start(self) -> FaultProxy:
        self._listen()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop for good: release held requests, close the listener. Safe to call twice."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
        self._close()

    def down(self) -> None:
        """The server goes away: new connections are refused until :meth:`up`."""
        self._close()

    def up(self) -> None:
        """The server is back, on the same port."""
        if self._server is None and not self._stopping.is_set():
            self._listen(self._port)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _listen(self, port: int = 0) -> None:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = _Server(("127.0.0.1", port), Handler)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _close(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- schedule and log -----------------------------------------------------------------------

    def schedule(self, *faults: Fault) -> None:
        """Add faults; the first one that matches a request applies to it."""
        with self._lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        """Remove every fault and forget the log (the request count goes on)."""
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def requests(self, method: str | None = None) -> list[Record]:
        """The logged requests, optionally those whose method matches a pattern."""
        with self._lock:
            records = list(self.log)
        if method is None:
            return records
        return [r for r in records if fnmatch.fnmatchcase(r.method, method)]

    def _admit(self, method: str, path: str) -> tuple[Record, Fault | None]:
        with self._lock:
            self._count += 1
            record = Record(self._count, method, path, time.monotonic())
            self.log.append(record)
            if self._count > self.max_requests:
                return record, Fault.drop()
            fault = next((f for f in self.faults if f._matches(self._count, method)), None)
            if fault is not None:
                fault.fired += 1
                record.fault = fault.kind if fault.kind != "status" else f"status {fault.code}"
            return record, fault

    def _hold(self, seconds: float) -> None:
        self._stopping.wait(min(max(0.0, seconds), self.max_hold))

    def _forward(self, handler: _Handler, body: bytes):
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=self.upstream_timeout
        )
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        finally:
            connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def verify_request(self, request, client_address) -> bool:
        return client_address[0] == "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.0"  # one request per connection: a fault never outlives it

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        proxy = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method = ""
        with contextlib.suppress(ValueError, AttributeError):
            method = str(json.loads(body or b"{}").get("method") or "")
        record, fault = proxy._admit(method, self.path)
        try:
            self._apply(proxy, record, fault, body)
        finally:
            record.ended = time.monotonic()

    def _apply(self, proxy: FaultProxy, record: Record, fault: Fault | None, body: bytes) -> None:
        answer = None
        if fault is None or fault.after:
            try:
                answer = proxy._forward(self, body)
            except OSError:
                answer = (502, [("Content-Type", "text/plain")], b"upstream unreachable")
            record.forwarded = True
        if fault is None:
            self._reply(record, *answer)
        elif fault.kind == "timeout":
            proxy._hold(fault.hold)
            self.close_connection = True
        elif fault.kind == "drop":
            self.close_connection = True
        elif fault.kind == "down":
            self.close_connection = True
            threading.Thread(target=proxy.down, daemon=True).start()
        elif fault.kind == "status":
            text = f"<html><title>{fault.code}</title><h1>Fault {fault.code}</h1></html>"
            headers = [("Content-Type", "text/html"), *fault.headers.items()]
            self._reply(record, fault.code, headers, text.encode())
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    def _reply(self, record: Record, status: int, headers, payload: bytes) -> None:
        record.status = status
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(payload)
