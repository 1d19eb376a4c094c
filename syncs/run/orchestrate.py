"""The run loop: resolve what a dead run left, read what changed in the source (then the records
held back), chunk by chunk: evaluate each invoice with the engine, resolve partners, fetch PDFs,
save, write, count and report progress. The source cursor moves only past committed records."""

from __future__ import annotations

from dataclasses import replace

from django.db.models import Q

from connectors.base import SourceRecordError
from connectors.canonical import Direction, Invoice, InvoiceStatus
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.selectors import connection_account_identity
from mappings.flow_settings import scope_directions
from mappings.models import SyncFlow
from mappings.overlaps import flows_sharing_ledger
from syncs import selectors
from syncs.engine import Posted, Rejected, Skipped, Waiting, build_posting
from syncs.models import RecordStatus, SyncedRecord
from syncs.run import partners, recovery, writes
from syncs.run.state import (
    RUN_STOPPING_CODES,
    Chunk,
    Ready,
    RunState,
    StopRun,
    chunks,
    clear_error,
    clip,
)
from syncs.serialization import invoice_to_json


def execute(state: RunState) -> None:
    """Run the flow to the end; raises InvsyncError when the run must stop."""
    if not state.folder:
        raise InvsyncError.of(ErrorCode.CONFIGURATION_INCOMPLETE, "run.no_folder", field="folder")
    state.source_account = connection_account_identity(state.flow.invoicing_connection)
    state.relatives = {other.pk: other for other in flows_sharing_ledger(state.flow)}
    state.legacy_flows = recovery.flows_with_legacy_keys(state)
    try:
        recovery.resolve_stuck_pushes(state)
        _process_source(state)
        _process_held(state)
    except StopRun as stop:
        raise stop.error from None


def _directions(state: RunState) -> list[Direction]:
    return list(scope_directions(state.flow.scope))


def _process_source(state: RunState) -> None:
    cursor = state.flow.source_cursor
    newest = cursor
    items = state.source.iter_invoices(since=cursor, directions=_directions(state))
    for chunk in chunks(items, state.batch_size):
        _process_chunk(state, chunk)
        for item in chunk:
            if item.updated_at and (newest is None or item.updated_at > newest):
                newest = item.updated_at
        # Every record of the chunk is committed: the cursor may move past them.
        if newest != cursor:
            SyncFlow.objects.filter(pk=state.flow.pk).update(source_cursor=newest)
            cursor = newest


def _held_records(state: RunState):
    """Records to look at again although the source did not list them as changed: pending ones
    (retries, pushes undone after a crash), those waiting for a PDF, transient failures whose
    backoff is over, and failures from before the configuration last changed."""
    return (
        SyncedRecord.objects.filter(flow=state.flow)
        .filter(
            Q(status__in=[RecordStatus.PENDING, RecordStatus.WAITING])
            | Q(
                status=RecordStatus.FAILED,
                next_attempt_at__isnull=False,
                next_attempt_at__lte=state.now,
            )
            | Q(
                status__in=[RecordStatus.FAILED, RecordStatus.SKIPPED],
                config_version__lt=state.flow.config_version,
            )
        )
        # Records this run already looked at carry it as their last run.
        .exclude(last_run=state.run)
        .values_list("source_id", flat=True)
        .order_by("id")
    )


def _process_held(state: RunState) -> None:
    held = list(_held_records(state))
    for ids in chunks(held, state.batch_size):
        items = []
        for source_id in ids:
            try:
                items.append(state.source.get_invoice(source_id))
            except ConnectorError as error:
                if error.code in RUN_STOPPING_CODES:
                    raise StopRun(error) from error
                items.append(SourceRecordError(source_id, error))
        _process_chunk(state, items, force=True)


# -- one chunk -----------------------------------------------------------------------------------


def _process_chunk(state: RunState, items: list, *, force: bool = False) -> None:
    state.renew_lease()
    ids = [item.source_id for item in items]
    records = {
        r.source_id: r for r in SyncedRecord.objects.filter(flow=state.flow, source_id__in=ids)
    }
    # Read, not yet processed: said at once ("Reading invoices from …, N read"), so that a page
    # following the run sees the chunk while it is evaluated, partnered and written.
    state.run.total += len(items)
    state.run.save(update_fields=["total"])
    chunk = Chunk()
    for item in items:
        record = records.get(item.source_id)
        if record is None:
            record = SyncedRecord(flow=state.flow, source_id=item.source_id)
            records[item.source_id] = record
        _evaluate(state, record, item, chunk, force=force)
    if chunk.ready:
        partners.resolve_partners(state, chunk)
        writes.fetch_attachments(state, chunk)
    writes.save(chunk.dirty)
    if chunk.ready:
        writes.push(state, chunk.ready)
    state.run.processed += len(items)
    state.run.save()
    if state.progress:
        state.progress(state.run)


def _evaluate(state: RunState, record: SyncedRecord, item, chunk: Chunk, *, force: bool) -> None:
    if isinstance(item, SourceRecordError):
        if record.status == RecordStatus.SYNCED:
            state.count("unchanged")
            return
        record.number = item.number or record.number
        state.fail(record, item.error)
        chunk.dirty.append(record)
        return

    fingerprint = selectors.invoice_fingerprint(item)
    if record.status == RecordStatus.SYNCED:
        if fingerprint != record.fingerprint and not record.drift:
            record.drift = clip(_drift(record, item))
            chunk.dirty.append(record)
        state.count("unchanged")
        return
    if record.status == RecordStatus.PUSHING:
        # Only a dead run leaves this state, and it was resolved before this point.
        return
    unchanged = (
        record.pk is not None
        and fingerprint == record.fingerprint
        and record.config_version == state.flow.config_version
        and record.status in (RecordStatus.FAILED, RecordStatus.SKIPPED)
        and not (record.next_attempt_at and record.next_attempt_at <= state.now)
    )
    if unchanged and not force:
        state.count("unchanged")
        return

    item = _with_ledger_rate(state, item)
    _describe(state, record, item, fingerprint)
    result = build_posting(
        item,
        state.config,
        external_id=state.key(item.source_id),
        overrides=selectors.record_overrides(record),
    )
    chunk.dirty.append(record)
    if isinstance(result, Skipped):
        record.status, record.skip_reason = RecordStatus.SKIPPED, clip(result.reason)
        record.skip_key, record.skip_params = result.key, dict(result.params)
        clear_error(record)
        state.count("skipped")
    elif isinstance(result, Waiting):
        record.status = RecordStatus.WAITING
        clear_error(record)
        state.count("waiting")
    elif isinstance(result, Rejected):
        state.fail(record, result.error())
    elif isinstance(result, Posted):
        chunk.ready.append(Ready(record, item, result.posting))


def _with_ledger_rate(state: RunState, invoice: Invoice) -> Invoice:
    """The invoice with the accounting tool's rate for its date, when it is in another currency
    than the ledger's, its invoicing tool gives no rate and the target has rates of its own (the
    record's snapshot then shows the rate it was booked at). Otherwise the invoice as it is: the
    engine says what is missing. A failure to ask stops the run as any connector call does."""
    if invoice.exchange_rate is not None or not state.target.supports_exchange_rates:
        return invoice
    company, currency = state.config.company_currency.upper(), invoice.currency.upper()
    if currency == company or not all(
        len(code) == 3 and code.isascii() and code.isalpha() for code in (company, currency)
    ):
        return invoice
    rate = state.call(
        state.target.exchange_rate, state.folder, currency, company, invoice.issue_date
    )
    if rate is None or not rate.is_finite() or rate <= 0:
        return invoice
    return replace(invoice, exchange_rate=rate)


def _describe(state: RunState, record: SyncedRecord, invoice: Invoice, fingerprint: str) -> None:
    record.number = invoice.number[:100]
    record.invoice_type = invoice.type.value
    record.issue_date = invoice.issue_date
    record.partner_name = (invoice.partner.name if invoice.partner else "")[:300]
    record.currency = invoice.currency[:3]
    record.total = invoice.total if invoice.total.is_finite() else None
    record.fingerprint = fingerprint
    record.config_version = state.flow.config_version
    record.snapshot = invoice_to_json(invoice)
    record.last_run = state.run
    record.skip_reason, record.skip_key, record.skip_params = "", "", {}


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
