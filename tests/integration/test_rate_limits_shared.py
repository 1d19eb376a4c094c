"""Several windows and a concurrency cap hold across processes (connectors.ratelimit_store
.DatabaseLimiter, issue #16): worker processes (tests/ratelimit_limits_worker.py) send pretend
requests through one account's limits, all starting at once, and report when each was sent and
ended. The server receives a request between the two, so every window must never see more than
its limit, and no more requests than the cap may overlap. On a SQLite file and on PostgreSQL.
A worker killed mid-request (SIGKILL) frees its lease after ``hold``; a day window full for
hours pauses (nothing taken), in the database store too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from connectors.errors import RateLimitPause
from connectors.ratelimit import APP, Limits, Window
from connectors.ratelimit_store import DatabaseLimiter, forget_shared_limiters, shared_limits

ROOT = Path(__file__).resolve().parents[2]
SHORT, LONG, CAP = (4, 0.4), (6, 1.2), 2
SPEC = {"windows": [list(SHORT), list(LONG)], "concurrency": CAP}
WORKERS, COUNT = 3, 5


@pytest.fixture(autouse=True)
def _fresh_limiters():
    forget_shared_limiters()
    yield
    forget_shared_limiters()


def environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "DATABASE_URL": database_url,
        "INVSYNC_RATE_LIMIT_STORE": "database",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def worker(database_url: str, key: str, spec: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ratelimit_limits_worker", key, "--limits",
         json.dumps(spec), *args],
        cwd=ROOT, env=environment(database_url), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_workers(database_url: str, key: str) -> list[tuple[float, float]]:
    start = time.time() + 3  # after every worker has set Django up
    workers = [
        worker(database_url, key, SPEC, "--count", str(COUNT), "--start", str(start))
        for _ in range(WORKERS)
    ]
    spans = []
    for process in workers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-4000:]
        report = json.loads(out)
        assert report["store"] == "database"
        spans.extend(tuple(r) for r in report["requests"])
    assert len(spans) == WORKERS * COUNT
    return spans


def busiest(spans, seconds: float) -> int:
    return max(sum(1 for s, e in spans if s < t + seconds and e >= t) for _, t in spans)


def most_in_flight(spans) -> int:
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def assert_limits_held(spans) -> None:
    assert busiest(spans, SHORT[1]) <= SHORT[0]
    assert busiest(spans, LONG[1]) <= LONG[0]
    assert most_in_flight(spans) <= CAP
    # 15 requests at 6 per 1.2 s cannot all go within the first long window: the limits bound.
    assert max(e for _, e in spans) - min(s for s, _ in spans) >= 2 * LONG[1]


def test_workers_on_sqlite_keep_every_window_and_the_cap(file_db):
    assert_limits_held(run_workers(f"sqlite:///{file_db}", "sqlite-limits"))


@pytest.mark.scale
def test_workers_on_postgresql_keep_every_window_and_the_cap(scale_services):
    assert_limits_held(run_workers(scale_services.fresh_database(), "postgresql-limits"))


def kill_holder_then_take(database_url: str, key: str, hold: float) -> float:
    """A worker takes the only lease and is SIGKILLed; returns how long this process then waits
    for the lease (the same key, through the database)."""
    spec = {"windows": [[1000, 1]], "concurrency": 1}
    holder = worker(database_url, key, spec, "--hang", "--hold", str(hold))
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-4000:]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    started = time.monotonic()
    limiter = shared_limits(key, Limits((Window(1000, 1),), concurrency=1), hold=hold)
    with limiter.slot():
        pass
    return time.monotonic() - started


def test_a_killed_workers_lease_lapses_after_its_hold_on_sqlite(file_db, settings):
    settings.INVSYNC_RATE_LIMIT_STORE = "database"
    waited = kill_holder_then_take(f"sqlite:///{file_db}", "sqlite-killed", hold=1.5)
    assert 0.3 <= waited < 10  # not taken while the dead lease held; taken once it lapsed


@pytest.mark.scale
def test_a_killed_workers_lease_lapses_after_its_hold_on_postgresql(scale_services):
    database_url = scale_services.fresh_database()
    spec = {"windows": [[1000, 1]], "concurrency": 1}
    holder = worker(database_url, "pg-killed", spec, "--hang", "--hold", "2")
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-4000:]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    killed = time.time()
    # Another worker, in another process, waits for the dead one's lease to lapse.
    taker = worker(database_url, "pg-killed", spec, "--count", "1", "--hold", "2")
    out, err = taker.communicate(timeout=120)
    assert taker.returncode == 0, err[-4000:]
    ((began, _),) = json.loads(out)["requests"]
    assert 0.3 <= began - killed < 10


def test_a_full_day_window_in_the_database_pauses_and_takes_nothing(file_db):
    day = Limits((Window(100, 60), Window(2, 86_400)))
    limiter = DatabaseLimiter("d" * 64, "a" * 64, day, sleep=_no_sleep)
    for _ in range(2):
        with limiter.slot():
            pass
    with pytest.raises(RateLimitPause) as caught:
        limiter.acquire()
    remaining = caught.value.resume_at.timestamp() - time.time()
    assert 86_000 < remaining <= 86_400
    # Nothing taken: still two rows of each window.
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM connectors_ratelimitslot")
        assert cursor.fetchone()[0] == 4


def test_an_app_window_is_shared_by_the_tenants_of_the_app_in_the_database(file_db):
    limits = Limits((Window(100, 60), Window(2, 600, per=APP)))
    tenant_1 = DatabaseLimiter("1" * 64, "a" * 64, limits, sleep=_no_sleep)
    tenant_2 = DatabaseLimiter("2" * 64, "a" * 64, limits, sleep=_no_sleep)
    other_app = DatabaseLimiter("3" * 64, "b" * 64, limits, sleep=_no_sleep)
    with tenant_1.slot():
        pass
    with tenant_2.slot():
        pass
    with pytest.raises(Waited):
        tenant_2.acquire()  # the app's window is full, whoever's tenant
    with other_app.slot():
        pass


class Waited(Exception):
    pass


def _no_sleep(seconds):
    raise Waited(seconds)
