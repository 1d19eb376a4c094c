"""The flow's admin forms: every mapping choice is a select filled from the flow's accounting tool
(its lists come from mappings.services.flow_lookups_load, read once per page and cached), and
saving refuses a value the tool does not have. Without lists (a tool that cannot be reached and
was never read, a flow without folder yet) the fields stay plain text inputs.

The forms present and check; the rules live in mappings.lookups (what a value's problem is),
mappings.checklist (the setup checklist) and mappings.services (whether the flow may be enabled)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.canonical import Direction
from connectors.errors import InvsyncError
from connectors.selectors import connector_class_for
from mappings.accounts import (
    ACCOUNT_FIELD_KINDS,
    account_fits,
    account_kind,
    account_kind_problem,
    field_kinds_text,
    kind_name,
)
from mappings.capabilities import drafts_refused
from mappings.checklist import VatRow, needs_collected_code, vat_row_for
from mappings.lookups import (
    JOURNAL_FIELDS,
    VAT_CODE_FIELD_DIRECTIONS,
    FlowLookups,
    account_label,
    account_problem,
    folder_label,
    folder_problem,
    journal_label,
    journal_problem,
    source_tax_label,
    vat_code_label,
    vat_code_problem,
)
from mappings.models import JournalMapping, SyncFlow, VatMapping
from mappings.selectors import FLOW_RELATION_FIELDS, flow_configuration_fields
from mappings.services import (
    MAX_SCHEDULE_MINUTES,
    flow_enabling_check,
    flow_shared_ledger_check,
    flow_validate_connections,
    vat_mapping_key,
)

BLANK = ("", "---------")
FOLDER_FIRST_HELP = (
    "Choose the accounting folder above and save: this list then comes from the accounting tool."
)


NOT_IN_TOOL = "not in the accounting tool"


def _drafts_refused(connection) -> str | None:
    """Why ``connection``'s tool cannot take drafts (None: it can, or its provider is not
    installed, which the connection fields say)."""
    try:
        return drafts_refused(connector_class_for(connection))
    except InvsyncError:
        return None


def _choice_values(choices: list) -> set[str]:
    values = set()
    for value, label in choices:
        if isinstance(label, list | tuple):
            values.update(v for v, _ in label)
        else:
            values.add(value)
    return values


def _use_select(
    field: forms.Field,
    choices: list,
    current: Iterable[str],
    note: Callable[[str], str],
    help_text: str = "",
) -> None:
    """Turn a text field into a select of ``choices`` that still shows the ``current`` values the
    tool does not offer, flagged with ``note(value)``: nothing is lost silently, and saving says
    what is wrong with them."""
    offered = _choice_values(choices)
    extra = []
    for value in current:
        if value not in offered:
            offered.add(value)
            extra.append((value, f"{value} ({note(value)})"))
    field.widget = forms.Select(choices=[BLANK, *extra, *choices])
    if help_text:
        field.help_text = f"{field.help_text} {help_text}".strip()


def _account_note(value: str, accounts) -> str:
    found = next((a for a in accounts if a.number == value), None)
    if found is None:
        return NOT_IN_TOOL
    if not found.active:
        return f"{account_label(found)}, inactive"
    return gettext("%(account)s, a %(kind)s account") % {
        "account": account_label(found),
        "kind": kind_name(account_kind(found)),
    }


def _vat_note(value: str, direction: str | None, vat_codes) -> str:
    found = next((v for v in vat_codes if v.code == value), None)
    if found is None:
        return NOT_IN_TOOL
    if direction and found.direction is not None and found.direction != Direction(direction):
        return f"{vat_code_label(found)}, a {found.direction.value} code"
    return vat_code_label(found)


class LookupFormMixin:
    """A form whose selects come from the flow's lookups (``lookups`` is set per request)."""

    lookups: ClassVar[FlowLookups | None] = None

    def _current(self, name: str) -> list[str]:
        values = [self.initial.get(name)]
        if self.is_bound:
            values.append(self.data.get(self.add_prefix(name)))
        return [str(v) for v in values if v not in (None, "")]


class SyncFlowAdminForm(LookupFormMixin, forms.ModelForm):
    # How to read the lookups for another folder or connection than the stored flow's (the admin
    # sets it with ``lookups``), so that a value is checked against the folder it is saved with.
    load_lookups: ClassVar[Callable[[SyncFlow], FlowLookups] | None] = None

    # Not a flow field: the person's confirmation that the flow may share its ledger.
    confirm_shared_ledger = forms.BooleanField(
        label=_("Share the ledger with another flow"),
        required=False,
        help_text=_(
            "Asked only when another enabled flow reads the same invoicing account and "
            "writes to the same accounting folder: tick it once you have read which flow and what "
            "happens, then save again."
        ),
    )

    class Meta:
        model = SyncFlow
        fields = (*FLOW_RELATION_FIELDS, *flow_configuration_fields())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The mapping rows saved with this form (set when the enabling check ran), for the
        # services' own check.
        self.prospective_mappings: dict[str, list[dict]] = {}
        # The other flows the person confirmed sharing the ledger with (set by clean).
        self.shared_ledger_confirmed: list[int] = []
        if self.lookups is not None:
            self._use_lookups(self.lookups)
        self._offer_drafts()

    def _offer_drafts(self) -> None:
        """A target without draft entries is not offered them: the box is disabled (a flow that
        has it ticked keeps it, and saving says why it cannot)."""
        field = self.fields.get("draft_entries")
        if field is None or not self.instance.accounting_connection_id:
            return
        if refused := _drafts_refused(self.instance.accounting_connection):
            field.disabled = not self.instance.draft_entries
            field.help_text = f"{field.help_text} {refused}".strip()

    def _use_lookups(self, lookups: FlowLookups) -> None:
        fields = self.fields
        if lookups.folders is not None and "folder" in fields:
            _use_select(
                fields["folder"],
                [(f.id, folder_label(f)) for f in lookups.folders],
                self._current("folder"),
                lambda value: NOT_IN_TOOL,
                _("The folders the accounting connection can write to."),
            )
            if not self.initial.get("folder") and len(lookups.folders) == 1:
                self.initial["folder"] = lookups.folders[0].id
        folder_first = not lookups.folder
        if lookups.accounts is not None:
            for name in ACCOUNT_FIELD_KINDS:
                if name not in fields:
                    continue
                _use_select(
                    fields[name],
                    [
                        (a.number, account_label(a))
                        for a in lookups.accounts
                        if a.active and account_fits(a, name)
                    ],
                    self._current(name),
                    lambda value: _account_note(value, lookups.accounts),
                    gettext("Active %(kinds)s accounts of the accounting tool.")
                    % {"kinds": field_kinds_text(name)},
                )
        if lookups.vat_codes is not None:
            for name, direction in VAT_CODE_FIELD_DIRECTIONS.items():
                if name not in fields:
                    continue
                _use_select(
                    fields[name],
                    [
                        (v.code, vat_code_label(v))
                        for v in lookups.vat_codes
                        if v.direction in (None, direction)
                    ],
                    self._current(name),
                    lambda value, d=direction: _vat_note(value, d, lookups.vat_codes),
                )
        if lookups.journals is not None:
            for name in JOURNAL_FIELDS:
                if name in fields:
                    _use_select(
                        fields[name],
                        [(j.code, journal_label(j)) for j in lookups.journals],
                        self._current(name),
                        lambda value: NOT_IN_TOOL,
                    )
        if folder_first:
            for name in (*ACCOUNT_FIELD_KINDS, *VAT_CODE_FIELD_DIRECTIONS, *JOURNAL_FIELDS):
                if name in fields:
                    fields[name].help_text = f"{fields[name].help_text} {FOLDER_FIRST_HELP}".strip()

    # -- validation ------------------------------------------------------------------------------

    def clean(self):
        cleaned = super().clean()
        client = cleaned.get("client")
        if client is not None:
            try:
                flow_validate_connections(
                    client=client,
                    invoicing_connection=cleaned.get("invoicing_connection"),
                    accounting_connection=cleaned.get("accounting_connection"),
                )
            except ValidationError as exc:
                for field_name, errors in exc.message_dict.items():
                    if field_name in self.cleaned_data:
                        self.add_error(field_name, errors)
        minutes = cleaned.get("schedule_minutes")
        if minutes and minutes > MAX_SCHEDULE_MINUTES:
            self.add_error(
                "schedule_minutes", f"Run at least every {MAX_SCHEDULE_MINUTES} minutes."
            )
        target = cleaned.get("accounting_connection")
        refused = target is not None and cleaned.get("draft_entries") and _drafts_refused(target)
        if refused:
            self.add_error("draft_entries", f"{refused} Untick this box.")
        lookups = self._lookups_for(cleaned)
        if lookups is not None:
            self._check_against(lookups, cleaned)
        if cleaned.get("enabled") and not self.errors:
            self._check_enabling(cleaned)
        return cleaned

    def _lookups_for(self, cleaned: dict) -> FlowLookups | None:
        """The lookups of the connection and folder being saved: those the form was built with,
        or else read (cache first) for the new ones."""
        target = cleaned.get("accounting_connection")
        if target is None or "accounting_connection" in self.errors:
            return None
        folder = cleaned.get("folder") or ""
        if (
            self.lookups is not None
            and self.instance.pk
            and self.instance.accounting_connection_id == target.pk
            and self.lookups.folder == folder
        ):
            return self.lookups
        if self.load_lookups is None:
            return None
        return type(self).load_lookups(
            SyncFlow(
                accounting_connection=target,
                invoicing_connection=cleaned.get("invoicing_connection"),
                folder=folder,
            )
        )

    def _check_against(self, lookups: FlowLookups, cleaned: dict) -> None:
        folder = cleaned.get("folder") or ""
        if problem := folder_problem(folder, lookups.folders):
            self.add_error("folder", problem)
        elif folder and lookups.folders is not None:
            chosen = next(f for f in lookups.folders if f.id == folder)
            if folder != self.instance.folder or not cleaned.get("folder_name"):
                cleaned["folder_name"] = chosen.name
            if folder != self.instance.folder and chosen.currency:
                cleaned["company_currency"] = chosen.currency
        for name in ACCOUNT_FIELD_KINDS:
            value = cleaned.get(name) or ""
            if problem := account_problem(value, lookups.accounts) or account_kind_problem(
                name, value, lookups.accounts
            ):
                self.add_error(name, problem)
        for name, direction in VAT_CODE_FIELD_DIRECTIONS.items():
            if problem := vat_code_problem(cleaned.get(name) or "", direction, lookups.vat_codes):
                self.add_error(name, problem)
        for name in JOURNAL_FIELDS:
            if problem := journal_problem(cleaned.get(name) or "", lookups.journals):
                self.add_error(name, problem)

    def _mapping_rows(self) -> dict[str, list[dict]] | None:
        """The mapping rows the admin's inlines are about to save (None: an inline is invalid,
        its own errors say why)."""
        rows: dict[str, list[dict]] = {}
        for key, formset in getattr(self.instance, "_mapping_formsets", {}).items():
            if not formset.is_valid():
                return None
            rows[key] = [
                form.cleaned_data
                for form in formset.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE")
            ]
        return rows

    def _check_enabling(self, cleaned: dict) -> None:
        rows = self._mapping_rows()
        if rows is None:
            return
        flow = SyncFlow(
            **{f.attname: getattr(self.instance, f.attname) for f in SyncFlow._meta.concrete_fields}
        )
        for name, value in cleaned.items():
            setattr(flow, name, value)
        before = SyncFlow.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        try:
            flow_enabling_check(flow=flow, before=before, **rows)
        except ValidationError as exc:
            self.add_error("enabled", exc.message_dict["enabled"])
            return
        self.prospective_mappings = rows
        try:
            flow_shared_ledger_check(flow=flow, before=before)
        except ValidationError as exc:
            shared = exc.error_dict["enabled"][0]
            if cleaned.get("confirm_shared_ledger"):
                self.shared_ledger_confirmed = list(shared.params["flows"])
            else:
                self.add_error("confirm_shared_ledger", shared.message)


# -- Inlines ---------------------------------------------------------------------------------


class MappingFormSet(forms.BaseInlineFormSet):
    """Registers itself on the flow being edited, so that the flow's form can check the setup
    with the rows about to be saved (the admin builds the inlines before it validates the
    flow's form, on the same flow instance)."""

    mapping_key: ClassVar[str] = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.mapping_key:
            self.instance.__dict__.setdefault("_mapping_formsets", {})[self.mapping_key] = self


class VatMappingFormSet(MappingFormSet):
    mapping_key = "vat_mappings"

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        # A row maps the source taxes no other row takes (a row naming a tax wins over the
        # row of its rate): the row reads its siblings to say which, and to check them.
        form.siblings = self
        return form

    def clean(self):
        super().clean()
        # The database lets rows without a rate repeat (NULLs are distinct): check here.
        seen = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if form.cleaned_data.get("DELETE"):
                continue
            key = vat_mapping_key(form.cleaned_data)
            if key in seen:
                raise ValidationError(_("A source rate or tax is mapped twice."))
            seen.add(key)


class JournalMappingFormSet(MappingFormSet):
    mapping_key = "journal_mappings"


class VatMappingForm(LookupFormMixin, forms.ModelForm):
    source_name = forms.CharField(
        label=_("name in the invoicing tool"),
        required=False,
        disabled=True,
        help_text=_("The invoicing tool's name for this rate or tax, where it was read."),
    )

    class Meta:
        model = VatMapping
        fields = ("direction", "source_rate", "source_tax_id", "target_code", "collected_code")
        labels = {"source_tax_id": _("source tax")}
        help_texts = {
            "source_tax_id": _(
                "Map one tax of the invoicing tool instead of a rate (it wins over the rate)."
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rate = self.initial.get("source_rate")
        if self.instance.pk and isinstance(rate, Decimal):
            # A saved rate as written ("20", "5.5"), not in the column's three decimals.
            # (A Decimal still, so that an unchanged row is no change: "20" == 20.000.)
            self.initial["source_rate"] = Decimal(format(rate.normalize(), "f"))
        lookups = self.lookups
        if lookups is None:
            return
        direction = self._direction()
        if lookups.source_rates is not None and not self.initial.get("source_name"):
            self.initial["source_name"] = self._source_name(lookups, direction)
        if lookups.source_rates is not None and "source_tax_id" in self.fields:
            self._use_source_taxes(lookups, direction)
        if lookups.vat_codes is None or "target_code" not in self.fields:
            return
        if direction:
            choices = [
                (v.code, vat_code_label(v))
                for v in lookups.vat_codes
                if v.direction in (None, Direction(direction))
            ]
        else:
            choices = [
                (
                    label,
                    [(v.code, vat_code_label(v)) for v in lookups.vat_codes if v.direction == d],
                )
                for label, d in (
                    (_("Sales"), Direction.SALES),
                    (_("Purchases"), Direction.PURCHASES),
                    (_("Both"), None),
                )
            ]
            choices = [group for group in choices if group[1]]
        for name in ("target_code", "collected_code"):
            if name in self.fields:
                _use_select(
                    self.fields[name],
                    choices,
                    self._current(name),
                    lambda value: _vat_note(value, direction, lookups.vat_codes),
                )

    def _use_source_taxes(self, lookups: FlowLookups, direction: str) -> None:
        """The source tax as a select of the invoicing tool's taxes, by name and rate (their ids
        are the tool's keys, not something people read)."""
        taxes = [t for t in lookups.source_rates or () if t.tax_id]
        if not taxes:
            return

        def options(wanted):
            found = {str(t.tax_id): source_tax_label(t) for t in taxes if t.direction in wanted}
            return sorted(found.items(), key=lambda item: item[1])

        if direction:
            choices = options({Direction(direction)})
        else:
            choices = [
                (label, group)
                for label, group in (
                    (_("Sales"), options({Direction.SALES})),
                    (_("Purchases"), options({Direction.PURCHASES})),
                )
                if group
            ]
        _use_select(
            self.fields["source_tax_id"],
            choices,
            self._current("source_tax_id"),
            lambda value: _("not a tax of the invoicing tool"),
        )

    # -- How the row reads (the inline's template shows them) -----------------------------------

    def _value(self, name: str):
        if self.is_bound:
            return self.data.get(self.add_prefix(name)) or ""
        value = self.initial.get(name)
        if value is None:
            value = getattr(self.instance, name, None)
        return "" if value is None else value

    @property
    def source_names(self) -> str:
        """The invoicing tool's names of the taxes this row maps, where they were read."""
        return str(self.initial.get("source_name") or "")

    @property
    def section(self) -> str:
        """The group the row is shown in: sales, purchases, or new rows."""
        direction = self._direction()
        return str(Direction(direction).value) if direction else ""

    @property
    def section_label(self) -> str:
        return {
            "sales": _("Sales"),
            "purchases": _("Purchases"),
        }.get(self.section, _("New rows"))

    def _vat_row(self) -> VatRow:
        try:
            rate = Decimal(str(self._value("source_rate"))) if self._value("source_rate") else None
        except ArithmeticError:
            rate = None
        return VatRow(self._direction(), rate, str(self._value("source_tax_id")), "")

    def _is_deleted(self) -> bool:
        return self.is_bound and bool(self.data.get(self.add_prefix("DELETE")))

    def _source_taxes(self) -> list:
        """The invoicing tool's taxes this row maps, as the engine matches them: among this row
        and its siblings (the formset's other rows), a row naming a tax wins over its rate's."""
        if self.lookups is None or self.lookups.source_rates is None or not self._direction():
            return []
        row = self._vat_row()
        siblings = getattr(self, "siblings", None)
        others = [
            form._vat_row()
            for form in (siblings.forms if siblings is not None else ())
            if form is not self and not form._is_deleted() and form._direction()
        ]
        return [s for s in self.lookups.source_rates if vat_row_for(s, [row, *others]) is row]

    def _code_text(self, code: str) -> str:
        codes = self.lookups.vat_codes if self.lookups is not None else None
        found = next((v for v in codes or () if v.code == code), None)
        return vat_code_label(found) if found is not None else code

    @property
    def row_title(self) -> str:
        """The row as people name it: "Sales 20 %", "Purchases T.V.A. Achat Intracommunautaire
        (20 %)"; for the error summary."""
        tax_id = str(self._value("source_tax_id"))
        what = ""
        if tax_id:
            taxes = (
                [t for t in self.lookups.source_rates or () if str(t.tax_id) == tax_id]
                if (self.lookups is not None)
                else []
            )
            what = source_tax_label(taxes[0]) if taxes else _("a tax of the invoicing tool")
        elif self._value("source_rate") != "":
            try:
                what = f"{Decimal(str(self._value('source_rate'))).normalize():f} %"
            except ArithmeticError:
                what = str(self._value("source_rate"))
        direction = self._direction()
        if not direction and not what:
            return str(_("new row"))
        label = {"sales": _("Sales"), "purchases": _("Purchases")}.get(direction, "")
        return f"{label} {what}".strip()

    @property
    def reverse_charge_help(self) -> str:
        """What is booked for a reverse-charge (self-assessed) tax this row maps; "" otherwise."""
        self_assessed = [s for s in self._source_taxes() if s.kind.self_assessed]
        if not self_assessed:
            return ""
        names = ", ".join(dict.fromkeys(s.name or source_tax_label(s) for s in self_assessed))
        target = str(self._value("target_code"))
        if self._direction() == Direction.SALES:
            return _(
                "Reverse charge (%(names)s): the customer self-assesses the VAT. The sale is "
                "booked without VAT, its base under %(code)s."
            ) % {"names": names, "code": self._code_text(target) or _("the VAT code chosen")}
        collected = str(self._value("collected_code"))
        if not collected:
            return _(
                "Reverse charge (%(names)s): the invoice states no VAT and you self-assess it. "
                "Choose the collected VAT code: without it every invoice with this tax fails."
            ) % {"names": names}
        rates = {s.rate for s in self_assessed if s.rate is not None}
        rate = f"{rates.pop().normalize():f} %" if len(rates) == 1 else _("the tax's rate")
        return _(
            "Reverse charge (%(names)s): the invoice states no VAT and you self-assess it. "
            "invsync books %(rate)s of the base twice: as deductible VAT on %(deductible)s "
            "(debit) and as VAT due on %(collected)s (credit). The two cancel out; the "
            "supplier's total is unchanged."
        ) % {
            "names": names,
            "rate": rate,
            "deductible": self._code_text(target) or _("the VAT code chosen"),
            "collected": self._code_text(collected),
        }

    def _direction(self) -> str:
        if self.is_bound:
            value = self.data.get(self.add_prefix("direction"))
        else:
            value = self.initial.get("direction") or self.instance.direction
        return value if value in {d.value for d in Direction} else ""

    def _source_name(self, lookups: FlowLookups, direction: str) -> str:
        tax_id = self.initial.get("source_tax_id") or self.instance.source_tax_id
        rate = self.initial.get("source_rate", self.instance.source_rate)
        rate = None if rate in (None, "") else Decimal(str(rate))  # a saved rate reads "20"
        names = [
            s.name
            for s in lookups.source_rates or ()
            if s.name
            and s.direction.value == direction
            and (s.tax_id == tax_id if tax_id else rate is not None and s.rate == rate)
        ]
        return ", ".join(dict.fromkeys(names))

    def clean(self):
        cleaned = super().clean()
        if self.lookups is not None:
            direction = cleaned.get("direction")
            for name in ("target_code", "collected_code"):
                code = cleaned.get(name) or ""
                if problem := vat_code_problem(code, direction, self.lookups.vat_codes):
                    self.add_error(name, problem)
            self._check_reverse_charge(cleaned)
        return cleaned

    def _check_reverse_charge(self, cleaned: dict) -> None:
        """A purchase tax the buyer self-assesses needs its collected VAT code: without it every
        invoice with that tax fails."""
        if cleaned.get("collected_code") or cleaned.get("direction") != Direction.PURCHASES:
            return
        if "collected_code" not in self.fields or self.lookups.source_rates is None:
            return
        # The taxes this row maps, its siblings' rows considered (a tax mapped by its own row
        # is not this rate row's concern).
        self_assessed = [s for s in self._source_taxes() if needs_collected_code(s)]
        if self_assessed:
            names = ", ".join(dict.fromkeys(s.name or str(s.tax_id) for s in self_assessed))
            self.add_error(
                "collected_code",
                f"{names} is a reverse-charge tax (the buyer self-assesses the VAT): choose the "
                "collected VAT code too.",
            )


class JournalMappingForm(LookupFormMixin, forms.ModelForm):
    class Meta:
        model = JournalMapping
        fields = ("source_journal", "target_journal")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lookups = self.lookups
        if lookups is None:
            return
        if lookups.source_journals is not None and "source_journal" in self.fields:
            _use_select(
                self.fields["source_journal"],
                [(j.code, journal_label(j)) for j in lookups.source_journals],
                self._current("source_journal"),
                lambda value: "not a journal of the invoicing tool",
            )
        if lookups.journals is not None and "target_journal" in self.fields:
            _use_select(
                self.fields["target_journal"],
                [(j.code, journal_label(j)) for j in lookups.journals],
                self._current("target_journal"),
                lambda value: NOT_IN_TOOL,
            )

    def clean(self):
        cleaned = super().clean()
        if self.lookups is not None:
            code = cleaned.get("target_journal") or ""
            if problem := journal_problem(code, self.lookups.journals):
                self.add_error("target_journal", problem)
        return cleaned
