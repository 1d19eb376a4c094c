"""Reads for the sync service, the admin and the commands."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from django.db.models import Count, QuerySet

from connectors.canonical import Account, Direction, Invoice, Journal, VatCode
from connectors.models import LookupCache
from mappings.models import SyncFlow
from syncs.config import FlowConfig, TargetLookups, VatRule
from syncs.engine import LineOverride
from syncs.models import RecordStatus, SyncedRecord
from syncs.serialization import invoice_to_json


def _blank_to_none(value: str) -> str | None:
    return value or None


def flow_engine_config(flow: SyncFlow, lookups: TargetLookups) -> FlowConfig:
    """The engine's view of a flow: its settings and mappings as plain values."""
    rules: dict[str, list[VatRule]] = {"sales": [], "purchases": []}
    for mapping in flow.vat_mappings.all():
        rules[mapping.direction].append(
            VatRule(mapping.source_rate, _blank_to_none(mapping.source_tax_id), mapping.target_code)
        )
    by_source = None
    if flow.journals_by_source:
        by_source = {m.source_journal: m.target_journal for m in flow.journal_mappings.all()}
    return FlowConfig(
        scope=flow.scope,
        start_date=flow.start_date,
        draft=flow.draft_entries,
        sync_without_attachment=flow.sync_without_attachment,
        separate_discounts=flow.separate_discounts,
        label_mode=flow.label_mode,
        rounding_tolerance=Decimal(flow.rounding_tolerance),
        company_currency=flow.company_currency or "EUR",
        sales_journal=_blank_to_none(flow.sales_journal),
        purchases_journal=_blank_to_none(flow.purchases_journal),
        journals_by_source=by_source,
        sales_default=_blank_to_none(flow.default_sales_account),
        purchases_default=_blank_to_none(flow.default_purchases_account),
        customer_collective=_blank_to_none(flow.customer_collective_account),
        supplier_collective=_blank_to_none(flow.supplier_collective_account),
        rounding_credit=_blank_to_none(flow.rounding_credit_account),
        rounding_debit=_blank_to_none(flow.rounding_debit_account),
        sales_discount=_blank_to_none(flow.sales_discount_account),
        purchases_discount=_blank_to_none(flow.purchases_discount_account),
        sales_vat=tuple(rules["sales"]),
        purchases_vat=tuple(rules["purchases"]),
        sales_rounding_vat=_blank_to_none(flow.sales_rounding_vat_code),
        purchases_rounding_vat=_blank_to_none(flow.purchases_rounding_vat_code),
        target=lookups,
    )


def cached_target_lookups(flow: SyncFlow) -> TargetLookups | None:
    """The target lookups the last run (or form) read, without calling the target; None if never."""
    rows = {
        row.name: row.payload
        for row in LookupCache.objects.filter(
            connection=flow.accounting_connection_id,
            folder=flow.folder,
            name__in=["accounts", "vat_codes", "journals"],
        )
    }
    if len(rows) < 3:
        return None
    return lookups_from_payload(rows)


def lookups_to_payload(
    accounts: list[Account], vat_codes: list[VatCode], journals: list[Journal]
) -> dict[str, list]:
    return {
        "accounts": [{"number": a.number, "name": a.name, "active": a.active} for a in accounts],
        "vat_codes": [
            {
                "code": v.code,
                "rate": None if v.rate is None else str(v.rate),
                "name": v.name,
                "account": v.account,
                "direction": v.direction.value if v.direction else None,
            }
            for v in vat_codes
        ],
        "journals": [{"code": j.code, "name": j.name, "kind": j.kind} for j in journals],
    }


def lookups_from_payload(payload: dict[str, list]) -> TargetLookups:
    return TargetLookups(
        accounts=tuple(
            Account(a["number"], a.get("name", ""), a.get("active", True))
            for a in payload["accounts"]
        ),
        vat_codes=tuple(
            VatCode(
                v["code"],
                None if v.get("rate") is None else Decimal(v["rate"]),
                v.get("name", ""),
                v.get("account"),
                Direction(v["direction"]) if v.get("direction") else None,
            )
            for v in payload["vat_codes"]
        ),
        journals=tuple(j["code"] for j in payload["journals"]),
    )


def invoice_fingerprint(invoice: Invoice) -> str:
    """What decides whether an invoice changed: its content, not the time it was last touched."""
    data = invoice_to_json(invoice)
    data.pop("updated_at", None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def record_overrides(record: SyncedRecord) -> dict[int, LineOverride]:
    return {
        int(index): LineOverride(account=value.get("account"), vat_code=value.get("vat_code"))
        for index, value in (record.overrides or {}).get("lines", {}).items()
    }


def flow_record_counts(flow: SyncFlow) -> dict[str, int]:
    counts = dict(
        flow.records.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in RecordStatus.values}


def flow_failures_by_code(flow: SyncFlow) -> QuerySet:
    return (
        flow.records.filter(status=RecordStatus.FAILED)
        .values("error_code")
        .annotate(count=Count("id"))
        .order_by("-count")
    )


def record_preview(record: SyncedRecord):
    """What the engine makes of a record's snapshot under the flow's current configuration and the
    target lookups last read: (INVOICE.json, CONFIG.json, result). Offline: no call to any tool."""
    from syncs.engine import build_posting
    from syncs.serialization import config_to_json, invoice_from_json

    lookups = cached_target_lookups(record.flow) or TargetLookups()
    config = flow_engine_config(record.flow, lookups)
    invoice = invoice_from_json(record.snapshot)
    result = build_posting(
        invoice, config, external_id=record.external_id, overrides=record_overrides(record)
    )
    return record.snapshot, config_to_json(config), result
