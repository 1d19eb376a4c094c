"""invsync benchmarks: print one line per figure, ``name value unit``.

    python bench/run.py            # full figures (100,000-invoice backlog, live Tryton ratio)
    python bench/run.py --quick    # a short version (10,000-invoice backlog, fewer Tryton entries)
    python bench/run.py --only engine,queries

Each figure runs on a throw-away SQLite database under a temporary directory, with the connectors
in bench/connectors.py (a source that generates invoices on demand and a target that only counts)
except ``tryton_ratio``, which writes into a live Tryton started by the sandbox, and ``scale``
(bench/scale.py), which runs one then two ``manage.py qcluster`` processes on a private PostgreSQL
and a private Redis (skipped, with a note on stderr, where PostgreSQL 15 or redis-server is
missing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(var_dir: Path) -> None:
    os.environ["INVSYNC_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invsync.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def emit(name: str, value: float, unit: str) -> None:
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    print(f"{name} {text} {unit}", flush=True)


# -- figures ------------------------------------------------------------------------------------


def bench_engine(quick: bool) -> None:
    from bench.connectors import engine_config, generated_invoice
    from syncs.engine import Posted, build_posting

    config = engine_config()
    invoices = [generated_invoice(i, lines=5) for i in range(2000 if quick else 20000)]
    start = time.perf_counter()
    for invoice in invoices:
        assert isinstance(build_posting(invoice, config, external_id=invoice.source_id), Posted)
    elapsed = time.perf_counter() - start
    emit("engine_invoices_per_s", len(invoices) / elapsed, "invoices/s")


def _count_queries():
    from django.db import connection

    counter = {"n": 0}

    def wrapper(execute, sql, params, many, context):
        counter["n"] += 1
        return execute(sql, params, many, context)

    return counter, connection.execute_wrapper(wrapper)


def _flow(name: str):
    from bench.connectors import make_flow

    return make_flow(name)


def bench_calls_and_queries(quick: bool) -> None:
    """First runs of 100 and 1,000 invoices (no attachments): queries, target and source calls per
    invoice; then a second run over the same, already synced invoices."""
    from bench.connectors import CountingTarget, GeneratedSource, registered
    from syncs.services import flow_sync

    with registered():
        for count in (100, 1000):
            GeneratedSource.configure(count=count, attachments=False)
            CountingTarget.reset()
            flow = _flow(f"queries-{count}")
            counter, wrapper = _count_queries()
            with wrapper:
                run = flow_sync(flow=flow, trigger="command")
            assert run.synced_count == count, (run.status, run.error_message, run.counts())
            emit(f"db_queries_per_invoice_{count}", counter["n"] / count, "queries/invoice")
            if count == 1000:
                target_calls = sum(CountingTarget.calls.values())
                source_calls = sum(GeneratedSource.calls.values())
                emit("target_calls_per_invoice", target_calls / count, "calls/invoice")
                emit("source_calls_per_invoice", source_calls / count, "calls/invoice")
                CountingTarget.calls.clear()
                GeneratedSource.calls.clear()
                second = flow_sync(flow=flow, trigger="command")
                assert second.synced_count == 0
                emit("target_calls_unchanged_run", sum(CountingTarget.calls.values()), "calls")
        # With PDFs: one fetch per invoice from the source, written in the same batch call.
        GeneratedSource.configure(count=1000, attachments=True)
        CountingTarget.reset()
        flow_sync(flow=_flow("attachments"), trigger="command")
        emit(
            "target_calls_per_invoice_with_pdf", sum(CountingTarget.calls.values()) / 1000,
            "calls/invoice",
        )  # fmt: skip


def bench_backlog(quick: bool) -> None:
    """Peak memory while syncing a large backlog from a fast source: in a child process, so the
    figure is that run's own peak."""
    count = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="invsync-bench-") as var:
        done = subprocess.run(
            [sys.executable, __file__, "--backlog-child", str(count), "--var", var],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit("backlog benchmark failed")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    emit("backlog_invoices", result["count"], "invoices")
    emit("backlog_invoices_per_s", result["per_s"], "invoices/s")
    emit("peak_rss_mb", result["peak_rss_mb"], "MB")


def backlog_child(count: int, var: str) -> None:
    import resource

    setup_django(Path(var))
    from bench.connectors import CountingTarget, GeneratedSource, registered
    from syncs.services import flow_sync

    with registered():
        GeneratedSource.configure(count=count, attachments=False)
        CountingTarget.reset()
        flow = _flow("backlog")
        start = time.perf_counter()
        run = flow_sync(flow=flow, trigger="command")
        elapsed = time.perf_counter() - start
    assert run.synced_count == count, (run.status, run.error_message, run.counts())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"count": count, "per_s": count / elapsed, "peak_rss_mb": peak}))


def bench_tryton(quick: bool) -> None:
    from bench.tryton import tryton_ratio

    tryton_ratio(entries=50 if quick else 200, emit=emit)


def bench_scale(quick: bool) -> None:
    """Throughput with one and with two django-q2 clusters sharing PostgreSQL and Redis."""
    from bench import scale

    try:
        scale.measure(quick, emit)
    except scale.Unavailable as missing:
        print(f"scale: skipped ({missing})", file=sys.stderr, flush=True)


def bench_pennylane(quick: bool) -> None:
    """Target calls per invoice into Pennylane (contract-validated fake), rate limit held."""
    from bench.pennylane import measure

    measure(quick, emit)


def bench_xero(quick: bool) -> None:
    """Target calls per invoice into Xero (spec-validated fake) and the 20,000-invoice backlog."""
    from bench.xero import measure

    measure(quick, emit)


def bench_stripe(quick: bool) -> None:
    """Source calls per document from Stripe (contract-validated fake) into the counting ledger."""
    from bench.stripe import measure

    measure(quick, emit)


def bench_einvoice_read(quick: bool) -> None:
    from bench.einvoices import bench_read

    bench_read(quick, emit)


def bench_einvoice_ingest(quick: bool) -> None:
    from bench.einvoices import bench_ingest

    bench_ingest(quick, emit)


def bench_pages(quick: bool) -> None:
    """Server time, HTML size and queries of the admin's main pages with the demo's data."""
    from bench.pages import measure

    measure(quick, emit)


FIGURES = {
    "engine": bench_engine,
    "queries": bench_calls_and_queries,
    "backlog": bench_backlog,
    "tryton": bench_tryton,
    "scale": bench_scale,
    "pennylane": bench_pennylane,
    "xero": bench_xero,
    "stripe": bench_stripe,
    "einvoice_read": bench_einvoice_read,
    "einvoice_ingest": bench_einvoice_ingest,
    "pages": bench_pages,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short version of every figure")
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(FIGURES))
    parser.add_argument("--backlog-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--var", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backlog_child:
        backlog_child(args.backlog_child, args.var)
        return
    wanted = [name for name in args.only.split(",") if name] or list(FIGURES)
    with tempfile.TemporaryDirectory(prefix="invsync-bench-") as var:
        setup_django(Path(var))
        for name in wanted:
            FIGURES[name](args.quick)


if __name__ == "__main__":
    main()
