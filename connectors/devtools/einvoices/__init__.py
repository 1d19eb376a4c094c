"""The demo's e-invoices: a few purchase invoices addressed to the demo company, as its suppliers
would send them — a Factur-X PDF, a UN/CEFACT CII XML, a UBL invoice and a UBL credit note
(EN16931). Written here (our own, no third-party sample), dated relative to the sandbox's day so
that they fall in its open fiscal years, and read by the demo's e-invoice inbox flow.

:func:`demo_einvoices` gives ``(file name, bytes)`` pairs; the Factur-X PDF is made with the
``factur-x`` library (which checks the embedded XML against its schema) from a one-page PDF
written here. Every figure is computed once, in :class:`Document`, and written the same way in
every format: the lines, their VAT per rate (rounded half up per rate, as EN16931 rounds the
breakdown), the totals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

from facturx import generate_from_binary

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Party:
    name: str
    siren: str
    vat: str
    street: str
    postcode: str
    city: str
    country: str = "FR"


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal
    price: Decimal
    rate: Decimal

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.price).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Document:
    """One invoice (or credit note) of a supplier to the demo company."""

    file_name: str
    format: str  # "facturx", "cii", "ubl"
    number: str
    days_ago: int
    seller: Party
    lines: tuple[Line, ...]
    credit_note: bool = False

    def issue_date(self, today: dt.date) -> dt.date:
        return today - dt.timedelta(days=self.days_ago)

    def due_date(self, today: dt.date) -> dt.date:
        return self.issue_date(today) + dt.timedelta(days=30)

    @property
    def breakdown(self) -> list[tuple[Decimal, Decimal, Decimal]]:
        """(rate, base, VAT) per rate, in the order the rates first appear."""
        rows: dict[Decimal, Decimal] = {}
        for line in self.lines:
            rows[line.rate] = rows.get(line.rate, Decimal(0)) + line.amount
        return [
            (rate, base, (base * rate / 100).quantize(CENT, ROUND_HALF_UP))
            for rate, base in rows.items()
        ]

    @property
    def untaxed(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return sum((vat for _rate, _base, vat in self.breakdown), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.untaxed + self.tax


# The sellers are suppliers of the invoicing sandbox (same SIREN and VAT number): the first is
# already a party of the accounting database (as "Fournier Électricité"), matched by its VAT
# number; the others are created by the first sync.
FOURNIER = Party(
    "Électricité Générale Fournier SAS", "312345689", "FR07312345689",
    "4 avenue Jean Jaurès", "69007", "Lyon",
)  # fmt: skip
MOREAU = Party("Papeterie Moreau", "398765438", "FR79398765438", "22 rue Mercière", "69002", "Lyon")
ROUX = Party(
    "Transports Roux SA", "444555668", "FR48444555668",
    "15 boulevard de l'Industrie", "69800", "Saint-Priest",
)  # fmt: skip


def _d(value: str) -> Decimal:
    return Decimal(value)


DOCUMENTS = (
    Document(
        "FOURNIER-F2026-118.pdf",
        "facturx",
        "F2026-118",
        24,
        FOURNIER,
        (
            Line("Mise aux normes du tableau électrique", _d("1"), _d("860.00"), _d("20")),
            Line("Remplacement de luminaires LED", _d("12"), _d("38.50"), _d("20")),
        ),
    ),
    Document(
        "MOREAU-FA-7731.xml",
        "cii",
        "FA-7731",
        17,
        MOREAU,
        (
            Line("Ramettes papier A4 80 g (carton de 5)", _d("6"), _d("24.90"), _d("20")),
            Line("Classeurs à levier", _d("20"), _d("3.15"), _d("20")),
            Line("Ouvrages de référence comptable", _d("2"), _d("42.00"), _d("5.5")),
        ),
    ),
    Document(
        "ROUX-2026-0457.xml",
        "ubl",
        "2026-0457",
        9,
        ROUX,
        (Line("Transport de matériel Lyon – Grenoble", _d("1"), _d("385.00"), _d("20")),),
    ),
    Document(
        "MOREAU-AV-0212.xml",
        "ubl",
        "AV-0212",
        5,
        MOREAU,
        (Line("Retour de classeurs à levier", _d("5"), _d("3.15"), _d("20")),),
        credit_note=True,
    ),
)


# The sandbox's French parties all live at this address (sandbox_build.ADDRESSES["FR"]).
SANDBOX_ADDRESS = ("12 rue de la République", "69002", "Lyon")


def company_party(company: dict) -> Party:
    """The demo company as the buyer, from the sandbox manifest's ``company`` (name, SIREN, VAT
    number)."""
    street, postcode, city = SANDBOX_ADDRESS
    return Party(company["name"], company["fr_siren"], company["eu_vat"], street, postcode, city)


def demo_einvoices(today: dt.date, buyer: Party) -> list[tuple[str, bytes]]:
    """The demo's e-invoices addressed to ``buyer``, dated relative to ``today``."""
    files = []
    for document in DOCUMENTS:
        if document.format == "ubl":
            content = ubl(document, today, buyer)
        else:
            content = cii(document, today, buyer)
            if document.format == "facturx":
                content = generate_from_binary(
                    pdf_page(document, today, buyer),
                    content,
                    flavor="factur-x",
                    level="en16931",
                    pdf_metadata={
                        "author": document.seller.name,
                        "keywords": "Factur-X",
                        "title": f"{document.seller.name}: invoice {document.number}",
                        "subject": f"Invoice {document.number}",
                    },
                    lang="fr-FR",
                )
        files.append((document.file_name, content))
    return files


def _amount(value: Decimal) -> str:
    return f"{value.quantize(CENT)}"


def _number(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


# -- UN/CEFACT CII (Factur-X EN16931) --------------------------------------------------------

_CII_NAMESPACES = (
    'xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" '
    'xmlns:ram="urn:un:unece:uncefact:data:standard:'
    'ReusableAggregateBusinessInformationEntity:100" '
    'xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100" '
    'xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100"'
)


def _cii_date(value: dt.date) -> str:
    return f'<udt:DateTimeString format="102">{value:%Y%m%d}</udt:DateTimeString>'


def _cii_party(tag: str, party: Party) -> str:
    return (
        f"<ram:{tag}><ram:Name>{escape(party.name)}</ram:Name>"
        f'<ram:SpecifiedLegalOrganization><ram:ID schemeID="0002">{party.siren}</ram:ID>'
        "</ram:SpecifiedLegalOrganization>"
        f"<ram:PostalTradeAddress><ram:PostcodeCode>{party.postcode}</ram:PostcodeCode>"
        f"<ram:LineOne>{escape(party.street)}</ram:LineOne>"
        f"<ram:CityName>{escape(party.city)}</ram:CityName>"
        f"<ram:CountryID>{party.country}</ram:CountryID></ram:PostalTradeAddress>"
        f'<ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">{party.vat}</ram:ID>'
        f"</ram:SpecifiedTaxRegistration></ram:{tag}>"
    )


def cii(document: Document, today: dt.date, buyer: Party) -> bytes:
    lines = "".join(
        "<ram:IncludedSupplyChainTradeLineItem>"
        f"<ram:AssociatedDocumentLineDocument><ram:LineID>{index}</ram:LineID>"
        "</ram:AssociatedDocumentLineDocument>"
        f"<ram:SpecifiedTradeProduct><ram:Name>{escape(line.description)}</ram:Name>"
        "</ram:SpecifiedTradeProduct>"
        "<ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice>"
        f"<ram:ChargeAmount>{_amount(line.price)}</ram:ChargeAmount>"
        "</ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>"
        "<ram:SpecifiedLineTradeDelivery>"
        f'<ram:BilledQuantity unitCode="C62">{_number(line.quantity)}</ram:BilledQuantity>'
        "</ram:SpecifiedLineTradeDelivery>"
        "<ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode>"
        "<ram:CategoryCode>S</ram:CategoryCode>"
        f"<ram:RateApplicablePercent>{_amount(line.rate)}</ram:RateApplicablePercent>"
        "</ram:ApplicableTradeTax><ram:SpecifiedTradeSettlementLineMonetarySummation>"
        f"<ram:LineTotalAmount>{_amount(line.amount)}</ram:LineTotalAmount>"
        "</ram:SpecifiedTradeSettlementLineMonetarySummation></ram:SpecifiedLineTradeSettlement>"
        "</ram:IncludedSupplyChainTradeLineItem>"
        for index, line in enumerate(document.lines, start=1)
    )
    taxes = "".join(
        f"<ram:ApplicableTradeTax><ram:CalculatedAmount>{_amount(vat)}</ram:CalculatedAmount>"
        f"<ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>{_amount(base)}</ram:BasisAmount>"
        "<ram:CategoryCode>S</ram:CategoryCode>"
        f"<ram:RateApplicablePercent>{_amount(rate)}</ram:RateApplicablePercent>"
        "</ram:ApplicableTradeTax>"
        for rate, base, vat in document.breakdown
    )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rsm:CrossIndustryInvoice {_CII_NAMESPACES}>'
        "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        "<ram:ID>urn:cen.eu:en16931:2017</ram:ID>"
        "</ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>"
        f"<rsm:ExchangedDocument><ram:ID>{escape(document.number)}</ram:ID>"
        f"<ram:TypeCode>{'381' if document.credit_note else '380'}</ram:TypeCode>"
        f"<ram:IssueDateTime>{_cii_date(document.issue_date(today))}</ram:IssueDateTime>"
        "</rsm:ExchangedDocument><rsm:SupplyChainTradeTransaction>"
        f"{lines}<ram:ApplicableHeaderTradeAgreement>"
        f"{_cii_party('SellerTradeParty', document.seller)}"
        f"{_cii_party('BuyerTradeParty', buyer)}</ram:ApplicableHeaderTradeAgreement>"
        "<ram:ApplicableHeaderTradeDelivery/><ram:ApplicableHeaderTradeSettlement>"
        f"<ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>{taxes}"
        "<ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime>"
        f"{_cii_date(document.due_date(today))}</ram:DueDateDateTime>"
        "</ram:SpecifiedTradePaymentTerms><ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        f"<ram:LineTotalAmount>{_amount(document.untaxed)}</ram:LineTotalAmount>"
        f"<ram:TaxBasisTotalAmount>{_amount(document.untaxed)}</ram:TaxBasisTotalAmount>"
        f'<ram:TaxTotalAmount currencyID="EUR">{_amount(document.tax)}</ram:TaxTotalAmount>'
        f"<ram:GrandTotalAmount>{_amount(document.total)}</ram:GrandTotalAmount>"
        f"<ram:DuePayableAmount>{_amount(document.total)}</ram:DuePayableAmount>"
        "</ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        "</ram:ApplicableHeaderTradeSettlement></rsm:SupplyChainTradeTransaction>"
        "</rsm:CrossIndustryInvoice>\n"
    )
    return xml.encode("utf-8")


# -- UBL 2.1 (EN16931) -------------------------------------------------------------------------


def _ubl_party(tag: str, party: Party) -> str:
    return (
        f"<cac:{tag}><cac:Party><cac:PartyName><cbc:Name>{escape(party.name)}</cbc:Name>"
        "</cac:PartyName><cac:PostalAddress>"
        f"<cbc:StreetName>{escape(party.street)}</cbc:StreetName>"
        f"<cbc:CityName>{escape(party.city)}</cbc:CityName>"
        f"<cbc:PostalZone>{party.postcode}</cbc:PostalZone>"
        f"<cac:Country><cbc:IdentificationCode>{party.country}</cbc:IdentificationCode>"
        "</cac:Country></cac:PostalAddress>"
        f"<cac:PartyTaxScheme><cbc:CompanyID>{party.vat}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
        "<cac:PartyLegalEntity>"
        f"<cbc:RegistrationName>{escape(party.name)}</cbc:RegistrationName>"
        f'<cbc:CompanyID schemeID="0002">{party.siren}</cbc:CompanyID>'
        f"</cac:PartyLegalEntity></cac:Party></cac:{tag}>"
    )


def _ubl_category(rate: Decimal, tag: str) -> str:
    return (
        f"<cac:{tag}><cbc:ID>S</cbc:ID><cbc:Percent>{_number(rate)}</cbc:Percent>"
        f"<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:{tag}>"
    )


def ubl(document: Document, today: dt.date, buyer: Party) -> bytes:
    root, line_tag, quantity_tag, type_tag = (
        ("CreditNote", "CreditNoteLine", "CreditedQuantity", "CreditNoteTypeCode")
        if document.credit_note
        else ("Invoice", "InvoiceLine", "InvoicedQuantity", "InvoiceTypeCode")
    )
    eur = 'currencyID="EUR"'
    lines = "".join(
        f"<cac:{line_tag}><cbc:ID>{index}</cbc:ID>"
        f'<cbc:{quantity_tag} unitCode="C62">{_number(line.quantity)}</cbc:{quantity_tag}>'
        f"<cbc:LineExtensionAmount {eur}>{_amount(line.amount)}</cbc:LineExtensionAmount>"
        f"<cac:Item><cbc:Name>{escape(line.description)}</cbc:Name>"
        f"{_ubl_category(line.rate, 'ClassifiedTaxCategory')}</cac:Item>"
        f"<cac:Price><cbc:PriceAmount {eur}>{_amount(line.price)}</cbc:PriceAmount></cac:Price>"
        f"</cac:{line_tag}>"
        for index, line in enumerate(document.lines, start=1)
    )
    subtotals = "".join(
        f"<cac:TaxSubtotal><cbc:TaxableAmount {eur}>{_amount(base)}</cbc:TaxableAmount>"
        f"<cbc:TaxAmount {eur}>{_amount(vat)}</cbc:TaxAmount>"
        f"{_ubl_category(rate, 'TaxCategory')}</cac:TaxSubtotal>"
        for rate, base, vat in document.breakdown
    )
    due = (
        ""
        if document.credit_note
        else f"<cbc:DueDate>{document.due_date(today).isoformat()}</cbc:DueDate>"
    )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" '
        'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
        'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        "<cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>"
        f"<cbc:ID>{escape(document.number)}</cbc:ID>"
        f"<cbc:IssueDate>{document.issue_date(today).isoformat()}</cbc:IssueDate>{due}"
        f"<cbc:{type_tag}>{'381' if document.credit_note else '380'}</cbc:{type_tag}>"
        "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
        f"{_ubl_party('AccountingSupplierParty', document.seller)}"
        f"{_ubl_party('AccountingCustomerParty', buyer)}"
        f"<cac:TaxTotal><cbc:TaxAmount {eur}>{_amount(document.tax)}</cbc:TaxAmount>"
        f"{subtotals}</cac:TaxTotal><cac:LegalMonetaryTotal>"
        f"<cbc:LineExtensionAmount {eur}>{_amount(document.untaxed)}</cbc:LineExtensionAmount>"
        f"<cbc:TaxExclusiveAmount {eur}>{_amount(document.untaxed)}</cbc:TaxExclusiveAmount>"
        f"<cbc:TaxInclusiveAmount {eur}>{_amount(document.total)}</cbc:TaxInclusiveAmount>"
        f"<cbc:PayableAmount {eur}>{_amount(document.total)}</cbc:PayableAmount>"
        f"</cac:LegalMonetaryTotal>{lines}</{root}>\n"
    )
    return xml.encode("utf-8")


# -- The PDF a person reads (Factur-X: the XML travels inside it) -----------------------------


def _pdf_text(value: str) -> str:
    encoded = value.replace("–", "-").encode("cp1252", "replace").decode("latin-1")
    return encoded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_page(document: Document, today: dt.date, buyer: Party) -> bytes:
    """A one-page A4 PDF showing the invoice (Helvetica, WinAnsi): what a person reads; the
    Factur-X XML is embedded into it by :func:`facturx.generate_from_binary`."""
    seller = document.seller
    rows = [
        (16, f"{'Avoir' if document.credit_note else 'Facture'} {document.number}"),
        (10, f"Date : {document.issue_date(today):%d/%m/%Y}   "
             f"Échéance : {document.due_date(today):%d/%m/%Y}"),
        (10, ""),
        (10, f"{seller.name}, {seller.street}, {seller.postcode} {seller.city}"),
        (10, f"SIREN {seller.siren}   TVA {seller.vat}"),
        (10, ""),
        (10, f"Client : {buyer.name}, {buyer.street}, {buyer.postcode} {buyer.city}"),
        (10, f"SIREN {buyer.siren}   TVA {buyer.vat}"),
        (10, ""),
        *(
            (10, f"{line.description} : {_number(line.quantity)} x {_amount(line.price)} EUR"
                 f" = {_amount(line.amount)} EUR HT (TVA {_number(line.rate)} %)")
            for line in document.lines
        ),
        (10, ""),
        *((10, f"TVA {_number(rate)} % sur {_amount(base)} EUR : {_amount(vat)} EUR")
          for rate, base, vat in document.breakdown),
        (12, f"Total HT {_amount(document.untaxed)} EUR   TVA {_amount(document.tax)} EUR   "
             f"Total TTC {_amount(document.total)} EUR"),
    ]  # fmt: skip
    text = ["BT", "50 790 Td"]
    for size, row in rows:
        text += [f"/F1 {size} Tf", f"({_pdf_text(row)}) Tj", f"0 -{size + 8} Td"]
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
