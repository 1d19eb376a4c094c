"""Scale-out: two django-q2 clusters (real ``manage.py qcluster`` processes, two workers each) on
one PostgreSQL database and one Redis queue, every flow queued three times in a row.

Twenty flows of a hundred invoices each, from ``SharedSource`` (generated from the flow's settings:
the same invoices in every process) into ``SharedTarget`` (records in Redis how many times each
entry was written); both registered in the workers by ``bench/scale_settings.py``. The harness is
``bench/scale.py`` (:func:`run_scale` creates the flows, starts the clusters, queues the runs, waits
and reports) on the ``scale_services`` fixture (connectors/devtools/local_servers.py: a private
PostgreSQL 15 cluster and a private ``redis-server``).

Checked: every task done and none failed; every invoice synced and written exactly once; no two
runs of a flow overlapped in time (the runs' own start and finish times, and the source connector
counting itself open per flow in Redis); the lease contested (some tasks found the flow busy) and
both clusters at work; no lease left held.

Needs PostgreSQL 15 server binaries, ``redis-server`` and the ``psycopg``/``redis`` packages
(installed by ``bin/dev``); ``INVSYNC_SCALE_UNAVAILABLE=skip`` skips the test where they are
missing instead of failing it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict

import pytest

pytestmark = [pytest.mark.scale]

FLOWS = 20
INVOICES = 100
REPEAT = 3  # each flow queued three times in a row: several workers go for it at once
CLUSTERS = 2


@pytest.fixture(scope="module")
def report(scale_services):
    from bench.scale import run_scale

    return run_scale(
        scale_services, clusters=CLUSTERS, flows=FLOWS, invoices=INVOICES, repeat=REPEAT, workers=2,
        latency_ms=5, timeout=150,
    )  # fmt: skip


def _context(report) -> str:
    return "\n".join(f"cluster {n}:\n{c['log_tail']}" for n, c in enumerate(report["clusters"], 1))


def test_every_task_ran_and_succeeded(report):
    assert not report["timed_out"], (report["done"], report["queued"], _context(report))
    assert report["queued"] == FLOWS * REPEAT
    failed = [task for task in report["tasks"] if not task["success"]]
    assert not failed, (failed, _context(report))
    statuses = Counter(task["result"]["status"] for task in report["tasks"])
    assert set(statuses) <= {"succeeded", "busy"}, statuses
    # Every flow ran at least once, and its first run did the work.
    assert statuses["succeeded"] >= FLOWS


def test_every_invoice_synced_and_written_exactly_once(report):
    assert report["synced"] == FLOWS * INVOICES
    assert len(report["records"]) == FLOWS
    for flow, statuses in report["records"].items():
        assert statuses == {"synced": INVOICES}, (flow, statuses)
    written = report["ledger"]["written"]
    assert len(written) == FLOWS
    for ledger, entries in written.items():
        assert len(entries) == INVOICES, (ledger, len(entries))
        twice = {key: n for key, n in entries.items() if n != 1}
        assert not twice, (ledger, twice)


def test_no_flow_ever_ran_twice_at_once(report):
    runs = defaultdict(list)
    for run in report["runs"]:
        assert run["finished_at"], run
        runs[run["flow_id"]].append(
            (
                dt.datetime.fromisoformat(run["started_at"]),
                dt.datetime.fromisoformat(run["finished_at"]),
            )
        )
    assert len(runs) == FLOWS
    for flow, intervals in runs.items():
        intervals.sort()
        for (_, previous_end), (start, _) in itertools.pairwise(intervals):
            assert start >= previous_end, (flow, intervals)
    ledger = report["ledger"]
    assert ledger["overlaps"] == []
    assert ledger["open_now"] == 0
    assert report["leases_held"] == []


def test_the_lease_was_contested_and_both_clusters_worked(report):
    # Without contention the test would prove nothing about the lease.
    statuses = Counter(task["result"]["status"] for task in report["tasks"])
    assert statuses["busy"] > 0, statuses
    # Runs of different flows went on at the same time, in both clusters.
    assert report["ledger"]["max_active"] >= 2, report["ledger"]
    by_cluster = report["ledger"]["runs_by_cluster"]
    assert set(by_cluster) == {"1", "2"}, by_cluster
    assert all(clusters["returncode"] == 0 for clusters in report["clusters"]), _context(report)
