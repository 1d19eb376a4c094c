"""Account settings take accounts by the kind the target reports, whatever its chart numbers them;
the French chart's classes are only the fallback for a target that reports numbers alone."""

from connectors.canonical import Account, AccountKind
from mappings.accounts import (
    ACCOUNT_FIELD_KINDS,
    account_fits,
    account_kind,
    account_kind_problem,
    kind_from_number,
)
from mappings.suggestions import suggest, suggest_account

K = AccountKind

# A chart that numbers nothing the French way and says what each account is (as Xero does).
UK_CHART = (
    Account("200", "Sales", kind=K.REVENUE),
    Account("310", "Cost of goods sold", kind=K.EXPENSE),
    Account("610", "Accounts receivable", kind=K.RECEIVABLE),
    Account("800", "Accounts payable", kind=K.PAYABLE),
    Account("820", "VAT", kind=K.TAX),
    Account("860", "Rounding", kind=K.OTHER),
    Account("4111", "Bank charges", kind=K.EXPENSE),  # a French-looking number, not a customer
)


def test_the_kind_the_target_reports_wins_over_the_number():
    bank_charges = Account("4111", kind=K.EXPENSE)
    assert account_kind(bank_charges) is K.EXPENSE
    assert not account_fits(bank_charges, "customer_collective_account")
    assert account_fits(Account("610", kind=K.RECEIVABLE), "customer_collective_account")


def test_a_number_alone_is_read_with_the_french_classes():
    assert [kind_from_number(n) for n in ("4111", "4011", "44571", "6071", "706", "512")] == [
        K.RECEIVABLE, K.PAYABLE, K.TAX, K.EXPENSE, K.REVENUE, K.UNKNOWN,
    ]  # fmt: skip
    assert account_kind(Account("4011")) is K.PAYABLE
    assert not account_fits(Account("512"), "rounding_credit_account")  # unknown fits nothing


def test_each_setting_takes_the_kinds_of_its_role():
    assert ACCOUNT_FIELD_KINDS["customer_collective_account"] == (K.RECEIVABLE,)
    assert ACCOUNT_FIELD_KINDS["supplier_collective_account"] == (K.PAYABLE,)
    assert ACCOUNT_FIELD_KINDS["default_sales_account"] == (K.REVENUE,)
    assert ACCOUNT_FIELD_KINDS["default_purchases_account"] == (K.EXPENSE,)
    assert account_fits(Account("758", kind=K.OTHER), "rounding_credit_account")
    assert account_fits(Account("658", kind=K.EXPENSE), "rounding_debit_account")
    assert not account_fits(Account("658", kind=K.EXPENSE), "rounding_credit_account")


def test_an_account_of_another_kind_is_a_problem_that_names_both_kinds():
    problem = account_kind_problem("supplier_collective_account", "610", UK_CHART)
    assert problem == (
        "The account 610 is a receivable account in the accounting tool; this setting takes a "
        "payable account."
    )
    assert account_kind_problem("supplier_collective_account", "800", UK_CHART) is None
    assert account_kind_problem("supplier_collective_account", "999", UK_CHART) is None  # missing
    assert account_kind_problem("supplier_collective_account", "", UK_CHART) is None


def test_suggestions_in_another_chart_take_the_only_account_of_the_kind_never_a_french_number():
    proposed = suggest(source_rates=[], vat_codes=[], accounts=UK_CHART, journals=[]).accounts
    assert proposed == {
        "default_sales_account": "200",
        "customer_collective_account": "610",
        "supplier_collective_account": "800",
    }  # 4111 is an expense here; two expense accounts: a person chooses


def test_french_numbers_are_proposed_only_where_they_are_of_the_right_kind():
    chart = [Account("758", kind=K.OTHER), Account("658", kind=K.REVENUE)]
    assert suggest_account(chart, ("758",), "rounding_credit_account") == "758"
    assert suggest_account(chart, ("658",), "rounding_debit_account") is None
