"""The deployment's rate-limit windows, kept in the database (table ``connectors_ratelimitslot``).

What a client waits on is :mod:`connectors.ratelimit`'s :class:`~connectors.ratelimit.RateWindow`;
this module keeps the windows every process of the deployment shares, and is handed to
connectors as :class:`SharedWindows` by :func:`connectors.selectors.connector_for` (connectors take
no ORM).

Workers, hosts and web requests all share the database, so the window lives there
(:class:`DatabaseRateLimiter`): a request takes a row of its connection's window before it is sent
and the row frees ``window`` seconds after the answer. Each take is one short transaction on a
private database connection, so it never joins (or waits for) the caller's own transaction:
SQLite serialises them with ``BEGIN IMMEDIATE``, PostgreSQL with a transaction-level advisory
lock per connection. (On SQLite, a caller inside a transaction, such as an admin form, already
holds the only write lock: its slot is taken in its own transaction.) A worker killed
mid-request keeps its row ``hold`` seconds (longer than any request of its client can last),
then the row lapses. The setting ``INVSYNC_RATE_LIMIT_STORE`` picks the store: ``auto`` (the
database, except an in-memory SQLite database, which no other process can share: then one
limiter per process, :class:`~connectors.ratelimit.RateLimiter`, is exact), ``database`` or
``process``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import DatabaseError, connections

from connectors.ratelimit import (
    APP,
    CONCURRENCY_POLL,
    PROCESS_WINDOWS,
    SLACK,
    Limits,
    MultiLimiter,
    RateLimiter,
    pause_for,
)

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
_SQL_DROP = 'DELETE FROM connectors_ratelimitslot WHERE "id" = %s'


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
        self._clock = time.time  # SQLite's clock (PostgreSQL's is the database's)
        self._local = threading.local()
        self.waited = 0.0
        # PostgreSQL's advisory lock key: a signed 64-bit integer from the key.
        self._lock_id = int.from_bytes(
            hashlib.sha256(key.encode()).digest()[:8], "big", signed=True
        )

    def __repr__(self) -> str:
        return f"<DatabaseRateLimiter {self.requests}/{self.window:g}s>"

    def _lock_ids(self) -> list[int]:
        return [self._lock_id]

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
        return max(float(first_free) - now, 0.0) + SLACK

    def _end(self, cursor, now: float, token: str) -> None:
        cursor.execute(_SQL_END, [now + self.window, False, token])
        if cursor.rowcount == 0:  # held longer than ``hold``: it still counts, from now
            cursor.execute(_SQL_INSERT, [token, self.key, now + self.window, False])

    def _connection(self):
        """This thread's private connection to the database (never the caller's: the window's
        transactions must commit on their own, whatever transaction the caller is in)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked worker
            base = connections[self.using]
            local.connection = type(base)(dict(base.settings_dict), self.using)
            local.pid = os.getpid()
        return local.connection

    def _transaction(self, work, token: str):
        caller = connections[self.using]
        if caller.vendor == "sqlite" and caller.in_atomic_block:
            # SQLite has one writer at a time, and the caller's open transaction holds the write
            # lock (settings: transaction_mode IMMEDIATE): a second connection would wait for it
            # in vain. The slot is taken in the caller's transaction instead; no other process
            # can take one before that transaction ends. (Should it roll back, the slot goes with
            # it: the window then forgets one request.)
            with caller.cursor() as cursor:
                return work(cursor, self._clock(), token)
        connection = self._connection()
        for attempt in range(1, _TRIES + 1):
            try:
                with connection.cursor() as cursor:
                    if connection.vendor == "postgresql":
                        cursor.execute("BEGIN")
                        # Every key's lock, in one order (no two takes wait on each other).
                        for lock_id in sorted(self._lock_ids()):
                            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
                        cursor.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
                        now = float(cursor.fetchone()[0])  # one clock for every host
                    else:
                        cursor.execute("BEGIN IMMEDIATE")  # waits for SQLite's write lock
                        now = self._clock()
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


class DatabaseLimiter(DatabaseRateLimiter):
    """Several windows and a concurrency cap (:class:`~connectors.ratelimit.Limits`), kept in the
    database every process shares: ``with limiter.slot(): send()``.

    Each window is a key of the slot table (its account's or app's digest and its length); the
    cap is a key of its own whose rows are leases: taken with the slots, deleted when the request
    ends, lapsing ``hold`` seconds after they were taken when a worker dies mid-request (never a
    counter that leaks). One transaction looks at every key (PostgreSQL: each key's advisory
    lock, in one order) and takes a slot in each, or nothing. A wait past ``limits.pause_after``
    raises :class:`~connectors.errors.RateLimitPause` (nothing taken)."""

    def __init__(
        self,
        account: str,
        app: str,
        limits: Limits,
        *,
        hold: float = DEFAULT_HOLD,
        using: str = "default",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.hold = float(hold)
        self.using = using
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self.waited = 0.0
        # (key, requests, seconds) of each window; the cap's key.
        self._keys = [
            (_hashed(f"{app if w.per == APP else account}\n{w.seconds:g}"), w.requests, w.seconds)
            for w in limits.windows
        ]
        self._cap_key = _hashed(f"{account}\nin flight") if limits.concurrency else None
        shortest = min(limits.windows, key=lambda w: w.seconds, default=None)
        self.key = account
        self.requests = shortest.requests if shortest else int(limits.concurrency or 1)
        self.window = shortest.seconds if shortest else 0.0

    def __repr__(self) -> str:
        return f"<DatabaseLimiter {self.limits}>"

    def _lock_ids(self) -> list[int]:
        keys = [key for key, _, _ in self._keys] + ([self._cap_key] if self._cap_key else [])
        return [int.from_bytes(bytes.fromhex(key)[:8], "big", signed=True) for key in keys]

    def acquire(self) -> list:
        """Wait for a slot in every window and a lease under the cap; returns the rows taken,
        for :meth:`release`. Raises RateLimitPause when the wait would exceed the bound."""
        while True:
            rows: list[tuple[str, str, float | None]] = []
            wait = self._transaction(self._take, rows)
            if wait is None:
                return rows
            self._sleep(wait)
            self.waited += wait

    def release(self, rows: list) -> None:
        """The request ended: its window slots free ``seconds`` from now, its lease at once."""
        self._transaction(self._end, rows)

    def _take(self, cursor, now: float, rows: list) -> float | None:
        rows.clear()  # a transaction tried again starts afresh
        known, blocked = 0.0, []
        for key, requests, seconds in self._keys:
            cursor.execute(_SQL_EXPIRE, [key, now])
            cursor.execute(_SQL_COUNT, [key])
            held, first_free = cursor.fetchone()
            if held < requests:
                continue
            if first_free is None:  # every slot in flight: none frees before one ends
                blocked.append(seconds)
            else:
                known = max(known, max(float(first_free) - now, 0.0) + SLACK)
        capped = False
        if self._cap_key:
            cursor.execute(_SQL_EXPIRE, [self._cap_key, now])  # dead workers' leases lapse
            cursor.execute(_SQL_COUNT, [self._cap_key])
            capped = cursor.fetchone()[0] >= int(self.limits.concurrency or 0)
        if not capped and not blocked and known == 0.0:
            for key, _, seconds in self._keys:
                row = uuid.uuid4().hex
                cursor.execute(_SQL_INSERT, [row, key, now + max(self.hold, seconds), True])
                rows.append((row, key, seconds))
            if self._cap_key:
                row = uuid.uuid4().hex
                cursor.execute(_SQL_INSERT, [row, self._cap_key, now + self.hold, True])
                rows.append((row, self._cap_key, None))
            return None
        longest = max(known, min(blocked, default=0.0))
        if longest > self.limits.pause_after:
            raise pause_for(now, longest)
        return max(known, CONCURRENCY_POLL) if (capped or blocked) else known

    def _end(self, cursor, now: float, rows: list) -> None:
        for row, key, seconds in rows:
            if seconds is None:
                cursor.execute(_SQL_DROP, [row])
                continue
            cursor.execute(_SQL_END, [now + seconds, False, row])
            if cursor.rowcount == 0:  # held longer than ``hold``: it still counts, from now
                cursor.execute(_SQL_INSERT, [row, key, now + seconds, False])


def _hashed(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_SHARED: dict[tuple[str, int, float, str], RateLimiter | DatabaseRateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def limiter_store() -> str:
    """Where windows are kept: ``"database"`` or ``"process"`` (see the module's docstring)."""
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


_MULTI: dict[tuple[str, str, Limits], DatabaseLimiter] = {}


def shared_limits(
    key: str, limits: Limits | None, *, app_key: str = "", hold: float = DEFAULT_HOLD
) -> MultiLimiter | DatabaseLimiter | None:
    """The limiter of one account's several windows and cap (``key``: the account at the vendor,
    ``app_key``: the app its APP windows count over; both hashed), in the store
    :func:`limiter_store` picks. None without limits."""
    if limits is None or limits.empty:
        return None
    if limiter_store() != "database":
        return PROCESS_WINDOWS.limiter(key, limits, app_key=app_key, hold=hold)
    account = _hashed(key)
    app = _hashed("app\n" + (app_key or key))
    with _SHARED_LOCK:
        limiter = _MULTI.get((account, app, limits))
        if limiter is None:
            limiter = _MULTI[(account, app, limits)] = DatabaseLimiter(
                account, app, limits, hold=hold
            )
        limiter.hold = max(limiter.hold, float(hold))
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter, and the process windows of clients given none (tests)."""
    with _SHARED_LOCK:
        _SHARED.clear()
        _MULTI.clear()
    PROCESS_WINDOWS.forget()


class SharedWindows:
    """The deployment's :class:`~connectors.ratelimit.RateWindows`: :func:`shared_limiter`'s
    windows (in the database, or per process where the database cannot keep them)."""

    def window(
        self, key: str, limit: tuple[int, float] | None, *, hold: float = DEFAULT_HOLD
    ) -> RateLimiter | DatabaseRateLimiter | None:
        return shared_limiter(key, limit, hold=hold)

    def limiter(
        self, key: str, limits: Limits | None, *, app_key: str = "", hold: float = DEFAULT_HOLD
    ) -> MultiLimiter | DatabaseLimiter | None:
        return shared_limits(key, limits, app_key=app_key, hold=hold)

    def __repr__(self) -> str:
        return "<SharedWindows>"


SHARED_WINDOWS = SharedWindows()
