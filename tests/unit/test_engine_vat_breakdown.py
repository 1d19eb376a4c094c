"""VAT as the invoice states it (its breakdown, EN16931 BG-23) and self-assessed VAT (reverse
charge, intra-EU acquisitions) in the posting engine. No database, no network."""

from dataclasses import replace
from decimal import Decimal as D

from connectors.canonical import Account, Direction, TaxBreakdown, TaxKind, TaxRole, VatCode
from connectors.errors import ErrorCode
from syncs.config import VatRule
from syncs.engine import LineOverride, build_posting
from tests.doubles import FRENCH_ACCOUNTS, FRENCH_VAT_CODES
from tests.unit.test_engine import (
    PURCHASE_REFUND,
    PURCHASES,
    SALES,
    balanced,
    invoice,
    line,
    make_config,
    posted,
    rejected,
    rows,
)

INTRA_CODES = (
    VatCode("AI20", D("20"), "TVA achat intracommunautaire 20 % (1)", "44566", Direction.PURCHASES),
    VatCode(
        "AI20D", D("-20"), "TVA achat intracommunautaire 20 % (2)", "4452", Direction.PURCHASES
    ),
)


def intra_config(**changes):
    config = make_config(**changes)
    target = replace(
        config.target,
        accounts=(*FRENCH_ACCOUNTS, Account("4452", "TVA due intracommunautaire")),
        vat_codes=(*FRENCH_VAT_CODES, *INTRA_CODES),
    )
    rules = (VatRule(None, "intra", "AI20", "AI20D"), *config.purchases_vat)
    return replace(config, target=target, purchases_vat=rules)


def marque_pages():
    """Two lines of 2.77 at 20 %: each line's VAT rounds to 0.55 (1.10 in all), the invoice
    rounds 5.54 × 20 % = 1.108 to 1.11, as Tryton and every e-invoice do."""
    lines = [line("2.77", tax_amount=D("0.55")), line("2.77", tax_amount=D("0.55"))]
    return lines, (TaxBreakdown(base=D("5.54"), amount=D("1.11"), rate=D("20")),)


# -- The stated breakdown ------------------------------------------------------------------------


def test_sales_vat_is_booked_as_the_breakdown_states_it_not_as_the_lines_sum():
    lines, taxes = marque_pages()
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("5.54"), tax_amount=D("1.11"),
                  total=D("6.65"))  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert rows(p) == [
        ("4111", "6.65", "0"),
        ("706", "0", "2.77"),
        ("706", "0", "2.77"),
        ("44571", "0", "1.11"),
    ]
    assert balanced(p)


def test_without_a_breakdown_the_lines_vat_is_booked_and_the_cent_goes_to_rounding():
    lines, _ = marque_pages()
    inv = invoice(SALES, lines, untaxed_amount=D("5.54"), tax_amount=D("1.11"), total=D("6.65"))
    p = posted(build_posting(inv, make_config()))
    assert ("44571", "0", "1.10") in rows(p) and ("758", "0", "0.01") in rows(p)


def test_purchase_refund_books_the_stated_vat_on_the_credit_side():
    lines, taxes = marque_pages()
    inv = invoice(PURCHASE_REFUND, lines, taxes=taxes, untaxed_amount=D("5.54"),
                  tax_amount=D("1.11"), total=D("6.65"))  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert rows(p)[0] == ("4011", "6.65", "0")
    assert ("44566", "0", "1.11") in rows(p) and balanced(p)


def test_breakdown_rows_mapped_to_one_code_add_up_into_one_vat_line():
    lines = [line("100.00", rate="20", tax_id="goods"), line("50.00", rate="20", tax_id="services")]
    taxes = (
        TaxBreakdown(D("100.00"), D("20.00"), D("20"), tax_id="goods"),
        TaxBreakdown(D("50.00"), D("10.00"), D("20"), tax_id="services"),
    )
    inv = invoice(SALES, lines, taxes=taxes)
    p = posted(build_posting(inv, make_config()))
    vat = [x for x in p.lines if x.tax_role is TaxRole.TAX]
    assert [(x.vat_code, x.credit) for x in vat] == [("V20", D("30.00"))]


def test_one_vat_line_per_code_with_each_codes_stated_amount():
    lines = [line("33.33", rate="20"), line("33.33", rate="5.5"), line("33.34", rate="5.5")]
    taxes = (
        TaxBreakdown(D("33.33"), D("6.67"), D("20")),
        TaxBreakdown(D("66.67"), D("3.67"), D("5.5")),
    )
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("100.00"), tax_amount=D("10.34"),
                  total=D("110.34"))  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    vat = {x.vat_code: x.credit for x in p.lines if x.tax_role is TaxRole.TAX}
    assert vat == {"V20": D("6.67"), "V55": D("3.67")}
    assert not [x for x in p.lines if x.account in ("758", "658")] and balanced(p)


def test_base_lines_keep_the_lines_own_amounts_and_codes():
    lines, taxes = marque_pages()
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("5.54"), tax_amount=D("1.11"),
                  total=D("6.65"))  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    bases = [(x.vat_code, x.credit) for x in p.lines if x.tax_role is TaxRole.BASE]
    assert bases == [("V20", D("2.77")), ("V20", D("2.77"))]


def test_rounding_line_covers_only_what_lines_and_breakdown_leave_against_the_total():
    # The header total is a cent above the lines plus the stated VAT (a document-level charge).
    lines, taxes = marque_pages()
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("5.55"), tax_amount=D("1.11"),
                  total=D("6.66"))  # fmt: skip
    p = posted(build_posting(inv, make_config()))
    assert ("44571", "0", "1.11") in rows(p) and ("758", "0", "0.01") in rows(p)


def test_breakdown_row_is_mapped_by_tax_id_before_rate():
    config = make_config(sales_vat=(VatRule(None, "t-55", "V55"), *make_config().sales_vat))
    taxes = (TaxBreakdown(D("100.00"), D("20.00"), D("20"), tax_id="t-55"),)
    inv = invoice(SALES, [line("100.00", rate="20", tax_id="t-55")], taxes=taxes)
    p = posted(build_posting(inv, config))
    assert [x.vat_code for x in p.lines if x.tax_role is TaxRole.TAX] == ["V55"]


def test_unmapped_breakdown_row_is_a_mapping_error_naming_the_row():
    taxes = (TaxBreakdown(D("100.00"), D("2.10"), D("2.1")),)
    inv = invoice(SALES, [line("100.00", rate="2.1")], taxes=taxes)
    result = rejected(build_posting(inv, make_config()), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert result.field in ("lines[0].tax_rate", "taxes[0].rate")


def test_breakdown_row_without_rule_follows_the_lines_overridden_code():
    taxes = (TaxBreakdown(D("100.00"), D("2.10"), D("2.1")),)
    inv = invoice(SALES, [line("100.00", rate="2.1")], taxes=taxes)
    result = build_posting(inv, make_config(), overrides={0: LineOverride(vat_code="V20")})
    p = posted(result)
    assert [(x.vat_code, x.credit) for x in p.lines if x.tax_role is TaxRole.TAX] == [
        ("V20", D("2.10"))
    ]


def test_breakdown_disagreeing_with_the_header_vat_is_an_amount_error():
    lines, _ = marque_pages()
    taxes = (TaxBreakdown(D("5.54"), D("1.12"), D("20")),)
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("5.54"), tax_amount=D("1.11"),
                  total=D("6.65"))  # fmt: skip
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "taxes" and "1.12" in result.message and "1.11" in result.message


def test_breakdown_amount_that_is_not_a_number_is_an_amount_error():
    lines, _ = marque_pages()
    taxes = (TaxBreakdown(D("5.54"), D("NaN"), D("20")),)
    inv = invoice(SALES, lines, taxes=taxes, untaxed_amount=D("5.54"), tax_amount=D("1.11"),
                  total=D("6.65"))  # fmt: skip
    result = rejected(build_posting(inv, make_config()), ErrorCode.AMOUNT_VALIDATION)
    assert result.field == "taxes[0].amount"


# -- Self-assessed VAT (reverse charge, intra-EU acquisitions) -------------------------------------


def intra_purchase(type=PURCHASES, taxes=None, untaxed="1000.00"):
    lines = [
        line(untaxed, rate="20", tax_id="intra", tax_amount=D("0"), total=D(untaxed),
             tax_kind=TaxKind.INTRA_EU)
    ]  # fmt: skip
    if taxes is None:
        taxes = (TaxBreakdown(D(untaxed), D("200.00"), D("20"), "intra", TaxKind.INTRA_EU),)
    return invoice(type, lines, taxes=taxes, untaxed_amount=D(untaxed), tax_amount=D("0"),
                   total=D(untaxed))  # fmt: skip


def test_intra_eu_acquisition_books_deductible_and_collected_vat_of_equal_amount():
    p = posted(build_posting(intra_purchase(), intra_config()))
    assert rows(p) == [
        ("4011", "0", "1000.00"),
        ("6071", "1000.00", "0"),
        ("44566", "200.00", "0"),
        ("4452", "0", "200.00"),
    ]
    assert [x.vat_code for x in p.lines[2:]] == ["AI20", "AI20D"]
    assert all(x.tax_role is TaxRole.TAX for x in p.lines[2:]) and balanced(p)


def test_self_assessed_vat_stated_as_zero_is_base_times_rate_quantized():
    taxes = (TaxBreakdown(D("333.33"), D("0"), D("20"), "intra", TaxKind.REVERSE_CHARGE),)
    p = posted(build_posting(intra_purchase(taxes=taxes, untaxed="333.33"), intra_config()))
    assert ("44566", "66.67", "0") in rows(p) and ("4452", "0", "66.67") in rows(p)


def test_self_assessed_vat_with_no_stated_rate_takes_the_deductible_codes_rate():
    taxes = (TaxBreakdown(D("50.00"), D("0"), D("0"), "intra", TaxKind.REVERSE_CHARGE),)
    p = posted(build_posting(intra_purchase(taxes=taxes, untaxed="50.00"), intra_config()))
    assert ("44566", "10.00", "0") in rows(p) and ("4452", "0", "10.00") in rows(p)


def test_self_assessed_refund_reverses_both_vat_lines():
    p = posted(build_posting(intra_purchase(PURCHASE_REFUND), intra_config()))
    assert ("44566", "0", "200.00") in rows(p) and ("4452", "200.00", "0") in rows(p)
    assert rows(p)[0] == ("4011", "1000.00", "0") and balanced(p)


def test_self_assessed_vat_never_touches_the_collective_total():
    p = posted(build_posting(intra_purchase(), intra_config()))
    collective = next(x for x in p.lines if x.partner)
    assert collective.credit == D("1000.00")
    assert not [x for x in p.lines if x.account in ("758", "658")]


def test_self_assessed_tax_mapped_without_a_collected_code_is_a_mapping_error():
    config = intra_config()
    config = replace(
        config, purchases_vat=(VatRule(None, "intra", "AI20"), *config.purchases_vat[1:])
    )
    result = rejected(build_posting(intra_purchase(), config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert "collected VAT code" in result.message


def test_collected_code_missing_from_the_accounting_tool_is_a_mapping_error():
    config = intra_config()
    config = replace(config, purchases_vat=(VatRule(None, "intra", "AI20", "NOPE"),))
    result = rejected(build_posting(intra_purchase(), config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert "NOPE" in result.message


def test_self_assessed_line_without_breakdown_books_the_pair_from_base_and_rate():
    p = posted(build_posting(intra_purchase(taxes=()), intra_config()))
    assert ("44566", "200.00", "0") in rows(p) and ("4452", "0", "200.00") in rows(p)
    assert balanced(p)


def test_self_assessed_and_charged_vat_on_one_invoice():
    lines = [
        line("1000.00", rate="20", tax_id="intra", tax_amount=D("0"), total=D("1000.00"),
             tax_kind=TaxKind.INTRA_EU),
        line("100.00", rate="20"),
    ]  # fmt: skip
    taxes = (
        TaxBreakdown(D("1000.00"), D("200.00"), D("20"), "intra", TaxKind.INTRA_EU),
        TaxBreakdown(D("100.00"), D("20.00"), D("20")),
    )
    inv = invoice(PURCHASES, lines, taxes=taxes, untaxed_amount=D("1100.00"),
                  tax_amount=D("20.00"), total=D("1120.00"))  # fmt: skip
    p = posted(build_posting(inv, intra_config()))
    assert rows(p)[0] == ("4011", "0", "1120.00")
    vat = [(x.vat_code, x.debit, x.credit) for x in p.lines if x.tax_role is TaxRole.TAX]
    assert vat == [
        ("A20", D("20.00"), D("0")),
        ("AI20", D("200.00"), D("0")),
        ("AI20D", D("0"), D("200.00")),
    ]
    assert balanced(p)


def test_sales_under_a_self_assessed_kind_book_no_vat_pair():
    # Reverse charge is the buyer's: the seller's invoice states no VAT and books none.
    lines = [line("500.00", rate="0", tax_amount=D("0"), tax_kind=TaxKind.INTRA_EU)]
    taxes = (TaxBreakdown(D("500.00"), D("0"), D("0"), None, TaxKind.INTRA_EU),)
    inv = invoice(SALES, lines, taxes=taxes, tax_amount=D("0"), total=D("500.00"))
    p = posted(build_posting(inv, make_config()))
    assert rows(p) == [("4111", "500.00", "0"), ("706", "0", "500.00")]
