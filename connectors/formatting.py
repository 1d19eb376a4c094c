"""Amounts and dates as people read them, in the user's language (the admin's presentation).

One place for it: the admin's columns, pages and messages call :func:`format_money` (templates use
the ``money`` filter of ``syncs/templatetags/invsync.py``). English writes ``€125,000.00`` (or
``125,000.00 CHF`` for a currency without a common sign); French ``125 000,00 €`` with a
non-breaking space between thousands and before the currency. Decimals follow the currency (two
for EUR, none for JPY, three for KWD), rounded half up as invoices are. Never for vendors' payloads
or files: those keep plain decimals.
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from decimal import Decimal, InvalidOperation

from django.utils import formats, translation
from django.utils.timezone import is_aware, localtime

from connectors.canonical import currency_exponent, quantize_money

NBSP = "\u00a0"

# Signs written before the amount in English; other currencies show their ISO code after it.
_ENGLISH_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
# French writes the sign after the amount; these are the ones a French accountant uses.
_FRENCH_SIGNS = {"EUR": "€", "USD": "$US", "GBP": "£", "JPY": "¥", "CHF": "CHF"}


def _language(language: str | None):
    return translation.override(language) if language else nullcontext()


def _decimal(amount) -> Decimal | None:
    if amount is None or amount == "":
        return None
    if isinstance(amount, Decimal):
        return amount
    try:
        return Decimal(str(amount))
    except InvalidOperation:
        return None


def format_amount(amount, currency: str = "", *, language: str | None = None) -> str:
    """The number alone, grouped and with the currency's decimals: ``125,000.00`` (en),
    ``125 000,00`` (fr). Empty for no amount; an unreadable value is shown as it is."""
    value = _decimal(amount)
    if value is None:
        return "" if amount in (None, "") else str(amount)
    decimals = currency_exponent(currency)
    with _language(language):
        return formats.number_format(
            quantize_money(value, currency), decimal_pos=decimals, use_l10n=True,
            force_grouping=True,
        )  # fmt: skip


def format_money(amount, currency: str = "", *, language: str | None = None) -> str:
    """The amount with its currency as the user's language writes it: ``€125,000.00``,
    ``-€12.50``, ``125,000.00 CHF`` (en); ``125 000,00 €``, ``-12,50 €`` (fr). Empty for no
    amount."""
    value = _decimal(amount)
    if value is None:
        return "" if amount in (None, "") else str(amount)
    code = (currency or "").upper()
    with _language(language):
        number = format_amount(abs(value), code)
        french = (translation.get_language() or "").startswith("fr")
    sign = "-" if quantize_money(value, code) < 0 else ""
    if not code:
        return f"{sign}{number}"
    if french:
        return f"{sign}{number}{NBSP}{_FRENCH_SIGNS.get(code, code)}"
    if code in _ENGLISH_SIGNS:
        return f"{sign}{_ENGLISH_SIGNS[code]}{number}"
    return f"{sign}{number}{NBSP}{code}"


def format_rate(rate, *, language: str | None = None) -> str:
    """A VAT rate as a percentage with the language's decimal mark: ``5.5 %`` (en), ``5,5 %``
    (fr); trailing zeros dropped (``20.0000`` is ``20 %``). Text that is not a number is kept."""
    value = _decimal(rate)
    if value is None:
        return "" if rate in (None, "") else str(rate)
    normal = value.normalize()
    if normal == normal.to_integral():
        normal = normal.quantize(Decimal(1))
    with _language(language):
        return f"{formats.number_format(normal, use_l10n=True)}{NBSP}%"


def format_date(value, *, language: str | None = None) -> str:
    """A date (or the local date and time of a moment) in the language's short format:
    ``12/31/2026`` (en), ``31/12/2026`` (fr); ISO text is read first. Empty for none."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):  # an ISO date from a JSON snapshot or preview
        try:
            value = (dt.datetime if "T" in value else dt.date).fromisoformat(value)
        except ValueError:
            return value
    with _language(language):
        if isinstance(value, dt.datetime):
            moment = localtime(value) if is_aware(value) else value
            return formats.date_format(moment, "SHORT_DATETIME_FORMAT")
        return formats.date_format(value, "SHORT_DATE_FORMAT")
