"""The demo's e-invoices (connectors/devtools/einvoices): a Factur-X PDF, a CII XML, a UBL invoice
and a UBL credit note from the sandbox's suppliers, which the reader takes cleanly (schema,
EN16931 arithmetic, no notice) as purchases of the demo company — the company the sandbox builds
— with the figures the generator computed."""

import ast
import datetime as dt
from decimal import Decimal

import pytest
from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.fr import siren as fr_siren

from connectors.canonical import InvoiceType
from connectors.devtools.einvoices import DOCUMENTS, company_party, demo_einvoices
from connectors.devtools.tryton.sandbox import BUILD_SCRIPT
from connectors.providers.einvoice import EInvoiceError, OurCompany, read_einvoice

TODAY = dt.date(2026, 12, 3)


def sandbox_company() -> dict:
    """The company sandbox_build.py creates (read, not imported: it imports proteus): its name,
    and the SIREN its ``make_siren(seed)`` makes (the seed and a Luhn digit) with its VAT."""
    found = {}
    for node in ast.parse(BUILD_SCRIPT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "COMPANY_NAME":
                found["name"] = node.value.value
            elif name == "COMPANY_SIREN":
                assert node.value.func.id == "make_siren"
                body = f"{node.value.args[0].value:08d}"[-8:]
                found["fr_siren"] = body + luhn.calc_check_digit(body)
    found["eu_vat"] = "FR" + fr_siren.to_tva(found["fr_siren"])
    return found


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return dict(demo_einvoices(TODAY, company_party(sandbox_company())))


def test_the_demo_has_a_factur_x_pdf_a_cii_and_ubl_invoices_and_a_credit_note(files):
    assert len(files) == len(DOCUMENTS) == 4
    by_format = {document.format: document for document in DOCUMENTS}
    assert set(by_format) == {"facturx", "cii", "ubl"}
    assert files[by_format["facturx"].file_name].startswith(b"%PDF-")
    assert b"<rsm:CrossIndustryInvoice" in files[by_format["cii"].file_name]
    roots = {content.split(b"<", 3)[2].split(b" ")[0] for content in files.values()}
    assert {b"Invoice", b"CreditNote"} <= roots


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.file_name)
def test_each_demo_einvoice_reads_cleanly_as_a_purchase_of_the_demo_company(files, document):
    company = sandbox_company()
    read = read_einvoice(
        files[document.file_name], company=OurCompany(identifiers=(company["eu_vat"],))
    )
    invoice = read.invoice
    assert read.notices == ()
    expected = InvoiceType.SUPPLIER_REFUND if document.credit_note else InvoiceType.SUPPLIER_INVOICE
    assert invoice.type is expected
    assert invoice.number == document.number
    assert invoice.partner.name == document.seller.name
    assert invoice.partner.source_id == f"vat:{document.seller.vat}"
    assert (invoice.untaxed_amount, invoice.tax_amount, invoice.total) == (
        document.untaxed,
        document.tax,
        document.total,
    )
    assert [(row.tax_id, row.base, row.amount) for row in invoice.taxes] == [
        (f"S/{rate.normalize():f}", base, vat) for rate, base, vat in document.breakdown
    ]
    # Recent, in the sandbox's open fiscal years (the year before today's to the next).
    assert TODAY - dt.timedelta(days=60) <= invoice.issue_date <= TODAY
    # The attachment is the file itself: the PDF for Factur-X, the XML otherwise.
    kind = "application/pdf" if document.format == "facturx" else "application/xml"
    assert read.attachment.content_type == kind


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.file_name)
def test_the_demo_einvoices_are_addressed_to_the_demo_company_and_no_other(files, document):
    company = sandbox_company()
    # By its SIREN alone too (scheme 0002 in the files).
    by_siren = read_einvoice(
        files[document.file_name], company=OurCompany(identifiers=(company["fr_siren"],))
    )
    assert by_siren.invoice.type.is_refund is document.credit_note
    with pytest.raises(EInvoiceError) as error:
        read_einvoice(files[document.file_name], company=OurCompany(identifiers=("FR40303265045",)))
    assert error.value.code == "ERROR_SYNC_INVOICE_EINVOICE_NOT_OURS"
    assert company["name"] in str(error.value)


def test_the_sellers_are_real_french_numbers_and_the_figures_add_up():
    for document in DOCUMENTS:
        seller = document.seller
        assert fr_siren.is_valid(seller.siren) and eu_vat.is_valid(seller.vat), seller
        assert seller.vat.endswith(seller.siren)
        assert document.untaxed + document.tax == document.total
        assert all(line.amount == line.quantity * line.price for line in document.lines)
        assert document.total > Decimal(0)
