"""A connection's rate limit holds across processes: the window lives in the database
(connectors.ratelimit_store.DatabaseRateLimiter), on SQLite (a file, ``file_db``) and on PostgreSQL.

Several worker processes (tests/ratelimit_worker.py) send pretend requests through the limiter of
one connection, all starting at the same instant; each reports when each request was sent and
when it ended. The server receives a request somewhere between the two, so the busiest window
the server can have seen counts every request whose [sent, ended] meets it. It must never exceed
the limit. The same workers with one window per process (``INVSYNC_RATE_LIMIT_STORE=process``)
exceed it: the check can fail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.db import transaction

from connectors.ratelimit import RateLimiter
from connectors.ratelimit_store import (
    DatabaseRateLimiter,
    forget_shared_limiters,
    limiter_store,
    shared_limiter,
)
from syncs.models import RecordStatus, SyncedRecord, SyncRun

ROOT = Path(__file__).resolve().parents[2]
LIMIT, WINDOW = 4, 0.3
WORKERS, COUNT = 4, 12


@pytest.fixture(autouse=True)
def _fresh_limiters():
    forget_shared_limiters()
    yield
    forget_shared_limiters()


def busiest(requests: list[tuple[float, float]], window: float) -> int:
    """The most requests the server may have received within one window of ``window`` seconds:
    those whose [sent, ended] meets [t, t + window), at the worst t (always some request's end)."""
    return max(
        sum(1 for sent, ended in requests if sent < t + window and ended >= t) for _, t in requests
    )


def in_flight(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT COUNT(*) FROM connectors_ratelimitslot WHERE in_flight"
        ).fetchone()[0]
    finally:
        db.close()


def run_workers(database_url: str, store: str, key: str, *args: str) -> list[tuple[float, float]]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "DATABASE_URL": database_url,
        "INVSYNC_RATE_LIMIT_STORE": store,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = time.time() + 3  # after every worker has set Django up
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.ratelimit_worker",
                key,
                "--limit",
                f"{LIMIT}/{WINDOW}",
                "--count",
                str(COUNT),
                "--start",
                str(start),
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    requests = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-4000:]
        report = json.loads(out)
        assert report["store"] == store, report
        requests.extend(tuple(r) for r in report["requests"])
    assert len(requests) == WORKERS * COUNT
    return requests


@pytest.mark.parametrize("args", [(), ("--in-transaction",)], ids=["", "in-transaction"])
def test_workers_on_sqlite_share_one_window(file_db, args):
    requests = run_workers(f"sqlite:///{file_db}", "database", "sqlite-shared", *args)
    assert busiest(requests, WINDOW) == LIMIT  # never more, and the limit did bind
    assert in_flight(file_db) == 0  # every slot was released


def test_workers_with_a_window_each_would_exceed_the_limit(file_db):
    requests = run_workers(f"sqlite:///{file_db}", "process", "sqlite-per-process")
    assert busiest(requests, WINDOW) > LIMIT


@pytest.mark.scale
@pytest.mark.parametrize("args", [(), ("--in-transaction",)], ids=["", "in-transaction"])
def test_workers_on_postgresql_share_one_window(scale_services, args):
    requests = run_workers(scale_services.fresh_database(), "database", "postgresql-shared", *args)
    assert busiest(requests, WINDOW) == LIMIT


# -- in this process, on a SQLite file ------------------------------------------------------------


def test_the_store_is_the_database_unless_no_other_process_can_open_it(db, settings):
    # The test database is SQLite in memory: no other process can share it.
    assert limiter_store() == "process"
    assert isinstance(shared_limiter("k", (5, 1.0)), RateLimiter)
    settings.INVSYNC_RATE_LIMIT_STORE = "database"
    assert isinstance(shared_limiter("k", (5, 1.0)), DatabaseRateLimiter)
    assert shared_limiter("k", None) is None


def test_on_a_database_file_the_store_is_the_database(file_db):
    assert limiter_store() == "database"
    limiter = shared_limiter("tryton\nurl\ndb\nuser", (5, 1.0))
    assert isinstance(limiter, DatabaseRateLimiter)
    assert "user" not in limiter.key and len(limiter.key) == 64  # hashed
    assert shared_limiter("tryton\nurl\ndb\nuser", (5, 1.0)) is limiter


def test_a_slot_is_committed_on_its_own_connection(file_db):
    limiter = DatabaseRateLimiter("k" * 64, 1, 60.0)
    token = limiter.acquire()
    assert in_flight(file_db) == 1  # another process sees it at once
    limiter.release(token)
    assert in_flight(file_db) == 0


def test_inside_the_callers_transaction_the_slot_is_taken_in_it(file_db):
    """SQLite: the caller's transaction holds the only write lock (an admin form's save, say);
    the slot is taken in that transaction, and nobody else can take one meanwhile."""
    limiter = DatabaseRateLimiter("t" * 64, 1, 60.0)
    with transaction.atomic():
        with limiter.slot():
            other = sqlite3.connect(file_db, timeout=0.2)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
        assert in_flight(file_db) == 0  # not committed yet: invisible to others
    db = sqlite3.connect(file_db)
    try:
        rows = db.execute("SELECT in_flight FROM connectors_ratelimitslot").fetchall()
    finally:
        db.close()
    assert rows == [(0,)]  # committed with the caller: the request counts for a window


def test_a_full_window_waits_for_the_first_slot_to_free(file_db):
    slept = []
    limiter = DatabaseRateLimiter(
        "w" * 64, 2, 0.4, sleep=lambda s: (slept.append(s), time.sleep(s))
    )
    started = time.monotonic()
    for _ in range(2):
        with limiter.slot():
            pass
    assert not slept
    with limiter.slot():
        pass
    assert time.monotonic() - started >= 0.4
    assert slept and limiter.waited == pytest.approx(sum(slept))


def test_a_failed_request_holds_its_slot_too(file_db):
    limiter = DatabaseRateLimiter("f" * 64, 1, 30.0, sleep=_no_sleep)
    with pytest.raises(OSError), limiter.slot():
        raise OSError("connection reset")
    with pytest.raises(Waited):
        limiter.acquire()


def test_a_request_in_flight_holds_its_slot_until_it_ends(file_db):
    limiter = DatabaseRateLimiter("i" * 64, 1, 0.2, sleep=time.sleep)
    other = DatabaseRateLimiter("i" * 64, 1, 0.2, sleep=time.sleep)  # another worker, same key
    token = limiter.acquire()
    taken = threading.Event()
    thread = threading.Thread(target=lambda: (other.acquire(), taken.set()))
    thread.start()
    assert not taken.wait(0.6)  # three windows: the slot is still in flight
    limiter.release(token)
    assert taken.wait(5)  # freed one window after the request ended
    thread.join()


def test_a_dead_workers_slot_lapses_after_its_hold(file_db):
    dead = DatabaseRateLimiter("d" * 64, 1, 0.1, hold=0.5)
    dead.acquire()  # and never released: the worker was killed mid-request
    started = time.monotonic()
    DatabaseRateLimiter("d" * 64, 1, 0.1).acquire()
    assert 0.45 <= time.monotonic() - started < 5


class Waited(Exception):
    pass


def _no_sleep(seconds):
    raise Waited(seconds)


def test_the_store_setting_is_checked(settings):
    from connectors.checks import check_rate_limit_store

    assert check_rate_limit_store() == []
    settings.INVSYNC_RATE_LIMIT_STORE = "redis"
    assert [e.id for e in check_rate_limit_store()] == ["invsync.E002"]


# -- two workers, two flows, one Tryton account ---------------------------------------------------


@pytest.mark.tryton
def test_two_workers_on_one_tryton_account_stay_under_its_limit(
    file_db, settings, tryton_sandbox, tryton_invoicing, tryton_accounting
):
    """Two flows on the same accounting account (sales and purchases), each run by its own
    ``sync_flow`` process at the same time through a proxy that notes when each request arrives:
    the account's limit holds at the proxy, for both processes together."""
    from tests.faultproxy import FaultProxy
    from tests.integration.test_faults import BATCH, written_moves
    from tests.integration.test_faults import proxied_flow as make_proxied_flow

    requests, window = 6, 1.0
    settings.INVSYNC_BATCH_SIZE = BATCH
    with (
        FaultProxy(tryton_sandbox.server_url) as source,
        FaultProxy(tryton_sandbox.server_url) as target,
    ):
        proxies = SimpleNamespace(source=source, target=target)
        limit = {"rate_limit": f"{requests}/{window:g}"}
        flows = [
            make_proxied_flow(tryton_invoicing, tryton_accounting, proxies, target=limit, scope=s)
            for s in ("sales", "purchases")
        ]
        target.clear()
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "invsync.settings",
            "DATABASE_URL": f"sqlite:///{file_db}",
            "INVSYNC_BATCH_SIZE": str(BATCH),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "manage.py", "sync_flow", str(flow.pk)],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for flow in flows
        ]
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, output[-4000:]
        arrivals = sorted(r.arrived for r in target.requests())
    assert len(arrivals) > 4 * requests
    busiest_window = max(
        sum(1 for t in arrivals if start <= t < start + window) for start in arrivals
    )
    assert busiest_window == requests, busiest_window  # never more; and the limit did bind
    # Both workers were sending at the same time, not one after the other.
    runs = [SyncRun.objects.get(flow=flow) for flow in flows]
    assert max(r.started_at for r in runs) < min(r.finished_at for r in runs)
    # Each invoice written once, and every record of both flows as the sample's manifest says.
    moves = written_moves(tryton_accounting)
    assert all(len(found) == 1 for found in moves.values()), moves
    expected = {i["number"]: i["expect"] for i in tryton_invoicing.manifest["invoices"]}
    records = SyncedRecord.objects.filter(flow__in=flows)
    status = {"sync": RecordStatus.SYNCED, "fail": RecordStatus.FAILED}
    # (A draft has no number: the manifest does not list it; its record is skipped.)
    assert {r.number: r.status for r in records if r.number in expected} == {
        number: status.get(expect, RecordStatus.SKIPPED)
        for number, expect in expected.items()
        if number
    }
    synced = {r.entry_key for r in records if r.status == "synced"}
    assert set(moves) == synced
