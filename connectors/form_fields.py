"""Form fields that refuse what would crash a page: JSON too long or too deeply nested.

Python's JSON parser recurses once per nesting level: ten thousand ``[`` make it raise
RecursionError, which a form does not catch (a 500, whose DEBUG page echoes the form's data).
:class:`BoundedJSONField` refuses such text with a message on the field before parsing it.
"""

from __future__ import annotations

import json

from django import forms
from django.forms.fields import InvalidJSONInput


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` nests arrays or objects deeper than ``limit`` (brackets inside strings
    do not count). A linear scan, so that no parser recursion ever sees such a text."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class BoundedJSONField(forms.JSONField):
    """A JSON form field that refuses, with a message, text longer than ``max_chars`` or nested
    deeper than ``max_depth``, and anything else the parser cannot read; never crashes."""

    max_chars = 1_000_000
    max_depth = 100
    default_error_messages = {
        "too_long": "Too long: at most %(limit)s characters, not %(length)s.",
        "too_deep": "Nested too deeply: at most %(limit)s levels of lists and objects.",
    }

    def _too_big(self, text: str) -> bool:
        return len(text) > self.max_chars or json_depth_exceeds(text, self.max_depth)

    def to_python(self, value):
        if isinstance(value, str) and not isinstance(value, InvalidJSONInput):
            if len(value) > self.max_chars:
                raise forms.ValidationError(
                    self.error_messages["too_long"],
                    code="too_long",
                    params={"limit": f"{self.max_chars:,}", "length": f"{len(value):,}"},
                )
            if json_depth_exceeds(value, self.max_depth):
                raise forms.ValidationError(
                    self.error_messages["too_deep"],
                    code="too_deep",
                    params={"limit": self.max_depth},
                )
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            # Anything the parser cannot read without crashing is not valid JSON either.
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None

    def bound_data(self, data, initial):
        # Shown back as typed when it cannot be read (never parsed if it would crash the parser).
        if self.disabled:
            return initial
        if data is None:
            return None
        if self._too_big(data):
            return InvalidJSONInput(data)
        try:
            return json.loads(data, cls=self.decoder)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)
