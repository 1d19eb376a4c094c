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

Scope: every process of the deployment. Workers, hosts and web requests all share the
database, so the window lives there (:class:`DatabaseRateLimiter`, table
``connectors_ratelimitslot``): a request takes a row of its connection's window before it is sent
and the row frees ``window`` seconds after the answer. Each take is one short transaction on a
private database connection, so it never joins (or waits for) the caller's own transaction:
SQLite serialises them with ``BEGIN IMMEDIATE``, PostgreSQL with a transaction-level advisory
lock per connection. (On SQLite, a caller inside a transaction, such as an admin form, already
holds the only write lock: its slot is taken in its own transaction.) A worker killed
mid-request keeps its row ``hold`` seconds (longer than any request of its client can last),
then the row lapses. The setting ``INVSYNC_RATE_LIMIT_STORE``
picks the store: ``auto`` (the database, except an in-memory SQLite database, which no other
process can share: then one limiter per process, :class:`RateLimiter`, is exact), ``database`` or
``process``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import uuid
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


STORES = ("auto", "database", "process")
DATABASE_VENDORS = ("sqlite", "postgresql")
DEFAULT_HOLD = 600.0  # seconds a request in flight keeps its slot at most (a dead worker's lapse)
_TRIES = 5  # transactions tried when the database is busy

# The statements on connectors.models.RateLimitSlot's table (its db_table), for SQLite and
# PostgreSQL alike.
TABLE = "connectors_ratelimitslot"
_SQL_EXPIRE = 'DELETE FROM connectors_ratelimitslot WHERE "key" = %s AND "until" <= %s'
_SQL_COUNT = (
    'SELECT COUNT(*), MIN(CASE WHEN "in_flight" THEN NULL ELSE "until" END) '
    'FROM connectors_ratelimitslot WHERE "key" = %s'
)
_SQL_INSERT = (
    'INSERT INTO connectors_ratelimitslot ("id", "key", "until", "in_flight") '
    "VALUES (%s, %s, %s, %s)"
)
_SQL_END = 'UPDATE connectors_ratelimitslot SET "until" = %s, "in_flight" = %s WHERE "id" = %s'


class RateLimitStoreError(RuntimeError):
    """The database holding the shared window could not be used."""


class DatabaseRateLimiter:
    """The same contract as :class:`RateLimiter` (``with limiter.slot(): send()``), the window
    kept in the database that every process of the deployment shares.

    ``key`` identifies the account at the vendor (hashed by :func:`shared_limiter`); every process
    using the same key shares one window, each counting it against its own ``requests`` (two
    processes configured differently: the stricter one waits more). ``hold``: seconds a request
    in flight keeps its slot at most, so that a killed worker's slot lapses.
    """

    def __init__(
        self,
        key: str,
        requests: int,
        window: float,
        *,
        hold: float = DEFAULT_HOLD,
        using: str = "default",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or window <= 0:
            raise ValueError("a rate limit needs at least one request per positive window")
        self.key = key
        self.requests = int(requests)
        self.window = float(window)
        self.hold = max(float(hold), self.window)
        self.using = using
        self._sleep = sleep
        self._local = threading.local()
        self.waited = 0.0
        # PostgreSQL's advisory lock key: a signed 64-bit integer from the key.
        self._lock_id = int.from_bytes(
            hashlib.sha256(key.encode()).digest()[:8], "big", signed=True
        )

    def __repr__(self) -> str:
        return f"<DatabaseRateLimiter {self.requests}/{self.window:g}s>"

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for room, then hold one slot while the block sends its request."""
        token = self.acquire()
        try:
            yield
        finally:
            self.release(token)

    def acquire(self) -> str:
        """Wait until one more request fits in the shared window and take its slot; returns the
        slot's token, for :meth:`release` once the request has ended."""
        token = uuid.uuid4().hex
        while True:
            wait = self._transaction(self._take, token)
            if wait is None:
                return token
            self._sleep(wait)
            self.waited += wait

    def release(self, token: str) -> None:
        """The request of the slot ``token`` ended: its slot frees ``window`` seconds from now."""
        self._transaction(self._end, token)

    # -- the transactions ----------------------------------------------------------------------

    def _take(self, cursor, now: float, token: str) -> float | None:
        """Take a slot (None) or say how long to wait before trying again."""
        cursor.execute(_SQL_EXPIRE, [self.key, now])
        cursor.execute(_SQL_COUNT, [self.key])
        held, first_free = cursor.fetchone()
        if held < self.requests:
            cursor.execute(_SQL_INSERT, [token, self.key, now + self.hold, True])
            return None
        if first_free is None:
            # Every slot is held by a request in flight: none frees before one window from now.
            return self.window
        return max(float(first_free) - now, 0.0) + _SLACK

    def _end(self, cursor, now: float, token: str) -> None:
        cursor.execute(_SQL_END, [now + self.window, False, token])
        if cursor.rowcount == 0:  # held longer than ``hold``: it still counts, from now
            cursor.execute(_SQL_INSERT, [token, self.key, now + self.window, False])

    def _connection(self):
        """This thread's private connection to the database (never the caller's: the window's
        transactions must commit on their own, whatever transaction the caller is in)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked worker
            from django.db import connections

            base = connections[self.using]
            local.connection = type(base)(dict(base.settings_dict), self.using)
            local.pid = os.getpid()
        return local.connection

    def _transaction(self, work, token: str):
        from django.db import DatabaseError, connections

        caller = connections[self.using]
        if caller.vendor == "sqlite" and caller.in_atomic_block:
            # SQLite has one writer at a time, and the caller's open transaction holds the write
            # lock (settings: transaction_mode IMMEDIATE): a second connection would wait for it
            # in vain. The slot is taken in the caller's transaction instead; no other process
            # can take one before that transaction ends. (Should it roll back, the slot goes with
            # it: the window then forgets one request.)
            with caller.cursor() as cursor:
                return work(cursor, time.time(), token)
        connection = self._connection()
        for attempt in range(1, _TRIES + 1):
            try:
                with connection.cursor() as cursor:
                    if connection.vendor == "postgresql":
                        cursor.execute("BEGIN")
                        cursor.execute(
                            "SELECT pg_advisory_xact_lock(%s), "
                            "EXTRACT(EPOCH FROM clock_timestamp())",
                            [self._lock_id],
                        )
                        now = float(cursor.fetchone()[1])  # one clock for every host
                    else:
                        cursor.execute("BEGIN IMMEDIATE")  # waits for SQLite's write lock
                        now = time.time()
                    try:
                        result = work(cursor, now, token)
                    except BaseException:
                        cursor.execute("ROLLBACK")
                        raise
                    cursor.execute("COMMIT")
                    return result
            except DatabaseError as error:
                with contextlib.suppress(Exception):
                    connection.close()  # a fresh connection next time (and no open transaction)
                if attempt == _TRIES:
                    raise RateLimitStoreError(
                        f"the rate limit window in the database could not be used: {error}"
                    ) from error
                time.sleep(0.05 * attempt)


_SHARED: dict[tuple[str, int, float, str], RateLimiter | DatabaseRateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def limiter_store() -> str:
    """Where windows are kept: ``"database"`` or ``"process"`` (see the module's docstring)."""
    from django.conf import settings
    from django.db import connections

    store = getattr(settings, "INVSYNC_RATE_LIMIT_STORE", "auto") or "auto"
    if store != "auto":
        return store
    connection = connections["default"]
    if connection.vendor not in DATABASE_VENDORS:
        return "process"
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        return "process"  # no other process can open this database: one window per process
    return "database"


def shared_limiter(
    key: str, limit: tuple[int, float] | None, *, hold: float = DEFAULT_HOLD
) -> RateLimiter | DatabaseRateLimiter | None:
    """The limiter of one connection (``key``: what identifies the account at the vendor, e.g.
    URL, database and login; it is hashed, never kept in clear), in the store
    :func:`limiter_store` picks. None without a limit. Every client of the key in a process gets
    the same limiter; with the database store every process shares its window."""
    if limit is None:
        return None
    requests, window = limit
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    store = limiter_store()
    identity = (digest, int(requests), float(window), store)
    with _SHARED_LOCK:
        limiter = _SHARED.get(identity)
        if limiter is None:
            if store == "database":
                limiter = DatabaseRateLimiter(digest, requests, window, hold=hold)
            else:
                limiter = RateLimiter(requests, window)
            _SHARED[identity] = limiter
        elif isinstance(limiter, DatabaseRateLimiter):
            limiter.hold = max(limiter.hold, float(hold), limiter.window)
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests)."""
    with _SHARED_LOCK:
        _SHARED.clear()
