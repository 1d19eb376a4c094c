"""Benchmark connectors.

- In one process: :class:`GeneratedSource` generates invoices on demand (nothing held in memory)
  and :class:`CountingTarget` writes nothing but counts every call (class attributes: their state
  is per process). Registered only inside :func:`registered`.
- Across processes (bench/scale.py, tests/integration/test_scale_out.py): :class:`SharedSource`
  generates a flow's invoices from its connection's settings alone (seed and count, so every
  worker process sees the same invoices) and :class:`SharedTarget` records every entry written in
  Redis (a hash per ledger: external id → times written), so "each invoice written exactly once"
  can be checked across processes and hosts. Provider key ``shared``; registered in worker
  processes by the ``bench`` app of ``bench/scale_settings.py`` (:func:`register_shared`), never
  in the shipped registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal

from connectors import registry
from connectors.base import (
    AccountingTarget,
    AuthKind,
    ConnectionConfig,
    EntryResult,
    EntryToWrite,
    InvoicingSource,
    SettingField,
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
    TargetLookups,
    TargetPartner,
    VatCode,
)
from syncs.config import FlowConfig, VatRule

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
    def reset(cls) -> None:
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

    def list_accounts(self, folder: str) -> list[Account]:
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


def make_flow(
    name: str,
    *,
    provider: str = "bench",
    source_settings: dict | None = None,
    target_settings: dict | None = None,
):
    from connectors.models import Client, Connection
    from mappings.models import SyncFlow, VatMapping

    client = Client.objects.create(name=f"Bench {name}")
    source = Connection.objects.create(
        client=client, name="source", kind="invoicing", provider=provider, auth_kind="api_key",
        credentials={"api_key": "bench"}, settings=source_settings or {},
    )  # fmt: skip
    target = Connection.objects.create(
        client=client, name="target", kind="accounting", provider=provider, auth_kind="api_key",
        credentials={"api_key": "bench"}, settings=target_settings or {},
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


# -- Shared connectors: state in Redis, for several worker processes ---------------------------

SHARED_PREFIX = "invsync-bench"
_SHARED_COMMON = (
    SettingField("redis_url", "Redis URL", "Where the shared ledger lives."),
    SettingField("ledger", "Ledger", "The flow's own namespace in Redis."),
    SettingField("latency_ms", "Latency (ms)", "Added to every call.", required=False),
)


def _shared_key(*parts: object) -> str:
    return ":".join((SHARED_PREFIX, *map(str, parts)))


# Counts the connectors open now (all flows) and keeps the highest count seen, in one step.
_OPEN_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return redis.call('INCR', KEYS[3])
"""


class _SharedConnector:
    """What both shared connectors hold: a Redis client, the flow's ledger, a simulated latency."""

    config: ConnectionConfig

    def _open_shared(self) -> None:
        import redis

        settings = self.config.settings
        self.redis = redis.Redis.from_url(settings["redis_url"])
        self.ledger = settings["ledger"]
        self.latency = int(settings.get("latency_ms") or 0) / 1000

    def _wait(self) -> None:
        if self.latency:
            time.sleep(self.latency)


class SharedSource(_SharedConnector, InvoicingSource):
    """A flow's invoices generated from its settings (``seed``, ``count``): the same in every
    process. While an instance is open (a run holds it from after its lease is taken to before it
    is released) it counts itself in Redis, so two runs of one flow at a time are seen as an
    overlap (``overlaps``), and it notes which cluster (``INVSYNC_SCALE_CLUSTER``) ran it."""

    key = "shared"
    name = "Generated invoices (shared, scale-out benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)
    settings_fields = (
        *_SHARED_COMMON,
        SettingField("seed", "Seed", "Varies the amounts from flow to flow."),
        SettingField("count", "Invoices", "How many invoices the source holds."),
    )

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        self._open_shared()
        self.seed = int(config.settings["seed"])
        self.count = int(config.settings["count"])
        self._closed = False
        busy = self.redis.eval(
            _OPEN_SCRIPT, 3, _shared_key("active"), _shared_key("max_active"),
            _shared_key("busy", self.ledger),
        )  # fmt: skip
        where = os.environ.get("INVSYNC_SCALE_CLUSTER", "?")
        with self.redis.pipeline() as pipe:
            pipe.hincrby(_shared_key("runs_by_cluster"), where, 1)
            if int(busy) > 1:
                pipe.rpush(
                    _shared_key("overlaps"), f"{self.ledger} cluster {where} pid {os.getpid()}"
                )
            pipe.execute()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self.redis.pipeline() as pipe:
            pipe.decr(_shared_key("busy", self.ledger))
            pipe.decr(_shared_key("active"))
            pipe.execute()
        self.redis.close()

    def _invoice(self, index: int) -> Invoice:
        invoice = generated_invoice(index + self.seed)
        return dataclasses.replace(
            invoice,
            source_id=f"s{self.seed}-{index}",
            number=f"S{self.seed:03d}-{index:05d}",
            updated_at=BASE_TIME + dt.timedelta(seconds=index),
        )

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(True, "generated")

    def iter_invoices(self, *, since, directions) -> Iterator[Invoice | SourceRecordError]:
        start = 0 if since is None else max(0, int((since - BASE_TIME).total_seconds()))
        for index in range(start, self.count):
            if (index - start) % PAGE == 0:
                self._wait()
            yield self._invoice(index)

    def get_invoice(self, source_id: str) -> Invoice:
        self._wait()
        return self._invoice(int(source_id.rsplit("-", 1)[1]))

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        self._wait()
        return Attachment(f"{invoice.number}.pdf", "application/pdf", b"%PDF-1.4 bench")

    def list_tax_rates(self) -> list[SourceTaxRate]:
        return [SourceTaxRate(d, r) for d in Direction for r in set(RATES)]


class SharedTarget(_SharedConnector, AccountingTarget):
    """A ledger in Redis: partners (a hash id → name) and entries written (a hash external id →
    times written, which must end at 1 each). Writing an entry twice is recorded, not refused, so
    that the check at the end sees it."""

    key = "shared"
    name = "Shared ledger (scale-out benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)
    settings_fields = _SHARED_COMMON
    supports_draft_entries = supports_attachments = True
    supports_partner_creation = supports_batch_writes = True

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        self._open_shared()
        self.written = _shared_key("written", self.ledger)
        self.partners = _shared_key("partners", self.ledger)

    def close(self) -> None:
        self.redis.close()

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(True, "shared")

    def list_folders(self) -> list[Folder]:
        self._wait()
        return [Folder("1", "Bench company")]

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        self._wait()
        return list(VAT_CODES)

    def list_journals(self, folder: str) -> list[Journal]:
        self._wait()
        return list(JOURNALS)

    def list_accounts(self, folder: str) -> list[Account]:
        self._wait()
        return list(ACCOUNTS)

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        self._wait()
        return [
            TargetPartner(key.decode(), name.decode())
            for key, name in self.redis.hgetall(self.partners).items()
            if name.decode() == partner.name
        ]

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        self._wait()
        if not ids:
            return set()
        found = self.redis.hmget(self.partners, list(ids))
        return {i for i, name in zip(ids, found, strict=True) if name is not None}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        self._wait()
        created = TargetPartner(f"t{self.redis.incr(_shared_key('ids'))}", partner.name)
        self.redis.hset(self.partners, created.id, created.name)
        return created

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        self._wait()
        keys = [entry.posting.external_id for entry in entries]
        with self.redis.pipeline() as pipe:
            for key in keys:
                pipe.hincrby(self.written, key, 1)
            pipe.execute()
        return [EntryResult(key, ref=EntryRef(key)) for key in keys]

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        self._wait()
        if not external_ids:
            return {}
        found = self.redis.hmget(self.written, list(external_ids))
        return {
            i: EntryRef(i)
            for i, count in zip(external_ids, found, strict=True)
            if count is not None
        }


_shared_registration = contextlib.ExitStack()


def register_shared() -> None:
    """Add the shared connectors to this process's registry for good (worker processes)."""
    _shared_registration.close()
    _shared_registration.enter_context(
        registry.override([*registry.SHIPPED, SharedSource, SharedTarget])
    )


def shared_report(redis_url: str, ledgers: Sequence[str]) -> dict:
    """What the shared connectors recorded: per ledger, how many times each entry was written;
    the overlaps seen; the most connectors open at once; runs per cluster."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return {
            "written": {
                ledger: {
                    k: int(v) for k, v in client.hgetall(_shared_key("written", ledger)).items()
                }
                for ledger in ledgers
            },
            "overlaps": client.lrange(_shared_key("overlaps"), 0, -1),
            "max_active": int(client.get(_shared_key("max_active")) or 0),
            "open_now": int(client.get(_shared_key("active")) or 0),
            "runs_by_cluster": {
                k: int(v) for k, v in client.hgetall(_shared_key("runs_by_cluster")).items()
            },
        }
    finally:
        client.close()
