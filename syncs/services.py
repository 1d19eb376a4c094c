"""Sync services: run a flow, retry records.

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
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connectors.base import (
    AccountingTarget,
    EntryResult,
    EntryToWrite,
    InvoicingSource,
    SourceRecordError,
)
from connectors.canonical import (
    Attachment,
    Direction,
    Invoice,
    InvoiceStatus,
    Partner,
    TargetLookups,
    TargetPartner,
)
from connectors.errors import CONNECTION_CODES, ConnectorError, ErrorCode, InvsyncError
from connectors.models import LookupCache
from connectors.selectors import connection_account_identity, connector_for
from mappings.lookups import cached_target_lookups, lookups_from_payload, lookups_to_payload
from mappings.models import SyncFlow
from mappings.overlaps import describe_flow, flows_sharing_ledger
from syncs import selectors
from syncs.config import FlowConfig
from syncs.engine import Posted, Rejected, Skipped, Waiting, build_posting
from syncs.models import (
    MatchedBy,
    ObjectType,
    PartnerLink,
    RecordStatus,
    RunStatus,
    RunTrigger,
    SyncedRecord,
    SyncRun,
    external_id,
    legacy_external_id,
)
from syncs.partners import match_partner
from syncs.serialization import invoice_from_json, invoice_to_json

logger = logging.getLogger(__name__)

# Errors that concern the connection as a whole: the run stops, nothing is blamed on a record.
RUN_STOPPING_CODES = CONNECTION_CODES
MAX_MESSAGE = 2000


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
        _Run(flow, run, lease, source, target, progress).execute()
    except InvsyncError as error:
        _finish(run, RunStatus.FAILED, error.code, error.message)
    except Exception as error:
        # A bug must not leave the run "running" forever nor hold the lease: record it, then let
        # it propagate so django-q2 (or the command) shows the traceback.
        _finish(run, RunStatus.FAILED, ErrorCode.UNEXPECTED, _clip(repr(error)))
        raise
    else:
        _finish(run, RunStatus.PARTIAL if run.failed_count else RunStatus.SUCCEEDED)
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
        error_message="The worker running this stopped before the run finished (its lease "
        "lapsed); the next run resumed where it stopped.",
    )
    return token


def _lease_renew(flow_id: int, token: str) -> None:
    until = timezone.now() + timedelta(seconds=_lease_seconds())
    if not SyncFlow.objects.filter(pk=flow_id, lease_owner=token).update(lease_until=until):
        raise InvsyncError(
            ErrorCode.UNEXPECTED,
            "The run lost its lease (it was stalled longer than the lease); another run took over.",
        )
    # The leases of the flows sharing its ledger, held under the same token.
    SyncFlow.objects.filter(lease_owner=token).exclude(pk=flow_id).update(lease_until=until)


def _lease_release(flow_id: int, token: str) -> None:
    """Release the flow's lease and those held with it (the same token: flows on its ledger)."""
    SyncFlow.objects.filter(lease_owner=token).update(lease_owner="", lease_until=None)


# -- Helpers -------------------------------------------------------------------------------------


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _finish(run: SyncRun, status: str, code: str = "", message: str = "") -> None:
    run.status = status
    run.error_code = code
    run.error_message = _clip(message)
    run.finished_at = timezone.now()
    run.save()


def _retry_delay(attempts: int) -> timedelta:
    """Bounded exponential backoff with jitter for records that failed on a transient error."""
    base = min(3600.0, 60.0 * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class _Ready:
    """An invoice the engine turned into a posting, waiting for its partner and its write."""

    record: SyncedRecord
    invoice: Invoice
    posting: object  # connectors.canonical.Posting
    attachment: Attachment | None = None


@dataclass
class _Chunk:
    ready: list[_Ready] = field(default_factory=list)
    dirty: list[SyncedRecord] = field(default_factory=list)


class _StopRun(Exception):
    def __init__(self, error: InvsyncError) -> None:
        super().__init__(error.message)
        self.error = error


class _Run:
    def __init__(
        self,
        flow: SyncFlow,
        run: SyncRun,
        lease: str,
        source: InvoicingSource,
        target: AccountingTarget,
        progress: Callable[[SyncRun], None] | None,
    ) -> None:
        self.flow = flow
        self.run = run
        self.lease = lease
        self.source = source
        self.target = target
        self.progress = progress
        self.folder = flow.folder
        self.batch_size = max(1, settings.INVSYNC_BATCH_SIZE)
        self._config: FlowConfig | None = None
        self.links: dict[str, PartnerLink] = {}
        self.verified_partners: set[str] = set()
        self.now = timezone.now()
        self.source_account = ""
        # Other flows reading the same source account and writing the same folder (by id), and
        # the flows (this one included) whose entries may carry the old per-flow keys.
        self.relatives: dict[int, SyncFlow] = {}
        self.legacy_flows: list[int] = []

    # -- orchestration ---------------------------------------------------------------------------

    def execute(self) -> None:
        if not self.folder:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                "The flow has no accounting folder.",
                field="folder",
            )
        self.source_account = connection_account_identity(self.flow.invoicing_connection)
        self.relatives = {other.pk: other for other in flows_sharing_ledger(self.flow)}
        self.legacy_flows = self._flows_with_legacy_keys()
        try:
            self._resolve_stuck_pushes()
            self._process_source()
            self._process_held()
        except _StopRun as stop:
            raise stop.error from None

    @property
    def config(self) -> FlowConfig:
        """Built on first need, so that a run with nothing new makes no call to the target."""
        if self._config is None:
            self._config = selectors.flow_engine_config(self.flow, self._call(self._lookups))
        return self._config

    def _lookups(self) -> TargetLookups:
        return flow_lookups_refresh(flow=self.flow, target=self.target)

    def _directions(self) -> list[Direction]:
        return [d for d in Direction if self.flow.scope in ("both", d.value)]

    def _process_source(self) -> None:
        cursor = self.flow.source_cursor
        newest = cursor
        items = self.source.iter_invoices(since=cursor, directions=self._directions())
        for chunk in _chunks(items, self.batch_size):
            self._process_chunk(chunk)
            for item in chunk:
                if item.updated_at and (newest is None or item.updated_at > newest):
                    newest = item.updated_at
            # Every record of the chunk is committed: the cursor may move past them.
            if newest != cursor:
                SyncFlow.objects.filter(pk=self.flow.pk).update(source_cursor=newest)
                cursor = newest

    def _held_records(self):
        """Records to look at again although the source did not list them as changed: pending ones
        (retries, pushes undone after a crash), those waiting for a PDF, transient failures whose
        backoff is over, and failures from before the configuration last changed."""
        return (
            SyncedRecord.objects.filter(flow=self.flow)
            .filter(
                Q(status__in=[RecordStatus.PENDING, RecordStatus.WAITING])
                | Q(
                    status=RecordStatus.FAILED,
                    next_attempt_at__isnull=False,
                    next_attempt_at__lte=self.now,
                )
                | Q(
                    status__in=[RecordStatus.FAILED, RecordStatus.SKIPPED],
                    config_version__lt=self.flow.config_version,
                )
            )
            # Records this run already looked at carry it as their last run.
            .exclude(last_run=self.run)
            .values_list("source_id", flat=True)
            .order_by("id")
        )

    def _process_held(self) -> None:
        held = list(self._held_records())
        for ids in _chunks(held, self.batch_size):
            items = []
            for source_id in ids:
                try:
                    items.append(self.source.get_invoice(source_id))
                except ConnectorError as error:
                    if error.code in RUN_STOPPING_CODES:
                        raise _StopRun(error) from error
                    items.append(SourceRecordError(source_id, error))
            self._process_chunk(items, force=True)

    # -- one chunk ---------------------------------------------------------------------------

    def _process_chunk(self, items: list, *, force: bool = False) -> None:
        _lease_renew(self.flow.pk, self.lease)
        ids = [item.source_id for item in items]
        records = {
            r.source_id: r for r in SyncedRecord.objects.filter(flow=self.flow, source_id__in=ids)
        }
        chunk = _Chunk()
        for item in items:
            record = records.get(item.source_id)
            if record is None:
                record = SyncedRecord(flow=self.flow, source_id=item.source_id)
                records[item.source_id] = record
            self.run.total += 1
            self._evaluate(record, item, chunk, force=force)
        if chunk.ready:
            self._resolve_partners(chunk)
            self._fetch_attachments(chunk)
        self._save(chunk.dirty)
        if chunk.ready:
            self._push(chunk.ready)
        self.run.processed += len(items)
        self.run.save()
        if self.progress:
            self.progress(self.run)

    def _evaluate(self, record: SyncedRecord, item, chunk: _Chunk, *, force: bool) -> None:
        if isinstance(item, SourceRecordError):
            if record.status == RecordStatus.SYNCED:
                self._count("unchanged")
                return
            record.number = item.number or record.number
            self._fail(record, item.error)
            chunk.dirty.append(record)
            return

        fingerprint = selectors.invoice_fingerprint(item)
        if record.status == RecordStatus.SYNCED:
            if fingerprint != record.fingerprint and not record.drift:
                record.drift = _clip(self._drift(record, item))
                chunk.dirty.append(record)
            self._count("unchanged")
            return
        if record.status == RecordStatus.PUSHING:
            # Only a dead run leaves this state, and it was resolved before this point.
            return
        unchanged = (
            record.pk is not None
            and fingerprint == record.fingerprint
            and record.config_version == self.flow.config_version
            and record.status in (RecordStatus.FAILED, RecordStatus.SKIPPED)
            and not (record.next_attempt_at and record.next_attempt_at <= self.now)
        )
        if unchanged and not force:
            self._count("unchanged")
            return

        self._describe(record, item, fingerprint)
        result = build_posting(
            item,
            self.config,
            external_id=self._key(item.source_id),
            overrides=selectors.record_overrides(record),
        )
        chunk.dirty.append(record)
        if isinstance(result, Skipped):
            record.status, record.skip_reason = RecordStatus.SKIPPED, _clip(result.reason)
            self._clear_error(record)
            self._count("skipped")
        elif isinstance(result, Waiting):
            record.status = RecordStatus.WAITING
            self._clear_error(record)
            self._count("waiting")
        elif isinstance(result, Rejected):
            self._fail(record, InvsyncError(result.code, result.message, field=result.field))
        elif isinstance(result, Posted):
            chunk.ready.append(_Ready(record, item, result.posting))

    def _describe(self, record: SyncedRecord, invoice: Invoice, fingerprint: str) -> None:
        record.number = invoice.number[:100]
        record.invoice_type = invoice.type.value
        record.issue_date = invoice.issue_date
        record.partner_name = (invoice.partner.name if invoice.partner else "")[:300]
        record.currency = invoice.currency[:3]
        record.total = invoice.total if invoice.total.is_finite() else None
        record.fingerprint = fingerprint
        record.config_version = self.flow.config_version
        record.snapshot = invoice_to_json(invoice)
        record.last_run = self.run
        record.skip_reason = ""

    @staticmethod
    def _drift(record: SyncedRecord, invoice: Invoice) -> str:
        if invoice.status is InvoiceStatus.CANCELLED:
            return (
                "Cancelled in the invoicing tool after its entry was written: "
                "reverse the entry in accounting."
            )
        before = record.snapshot.get("total") if record.snapshot else None
        change = f" (total {before} → {invoice.total})" if before != str(invoice.total) else ""
        return (
            f"Changed in the invoicing tool after its entry was written{change}; "
            "the entry is not written again: correct it in accounting if needed."
        )

    def _count(self, what: str) -> None:
        name = f"{what}_count"
        setattr(self.run, name, getattr(self.run, name) + 1)

    @staticmethod
    def _clear_error(record: SyncedRecord) -> None:
        record.error_code = record.error_message = record.error_field = ""
        record.next_attempt_at = None

    def _fail(self, record: SyncedRecord, error: InvsyncError) -> None:
        record.status = RecordStatus.FAILED
        record.error_code = error.code
        record.error_message = _clip(error.message)
        record.error_field = (error.field or "")[:100]
        record.config_version = self.flow.config_version
        record.last_run = self.run
        record.next_attempt_at = (
            timezone.now() + _retry_delay(record.attempts + 1) if error.is_transient else None
        )
        self._count("failed")

    # -- partners ------------------------------------------------------------------------------

    def _resolve_partners(self, chunk: _Chunk) -> None:
        partners = {r.invoice.partner.source_id: r.invoice.partner for r in chunk.ready}
        directions = {r.invoice.partner.source_id: r.invoice.direction for r in chunk.ready}
        unknown = [pid for pid in partners if pid not in self.links]
        for link in PartnerLink.objects.filter(flow=self.flow, source_partner_id__in=unknown):
            self.links[link.source_partner_id] = link
        to_verify = {
            link.target_partner_id
            for pid, link in self.links.items()
            if pid in partners and link.target_partner_id not in self.verified_partners
        }
        missing: set[str] = set()
        if to_verify:
            existing = self._call(self.target.existing_partner_ids, self.folder, sorted(to_verify))
            self.verified_partners |= existing
            missing = to_verify - existing

        failures: dict[str, InvsyncError] = {}
        new: list[str] = []  # partners of the chunk without a link yet
        for pid, partner in partners.items():
            link = self.links.get(pid)
            if link is None:
                new.append(pid)
            elif link.target_partner_id in missing:
                failures[pid] = InvsyncError(
                    ErrorCode.PARTNER_NOT_FOUND,
                    f"{partner.name!r} was linked to the accounting tool's partner "
                    f"{link.target_partner_name or link.target_partner_id!r} "
                    f"({link.get_matched_by_display().lower()}), which no longer exists.",
                    field="partner",
                )
        if new:
            self._link_partners([(pid, partners[pid], directions[pid]) for pid in new], failures)

        still_ready = []
        for ready in chunk.ready:
            pid = ready.invoice.partner.source_id
            if pid in failures:
                self._fail(ready.record, failures[pid])
            else:
                link = self.links[pid]
                ready.posting = replace(ready.posting, partner_ref=link.target_partner_id)
                still_ready.append(ready)
        chunk.ready = still_ready

    def _link_partners(
        self, new: list[tuple[str, Partner, Direction]], failures: dict[str, InvsyncError]
    ) -> None:
        """Match each new partner in the accounting tool, or create it: one search for all of
        them, one creation for those nobody matched. Partners of the chunk that are the same
        (same VAT number, company number or name) get one created partner, as they would had
        they come one after the other."""
        candidates = self._partner_candidates([partner for _, partner, _ in new], failures)
        queued: list[TargetPartner] = []  # what each partner to create will look like
        to_create: list[tuple[str, Partner, Direction]] = []
        twins: list[tuple[str, Partner, str, str]] = []  # pid, partner, queued id, matched by
        for pid, partner, direction in new:
            if pid in failures:
                continue
            try:
                match = match_partner(partner, candidates.get(partner.source_id, []))
                if match is None and self.target.supports_partner_creation:
                    twin = match_partner(partner, queued)
                    if twin is not None:
                        twins.append((pid, partner, twin.partner.id, twin.matched_by))
                        continue
            except InvsyncError as error:
                failures[pid] = error
                continue
            if match is not None:
                self._save_link(pid, partner, match.partner, match.matched_by)
            elif self.target.supports_partner_creation:
                queued.append(_as_created(partner, len(queued)))
                to_create.append((pid, partner, direction))
            else:
                failures[pid] = InvsyncError(
                    ErrorCode.PARTNER_NOT_FOUND,
                    f"No customer or supplier matches {partner.name!r} in the accounting tool, "
                    f"and {self.target.name} does not let invsync create one: create it there.",
                    field="partner",
                )
        if not to_create:
            return
        try:
            results = self.target.create_partners(
                self.folder, [(partner, direction) for _, partner, direction in to_create]
            )
        except InvsyncError as error:
            if error.code in RUN_STOPPING_CODES:
                raise _StopRun(error) from error
            results = [error] * len(to_create)
        created: dict[str, TargetPartner | InvsyncError] = {}
        for (pid, partner, _), placeholder, result in zip(to_create, queued, results, strict=True):
            created[placeholder.id] = result
            if isinstance(result, InvsyncError):
                if result.code in RUN_STOPPING_CODES:
                    raise _StopRun(result)
                failures[pid] = result
            else:
                self._save_link(pid, partner, result, MatchedBy.CREATED)
        for pid, partner, placeholder_id, matched_by in twins:
            result = created[placeholder_id]
            if isinstance(result, InvsyncError):
                failures[pid] = result
            else:
                self._save_link(pid, partner, result, matched_by)

    def _partner_candidates(
        self, partners: list[Partner], failures: dict[str, InvsyncError]
    ) -> dict[str, list[TargetPartner]]:
        """The candidates of each partner, in one search. Should the tool refuse that search, each
        partner is looked up alone: a partner the tool refuses fails its own records only."""
        try:
            return self.target.find_partner_candidates_many(self.folder, partners)
        except InvsyncError as error:
            if error.code in RUN_STOPPING_CODES:
                raise _StopRun(error) from error
        found: dict[str, list[TargetPartner]] = {}
        for partner in partners:
            try:
                found[partner.source_id] = self.target.find_partner_candidates(self.folder, partner)
            except InvsyncError as error:
                if error.code in RUN_STOPPING_CODES:
                    raise _StopRun(error) from error
                failures[partner.source_id] = error
        return found

    def _save_link(
        self, pid: str, partner: Partner, target_partner: TargetPartner, matched_by: str
    ) -> None:
        self.verified_partners.add(target_partner.id)
        self.links[pid], _ = PartnerLink.objects.update_or_create(
            flow=self.flow,
            source_partner_id=partner.source_id,
            defaults={
                "source_partner_name": partner.name[:300],
                "target_partner_id": target_partner.id,
                "target_partner_name": target_partner.name[:300],
                "matched_by": matched_by,
            },
        )

    # -- attachments -------------------------------------------------------------------------

    def _fetch_attachments(self, chunk: _Chunk) -> None:
        if not self.target.supports_attachments:
            return
        still_ready = []
        for ready in chunk.ready:
            if ready.invoice.has_attachment:
                try:
                    ready.attachment = self.source.fetch_attachment(ready.invoice)
                except ConnectorError as error:
                    if error.code in RUN_STOPPING_CODES:
                        raise _StopRun(error) from error
                    if not (error.code == ErrorCode.PDF and self.config.sync_without_attachment):
                        self._fail(ready.record, error)
                        continue
            still_ready.append(ready)
        chunk.ready = still_ready

    # -- writes ------------------------------------------------------------------------------

    def _save(self, records: list[SyncedRecord]) -> None:
        if not records:
            return
        with transaction.atomic():
            for record in records:
                _save_record(record)

    def _push(self, batch: list[_Ready]) -> None:
        """Mark the batch pushing (committed), ask the target for entries other flows or older
        keys may have written, write the rest, then record each outcome."""
        with transaction.atomic():
            for ready in batch:
                ready.record.status = RecordStatus.PUSHING
                ready.record.attempts += 1
                ready.record.entry_key = ready.posting.external_id[:200]
                ready.record.save(update_fields=["status", "attempts", "entry_key", "updated_at"])
        if self.relatives or self.legacy_flows:
            batch = self._not_yet_written(batch)
        self._write(batch)

    # -- one ledger, several keys and flows --------------------------------------------------

    def _key(self, source_id: str) -> str:
        return external_id(self.source_account, ObjectType.INVOICE, source_id)

    def _flows_with_legacy_keys(self) -> list[int]:
        """This flow and its relatives, those of them that wrote entries under per-flow keys (the
        upgrade migration keyed their records so): their invoices' old keys are looked for."""
        ids = [self.flow.pk, *self.relatives]
        return sorted(
            set(
                SyncedRecord.objects.filter(flow_id__in=ids, entry_key__startswith="invsync:")
                .exclude(entry_key__startswith="invsync:acct-")
                .values_list("flow_id", flat=True)
            )
        )

    def _other_keys(self, source_ids: list[str]) -> dict[str, dict[str, int | None]]:
        """For each source id, the keys other than its current one under which its entry may
        already be in the folder, each with the flow that wrote it (None: unknown)."""
        keys: dict[str, dict[str, int | None]] = {sid: {} for sid in source_ids}
        for sid in source_ids:
            for flow_id in self.legacy_flows:
                keys[sid][legacy_external_id(flow_id, ObjectType.INVOICE, sid)] = flow_id
        if self.relatives:
            rows = (
                SyncedRecord.objects.filter(flow_id__in=self.relatives, source_id__in=source_ids)
                .exclude(entry_key="")
                .values_list("source_id", "entry_key", "flow_id")
            )
            for sid, key, flow_id in rows:
                if key in keys[sid] and keys[sid][key] != flow_id:
                    continue  # an old key names its writer
                keys[sid][key] = flow_id
        return keys

    def _found_note(self, key: str, writer: int | None) -> str:
        if writer == self.flow.pk:
            who = "by this flow, before entries were keyed by invoicing account"
        elif writer in self.relatives:
            who = f"by the flow {describe_flow(self.relatives[writer])}"
        else:
            who = "earlier, by a flow reading the same invoicing account"
        return _clip(
            f"Already in the accounting tool (key {key}), written {who}: not written again."
        )[:500]

    def _not_yet_written(self, batch: list[_Ready]) -> list[_Ready]:
        """Ask the target for the batch's entries under every key they may have; mark those it
        has as synced (with a note naming the flow that wrote them) and return the others."""
        others = self._other_keys([ready.record.source_id for ready in batch])
        asked: list[str] = []
        for ready in batch:
            asked += [ready.posting.external_id, *others[ready.record.source_id]]
        found = self._call(self.target.find_entries, self.folder, list(dict.fromkeys(asked)))
        if not found:
            return batch
        remaining: list[_Ready] = []
        with transaction.atomic():
            for ready in batch:
                current = ready.posting.external_id
                candidates = others[ready.record.source_id]
                key = next((k for k in [current, *candidates] if k in found), None)
                ref = found.get(key) if key else None
                if ref is None or (
                    key == current and not ref.posted and not self.flow.draft_entries
                ):
                    # Absent, or our own key's draft whose posting died: create_entries finishes
                    # it (it never writes an external id twice).
                    remaining.append(ready)
                    continue
                writer = candidates.get(key)
                ready.record.entry_key = key[:200]
                self._finish_record(
                    ready, EntryResult(current, ref=ref), note=self._found_note(key, writer)
                )
                logger.info(
                    "flow %s: record %s already written under %s", self.flow.pk,
                    ready.record.pk, key,
                )  # fmt: skip
        return remaining

    def _write(self, batch: list[_Ready]) -> None:
        size = self.batch_size if self.target.supports_batch_writes else 1
        for start in range(0, len(batch), size):
            self._write_part(batch[start : start + size])

    def _write_part(self, part: list[_Ready]) -> None:
        try:
            results = self.target.create_entries(
                self.folder, [EntryToWrite(r.posting, r.attachment) for r in part]
            )
        except ConnectorError as error:
            if error.code in RUN_STOPPING_CODES or error.is_transient:
                # What was written is unknown: the records stay "pushing" and the next run
                # asks the target before writing anything.
                raise _StopRun(error) from error
            self._split_failed_part(part, error)
            return
        self._record_results(part, results)

    def _split_failed_part(self, part: list[_Ready], error: ConnectorError) -> None:
        """A whole batch was refused for one entry's sake: find out what (if anything) was
        written, then write the rest in halves so that the bad entry alone fails."""
        if len(part) == 1:
            self._record_results(part, [EntryResult(part[0].posting.external_id, error=error)])
            return
        written = self._call(
            self.target.find_entries, self.folder, [r.posting.external_id for r in part]
        )
        done = [r for r in part if r.posting.external_id in written]
        self._record_results(
            done,
            [EntryResult(r.posting.external_id, ref=written[r.posting.external_id]) for r in done],
        )
        remaining = [r for r in part if r.posting.external_id not in written]
        middle = len(remaining) // 2
        for half in (remaining[:middle], remaining[middle:]):
            if half:
                self._write_part(half)

    def _record_results(self, part: list[_Ready], results: list[EntryResult]) -> None:
        by_id = {result.external_id: result for result in results}
        with transaction.atomic():
            for ready in part:
                result = by_id.get(ready.posting.external_id)
                if result is None:
                    result = EntryResult(
                        ready.posting.external_id,
                        error=InvsyncError(
                            ErrorCode.UNEXPECTED,
                            "The accounting tool returned no result for this entry.",
                        ),
                    )
                self._finish_record(ready, result)

    def _finish_record(self, ready: _Ready, result: EntryResult, note: str = "") -> None:
        record = ready.record
        if result.ref is not None:
            record.note = note
            record.status = RecordStatus.SYNCED
            record.target_ref = result.ref.id[:100]
            record.target_number = (result.ref.number or "")[:100]
            record.synced_at = timezone.now()
            record.drift = ""
            self._clear_error(record)
            self._count("synced")
        else:
            self._fail(record, result.error)
        _save_record(record)

    # -- crash recovery ------------------------------------------------------------------------

    def _resolve_stuck_pushes(self) -> None:
        """Records a dead run left ``pushing``: ask the target before anything is written again."""
        stuck = list(SyncedRecord.objects.filter(flow=self.flow, status=RecordStatus.PUSHING))
        for part in _chunks(stuck, self.batch_size):
            others = self._other_keys([r.source_id for r in part])
            keys: dict[int, list[str]] = {}
            for record in part:
                current = self._key(record.source_id)
                # The key it was being written under (an old per-flow one after an upgrade),
                # the current one, and those other flows may have written it under.
                keys[record.pk] = list(
                    dict.fromkeys([record.entry_key or current, current, *others[record.source_id]])
                )
            asked = list(dict.fromkeys(key for ks in keys.values() for key in ks))
            found = self._call(self.target.find_entries, self.folder, asked)
            for record in part:
                current = self._key(record.source_id)
                key = next((k for k in keys[record.pk] if k in found), None)
                ref = found.get(key) if key else None
                if ref is None or (
                    key == current and not ref.posted and not self.flow.draft_entries
                ):
                    # Absent: push it again. A draft where the flow posts: the write died between
                    # creating and posting; pushing it again finishes it (create_entries never
                    # writes an external id twice).
                    record.status = RecordStatus.PENDING
                    record.entry_key = ""
                    record.save(update_fields=["status", "entry_key", "updated_at"])
                    continue
                writer = others[record.source_id].get(key)
                wrote_it = key == (record.entry_key or current) and writer is None
                record.entry_key = key[:200]
                record.note = "" if wrote_it else self._found_note(key, writer)
                if wrote_it and not ref.has_attachment and record.snapshot.get("has_attachment"):
                    self._reattach(record, ref)
                record.status = RecordStatus.SYNCED
                record.target_ref = ref.id[:100]
                record.target_number = (ref.number or "")[:100]
                record.synced_at = timezone.now()
                self._clear_error(record)
                _save_record(record)
                logger.info(
                    "flow %s: record %s was written before a crash", self.flow.pk, record.pk
                )

    def _reattach(self, record: SyncedRecord, ref) -> None:
        """The entry was written but the run died before its PDF was attached."""
        if not self.target.supports_attachments:
            return
        try:
            attachment = self.source.fetch_attachment(invoice_from_json(record.snapshot))
            self.target.attach(self.folder, ref, attachment)
        except ConnectorError as error:
            if error.code in RUN_STOPPING_CODES:
                raise
            logger.warning(
                "flow %s: record %s: PDF not attached: %s", self.flow.pk, record.pk, error
            )

    def _call(self, method, *args):
        try:
            return method(*args)
        except ConnectorError as error:
            raise _StopRun(error) from error


def _as_created(partner: Partner, index: int) -> TargetPartner:
    """How ``partner`` will look in the accounting tool once created (its name and identifiers;
    no account yet), so that a later partner of the same chunk can be matched to it."""
    return TargetPartner(
        f"to-create:{index}",
        partner.name,
        vat_numbers=(partner.vat_number,) if partner.vat_number else (),
        company_numbers=(partner.company_number,) if partner.company_number else (),
    )


# What a run writes on a record: everything but what people set on it (overrides), so a run that
# loaded a record before someone saved overrides never writes the old ones back.
_RUN_FIELDS = [
    f.name
    for f in SyncedRecord._meta.concrete_fields
    if f.name not in {"id", "overrides", "created_at", "flow", "object_type", "source_id"}
]


def _save_record(record: SyncedRecord) -> None:
    if record.pk is None:
        record.save()
    else:
        record.save(update_fields=_RUN_FIELDS)


def record_external_id(flow: SyncFlow, source_id: str) -> str:
    """The key the flow's invoice ``source_id`` is written under: the same for every flow that
    reads the same invoicing account. Raises InvsyncError(CONFIGURATION_INCOMPLETE) when the
    flow's invoicing connection names no account."""
    account = connection_account_identity(flow.invoicing_connection)
    return external_id(account, ObjectType.INVOICE, source_id)
