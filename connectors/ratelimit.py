"""Client-side rate limiting: at most N requests in any rolling window of W seconds, per connection.

A connector class states its vendor's published limit as ``rate_limit = (requests, seconds)``
(None: no published limit); a connection may override it with the setting ``rate_limit``
(``"60/60"``, ``"25/5s"``, ``"500/1m"``; ``"none"`` turns limiting off). The client asks the
limiter for a slot before sending each request (retries included) and sleeps while the window is
full, so the published limit is never exceeded by the deployment (see Scope).

How the window is counted: a request holds its slot from the moment it is sent until ``window``
seconds after its answer arrived (or it failed). The server receives a request between those two
moments, so however long requests take, the server never sees more than N requests from us in any
window of W seconds. (Counting from the send time alone is not enough: a slow
request followed by a fast one can reach the server closer together than they were sent.)

Scope: every process of the deployment. The window a connector's client waits on is handed to
it (:class:`RateWindows`, in its :class:`~connectors.base.ConnectionConfig`): connectors take no
ORM. The deployment's windows live in the database
(:mod:`connectors.ratelimit_store`, built by :func:`connectors.selectors.connector_for`);
without windows handed in, a client counts in this process alone (:data:`PROCESS_WINDOWS`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

SLACK = 1e-6  # seconds
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|min|h)?\s*$", re.I)
OFF = frozenset({"none", "off", "no", "0", "false", "unlimited"})


# Bounds of a stated limit: beyond them the text is a typing mistake, not a limit.
MAX_REQUESTS = 1_000_000
MIN_WINDOW = 0.001  # seconds
MAX_WINDOW = 86_400.0  # seconds: a day


def parse_rate_limit(value: str) -> tuple[int, float] | None:
    """``"60/60"`` -> ``(60, 60.0)``; ``"25/5s"``, ``"500/1m"``, ``"100/h"`` also read; ``"none"``
    (or ``"off"``, ``"0"``) -> None. Raises ValueError for anything else, including no request
    per window (``"0/60"``: say ``"none"`` to turn limiting off), an empty window (``"5/0"``) and
    numbers past :data:`MAX_REQUESTS` requests or a window outside [MIN_WINDOW, MAX_WINDOW]."""
    text = str(value or "").strip().lower()
    if text in OFF:
        return None
    match = _LIMIT.match(text)
    if not match or not (match.group(2) or match.group(3)):
        raise ValueError(f"{value!r} is not a rate limit such as 60/60 (requests/seconds)")
    requests = int(match.group(1)) if len(match.group(1)) <= 10 else MAX_REQUESTS + 1
    window = float(match.group(2) or 1) * _UNITS[(match.group(3) or "").lower()]
    if not 1 <= requests <= MAX_REQUESTS:
        raise ValueError(f"{value!r} must allow 1 to {MAX_REQUESTS:,} requests per window")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ValueError(f"{value!r} must have a window of {MIN_WINDOW:g} s to one day")
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
                while self._done and self._done[0] + self.window <= now + SLACK:
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


class RateWindow(Protocol):
    """What a client calls around each request it sends (retries included): ``with
    window.slot(): send()``. :class:`RateLimiter` (one process) and
    :class:`connectors.ratelimit_store.DatabaseRateLimiter` (the deployment) are ones."""

    requests: int
    window: float

    def slot(self) -> contextlib.AbstractContextManager[object]: ...


class RateWindows(Protocol):
    """Where a client finds the window of the account it calls: one per ``key`` (what identifies
    the account at the vendor, e.g. URL, database and login; never kept in clear) and limit.
    ``hold``: seconds a request in flight keeps its slot at most. None without a limit."""

    def window(
        self, key: str, limit: tuple[int, float] | None, *, hold: float
    ) -> RateWindow | None: ...


class ProcessWindows:
    """:class:`RateWindows` counted in this process alone: one :class:`RateLimiter` per key and
    limit. Exact where one process calls the account (a laptop, tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int, float], RateLimiter] = {}

    def window(
        self, key: str, limit: tuple[int, float] | None, *, hold: float = 0.0
    ) -> RateLimiter | None:
        if limit is None:
            return None
        requests, window = limit
        identity = (hashlib.sha256(key.encode("utf-8")).hexdigest(), int(requests), float(window))
        with self._lock:
            limiter = self._windows.get(identity)
            if limiter is None:
                limiter = self._windows[identity] = RateLimiter(requests, window)
            return limiter

    def forget(self) -> None:
        """Drop every window (tests)."""
        with self._lock:
            self._windows.clear()


# The windows of a client given none (connectors.base.ConnectionConfig.rate_windows unset).
PROCESS_WINDOWS = ProcessWindows()
