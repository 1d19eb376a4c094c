"""Amounts and dates as accountants read them, in English and in French (connectors.formatting)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

from connectors.formatting import format_amount, format_date, format_money, format_rate

NBSP = "\u00a0"


def test_euro_amount_in_english_has_sign_thousands_separator_and_two_decimals():
    assert format_money(Decimal("125000.0000"), "EUR", language="en") == "€125,000.00"


def test_euro_amount_in_french_puts_the_sign_after_with_spaces_and_a_decimal_comma():
    assert format_money(Decimal("125000.0000"), "EUR", language="fr") == f"125{NBSP}000,00{NBSP}€"


def test_negative_amounts_keep_their_sign_in_both_languages():
    assert format_money(Decimal("-1234.5"), "EUR", language="en") == "-€1,234.50"
    assert format_money(Decimal("-1234.5"), "EUR", language="fr") == f"-1{NBSP}234,50{NBSP}€"


def test_currency_without_a_common_sign_shows_its_code():
    assert format_money(Decimal("1234.5"), "CHF", language="en") == f"1,234.50{NBSP}CHF"
    assert format_money(Decimal("1234.5"), "SEK", language="fr") == f"1{NBSP}234,50{NBSP}SEK"


@pytest.mark.parametrize(
    ("currency", "english", "french"),
    [
        ("JPY", "¥1,235", f"1{NBSP}235{NBSP}¥"),
        ("KWD", f"1,234.568{NBSP}KWD", f"1{NBSP}234,568{NBSP}KWD"),
    ],
)
def test_decimals_follow_the_currency_rounded_half_up(currency, english, french):
    assert format_money(Decimal("1234.5675"), currency, language="en") == english
    assert format_money(Decimal("1234.5675"), currency, language="fr") == french


def test_no_amount_is_empty_and_an_amount_without_currency_is_a_number():
    assert format_money(None, "EUR") == ""
    assert format_money("", "EUR") == ""
    assert format_amount("125000.5", "", language="fr") == f"125{NBSP}000,50"


def test_the_active_language_decides_when_none_is_given():
    with translation.override("fr"):
        assert format_money(Decimal("10"), "EUR") == f"10,00{NBSP}€"
    with translation.override("en"):
        assert format_money(Decimal("10"), "EUR") == "€10.00"


def test_dates_follow_the_language():
    day = dt.date(2026, 12, 31)
    assert format_date(day, language="fr") == "31/12/2026"
    assert format_date(day, language="en") == "12/31/2026"
    moment = dt.datetime(2026, 12, 31, 15, 4, tzinfo=dt.UTC)
    assert format_date(moment, language="fr") == "31/12/2026 15:04"
    assert format_date("2026-12-31", language="fr") == "31/12/2026"  # from a JSON snapshot


def test_money_filter_renders_the_record_total_for_the_active_language():
    template = Template("{% load invsync %}{{ total|money:currency }}")
    context = Context({"total": Decimal("125000.0000"), "currency": "EUR"})
    with translation.override("fr"):
        assert template.render(context) == f"125{NBSP}000,00{NBSP}€"
    with translation.override("en"):
        assert template.render(context) == "€125,000.00"


def test_vat_rates_use_the_language_decimal_mark_and_drop_trailing_zeros():
    assert format_rate(Decimal("5.5000"), language="fr") == f"5,5{NBSP}%"
    assert format_rate("2.1", language="en") == f"2.1{NBSP}%"
    assert format_rate(Decimal("20.0000"), language="fr") == f"20{NBSP}%"
    assert format_rate("—") == "—"
