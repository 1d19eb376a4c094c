"""Crash safety into the live Tryton: nothing lost, nothing written twice.

A real worker process (``tests/crash_worker.py``) runs the flow over the sample invoices against
this test's database (a SQLite file, ``file_db``) and kills itself with SIGKILL at one step of the
push, a batch or more into the run. The test checks what the dead worker left (the killed batch
``pushing``, its moves in Tryton as far as the step went, the lease still held), then runs the
flow again here and checks, in Tryton itself, that every invoice has exactly one move, posted,
with one PDF, and that every record ends as the manifest says.

Most tests take the purchases (11 invoices to write, batches of 3: the kill comes in the second
batch, two more follow); one takes every sample invoice, failures and skips included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from connectors.providers.tryton.entries import external_id_of
from mappings.models import SyncFlow
from syncs.models import RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.services import flow_sync, record_external_id
from tests.integration.test_tryton_sync import _rows, make_flow, run

pytestmark = [pytest.mark.tryton]

ROOT = Path(__file__).resolve().parents[2]
BATCH = 3  # invoices per chunk and per create_entries call, in the worker and here
KILL_AT = 2  # the worker dies in its second batch: the first was fully written before
DIRECTIONS = {"both": {"out", "in"}, "sales": {"out"}, "purchases": {"in"}}


class RunLeftRunning(AssertionError):
    """The dead worker's run still says it is running."""


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def new_flow(file_db, settings, tryton_invoicing, tryton_accounting):
    settings.INVSYNC_BATCH_SIZE = BATCH

    def new_flow(scope="purchases"):
        return make_flow(tryton_invoicing, tryton_accounting, scope=scope)

    return new_flow


@pytest.fixture
def flow(new_flow):
    return new_flow()


def crash(flow, db_path, step, *, at=KILL_AT, lease_seconds=None):
    """Run the flow in a worker process that SIGKILLs itself at the ``at``-th ``step``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "INVSYNC_BATCH_SIZE": str(BATCH),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if lease_seconds is not None:
        env["INVSYNC_RUN_LEASE_SECONDS"] = str(lease_seconds)
    worker = subprocess.run(
        [sys.executable, "-m", "tests.crash_worker", str(flow.pk), step, "--at", str(at)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = f"stdout:\n{worker.stdout[-3000:]}\nstderr:\n{worker.stderr[-8000:]}"
    assert worker.returncode == -signal.SIGKILL, output
    assert f"crash_worker: SIGKILL at {step} #{at}" in worker.stdout, output
    return worker


def entries(db) -> dict[str, list[dict]]:
    """invsync's moves in Tryton by external id, each with its state and number of files."""
    moves = _rows(db, "account.move", [("description", "like", "%[invsync:%")],
                  ["description", "state"])  # fmt: skip
    files: Counter[int] = Counter()
    if moves:
        for row in _rows(
            db, "ir.attachment", [("resource", "in", [f"account.move,{m['id']}" for m in moves])],
            ["resource"],
        ):  # fmt: skip
            files[int(row["resource"].split(",")[1])] += 1
    by_key: dict[str, list[dict]] = defaultdict(list)
    for move in moves:
        by_key[external_id_of(move["description"])].append(
            {**move, "attachments": files[move["id"]]}
        )
    return dict(by_key)


def key(record: SyncedRecord) -> str:
    return record.entry_key or record_external_id(record.flow, record.source_id)


def expire_lease(flow) -> None:
    """What time does to a dead worker's lease (the lease test waits for it for real)."""
    SyncFlow.objects.filter(pk=flow.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def assert_killed_mid_run(flow, accounting, step, at=KILL_AT) -> list[SyncedRecord]:
    """What the dead worker left: earlier batches synced, the killed one ``pushing`` with its
    moves in Tryton as far as the step went, the lease held, its run never finished."""
    records = list(SyncedRecord.objects.filter(flow=flow))
    by_status = defaultdict(list)
    for record in records:
        by_status[record.status].append(record)
    pushing = by_status[RecordStatus.PUSHING]
    assert 0 < len(pushing) <= BATCH, {s: len(r) for s, r in by_status.items()}
    assert len(by_status[RecordStatus.SYNCED]) >= at - 1
    assert not by_status[RecordStatus.PENDING]
    in_tryton = entries(accounting)
    for record in by_status[RecordStatus.SYNCED]:
        [move] = in_tryton[key(record)]
        assert (record.target_ref, move["attachments"]) == (str(move["id"]), 1)
    for record in pushing:
        moves = in_tryton.get(key(record), [])
        if step == "before_write":
            assert moves == [], record.number
            continue
        [move] = moves
        assert move["state"] == ("draft" if step == "before_post" else "posted"), record.number
        with_file = step in ("attachment_sent", "after_write")
        assert move["attachments"] == (1 if with_file else 0), record.number
    # The written batches are all the worker wrote.
    written = {key(r) for r in by_status[RecordStatus.SYNCED]}
    if step != "before_write":
        written |= {key(r) for r in pushing}
    assert set(in_tryton) == written
    flow.refresh_from_db()
    assert flow.lease_owner and flow.lease_until > timezone.now()
    assert SyncRun.objects.filter(flow=flow, status=RunStatus.RUNNING).count() == 1
    return pushing


def assert_each_invoice_once(flow, accounting, manifest) -> None:
    """Every sample invoice of the flow's scope ends as its manifest says; in Tryton, exactly one
    posted move with one PDF per synced invoice, and nothing else."""
    flow.refresh_from_db()
    wanted = {str(i["id"]): i for i in manifest["invoices"] if i["type"] in DIRECTIONS[flow.scope]}
    records = {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}
    assert set(records) <= set(wanted)
    in_tryton = entries(accounting)
    written, drafts = set(), []
    for source_id, invoice in wanted.items():
        name = invoice["number"] or invoice["key"]
        record = records.get(source_id)
        if record is None:  # drafts are never listed
            assert invoice["expect"] == "skip" and invoice["state"] == "draft", name
            continue
        moves = in_tryton.get(key(record), [])
        if invoice["expect"] == "sync":
            assert record.status == RecordStatus.SYNCED, (name, record.status, record.error_message)
            assert len(moves) == 1, (name, moves)
            [move] = moves
            assert record.target_ref == str(move["id"]), name
            assert move["attachments"] == 1, (name, move)
            if move["state"] != "posted":
                drafts.append(name)
            written.add(key(record))
        elif invoice["expect"] == "fail":
            assert (record.status, record.error_code) == (
                RecordStatus.FAILED, invoice["expected_error"],
            ), name  # fmt: skip
            assert not moves, name
        else:
            assert record.status == RecordStatus.SKIPPED and not moves, name
    assert set(in_tryton) == written
    # Last, so that a draft left behind never hides a worse failure.
    assert not drafts, f"moves left draft although the flow posts: {drafts}"


# -- a kill at each step of the push, then a run that recovers -------------------------------


@pytest.mark.parametrize(
    "step",
    [
        "before_write",  # marked pushing and committed, nothing sent
        "before_post",  # moves created (drafts), not yet posted
        "attachment",  # moves created and posted, PDFs not sent
        "attachment_sent",  # PDFs stored by Tryton, its answer never read
        "after_write",  # everything in Tryton, records not saved as synced
    ],
)
def test_a_worker_killed_mid_push_leaves_each_invoice_written_once(
    step, flow, file_db, tryton_invoicing, tryton_accounting
):
    crash(flow, file_db, step)
    killed = assert_killed_mid_run(flow, tryton_accounting, step)
    expire_lease(flow)

    run(flow)

    assert_each_invoice_once(flow, tryton_accounting, tryton_invoicing.manifest)
    assert {r.status for r in SyncedRecord.objects.filter(pk__in=[r.pk for r in killed])} == {
        RecordStatus.SYNCED
    }


def test_every_sample_invoice_survives_a_crash_while_recovering_a_crash(
    new_flow, file_db, tryton_invoicing, tryton_accounting
):
    flow = new_flow("both")
    crash(flow, file_db, "attachment", at=3)
    killed = assert_killed_mid_run(flow, tryton_accounting, "attachment", at=3)
    expire_lease(flow)
    # The next worker dies re-attaching the first of those PDFs, while resolving.
    crash(flow, file_db, "attachment", at=1)
    assert {r.status for r in SyncedRecord.objects.filter(pk__in=[r.pk for r in killed])} == {
        RecordStatus.PUSHING
    }
    assert sum(m["attachments"] for r in killed for m in entries(tryton_accounting)[key(r)]) == 0
    expire_lease(flow)

    third = run(flow)

    assert_each_invoice_once(flow, tryton_accounting, tryton_invoicing.manifest)
    assert third.status == RunStatus.PARTIAL  # the manifest's unmapped VAT rate


# -- the lease -----------------------------------------------------------------------------------

LEASE = 10  # seconds, in the worker


def test_a_crash_holding_the_lease_blocks_runs_only_until_it_expires(
    flow, file_db, tryton_invoicing, tryton_accounting
):
    crash(flow, file_db, "after_write", lease_seconds=LEASE)
    flow.refresh_from_db()
    held_until = flow.lease_until
    runs = SyncRun.objects.filter(flow=flow).count()
    assert 0 < (held_until - timezone.now()).total_seconds() <= LEASE

    # While the dead worker's lease lasts, a run does nothing at all.
    assert flow_sync(flow=SyncFlow.objects.get(pk=flow.pk)) is None
    assert timezone.now() < held_until, "the check above came too late to mean anything"
    assert SyncRun.objects.filter(flow=flow).count() == runs
    assert SyncedRecord.objects.filter(flow=flow, status=RecordStatus.PUSHING).exists()

    # Then it lapses on its own: nobody touches the flow.
    time.sleep(max(0.0, (held_until - timezone.now()).total_seconds()) + 0.2)
    run(flow)

    assert_each_invoice_once(flow, tryton_accounting, tryton_invoicing.manifest)
    flow.refresh_from_db()
    assert not flow.lease_owner and flow.lease_until is None


def test_the_dead_workers_run_does_not_stay_running(new_flow, file_db, tryton_invoicing):
    flow = new_flow()
    # Only the last few purchases are written (the others are skipped as too old): quicker.
    dates = sorted(
        i["invoice_date"] for i in tryton_invoicing.manifest["invoices"] if i["type"] == "in"
    )
    SyncFlow.objects.filter(pk=flow.pk).update(start_date=dates[-BATCH])
    crash(flow, file_db, "before_write", at=1)
    [dead] = SyncRun.objects.filter(flow=flow)
    expire_lease(flow)

    run(flow)

    dead.refresh_from_db()
    if dead.status == RunStatus.RUNNING:
        raise RunLeftRunning(f"run {dead.pk} is still {dead.status}")
