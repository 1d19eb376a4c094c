"""What an e-invoice says, syntax aside: the EN16931 business terms the reader maps.

The CII and UBL readers fill these plain dataclasses with every figure as the file states it
(``Decimal``, never recomputed); the validator checks them and the mapping turns them into the
canonical invoice. Business-term ids (BT-109, BG-23) are EN16931's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from connectors.errors import ErrorCode, InvsyncError


class Syntax(StrEnum):
    CII = "cii"  # UN/CEFACT CII D16B: Factur-X, ZUGFeRD 2.x, XRechnung CII
    ZUGFERD1 = "zugferd1"  # ZUGFeRD 1.0 (CII D13B draft, namespace urn:ferd:...:1p0)
    UBL = "ubl"  # UBL 2.1 Invoice and CreditNote (EN16931, Peppol BIS 3, XRechnung UBL)


class EInvoiceError(InvsyncError):
    """A file the reader refuses, with its catalogue code: ``EINVOICE_UNSUPPORTED`` (not an
    e-invoice we read), ``EINVOICE_INVALID`` (a rule broken; ``rule`` names it, ``field`` the
    business term or element) or ``EINVOICE_NOT_OURS`` (our company is neither party)."""

    def __init__(
        self, code: ErrorCode, message: str, *, field: str | None = None, rule: str | None = None
    ) -> None:
        super().__init__(code, message, field=field)
        self.rule = rule


def unsupported(message: str) -> EInvoiceError:
    return EInvoiceError(ErrorCode.EINVOICE_UNSUPPORTED, message)


def invalid(message: str, *, field: str | None = None, rule: str | None = None) -> EInvoiceError:
    return EInvoiceError(ErrorCode.EINVOICE_INVALID, message, field=field, rule=rule)


@dataclass(frozen=True)
class Identifier:
    value: str
    scheme: str | None = None  # ISO 6523 ICD (0002 SIREN, 0009 SIRET, 0088 GLN...) or None


@dataclass(frozen=True)
class Party:
    """A seller (BG-4) or buyer (BG-7)."""

    name: str
    vat_ids: tuple[str, ...] = ()  # BT-31 / BT-48
    legal_ids: tuple[Identifier, ...] = ()  # BT-30 / BT-47 (legal registration)
    other_ids: tuple[Identifier, ...] = ()  # BT-29 / BT-46, BT-34 / BT-49 (electronic address)
    tax_numbers: tuple[str, ...] = ()  # BT-32 (seller's local tax number, e.g. German "FC")
    country: str | None = None  # BT-40 / BT-55
    address: str | None = None
    email: str | None = None
    # BT-29 / BT-46 without a scheme: a number the other party gave it (a customer number), not
    # an identifier of its own.
    assigned_ids: tuple[str, ...] = ()

    @property
    def has_identifier(self) -> bool:
        """Whether the party carries an identifier of its own (VAT, legal, tax number, a
        scheme-qualified id or electronic address); a customer number does not count."""
        return bool(self.vat_ids or self.legal_ids or self.other_ids or self.tax_numbers)


@dataclass(frozen=True)
class VatRow:
    """One VAT breakdown row (BG-23)."""

    category: str  # BT-118
    rate: Decimal | None  # BT-119
    base: Decimal  # BT-116
    amount: Decimal  # BT-117
    exemption_reason: str | None = None  # BT-120


@dataclass(frozen=True)
class AllowanceCharge:
    """A document-level allowance (BG-20) or charge (BG-21)."""

    is_charge: bool
    amount: Decimal  # BT-92 / BT-99
    reason: str
    category: str | None  # BT-95 / BT-102
    rate: Decimal | None  # BT-96 / BT-103


@dataclass(frozen=True)
class Line:
    """An invoice line (BG-25). ``net_amount`` (BT-131) already holds the line's allowances and
    charges."""

    line_id: str  # BT-126
    name: str  # BT-153
    quantity: Decimal  # BT-129
    net_amount: Decimal  # BT-131
    net_price: Decimal | None  # BT-146
    price_base_quantity: Decimal | None  # BT-149
    category: str | None  # BT-151
    rate: Decimal | None  # BT-152
    product_code: str | None = None  # BT-155
    allowances: Decimal = Decimal("0")  # sum of BT-136
    charges: Decimal = Decimal("0")  # sum of BT-141


@dataclass(frozen=True)
class Totals:
    """The document totals (BG-22). ``None``: the file does not state it (MINIMUM has no BT-106)."""

    line_total: Decimal | None  # BT-106
    allowance_total: Decimal | None  # BT-107
    charge_total: Decimal | None  # BT-108
    tax_basis_total: Decimal  # BT-109
    tax_total: Decimal  # BT-110 (in the invoice currency)
    grand_total: Decimal  # BT-112
    prepaid: Decimal | None  # BT-113
    rounding: Decimal | None  # BT-114
    payable: Decimal  # BT-115


@dataclass(frozen=True)
class Document:
    syntax: Syntax
    profile: str | None  # minimum, basicwl, basic, en16931, extended (CII); None when unknown
    guideline: str  # BT-24 as written
    number: str  # BT-1
    type_code: str  # BT-3
    issue_date: dt.date  # BT-2
    due_date: dt.date | None  # BT-9
    currency: str  # BT-5
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    allowances_charges: tuple[AllowanceCharge, ...]
    vat_rows: tuple[VatRow, ...]
    totals: Totals
    credit_note_syntax: bool = False  # a UBL CreditNote (its amounts are credits as stated)
    # EXTENDED sub-lines: GROUP and INFORMATION lines are outside the totals (their LineIDs).
    skipped_line_ids: tuple[str, ...] = ()
