"""Admin forms of the syncs app. They present and collect; syncs.services validates and writes."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.forms import BoundField
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.canonical import Direction, TargetLookups
from mappings.lookups import vat_code_label
from syncs import selectors as sync_selectors
from syncs.models import SyncedRecord
from syncs.selectors import SnapshotLine

KEEP_ACCOUNT = _("— as on the invoice, else the flow's default —")
KEEP_VAT_CODE = _("— from the flow's VAT mapping —")


def _field_name(index: int, key: str) -> str:
    return f"line_{index}_{key}"


@dataclass(frozen=True)
class OverrideRow:
    line: SnapshotLine
    account: BoundField
    vat_code: BoundField


class RecordOverridesForm(forms.Form):
    """One optional account and one optional VAT code per line of the record's snapshot.

    With cached target lookups both are selects (active accounts; VAT codes of the invoice's
    direction); without, plain text. Either way the posted value is passed as typed to
    syncs.services.record_overrides_set, which alone decides what is acceptable (and says why not).
    """

    def __init__(
        self,
        *args,
        record: SyncedRecord,
        lookups: TargetLookups | None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self.lines = sync_selectors.record_lines(record)
        current = sync_selectors.record_overrides(record)
        direction = sync_selectors.record_direction(record)
        for line in self.lines:
            override = current.get(line.index)
            for key, initial, choices in (
                ("account", override and override.account, self._account_choices(lookups)),
                ("vat_code", override and override.vat_code, self._vat_choices(lookups, direction)),
            ):
                name = _field_name(line.index, key)
                field = forms.CharField(
                    label=(
                        gettext("Line %(number)d account")
                        if key == "account"
                        else gettext("Line %(number)d VAT code")
                    )
                    % {"number": line.index + 1},
                    required=False,
                    max_length=50,
                    initial=initial or "",
                    widget=self._widget(name, key, line, initial, choices),
                )
                if choices is not None:
                    field.widget.attrs.pop("maxlength", None)  # not an attribute of <select>
                self.fields[name] = field

    @staticmethod
    def _account_choices(lookups: TargetLookups | None) -> list[tuple[str, str]] | None:
        if lookups is None:
            return None
        return [
            (a.number, f"{a.number} — {a.name}" if a.name else a.number)
            for a in sorted(lookups.accounts, key=lambda a: a.number)
            if a.active
        ]

    @staticmethod
    def _vat_choices(
        lookups: TargetLookups | None, direction: Direction | None
    ) -> list[tuple[str, str]] | None:
        if lookups is None or not lookups.vat_codes:
            return None
        return [
            (v.code, vat_code_label(v))  # by name and account, not the tool's key
            for v in lookups.vat_codes
            if direction is None or v.direction is None or v.direction is direction
        ]

    def _widget(self, name, key, line, initial, choices) -> forms.Widget:
        if choices is None:
            placeholder = (
                (line.account_number or gettext("flow default"))
                if key == "account"
                else gettext("mapped")
            )
            return forms.TextInput(attrs={"size": 12, "placeholder": placeholder})
        # Keep a stored or posted value that the lists no longer offer visible, flagged, so the
        # page shows what is there (and the service says what is wrong with it).
        shown = {value for value, _ in choices}
        extra = [initial] if initial else []
        if self.is_bound and self.data.get(self.add_prefix(name)):
            extra.append(self.data[self.add_prefix(name)])
        flagged = [
            (value, gettext("%(value)s (not offered by the accounting tool)") % {"value": value})
            for value in dict.fromkeys(extra)
            if value not in shown
        ]
        blank = KEEP_ACCOUNT if key == "account" else KEEP_VAT_CODE
        return forms.Select(choices=[("", blank), *flagged, *choices])

    def rows(self) -> list[OverrideRow]:
        return [
            OverrideRow(
                line,
                self[_field_name(line.index, "account")],
                self[_field_name(line.index, "vat_code")],
            )
            for line in self.lines
        ]

    def lines_data(self) -> dict[int, dict[str, str]]:
        """The cleaned values in the shape record_overrides_set takes."""
        return {
            line.index: {
                key: self.cleaned_data.get(_field_name(line.index, key), "")
                for key in ("account", "vat_code")
            }
            for line in self.lines
        }

    def add_service_errors(self, error: ValidationError) -> None:
        """Put the service's errors (keyed ``lines[<i>].<key>``) on the matching fields."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for where, messages in error.message_dict.items():
            name = None
            if where.startswith("lines[") and "]." in where:
                index, key = where[len("lines[") :].split("].", 1)
                name = _field_name(int(index), key)
            self.add_error(name if name in self.fields else None, messages)
