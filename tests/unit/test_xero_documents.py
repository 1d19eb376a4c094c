"""A posting as a Xero document (connectors/providers/xero/documents.py): lines, tax types, line
tax amounts given only where Xero's own per-line rounding would differ, so the document's total
and each tax equal the posting's to the cent; the external id's place per document type."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.canonical import EntryLine, InvoiceType, Posting, TaxRole
from connectors.errors import ErrorCode, InvsyncError
from connectors.providers.xero.documents import (
    currency_rate,
    document_body,
    document_total,
    key_of,
    where_keys,
)

D = Decimal
RATES = {"OUTPUT2": D("20"), "RROUTPUT": D("5"), "INPUT2": D("20"), "NONE": D("0")}
DATE = dt.date(2026, 11, 30)


def sale(*lines: EntryLine, type_=InvoiceType.CUSTOMER_INVOICE, **kw) -> Posting:
    return Posting(
        journal="SALES", date=DATE, reference="INV-1", external_id="invsync:acct-1:invoice:1",
        currency=kw.pop("currency", "GBP"), company_currency="GBP", draft=kw.pop("draft", False),
        lines=lines, partner_name="Client", partner_ref="c-1", invoice_type=type_, **kw,
    )  # fmt: skip


def line(account, debit="0", credit="0", code=None, role=None, partner=None, currency=None):
    return EntryLine(
        account, D(debit), D(credit), "label", partner=partner, vat_code=code, tax_role=role,
        amount_currency=D(currency) if currency is not None else None,
    )  # fmt: skip


def test_three_lines_whose_per_line_rounding_differs_from_the_invoice_tax_total_keep_it():
    # 3 × 0.33 at 20 %: Xero would compute 0.07 a line (0.21); the invoice states 0.20.
    posting = sale(
        line("610", debit="1.19", partner="Client"),
        line("200", credit="0.33", code="OUTPUT2", role=TaxRole.BASE),
        line("200", credit="0.33", code="OUTPUT2", role=TaxRole.BASE),
        line("200", credit="0.33", code="OUTPUT2", role=TaxRole.BASE),
        line("820", credit="0.20", code="OUTPUT2", role=TaxRole.TAX),
    )
    body = document_body(posting, RATES, contact_id="c-1")
    assert body["Type"] == "ACCREC" and body["LineAmountTypes"] == "Exclusive"
    assert [i.get("TaxAmount") for i in body["LineItems"]] == [D("0.06"), None, None]
    assert document_total(body, RATES) == D("1.19")
    assert {i["AccountCode"] for i in body["LineItems"]} == {"200"}


def test_tax_amounts_are_left_to_xero_where_its_rounding_agrees():
    posting = sale(
        line("610", debit="141.00", partner="Client"),
        line("200", credit="100.00", code="OUTPUT2", role=TaxRole.BASE),
        line("260", credit="20.00", code="RROUTPUT", role=TaxRole.BASE),
        line("820", credit="20.00", code="OUTPUT2", role=TaxRole.TAX),
        line("820", credit="1.00", code="RROUTPUT", role=TaxRole.TAX),
    )
    body = document_body(posting, RATES, contact_id="c-1")
    assert all("TaxAmount" not in i for i in body["LineItems"])
    assert [i["TaxType"] for i in body["LineItems"]] == ["OUTPUT2", "RROUTPUT"]
    assert document_total(body, RATES) == D("141.00")


def test_a_rounding_line_carries_no_tax_even_on_a_taxed_type():
    posting = sale(
        line("610", debit="120.01", partner="Client"),
        line("200", credit="100.00", code="OUTPUT2", role=TaxRole.BASE),
        line("820", credit="20.00", code="OUTPUT2", role=TaxRole.TAX),
        line("860", credit="0.01", code="NONE", role=TaxRole.BASE),
    )
    body = document_body(posting, RATES, contact_id="c-1")
    assert document_total(body, RATES) == D("120.01")
    assert body["LineItems"][1]["AccountCode"] == "860"


def test_a_credit_note_and_a_bill_keep_positive_amounts_and_their_key():
    refund = sale(
        line("610", credit="120.00", partner="Client"),
        line("200", debit="100.00", code="OUTPUT2", role=TaxRole.BASE),
        line("820", debit="20.00", code="OUTPUT2", role=TaxRole.TAX),
        type_=InvoiceType.CUSTOMER_REFUND,
    )
    body = document_body(refund, RATES, contact_id="c-1")
    assert body["Type"] == "ACCRECCREDIT" and body["LineItems"][0]["LineAmount"] == D("100.00")
    assert body["Reference"] == refund.external_id and body["CreditNoteNumber"] == "INV-1"
    assert key_of(body, "CreditNotes") == refund.external_id

    bill = sale(
        line("800", credit="120.00", partner="Supplier"),
        line("429", debit="100.00", code="INPUT2", role=TaxRole.BASE),
        line("820", debit="20.00", code="INPUT2", role=TaxRole.TAX),
        type_=InvoiceType.SUPPLIER_INVOICE, draft=True,
    )  # fmt: skip
    body = document_body(bill, RATES, contact_id="c-1")
    assert body["Type"] == "ACCPAY" and body["Status"] == "DRAFT" and "Reference" not in body
    assert body["InvoiceNumber"] == f"INV-1 [{bill.external_id}]"
    assert key_of(body, "Invoices") == bill.external_id
    known = where_keys("Invoices", {bill.external_id: (False, "INV-1")})
    assert known == f'InvoiceNumber=="INV-1 [{bill.external_id}]"'
    after_a_crash = where_keys("Invoices", {bill.external_id: None})
    assert f'Type=="ACCPAY" AND InvoiceNumber.Contains("{bill.external_id}")' in after_a_crash


def test_a_foreign_currency_document_takes_the_invoice_amounts_and_xeros_rate():
    posting = sale(
        line("610", debit="100.00", partner="Client", currency="120.00"),
        line("200", credit="83.33", code="OUTPUT2", role=TaxRole.BASE, currency="-100.00"),
        line("820", credit="16.67", code="OUTPUT2", role=TaxRole.TAX, currency="-20.00"),
        currency="EUR",
    )
    rate = currency_rate(posting)
    assert rate == D("1.200000")  # EUR per GBP
    body = document_body(posting, RATES, contact_id="c-1", currency_rate=rate)
    assert body["CurrencyCode"] == "EUR" and body["CurrencyRate"] == D("1.200000")
    assert document_total(body, RATES) == D("120.00")


def test_a_posting_whose_lines_miss_its_total_is_refused_with_the_amount_code():
    posting = sale(line("610", debit="120.00", partner="Client"))
    with pytest.raises(InvsyncError) as raised:
        document_body(posting, RATES, contact_id="c-1")
    assert raised.value.code == ErrorCode.AMOUNT_VALIDATION
