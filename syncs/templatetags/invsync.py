"""Template filters of invsync's admin pages."""

from __future__ import annotations

from collections.abc import Mapping

from django import template

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
