"""Reconciliation: for a flow and a period, compare what the invoicing tool holds with what invsync
wrote, so a person can see that nothing is missing.

Every invoice of the source issued in the period (in the flow's scope, final or cancelled) is put in
exactly one bucket by its record: synced (and its entry found in the accounting tool), waiting for
its PDF, failed, skipped (with a reason: draft, cancelled, before the start date...), in progress,
or unexplained. Unexplained means a source invoice without a record (never read), or a record said
synced whose entry the accounting tool does not return. Counts and amounts are given per direction
and VAT rate; amounts are the invoice's as read now, in its own currency converted to the company's
with its exchange rate.

Besides the grid, the report keeps one line per invoice (its bucket, its amounts in the company
currency, what its record says) and totals per bucket, per invoice type and overall: the page shows
them and the exports (:mod:`syncs.reconciliation_export`) write them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from connectors.base import SourceRecordError
from connectors.canonical import Invoice, quantize_money
from connectors.selectors import connector_for
from mappings.flow_settings import scope_directions
from mappings.models import SyncFlow
from syncs.models import INVOICE_TYPE_CHOICES, RecordStatus, SyncedRecord
from syncs.services import record_external_id

BUCKETS = ("synced", "waiting", "failed", "skipped", "in_progress", "unexplained")
# What people read of each bucket (the records' own statuses where they match one).
BUCKET_LABELS = {
    "synced": gettext_lazy("Synced"),
    "waiting": gettext_lazy("Waiting for PDF"),
    "failed": gettext_lazy("Failed"),
    "skipped": gettext_lazy("Skipped"),
    "in_progress": gettext_lazy("In progress"),
    "unexplained": gettext_lazy("Unexplained"),
}
INVOICE_TYPE_LABELS = dict(INVOICE_TYPE_CHOICES)
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

    @property
    def total(self) -> Decimal:
        return self.untaxed + self.tax

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


@dataclass(frozen=True)
class Line:
    """One source invoice of the period: where it is, and its amounts in the company currency
    (signed: credit notes negative)."""

    source_id: str
    number: str
    issue_date: dt.date
    invoice_type: str
    partner: str
    currency: str  # the invoice's own currency
    untaxed: Decimal
    tax: Decimal
    bucket: str
    detail: str = ""  # the entry's number, the error code, why it was skipped or is unexplained
    record_id: int | None = None

    @property
    def total(self) -> Decimal:
        return self.untaxed + self.tax

    @property
    def status_label(self) -> str:
        return str(BUCKET_LABELS[self.bucket])

    @property
    def type_label(self) -> str:
        return str(INVOICE_TYPE_LABELS.get(self.invoice_type, self.invoice_type))


@dataclass
class Report:
    flow: SyncFlow
    start: dt.date
    end: dt.date
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)  # what each unexplained invoice is
    unreadable: list[str] = field(default_factory=list)  # source records that could not be read
    lines: list[Line] = field(default_factory=list)  # one per invoice, in the source's order

    @property
    def balanced(self) -> bool:
        return not self.unexplained and all(
            row.difference.count == 0 and not row.difference.untaxed and not row.difference.tax
            for row in self.rows.values()
        )

    def row(self, direction: str, rate: str) -> Row:
        return self.rows.setdefault((direction, rate), Row(direction, rate))

    @property
    def by_bucket(self) -> dict[str, Amounts]:
        """Count and amounts of the period's invoices per bucket (every bucket, zero included)."""
        totals = {bucket: Amounts() for bucket in BUCKETS}
        for line in self.lines:
            totals[line.bucket].add(line.untaxed, line.tax)
        return totals

    @property
    def by_type(self) -> dict[str, dict[str, Amounts]]:
        """Per invoice type found (in the types' order): the source's total under ``"source"``
        and each bucket's."""
        found = {line.invoice_type for line in self.lines}
        order = [value for value, _label in INVOICE_TYPE_CHOICES if value in found]
        order += sorted(found - set(order))
        totals = {kind: {"source": Amounts(), **{b: Amounts() for b in BUCKETS}} for kind in order}
        for line in self.lines:
            totals[line.invoice_type]["source"].add(line.untaxed, line.tax)
            totals[line.invoice_type][line.bucket].add(line.untaxed, line.tax)
        return totals

    @property
    def grand_total(self) -> Amounts:
        total = Amounts()
        for line in self.lines:
            total.add(line.untaxed, line.tax)
        return total

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
                for _key, row in sorted(self.rows.items())
            ],
            "unexplained": self.unexplained,
            "unreadable": self.unreadable,
            "by_bucket": [
                {"bucket": b, "label": str(BUCKET_LABELS[b]), **amounts.as_dict()}
                for b, amounts in self.by_bucket.items()
            ],
            "by_type": [
                {
                    "type": kind,
                    "label": str(INVOICE_TYPE_LABELS.get(kind, kind)),
                    **{name: amounts.as_dict() for name, amounts in totals.items()},
                }
                for kind, totals in self.by_type.items()
            ],
            "grand_total": self.grand_total.as_dict(),
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
        detail = _detail(record)
        if record is None:
            detail = _("never read by a run")
        elif bucket == "synced" and keys[record.source_id] not in found:
            bucket = "unexplained"
            detail = _("marked synced but its entry is not in the accounting tool")
        if bucket == "unexplained":
            report.unexplained.append(f"{invoice.number}: {detail}")
        untaxed_sum, tax_sum = Decimal(0), Decimal(0)
        for rate, untaxed, tax in _by_rate(invoice, flow.company_currency):
            row = report.row(invoice.direction.value, rate)
            row.source.add(untaxed, tax)
            row.buckets[bucket].add(untaxed, tax)
            untaxed_sum += untaxed
            tax_sum += tax
        report.lines.append(
            Line(
                source_id=invoice.source_id,
                number=invoice.number,
                issue_date=invoice.issue_date,
                invoice_type=invoice.type.value,
                partner=invoice.partner.name if invoice.partner else "",
                currency=invoice.currency.upper(),
                untaxed=untaxed_sum,
                tax=tax_sum,
                bucket=bucket,
                detail=detail,
                record_id=record.pk if record else None,
            )
        )
    return report


def _detail(record: SyncedRecord | None) -> str:
    """What the record says of the invoice, in a few words: the entry's number once synced, the
    error code of a failure, the reason it was skipped."""
    if record is None:
        return ""
    if record.status == RecordStatus.SYNCED:
        return record.target_number
    if record.status == RecordStatus.FAILED:
        return record.error_code
    if record.status == RecordStatus.SKIPPED:
        return record.skip_text
    return ""


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

    for _key, row in sorted(report.rows.items()):
        cells = [row.direction, f"{row.rate} %", cell(row.source)]
        cells += [cell(row.buckets[b]) for b in BUCKETS] + [cell(row.difference)]
        lines.append("  ".join(f"{c:>16}" for c in cells))
    lines.append("")
    lines.append("(count / total incl. tax, company currency; credit notes negative)")
    lines += [f"unexplained: {u}" for u in report.unexplained]
    lines += [f"unreadable in the source: {u}" for u in report.unreadable]
    return "\n".join(lines)
