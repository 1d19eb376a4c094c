"""UBL 2.1 ``Invoice`` and ``CreditNote`` (EN16931, Peppol BIS 3, XRechnung UBL)."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from connectors.providers.einvoice.document import (
    AllowanceCharge,
    Document,
    Identifier,
    Line,
    Party,
    Syntax,
    Totals,
    VatRow,
    invalid,
)
from connectors.providers.einvoice.xmlread import date_of, decimal_of, required, text

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def _find(node: etree._Element | None, path: str) -> etree._Element | None:
    return None if node is None else node.find(path, NS)


def _findall(node: etree._Element | None, path: str) -> list[etree._Element]:
    return [] if node is None else node.findall(path, NS)


def _text(node: etree._Element | None, path: str) -> str | None:
    return text(_find(node, path))


def _amount(node: etree._Element | None, path: str, field: str) -> Decimal | None:
    return decimal_of(_find(node, path), field)


def read_ubl(root: etree._Element) -> Document:
    credit_note = root.tag == f"{{{CREDIT_NOTE_NS}}}CreditNote"
    line_tag = "cac:CreditNoteLine" if credit_note else "cac:InvoiceLine"
    quantity_tag = "cbc:CreditedQuantity" if credit_note else "cbc:InvoicedQuantity"

    number = required(_text(root, "cbc:ID"), "BT-1", "invoice number")
    type_code = required(
        _text(root, "cbc:CreditNoteTypeCode" if credit_note else "cbc:InvoiceTypeCode"),
        "BT-3",
        "invoice type code",
    )
    issue_date = required(date_of(_text(root, "cbc:IssueDate"), "BT-2"), "BT-2", "issue date")
    due_date = date_of(_text(root, "cbc:DueDate"), "BT-9") or date_of(
        _text(root, "cac:PaymentMeans/cbc:PaymentDueDate"), "BT-9"
    )
    currency = required(_text(root, "cbc:DocumentCurrencyCode"), "BT-5", "currency").upper()

    seller = _party(_find(root, "cac:AccountingSupplierParty/cac:Party"), "BG-4", "seller")
    buyer = _party(_find(root, "cac:AccountingCustomerParty/cac:Party"), "BG-7", "buyer")

    # BT-110 is the TaxTotal in the document currency; a second one (BT-111) may give the VAT in
    # the accounting currency, without subtotals.
    tax_totals = _findall(root, "cac:TaxTotal")
    tax_total_node = next(
        (
            node
            for node in tax_totals
            if (_find(node, "cbc:TaxAmount") is not None)
            and (_find(node, "cbc:TaxAmount").get("currencyID") or currency).upper() == currency
        ),
        tax_totals[0] if tax_totals else None,
    )
    tax_total = _amount(tax_total_node, "cbc:TaxAmount", "BT-110") or Decimal("0")
    vat_rows = tuple(
        VatRow(
            category=required(_text(sub, "cac:TaxCategory/cbc:ID"), "BT-118", "VAT category"),
            rate=_amount(sub, "cac:TaxCategory/cbc:Percent", "BT-119"),
            base=required(_amount(sub, "cbc:TaxableAmount", "BT-116"), "BT-116", "VAT base"),
            amount=required(_amount(sub, "cbc:TaxAmount", "BT-117"), "BT-117", "VAT amount"),
            exemption_reason=_text(sub, "cac:TaxCategory/cbc:TaxExemptionReason"),
        )
        for sub in _findall(tax_total_node, "cac:TaxSubtotal")
    )
    allowances_charges = tuple(
        _allowance_charge(node, "cac:TaxCategory") for node in _findall(root, "cac:AllowanceCharge")
    )
    monetary = _find(root, "cac:LegalMonetaryTotal")
    if monetary is None:
        raise invalid("the document states no totals (BG-22: LegalMonetaryTotal)", field="BG-22")
    totals = Totals(
        line_total=_amount(monetary, "cbc:LineExtensionAmount", "BT-106"),
        allowance_total=_amount(monetary, "cbc:AllowanceTotalAmount", "BT-107"),
        charge_total=_amount(monetary, "cbc:ChargeTotalAmount", "BT-108"),
        tax_basis_total=required(
            _amount(monetary, "cbc:TaxExclusiveAmount", "BT-109"), "BT-109", "total without VAT"
        ),
        tax_total=tax_total,
        grand_total=required(
            _amount(monetary, "cbc:TaxInclusiveAmount", "BT-112"), "BT-112", "total with VAT"
        ),
        prepaid=_amount(monetary, "cbc:PrepaidAmount", "BT-113"),
        rounding=_amount(monetary, "cbc:PayableRoundingAmount", "BT-114"),
        payable=required(_amount(monetary, "cbc:PayableAmount", "BT-115"), "BT-115", "amount due"),
    )
    lines = tuple(
        _line(node, index, quantity_tag) for index, node in enumerate(_findall(root, line_tag))
    )
    guideline = _text(root, "cbc:CustomizationID") or ""
    return Document(
        syntax=Syntax.UBL,
        profile="en16931" if "en16931" in guideline.lower() else None,
        guideline=guideline,
        number=number,
        type_code=type_code,
        issue_date=issue_date,
        due_date=due_date,
        currency=currency,
        seller=seller,
        buyer=buyer,
        lines=lines,
        allowances_charges=allowances_charges,
        vat_rows=vat_rows,
        totals=totals,
        credit_note_syntax=credit_note,
    )


def _charge_indicator(node: etree._Element, field: str) -> bool:
    value = (_text(node, "cbc:ChargeIndicator") or "").lower()
    if value not in ("true", "false"):
        raise invalid(f"{field} ChargeIndicator must be true or false, got {value!r}", field=field)
    return value == "true"


def _allowance_charge(node: etree._Element, tax_path: str) -> AllowanceCharge:
    is_charge = _charge_indicator(node, "BG-20/BG-21")
    field = "BT-99" if is_charge else "BT-92"
    return AllowanceCharge(
        is_charge=is_charge,
        amount=required(_amount(node, "cbc:Amount", field), field, "amount"),
        reason=_text(node, "cbc:AllowanceChargeReason") or ("Charge" if is_charge else "Allowance"),
        category=_text(node, f"{tax_path}/cbc:ID"),
        rate=_amount(node, f"{tax_path}/cbc:Percent", "BT-96"),
    )


def _line(node: etree._Element, index: int, quantity_tag: str) -> Line:
    line_id = _text(node, "cbc:ID") or str(index + 1)
    where = f"line {line_id}"
    allowances = charges = Decimal("0")
    for charge in _findall(node, "cac:AllowanceCharge"):
        amount = _amount(charge, "cbc:Amount", f"BT-136 ({where})") or Decimal("0")
        if _charge_indicator(charge, f"BG-27/BG-28 ({where})"):
            charges += amount
        else:
            allowances += amount
    item = _find(node, "cac:Item")
    quantity = _amount(node, quantity_tag, f"BT-129 ({where})")
    return Line(
        line_id=line_id,
        name=_text(item, "cbc:Name") or _text(item, "cbc:Description") or f"Line {line_id}",
        quantity=Decimal("1") if quantity is None else quantity,
        net_amount=required(
            _amount(node, "cbc:LineExtensionAmount", f"BT-131 ({where})"),
            f"BT-131 ({where})",
            "line net amount",
        ),
        net_price=_amount(node, "cac:Price/cbc:PriceAmount", f"BT-146 ({where})"),
        price_base_quantity=_amount(node, "cac:Price/cbc:BaseQuantity", f"BT-149 ({where})"),
        category=_text(item, "cac:ClassifiedTaxCategory/cbc:ID"),
        rate=_amount(item, "cac:ClassifiedTaxCategory/cbc:Percent", f"BT-152 ({where})"),
        product_code=_text(item, "cac:SellersItemIdentification/cbc:ID"),
        allowances=allowances,
        charges=charges,
    )


def _party(node: etree._Element | None, group: str, role: str) -> Party:
    if node is None:
        raise invalid(f"the invoice names no {role} ({group})", field=group)
    name_field = "BT-27" if role == "seller" else "BT-44"
    name = _text(node, "cac:PartyLegalEntity/cbc:RegistrationName") or _text(
        node, "cac:PartyName/cbc:Name"
    )
    if not name:
        raise invalid(f"the {role}'s name ({name_field}) is missing", field=name_field)
    vat_ids: list[str] = []
    tax_numbers: list[str] = []
    for scheme in _findall(node, "cac:PartyTaxScheme"):
        value = _text(scheme, "cbc:CompanyID")
        if not value:
            continue
        if (_text(scheme, "cac:TaxScheme/cbc:ID") or "VAT").upper() == "VAT":
            vat_ids.append(value)
        else:
            tax_numbers.append(value)
    legal_ids = [
        Identifier(value, element.get("schemeID"))
        for element in _findall(node, "cac:PartyLegalEntity/cbc:CompanyID")
        if (value := text(element))
    ]
    other_ids: list[Identifier] = []
    assigned_ids: list[str] = []
    for element in _findall(node, "cac:PartyIdentification/cbc:ID"):
        if not (value := text(element)):
            continue
        if element.get("schemeID"):
            other_ids.append(Identifier(value, element.get("schemeID")))
        else:
            assigned_ids.append(value)
    email = _text(node, "cac:Contact/cbc:ElectronicMail")
    endpoint = _find(node, "cbc:EndpointID")
    if endpoint is not None and (value := text(endpoint)):
        if (endpoint.get("schemeID") or "").upper() == "EM" or "@" in value:
            email = email or value
        else:
            other_ids.append(Identifier(value, endpoint.get("schemeID")))
    address_node = _find(node, "cac:PostalAddress")
    parts = [
        _text(address_node, "cbc:StreetName"),
        _text(address_node, "cbc:AdditionalStreetName"),
        _text(address_node, "cac:AddressLine/cbc:Line"),
    ]
    city = " ".join(
        part
        for part in (_text(address_node, "cbc:PostalZone"), _text(address_node, "cbc:CityName"))
        if part
    )
    return Party(
        name=name,
        vat_ids=tuple(vat_ids),
        legal_ids=tuple(legal_ids),
        other_ids=tuple(other_ids),
        tax_numbers=tuple(tax_numbers),
        assigned_ids=tuple(assigned_ids),
        country=(_text(address_node, "cac:Country/cbc:IdentificationCode") or "").upper() or None,
        address=", ".join(part for part in [*parts, city] if part) or None,
        email=email,
    )
