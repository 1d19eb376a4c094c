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
import datetime as dt
import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from connectors.errors import RateLimitPause

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

    def limiter(
        self, key: str, limits: Limits | None, *, app_key: str = "", hold: float
    ) -> RateWindow | None:
        """Several windows and a concurrency cap (:class:`Limits`): ``key`` names the account
        (its ACCOUNT windows and cap), ``app_key`` the app (its APP windows). None without
        limits. The slot raises :class:`~connectors.errors.RateLimitPause` rather than sleep
        past ``limits.pause_after``."""
        ...


class ProcessWindows:
    """:class:`RateWindows` counted in this process alone: one :class:`RateLimiter` per key and
    limit. Exact where one process calls the account (a laptop, tests)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int, float], RateLimiter] = {}
        # The several-window limiters' state, shared by every limiter of the same key.
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
        self._counted: dict[tuple[str, int, float], _Counted] = {}
        self._flights: dict[str, list[int]] = {}

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

    def limiter(
        self, key: str, limits: Limits | None, *, app_key: str = "", hold: float = 0.0
    ) -> MultiLimiter | None:
        if limits is None or limits.empty:
            return None
        account = _digest(key)
        app = _digest("app\n" + (app_key or key))
        with self._cond:
            counted = []
            for window in limits.windows:
                identity = (
                    app if window.per == APP else account,
                    int(window.requests),
                    float(window.seconds),
                )
                if identity not in self._counted:
                    self._counted[identity] = _Counted(*identity[1:])
                counted.append(self._counted[identity])
            flights = None
            if limits.concurrency is not None:
                flights = self._flights.setdefault(account, [0])
        return MultiLimiter(
            limits, counted, flights, self._cond, clock=self._clock, sleep=self._sleep
        )

    def forget(self) -> None:
        """Drop every window (tests)."""
        with self._lock:
            self._windows.clear()
        with self._cond:
            self._counted.clear()
            self._flights.clear()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- several windows and a concurrency cap (issue #16) -----------------------------------------
#
# How a connector declares its vendor's limits
# --------------------------------------------
# A connector class states ``rate_limits = Limits(...)`` (connectors.base.Connector): every window
# the vendor counts, and the requests it allows in flight at once. Xero, for instance::
#
#     rate_limits = Limits(
#         windows=(
#             Window(60, 60),                  # 60 a minute, per tenant
#             Window(5_000, 86_400),           # 5,000 a day, per tenant
#             Window(10_000, 60, per=APP),     # 10,000 a minute over every tenant of the app
#         ),
#         concurrency=5,                       # 5 in flight at once, per tenant
#     )
#
# Its client asks the windows handed in (``config.rate_windows or PROCESS_WINDOWS``) for the
# limiter of the account it calls, and gives it to its HttpSession (``rate_window=``)::
#
#     limits = effective_limits(settings.get("rate_limit"), XeroTarget.rate_limits)
#     window = windows.limiter(f"xero\n{tenant_id}", limits, app_key=f"xero\n{client_id}",
#                              hold=hold)
#
# ``key`` names the account the vendor counts per (hashed, never kept in clear), ``app_key`` what
# APP windows count over (the OAuth app: every connection sharing it shares those windows);
# ``hold`` the seconds a request may stay in flight at most (longer than the client's timeouts
# and retries of one request): a worker killed mid-request frees its concurrency lease and its
# in-flight slots after ``hold``. Every request (retries included) then waits for a slot in every
# window and a lease under the cap, taken together or not at all. A wait longer than
# ``Limits.pause_after`` (a day window full for hours) is not slept: the slot raises
# :class:`connectors.errors.RateLimitPause` with ``resume_at``, nothing is sent, and the run stops
# and pauses the flow until then. A vendor's 429 whose Retry-After is past the same bound raises
# the same pause (connectors.http.HttpClient). The connection setting ``rate_limit`` ("30/60",
# "none") still applies: see :func:`effective_limits`.

ACCOUNT = "account"  # the vendor counts per account (tenant, organisation, API key)
APP = "app"  # the vendor counts over every account of one app (OAuth client)
PAUSE_AFTER = 900.0  # seconds: a longer wait for a slot pauses the flow instead of sleeping
CONCURRENCY_POLL = 0.05  # seconds between looks at a full concurrency cap (database store)


@dataclass(frozen=True)
class Window:
    """At most ``requests`` requests in any rolling window of ``seconds``, counted per account
    (:data:`ACCOUNT`) or over the app (:data:`APP`)."""

    requests: int
    seconds: float
    per: str = ACCOUNT

    def __post_init__(self) -> None:
        if int(self.requests) < 1 or float(self.seconds) <= 0:
            raise ValueError("a rate limit needs at least one request per positive window")
        if self.per not in (ACCOUNT, APP):
            raise ValueError(f"a window is counted per {ACCOUNT!r} or {APP!r}, not {self.per!r}")


@dataclass(frozen=True)
class Limits:
    """A vendor's limits: its windows, the requests it allows in flight at once per account
    (``concurrency``, None: no cap) and the longest wait for a slot that is slept
    (``pause_after``; a longer one raises :class:`~connectors.errors.RateLimitPause`)."""

    windows: tuple[Window, ...] = ()
    concurrency: int | None = None
    pause_after: float = PAUSE_AFTER

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", tuple(self.windows))
        if self.concurrency is not None and int(self.concurrency) < 1:
            raise ValueError("a concurrency cap allows at least one request in flight")

    @classmethod
    def single(cls, limit: tuple[int, float] | None) -> Limits | None:
        """The limits of the old single setting ``(requests, seconds)`` (None stays None)."""
        return None if limit is None else cls((Window(int(limit[0]), float(limit[1])),))

    @property
    def empty(self) -> bool:
        return not self.windows and self.concurrency is None


def effective_limits(setting: str | None, default: Limits | None) -> Limits | None:
    """The connector's declared limits, with the connection's ``rate_limit`` setting applied:
    blank keeps them; ``"none"`` turns limiting off; a window (``"30/60"``) replaces the declared
    per-account window of the same length, or is added (the other windows and the cap stay).
    Raises ValueError as :func:`parse_rate_limit` does."""
    if setting is None or not str(setting).strip():
        return default
    parsed = parse_rate_limit(setting)
    if parsed is None:
        return None
    window = Window(parsed[0], parsed[1])
    if default is None:
        return Limits((window,))
    kept = [w for w in default.windows if not (w.per == ACCOUNT and w.seconds == window.seconds)]
    return replace(default, windows=(window, *kept))


def _resume_at(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def pause_for(now: float, wait: float) -> RateLimitPause:
    """The pause of a slot that frees ``wait`` seconds after ``now`` (Unix time)."""
    resume = _resume_at(now + wait)
    return RateLimitPause(
        resume,
        f"The tool's request limit leaves no request for {wait / 3600:.1f} h: "
        f"paused until {resume:%Y-%m-%d %H:%M} UTC.",
    )


class _Counted:
    """One window's requests in this process: when recent ones ended, and how many are in
    flight (see :class:`RateLimiter` for why a slot counts until ``seconds`` after its end)."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.requests, self.seconds = requests, seconds
        self.done: deque[float] = deque()
        self.in_flight = 0

    def wait(self, now: float) -> float | None:
        """0 when one more request fits; else the seconds until one does (None: every slot is
        in flight, none frees before one ends)."""
        while self.done and self.done[0] + self.seconds <= now + SLACK:
            self.done.popleft()
        if len(self.done) + self.in_flight < self.requests:
            return 0.0
        if not self.done:
            return None
        return self.done[0] + self.seconds - now


class MultiLimiter:
    """Several windows and a concurrency cap in this process (:meth:`ProcessWindows.limiter`):
    ``with limiter.slot(): send()``. Thread-safe; the wall clock and the sleep are injectable."""

    def __init__(
        self,
        limits: Limits,
        windows: list[_Counted],
        flights: list[int] | None,
        cond: threading.Condition,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = limits
        self._windows = windows
        self._flights = flights  # [requests in flight] of the account, shared by its limiters
        self._cond = cond
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0
        shortest = min(windows, key=lambda w: w.seconds, default=None)
        # RateWindow's attributes: the shortest window (or the cap alone).
        self.requests = shortest.requests if shortest else int(limits.concurrency or 1)
        self.window = shortest.seconds if shortest else 0.0

    def __repr__(self) -> str:
        return f"<MultiLimiter {self.limits}>"

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> float:
        """Wait for a slot in every window and a place under the cap, and take them together;
        returns the seconds waited. Raises RateLimitPause (taking nothing) when the wait would
        exceed ``limits.pause_after``."""
        waited = 0.0
        cap = self.limits.concurrency
        while True:
            with self._cond:
                now = self._clock()
                waits = [window.wait(now) for window in self._windows]
                capped = cap is not None and self._flights is not None and self._flights[0] >= cap
                known = max((w for w in waits if w is not None), default=0.0)
                if not capped and all(w == 0.0 for w in waits):
                    for window in self._windows:
                        window.in_flight += 1
                    if self._flights is not None:
                        self._flights[0] += 1
                    self.waited += waited
                    return waited
                blocked = [
                    w.seconds for w, wait in zip(self._windows, waits, strict=True) if wait is None
                ]
                # In flight everywhere: none frees before one ends, then counts for its window.
                floor = min(blocked, default=0.0)
                if max(known, floor) > self.limits.pause_after:
                    raise pause_for(now, max(known, floor))
                if capped or blocked:
                    # Held by requests in flight: woken when one ends.
                    self._cond.wait(timeout=known or floor or self.limits.pause_after)
                    continue
            self._sleep(known)
            waited += known

    def release(self) -> None:
        with self._cond:
            now = self._clock()
            for window in self._windows:
                window.in_flight = max(0, window.in_flight - 1)
                window.done.append(now)
            if self._flights is not None:
                self._flights[0] = max(0, self._flights[0] - 1)
            self._cond.notify_all()


# The windows of a client given none (connectors.base.ConnectionConfig.rate_windows unset).
PROCESS_WINDOWS = ProcessWindows()
