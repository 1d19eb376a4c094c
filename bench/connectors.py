"""Benchmark connectors: a source that generates invoices on demand (nothing held in memory) and a
target that writes nothing but counts every call. Registered only inside :func:`registered`."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal

from connectors import registry
from connectors.base import (
    AccountingTarget,
    AuthKind,
    EntryResult,
    EntryToWrite,
    InvoicingSource,
    SourceRecordError,
)
from connectors.canonical import (
    Account,
    Attachment,
    ConnectionCheck,
    Direction,
    EntryRef,
    Folder,
    Invoice,
    InvoiceLine,
    InvoiceType,
    Journal,
    Partner,
    SourceTaxRate,
    TargetPartner,
    VatCode,
)
from syncs.config import FlowConfig, TargetLookups, VatRule

RATES = (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("20"), Decimal("0"))
PARTNERS = 50
PAGE = 100
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

ACCOUNTS = tuple(
    Account(n)
    for n in ("706", "6071", "4111", "4011", "758", "658", "709", "609", "44571", "44566")
)
VAT_CODES = tuple(
    VatCode(f"{prefix}{str(rate).replace('.', '')}", rate, "", account, direction)
    for prefix, account, direction in (
        ("V", "44571", Direction.SALES),
        ("A", "44566", Direction.PURCHASES),
    )
    for rate in (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("0"))
)
JOURNALS = (Journal("REV", "Revenue", "revenue"), Journal("EXP", "Expense", "expense"))


def generated_invoice(
    index: int, *, lines: int = 5, attachment: bool = False, rates: Sequence[Decimal] = RATES
) -> Invoice:
    kind = InvoiceType.SUPPLIER_INVOICE if index % 4 == 3 else InvoiceType.CUSTOMER_INVOICE
    items = []
    for n in range(lines):
        rate = rates[n % len(rates)]
        untaxed = Decimal(100 + (index * 7 + n * 13) % 900) + Decimal("0.45")
        tax = (untaxed * rate / 100).quantize(Decimal("0.01"))
        items.append(
            InvoiceLine(
                description=f"Item {n}",
                quantity=Decimal(1),
                unit_price=untaxed,
                untaxed_amount=untaxed,
                tax_amount=tax,
                total=untaxed + tax,
                tax_rate=rate,
            )
        )
    untaxed = sum((x.untaxed_amount for x in items), Decimal(0))
    tax = sum((x.tax_amount for x in items), Decimal(0))
    who = index % PARTNERS
    return Invoice(
        source_id=f"g-{index}",
        number=f"B{index:07d}",
        type=kind,
        issue_date=dt.date(2026, 1, 1) + dt.timedelta(days=index % 300),
        currency="EUR",
        untaxed_amount=untaxed,
        tax_amount=tax,
        total=untaxed + tax,
        partner=Partner(source_id=f"p-{who}", name=f"Partner {who} SAS"),
        lines=tuple(items),
        has_attachment=attachment,
        updated_at=BASE_TIME + dt.timedelta(seconds=index),
    )


class GeneratedSource(InvoicingSource):
    key = "bench"
    name = "Generated invoices (benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)
    count = 0
    attachments = False
    rates: Sequence[Decimal] = RATES
    calls: Counter = Counter()

    @classmethod
    def configure(cls, *, count: int, attachments: bool, rates: Sequence[Decimal] = RATES) -> None:
        cls.count, cls.attachments, cls.rates, cls.calls = count, attachments, rates, Counter()

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(True, "generated")

    def iter_invoices(self, *, since, directions) -> Iterator[Invoice | SourceRecordError]:
        start = 0 if since is None else max(0, int((since - BASE_TIME).total_seconds()))
        for index in range(start, self.count):
            if (index - start) % PAGE == 0:
                self.calls["list_page"] += 1  # one request per page of a real API
            yield generated_invoice(index, attachment=self.attachments, rates=self.rates)

    def get_invoice(self, source_id: str) -> Invoice:
        self.calls["get_invoice"] += 1
        index = int(source_id.split("-")[1])
        return generated_invoice(index, attachment=self.attachments, rates=self.rates)

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        self.calls["fetch_attachment"] += 1
        return Attachment(f"{invoice.number}.pdf", "application/pdf", b"%PDF-1.4 bench")

    def list_tax_rates(self) -> list[SourceTaxRate]:
        return [SourceTaxRate(d, r) for d in Direction for r in set(RATES)]


class CountingTarget(AccountingTarget):
    key = "bench"
    name = "Counting ledger (benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)
    supports_draft_entries = supports_attachments = True
    supports_partner_creation = supports_batch_writes = True
    calls: Counter = Counter()
    partners: dict[str, TargetPartner] = {}
    written: set[str] = set()
    _ids = itertools.count(1)

    @classmethod
    def reset(cls, *, keep_entries: bool = True) -> None:
        cls.calls, cls.partners, cls.written = Counter(), {}, set()

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(True, "counting")

    def list_folders(self) -> list[Folder]:
        self.calls["list_folders"] += 1
        return [Folder("1", "Bench company")]

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        self.calls["list_vat_codes"] += 1
        return list(VAT_CODES)

    def list_journals(self, folder: str) -> list[Journal]:
        self.calls["list_journals"] += 1
        return list(JOURNALS)

    def list_accounts(self, folder: str, classes: Sequence[str] = ()) -> list[Account]:
        self.calls["list_accounts"] += 1
        return list(ACCOUNTS)

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        self.calls["find_partner_candidates"] += 1
        return [p for p in self.partners.values() if p.name == partner.name]

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        self.calls["existing_partner_ids"] += 1
        return {i for i in ids if i in self.partners}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        self.calls["create_partner"] += 1
        created = TargetPartner(f"t{next(self._ids)}", partner.name)
        self.partners[created.id] = created
        return created

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        self.calls["create_entries"] += 1
        results = []
        for entry in entries:
            key = entry.posting.external_id
            assert key not in self.written, "entry written twice"
            self.written.add(key)
            results.append(EntryResult(key, ref=EntryRef(f"m{next(self._ids)}")))
        return results

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        self.calls["find_entries"] += 1
        return {i: EntryRef(i) for i in external_ids if i in self.written}


@contextlib.contextmanager
def registered():
    with registry.override([*registry.SHIPPED, GeneratedSource, CountingTarget]):
        yield


def engine_config() -> FlowConfig:
    return FlowConfig(
        sales_journal="REV", purchases_journal="EXP", sales_default="706",
        purchases_default="6071", customer_collective="4111", supplier_collective="4011",
        rounding_credit="758", rounding_debit="658",
        sales_vat=tuple(VatRule(v.rate, None, v.code) for v in VAT_CODES if v.code[0] == "V"),
        purchases_vat=tuple(VatRule(v.rate, None, v.code) for v in VAT_CODES if v.code[0] == "A"),
        target=TargetLookups(ACCOUNTS, VAT_CODES, tuple(j.code for j in JOURNALS)),
    )  # fmt: skip


def make_flow(name: str):
    from connectors.models import Client, Connection
    from mappings.models import SyncFlow, VatMapping

    client = Client.objects.create(name=f"Bench {name}")
    source = Connection.objects.create(
        client=client, name="source", kind="invoicing", provider="bench", auth_kind="api_key",
        credentials={"api_key": "bench"},
    )  # fmt: skip
    target = Connection.objects.create(
        client=client, name="target", kind="accounting", provider="bench", auth_kind="api_key",
        credentials={"api_key": "bench"},
    )  # fmt: skip
    flow = SyncFlow.objects.create(
        client=client, name=name, invoicing_connection=source, accounting_connection=target,
        folder="1", sales_journal="REV", purchases_journal="EXP", default_sales_account="706",
        default_purchases_account="6071", customer_collective_account="4111",
        supplier_collective_account="4011", rounding_credit_account="758",
        rounding_debit_account="658", enabled=True,
    )  # fmt: skip
    for vat in VAT_CODES:
        VatMapping.objects.create(
            flow=flow, direction=vat.direction.value, source_rate=vat.rate, target_code=vat.code
        )
    return flow
