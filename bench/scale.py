"""Scale-out: several django-q2 clusters (real ``manage.py qcluster`` processes) syncing flows
from one PostgreSQL database through one Redis queue.

    python bench/scale.py                 # figures with 1 and 2 clusters (20 flows x 500 invoices)
    python bench/scale.py --quick         # 10 flows x 200 invoices
    python bench/scale.py --latency-ms 20 # 20 ms added to every connector call (a remote API)
    python bench/run.py --only scale      # the same, as a figure of bench/run.py

Prints ``scale_invoices_per_s_1_cluster`` and ``scale_invoices_per_s_2_clusters``: invoices synced
per second, from the first task queued to the last run finished. Each measurement gets a fresh
database (a copy of a migrated template) and an emptied Redis.

What runs (also the harness of tests/integration/test_scale_out.py):

- :class:`Services` (connectors/devtools/local_servers.py, shared with the tests) starts a private
  PostgreSQL 15 cluster and a private ``redis-server``, both on 127.0.0.1, in a temporary
  directory removed by :meth:`Services.stop`.
- :func:`run_scale` creates the flows (provider ``shared``: ``SharedSource`` generates each flow's
  invoices from its settings, ``SharedTarget`` records each entry written in Redis, see
  bench/connectors.py), starts the clusters with ``DJANGO_SETTINGS_MODULE=bench.scale_settings``
  (whose ``bench`` app registers those connectors in every process), queues ``repeat`` runs of each
  flow with ``flow_sync_enqueue`` (consecutively, so that several workers go for one flow at
  once), waits until django-q2 has saved every task's result, and returns a report: the runs, the
  tasks' results, the records' statuses, the leases left, and what the shared connectors saw.
  The steps that need Django run in child processes (``bench/scale.py setup|drive``) so that the
  caller's own Django (pytest's SQLite, bench/run.py's) is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/connectors.py would shadow the
# connectors app: the project's root goes before it.
sys.path.insert(0, str(ROOT))

SETTINGS = "bench.scale_settings"

from connectors.devtools.local_servers import (  # noqa: E402 - after the sys.path fix above
    Services,
    Unavailable,
    stop_process,
)

__all__ = ["Services", "Unavailable", "measure", "run_scale"]
# -- one measurement ---------------------------------------------------------------------------


def _child(env: dict[str, str], *args: str, timeout: float) -> dict:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"bench/scale.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scale(
    services: Services,
    *,
    clusters: int,
    flows: int,
    invoices: int,
    repeat: int = 1,
    workers: int = 2,
    latency_ms: int = 0,
    timeout: float = 150,
) -> dict:
    """Sync ``flows`` flows of ``invoices`` invoices each, every flow queued ``repeat`` times, with
    ``clusters`` qcluster processes of ``workers`` workers on a fresh database; returns the
    report of ``drive`` plus ``clusters`` (each cluster's exit code and log tail)."""
    env = services.env(
        services.fresh_database(), DJANGO_SETTINGS_MODULE=SETTINGS, INVSYNC_Q_WORKERS=str(workers)
    )
    services.flush_redis()
    setup = _child(
        env, "setup", "--flows", str(flows), "--invoices", str(invoices),
        "--latency-ms", str(latency_ms), timeout=300,
    )  # fmt: skip
    logs = [services.root / f"qcluster-{n}-{services.databases}.log" for n in range(clusters)]
    processes = []
    try:
        for n, log in enumerate(logs, start=1):
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT, env={**env, "INVSYNC_SCALE_CLUSTER": str(n)}, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
                processes.append(process)
        report = _child(
            env, "drive", "--clusters", str(clusters), "--repeat", str(repeat),
            "--timeout", str(timeout), *(f"--ledger={name}" for name in setup["ledgers"]),
            timeout=timeout + 120,
        )  # fmt: skip
    finally:
        for process in processes:
            stop_process(process, timeout=30)
    report["clusters"] = [
        {"returncode": process.returncode, "log_tail": log.read_text(errors="replace")[-3000:]}
        for process, log in zip(processes, logs, strict=True)
    ]
    report["setup"] = setup
    return report


# -- child steps (Django configured with bench.scale_settings) ----------------------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()


def child_setup(flows: int, invoices: int, latency_ms: int) -> dict:
    _django()
    from django.conf import settings

    from bench.connectors import make_flow

    redis_url = settings.Q_CLUSTER["redis"]
    ledgers = []
    for n in range(1, flows + 1):
        ledger = f"flow-{n:03d}"
        common = {"redis_url": redis_url, "ledger": ledger, "latency_ms": str(latency_ms)}
        make_flow(
            f"scale {ledger}", provider="shared",
            source_settings={**common, "seed": str(n * 1000), "count": str(invoices)},
            target_settings=common,
        )  # fmt: skip
        ledgers.append(ledger)
    return {"ledgers": ledgers, "invoices": flows * invoices}


def child_drive(clusters: int, repeat: int, timeout: float, ledgers: Sequence[str]) -> dict:
    _django()
    from django.conf import settings
    from django.db.models import Count
    from django.utils import timezone
    from django_q.models import Task
    from django_q.status import Stat

    from bench.connectors import shared_report
    from mappings.models import SyncFlow
    from syncs.models import RunTrigger, SyncedRecord, SyncRun
    from syncs.services import flow_sync_enqueue

    deadline = time.monotonic() + 60
    while len({stat.cluster_id for stat in Stat.get_all()}) < clusters:
        if time.monotonic() > deadline:
            raise SystemExit(f"{clusters} clusters did not all start within 60 s")
        time.sleep(0.1)

    queued_at = timezone.now()
    started = time.monotonic()
    task_ids = [
        flow_sync_enqueue(flow=flow, trigger=RunTrigger.MANUAL)
        for flow in SyncFlow.objects.order_by("pk")
        for _ in range(repeat)
    ]
    deadline = started + timeout
    done = 0
    while done < len(task_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
        done = Task.objects.filter(id__in=task_ids).count()
    elapsed = time.monotonic() - started

    runs = list(
        SyncRun.objects.order_by("started_at").values(
            "pk", "flow_id", "status", "started_at", "finished_at", "synced_count",
            "failed_count", "error_code", "error_message",
        )
    )  # fmt: skip
    synced = sum(run["synced_count"] for run in runs)
    finished = [run["finished_at"] for run in runs if run["finished_at"]]
    window = (max(finished) - queued_at).total_seconds() if finished else elapsed
    records: dict[str, dict[str, int]] = {}
    for row in SyncedRecord.objects.values("flow_id", "status").annotate(n=Count("pk")):
        records.setdefault(str(row["flow_id"]), {})[row["status"]] = row["n"]
    tasks = [
        {"id": t.id, "success": t.success, "result": t.result if t.success else str(t.result)}
        for t in Task.objects.filter(id__in=task_ids)
    ]
    for run in runs:
        for key in ("started_at", "finished_at"):
            run[key] = run[key].isoformat() if run[key] else None
    return {
        "queued": len(task_ids),
        "done": done,
        "timed_out": done < len(task_ids),
        "elapsed_s": elapsed,
        "window_s": window,
        "synced": synced,
        "invoices_per_s": synced / window if window > 0 else 0.0,
        "flows": {str(f.pk): f.name for f in SyncFlow.objects.all()},
        "leases_held": list(SyncFlow.objects.exclude(lease_owner="").values_list("pk", flat=True)),
        "runs": runs,
        "tasks": tasks,
        "records": records,
        "ledger": shared_report(settings.Q_CLUSTER["redis"], ledgers),
    }


# -- figures -----------------------------------------------------------------------------------


def measure(
    quick: bool,
    emit: Callable[[str, float, str], None],
    *,
    cluster_counts: Sequence[int] = (1, 2),
    latency_ms: int = 0,
) -> None:
    """Emit ``scale_invoices_per_s_<n>_cluster(s)`` for each cluster count."""
    flows, invoices = (10, 200) if quick else (20, 500)
    with Services() as services:
        for clusters in cluster_counts:
            report = run_scale(
                services, clusters=clusters, flows=flows, invoices=invoices,
                latency_ms=latency_ms, timeout=600,
            )  # fmt: skip
            if report["timed_out"] or report["synced"] != flows * invoices:
                raise RuntimeError(
                    f"{clusters} cluster(s): {report['done']}/{report['queued']} tasks done, "
                    f"{report['synced']}/{flows * invoices} invoices synced\n"
                    + "\n".join(c["log_tail"] for c in report["clusters"])
                )
            suffix = "1_cluster" if clusters == 1 else f"{clusters}_clusters"
            emit(f"scale_invoices_per_s_{suffix}", report["invoices_per_s"], "invoices/s")


def _emit(name: str, value: float, unit: str) -> None:
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    print(f"{name} {text} {unit}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step")
    setup = sub.add_parser("setup", help=argparse.SUPPRESS)
    setup.add_argument("--flows", type=int, required=True)
    setup.add_argument("--invoices", type=int, required=True)
    setup.add_argument("--latency-ms", type=int, default=0)
    drive = sub.add_parser("drive", help=argparse.SUPPRESS)
    drive.add_argument("--clusters", type=int, required=True)
    drive.add_argument("--repeat", type=int, default=1)
    drive.add_argument("--timeout", type=float, default=150)
    drive.add_argument("--ledger", action="append", default=[])
    parser.add_argument("--quick", action="store_true", help="10 flows x 200 invoices")
    parser.add_argument("--clusters", default="1,2", help="cluster counts to measure")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every connector call")
    args = parser.parse_args(argv)
    if args.step == "setup":
        print(json.dumps(child_setup(args.flows, args.invoices, args.latency_ms)))
    elif args.step == "drive":
        print(json.dumps(child_drive(args.clusters, args.repeat, args.timeout, args.ledger)))
    else:
        counts = [int(n) for n in args.clusters.split(",") if n]
        measure(args.quick, _emit, cluster_counts=counts, latency_ms=args.latency_ms)


if __name__ == "__main__":
    main()
