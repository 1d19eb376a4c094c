"""The posting engine, rule by rule, in both directions. No database, no network."""

import datetime as dt
from dataclasses import replace
from decimal import Decimal as D

import pytest

from connectors.canonical import (
    Direction,
    InvoiceStatus,
    InvoiceType,
    Partner,
    TargetLookups,
    TaxRole,
    VatCode,
)
from connectors.errors import ErrorCode
from syncs.config import FlowConfig, VatRule
from syncs.engine import LineOverride, Posted, Rejected, Skipped, Waiting, build_posting
from tests.doubles import FRENCH_ACCOUNTS, FRENCH_JOURNALS, FRENCH_VAT_CODES
from tests.factories import InvoiceFactory, InvoiceLineFactory

SALES, PURCHASES = InvoiceType.CUSTOMER_INVOICE, InvoiceType.SUPPLIER_INVOICE
SALES_REFUND, PURCHASE_REFUND = InvoiceType.CUSTOMER_REFUND, InvoiceType.SUPPLIER_REFUND


def make_config(**changes) -> FlowConfig:
    base = FlowConfig(
        sales_journal="REV",
        purchases_journal="EXP",
        sales_default="706",
        purchases_default="6071",
        customer_collective="4111",
        supplier_collective="4011",
        rounding_credit="758",
        rounding_debit="658",
        sales_discount="709",
        purchases_discount="609",
        sales_vat=(
            VatRule(D("20"), None, "V20"),
            VatRule(D("10"), None, "V10"),
            VatRule(D("5.5"), None, "V55"),
            VatRule(D("0"), None, "V0"),
        ),
        purchases_vat=(
            VatRule(D("20"), None, "A20"),
            VatRule(D("10"), None, "A10"),
            VatRule(D("5.5"), None, "A55"),
            VatRule(D("0"), None, "A0"),
        ),
        sales_rounding_vat="V0",
        purchases_rounding_vat="A0",
        target=TargetLookups(
            accounts=FRENCH_ACCOUNTS,
            vat_codes=FRENCH_VAT_CODES,
            journals=tuple(j.code for j in FRENCH_JOURNALS),
        ),
    )
    return replace(base, **changes)


def invoice(type=SALES, lines=None, **changes):
    lines = tuple(lines) if lines is not None else (InvoiceLineFactory(),)
    return InvoiceFactory(type=type, lines=lines, **changes)


def line(untaxed="100.00", rate="20.0", **changes):
    rate = None if rate is None else D(rate)
    return InvoiceLineFactory(untaxed_amount=D(untaxed), tax_rate=rate, **changes)


def posted(result):
    assert isinstance(result, Posted), result
    return result.posting


def rejected(result, code):
    assert isinstance(result, Rejected), result
    assert result.code == code, result
    return result


def rows(posting):
    """(account, debit, credit) per line, as strings ("0" for an empty side), for readability."""
    return [
        (
            line.account,
            str(line.debit) if line.debit else "0",
            str(line.credit) if line.credit else "0",
        )
        for line in posting.lines
    ]


def balanced(posting):
    return posting.total_debit == posting.total_credit


# -- Directions and refunds ---------------------------------------------------------------------


def test_sales_invoice_debits_customer_collective_and_credits_revenue_and_vat():
    p = posted(build_posting(invoice(SALES), make_config(), external_id="x-1"))
    assert rows(p) == [("4111", "120.00", "0"), ("706", "0", "100.00"), ("44571", "0", "20.00")]
    assert p.lines[0].partner == p.partner_name and p.lines[1].partner is None
    assert p.journal == "REV" and p.external_id == "x-1" and balanced(p)


def test_purchase_invoice_credits_supplier_collective_and_debits_expense_and_vat():
    p = posted(build_posting(invoice(PURCHASES), make_config()))
    assert rows(p) == [("4011", "0", "120.00"), ("6071", "100.00", "0"), ("44566", "20.00", "0")]
    assert p.journal == "EXP" and balanced(p)


def test_sales_refund_inverts_the_sales_sides():
    p = posted(build_posting(invoice(SALES_REFUND), make_config()))
    assert rows(p) == [("4111", "0", "120.00"), ("706", "100.00", "0"), ("44571", "20.00", "0")]
    assert p.journal == "REV"


def test_purchase_refund_inverts_the_purchase_sides():
    p = posted(build_posting(invoice(PURCHASE_REFUND), make_config()))
    assert rows(p) == [("4011", "120.00", "0"), ("6071", "0", "100.00"), ("44566", "0", "20.00")]
    assert p.journal == "EXP"


def test_posting_header_carries_dates_reference_and_draft_flag():
    inv = invoice(SALES, number="F-9", issue_date=dt.date(2026, 5, 2), due_date=dt.date(2026, 6, 1))
    p = posted(build_posting(inv, make_config(draft=True)))
    assert (p.date, p.due_date, p.reference, p.draft) == (
        dt.date(2026, 5, 2), dt.date(2026, 6, 1), "F-9", True,
    )  # fmt: skip
    assert p.lines[0].maturity_date == dt.date(2026, 6, 1)


def test_negative_line_on_a_sales_invoice_is_posted_on_the_opposite_side():
    inv = invoice(SALES, lines=[line("100.00"), line("-10.00", description="Goodwill")])
    p = posted(build_posting(inv, make_config()))
    assert ("706", "10.00", "0") in rows(p) and ("44571", "0", "18.00") in rows(p)
    assert balanced(p)


# -- Line accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize("type_, given", [(SALES, "707"), (PURCHASES, "6063")])
def test_line_account_from_invoicing_tool_is_used_when_active(type_, given):
    p = posted(build_posting(invoice(type_, lines=[line(account_number=given)]), make_config()))
    assert p.lines[1].account == given


@pytest.mark.parametrize("type_, default", [(SALES, "706"), (PURCHASES, "6071")])
def test_unknown_line_account_falls_back_to_the_default_account(type_, default):
    p = posted(build_posting(invoice(type_, lines=[line(account_number="999999")]), make_config()))
    assert p.lines[1].account == default


@pytest.mark.parametrize("type_, default", [(SALES, "706"), (PURCHASES, "6071")])
def test_inactive_line_account_falls_back_to_the_default_account(type_, default):
    inactive = "411" if type_ is SALES else "607"
    p = posted(build_posting(invoice(type_, lines=[line(account_number=inactive)]), make_config()))
    assert p.lines[1].account == default


@pytest.mark.parametrize(
    "type_, field", [(SALES, "sales_default"), (PURCHASES, "purchases_default")]
)
def test_missing_default_account_fails_with_account_not_found(type_, field):
    config = make_config(**{field: "999"})
    result = rejected(
        build_posting(invoice(type_, lines=[line(account_number="888")]), config),
        ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
    )
    assert result.field == f"accounts.{field}"
    assert "888 does not exist" in result.message and "999" in result.message


@pytest.mark.parametrize(
    "type_, field", [(SALES, "sales_default"), (PURCHASES, "purchases_default")]
)
def test_inactive_default_account_fails_with_account_not_active(type_, field):
    config = make_config(**{field: "607"})
    rejected(build_posting(invoice(type_), config), ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE)


@pytest.mark.parametrize(
    "type_, field", [(SALES, "sales_default"), (PURCHASES, "purchases_default")]
)
def test_unset_default_account_fails_with_account_not_found(type_, field):
    result = rejected(
        build_posting(invoice(type_), make_config(**{field: None})),
        ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
    )
    assert "no default" in result.message


@pytest.mark.parametrize(
    "type_, field", [(SALES, "customer_collective"), (PURCHASES, "supplier_collective")]
)
def test_inactive_collective_account_fails(type_, field):
    rejected(
        build_posting(invoice(type_), make_config(**{field: "411"})),
        ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
    )


def test_line_override_replaces_the_line_account_and_vat_code():
    inv = invoice(SALES, lines=[line(rate="5.5")])
    overrides = {0: LineOverride(account="707", vat_code="V20")}
    p = posted(build_posting(inv, make_config(sales_vat=()), overrides=overrides))
    assert p.lines[1].account == "707" and p.lines[1].vat_code == "V20"


# -- VAT ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_, code", [(SALES, "V55"), (PURCHASES, "A55")])
def test_vat_rate_is_mapped_to_the_direction_code(type_, code):
    p = posted(build_posting(invoice(type_, lines=[line(rate="5.50")]), make_config()))
    assert p.lines[1].vat_code == code and p.lines[1].tax_role is TaxRole.BASE
    assert p.lines[2].vat_code == code and p.lines[2].tax_role is TaxRole.TAX


def test_tax_lines_are_one_per_vat_code_with_summed_amounts():
    inv = invoice(SALES, lines=[line("100.00"), line("50.00"), line("10.00", rate="5.5")])
    p = posted(build_posting(inv, make_config()))
    taxes = [(x.vat_code, str(x.credit), x.label) for x in p.lines if x.tax_role is TaxRole.TAX]
    assert taxes == [("V20", "30.00", "VAT 20 %"), ("V55", "0.55", "VAT 5.5 %")]


def test_source_tax_id_mapping_wins_over_the_rate():
    config = make_config(sales_vat=(VatRule(D("20"), None, "V20"), VatRule(None, "t-intra", "V0")))
    inv = invoice(SALES, lines=[line(rate="20.0", tax_id="t-intra")])
    assert posted(build_posting(inv, config)).lines[1].vat_code == "V0"


@pytest.mark.parametrize("type_, word", [(SALES, "Sales"), (PURCHASES, "Purchase")])
def test_unmapped_vat_rate_fails_with_mapping_tax_rate_not_found(type_, word):
    inv = invoice(type_, lines=[line(), line("10.00", rate="2.1")])
    result = rejected(build_posting(inv, make_config()), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert result.message == f"{word} VAT rate 2.1 % is not mapped to a VAT code."
    assert result.field == "lines[1].tax_rate"


def test_sales_mapping_is_not_used_for_purchases():
    config = make_config(purchases_vat=(VatRule(D("10"), None, "A10"),))
    rejected(build_posting(invoice(PURCHASES), config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_line_without_rate_or_tax_id_fails_with_line_validation(type_):
    inv = invoice(type_, lines=[line(rate=None, tax_amount=D("0"), total=D("100.00"))])
    result = rejected(build_posting(inv, make_config()), ErrorCode.LINE_VALIDATION)
    assert result.field == "lines[0].tax_rate"


def test_mapped_vat_code_missing_in_the_target_fails():
    config = make_config(sales_vat=(VatRule(D("20"), None, "GONE"),))
    rejected(build_posting(invoice(SALES), config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)


def test_zero_rate_line_keeps_its_vat_code_and_gets_no_tax_line():
    p = posted(build_posting(invoice(SALES, lines=[line(rate="0")]), make_config()))
    assert rows(p) == [("4111", "100.00", "0"), ("706", "0", "100.00")]
    assert p.lines[1].vat_code == "V0"


def test_vat_code_without_account_gives_a_tax_line_without_account():
    codes = (VatCode("V20", D("20"), "TVA 20", None, Direction.SALES),)
    config = make_config(target=replace(make_config().target, vat_codes=codes))
    p = posted(build_posting(invoice(SALES), config))
    assert p.lines[2].account is None and p.lines[2].vat_code == "V20"


# -- Rounding and amount validation --------------------------------------------------------------


def test_sales_invoice_with_short_total_gets_credit_rounding_line():
    # Three lines of 0.33 at 20 %: 0.07 tax each, lines 1.20; the tool states 1.19... inverse:
    # lines 1.18, total 1.19 → the credit side is short by 0.01 → 758.
    lines = [line("0.33", tax_amount=D("0.06"), total=D("0.39")) for _ in range(2)]
    lines.append(line("0.34", tax_amount=D("0.06"), total=D("0.40")))
    inv = invoice(
        SALES, lines=lines, untaxed_amount=D("1.00"), tax_amount=D("0.19"), total=D("1.19")
    )
    p = posted(build_posting(inv, make_config()))
    assert p.lines[-1].account == "758" and str(p.lines[-1].credit) == "0.01"
    assert p.lines[-1].vat_code == "V0" and balanced(p)


def test_sales_invoice_with_long_lines_gets_debit_rounding_line():
    lines = [line("0.33", tax_amount=D("0.07"), total=D("0.40")) for _ in range(3)]
    inv = invoice(
        SALES, lines=lines, untaxed_amount=D("0.99"), tax_amount=D("0.20"), total=D("1.19")
    )
    p = posted(build_posting(inv, make_config()))
    assert p.lines[-1].account == "658" and str(p.lines[-1].debit) == "0.01" and balanced(p)


def test_purchase_invoice_with_short_total_gets_debit_rounding_line():
    lines = [line("0.33", tax_amount=D("0.06"), total=D("0.39")) for _ in range(2)]
    lines.append(line("0.34", tax_amount=D("0.06"), total=D("0.40")))
    inv = invoice(
        PURCHASES, lines=lines, untaxed_amount=D("1.00"), tax_amount=D("0.19"), total=D("1.19")
    )
    p = posted(build_posting(inv, make_config()))
    assert p.lines[-1].account == "658" and str(p.lines[-1].debit) == "0.01"
    assert p.lines[-1].vat_code == "A0" and balanced(p)


def test_purchase_invoice_with_long_lines_gets_credit_rounding_line():
    lines = [line("0.33", tax_amount=D("0.07"), total=D("0.40")) for _ in range(3)]
    inv = invoice(
        PURCHASES, lines=lines, untaxed_amount=D("0.99"), tax_amount=D("0.20"), total=D("1.19")
    )
    p = posted(build_posting(inv, make_config()))
    assert p.lines[-1].account == "758" and str(p.lines[-1].credit) == "0.01" and balanced(p)


def test_sales_refund_with_short_total_gets_debit_rounding_line():
    lines = [line("0.33", tax_amount=D("0.06"), total=D("0.39")) for _ in range(2)]
    lines.append(line("0.34", tax_amount=D("0.06"), total=D("0.40")))
    inv = invoice(
        SALES_REFUND, lines=lines, untaxed_amount=D("1.00"), tax_amount=D("0.19"), total=D("1.19")
    )
    p = posted(build_posting(inv, make_config()))
    assert p.lines[-1].account == "658" and str(p.lines[-1].debit) == "0.01" and balanced(p)


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_difference_beyond_tolerance_fails_with_amount_validation(type_):
    inv = invoice(type_, untaxed_amount=D("100.00"), tax_amount=D("20.50"), total=D("120.50"))
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "lines" and "0.50" in result.message


def test_difference_within_a_raised_tolerance_is_posted_as_rounding():
    inv = invoice(SALES, untaxed_amount=D("100.00"), tax_amount=D("20.50"), total=D("120.50"))
    p = posted(build_posting(inv, make_config(rounding_tolerance=D("1.00"))))
    assert p.lines[-1].account == "758" and str(p.lines[-1].credit) == "0.50"


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_header_that_does_not_add_up_fails_with_amount_validation(type_):
    inv = invoice(type_, untaxed_amount=D("100.00"), tax_amount=D("20.00"), total=D("121.00"))
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "total"


def test_missing_rounding_account_fails_only_when_a_rounding_line_is_needed():
    config = make_config(rounding_credit=None)
    posted(build_posting(invoice(SALES), config))
    inv = invoice(SALES, untaxed_amount=D("100.00"), tax_amount=D("20.01"), total=D("120.01"))
    result = rejected(build_posting(inv, config), ErrorCode.ACCOUNT_NUMBER_NOT_FOUND)
    assert result.field == "accounts.rounding_credit"


# -- Discounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_, product, discount",
    [(SALES, ("706", "0", "100.00"), ("709", "10.00", "0")),
     (PURCHASES, ("6071", "100.00", "0"), ("609", "0", "10.00"))],
)  # fmt: skip
def test_separate_discounts_post_gross_and_discount_apart(type_, product, discount):
    inv = invoice(type_, lines=[line("90.00", discount_amount=D("10.00"))])
    p = posted(build_posting(inv, make_config(separate_discounts=True)))
    assert product in rows(p) and discount in rows(p) and balanced(p)
    assert p.lines[2].vat_code == p.lines[1].vat_code  # the discount reduces the same VAT base


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_netted_discounts_post_the_net_amount_only(type_):
    inv = invoice(type_, lines=[line("90.00", discount_amount=D("10.00"))])
    p = posted(build_posting(inv, make_config(separate_discounts=False)))
    assert len(p.lines) == 3 and "90.00" in {str(p.lines[1].debit), str(p.lines[1].credit)}


def test_separate_discounts_without_discount_account_fails():
    inv = invoice(SALES, lines=[line("90.00", discount_amount=D("10.00"))])
    config = make_config(separate_discounts=True, sales_discount=None)
    rejected(build_posting(inv, config), ErrorCode.ACCOUNT_NUMBER_NOT_FOUND)


# -- Labels ---------------------------------------------------------------------------------------


def labelled(mode, type_=SALES):
    partner = Partner(source_id="c-1", name="ACME SAS")
    inv = invoice(type_, number="F-7", partner=partner, lines=[line(description="Audit")])
    return [x.label for x in posted(build_posting(inv, make_config(label_mode=mode))).lines]


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_label_mode_partner_then_description(type_):
    assert labelled("partner_then_description", type_) == ["ACME SAS", "Audit", "VAT 20 %"]


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_label_mode_partner_on_all_lines(type_):
    assert labelled("partner", type_) == ["ACME SAS"] * 3


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_label_mode_partner_and_description(type_):
    assert labelled("partner_and_description", type_) == [
        "ACME SAS - F-7", "ACME SAS - Audit", "ACME SAS - VAT 20 %",
    ]  # fmt: skip


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_label_mode_partner_and_number(type_):
    assert labelled("partner_and_number", type_) == ["ACME SAS - F-7"] * 3


def test_unknown_label_mode_is_a_configuration_error():
    rejected(
        build_posting(invoice(), make_config(label_mode="x")), ErrorCode.CONFIGURATION_INCOMPLETE
    )


# -- Journals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_, journal", [(SALES, "REV"), (PURCHASES, "EXP")])
def test_journal_per_direction(type_, journal):
    assert posted(build_posting(invoice(type_), make_config())).journal == journal


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_journal_per_source_journal(type_):
    config = make_config(journals_by_source={"VT": "REV", "HA": "MISC"})
    inv = invoice(type_, journal_code="HA")
    assert posted(build_posting(inv, config)).journal == "MISC"


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_unmapped_source_journal_fails_with_mapping_journal_not_found(type_):
    config = make_config(journals_by_source={"VT": "REV"})
    rejected(
        build_posting(invoice(type_, journal_code="ZZ"), config),
        ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
    )


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_invoice_without_journal_when_mapped_one_by_one_fails_with_journal_not_linked(type_):
    config = make_config(journals_by_source={"VT": "REV"})
    result = rejected(
        build_posting(invoice(type_, journal_code=None), config), ErrorCode.JOURNAL_NOT_LINKED
    )
    assert result.field == "journal_code"


@pytest.mark.parametrize(
    "type_, field", [(SALES, "sales_journal"), (PURCHASES, "purchases_journal")]
)
def test_unset_direction_journal_fails_with_mapping_journal_not_found(type_, field):
    rejected(
        build_posting(invoice(type_), make_config(**{field: None})),
        ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
    )


def test_journal_absent_from_the_target_fails():
    rejected(
        build_posting(invoice(), make_config(sales_journal="NOPE")),
        ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
    )


# -- Scope, start date, attachment, status -------------------------------------------------------


@pytest.mark.parametrize(
    "scope, type_, skipped",
    [("sales", PURCHASES, True), ("sales", SALES_REFUND, False), ("purchases", SALES, True),
     ("purchases", PURCHASE_REFUND, False), ("both", SALES, False), ("both", PURCHASES, False)],
)  # fmt: skip
def test_scope_skips_the_other_direction(scope, type_, skipped):
    result = build_posting(invoice(type_), make_config(scope=scope))
    assert isinstance(result, Skipped) is skipped


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_invoice_before_the_start_date_is_skipped(type_):
    config = make_config(start_date=dt.date(2026, 3, 2))
    result = build_posting(invoice(type_, issue_date=dt.date(2026, 3, 1)), config)
    assert isinstance(result, Skipped) and "start date" in result.reason
    posted(build_posting(invoice(type_, issue_date=dt.date(2026, 3, 2)), config))


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_invoice_without_pdf_waits_when_the_flow_requires_one(type_):
    config = make_config(sync_without_attachment=False)
    assert build_posting(invoice(type_, has_attachment=False), config) == Waiting("attachment")
    posted(build_posting(invoice(type_, has_attachment=True), config))


def test_invoice_without_pdf_is_posted_when_the_flow_allows_it():
    posted(build_posting(invoice(has_attachment=False), make_config(sync_without_attachment=True)))


def test_configuration_errors_are_reported_before_waiting_for_a_pdf():
    config = make_config(sync_without_attachment=False, sales_vat=())
    rejected(
        build_posting(invoice(has_attachment=False), config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
    )


@pytest.mark.parametrize("status", [InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED])
def test_draft_and_cancelled_invoices_are_skipped(status):
    assert isinstance(build_posting(invoice(status=status), make_config()), Skipped)


def test_paid_invoice_is_posted():
    posted(build_posting(invoice(status=InvoiceStatus.PAID), make_config()))


# -- Partner --------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_invoice_without_partner_fails_with_partner_validation(type_):
    rejected(
        build_posting(invoice(type_, partner=None), make_config()), ErrorCode.PARTNER_VALIDATION
    )


def test_partner_without_name_fails_with_partner_validation():
    inv = invoice(partner=Partner(source_id="c-1", name="  "))
    result = rejected(build_posting(inv, make_config()), ErrorCode.PARTNER_VALIDATION)
    assert result.field == "partner.name"


# -- Foreign currency -----------------------------------------------------------------------------


@pytest.mark.parametrize("type_", [SALES, PURCHASES])
def test_foreign_currency_converts_to_company_currency_and_keeps_invoice_amounts(type_):
    inv = invoice(type_, currency="USD", exchange_rate=D("0.9"))
    p = posted(build_posting(inv, make_config()))
    assert p.currency == "USD" and p.company_currency == "EUR" and balanced(p)
    amounts = sorted(str(x.debit + x.credit) for x in p.lines)
    assert amounts == ["108.00", "18.00", "90.00"]
    assert sorted(abs(x.amount_currency) for x in p.lines) == [D("20.00"), D("100.00"), D("120.00")]


def test_foreign_currency_conversion_rounding_is_absorbed_by_the_collective_line():
    lines = [line("33.33", rate="20.0"), line("33.33", rate="20.0"), line("33.34", rate="20.0")]
    inv = invoice(SALES, currency="USD", exchange_rate=D("0.9137"), lines=lines)
    p = posted(build_posting(inv, make_config()))
    assert balanced(p)
    assert all(x.debit == x.debit.quantize(D("0.01")) for x in p.lines)


def test_foreign_currency_without_exchange_rate_fails_with_amount_validation():
    result = rejected(
        build_posting(invoice(currency="USD", exchange_rate=None), make_config()),
        ErrorCode.AMOUNT_VALIDATION,
    )
    assert result.field == "exchange_rate"


def test_company_currency_invoice_has_no_currency_amounts():
    p = posted(build_posting(invoice(), make_config()))
    assert all(x.amount_currency is None for x in p.lines)


def test_zero_decimal_currency_is_quantized_to_units():
    inv = invoice(
        currency="JPY", exchange_rate=D("0.0062"),
        lines=[line("1000", tax_amount=D("100"), total=D("1100"), rate="10.0")],
    )  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert balanced(p) and {abs(x.amount_currency) for x in p.lines} == {
        D("1100"),
        D("1000"),
        D("100"),
    }


# -- Odd input ------------------------------------------------------------------------------------


def test_invoice_without_lines_fails_with_line_validation():
    inv = invoice(lines=[], untaxed_amount=D("0"), tax_amount=D("0"), total=D("0"))
    rejected(build_posting(inv, make_config()), ErrorCode.LINE_VALIDATION)


def test_all_zero_invoice_is_skipped_not_posted_empty():
    inv = invoice(lines=[line("0.00", tax_amount=D("0.00"), total=D("0.00"))])
    assert isinstance(build_posting(inv, make_config()), Skipped)


def test_non_finite_amount_is_an_amount_error_not_an_exception():
    inv = invoice(total=D("NaN"))
    rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)


def test_amounts_with_more_decimals_than_the_currency_are_rounded_and_balanced():
    inv = invoice(
        lines=[line("33.333", tax_amount=D("6.6666"), total=D("39.9996"))],
        untaxed_amount=D("33.333"), tax_amount=D("6.667"), total=D("40.00"),
    )  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert balanced(p) and str(p.lines[0].debit) == "40.00"
