"""The engine checks amounts as an accountant would (header split, each line's VAT, refund signs,
partner ids) and books in the ledger's own currency, whichever it is. No database, no network."""

from decimal import Decimal as D

import pytest

from connectors.canonical import Partner, TaxKind
from connectors.errors import ErrorCode
from syncs.config import VatRule
from syncs.engine import Posted, build_posting
from tests.unit.test_engine import (
    PURCHASE_REFUND,
    PURCHASES,
    SALES,
    SALES_REFUND,
    balanced,
    invoice,
    line,
    make_config,
    posted,
    rejected,
    rows,
)

# -- Header split ---------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_header_split_disagreeing_with_the_lines_fails_even_when_the_total_matches(type_):
    # Lines: 100.00 + 20.00 VAT; header: 100.50 + 19.50 = 120.00, the same total.
    inv = invoice(type_, untaxed_amount=D("100.50"), tax_amount=D("19.50"), total=D("120.00"))
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "untaxed_amount"
    assert "100.50" in result.message and "100.00" in result.message
    assert "19.50" in result.message and "20.00" in result.message


def test_header_vat_disagreeing_with_the_lines_within_a_matching_total_fails_on_the_vat():
    # Lines: 100.00 + 20.00. Header: untaxed 100.04 (within 0.05), VAT 19.92 (0.08 off), total
    # 119.96 (0.04 off, within the tolerance).
    inv = invoice(SALES, untaxed_amount=D("100.04"), tax_amount=D("19.92"), total=D("119.96"))
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "tax_amount"
    assert "19.92" in result.message and "20.00" in result.message and "-0.08" in result.message


def test_header_split_within_the_tolerance_is_posted_as_stated():
    # Per-document VAT rounding: three 0.33 lines at 20 % make 0.21 line by line, 0.20 stated.
    lines = [line("0.33", tax_amount=D("0.07"), total=D("0.40")) for _ in range(3)]
    inv = invoice(
        SALES, lines=lines, untaxed_amount=D("0.99"), tax_amount=D("0.20"), total=D("1.19")
    )
    assert balanced(posted(build_posting(inv, make_config())))


def test_header_split_is_checked_against_the_flows_own_tolerance():
    inv = invoice(SALES, untaxed_amount=D("100.50"), tax_amount=D("19.50"), total=D("120.00"))
    assert balanced(posted(build_posting(inv, make_config(rounding_tolerance=D("1.00")))))


# -- Each line's VAT ------------------------------------------------------------------------------


def _one_line_invoice(type_, item):
    return invoice(
        type_,
        lines=[item],
        untaxed_amount=item.untaxed_amount,
        tax_amount=item.tax_amount,
        total=item.untaxed_amount + item.tax_amount,
    )


@pytest.mark.parametrize("type_", [SALES, PURCHASES, SALES_REFUND, PURCHASE_REFUND])
def test_line_vat_far_from_base_times_rate_fails_with_line_validation(type_):
    item = line("100.00", rate="20.0", tax_amount=D("25.00"), total=D("125.00"))
    result = rejected(
        build_posting(_one_line_invoice(type_, item), make_config()), ErrorCode.LINE_VALIDATION
    )
    assert result.field == "lines[0].tax_amount"
    assert "25.00" in result.message and "20.00" in result.message and "20 %" in result.message


def test_line_vat_check_names_the_line_at_fault():
    good = line("100.00", rate="20.0")
    bad = line("50.00", rate="10.0", tax_amount=D("10.00"), total=D("60.00"))
    inv = invoice(
        SALES, lines=[good, bad], untaxed_amount=D("150.00"), tax_amount=D("30.00"),
        total=D("180.00"),
    )  # fmt: skip
    result = rejected(build_posting(inv, make_config()), ErrorCode.LINE_VALIDATION)
    assert result.field == "lines[1].tax_amount" and result.message.startswith("Line 2 ")


def test_line_vat_rounded_any_way_passes_even_with_a_zero_tolerance():
    # 0.33 × 20 % = 0.066: a tool may state 0.07 (rounded) or 0.06 (truncated).
    for stated in ("0.07", "0.06"):
        item = line("0.33", rate="20.0", tax_amount=D(stated), total=D("0.33") + D(stated))
        inv = _one_line_invoice(SALES, item)
        assert isinstance(build_posting(inv, make_config(rounding_tolerance=D("0"))), Posted)


def test_line_vat_just_beyond_rounding_and_tolerance_fails():
    # 100.00 × 20 % = 20.00; one cent of rounding + 0.05 of tolerance allow up to 20.06.
    ok = line("100.00", rate="20.0", tax_amount=D("20.06"), total=D("120.06"))
    assert isinstance(build_posting(_one_line_invoice(SALES, ok), make_config()), Posted)
    beyond = line("100.00", rate="20.0", tax_amount=D("20.07"), total=D("120.07"))
    rejected(
        build_posting(_one_line_invoice(SALES, beyond), make_config()), ErrorCode.LINE_VALIDATION
    )


@pytest.mark.parametrize(
    "kind", [TaxKind.REVERSE_CHARGE, TaxKind.INTRA_EU, TaxKind.EXEMPT, TaxKind.EXPORT, TaxKind.ZERO]
)
def test_line_whose_tax_charges_no_vat_is_not_checked_against_its_rate(kind):
    # A sale under a 20 % code that charges no VAT by law: the invoice states 0.00.
    item = line("100.00", rate="20.0", tax_amount=D("0.00"), total=D("100.00"), tax_kind=kind)
    p = posted(build_posting(_one_line_invoice(SALES, item), make_config()))
    assert rows(p)[:2] == [("4111", "100.00", "0"), ("706", "0", "100.00")]


def test_the_same_line_with_a_standard_tax_fails():
    item = line("100.00", rate="20.0", tax_amount=D("0.00"), total=D("100.00"))
    rejected(
        build_posting(_one_line_invoice(SALES, item), make_config()), ErrorCode.LINE_VALIDATION
    )


def test_line_without_a_rate_is_not_checked():
    config = make_config(sales_vat=(*make_config().sales_vat, _rule_for_tax_id("t-eco", "V20")))
    item = line("100.00", rate=None, tax_id="t-eco", tax_amount=D("23.00"), total=D("123.00"))
    assert isinstance(build_posting(_one_line_invoice(SALES, item), config), Posted)


def _rule_for_tax_id(tax_id, code):
    return VatRule(None, tax_id, code)


# -- Refunds and signs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_, collective",
    [(SALES_REFUND, ("4111", "0", "120.00")), (PURCHASE_REFUND, ("4011", "120.00", "0"))],
)
def test_refund_stated_positive_is_booked_as_a_credit_note(type_, collective):
    p = posted(build_posting(invoice(type_), make_config()))
    assert rows(p)[0] == collective and balanced(p)


@pytest.mark.parametrize("type_", [SALES_REFUND, PURCHASE_REFUND])
def test_refund_stated_negative_is_refused_not_booked_the_wrong_way_round(type_):
    item = line("-100.00", rate="20.0", tax_amount=D("-20.00"), total=D("-120.00"))
    inv = _one_line_invoice(type_, item)
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "total"
    assert "negative" in result.message and "-120.00" in result.message
    assert "positive" in result.message


def test_refund_with_a_negative_line_but_a_positive_total_is_booked():
    # A credit note for 120.00 less a 20.00 restocking fee (a negative line): nothing reversed.
    lines = [line("120.00", rate="0.0", tax_amount=D("0")), line("-20.00", rate="0.0")]
    inv = invoice(
        SALES_REFUND, lines=lines, untaxed_amount=D("100.00"), tax_amount=D("0.00"),
        total=D("100.00"),
    )  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert rows(p)[0] == ("4111", "0", "100.00")


# -- Partner id -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source_id", ["", "   "])
@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_partner_with_an_empty_id_fails_with_partner_validation(type_, source_id):
    inv = invoice(type_, partner=Partner(source_id=source_id, name="ACME SAS"))
    result = rejected(build_posting(inv, make_config()), ErrorCode.PARTNER_VALIDATION)
    assert result.field == "partner.source_id" and "ACME SAS" in result.message


# -- Company currency from the ledger -------------------------------------------------------------


@pytest.mark.parametrize(
    "company, rate, expected",
    [
        # An EUR invoice of 100.00 + 20.00 VAT in a USD ledger at 1 EUR = 1.0837 USD.
        ("USD", "1.0837", ["108.37", "21.67", "130.04"]),
        # ... and in a GBP ledger at 1 EUR = 0.8571 GBP.
        ("GBP", "0.8571", ["17.14", "85.71", "102.85"]),
        # ... and in a JPY ledger (no decimals) at 1 EUR = 161.23 JPY.
        ("JPY", "161.23", ["16123", "19348", "3225"]),
    ],
)
@pytest.mark.parametrize("type_", [SALES, PURCHASES, SALES_REFUND])
def test_eur_invoice_in_a_non_eur_ledger_is_booked_in_the_ledger_currency(
    type_, company, rate, expected
):
    inv = invoice(type_, currency="EUR", exchange_rate=D(rate))
    p = posted(build_posting(inv, make_config(company_currency=company)))
    assert p.currency == "EUR" and p.company_currency == company and balanced(p)
    assert sorted(str(x.debit + x.credit) for x in p.lines) == sorted(expected)
    # The invoice-currency amounts are stated as the invoice says them, signed like the line.
    assert sorted(abs(x.amount_currency) for x in p.lines) == [D("20.00"), D("100.00"), D("120.00")]
    for x in p.lines:
        assert (x.amount_currency > 0) == (x.debit > 0)


def test_invoice_in_the_ledger_currency_needs_no_rate_and_states_no_second_amount():
    inv = invoice(currency="USD", exchange_rate=None)
    p = posted(build_posting(inv, make_config(company_currency="USD")))
    assert p.company_currency == "USD" and all(x.amount_currency is None for x in p.lines)
    assert rows(p)[0] == ("4111", "120.00", "0")


def test_eur_invoice_in_a_usd_ledger_without_a_rate_asks_for_a_rate_to_usd():
    inv = invoice(currency="EUR", exchange_rate=None)
    result = rejected(
        build_posting(inv, make_config(company_currency="USD")), ErrorCode.AMOUNT_VALIDATION
    )
    assert result.field == "exchange_rate" and "to USD" in result.message


@pytest.mark.parametrize("company", ["", "EURO", "E1R", "€€€"])
def test_a_company_currency_that_is_not_a_code_is_a_configuration_error(company):
    result = rejected(
        build_posting(invoice(), make_config(company_currency=company)),
        ErrorCode.CONFIGURATION_INCOMPLETE,
    )
    assert result.field == "company_currency"
