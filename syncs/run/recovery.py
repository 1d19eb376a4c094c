"""What is already in the ledger: records a dead run left ``pushing`` (asked of the target before
anything is written again), and the other keys an invoice's entry may carry (old per-flow keys,
keys of other flows reading the same source account and writing the same folder)."""

from __future__ import annotations

import logging

from django.utils import timezone

from connectors.errors import ConnectorError
from mappings.overlaps import describe_flow
from syncs.models import ObjectType, RecordStatus, SyncedRecord, legacy_external_id
from syncs.run.state import RUN_STOPPING_CODES, RunState, chunks, clear_error, clip, save_record
from syncs.serialization import invoice_from_json

logger = logging.getLogger(__name__)


def resolve_stuck_pushes(state: RunState) -> None:
    """Records a dead run left ``pushing``: ask the target before anything is written again."""
    flow = state.flow
    stuck = list(SyncedRecord.objects.filter(flow=flow, status=RecordStatus.PUSHING))
    for part in chunks(stuck, state.batch_size):
        others = other_keys(state, [r.source_id for r in part])
        keys: dict[int, list[str]] = {}
        for record in part:
            current = state.key(record.source_id)
            # The key it was being written under (an old per-flow one after an upgrade),
            # the current one, and those other flows may have written it under.
            keys[record.pk] = list(
                dict.fromkeys([record.entry_key or current, current, *others[record.source_id]])
            )
        asked = list(dict.fromkeys(key for ks in keys.values() for key in ks))
        found = state.call(state.target.find_entries, state.folder, asked)
        for record in part:
            current = state.key(record.source_id)
            key = next((k for k in keys[record.pk] if k in found), None)
            ref = found.get(key) if key else None
            if ref is None or (key == current and not ref.posted and not flow.draft_entries):
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
            record.note = "" if wrote_it else found_note(state, key, writer)
            if wrote_it and not ref.has_attachment and record.snapshot.get("has_attachment"):
                _reattach(state, record, ref)
            record.status = RecordStatus.SYNCED
            record.target_ref = ref.id[:100]
            record.target_number = (ref.number or "")[:100]
            record.synced_at = timezone.now()
            clear_error(record)
            save_record(record)
            logger.info("flow %s: record %s was written before a crash", flow.pk, record.pk)


def _reattach(state: RunState, record: SyncedRecord, ref) -> None:
    """The entry was written but the run died before its PDF was attached."""
    if not state.target.supports_attachments:
        return
    try:
        attachment = state.source.fetch_attachment(invoice_from_json(record.snapshot))
        state.target.attach(state.folder, ref, attachment)
    except ConnectorError as error:
        if error.code in RUN_STOPPING_CODES:
            raise
        logger.warning("flow %s: record %s: PDF not attached: %s", state.flow.pk, record.pk, error)


# -- one ledger, several keys and flows ----------------------------------------------------------


def flows_with_legacy_keys(state: RunState) -> list[int]:
    """The flow and its relatives, those of them that wrote entries under per-flow keys (the
    upgrade migration keyed their records so): their invoices' old keys are looked for."""
    ids = [state.flow.pk, *state.relatives]
    return sorted(
        set(
            SyncedRecord.objects.filter(flow_id__in=ids, entry_key__startswith="invsync:")
            .exclude(entry_key__startswith="invsync:acct-")
            .values_list("flow_id", flat=True)
        )
    )


def other_keys(state: RunState, source_ids: list[str]) -> dict[str, dict[str, int | None]]:
    """For each source id, the keys other than its current one under which its entry may
    already be in the folder, each with the flow that wrote it (None: unknown)."""
    keys: dict[str, dict[str, int | None]] = {sid: {} for sid in source_ids}
    for sid in source_ids:
        for flow_id in state.legacy_flows:
            keys[sid][legacy_external_id(flow_id, ObjectType.INVOICE, sid)] = flow_id
    if state.relatives:
        rows = (
            SyncedRecord.objects.filter(flow_id__in=state.relatives, source_id__in=source_ids)
            .exclude(entry_key="")
            .values_list("source_id", "entry_key", "flow_id")
        )
        for sid, key, flow_id in rows:
            if key in keys[sid] and keys[sid][key] != flow_id:
                continue  # an old key names its writer
            keys[sid][key] = flow_id
    return keys


def found_note(state: RunState, key: str, writer: int | None) -> str:
    """The record's note when its entry was found already written under ``key``."""
    if writer == state.flow.pk:
        who = "by this flow, before entries were keyed by invoicing account"
    elif writer in state.relatives:
        who = f"by the flow {describe_flow(state.relatives[writer])}"
    else:
        who = "earlier, by a flow reading the same invoicing account"
    return clip(f"Already in the accounting tool (key {key}), written {who}: not written again.")[
        :500
    ]
