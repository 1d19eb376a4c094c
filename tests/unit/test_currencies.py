"""The ISO 4217 list that currency codes typed by a person are checked against."""

import pytest

from connectors.canonical import _CURRENCY_EXPONENTS
from connectors.currencies import ISO_4217_CODES, is_currency_code


@pytest.mark.parametrize("code", ["EUR", "USD", "GBP", "CHF", "JPY", "XOF", "XPF", "ZWG", "XCG"])
def test_current_iso_4217_codes_are_currency_codes(code):
    assert is_currency_code(code)


@pytest.mark.parametrize("code", ["", "eur", "Eur", " EUR", "EURO", "EU", "XYZ", "ABC", "€", "123"])
def test_anything_else_is_not_a_currency_code(code):
    assert not is_currency_code(code)


def test_every_code_with_an_unusual_exponent_is_in_the_list():
    assert set(_CURRENCY_EXPONENTS) <= ISO_4217_CODES


def test_the_list_holds_only_three_capital_letters():
    assert len(ISO_4217_CODES) > 170
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in ISO_4217_CODES)
