"""Reconciliation: for a flow and a period, compare what the invoicing tool holds with what invsync
wrote, so a person can see that nothing is missing.

Every invoice of the source issued in the period (in the flow's scope, final or cancelled) is put in
exactly one bucket by its record: synced (and its entry found in the accounting tool), waiting for
its PDF, failed, skipped (with a reason: draft, cancelled, before the start date...), in progress,
or unexplained. Unexplained means a source invoice without a record (never read), or a record said
synced whose entry the accounting tool does not return. Counts and amounts are given per direction
and VAT rate; amounts are the invoice's as read now, in its own currency converted to the company's
with its exchange rate.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from connectors.base import SourceRecordError
from connectors.canonical import Invoice, quantize_money
from connectors.selectors import connector_for
from mappings.flow_settings import scope_directions
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import record_external_id

BUCKETS = ("synced", "waiting", "failed", "skipped", "in_progress", "unexplained")
_STATUS_BUCKET = {
    RecordStatus.SYNCED: "synced",
    RecordStatus.WAITING: "waiting",
    RecordStatus.FAILED: "failed",
    RecordStatus.SKIPPED: "skipped",
    RecordStatus.PENDING: "in_progress",
    RecordStatus.PUSHING: "in_progress",
}


@dataclass
class Amounts:
    count: int = 0
    untaxed: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)

    def add(self, untaxed: Decimal, tax: Decimal, count: int = 1) -> None:
        self.count += count
        self.untaxed += untaxed
        self.tax += tax

    def as_dict(self) -> dict:
        return {"count": self.count, "untaxed": str(self.untaxed), "tax": str(self.tax)}


@dataclass
class Row:
    direction: str
    rate: str
    source: Amounts = field(default_factory=Amounts)
    buckets: dict[str, Amounts] = field(default_factory=lambda: {b: Amounts() for b in BUCKETS})

    @property
    def difference(self) -> Amounts:
        """Source minus every explained bucket: zero when every invoice is accounted for."""
        explained = [self.buckets[b] for b in BUCKETS if b != "unexplained"]
        return Amounts(
            self.source.count - sum(a.count for a in explained),
            self.source.untaxed - sum((a.untaxed for a in explained), Decimal(0)),
            self.source.tax - sum((a.tax for a in explained), Decimal(0)),
        )


@dataclass
class Report:
    flow: SyncFlow
    start: dt.date
    end: dt.date
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)  # what each unexplained invoice is
    unreadable: list[str] = field(default_factory=list)  # source records that could not be read

    @property
    def balanced(self) -> bool:
        return not self.unexplained and all(
            row.difference.count == 0 and not row.difference.untaxed and not row.difference.tax
            for row in self.rows.values()
        )

    def row(self, direction: str, rate: str) -> Row:
        return self.rows.setdefault((direction, rate), Row(direction, rate))

    def as_dict(self) -> dict:
        return {
            "flow": str(self.flow),
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "balanced": self.balanced,
            "rows": [
                {
                    "direction": row.direction,
                    "rate": row.rate,
                    "source": row.source.as_dict(),
                    **{b: row.buckets[b].as_dict() for b in BUCKETS},
                    "difference": row.difference.as_dict(),
                }
                for _, row in sorted(self.rows.items())
            ],
            "unexplained": self.unexplained,
            "unreadable": self.unreadable,
        }


def _by_rate(invoice: Invoice, company_currency: str) -> Iterator[tuple[str, Decimal, Decimal]]:
    """Untaxed and tax per VAT rate, signed (credit notes negative), in the company currency."""
    sign = -1 if invoice.type.is_refund else 1
    rate = invoice.exchange_rate if invoice.currency.upper() != company_currency.upper() else None
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in invoice.lines:
        key = "—" if line.tax_rate is None else format(line.tax_rate.normalize(), "f")
        sums[key][0] += line.untaxed_amount
        sums[key][1] += line.tax_amount
    for key, (untaxed, tax) in sums.items():
        if rate is not None:
            untaxed, tax = untaxed * rate, tax * rate
        yield (
            key,
            sign * quantize_money(untaxed, company_currency),
            sign * quantize_money(tax, company_currency),
        )


def flow_reconcile(*, flow: SyncFlow, start: dt.date, end: dt.date) -> Report:
    """Read the source's invoices of the period and the flow's records, and bucket every one.
    Calls the invoicing tool (a full listing) and the accounting tool (entries of synced records,
    in batches); writes nothing."""
    report = Report(flow, start, end)
    directions = list(scope_directions(flow.scope))
    source = connector_for(flow.invoicing_connection)
    target = connector_for(flow.accounting_connection)
    try:
        invoices = []
        for item in source.iter_invoices(since=None, directions=directions):
            if isinstance(item, SourceRecordError):
                report.unreadable.append(f"{item.number or item.source_id}: {item.error.message}")
                continue
            if start <= item.issue_date <= end:
                invoices.append(item)
        records = {
            r.source_id: r
            for r in SyncedRecord.objects.filter(
                flow=flow, source_id__in=[i.source_id for i in invoices]
            )
        }
        # The key each entry was written under (an old per-flow one, or another flow's entry
        # found when this flow went to write it), else the flow's current key.
        keys = {
            r.source_id: r.entry_key or record_external_id(flow, r.source_id)
            for r in records.values()
            if r.status == RecordStatus.SYNCED
        }
        synced_ids = list(keys.values())
        found: set[str] = set()
        for begin in range(0, len(synced_ids), 200):
            found |= set(target.find_entries(flow.folder, synced_ids[begin : begin + 200]))
    finally:
        source.close()
        target.close()

    for invoice in invoices:
        record = records.get(invoice.source_id)
        bucket = _STATUS_BUCKET.get(record.status, "unexplained") if record else "unexplained"
        if record is None:
            report.unexplained.append(f"{invoice.number}: never read by a run")
        elif bucket == "synced" and keys[record.source_id] not in found:
            bucket = "unexplained"
            report.unexplained.append(
                f"{invoice.number}: marked synced but its entry is not in the accounting tool"
            )
        for rate, untaxed, tax in _by_rate(invoice, flow.company_currency):
            row = report.row(invoice.direction.value, rate)
            row.source.add(untaxed, tax)
            row.buckets[bucket].add(untaxed, tax)
    return report


def report_to_table(report: Report) -> str:
    header = ("direction", "rate", "source", *BUCKETS, "difference")
    lines = [
        f"Reconciliation of {report.flow} from {report.start} to {report.end}: "
        + ("nothing unexplained." if report.balanced else "UNEXPLAINED DIFFERENCES."),
        "",
        "  ".join(f"{h:>16}" for h in header),
    ]

    def cell(amounts: Amounts) -> str:
        return f"{amounts.count} / {amounts.untaxed + amounts.tax}"

    for _, row in sorted(report.rows.items()):
        cells = [row.direction, f"{row.rate} %", cell(row.source)]
        cells += [cell(row.buckets[b]) for b in BUCKETS] + [cell(row.difference)]
        lines.append("  ".join(f"{c:>16}" for c in cells))
    lines.append("")
    lines.append("(count / total incl. tax, company currency; credit notes negative)")
    lines += [f"unexplained: {u}" for u in report.unexplained]
    lines += [f"unreadable in the source: {u}" for u in report.unreadable]
    return "\n".join(lines)
