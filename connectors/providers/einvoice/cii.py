"""UN/CEFACT Cross Industry Invoice: Factur-X / ZUGFeRD 2.x / XRechnung CII (D16B) and ZUGFeRD 1.0.

ZUGFeRD 1.0 is the same model under older element names (``HeaderExchangedDocument``,
``ApplicableSupplyChainTradeSettlement``, ``ApplicablePercent``...): one reader, two name tables.
"""

from __future__ import annotations

from dataclasses import dataclass
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

CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
ZUGFERD1_NS = "urn:ferd:CrossIndustryDocument:invoice:1p0"


@dataclass(frozen=True)
class _Names:
    ns: dict[str, str]
    context: str
    header: str
    transaction: str
    agreement: str
    settlement: str
    summation: str
    line_agreement: str
    line_delivery: str
    line_settlement: str
    line_summation: str
    rate: str


_D16B = _Names(
    ns={
        "rsm": CII_NS,
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
        "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    },
    context="rsm:ExchangedDocumentContext",
    header="rsm:ExchangedDocument",
    transaction="rsm:SupplyChainTradeTransaction",
    agreement="ram:ApplicableHeaderTradeAgreement",
    settlement="ram:ApplicableHeaderTradeSettlement",
    summation="ram:SpecifiedTradeSettlementHeaderMonetarySummation",
    line_agreement="ram:SpecifiedLineTradeAgreement",
    line_delivery="ram:SpecifiedLineTradeDelivery",
    line_settlement="ram:SpecifiedLineTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementLineMonetarySummation",
    rate="ram:RateApplicablePercent",
)
_ZUGFERD1 = _Names(
    ns={
        "rsm": ZUGFERD1_NS,
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12",
        "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15",
    },
    context="rsm:SpecifiedExchangedDocumentContext",
    header="rsm:HeaderExchangedDocument",
    transaction="rsm:SpecifiedSupplyChainTradeTransaction",
    agreement="ram:ApplicableSupplyChainTradeAgreement",
    settlement="ram:ApplicableSupplyChainTradeSettlement",
    summation="ram:SpecifiedTradeSettlementMonetarySummation",
    line_agreement="ram:SpecifiedSupplyChainTradeAgreement",
    line_delivery="ram:SpecifiedSupplyChainTradeDelivery",
    line_settlement="ram:SpecifiedSupplyChainTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementMonetarySummation",
    rate="ram:ApplicablePercent",
)

# The Factur-X profile in BT-24 (GuidelineSpecifiedDocumentContextParameter), by its last word.
_PROFILES = {
    "minimum": "minimum",
    "basicwl": "basicwl",
    "basic": "basic",
    "en16931": "en16931",
    "extended": "extended",
    "comfort": "en16931",  # ZUGFeRD 1.0 COMFORT
}


def _profile(guideline: str) -> str | None:
    lowered = guideline.lower()
    if "xrechnung" in lowered:
        return "en16931"
    for part in reversed(lowered.replace("#", ":").split(":")):
        if part in _PROFILES:
            return _PROFILES[part]
        if part == "2017" and "en16931" in lowered:
            return "en16931"
    return None


class _Reader:
    def __init__(self, root: etree._Element, names: _Names) -> None:
        self.root = root
        self.n = names

    def find(self, node: etree._Element | None, path: str) -> etree._Element | None:
        if node is None:
            return None
        found = node.find(path, self.n.ns)
        return found

    def findall(self, node: etree._Element | None, path: str) -> list[etree._Element]:
        return [] if node is None else node.findall(path, self.n.ns)

    def text(self, node: etree._Element | None, path: str) -> str | None:
        return text(self.find(node, path))

    def amount(self, node: etree._Element | None, path: str, field: str) -> Decimal | None:
        return decimal_of(self.find(node, path), field)

    def date(self, node: etree._Element | None, path: str, field: str):
        element = self.find(node, path)
        if element is None:
            return None
        return date_of(text(element), field, fmt=element.get("format"))


def read_cii(root: etree._Element) -> Document:
    syntax = (
        Syntax.ZUGFERD1 if root.tag == f"{{{ZUGFERD1_NS}}}CrossIndustryDocument" else Syntax.CII
    )
    n = _ZUGFERD1 if syntax is Syntax.ZUGFERD1 else _D16B
    r = _Reader(root, n)

    guideline = r.text(root, f"{n.context}/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")
    header = r.find(root, n.header)
    if header is None:
        raise invalid(
            f"the document has no {n.header.split(':')[1]} (BT-1, BT-2, BT-3)", field="BT-1"
        )
    number = required(r.text(header, "ram:ID"), "BT-1", "invoice number")
    type_code = required(r.text(header, "ram:TypeCode"), "BT-3", "invoice type code")
    issue_date = required(
        r.date(header, "ram:IssueDateTime/udt:DateTimeString", "BT-2"), "BT-2", "issue date"
    )

    transaction = r.find(root, n.transaction)
    if transaction is None:
        raise invalid(f"the document has no {n.transaction.split(':')[1]}", field="BG-22")
    agreement = r.find(transaction, n.agreement)
    settlement = r.find(transaction, n.settlement)
    if settlement is None:
        raise invalid(f"the document has no {n.settlement.split(':')[1]}", field="BG-22")

    currency = required(r.text(settlement, "ram:InvoiceCurrencyCode"), "BT-5", "currency")
    due_date = r.date(
        settlement, "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString", "BT-9"
    )
    seller = _party(r, r.find(agreement, "ram:SellerTradeParty"), "BG-4", "seller")
    buyer = _party(r, r.find(agreement, "ram:BuyerTradeParty"), "BG-7", "buyer")

    vat_rows = tuple(
        VatRow(
            category=required(r.text(tax, "ram:CategoryCode"), "BT-118", "VAT category"),
            rate=r.amount(tax, n.rate, "BT-119"),
            base=required(r.amount(tax, "ram:BasisAmount", "BT-116"), "BT-116", "VAT base"),
            amount=required(
                r.amount(tax, "ram:CalculatedAmount", "BT-117"), "BT-117", "VAT amount"
            ),
            exemption_reason=r.text(tax, "ram:ExemptionReason"),
        )
        for tax in r.findall(settlement, "ram:ApplicableTradeTax")
    )
    allowances_charges = tuple(
        _allowance_charge(r, node)
        for node in r.findall(settlement, "ram:SpecifiedTradeAllowanceCharge")
    )
    summation = r.find(settlement, n.summation)
    if summation is None:
        raise invalid("the document states no totals (BG-22)", field="BG-22")
    totals = Totals(
        line_total=r.amount(summation, "ram:LineTotalAmount", "BT-106"),
        allowance_total=r.amount(summation, "ram:AllowanceTotalAmount", "BT-107"),
        charge_total=r.amount(summation, "ram:ChargeTotalAmount", "BT-108"),
        tax_basis_total=required(
            r.amount(summation, "ram:TaxBasisTotalAmount", "BT-109"),
            "BT-109",
            "total without VAT",
        ),
        tax_total=_tax_total(r, summation, currency),
        grand_total=required(
            r.amount(summation, "ram:GrandTotalAmount", "BT-112"), "BT-112", "total with VAT"
        ),
        prepaid=r.amount(summation, "ram:TotalPrepaidAmount", "BT-113"),
        rounding=r.amount(summation, "ram:RoundingAmount", "BT-114"),
        payable=required(
            r.amount(summation, "ram:DuePayableAmount", "BT-115"), "BT-115", "amount due"
        ),
    )
    lines: list[Line] = []
    skipped: list[str] = []
    for index, item in enumerate(r.findall(transaction, "ram:IncludedSupplyChainTradeLineItem")):
        # EXTENDED groups lines: a GROUP line sums its DETAIL lines and an INFORMATION line
        # carries no amount of the invoice; BT-106 adds up the DETAIL lines only.
        status = r.text(item, "ram:AssociatedDocumentLineDocument/ram:LineStatusReasonCode")
        if status and status.upper() in ("GROUP", "INFORMATION"):
            skipped.append(
                r.text(item, "ram:AssociatedDocumentLineDocument/ram:LineID") or str(index + 1)
            )
            continue
        lines.append(_line(r, item, index))
    return Document(
        syntax=syntax,
        profile=_profile(guideline or ""),
        guideline=guideline or "",
        number=number,
        type_code=type_code,
        issue_date=issue_date,
        due_date=due_date,
        currency=currency.upper(),
        seller=seller,
        buyer=buyer,
        lines=tuple(lines),
        allowances_charges=allowances_charges,
        vat_rows=vat_rows,
        totals=totals,
        skipped_line_ids=tuple(skipped),
    )


def _tax_total(r: _Reader, summation: etree._Element, currency: str) -> Decimal:
    """BT-110: the TaxTotalAmount in the invoice currency (BT-111, in the VAT accounting
    currency, may stand beside it with another currencyID). Absent is zero (BR-CO-15 holds)."""
    candidates = r.findall(summation, "ram:TaxTotalAmount")
    for node in candidates:
        if (node.get("currencyID") or currency).upper() == currency.upper():
            return decimal_of(node, "BT-110") or Decimal("0")
    if candidates:
        return decimal_of(candidates[0], "BT-110") or Decimal("0")
    return Decimal("0")


def _indicator(r: _Reader, node: etree._Element, field: str) -> bool:
    value = (r.text(node, "ram:ChargeIndicator/udt:Indicator") or "").lower()
    if value not in ("true", "false"):
        raise invalid(f"{field} ChargeIndicator must be true or false, got {value!r}", field=field)
    return value == "true"


def _allowance_charge(r: _Reader, node: etree._Element) -> AllowanceCharge:
    is_charge = _indicator(r, node, "BG-20/BG-21")
    field = "BT-99" if is_charge else "BT-92"
    return AllowanceCharge(
        is_charge=is_charge,
        amount=required(r.amount(node, "ram:ActualAmount", field), field, "amount"),
        reason=r.text(node, "ram:Reason") or ("Charge" if is_charge else "Allowance"),
        category=r.text(node, "ram:CategoryTradeTax/ram:CategoryCode"),
        rate=r.amount(node, f"ram:CategoryTradeTax/{r.n.rate}", "BT-96"),
    )


def _line(r: _Reader, item: etree._Element, index: int) -> Line:
    n = r.n
    line_id = r.text(item, "ram:AssociatedDocumentLineDocument/ram:LineID") or str(index + 1)
    where = f"line {line_id}"
    agreement = r.find(item, n.line_agreement)
    settlement = r.find(item, n.line_settlement)
    quantity = r.amount(item, f"{n.line_delivery}/ram:BilledQuantity", f"BT-129 ({where})")
    net_amount = r.amount(
        settlement, f"{n.line_summation}/ram:LineTotalAmount", f"BT-131 ({where})"
    )
    allowances = charges = Decimal("0")
    for node in r.findall(settlement, "ram:SpecifiedTradeAllowanceCharge"):
        amount = r.amount(node, "ram:ActualAmount", f"BT-136 ({where})") or Decimal("0")
        if _indicator(r, node, f"BG-27/BG-28 ({where})"):
            charges += amount
        else:
            allowances += amount
    product = r.find(item, "ram:SpecifiedTradeProduct")
    return Line(
        line_id=line_id,
        name=r.text(product, "ram:Name") or r.text(product, "ram:Description") or f"Line {line_id}",
        quantity=Decimal("1") if quantity is None else quantity,
        net_amount=required(net_amount, f"BT-131 ({where})", "line net amount"),
        net_price=r.amount(
            agreement, "ram:NetPriceProductTradePrice/ram:ChargeAmount", f"BT-146 ({where})"
        ),
        price_base_quantity=r.amount(
            agreement, "ram:NetPriceProductTradePrice/ram:BasisQuantity", f"BT-149 ({where})"
        ),
        category=r.text(settlement, "ram:ApplicableTradeTax/ram:CategoryCode"),
        rate=r.amount(settlement, f"ram:ApplicableTradeTax/{n.rate}", f"BT-152 ({where})"),
        product_code=r.text(product, "ram:SellerAssignedID"),
        allowances=allowances,
        charges=charges,
    )


def _party(r: _Reader, node: etree._Element | None, group: str, role: str) -> Party:
    if node is None:
        raise invalid(f"the invoice names no {role} ({group})", field=group)
    name = r.text(node, "ram:Name")
    if not name:
        raise invalid(
            f"the {role}'s name ({'BT-27' if role == 'seller' else 'BT-44'}) is missing",
            field="BT-27" if role == "seller" else "BT-44",
        )
    vat_ids: list[str] = []
    tax_numbers: list[str] = []
    for registration in r.findall(node, "ram:SpecifiedTaxRegistration/ram:ID"):
        value = text(registration)
        if not value:
            continue
        if (registration.get("schemeID") or "VA").upper() == "VA":
            vat_ids.append(value)
        else:
            tax_numbers.append(value)
    legal_ids = [
        Identifier(value, element.get("schemeID"))
        for element in r.findall(node, "ram:SpecifiedLegalOrganization/ram:ID")
        if (value := text(element))
    ]
    other_ids: list[Identifier] = []
    assigned_ids: list[str] = []
    for path in ("ram:ID", "ram:GlobalID"):
        for element in r.findall(node, path):
            if not (value := text(element)):
                continue
            if element.get("schemeID"):
                other_ids.append(Identifier(value, element.get("schemeID")))
            else:
                assigned_ids.append(value)
    email = None
    for element in r.findall(node, "ram:URIUniversalCommunication/ram:URIID"):
        value = text(element)
        if not value:
            continue
        if (element.get("schemeID") or "").upper() in ("EM", "SMTP") or "@" in value:
            email = email or value
        else:
            other_ids.append(Identifier(value, element.get("schemeID")))
    email = email or r.text(
        node, "ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID"
    )
    address_node = r.find(node, "ram:PostalTradeAddress")
    address_parts = [
        r.text(address_node, path) for path in ("ram:LineOne", "ram:LineTwo", "ram:LineThree")
    ]
    city = " ".join(
        part
        for part in (r.text(address_node, "ram:PostcodeCode"), r.text(address_node, "ram:CityName"))
        if part
    )
    address = ", ".join(part for part in [*address_parts, city] if part) or None
    return Party(
        name=name,
        vat_ids=tuple(vat_ids),
        legal_ids=tuple(legal_ids),
        other_ids=tuple(other_ids),
        tax_numbers=tuple(tax_numbers),
        assigned_ids=tuple(assigned_ids),
        country=(r.text(address_node, "ram:CountryID") or "").upper() or None,
        address=address,
        email=email,
    )
