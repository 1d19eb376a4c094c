"""Every file of the public e-invoice corpus (../shared/einvoices): the correct ones give back
exactly the file's BT-109, BT-110, BT-112, BT-115 and VAT breakdown (BG-23), read from either
side; the failing ones give a code and a message a person understands, or are accepted with
what was accepted said. The expected figures are read from the XML here, not by the reader."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.canonical import InvoiceType
from connectors.errors import CATALOGUE, ErrorCode
from connectors.providers.einvoice import EInvoiceError, OurCompany, read_einvoice
from tests.factories.einvoices import (
    CREDIT_NOTE_CODES,
    MISSING_REASON,
    SAMPLES,
    sample_id,
    sample_paths,
    stated,
)

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON)

FNFE_FAIL = "ZUGFeRDv2/fail/FNFE-factur-x-examples"
# Refused, with the rule and a word of the message.
REFUSED = {
    "XML-Rechnung/UBL/not_validating_full_invoice_based_onTest_EeISI_300_CENfullmodel.ubl.xml": (
        "BR-CO-10",
        "BT-106",
    ),
    f"{FNFE_FAIL}/Avoir_FR_type380_MINIMUM.pdf": ("XSD", "InvoiceReferencedDocument"),
    f"{FNFE_FAIL}/Avoir_FR_type381_MINIMUM.pdf": ("XSD", "InvoiceReferencedDocument"),
}
# The corpus marks these as failing validation (its schematron rules); invsync can book them and
# says what it accepted.
ACCEPTED_FAILURES = {
    f"{FNFE_FAIL}/Avoir_FR_type380_BASIC.pdf": "with a negative total -233.47: read as a credit",
    f"{FNFE_FAIL}/Avoir_FR_type380_EN16931.pdf": "with a negative total -233.47: read as a credit",
    f"{FNFE_FAIL}/Avoir_FR_type381_BASICWL.pdf": "BASIC WL profile has no invoice lines",
    f"{FNFE_FAIL}/Avoir_FR_type381_EN16931.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_DOM_BASIC.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_DOM_EN16931.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_FR_BASIC.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_FR_EN16931.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_UE_BASIC.pdf": "line 1: quantity × net price",
    f"{FNFE_FAIL}/Facture_UE_EN16931.pdf": "line 1: quantity × net price",
}

ALL = sample_paths()
READABLE = [path for path in ALL if sample_id(path) not in REFUSED]


def test_the_corpus_is_all_there():
    assert len(ALL) == 114  # 118 files less two README.md and two LICENSE
    fail_folder = {sample_id(p) for p in ALL if "/fail/" in sample_id(p)}
    assert fail_folder == {k for k in (*REFUSED, *ACCEPTED_FAILURES) if "/fail/" in k}


def _company(party, *, name: str) -> OurCompany:
    return OurCompany(identifiers=party.identifiers or (party.name,), name=name)


def _check_figures(invoice, expected) -> None:
    sign = Decimal(-1) if expected.grand_total < 0 else Decimal(1)
    assert invoice.untaxed_amount == sign * expected.tax_basis_total  # BT-109
    assert invoice.tax_amount == sign * expected.tax_total  # BT-110
    assert invoice.total == sign * expected.grand_total  # BT-112
    assert invoice.payable_amount == sign * expected.payable  # BT-115
    assert [(t.category, t.base, t.amount) for t in invoice.taxes] == [
        (category, sign * base, sign * amount) for category, _, base, amount in expected.breakdown
    ]
    for tax, (_, rate, _, _) in zip(invoice.taxes, expected.breakdown, strict=True):
        if rate is not None:
            assert tax.rate == rate
    # The lines carry BT-109 and BT-110 exactly, VAT allocated from the breakdown.
    assert sum(line.untaxed_amount for line in invoice.lines) == invoice.untaxed_amount
    assert sum(line.tax_amount for line in invoice.lines) == invoice.tax_amount
    if not expected.has_lines:
        assert len(invoice.lines) == max(1, len(expected.breakdown))


def _words(name: str) -> str:
    # Names keep their words; line breaks inside an XML name (one insurer's) become spaces.
    return " ".join(name.split())


def _is_refund(expected) -> bool:
    credit = expected.type_code in CREDIT_NOTE_CODES or expected.credit_note_root
    return credit != (expected.grand_total < 0)


@pytest.mark.parametrize("path", READABLE, ids=sample_id)
def test_sample_read_as_a_purchase_gives_the_files_figures(path):
    content = path.read_bytes()
    expected = stated(content)
    result = read_einvoice(content, company=_company(expected.buyer, name=expected.buyer.name))
    invoice = result.invoice
    refund = _is_refund(expected)
    assert invoice.type is (InvoiceType.SUPPLIER_REFUND if refund else InvoiceType.SUPPLIER_INVOICE)
    assert invoice.partner.name == _words(expected.seller.name)
    assert invoice.has_attachment and result.attachment.content == content
    _check_figures(invoice, expected)
    if sample_id(path) in ACCEPTED_FAILURES:
        assert any(ACCEPTED_FAILURES[sample_id(path)] in notice for notice in result.notices)


@pytest.mark.parametrize("path", READABLE, ids=sample_id)
def test_sample_read_as_a_sale_gives_the_files_figures(path):
    content = path.read_bytes()
    expected = stated(content)
    result = read_einvoice(content, company=_company(expected.seller, name=expected.seller.name))
    invoice = result.invoice
    refund = _is_refund(expected)
    assert invoice.type is (InvoiceType.CUSTOMER_REFUND if refund else InvoiceType.CUSTOMER_INVOICE)
    assert invoice.partner.name == _words(expected.buyer.name)
    _check_figures(invoice, expected)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_failing_sample_gets_the_invalid_code_naming_rule_and_field(name):
    content = (SAMPLES / name).read_bytes()
    expected = stated(content)
    with pytest.raises(EInvoiceError) as raised:
        read_einvoice(content, company=_company(expected.buyer, name=expected.buyer.name))
    error = raised.value
    rule, word = REFUSED[name]
    assert error.code is ErrorCode.EINVOICE_INVALID
    assert error.rule == rule
    assert error.message.startswith(f"{rule}:") and word in error.message
    assert error.field
    assert CATALOGUE[error.code].resolution
