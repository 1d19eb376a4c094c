"""An e-invoice :class:`Document` as the canonical :class:`Invoice`, seen from our company.

The direction comes from our company's identifiers: we are the buyer → a purchase (the seller is
the partner), the seller → a sale (the buyer is the partner), neither (or both) →
``EINVOICE_NOT_OURS``. Every amount is the file's; the only figures computed are each line's share
of its VAT breakdown row, allocated so that the lines' VAT adds up to the row exactly.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from connectors.canonical import (
    Invoice,
    InvoiceLine,
    InvoiceType,
    Partner,
    TaxBreakdown,
    TaxKind,
    quantize_money,
)
from connectors.errors import ErrorCode
from connectors.providers.einvoice.document import Document, EInvoiceError, Party, invalid

ZERO = Decimal("0")

# UNTDID 1001 document types that credit the buyer (EN16931 code list for BT-3).
CREDIT_NOTE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
# Words for the notices.
TYPE_WORDS = {
    "380": "commercial invoice",
    "381": "credit note",
    "383": "debit note",
    "384": "corrective invoice",
    "386": "prepayment invoice",
    "389": "self-billed invoice",
    "261": "self-billed credit note",
    "326": "partial invoice",
    "751": "invoice information for accounting purposes",
}

PROFILE_NAMES = {
    "minimum": "MINIMUM",
    "basicwl": "BASIC WL",
    "basic": "BASIC",
    "en16931": "EN16931",
    "extended": "EXTENDED",
}

CATEGORY_KINDS = {
    "S": TaxKind.STANDARD,
    "L": TaxKind.STANDARD,  # Canary Islands general indirect tax (IGIC), charged like VAT
    "M": TaxKind.STANDARD,  # Ceuta and Melilla (IPSI), charged like VAT
    "Z": TaxKind.ZERO,
    "E": TaxKind.EXEMPT,
    "AE": TaxKind.REVERSE_CHARGE,
    "K": TaxKind.INTRA_EU,
    "G": TaxKind.EXPORT,
    "O": TaxKind.OUT_OF_SCOPE,
}


@dataclass(frozen=True)
class OurCompany:
    """Who we are, to tell a sale from a purchase: SIREN, SIRET, VAT numbers, legal ids (any of
    them), and the exact name, used only for a party that carries no identifier at all."""

    identifiers: tuple[str, ...] = ()
    name: str | None = None


def _compact(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


def _expanded(values: list[str]) -> set[str]:
    """Identifiers in compact form, plus the SIREN inside a French SIRET or VAT number: a
    company's establishments share it."""
    keys: set[str] = set()
    for value in values:
        compact = _compact(value)
        if not compact:
            continue
        keys.add(compact)
        if re.fullmatch(r"FR[0-9A-Z]{2}\d{9}", compact):
            keys.add(compact[4:])
        elif re.fullmatch(r"\d{14}", compact):
            # Not only checksummed SIRETs: test and sandbox numbers rarely are, and a 14-digit
            # id of the other party starting with our SIREN is no coincidence.
            keys.add(compact[:9])
    return keys


def _party_identifiers(party: Party) -> list[str]:
    return [
        *party.vat_ids,
        *party.tax_numbers,
        *(identifier.value for identifier in party.legal_ids),
        *(identifier.value for identifier in party.other_ids),
        *party.assigned_ids,
    ]


def _name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _is_us(party: Party, company: OurCompany) -> bool:
    if _expanded(list(company.identifiers)) & _expanded(_party_identifiers(party)):
        return True
    if party.has_identifier:
        return False  # a namesake with identifiers of its own is another company
    names = {_name_key(value) for value in (company.name, *company.identifiers) if value}
    return _name_key(party.name) in names


def _describe(party: Party) -> str:
    schemes = {"0009": "SIRET", "0002": "SIREN/SIRET"}
    ids = [f"VAT {vat}" for vat in party.vat_ids] + [
        f"{schemes.get(i.scheme or '', 'id')} {i.value}" for i in party.legal_ids
    ]
    return f"{party.name} ({', '.join(ids)})" if ids else f"{party.name} (no identifier)"


def direction_of(document: Document, company: OurCompany) -> bool:
    """True for a sale (we are the seller), False for a purchase; EINVOICE_NOT_OURS otherwise."""
    seller, buyer = _is_us(document.seller, company), _is_us(document.buyer, company)
    if seller and buyer and company.name:
        # Both parties carry an identifier of ours (test files reuse one VAT number for both):
        # our exact name, where exactly one party has it, settles it.
        ours = _name_key(company.name)
        seller = _name_key(document.seller.name) == ours
        buyer = _name_key(document.buyer.name) == ours
        if not (seller or buyer):
            seller = buyer = True
    if seller and buyer:
        raise EInvoiceError(
            ErrorCode.EINVOICE_NOT_OURS,
            f"both the seller {_describe(document.seller)} and the buyer "
            f"{_describe(document.buyer)} match our company's identifiers: invsync cannot tell "
            "a sale from a purchase",
            field="BG-4",
        )
    if not seller and not buyer:
        raise EInvoiceError(
            ErrorCode.EINVOICE_NOT_OURS,
            f"neither the seller {_describe(document.seller)} nor the buyer "
            f"{_describe(document.buyer)} is our company (identifiers: "
            f"{', '.join(company.identifiers) or 'none given'})",
            field="BG-7",
        )
    return seller


def partner_of(party: Party) -> Partner:
    company_number = None
    source_id = None
    for identifier in party.legal_ids:
        compact = _compact(identifier.value)
        if (
            identifier.scheme in ("0002", "0009")
            or stdnum_siret.is_valid(compact)
            or (len(compact) == 9 and stdnum_siren.is_valid(compact))
        ):
            company_number = compact
            source_id = f"{'siret' if len(compact) == 14 else 'siren'}:{compact}"
            break
    if company_number is None and party.legal_ids:
        first = party.legal_ids[0]
        company_number = first.value
        source_id = f"legal:{first.scheme or ''}:{_compact(first.value)}"
    vat = _compact(party.vat_ids[0]) if party.vat_ids else None
    if vat:
        source_id = f"vat:{vat}"
    elif source_id is None and party.other_ids:
        first = party.other_ids[0]
        source_id = f"id:{first.scheme or ''}:{_compact(first.value)}"
    elif source_id is None and party.tax_numbers:
        source_id = f"tax:{_compact(party.tax_numbers[0])}"
    elif source_id is None and party.assigned_ids:
        source_id = f"ref:{_compact(party.assigned_ids[0])}"
    if source_id is None:
        source_id = f"name:{_name_key(party.name)}"
    return Partner(
        source_id=source_id[:100],
        name=party.name,
        vat_number=vat,
        company_number=company_number,
        country=party.country,
        email=party.email,
        address=party.address,
    )


def invoice_source_id(document: Document) -> str:
    """Stable per seller + number + issue date: the same invoice received twice is one record."""
    seller = document.seller
    seller_key = _compact(seller.vat_ids[0]) if seller.vat_ids else partner_of(seller).source_id
    digest = hashlib.sha256(
        "\x1f".join((seller_key, document.number, document.issue_date.isoformat())).encode()
    ).hexdigest()
    return f"einvoice:{digest[:40]}"


def _rate_text(rate: Decimal | None) -> str:
    return "" if rate is None else format(rate.normalize(), "f")


def tax_key(category: str | None, rate: Decimal | None) -> str | None:
    """The source tax id an e-invoice line and its breakdown row share: category and rate
    (``S/20``, ``AE/0``), so that a flow may map reverse charge apart from a plain 0 %."""
    if not category:
        return None
    return f"{category.upper()}/{_rate_text(_rate_or_zero(category, rate)) or '?'}"


def _rate_or_zero(category: str | None, rate: Decimal | None) -> Decimal | None:
    if rate is None and category and CATEGORY_KINDS.get(category.upper()) is not TaxKind.STANDARD:
        return ZERO
    return rate


def _kind(category: str | None, where: str, field: str = "BT-151") -> TaxKind:
    if not category:
        return TaxKind.STANDARD
    kind = CATEGORY_KINDS.get(category.upper())
    if kind is None:
        raise invalid(
            f"{where}: VAT category {category!r} is not one invsync knows (S, Z, E, AE, K, G, O, "
            "L, M)",
            field=field,
            rule="UNCL5305",
        )
    return kind


@dataclass
class _Draft:
    description: str
    quantity: Decimal
    unit_price: Decimal
    untaxed: Decimal
    discount: Decimal
    category: str | None
    rate: Decimal | None
    product_code: str | None = None


def build_invoice(
    document: Document, *, sale: bool, has_attachment: bool
) -> tuple[Invoice, list[str]]:
    """The canonical invoice and the notices (what was accepted that a person should know)."""
    notices: list[str] = []
    sign = Decimal(1)
    t = document.totals
    refund = document.type_code in CREDIT_NOTE_CODES or document.credit_note_syntax
    type_word = TYPE_WORDS.get(document.type_code, f"type {document.type_code}")
    if t.grand_total < 0 or (t.grand_total == 0 and t.tax_basis_total < 0):
        # A credit note written as an invoice with negative amounts (or the reverse): the
        # canonical invoice gives refunds as positive amounts and lets the type say which way.
        sign = Decimal(-1)
        refund = not refund
        notices.append(
            f"type code {document.type_code} ({type_word}) with a negative total "
            f"{format(t.grand_total, 'f')}: read as a {'credit note' if refund else 'invoice'} "
            f"of {format(-t.grand_total, 'f')}"
        )
    if document.type_code in ("389", "261"):
        notices.append(f"{type_word}: issued by the buyer on the seller's behalf")
    if document.skipped_line_ids:
        notices.append(
            f"lines {', '.join(document.skipped_line_ids)} are GROUP or INFORMATION lines "
            "(EXTENDED): outside the totals, not booked"
        )
    if document.type_code == "384":
        notices.append("corrective invoice: it corrects an earlier invoice (BT-25)")

    drafts: list[_Draft] = []
    if document.lines:
        for line in document.lines:
            unit_price = line.net_price
            if unit_price is not None and line.price_base_quantity not in (None, ZERO):
                unit_price = unit_price / line.price_base_quantity
            drafts.append(
                _Draft(
                    description=line.name,
                    quantity=line.quantity * sign,
                    unit_price=line.net_amount if unit_price is None else unit_price,
                    untaxed=line.net_amount * sign,
                    discount=line.allowances * sign,
                    category=line.category,
                    rate=line.rate,
                    product_code=line.product_code,
                )
            )
            if line.net_price is not None and line.quantity:
                product = quantize_money(line.quantity * unit_price, document.currency)
                gross = product - line.allowances + line.charges
                if gross != line.net_amount:
                    notices.append(
                        f"line {line.line_id}: quantity × net price − allowances + charges make "
                        f"{format(gross, 'f')}, the line states {format(line.net_amount, 'f')}; "
                        "the stated amount was kept"
                    )
        # Document-level allowances and charges become lines so that the lines add up to BT-109
        # (line allowances are already inside each line's net amount, BT-131).
        for ac in document.allowances_charges:
            amount = (ac.amount if ac.is_charge else -ac.amount) * sign
            drafts.append(
                _Draft(
                    description=ac.reason,
                    quantity=Decimal(1),
                    unit_price=amount,
                    untaxed=amount,
                    discount=ZERO,
                    category=ac.category,
                    rate=ac.rate,
                )
            )
    elif document.vat_rows:
        # MINIMUM and BASIC WL carry no lines: one line per VAT breakdown row.
        profile = PROFILE_NAMES.get(document.profile or "", "this")
        notices.append(
            f"the {profile} profile has no invoice lines: one line per VAT breakdown row"
        )
        for row in document.vat_rows:
            rate_text = f" {_rate_text(row.rate)} %" if row.rate is not None else ""
            drafts.append(
                _Draft(
                    description=(
                        f"VAT {row.category}{rate_text} (no lines in the {profile} profile)"
                    ),
                    quantity=Decimal(1),
                    unit_price=row.base * sign,
                    untaxed=row.base * sign,
                    discount=ZERO,
                    category=row.category,
                    rate=row.rate,
                )
            )
    else:
        notices.append(
            "the invoice has neither lines nor a VAT breakdown (MINIMUM profile): one line "
            "carries the total without VAT and the VAT total, at an unknown VAT rate"
        )

    taxes = tuple(
        TaxBreakdown(
            base=row.base * sign,
            amount=row.amount * sign,
            rate=_rate_or_zero(row.category, row.rate),
            tax_id=tax_key(row.category, row.rate),
            kind=_kind(row.category, f"VAT breakdown row {index}", "BT-118"),
            category=row.category.upper(),
        )
        for index, row in enumerate(document.vat_rows, start=1)
    )
    lines = _lines(document, drafts, taxes, sign)
    partner = partner_of(document.buyer if sale else document.seller)
    if sale:
        invoice_type = InvoiceType.CUSTOMER_REFUND if refund else InvoiceType.CUSTOMER_INVOICE
    else:
        invoice_type = InvoiceType.SUPPLIER_REFUND if refund else InvoiceType.SUPPLIER_INVOICE
    invoice = Invoice(
        source_id=invoice_source_id(document),
        number=document.number,
        type=invoice_type,
        issue_date=document.issue_date,
        due_date=document.due_date,
        currency=document.currency,
        untaxed_amount=t.tax_basis_total * sign,
        tax_amount=t.tax_total * sign,
        total=t.grand_total * sign,
        partner=partner,
        lines=lines,
        has_attachment=has_attachment,
        taxes=taxes,
        payable_amount=t.payable * sign,
        prepaid_amount=None if t.prepaid is None else t.prepaid * sign,
    )
    return invoice, notices


def _lines(
    document: Document, drafts: list[_Draft], taxes: tuple[TaxBreakdown, ...], sign: Decimal
) -> tuple[InvoiceLine, ...]:
    t = document.totals
    if not drafts:
        return (
            InvoiceLine(
                description=f"Invoice {document.number} (no lines, no VAT breakdown)",
                quantity=Decimal(1),
                unit_price=t.tax_basis_total * sign,
                untaxed_amount=t.tax_basis_total * sign,
                tax_amount=t.tax_total * sign,
                total=t.grand_total * sign,
            ),
        )
    line_taxes = _allocate(document, drafts, taxes)
    return tuple(
        InvoiceLine(
            description=draft.description,
            quantity=draft.quantity,
            unit_price=draft.unit_price,
            untaxed_amount=draft.untaxed,
            tax_amount=tax,
            total=draft.untaxed + tax,
            discount_amount=draft.discount,
            tax_rate=_rate_or_zero(draft.category, draft.rate),
            tax_id=tax_key(draft.category, draft.rate),
            product_code=draft.product_code,
            tax_kind=_kind(draft.category, f"line {index + 1}"),
        )
        for index, (draft, tax) in enumerate(zip(drafts, line_taxes, strict=True))
    )


def _allocate(
    document: Document, drafts: list[_Draft], taxes: tuple[TaxBreakdown, ...]
) -> list[Decimal]:
    """Each line's VAT: its share of its breakdown row's amount, in proportion to its base, the
    cents left by rounding on the largest line; so the lines' VAT adds up to each row exactly."""
    result = [ZERO] * len(drafts)
    groups: dict[str | None, list[int]] = defaultdict(list)
    for index, draft in enumerate(drafts):
        groups[tax_key(draft.category, draft.rate)].append(index)
    by_key = {tax.tax_id: tax for tax in taxes}
    for key, indexes in groups.items():
        row = by_key.get(key)
        if row is None:
            for index in indexes:
                draft = drafts[index]
                rate = draft.rate if _kind(draft.category, "line") is TaxKind.STANDARD else ZERO
                result[index] = (
                    ZERO
                    if rate is None
                    else quantize_money(draft.untaxed * rate / 100, document.currency)
                )
            continue
        base = sum((drafts[index].untaxed for index in indexes), ZERO)
        largest = max(indexes, key=lambda index: abs(drafts[index].untaxed))
        if base == 0:
            result[largest] = row.amount
            continue
        for index in indexes:
            share = (row.amount * drafts[index].untaxed / base).quantize(
                Decimal(1).scaleb(-max(2, -row.amount.as_tuple().exponent)),
                rounding=ROUND_HALF_UP,
            )
            result[index] = share
        result[largest] += row.amount - sum((result[index] for index in indexes), ZERO)
    return result
