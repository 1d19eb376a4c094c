"""Client-side rate limiting: at most N requests in any rolling window of W seconds, per connection.

A connector class states its vendor's published limit as ``rate_limit = (requests, seconds)``
(None: no published limit); a connection may override it with the setting ``rate_limit``
(``"60/60"``, ``"25/5s"``, ``"500/1m"``; ``"none"`` turns limiting off). The client asks the
limiter for a slot before sending each request (retries included) and sleeps while the window is
full, so the published limit is never exceeded by this process.

How the window is counted: a request holds its slot from the moment it is sent until ``window``
seconds after its answer arrived (or it failed). The server receives a request between those two
moments, so however long requests take, the server never sees more than N requests from this
process in any window of W seconds. (Counting from the send time alone is not enough: a slow
request followed by a fast one can reach the server closer together than they were sent.)

Scope: one process. Every client of the same connection in a process shares one limiter
(:func:`shared_limiter`), threads included. Several processes (django-q2 workers, hosts) each
keep their own window: one run per flow at a time bounds a flow, but two flows on the same
connection running in two workers could together send up to twice the limit. Keeping a vendor's
limit across processes needs a shared store (a Redis sorted set per connection, or a database
row locked per request); it is not implemented. What protects us then is the server's 429 and its
``Retry-After``, which the retry policy obeys (:mod:`connectors.retry`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

# Published limits of the vendors we plan to connect (notes/vendors.md), for their connector
# classes' ``rate_limit``. Only the tightest rolling window is enforced here: Xero's 5,000/day
# and its 5 concurrent calls, QuickBooks' 10 concurrent calls are left to the server's 429.
XERO_RATE_LIMIT = (60, 60.0)  # per tenant
PENNYLANE_RATE_LIMIT = (25, 5.0)  # per token
QUICKBOOKS_RATE_LIMIT = (500, 60.0)  # per realm
ODOO_RATE_LIMIT = None  # none published
TRYTON_RATE_LIMIT = None  # self-hosted: none; set one per connection when the server needs it

_SLACK = 1e-6  # seconds
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|min|h)?\s*$", re.I)
OFF = frozenset({"none", "off", "no", "0", "false", "unlimited"})


def parse_rate_limit(value: str) -> tuple[int, float] | None:
    """``"60/60"`` -> ``(60, 60.0)``; ``"25/5s"``, ``"500/1m"``, ``"100/h"`` also read; ``"none"``
    (or ``"off"``, ``"0"``) -> None. Raises ValueError for anything else."""
    text = str(value or "").strip().lower()
    if text in OFF:
        return None
    match = _LIMIT.match(text)
    if not match or not (match.group(2) or match.group(3)):
        raise ValueError(f"{value!r} is not a rate limit such as 60/60 (requests/seconds)")
    requests = int(match.group(1))
    window = float(match.group(2) or 1) * _UNITS[(match.group(3) or "").lower()]
    if requests <= 0:
        return None
    if window <= 0:
        raise ValueError(f"{value!r} has an empty window")
    return requests, window


def effective_rate_limit(
    setting: str | None, default: tuple[int, float] | None
) -> tuple[int, float] | None:
    """The connection's ``rate_limit`` setting when it has one, else the connector's default."""
    if setting is None or not str(setting).strip():
        return default
    return parse_rate_limit(setting)


class RateLimiter:
    """At most ``requests`` requests in any rolling window of ``window`` seconds. Thread-safe.

    Use ``with limiter.slot(): send()``. The clock and the sleep are injectable for tests.
    """

    def __init__(
        self,
        requests: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or window <= 0:
            raise ValueError("a rate limit needs at least one request per positive window")
        self.requests = int(requests)
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._done: deque[float] = deque()  # when recent requests ended, oldest first
        self._in_flight = 0
        self.waited = 0.0  # seconds spent waiting for room, in all (for logs and tests)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.requests}/{self.window:g}s>"

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for room, then hold one slot while the block sends its request."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> float:
        """Wait until one more request fits in the window and take its slot; returns the seconds
        waited. Pair each call with :meth:`release` once the request has ended."""
        waited = 0.0
        while True:
            with self._cond:
                now = self._clock()
                # A microsecond of slack, so that sleeping the computed wait always frees the
                # slot, whatever floating-point rounding does to the clock.
                while self._done and self._done[0] + self.window <= now + _SLACK:
                    self._done.popleft()
                if len(self._done) + self._in_flight < self.requests:
                    self._in_flight += 1
                    self.waited += waited
                    return waited
                if not self._done:
                    # Every slot is held by a request still in flight: wait for one to end.
                    self._cond.wait(timeout=self.window)
                    continue
                wait = self._done[0] + self.window - now
            self._sleep(wait)
            waited += wait

    def release(self) -> None:
        """The request of a slot ended (answered or failed): its slot frees ``window`` seconds
        from now."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._done.append(self._clock())
            self._cond.notify_all()


_SHARED: dict[tuple[str, int, float], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(key: str, limit: tuple[int, float] | None) -> RateLimiter | None:
    """The process-wide limiter of one connection (``key``: what identifies the account at the
    vendor, e.g. URL, database and login; it is hashed, never kept in clear). None without a
    limit. A changed limit gets a new limiter."""
    if limit is None:
        return None
    requests, window = limit
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    identity = (digest, int(requests), float(window))
    with _SHARED_LOCK:
        limiter = _SHARED.get(identity)
        if limiter is None:
            limiter = _SHARED[identity] = RateLimiter(requests, window)
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests)."""
    with _SHARED_LOCK:
        _SHARED.clear()
