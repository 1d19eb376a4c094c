"""The e-invoice reader's behaviour beyond the corpus: formats it refuses, broken files, the
direction from our company's identifiers, profiles without lines, credit notes, VAT categories,
ZUGFeRD 1.0, hostile XML; and that no input ever raises anything but a typed error."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.canonical import InvoiceType, TaxKind
from connectors.errors import CATALOGUE, ErrorCode
from connectors.providers.einvoice import EInvoice, EInvoiceError, OurCompany, read_einvoice
from tests.factories.einvoices import (
    DATA,
    FATTURAPA,
    MISSING_REASON,
    PNG_1PX,
    SAMPLES,
    pdf_with_attachment,
    plain_pdf,
)

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON)

FNFE = "ZUGFeRDv2/correct/FNFE-factur-x-examples"
# Au bon moulin (seller) and Ma jolie boutique (buyer) in the FNFE samples.
SELLER_SIREN, SELLER_VAT = "999999998", "FR11999999998"
BUYER_SIRET, BUYER_VAT = "78787878400035", "FR19787878784"
BUYER = OurCompany(identifiers=(BUYER_VAT,))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def refused(content: bytes, company: OurCompany = BUYER) -> EInvoiceError:
    with pytest.raises(EInvoiceError) as raised:
        read_einvoice(content, company=company)
    assert raised.value.code in CATALOGUE and raised.value.message
    return raised.value


# Formats invsync does not read.


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (plain_pdf(), "plain PDF"),
        (PNG_1PX, "PNG image"),
        (FATTURAPA, "FatturaPA"),
        (b"", "empty"),
        (b"Invoice 42: please pay 120.00 EUR", "neither a PDF nor XML"),
        (b"<html><body>Invoice</body></html>", "root element is html"),
        (b"<notes>unfinished", "no e-invoice root"),
        (pdf_with_attachment("notes.xml", b"<notes/>"), "plain PDF"),
    ],
    ids=["plain-pdf", "png", "fatturapa", "empty", "text", "html", "broken-other-xml", "pdf-xml"],
)
def test_a_file_that_is_no_einvoice_we_read_gets_the_unsupported_code(content, words):
    error = refused(content)
    assert error.code is ErrorCode.EINVOICE_UNSUPPORTED
    assert words in error.message


@needs_samples
def test_truncated_xml_of_an_invoice_gets_the_invalid_code_with_the_line():
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml")
    error = refused(content[: len(content) // 2])
    assert error.code is ErrorCode.EINVOICE_INVALID
    assert "not well-formed" in error.message and "line" in error.message


@needs_samples
def test_a_damaged_pdf_gets_the_unsupported_code_saying_it_cannot_be_read():
    content = sample(f"{FNFE}/Facture_FR_BASICWL.pdf")
    error = refused(content[: len(content) // 2])
    assert error.code is ErrorCode.EINVOICE_UNSUPPORTED
    assert "cannot be read" in error.message


def test_xml_with_entities_is_refused_without_expanding_them():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
        b'CrossIndustryInvoice:100">&c;</rsm:CrossIndustryInvoice>'
    )
    error = refused(bomb)
    assert error.code is ErrorCode.EINVOICE_INVALID
    assert "document type" in error.message


def test_an_external_entity_is_never_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&x;</Invoice>'
    ).encode()
    error = refused(xxe)
    assert "TOP-SECRET" not in error.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_anything_but_a_typed_error(content):
    try:
        result = read_einvoice(content, company=BUYER)
    except EInvoiceError as error:
        assert error.code in CATALOGUE and error.message
    else:  # pragma: no cover - random bytes are never an invoice
        assert isinstance(result, EInvoice)


@needs_samples
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_sample_cut_or_spoiled_anywhere_gives_a_typed_error_or_an_invoice(data):
    content = sample("XML-Rechnung/UBL/EN16931_Rabatte.ubl.xml")
    start = data.draw(st.integers(0, len(content) - 1))
    junk = data.draw(st.binary(max_size=16))
    spoiled = content[:start] + junk + content[start + len(junk) :]
    try:
        read_einvoice(spoiled, company=OurCompany(identifiers=("DE123456789",)))
    except EInvoiceError as error:
        assert error.code in CATALOGUE and error.message


# Arithmetic and schema: the message names the rule and the field.


@needs_samples
def test_a_total_that_does_not_add_up_names_br_co_15_and_bt_112():
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml").replace(
        b"<ram:GrandTotalAmount>529.87</ram:GrandTotalAmount>",
        b"<ram:GrandTotalAmount>529.97</ram:GrandTotalAmount>",
    )
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert error.code is ErrorCode.EINVOICE_INVALID
    assert (error.rule, error.field) == ("BR-CO-15", "BT-112")
    assert "529.97" in error.message and "473.00" in error.message and "56.87" in error.message


@needs_samples
def test_a_breakdown_amount_that_does_not_make_the_vat_total_names_br_co_14():
    content = sample("XML-Rechnung/UBL/EN16931_Einfach.ubl.xml")
    assert content.count(b'<cbc:TaxAmount currencyID="EUR">19.25</cbc:TaxAmount>') == 1
    content = content.replace(
        b'<cbc:TaxAmount currencyID="EUR">19.25</cbc:TaxAmount>',
        b'<cbc:TaxAmount currencyID="EUR">19.75</cbc:TaxAmount>',
    )
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert (error.rule, error.field) == ("BR-CO-14", "BT-110")
    assert "56.87" in error.message and "57.37" in error.message


@needs_samples
def test_a_breakdown_row_whose_vat_is_not_base_times_rate_names_br_co_17():
    # Every total agrees with the row, but the row's 7 % of 275.00 is 19.25, not 19.75.
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml")
    for old, new in (
        (b"<ram:CalculatedAmount>19.25<", b"<ram:CalculatedAmount>19.75<"),
        (
            b'<ram:TaxTotalAmount currencyID="EUR">56.87<',
            b'<ram:TaxTotalAmount currencyID="EUR">57.37<',
        ),
        (b"<ram:GrandTotalAmount>529.87<", b"<ram:GrandTotalAmount>530.37<"),
        (b"<ram:DuePayableAmount>529.87<", b"<ram:DuePayableAmount>530.37<"),
    ):
        assert content.count(old) == 1
        content = content.replace(old, new)
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert (error.rule, error.field) == ("BR-CO-17", "BT-117")
    assert "275.00" in error.message and "19.25" in error.message and "19.75" in error.message


@needs_samples
def test_a_breakdown_base_its_lines_do_not_make_names_br_s_08():
    # 1.00 of base moved from the 19 % row to the 7 % row, every total kept consistent.
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml")
    for old, new in (
        (b"<ram:BasisAmount>275.00<", b"<ram:BasisAmount>276.00<"),
        (b"<ram:CalculatedAmount>19.25<", b"<ram:CalculatedAmount>19.32<"),
        (b"<ram:BasisAmount>198.00<", b"<ram:BasisAmount>197.00<"),
        (b"<ram:CalculatedAmount>37.62<", b"<ram:CalculatedAmount>37.43<"),
        (
            b'<ram:TaxTotalAmount currencyID="EUR">56.87<',
            b'<ram:TaxTotalAmount currencyID="EUR">56.75<',
        ),
        (b"<ram:GrandTotalAmount>529.87<", b"<ram:GrandTotalAmount>529.75<"),
        (b"<ram:DuePayableAmount>529.87<", b"<ram:DuePayableAmount>529.75<"),
    ):
        assert content.count(old) == 1
        content = content.replace(old, new)
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert (error.rule, error.field) == ("BR-S-08", "BT-116")
    assert "S at 19 %" in error.message and "197.00" in error.message and "198.00" in error.message


@needs_samples
@pytest.mark.parametrize(
    ("old", "new", "rule", "message"),
    [
        (
            b"<ram:AllowanceTotalAmount>14.73<",
            b"<ram:AllowanceTotalAmount>14.70<",
            "BR-CO-11",
            "allowances (BT-92) add up to 14.73 but the invoice states a sum of allowances "
            "(BT-107) of 14.70",
        ),
        (
            b"<ram:ChargeTotalAmount>5.80</ram:ChargeTotalAmount>",
            b"",
            "BR-CO-12",
            "charges (BT-99) add up to 5.80 but the invoice does not state a sum of charges",
        ),
    ],
    ids=["allowances", "charges-missing"],
)
def test_document_allowance_and_charge_sums_name_br_co_11_and_12(old, new, rule, message):
    content = sample("XML-Rechnung/CII/EN16931_Rabatte.cii.xml")
    assert content.count(old) == 1
    error = refused(content.replace(old, new), OurCompany(identifiers=("DE123456789",)))
    assert error.rule == rule and message in error.message


@needs_samples
def test_lines_that_do_not_make_the_breakdown_base_name_the_category_rule():
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml")
    content = content.replace(
        b"<ram:LineTotalAmount>198.00</ram:LineTotalAmount>",
        b"<ram:LineTotalAmount>197.00</ram:LineTotalAmount>",
        1,
    )
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert error.rule == "BR-CO-10" and "BT-106" in error.message


@needs_samples
def test_an_element_outside_the_schema_names_xsd_and_the_element():
    content = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml").replace(
        b"<ram:TypeCode>380</ram:TypeCode>",
        b"<ram:TypeCode>380</ram:TypeCode><ram:Surprise>1</ram:Surprise>",
        1,
    )
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert (error.rule, error.field) == ("XSD", "Surprise")
    assert "line" in error.message and "Factur-X EN16931" in error.message


# Direction from our company's identifiers.


@needs_samples
@pytest.mark.parametrize(
    "identifier",
    [BUYER_VAT, BUYER_SIRET, "787878784", "fr 19 787 878 784", "78787878400099"],
    ids=["vat", "siret", "siren", "vat-spaced", "other-establishment"],
)
def test_we_are_the_buyer_so_the_invoice_is_a_purchase_from_the_seller(identifier):
    result = read_einvoice(
        sample(f"{FNFE}/Facture_FR_BASICWL.pdf"), company=OurCompany(identifiers=(identifier,))
    )
    invoice = result.invoice
    assert invoice.type is InvoiceType.SUPPLIER_INVOICE
    assert invoice.partner.name == "Au bon moulin"
    assert invoice.partner.vat_number == SELLER_VAT
    assert invoice.partner.company_number == "99999999800010"
    assert invoice.partner.source_id == f"vat:{SELLER_VAT}"
    assert invoice.partner.country == "FR"


@needs_samples
@pytest.mark.parametrize("identifier", [SELLER_VAT, SELLER_SIREN, "99999999800010"])
def test_we_are_the_seller_so_the_invoice_is_a_sale_to_the_buyer(identifier):
    invoice = read_einvoice(
        sample(f"{FNFE}/Facture_FR_BASICWL.pdf"), company=OurCompany(identifiers=(identifier,))
    ).invoice
    assert invoice.type is InvoiceType.CUSTOMER_INVOICE
    assert invoice.partner.name == "Ma jolie boutique"
    assert invoice.partner.company_number == BUYER_SIRET


@needs_samples
def test_neither_party_is_us_gets_the_not_ours_code_naming_both():
    error = refused(
        sample(f"{FNFE}/Facture_FR_BASICWL.pdf"), OurCompany(identifiers=("FR40303265045",))
    )
    assert error.code is ErrorCode.EINVOICE_NOT_OURS
    assert "Au bon moulin" in error.message and "Ma jolie boutique" in error.message
    assert CATALOGUE[error.code].resolution


@needs_samples
def test_a_buyer_named_only_is_identified_by_our_exact_name():
    content = sample("XML-Rechnung/CII/EN16931_Physiotherapeut.cii.xml")
    by_name = read_einvoice(content, company=OurCompany(identifiers=("Liselotte Müller",)))
    assert by_name.invoice.type is InvoiceType.SUPPLIER_INVOICE
    by_name_option = read_einvoice(
        content, company=OurCompany(identifiers=("DE000000000",), name="liselotte  müller")
    )
    assert by_name_option.invoice.type is InvoiceType.SUPPLIER_INVOICE
    assert refused(content, OurCompany(identifiers=("Liselotte",))).code is (
        ErrorCode.EINVOICE_NOT_OURS
    )


@needs_samples
@pytest.mark.parametrize(
    "name", ["XML-Rechnung/CII/EN16931_Einfach.cii.xml", "XML-Rechnung/UBL/EN16931_Einfach.ubl.xml"]
)
def test_a_buyer_known_only_by_the_sellers_customer_number_is_identified_by_our_name(name):
    # BT-46 without a scheme (GE2020211) is the seller's customer number, not our identifier.
    company = OurCompany(identifiers=("DE999999999",), name="Kunden AG Mitte")
    invoice = read_einvoice(sample(name), company=company).invoice
    assert invoice.type is InvoiceType.SUPPLIER_INVOICE
    assert invoice.partner.name == "Lieferant GmbH"


@needs_samples
def test_a_party_with_identifiers_is_never_matched_by_name_alone():
    # The seller has a VAT number: its name is not enough (a namesake is another company).
    error = refused(
        sample(f"{FNFE}/Facture_FR_BASICWL.pdf"), OurCompany(identifiers=("Au bon moulin",))
    )
    assert error.code is ErrorCode.EINVOICE_NOT_OURS


@needs_samples
def test_same_identifier_on_both_sides_is_settled_by_our_name_or_refused():
    content = sample("ZUGFeRDv2/correct/Mustangproject/testout-ZF2PushCreditNote.xml")
    error = refused(content, OurCompany(identifiers=("DE0815",)))
    assert error.code is ErrorCode.EINVOICE_NOT_OURS and "both" in error.message
    invoice = read_einvoice(
        content, company=OurCompany(identifiers=("DE0815",), name="Franz Müller")
    ).invoice
    assert invoice.type is InvoiceType.SUPPLIER_REFUND


# Profiles without lines, credit notes, categories.


@needs_samples
@pytest.mark.parametrize("name", ["Facture_FR_BASICWL.pdf", "Facture_UE_BASICWL.pdf"])
def test_basic_wl_gives_one_line_per_vat_breakdown_row(name):
    seller = OurCompany(identifiers=(SELLER_VAT,))
    result = read_einvoice(sample(f"{FNFE}/{name}"), company=seller)
    invoice = result.invoice
    assert [(line.untaxed_amount, line.tax_amount, line.tax_id) for line in invoice.lines] == [
        (tax.base, tax.amount, tax.tax_id) for tax in invoice.taxes
    ]
    assert any("BASIC WL profile has no invoice lines" in notice for notice in result.notices)


@needs_samples
def test_minimum_gives_one_line_at_an_unknown_rate_and_no_breakdown():
    result = read_einvoice(sample(f"{FNFE}/Facture_FR_MINIMUM.pdf"), company=BUYER)
    invoice = result.invoice
    assert invoice.taxes == ()
    (line,) = invoice.lines
    assert (line.untaxed_amount, line.tax_amount, line.tax_rate) == (
        Decimal("624.90"),
        Decimal("46.25"),
        None,
    )
    assert invoice.payable_amount == Decimal("470.15")


@needs_samples
def test_credit_note_381_is_a_refund_with_positive_amounts():
    invoice = read_einvoice(sample(f"{FNFE}/Avoir_FR_type381_BASIC.pdf"), company=BUYER).invoice
    assert invoice.type is InvoiceType.SUPPLIER_REFUND
    assert invoice.total == Decimal("233.47") and invoice.tax_amount == Decimal("14.99")
    seller_view = read_einvoice(
        sample(f"{FNFE}/Avoir_FR_type381_BASIC.pdf"),
        company=OurCompany(identifiers=(SELLER_VAT,)),
    ).invoice
    assert seller_view.type is InvoiceType.CUSTOMER_REFUND


@needs_samples
def test_ubl_credit_note_is_a_refund():
    invoice = read_einvoice(
        sample("XML-Rechnung/UBL/ubl-tc434-creditnote1.xml"),
        company=OurCompany(identifiers=("BE0000000196",)),
    ).invoice
    assert invoice.type is InvoiceType.CUSTOMER_REFUND
    assert invoice.total == Decimal("100.11")


@needs_samples
def test_a_credit_note_typed_380_with_negative_amounts_is_read_as_a_refund_and_said_so():
    result = read_einvoice(
        sample("ZUGFeRDv2/fail/FNFE-factur-x-examples/Avoir_FR_type380_BASIC.pdf"), company=BUYER
    )
    assert result.invoice.type is InvoiceType.SUPPLIER_REFUND
    assert result.invoice.total == Decimal("233.47")
    assert all(line.untaxed_amount > 0 for line in result.invoice.lines)
    assert any("negative total -233.47" in notice for notice in result.notices)


@needs_samples
@pytest.mark.parametrize(
    ("name", "company", "kind", "category"),
    [
        (
            "ZUGFeRDv2/correct/Mustangproject/testout-ZF2PushReverseCharge.xml",
            "DE0816",
            TaxKind.REVERSE_CHARGE,
            "AE",
        ),
        (
            "XML-Rechnung/CII/EN16931_Innergemeinschaftliche_Lieferungen.cii.xml",
            "GB123456789",
            TaxKind.INTRA_EU,
            "K",
        ),
        (f"{FNFE}/Facture_DOM_BASICWL.pdf", SELLER_VAT, TaxKind.EXPORT, "G"),
        ("XML-Rechnung/CII/EN16931_Physiotherapeut.cii.xml", "DE136695976", TaxKind.EXEMPT, "E"),
        ("ZUGFeRDv2/correct/Mustangproject/testout-XR.xml", "DE0815", TaxKind.ZERO, "Z"),
    ],
    ids=["AE", "K", "G", "E", "Z"],
)
def test_vat_categories_become_tax_kinds_on_lines_and_breakdown(name, company, kind, category):
    invoice = read_einvoice(sample(name), company=OurCompany(identifiers=(company,))).invoice
    assert {tax.kind for tax in invoice.taxes} == {kind}
    assert {tax.category for tax in invoice.taxes} == {category}
    assert {line.tax_kind for line in invoice.lines} == {kind}
    assert all(line.tax_amount == 0 for line in invoice.lines)
    assert all(line.tax_id == f"{category}/0" for line in invoice.lines)


@needs_samples
@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        (
            "XML-Rechnung/CII/EN16931_Einfach.cii.xml",
            b"<ram:CategoryCode>S</ram:CategoryCode>",
            b"<ram:CategoryCode>B</ram:CategoryCode>",
        ),
        ("XML-Rechnung/UBL/EN16931_Einfach.ubl.xml", b"<cbc:ID>S</cbc:ID>", b"<cbc:ID>B</cbc:ID>"),
    ],
    ids=["cii", "ubl"],
)
def test_a_vat_category_invsync_does_not_know_is_invalid_naming_it(name, old, new):
    content = sample(name).replace(old, new)
    error = refused(content, OurCompany(identifiers=("DE123456789",)))
    assert (error.code, error.rule, error.field) == (
        ErrorCode.EINVOICE_INVALID,
        "UNCL5305",
        "BT-118",
    )
    assert "VAT category 'B'" in error.message


@needs_samples
def test_document_allowances_and_charges_become_lines_that_make_bt_109():
    invoice = read_einvoice(
        sample("XML-Rechnung/CII/EN16931_Rabatte.cii.xml"),
        company=OurCompany(identifiers=("DE123456789",)),
    ).invoice
    extra = [(line.description, line.untaxed_amount, line.tax_id) for line in invoice.lines[-3:]]
    assert extra == [
        ("Sondernachlass", Decimal("-1.00"), "S/19"),
        ("Sondernachlass", Decimal("-13.73"), "S/7"),
        ("Versandkosten", Decimal("5.80"), "S/7"),
    ]
    assert sum(line.untaxed_amount for line in invoice.lines) == Decimal("193.77")
    for tax in invoice.taxes:
        assert (
            sum(line.tax_amount for line in invoice.lines if line.tax_id == tax.tax_id)
            == tax.amount
        )
    assert invoice.prepaid_amount == Decimal("50.00")
    assert invoice.payable_amount == Decimal("165.07")


@needs_samples
def test_an_extended_information_line_is_outside_the_totals_and_said_so():
    name = "ZUGFeRDv2/correct/Mustangproject/testout-ZF2PushItemChargesAllowances.xml"
    content = sample(name)
    first = content.index(b"<ram:IncludedSupplyChainTradeLineItem>")
    end = content.index(b"</ram:IncludedSupplyChainTradeLineItem>") + len(
        b"</ram:IncludedSupplyChainTradeLineItem>"
    )
    information = (
        content[first:end]
        .replace(b"<ram:LineID>1</ram:LineID>", b"<ram:LineID>9</ram:LineID>")
        .replace(
            b"</ram:LineID>",
            b"</ram:LineID><ram:LineStatusReasonCode>INFORMATION</ram:LineStatusReasonCode>",
            1,
        )
    )
    assert b"INFORMATION" in information
    with_information = content[:end] + information + content[end:]
    company = OurCompany(identifiers=("DE0815",))
    plain = read_einvoice(content, company=company).invoice
    result = read_einvoice(with_information, company=company)
    assert len(result.invoice.lines) == len(plain.lines)
    assert result.invoice.untaxed_amount == plain.untaxed_amount
    assert any("lines 9 are GROUP or INFORMATION" in notice for notice in result.notices)


@needs_samples
def test_the_same_invoice_received_twice_is_one_source_id_and_another_is_not():
    pdf = sample("XML-Rechnung/FX/EN16931_Einfach.pdf")
    xml = sample("XML-Rechnung/CII/EN16931_Einfach.cii.xml")
    company = OurCompany(identifiers=("DE123456789",))
    one = read_einvoice(pdf, company=company).invoice.source_id
    assert read_einvoice(xml, company=company).invoice.source_id == one
    other = read_einvoice(
        sample("XML-Rechnung/CII/EN16931_Rabatte.cii.xml"), company=company
    ).invoice.source_id
    assert other != one and len(one) <= 100


@needs_samples
def test_the_pdf_is_the_attachment_and_an_xml_file_is_its_own():
    pdf = sample("XML-Rechnung/FX/EN16931_Einfach.pdf")
    result = read_einvoice(pdf, company=OurCompany(identifiers=("DE123456789",)))
    assert result.format == "factur-x"
    assert (result.attachment.content_type, result.attachment.content) == ("application/pdf", pdf)
    xml = sample("XML-Rechnung/UBL/EN16931_Einfach.ubl.xml")
    result = read_einvoice(xml, company=OurCompany(identifiers=("DE123456789",)))
    assert result.format == "ubl"
    assert (result.attachment.content_type, result.attachment.content) == ("application/xml", xml)


@needs_samples
def test_zugferd_20_pdf_is_read_without_the_newer_schema_and_says_so():
    result = read_einvoice(
        sample("ZUGFeRDv2/correct/Mustangproject/MustangGnuaccountingBeispielRE-20190610_507.pdf"),
        company=OurCompany(identifiers=("DE136695976",)),
    )
    assert result.invoice.total == Decimal("571.04")
    assert any("ZUGFeRD 2.0" in notice for notice in result.notices)


# ZUGFeRD 1.0 (the corpus has none: a sample written for these tests, valid against its XSD).


def test_zugferd_1_invoice_is_read_with_its_breakdown_and_lines():
    content = (DATA / "zugferd1_basic.xml").read_bytes()
    result = read_einvoice(content, company=OurCompany(identifiers=("DE987654321",)))
    invoice = result.invoice
    assert result.format == "zugferd1"
    assert invoice.type is InvoiceType.SUPPLIER_INVOICE
    assert (invoice.number, str(invoice.issue_date), str(invoice.due_date)) == (
        "ZF1-2014-001",
        "2014-03-10",
        "2014-04-10",
    )
    assert (invoice.untaxed_amount, invoice.tax_amount, invoice.total) == (
        Decimal("250.00"),
        Decimal("41.50"),
        Decimal("291.50"),
    )
    assert invoice.payable_amount == Decimal("200.00")
    assert [(t.rate, t.base, t.amount) for t in invoice.taxes] == [
        (Decimal("19.00"), Decimal("200.00"), Decimal("38.00")),
        (Decimal("7.00"), Decimal("50.00"), Decimal("3.50")),
    ]
    assert [(line.description, line.quantity, line.tax_amount) for line in invoice.lines] == [
        ("Widget", Decimal("2"), Decimal("38.00")),
        ("Kaffee", Decimal("10"), Decimal("3.50")),
    ]
    assert invoice.partner.vat_number == "DE123456789"


def test_zugferd_1_pdf_is_read_from_its_embedded_xml_and_checked_by_its_xsd():
    xml = (DATA / "zugferd1_basic.xml").read_bytes()
    pdf = pdf_with_attachment("ZUGFeRD-invoice.xml", xml)
    result = read_einvoice(pdf, company=OurCompany(identifiers=("DE987654321",)))
    assert result.format == "zugferd1"
    assert result.invoice.total == Decimal("291.50")
    assert result.attachment.content == pdf and result.attachment.content_type == "application/pdf"
    assert result.notices == ()
    broken = pdf_with_attachment(
        "ZUGFeRD-invoice.xml", xml.replace(b"<ram:Name>RECHNUNG</ram:Name>", b"<ram:Bogus/>")
    )
    error = refused(broken, OurCompany(identifiers=("DE987654321",)))
    assert (error.rule, error.field) == ("XSD", "Bogus")


def test_zugferd_1_that_breaks_its_xsd_is_invalid():
    content = (
        (DATA / "zugferd1_basic.xml")
        .read_bytes()
        .replace(b"<ram:Name>RECHNUNG</ram:Name>", b"<ram:Bogus>RECHNUNG</ram:Bogus>")
    )
    error = refused(content, OurCompany(identifiers=("DE987654321",)))
    assert (error.rule, error.field) == ("XSD", "Bogus")
    assert "ZUGFeRD 1.0" in error.message
