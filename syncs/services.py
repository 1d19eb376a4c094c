"""Sync services: run a flow, retry records, correct a record's lines, read the target's lookups,
the flow's leases.

A run itself lives in :mod:`syncs.run`: ``state`` (what a run carries, :class:`RunState`),
``orchestrate`` (the loop, chunks, progress), ``partners``, ``writes`` (crash-safe pushes,
attachments) and ``recovery`` (what a dead run left, other keys of an entry). :func:`flow_sync`
takes the lease, builds the state and hands it the lease's heartbeat and the lookups reader.

The push protocol (DESIGN.md, "Sync state and idempotency"):

1. A run holds the flow's lease, a row-level conditional UPDATE on the flow with an expiry that a
   heartbeat pushes forward, so at most one run per flow exists across every worker and host, and a
   dead worker's lease lapses on its own.
2. Records left ``pushing`` by a dead run are resolved first by asking the target for their entries
   by external id: found means synced, absent means pending again. Nothing is written for them
   before that answer.
3. Invoices are evaluated in chunks. Those ready to post are marked ``pushing`` in their own
   committed transaction, then written in one target call where the target takes batches, then
   marked synced (or failed) in a second transaction. A crash anywhere leaves either ``pushing``
   (resolved by step 2) or a final state.
4. An unchanged invoice (same fingerprint, same configuration version) costs no target call.
5. The source cursor advances only after the records it covers are committed.
6. Idempotency is per ledger (DESIGN): an entry's external id is the invoice's identity in its
   source account (:func:`syncs.models.external_id`), the same for every flow reading that
   account. When other flows read the same account and write the same folder, or entries may
   carry the old per-flow keys (``invsync:<flow id>:...``, written before the upgrade), the
   target is asked for all those keys before anything is written; an invoice found there is
   marked synced with that entry and a note naming the flow that wrote it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connectors.base import AccountingTarget
from connectors.canonical import Direction, TargetLookups
from connectors.errors import ErrorCode, InvsyncError, english_text
from connectors.models import LookupCache
from connectors.selectors import connection_account_identity, connector_for
from mappings.lookups import cached_target_lookups, lookups_from_payload, lookups_to_payload
from mappings.models import SyncFlow
from mappings.overlaps import flows_sharing_ledger
from syncs import selectors
from syncs.models import (
    ObjectType,
    RecordStatus,
    RunStatus,
    RunTrigger,
    SyncedRecord,
    SyncRun,
    external_id,
)
from syncs.run import pause
from syncs.run.orchestrate import execute
from syncs.run.state import RunState, clip

logger = logging.getLogger(__name__)


# -- Public services -----------------------------------------------------------------------------


def flow_sync_enqueue(*, flow: SyncFlow, trigger: str = RunTrigger.MANUAL) -> str:
    """Queue a run of ``flow`` on django-q2; returns the task id."""
    from django_q.tasks import async_task

    return async_task(
        "syncs.tasks.run_flow",
        flow.pk,
        trigger=str(trigger),
        task_name=f"sync flow {flow.pk} ({trigger})",
        group=f"flow-{flow.pk}",
    )


def records_retry_enqueue(*, records: Iterable[SyncedRecord]) -> int:
    """Put the given failed records back to pending and queue one run per flow to push them.

    Safe to call twice: a record already pending is left as it is, and a second queued run of the
    same flow finds nothing left to do (or waits out the lease)."""
    ids = [r.pk for r in records if r.status == RecordStatus.FAILED]
    if not ids:
        return 0
    with transaction.atomic():
        queryset = SyncedRecord.objects.filter(pk__in=ids, status=RecordStatus.FAILED)
        flow_ids = set(queryset.values_list("flow_id", flat=True))
        count = queryset.update(status=RecordStatus.PENDING, next_attempt_at=None)
    for flow in SyncFlow.objects.filter(pk__in=flow_ids):
        flow_sync_enqueue(flow=flow, trigger=RunTrigger.RETRY)
    return count


OVERRIDE_KEYS = ("account", "vat_code")


def record_overrides_set(
    *, record: SyncedRecord, lines: Mapping[int, Mapping[str, str | None]]
) -> SyncedRecord:
    """Replace ``record``'s per-line overrides (line index → optional ``account`` and
    ``vat_code``); blank values and lines left out carry no override. The engine applies them on
    the record's next attempt.

    Checked against the flow's cached target lookups (as last read, no call to the tool): an
    account must exist and be active, a VAT code must exist and, where the tool says, be of the
    invoice's direction. Before any lookup was read they are kept as typed, and the engine checks
    them on the next attempt. Raises ValidationError keyed ``lines[<index>].<key>`` (or with no key
    when the record is already written).

    Writes the overrides only: no status change, no configuration version bump, and ``updated_at``
    untouched (it dates the record's last attempt)."""
    if record.status in (RecordStatus.SYNCED, RecordStatus.PUSHING):
        raise ValidationError(
            "This invoice's entry is already written in the accounting tool: overrides would never "
            "be used."
        )
    line_count = len((record.snapshot or {}).get("lines") or [])
    lookups = cached_target_lookups(record.flow)
    direction = selectors.record_direction(record)
    errors: dict[str, str] = {}
    cleaned: dict[str, dict[str, str]] = {}
    for index, values in sorted(lines.items(), key=lambda item: int(item[0])):
        index = int(index)
        where = f"lines[{index}]"
        unknown = sorted(set(values) - set(OVERRIDE_KEYS))
        if unknown:
            errors[where] = f"Unknown override(s): {', '.join(unknown)}."
            continue
        line = {key: (values.get(key) or "").strip() for key in OVERRIDE_KEYS}
        line = {key: value for key, value in line.items() if value}
        if not line:
            continue
        if not 0 <= index < line_count:
            errors[where] = f"The invoice has no line {index + 1}."
            continue
        if lookups is not None:
            for key, message in _override_problems(line, lookups, direction).items():
                errors[f"{where}.{key}"] = f"Line {index + 1}: {message}"
        cleaned[str(index)] = line
    if errors:
        raise ValidationError(errors)
    overrides = {key: value for key, value in (record.overrides or {}).items() if key != "lines"}
    if cleaned:
        overrides["lines"] = cleaned
    # An UPDATE of the one column: a save() would move updated_at (the failure's date).
    SyncedRecord.objects.filter(pk=record.pk).update(overrides=overrides)
    record.overrides = overrides
    return record


def _override_problems(
    line: Mapping[str, str], lookups: TargetLookups, direction: Direction | None
) -> dict[str, str]:
    problems: dict[str, str] = {}
    number = line.get("account")
    if number:
        account = next((a for a in lookups.accounts if a.number == number), None)
        if account is None:
            problems["account"] = f"the account {number} does not exist in the accounting tool."
        elif not account.active:
            problems["account"] = f"the account {number} is not active in the accounting tool."
    code = line.get("vat_code")
    # As the engine: VAT codes are only checked when the tool listed some.
    if code and lookups.vat_codes:
        vat_code = next((v for v in lookups.vat_codes if v.code == code), None)
        if vat_code is None:
            problems["vat_code"] = f"the VAT code {code} does not exist in the accounting tool."
        elif direction and vat_code.direction and vat_code.direction is not direction:
            problems["vat_code"] = (
                f"the VAT code {code} is a {vat_code.direction.value} code; this is a "
                f"{direction.value} invoice."
            )
    return problems


def flow_sync(
    *,
    flow: SyncFlow,
    trigger: str = RunTrigger.MANUAL,
    progress: Callable[[SyncRun], None] | None = None,
) -> SyncRun | None:
    """Run ``flow`` now, in this process. Returns the finished run, or None when another run of
    the flow, or of a flow sharing its ledger, holds the lease (nothing is done then)."""
    lease = _ledger_lease_acquire(flow)
    if lease is None:
        logger.info(
            "flow %s or a flow on the same ledger is already running; not starting another run",
            flow.pk,
        )
        return None
    run = SyncRun.objects.create(flow=flow, trigger=trigger)
    logger.info("flow %s run %s started (%s)", flow.pk, run.pk, trigger)
    source = target = None
    try:
        flow.refresh_from_db()
        source = connector_for(flow.invoicing_connection)
        target = connector_for(flow.accounting_connection)
        state = RunState(
            flow=flow,
            run=run,
            source=source,
            target=target,
            renew_lease=partial(_lease_renew, flow.pk, lease),
            read_lookups=partial(flow_lookups_refresh, flow=flow, target=target),
            progress=progress,
            batch_size=max(1, settings.INVSYNC_BATCH_SIZE),
        )
        execute(state)
    except InvsyncError as error:
        if pause.is_pause(error):
            # The tool's daily limit: nothing failed; the flow resumes when it resets.
            pause.run_pause(run, flow, error)
        else:
            _finish(run, RunStatus.FAILED, error.code, error.message, error)
    except Exception as error:
        # A bug must not leave the run "running" forever nor hold the lease: record it, then let
        # it propagate so django-q2 (or the command) shows the traceback.
        _finish(run, RunStatus.FAILED, ErrorCode.UNEXPECTED, clip(repr(error)))
        raise
    else:
        _finish(run, RunStatus.PARTIAL if run.failed_count else RunStatus.SUCCEEDED)
        pause.flow_unpause(flow)
    finally:
        for connector in (source, target):
            if connector is not None:
                connector.close()
        _lease_release(flow.pk, lease)
    logger.info(
        "flow %s run %s %s: %s", flow.pk, run.pk, run.status,
        " ".join(f"{k}={v}" for k, v in run.counts().items()),
    )  # fmt: skip
    return run


def flow_lookups_refresh(
    *, flow: SyncFlow, target: AccountingTarget | None = None
) -> TargetLookups:
    """Read the target's chart, VAT codes and journals for the flow's folder (three calls) and keep
    them for forms, previews and downloads."""
    own = target is None
    target = target or connector_for(flow.accounting_connection)
    try:
        accounts = target.list_accounts(flow.folder)
        vat_codes = target.list_vat_codes(flow.folder)
        journals = target.list_journals(flow.folder)
    finally:
        if own:
            target.close()
    payload = lookups_to_payload(accounts, vat_codes, journals)
    for name, rows in payload.items():
        LookupCache.objects.update_or_create(
            connection=flow.accounting_connection,
            folder=flow.folder,
            name=name,
            defaults={"payload": rows},
        )
    return lookups_from_payload(payload)


# -- Lease ---------------------------------------------------------------------------------------


def _lease_seconds() -> int:
    return settings.INVSYNC_RUN_LEASE_SECONDS


def _ledger_lease_acquire(flow: SyncFlow) -> str | None:
    """The leases of the flow and of every flow sharing its ledger (same source account, folder
    and overlapping scope), under one token, taken in id order so that of two such flows
    starting together one gets them all and the other none: two runs never write one invoice at
    the same moment. None (nothing held) when one of them is taken."""
    token = uuid.uuid4().hex
    for flow_id in sorted({flow.pk, *(other.pk for other in flows_sharing_ledger(flow))}):
        if _lease_acquire(flow_id, token) is None:
            _lease_release(flow.pk, token)
            return None
    return token


def _lease_acquire(flow_id: int, token: str | None = None) -> str | None:
    token = token or uuid.uuid4().hex
    now = timezone.now()
    taken = (
        SyncFlow.objects.filter(pk=flow_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_owner=token, lease_until=now + timedelta(seconds=_lease_seconds()))
    )
    if not taken:
        return None
    # Holding the lease, no other run of the flow is alive: one still marked running belongs to
    # a worker that died (its lease lapsed). Close it, so it is not shown running forever.
    SyncRun.objects.filter(flow_id=flow_id, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED,
        finished_at=now,
        error_code=ErrorCode.UNEXPECTED,
        error_message=english_text("run.worker_lost", {}),
        error_key="run.worker_lost",
        error_params={},
    )
    return token


def _lease_renew(flow_id: int, token: str) -> None:
    until = timezone.now() + timedelta(seconds=_lease_seconds())
    if not SyncFlow.objects.filter(pk=flow_id, lease_owner=token).update(lease_until=until):
        raise InvsyncError.of(ErrorCode.UNEXPECTED, "run.lease_lost")
    # The leases of the flows sharing its ledger, held under the same token.
    SyncFlow.objects.filter(lease_owner=token).exclude(pk=flow_id).update(lease_until=until)


def _lease_release(flow_id: int, token: str) -> None:
    """Release the flow's lease and those held with it (the same token: flows on its ledger)."""
    SyncFlow.objects.filter(lease_owner=token).update(lease_owner="", lease_until=None)


# -- Helpers -------------------------------------------------------------------------------------


def _finish(
    run: SyncRun, status: str, code: str = "", message: str = "", error: InvsyncError | None = None
) -> None:
    run.status = status
    run.error_code = code
    run.error_message = clip(message)
    run.error_key = error.key if error is not None else ""
    run.error_params = error.params if error is not None else {}
    run.finished_at = timezone.now()
    run.save()


def record_external_id(flow: SyncFlow, source_id: str) -> str:
    """The key the flow's invoice ``source_id`` is written under: the same for every flow that
    reads the same invoicing account. Raises InvsyncError(CONFIGURATION_INCOMPLETE) when the
    flow's invoicing connection names no account."""
    account = connection_account_identity(flow.invoicing_connection)
    return external_id(account, ObjectType.INVOICE, source_id)
