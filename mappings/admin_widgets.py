"""Long selects rendered once per page.

The flow's page has a select of the accounting tool's VAT codes (60–80 of them) twice in every
VAT row, and selects of the chart's accounts (up to ~850 options): rendered in full, each row
repeated the same options and the page weighed 600 KB. :class:`SharedOptionsSelect` renders its
select with the chosen option only and a ``data-options`` key; the full option list is written
once per page per distinct list, in a ``<template>`` next to the first select that uses it, and
``invsync/shared_options.js`` copies it into every select of that key when the page loads (and
into the rows "Add another" creates). The form's field, its choices and its validation are
Django's own: only the markup changes.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from html import escape

from django import forms
from django.forms.utils import flatatt
from django.utils.safestring import mark_safe

__all__ = ["SharedOptionsSelect", "share_select_options", "sharing_select_options"]

# Smaller selects are rendered as Django renders them.
SHARED_FROM = 12


def _pairs(choices) -> tuple:
    """The choices as plain strings: ``(value, label)``, or ``(group, ((value, label), ...))``."""
    return tuple(
        (str(value), tuple(("" if v is None else str(v), str(lbl)) for v, lbl in label))
        if isinstance(label, (list, tuple))
        else ("" if value is None else str(value), str(label))
        for value, label in choices
    )


@functools.lru_cache(maxsize=64)
def _options(pairs: tuple) -> tuple[str, str, tuple]:
    """The key and the option markup of one list (a page's lists are the same on every row),
    and its options flattened, ``(value, escaped label)``."""

    def option(value: str, label: str) -> str:
        return f'<option value="{escape(value)}">{escape(label)}</option>'

    parts = [
        f'<optgroup label="{escape(value)}">{"".join(option(*o) for o in label)}</optgroup>'
        if isinstance(label, tuple)
        else option(value, label)
        for value, label in pairs
    ]
    html = "".join(parts)
    flat = tuple(
        (v, escape(lbl))
        for value, label in pairs
        for v, lbl in (label if isinstance(label, tuple) else ((value, label),))
    )
    return hashlib.blake2b(html.encode(), digest_size=8).hexdigest(), html, flat


class SharedOptionsSelect(forms.Select):
    """A select whose options are written once per page (see the module's docstring).

    ``rendered`` is the page's set of option lists already written (one set per request, shared
    by the form and its inlines)."""

    def __init__(self, attrs=None, choices=(), rendered: set | None = None):
        super().__init__(attrs, choices)
        self.rendered = rendered if rendered is not None else set()

    class Media:
        js = ("invsync/shared_options.js",)

    def options_key(self) -> tuple[str, str]:
        return _options(_pairs(self.choices))[:2]

    def render(self, name, value, attrs=None, renderer=None):
        # Written here rather than through Django's select templates: with the options left out
        # these are a few strings, and a page has up to a hundred such selects.
        key, html, pairs = _options(_pairs(self.choices))
        final = self.build_attrs(self.attrs, attrs)
        final.update({"name": name, "data-options": key})
        if self.allow_multiple_selected:
            final["multiple"] = True
        wanted = set(self.format_value(value))
        chosen = []
        for option_value, label in pairs:
            if option_value in wanted and (self.allow_multiple_selected or not chosen):
                chosen.append(f'<option value="{escape(option_value)}" selected>{label}</option>')
        select = f"<select{flatatt(final)}>{''.join(chosen)}</select>"
        if key not in self.rendered:
            self.rendered.add(key)
            select = f'<template id="invsync-options-{key}">{html}</template>{select}'
        return mark_safe(select)  # noqa: S308 - values and labels escaped


def _option_count(choices: list) -> int:
    return sum(len(label) if isinstance(label, (list, tuple)) else 1 for _value, label in choices)


def share_select_options(form: forms.BaseForm, rendered: set) -> None:
    """Give the form's long selects a :class:`SharedOptionsSelect` writing into ``rendered``."""
    for field in form.fields.values():
        widget = field.widget
        if (
            type(widget) is forms.Select
            and isinstance(widget.choices, list)  # not a queryset's: no query here
            and _option_count(widget.choices) >= SHARED_FROM
        ):
            # The same widget (attributes, choices already normalised), rendered the shared way.
            shared = copy.copy(widget)
            shared.__class__ = SharedOptionsSelect
            shared.rendered = rendered
            field.widget = shared


def sharing_select_options(form_class: type[forms.BaseForm], rendered: set) -> type:
    """``form_class`` whose instances share their long selects' options through ``rendered``."""

    def __init__(self, *args, **kwargs):
        form_class.__init__(self, *args, **kwargs)
        share_select_options(self, rendered)

    return type(form_class.__name__, (form_class,), {"__init__": __init__})
