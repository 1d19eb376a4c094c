"""E-invoice samples for the reader's tests, and the figures each one states, read here with
plain XPath (``local-name()``) and pypdf, independently of the reader under test.

The samples are the public corpus in ``../shared/einvoices`` beside the repository (CI lays
``shared/`` there); tests skip with a clear reason when it is absent.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from lxml import etree
from pypdf import PdfReader, PdfWriter

REPO = Path(__file__).resolve().parents[2]
SAMPLES = (REPO / ".." / "shared" / "einvoices").resolve()
DATA = REPO / "tests" / "data"
MISSING_REASON = f"the e-invoice samples are not at {SAMPLES} (../shared/einvoices beside the repo)"

CREDIT_NOTE_CODES = {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}


def sample_paths() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(
        path
        for path in SAMPLES.rglob("*")
        if path.suffix.lower() in (".xml", ".pdf") and path.name != "README.md"
    )


def sample_id(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


def embedded_xml(pdf: bytes) -> bytes:
    """The XML file embedded in a Factur-X PDF, found with pypdf alone."""
    attachments = PdfReader(io.BytesIO(pdf)).attachments
    for name in sorted(attachments, key=lambda n: n.lower() != "factur-x.xml"):
        if name.lower().endswith(".xml"):
            return attachments[name][0]
    raise AssertionError("no XML attachment in the PDF")


def _local(*names: str) -> str:
    return "/".join(f"*[local-name()='{name}']" for name in names)


def _decimal(node) -> Decimal:
    return Decimal(node.text.strip())


@dataclass(frozen=True)
class Party:
    name: str
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class Stated:
    """What the file states: BT-3, BT-109, BT-110, BT-112, BT-115 and BG-23 rows
    (category, rate, base, amount), and both parties."""

    type_code: str
    credit_note_root: bool
    tax_basis_total: Decimal
    tax_total: Decimal
    grand_total: Decimal
    payable: Decimal
    breakdown: tuple[tuple[str, Decimal | None, Decimal, Decimal], ...]
    seller: Party
    buyer: Party
    has_lines: bool


def stated(content: bytes) -> Stated:
    xml = embedded_xml(content) if content[:5] == b"%PDF-" else content
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    local = etree.QName(root).localname
    if local in ("CrossIndustryInvoice", "CrossIndustryDocument"):
        return _stated_cii(root)
    return _stated_ubl(root, local == "CreditNote")


def _first(root, path: str):
    found = root.xpath(path)
    return found[0] if found else None


def _stated_cii(root) -> Stated:
    summation = _first(
        root,
        "//*[local-name()='SpecifiedTradeSettlementHeaderMonetarySummation' or "
        "local-name()='SpecifiedTradeSettlementMonetarySummation'][*[local-name()='GrandTotalAmount']]",
    )
    currency = _first(root, "//*[local-name()='InvoiceCurrencyCode']").text.strip()
    tax_totals = summation.xpath("*[local-name()='TaxTotalAmount']")
    tax_total = next(
        (_decimal(n) for n in tax_totals if n.get("currencyID", currency) == currency),
        Decimal("0"),
    )
    settlement = summation.getparent()
    rows = tuple(
        (
            tax.xpath("string(*[local-name()='CategoryCode'])").strip(),
            _optional_decimal(
                tax.xpath(
                    "string(*[local-name()='RateApplicablePercent' or "
                    "local-name()='ApplicablePercent'])"
                )
            ),
            Decimal(tax.xpath("string(*[local-name()='BasisAmount'])").strip()),
            Decimal(tax.xpath("string(*[local-name()='CalculatedAmount'])").strip()),
        )
        for tax in settlement.xpath("*[local-name()='ApplicableTradeTax']")
    )

    def party(tag: str) -> Party:
        node = _first(root, f"//*[local-name()='{tag}']")
        ids = [
            value.strip()
            for value in node.xpath(
                "*[local-name()='SpecifiedTaxRegistration']/*[local-name()='ID']/text() | "
                "*[local-name()='SpecifiedLegalOrganization']/*[local-name()='ID']/text() | "
                "*[local-name()='ID']/text() | *[local-name()='GlobalID']/text()"
            )
            if value.strip()
        ]
        return Party(node.xpath("string(*[local-name()='Name'])").strip(), tuple(ids))

    return Stated(
        type_code=_first(
            root,
            f"/*/{_local('ExchangedDocument', 'TypeCode')} | "
            f"/*/{_local('HeaderExchangedDocument', 'TypeCode')}",
        ).text.strip(),
        credit_note_root=False,
        tax_basis_total=_decimal(summation.xpath("*[local-name()='TaxBasisTotalAmount']")[0]),
        tax_total=tax_total,
        grand_total=_decimal(summation.xpath("*[local-name()='GrandTotalAmount']")[0]),
        payable=_decimal(summation.xpath("*[local-name()='DuePayableAmount']")[0]),
        breakdown=rows,
        seller=party("SellerTradeParty"),
        buyer=party("BuyerTradeParty"),
        has_lines=bool(root.xpath("//*[local-name()='IncludedSupplyChainTradeLineItem']")),
    )


def _stated_ubl(root, credit_note: bool) -> Stated:
    monetary = _first(root, f"/*/{_local('LegalMonetaryTotal')}")
    currency = _first(root, f"/*/{_local('DocumentCurrencyCode')}").text.strip()
    tax_total_node = next(
        node
        for node in root.xpath(f"/*/{_local('TaxTotal')}")
        if node.xpath(f"{_local('TaxAmount')}/@currencyID")[0] == currency
    )
    rows = tuple(
        (
            sub.xpath(f"string({_local('TaxCategory', 'ID')})").strip(),
            _optional_decimal(sub.xpath(f"string({_local('TaxCategory', 'Percent')})")),
            Decimal(sub.xpath(f"string({_local('TaxableAmount')})").strip()),
            Decimal(sub.xpath(f"string({_local('TaxAmount')})").strip()),
        )
        for sub in tax_total_node.xpath(_local("TaxSubtotal"))
    )

    def party(tag: str) -> Party:
        node = _first(root, f"/*/{_local(tag, 'Party')}")
        ids = [
            value.strip()
            for value in node.xpath(
                f"{_local('PartyTaxScheme', 'CompanyID')}/text() | "
                f"{_local('PartyLegalEntity', 'CompanyID')}/text() | "
                f"{_local('PartyIdentification', 'ID')}/text() | {_local('EndpointID')}/text()"
            )
            if value.strip()
        ]
        name = node.xpath(f"string({_local('PartyLegalEntity', 'RegistrationName')})").strip()
        name = name or node.xpath(f"string({_local('PartyName', 'Name')})").strip()
        return Party(name, tuple(ids))

    type_tag = "CreditNoteTypeCode" if credit_note else "InvoiceTypeCode"
    return Stated(
        type_code=_first(root, f"/*/{_local(type_tag)}").text.strip(),
        credit_note_root=credit_note,
        tax_basis_total=_decimal(monetary.xpath(_local("TaxExclusiveAmount"))[0]),
        tax_total=_decimal(tax_total_node.xpath(_local("TaxAmount"))[0]),
        grand_total=_decimal(monetary.xpath(_local("TaxInclusiveAmount"))[0]),
        payable=_decimal(monetary.xpath(_local("PayableAmount"))[0]),
        breakdown=rows,
        seller=party("AccountingSupplierParty"),
        buyer=party("AccountingCustomerParty"),
        has_lines=bool(root.xpath(f"/*/{_local('InvoiceLine')} | /*/{_local('CreditNoteLine')}")),
    )


def _optional_decimal(value: str) -> Decimal | None:
    value = value.strip()
    return Decimal(value) if value else None


def plain_pdf() -> bytes:
    """A PDF with one blank page and no embedded file: what a scanner or a word processor
    produces."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_attachment(name: str, content: bytes) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment(name, content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


FATTURAPA = b"""<?xml version="1.0" encoding="UTF-8"?>
<p:FatturaElettronica versione="FPR12" xmlns:p="http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2">
  <FatturaElettronicaHeader><DatiTrasmissione><IdTrasmittente><IdPaese>IT</IdPaese>
  <IdCodice>01234567890</IdCodice></IdTrasmittente><ProgressivoInvio>00001</ProgressivoInvio>
  </DatiTrasmissione></FatturaElettronicaHeader>
  <FatturaElettronicaBody><DatiGenerali><DatiGeneraliDocumento><TipoDocumento>TD01</TipoDocumento>
  <Divisa>EUR</Divisa><Data>2024-01-15</Data><Numero>123</Numero></DatiGeneraliDocumento>
  </DatiGenerali></FatturaElettronicaBody>
</p:FatturaElettronica>
"""

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
)
