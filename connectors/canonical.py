"""The canonical model: what a source yields, what the engine produces and a target writes.

Plain frozen dataclasses with ``Decimal`` money; no ORM and no HTTP. Sources map their vendor's
records into :class:`Invoice`; the posting engine turns one into a :class:`Posting`; targets write
postings and answer the lookups the mapping forms need.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum


class InvoiceType(StrEnum):
    CUSTOMER_INVOICE = "customer_invoice"
    CUSTOMER_REFUND = "customer_refund"
    SUPPLIER_INVOICE = "supplier_invoice"
    SUPPLIER_REFUND = "supplier_refund"

    @property
    def direction(self) -> Direction:
        return Direction.SALES if self.value.startswith("customer") else Direction.PURCHASES

    @property
    def is_refund(self) -> bool:
        return self.value.endswith("refund")


class Direction(StrEnum):
    SALES = "sales"
    PURCHASES = "purchases"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINAL = "final"
    CANCELLED = "cancelled"
    PAID = "paid"


# ISO 4217 minor units that are not 2. Anything not listed has two decimals.
_CURRENCY_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4,
}  # fmt: skip


def currency_exponent(currency: str) -> int:
    return _CURRENCY_EXPONENTS.get((currency or "").upper(), 2)


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit, as invoices and ledgers do."""
    exponent = currency_exponent(currency)
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Partner:
    source_id: str
    name: str
    vat_number: str | None = None
    company_number: str | None = None
    auxiliary_account: str | None = None
    country: str | None = None
    email: str | None = None
    address: str | None = None


class TaxKind(StrEnum):
    """What a tax is, beyond its rate. EN16931's VAT category codes (UNCL5305) in brackets."""

    STANDARD = "standard"  # S: VAT charged at the line's rate
    ZERO = "zero"  # Z: zero-rated
    EXEMPT = "exempt"  # E: exempt from VAT
    REVERSE_CHARGE = "reverse_charge"  # AE: the buyer self-assesses (domestic autoliquidation)
    INTRA_EU = "intra_eu"  # K: intra-community supply / acquisition (buyer self-assesses)
    EXPORT = "export"  # G: export outside the EU
    OUT_OF_SCOPE = "out_of_scope"  # O: not subject to VAT

    @property
    def self_assessed(self) -> bool:
        """The invoice states no VAT; the buyer books it both ways (deductible and collected)."""
        return self in (TaxKind.REVERSE_CHARGE, TaxKind.INTRA_EU)

    @property
    def charges_no_vat(self) -> bool:
        """The invoice's VAT for this tax is zero by law, whatever its rate."""
        return self is not TaxKind.STANDARD


@dataclass(frozen=True)
class TaxBreakdown:
    """One row of an invoice's VAT breakdown, as the source states it (EN16931 BG-23): the base
    and the VAT amount of one tax over the whole invoice. Sources that round VAT per invoice and
    tax (Tryton, every e-invoice) state these; the engine books them as stated."""

    base: Decimal
    amount: Decimal
    rate: Decimal | None = None
    tax_id: str | None = None  # the source's tax id, where lines name one
    kind: TaxKind = TaxKind.STANDARD
    category: str | None = None  # EN16931 VAT category code (S, Z, E, AE, K, G, O), if given


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    untaxed_amount: Decimal
    tax_amount: Decimal
    total: Decimal
    discount_amount: Decimal = Decimal("0")
    tax_rate: Decimal | None = None
    tax_id: str | None = None
    account_number: str | None = None
    product_code: str | None = None
    tax_kind: TaxKind = TaxKind.STANDARD


@dataclass(frozen=True)
class Invoice:
    source_id: str
    number: str
    type: InvoiceType
    issue_date: dt.date
    currency: str
    untaxed_amount: Decimal
    tax_amount: Decimal
    total: Decimal
    partner: Partner | None
    lines: tuple[InvoiceLine, ...]
    due_date: dt.date | None = None
    # Company-currency units per unit of the invoice currency: company amount = amount × rate.
    exchange_rate: Decimal | None = None
    journal_code: str | None = None
    has_attachment: bool = False
    updated_at: dt.datetime | None = None
    status: InvoiceStatus = InvoiceStatus.FINAL
    # The VAT breakdown as the source states it (BG-23); empty when the source has none, and the
    # engine then books the sum of the lines' VAT.
    taxes: tuple[TaxBreakdown, ...] = ()
    # What is left to pay (EN16931 BT-115) and what was paid before (BT-113), where the source
    # states them (e-invoices); None otherwise. Informational: the entry books the total.
    payable_amount: Decimal | None = None
    prepaid_amount: Decimal | None = None

    @property
    def direction(self) -> Direction:
        return self.type.direction


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes = field(repr=False)


class TaxRole(StrEnum):
    BASE = "base"
    TAX = "tax"


@dataclass(frozen=True)
class EntryLine:
    """One line of a journal entry. Amounts are in the company currency; ``amount_currency`` holds
    the signed amount in the invoice currency when it differs (debit positive)."""

    account: str
    debit: Decimal
    credit: Decimal
    label: str
    partner: str | None = None  # the partner's name, on the collective (third-party) line only
    vat_code: str | None = None
    tax_role: TaxRole | None = None
    amount_currency: Decimal | None = None
    maturity_date: dt.date | None = None


@dataclass(frozen=True)
class Posting:
    journal: str
    date: dt.date
    reference: str  # the source invoice number, shown to people
    external_id: str  # unique per flow and source invoice: how a target finds an entry again
    currency: str
    company_currency: str
    draft: bool
    lines: tuple[EntryLine, ...]
    due_date: dt.date | None = None
    partner_name: str = ""
    partner_ref: str | None = None  # the target's partner id, filled in after matching
    invoice_type: InvoiceType = InvoiceType.CUSTOMER_INVOICE

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), Decimal("0"))

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), Decimal("0"))


# Lookups: what a target offers to the mapping forms and the engine.


@dataclass(frozen=True)
class Folder:
    id: str
    name: str
    currency: str = "EUR"


class AccountKind(StrEnum):
    """What an account is for, as the target reports it (whatever its chart numbers it)."""

    RECEIVABLE = "receivable"  # customers (third-party accounts of sales)
    PAYABLE = "payable"  # suppliers (third-party accounts of purchases)
    REVENUE = "revenue"
    EXPENSE = "expense"
    TAX = "tax"
    OTHER = "other"  # the target says what it is, and it is none of the above
    UNKNOWN = "unknown"  # the target reports numbers only


@dataclass(frozen=True)
class Account:
    number: str
    name: str = ""
    active: bool = True
    kind: AccountKind = AccountKind.UNKNOWN


@dataclass(frozen=True)
class VatCode:
    code: str
    rate: Decimal | None
    name: str = ""
    account: str | None = None  # the account the tax amount is booked on, where the target says
    direction: Direction | None = None  # None: usable for both


@dataclass(frozen=True)
class Journal:
    code: str
    name: str = ""
    kind: str = ""  # "sales", "purchases" or the target's own word


@dataclass(frozen=True)
class TargetLookups:
    """The target's chart as the engine checks a posting against it."""

    accounts: tuple[Account, ...] = ()
    vat_codes: tuple[VatCode, ...] = ()
    journals: tuple[str, ...] = ()  # journal codes; empty: not checked


@dataclass(frozen=True)
class TargetPartner:
    id: str
    name: str
    vat_numbers: tuple[str, ...] = ()
    company_numbers: tuple[str, ...] = ()
    auxiliary_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceTaxRate:
    direction: Direction
    rate: Decimal | None  # for a self-assessed tax, the rate the buyer self-assesses (20, not 0)
    tax_id: str | None = None
    name: str = ""
    kind: TaxKind = TaxKind.STANDARD


@dataclass(frozen=True)
class SourceJournal:
    code: str
    name: str = ""


@dataclass(frozen=True)
class EntryRef:
    """Where a written entry lives in the target. ``posted`` is False for a draft (targets that
    tell; a write interrupted between creating and posting leaves one, which writing the entry
    again through ``create_entries`` finishes)."""

    id: str
    number: str = ""
    has_attachment: bool = False
    posted: bool = True


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    # A failed check's catalogue code (connectors.errors.ErrorCode, e.g. a refused login's
    # ERROR_CONNECTION_AUTHENTICATION_FAILED); "" when ok or when the connector does not say.
    code: str = ""
    # The message as a key of connectors.messages.MESSAGES and its JSON-safe parameters, so the
    # admin shows it in the reader's language ("" : the message is shown as written).
    key: str = ""
    params: dict = field(default_factory=dict)
