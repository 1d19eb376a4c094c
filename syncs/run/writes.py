"""Writing a chunk's entries, crash-safe: PDFs fetched first, records marked ``pushing`` in their
own committed transaction, entries other flows or older keys wrote looked for, the rest written
in batches (a refused batch split until the bad entry fails alone), each outcome recorded."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from connectors.base import EntryResult, EntryToWrite
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from syncs.models import RecordStatus, SyncedRecord
from syncs.run import recovery
from syncs.run.state import (
    RUN_STOPPING_CODES,
    Chunk,
    Ready,
    RunState,
    StopRun,
    clear_error,
    save_record,
)

logger = logging.getLogger(__name__)


def fetch_attachments(state: RunState, chunk: Chunk) -> None:
    """The PDF of each ready invoice that has one, where the target takes attachments; an
    invoice whose PDF cannot be read fails (or goes without it, if the flow says so)."""
    if not state.target.supports_attachments:
        return
    still_ready = []
    for ready in chunk.ready:
        if ready.invoice.has_attachment:
            try:
                ready.attachment = state.source.fetch_attachment(ready.invoice)
            except ConnectorError as error:
                if error.code in RUN_STOPPING_CODES:
                    raise StopRun(error) from error
                if not (error.code == ErrorCode.PDF and state.config.sync_without_attachment):
                    state.fail(ready.record, error)
                    continue
        still_ready.append(ready)
    chunk.ready = still_ready


def save(records: list[SyncedRecord]) -> None:
    if not records:
        return
    with transaction.atomic():
        for record in records:
            save_record(record)


def push(state: RunState, batch: list[Ready]) -> None:
    """Mark the batch pushing (committed), ask the target for entries other flows or older
    keys may have written, write the rest, then record each outcome."""
    with transaction.atomic():
        for ready in batch:
            ready.record.status = RecordStatus.PUSHING
            state.attempt(ready.record)
            ready.record.entry_key = ready.posting.external_id[:200]
            ready.record.save(update_fields=["status", "attempts", "entry_key", "updated_at"])
    if state.relatives or state.legacy_flows:
        batch = _not_yet_written(state, batch)
    _write(state, batch)


def _not_yet_written(state: RunState, batch: list[Ready]) -> list[Ready]:
    """Ask the target for the batch's entries under every key they may have; mark those it
    has as synced (with a note naming the flow that wrote them) and return the others."""
    others = recovery.other_keys(state, [ready.record.source_id for ready in batch])
    asked: list[str] = []
    for ready in batch:
        asked += [ready.posting.external_id, *others[ready.record.source_id]]
    found = state.call(state.target.find_entries, state.folder, list(dict.fromkeys(asked)))
    if not found:
        return batch
    remaining: list[Ready] = []
    with transaction.atomic():
        for ready in batch:
            current = ready.posting.external_id
            candidates = others[ready.record.source_id]
            key = next((k for k in [current, *candidates] if k in found), None)
            ref = found.get(key) if key else None
            if ref is None or (key == current and not ref.posted and not state.flow.draft_entries):
                # Absent, or our own key's draft whose posting died: create_entries finishes
                # it (it never writes an external id twice).
                remaining.append(ready)
                continue
            writer = candidates.get(key)
            ready.record.entry_key = key[:200]
            _finish_record(
                state,
                ready,
                EntryResult(current, ref=ref),
                note=recovery.found_note(state, key, writer),
            )
            logger.info(
                "flow %s: record %s already written under %s", state.flow.pk,
                ready.record.pk, key,
            )  # fmt: skip
    return remaining


def _write(state: RunState, batch: list[Ready]) -> None:
    size = state.batch_size if state.target.supports_batch_writes else 1
    for start in range(0, len(batch), size):
        _write_part(state, batch[start : start + size])


def _write_part(state: RunState, part: list[Ready]) -> None:
    try:
        results = state.target.create_entries(
            state.folder, [EntryToWrite(r.posting, r.attachment) for r in part]
        )
    except ConnectorError as error:
        if error.code in RUN_STOPPING_CODES or error.is_transient:
            # What was written is unknown: the records stay "pushing" and the next run
            # asks the target before writing anything.
            raise StopRun(error) from error
        _split_failed_part(state, part, error)
        return
    record_results(state, part, results)


def _split_failed_part(state: RunState, part: list[Ready], error: ConnectorError) -> None:
    """A whole batch was refused for one entry's sake: find out what (if anything) was
    written, then write the rest in halves so that the bad entry alone fails."""
    if len(part) == 1:
        record_results(state, part, [EntryResult(part[0].posting.external_id, error=error)])
        return
    written = state.call(
        state.target.find_entries, state.folder, [r.posting.external_id for r in part]
    )
    done = [r for r in part if r.posting.external_id in written]
    record_results(
        state,
        done,
        [EntryResult(r.posting.external_id, ref=written[r.posting.external_id]) for r in done],
    )
    remaining = [r for r in part if r.posting.external_id not in written]
    middle = len(remaining) // 2
    for half in (remaining[:middle], remaining[middle:]):
        if half:
            _write_part(state, half)


def record_results(state: RunState, part: list[Ready], results: list[EntryResult]) -> None:
    """Each record of ``part`` synced or failed as the target answered, in one transaction."""
    by_id = {result.external_id: result for result in results}
    with transaction.atomic():
        for ready in part:
            result = by_id.get(ready.posting.external_id)
            if result is None:
                result = EntryResult(
                    ready.posting.external_id,
                    error=InvsyncError.of(ErrorCode.UNEXPECTED, "run.no_result"),
                )
            _finish_record(state, ready, result)


def _finish_record(state: RunState, ready: Ready, result: EntryResult, note: str = "") -> None:
    record = ready.record
    if result.ref is not None:
        record.note = note
        record.status = RecordStatus.SYNCED
        record.target_ref = result.ref.id[:100]
        record.target_number = (result.ref.number or "")[:100]
        record.synced_at = timezone.now()
        record.drift = ""
        clear_error(record)
        state.count("synced")
    else:
        state.fail(record, result.error)
    save_record(record)
