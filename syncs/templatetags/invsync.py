"""Template filters of invsync's admin pages."""

from __future__ import annotations

from collections.abc import Mapping

from django import template

from connectors.formatting import format_amount, format_date, format_money, format_rate

register = template.Library()


@register.filter
def named(code, names: Mapping[str, str] | None) -> str:
    """An accounting tool's code with its name, when known: ``706`` and ``{"706": "Services"}``
    give ``706 — Services``. Empty for no code; the code alone for an unknown one."""
    if code in (None, ""):
        return ""
    code = str(code)
    name = (names or {}).get(code, "")
    return f"{code} — {name}" if name and name != code else code


@register.filter
def vat_code_named(code, labels: Mapping[str, str] | None) -> str:
    """A VAT code as people read it: its label ("TVA collectée 20 % · 44571", from
    mappings.lookups.lookup_names) when known, else the code. Empty for no code."""
    if code in (None, ""):
        return ""
    return (labels or {}).get(str(code)) or str(code)


@register.filter
def money(amount, currency: str = "") -> str:
    """``{{ record.total|money:record.currency }}``: ``€125,000.00`` in English, ``125 000,00 €``
    in French (connectors.formatting.format_money). Empty for no amount."""
    return format_money(amount, currency or "")


@register.filter
def amount(value, currency: str = "") -> str:
    """The number alone, grouped, with the currency's decimals (table cells whose column names the
    currency): ``125,000.00`` / ``125 000,00``."""
    return format_amount(value, currency or "")


@register.filter
def short_date(value) -> str:
    """A date, or a moment in local time, in the language's short format (``31/12/2026``)."""
    return format_date(value)


@register.filter
def rate(value) -> str:
    """A VAT rate with the language's decimal mark: ``5.5 %`` / ``5,5 %``."""
    return format_rate(value)
