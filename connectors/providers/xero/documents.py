"""A posting (the engine's balanced entry) as a Xero document: an invoice or bill
(``ACCREC``/``ACCPAY``, ``/Invoices``) or a credit note (``ACCRECCREDIT``/``ACCPAYCREDIT``,
``/CreditNotes``) whose lines reproduce the posting's amounts and VAT to the cent.

- Each base line (and the rounding line, and a discount line) becomes a line item: the mapped
  account as ``AccountCode``, the mapped VAT code as ``TaxType`` (``NONE`` without one), the net
  amount in the invoice currency as ``UnitAmount`` × 1 (``LineAmountTypes`` ``Exclusive``).
- The VAT lines of one code are spread over that code's line items: each item's
  ``TaxAmount`` is what Xero computes (amount × rate, half up to the cent), and what the
  invoice states beyond that sum goes on the code's largest item; an item's ``TaxAmount`` is
  sent only where it differs from Xero's own, so each tax and the total equal the source's.
- The third-party line is the document itself (Xero books the receivable/payable control account
  from the contact); self-assessed VAT (a deductible and a collected line of equal amounts) is
  Xero's reverse-charge tax type's business, not a line.
- The external id: ``Reference`` for sales documents (``ACCREC`` and ``ACCRECCREDIT``: the
  number stays the source's); Xero has no ``Reference`` on bills and supplier credit notes, whose
  number (``InvoiceNumber``/``CreditNoteNumber``, shown as "Reference" in Xero, not unique) holds
  ``"<number> [<external id>]"``.

Pure: no HTTP, no ORM.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.canonical import EntryLine, InvoiceType, Posting, TaxRole
from connectors.errors import ErrorCode, InvsyncError

CENT = Decimal("0.01")
ZERO = Decimal("0")
NO_TAX = "NONE"
INVOICES, CREDIT_NOTES = "Invoices", "CreditNotes"
TYPES = {
    InvoiceType.CUSTOMER_INVOICE: ("ACCREC", INVOICES),
    InvoiceType.SUPPLIER_INVOICE: ("ACCPAY", INVOICES),
    InvoiceType.CUSTOMER_REFUND: ("ACCRECCREDIT", CREDIT_NOTES),
    InvoiceType.SUPPLIER_REFUND: ("ACCPAYCREDIT", CREDIT_NOTES),
}
NUMBER_FIELD = {INVOICES: "InvoiceNumber", CREDIT_NOTES: "CreditNoteNumber"}
ID_FIELD = {INVOICES: "InvoiceID", CREDIT_NOTES: "CreditNoteID"}


def document_type(posting: Posting) -> tuple[str, str]:
    """(Xero's Type, the endpoint) of a posting."""
    return TYPES[posting.invoice_type]


def is_sales(posting: Posting) -> bool:
    return posting.invoice_type in (InvoiceType.CUSTOMER_INVOICE, InvoiceType.CUSTOMER_REFUND)


def keyed_number(number: str, external_id: str) -> str:
    return f"{number} [{external_id}]"[:255]


def key_of(document: Mapping[str, Any], path: str) -> str | None:
    """The external id a document carries (None: not one invsync wrote)."""
    if str(document.get("Type") or "").startswith("ACCREC"):
        return str(document.get("Reference") or "") or None
    number = str(document.get(NUMBER_FIELD[path]) or "")
    if number.endswith("]") and " [" in number:
        return number.rsplit(" [", 1)[1][:-1] or None
    return None


PURCHASE_TYPE = {INVOICES: "ACCPAY", CREDIT_NOTES: "ACCPAYCREDIT"}


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def where_keys(path: str, keys: Mapping[str, tuple[bool, str] | None]) -> str:
    """A ``where`` filter selecting the documents carrying these external ids. ``keys``: each
    external id with (is a sales document, its number) when known — then one equality
    (``Reference`` for sales, the keyed number for purchases) — or None (after a crash: only
    the id is known), then ``Reference`` or a purchase document's number containing it."""
    number = NUMBER_FIELD[path]
    parts = []
    for key, known in keys.items():
        if known is None:
            parts.append(f"Reference=={_quoted(key)}")
            parts.append(f'Type=="{PURCHASE_TYPE[path]}" AND {number}.Contains({_quoted(key)})')
        elif known[0]:
            parts.append(f"Reference=={_quoted(key)}")
        else:
            parts.append(f"{number}=={_quoted(keyed_number(known[1], key))}")
    return " OR ".join(parts)


def _signed(line: EntryLine) -> Decimal:
    """The line's amount in the invoice currency, debit positive."""
    if line.amount_currency is not None:
        return line.amount_currency
    return line.debit - line.credit


def _xero_tax(amount: Decimal, rate: Decimal | None) -> Decimal:
    if not rate:
        return ZERO
    return (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def document_body(
    posting: Posting,
    rates: Mapping[str, Decimal | None],
    *,
    contact_id: str,
    currency_rate: Decimal | None = None,
) -> dict[str, Any]:
    """The Xero document for ``posting``. ``rates``: each TaxType's rate (from ``/TaxRates``).
    Raises InvsyncError when the posting cannot be written as a document."""
    type_, path = document_type(posting)
    partner = [line for line in posting.lines if line.partner]
    if len(partner) != 1:
        raise InvsyncError(
            ErrorCode.LINE_VALIDATION,
            f"Invoice {posting.reference}: a Xero document needs exactly one third-party line.",
        )
    total = _signed(partner[0])
    sign = Decimal(1) if total >= 0 else Decimal(-1)  # document amounts are positive that way
    items: list[dict[str, Any]] = []
    codes: list[str] = []
    taxes: dict[str, Decimal] = {}
    for line in posting.lines:
        if line.partner:
            continue
        amount = -sign * _signed(line)
        if line.tax_role is TaxRole.TAX:
            code = line.vat_code or ""
            taxes[code] = taxes.get(code, ZERO) + amount
            continue
        code = line.vat_code or NO_TAX
        items.append({
            "Description": (line.label or posting.reference)[:4000] or posting.reference,
            "Quantity": 1, "UnitAmount": amount, "LineAmount": amount,
            "AccountCode": line.account, "TaxType": code,
        })  # fmt: skip
        codes.append(code)
    # VAT: each code's amount over its items, Xero's own per-line rounding where it agrees.
    computed = [_xero_tax(i["LineAmount"], rates.get(c)) for i, c in zip(items, codes, strict=True)]
    given = list(computed)
    for code, stated in taxes.items():
        mine = [n for n, c in enumerate(codes) if c == code]
        if not mine:
            if stated == ZERO:
                continue  # self-assessed: deductible and collected cancel out
            raise InvsyncError(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                f"Invoice {posting.reference}: the VAT of code {code!r} has no line of that "
                "tax type to go on in Xero.",
                field="vat",
            )
        residue = stated - sum((computed[n] for n in mine), ZERO)
        largest = max(mine, key=lambda n: abs(items[n]["LineAmount"]))
        given[largest] = computed[largest] + residue
    for n, item in enumerate(items):
        if codes[n] not in taxes and computed[n] != ZERO:
            given[n] = ZERO  # a tax type the invoice charges no VAT on (rounding line...)
        if given[n] != computed[n]:
            item["TaxAmount"] = given[n]
    lines_total = sum((i["LineAmount"] + given[n] for n, i in enumerate(items)), ZERO)
    if not items or lines_total != sign * total:
        raise InvsyncError(
            ErrorCode.AMOUNT_VALIDATION,
            f"Invoice {posting.reference}: its lines and VAT add up to {lines_total}, not to "
            f"its total {sign * total}; Xero would book another total.",
        )
    body: dict[str, Any] = {
        "Type": type_,
        "Contact": {"ContactID": contact_id},
        "Date": posting.date.isoformat(),
        "LineAmountTypes": "Exclusive",
        "LineItems": items,
        "CurrencyCode": posting.currency,
        "Status": "DRAFT" if posting.draft else "AUTHORISED",
    }
    if posting.due_date and path == INVOICES:
        body["DueDate"] = posting.due_date.isoformat()
    if is_sales(posting):
        body[NUMBER_FIELD[path]] = posting.reference[:255]
        body["Reference"] = posting.external_id
    else:
        body[NUMBER_FIELD[path]] = keyed_number(posting.reference, posting.external_id)
    if currency_rate is not None:
        body["CurrencyRate"] = currency_rate
    return body


def jsonable(value: Any) -> Any:
    """``value`` with its Decimals as JSON numbers (Xero's amounts are numbers; a two-decimal
    amount's float prints back as the same decimal)."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent >= 0
            else float(value)
        )
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def document_total(body: Mapping[str, Any], rates: Mapping[str, Decimal | None]) -> Decimal:
    """The document's total as Xero computes it from the lines sent: each line's amount plus its
    TaxAmount, or Xero's own (amount × rate, half up) where none is given."""
    total = ZERO
    for item in body["LineItems"]:
        amount = Decimal(str(item["LineAmount"]))
        tax = item.get("TaxAmount")
        given = Decimal(str(tax)) if tax is not None else None
        total += amount + (
            given if given is not None else _xero_tax(amount, rates.get(item["TaxType"]))
        )
    return total


def currency_rate(posting: Posting) -> Decimal | None:
    """Xero's ``CurrencyRate`` (units of the document's currency per unit of the organisation's)
    from the posting's third-party line, or None in the organisation's currency."""
    if posting.currency.upper() == (posting.company_currency or posting.currency).upper():
        return None
    for line in posting.lines:
        if line.partner and line.amount_currency:
            company = line.debit - line.credit
            if company:
                return (abs(line.amount_currency) / abs(company)).quantize(Decimal("0.000001"))
    return None
