"""In-memory test connectors: a source and a target that hold their data in class attributes, count
every call, and can be told to fail. Registered by the ``memory_connectors`` fixture only; the
shipped registry never sees them."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal

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
    Journal,
    Partner,
    SourceJournal,
    SourceTaxRate,
    TargetPartner,
    VatCode,
)
from connectors.errors import ConnectorError, ErrorCode

FRENCH_ACCOUNTS = (
    Account("706", "Prestations de services"),
    Account("707", "Ventes de marchandises"),
    Account("6071", "Achats de marchandises"),
    Account("6063", "Fournitures"),
    Account("4111", "Clients"),
    Account("4011", "Fournisseurs"),
    Account("758", "Produits divers de gestion courante"),
    Account("658", "Charges diverses de gestion courante"),
    Account("709", "Rabais, remises et ristournes accordés"),
    Account("609", "Rabais, remises et ristournes obtenus"),
    Account("44571", "TVA collectée"),
    Account("44566", "TVA déductible"),
    Account("411", "Clients (view)", active=False),
    Account("607", "Achats (closed)", active=False),
)

FRENCH_VAT_CODES = (
    VatCode("V20", Decimal("20.0"), "TVA collectée 20 %", "44571", Direction.SALES),
    VatCode("V10", Decimal("10.0"), "TVA collectée 10 %", "44571", Direction.SALES),
    VatCode("V55", Decimal("5.5"), "TVA collectée 5,5 %", "44571", Direction.SALES),
    VatCode("V0", Decimal("0"), "Exonéré ventes", "44571", Direction.SALES),
    VatCode("A20", Decimal("20.0"), "TVA déductible 20 %", "44566", Direction.PURCHASES),
    VatCode("A10", Decimal("10.0"), "TVA déductible 10 %", "44566", Direction.PURCHASES),
    VatCode("A55", Decimal("5.5"), "TVA déductible 5,5 %", "44566", Direction.PURCHASES),
    VatCode("A0", Decimal("0"), "Exonéré achats", "44566", Direction.PURCHASES),
)

FRENCH_JOURNALS = (Journal("REV", "Revenue", "sales"), Journal("EXP", "Expense", "purchases"),
                   Journal("MISC", "Miscellaneous"))  # fmt: skip


def refused(config) -> bool:
    """The in-memory tools refuse any API key or password that starts with "wrong"."""
    secrets = (config.credentials.get("api_key"), config.credentials.get("password"))
    return any(str(value).startswith("wrong") for value in secrets if value)


def ensure_accepted(config) -> None:
    if refused(config):
        raise ConnectorError(
            ErrorCode.AUTHENTICATION_FAILED, "The in-memory tool refused the credentials."
        )


def memory_account_identity(settings) -> str:
    """The setting ``account`` names the in-memory account; without it each connection is its own
    account (the connector cannot name it)."""
    account = str(settings.get("account") or "").strip()
    return f"memory|{account}" if account else ""


class MemorySource(InvoicingSource):
    key = "memory"
    name = "In-memory invoicing (tests)"
    auth_kinds = (AuthKind.API_KEY, AuthKind.CREDENTIALS)
    supports_journals = True

    invoices: dict[str, Invoice | SourceRecordError] = {}
    attachments: dict[str, bytes] = {}
    failing_attachments: set[str] = set()
    fail_listing: ConnectorError | None = None
    calls: Counter = Counter()
    # Invoices per page of the listing (None: one page); each page counts in calls["invoice_pages"].
    page_size: int | None = None

    @classmethod
    def reset(cls) -> None:
        cls.invoices = {}
        cls.attachments = {}
        cls.failing_attachments = set()
        cls.fail_listing = None
        cls.calls = Counter()
        cls.page_size = None

    @classmethod
    def put(cls, *invoices: Invoice | SourceRecordError) -> None:
        for invoice in invoices:
            cls.invoices[invoice.source_id] = invoice
            if isinstance(invoice, Invoice) and invoice.has_attachment:
                cls.attachments.setdefault(
                    invoice.source_id, b"%PDF-1.4 " + invoice.number.encode()
                )

    @classmethod
    def account_identity(cls, settings) -> str:
        return memory_account_identity(settings)

    def check_connection(self) -> ConnectionCheck:
        self.calls["check_connection"] += 1
        if refused(self.config):
            return ConnectionCheck(
                False, "The invoicing tool refused the API key.", ErrorCode.AUTHENTICATION_FAILED
            )
        return ConnectionCheck(True, f"{len(self.invoices)} invoices visible.")

    def iter_invoices(self, *, since, directions) -> Iterator[Invoice | SourceRecordError]:
        self.calls["iter_invoices"] += 1
        if self.fail_listing is not None:
            raise self.fail_listing
        ensure_accepted(self.config)
        wanted = {Direction(d) for d in directions}

        def key(item):
            return (item.updated_at is None, item.updated_at, item.source_id)

        listed = sorted(self.invoices.values(), key=key)
        size = self.page_size or max(len(listed), 1)
        for start in range(0, len(listed), size):
            self.calls["invoice_pages"] += 1  # one "request" per page, read when reached
            for item in listed[start : start + size]:
                if isinstance(item, Invoice):
                    if item.direction not in wanted:
                        continue
                    if (
                        since is not None
                        and item.updated_at is not None
                        and item.updated_at < since
                    ):
                        continue
                yield item

    def get_invoice(self, source_id: str) -> Invoice | SourceRecordError:
        self.calls["get_invoice"] += 1
        try:
            return self.invoices[source_id]
        except KeyError:
            raise ConnectorError(
                ErrorCode.INVALID_SOURCE_DATA, f"Invoice {source_id} no longer exists."
            ) from None

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        self.calls["fetch_attachment"] += 1
        if invoice.source_id in self.failing_attachments:
            raise ConnectorError(ErrorCode.PDF, f"The PDF of {invoice.number} could not be read.")
        content = self.attachments.get(invoice.source_id)
        if content is None:
            raise ConnectorError(ErrorCode.PDF, f"Invoice {invoice.number} has no PDF.")
        return Attachment(f"{invoice.number}.pdf", "application/pdf", content)

    def list_tax_rates(self) -> list[SourceTaxRate]:
        self.calls["list_tax_rates"] += 1
        seen = {}
        for invoice in self.invoices.values():
            if isinstance(invoice, Invoice):
                for line in invoice.lines:
                    rate = SourceTaxRate(
                        invoice.direction, line.tax_rate, line.tax_id, kind=line.tax_kind
                    )
                    seen[(rate.direction, rate.rate, rate.tax_id)] = rate
        return list(seen.values())

    def list_journals(self) -> list[SourceJournal]:
        return [SourceJournal("VT", "Ventes"), SourceJournal("HA", "Achats")]


class MemoryTarget(AccountingTarget):
    key = "memory"
    name = "In-memory accounting (tests)"
    auth_kinds = (AuthKind.API_KEY, AuthKind.CREDENTIALS, AuthKind.OAUTH2)
    supports_draft_entries = True
    supports_attachments = True
    supports_partner_creation = True
    supports_batch_writes = True
    supports_exchange_rates = True

    accounts: tuple[Account, ...] = FRENCH_ACCOUNTS
    vat_codes: tuple[VatCode, ...] = FRENCH_VAT_CODES
    journals: tuple[Journal, ...] = FRENCH_JOURNALS
    partners: dict[str, TargetPartner] = {}
    entries: dict[str, dict] = {}  # external_id -> {"ref", "posting", "attachment"}
    calls: Counter = Counter()
    # Hooks for fault tests: raise this on the next create_entries (after writing when
    # ``fail_after_write``), or refuse these external ids one by one.
    fail_next_write: ConnectorError | None = None
    fail_after_write: bool = False
    refuse: dict[str, ConnectorError] = {}
    # External ids that make a whole batch fail, as a target whose batch write is one transaction.
    poison: dict[str, ConnectorError] = {}
    # The ledger's own currency: the folder reports it, and entries in another are refused.
    currency: str = "EUR"
    # The ledger's own rates: ledger-currency units per unit of a currency, by currency code
    # (the same on every date); a currency not here has no rate.
    rates: dict[str, Decimal] = {}
    # Tripwires for the sync tests: an entry written again under an external id the ledger holds,
    # or an unbalanced one, fails the test (AssertionError). False: the double answers as a vendor
    # must (tests/connectors/contract.py): the entry already there, or an error result.
    strict: bool = True
    _ids = itertools.count(1)

    @classmethod
    def reset(cls) -> None:
        cls.accounts = FRENCH_ACCOUNTS
        cls.vat_codes = FRENCH_VAT_CODES
        cls.journals = FRENCH_JOURNALS
        cls.partners = {}
        cls.entries = {}
        cls.calls = Counter()
        cls.fail_next_write = None
        cls.fail_after_write = False
        cls.refuse = {}
        cls.poison = {}
        cls.currency = "EUR"
        cls.rates = {}
        cls.strict = True

    @classmethod
    def add_partner(cls, name: str, **identifiers) -> TargetPartner:
        partner = TargetPartner(id=f"p{next(cls._ids)}", name=name, **identifiers)
        cls.partners[partner.id] = partner
        return partner

    @classmethod
    def account_identity(cls, settings) -> str:
        return memory_account_identity(settings)

    def check_connection(self) -> ConnectionCheck:
        self.calls["check_connection"] += 1
        if refused(self.config):
            return ConnectionCheck(
                False,
                "The in-memory ledger refused the credentials.",
                ErrorCode.AUTHENTICATION_FAILED,
            )
        return ConnectionCheck(True, "Connected to the in-memory ledger.")

    def list_folders(self) -> list[Folder]:
        self.calls["list_folders"] += 1
        ensure_accepted(self.config)
        return [Folder("1", "Test company", self.currency)]

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        self.calls["list_vat_codes"] += 1
        return list(self.vat_codes)

    def list_journals(self, folder: str) -> list[Journal]:
        self.calls["list_journals"] += 1
        return list(self.journals)

    def list_accounts(self, folder: str) -> list[Account]:
        self.calls["list_accounts"] += 1
        ensure_accepted(self.config)
        return list(self.accounts)

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        self.calls["find_partner_candidates"] += 1
        ensure_accepted(self.config)
        return list(self.partners.values())

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        self.calls["existing_partner_ids"] += 1
        return {i for i in ids if i in self.partners}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        self.calls["create_partner"] += 1
        return self.add_partner(
            partner.name,
            vat_numbers=(partner.vat_number,) if partner.vat_number else (),
            company_numbers=(partner.company_number,) if partner.company_number else (),
        )

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        self.calls["create_entries"] += 1
        ensure_accepted(self.config)
        failure, after = type(self).fail_next_write, type(self).fail_after_write
        if failure is not None and not after:
            type(self).fail_next_write = None
            raise failure
        for entry in entries:
            if entry.posting.external_id in self.poison:
                raise self.poison[entry.posting.external_id]
        results = []
        for entry in entries:
            posting = entry.posting
            if posting.company_currency != self.currency:
                error = ConnectorError(
                    ErrorCode.CONFIGURATION_INCOMPLETE,
                    f"The ledger books in {self.currency}, not {posting.company_currency}.",
                    field="company_currency",
                )
                results.append(EntryResult(posting.external_id, error=error))
                continue
            if posting.external_id in self.refuse:
                results.append(
                    EntryResult(posting.external_id, error=self.refuse[posting.external_id])
                )
                continue
            held = self.entries.get(posting.external_id)
            if held is not None and not held["ref"].posted and not posting.draft:
                held["ref"] = replace(held["ref"], posted=True)  # finish a draft left behind
                results.append(EntryResult(posting.external_id, ref=held["ref"]))
                continue
            if self.strict:
                assert held is None, "entry written twice"
                assert posting.total_debit == posting.total_credit, "unbalanced entry"
            elif held is not None:
                results.append(EntryResult(posting.external_id, ref=held["ref"]))
                continue
            elif not posting.lines or posting.total_debit != posting.total_credit:
                error = ConnectorError(
                    ErrorCode.TARGET_REJECTED,
                    f"The entry for {posting.reference} does not balance.",
                )
                results.append(EntryResult(posting.external_id, error=error))
                continue
            ref = EntryRef(
                f"m{next(self._ids)}",
                posting.reference,
                entry.attachment is not None,
                posted=not posting.draft,
            )
            self.entries[posting.external_id] = {
                "ref": ref,
                "posting": posting,
                "attachment": entry.attachment,
            }
            results.append(EntryResult(posting.external_id, ref=ref))
        if failure is not None and after:
            type(self).fail_next_write = None
            raise failure
        return results

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        self.calls["find_entries"] += 1
        ensure_accepted(self.config)
        return {i: self.entries[i]["ref"] for i in external_ids if i in self.entries}

    def attach(self, folder: str, ref: EntryRef, attachment: Attachment) -> None:
        self.calls["attach"] += 1
        for entry in self.entries.values():
            if entry["ref"].id == ref.id:
                entry["attachment"] = attachment
                entry["ref"] = replace(ref, has_attachment=True)

    def exchange_rate(self, folder, currency, company_currency, date) -> Decimal | None:
        self.calls["exchange_rate"] += 1
        ensure_accepted(self.config)
        return self.rates.get(currency) if company_currency == self.currency else None
