"""Every flow setting, declared once.

A flow setting is one value a person chooses for a flow (the credit-rounding account, the scope,
the start date...). Each is declared here, once, with everything the rest of invsync needs to know
about it; the model field (``mappings.models.SyncFlow``), the admin form's fieldsets, the setup
checklist, the export/import document (``mappings.portable``), the engine's configuration
(``syncs.selectors.flow_engine_config``) and the ``CONFIG.json`` document (``syncs.serialization``)
all read this declaration instead of listing fields.

Adding a setting is: an entry in ``FLOW_SETTINGS``, a migration, and the engine's (or the service's)
use of it. ``tests/integration/test_flow_settings.py`` walks the declaration and fails when one of
the readers above misses a setting.

Pure Python (no Django, no ORM): the posting engine reads the label modes, the scope and the VAT
matching rule from here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from connectors.canonical import AccountKind, Direction


def _(text: str) -> str:
    """Marks a person-facing text for translation (``makemessages`` collects it); it stays English
    here, and the form, the admin and the checklist translate it where they show it."""
    return text


class SettingType(StrEnum):
    """What a setting holds; the model field, the form and the documents follow from it."""

    TEXT = "text"
    CURRENCY = "currency"  # ISO 4217 code
    BOOL = "bool"
    CHOICE = "choice"
    DATE = "date"
    DECIMAL = "decimal"
    INTEGER = "integer"  # positive
    ACCOUNT = "account"  # an account number of the accounting tool
    JOURNAL = "journal"  # a journal code of the accounting tool
    VAT_CODE = "vat_code"  # a VAT code of the accounting tool


# -- Choices: one definition each -----------------------------------------------------------------

SCOPE_CHOICES: tuple[tuple[str, str], ...] = (
    ("both", _("Sales and purchases")),
    ("sales", _("Sales only")),
    ("purchases", _("Purchases only")),
)
SCOPES: tuple[str, ...] = tuple(value for value, _ in SCOPE_CHOICES)

LABEL_MODE_CHOICES: tuple[tuple[str, str], ...] = (
    (
        "partner_then_description",
        _("Partner name on the third-party line, line description on the others"),
    ),
    ("partner", _("Partner name on all lines")),
    ("partner_and_description", _("Partner name + line description")),
    ("partner_and_number", _("Partner name + invoice number")),
)
LABEL_MODES: tuple[str, ...] = tuple(value for value, _ in LABEL_MODE_CHOICES)


def scope_directions(scope: str) -> tuple[Direction, ...]:
    """The directions a flow's scope covers (``both``, ``sales`` or ``purchases``)."""
    return tuple(d for d in Direction if scope in ("both", d.value))


def in_scope(scope: str, direction: Direction) -> bool:
    return direction in scope_directions(scope)


class _VatRow(Protocol):
    @property
    def rate(self) -> Decimal | None: ...

    @property
    def tax_id(self) -> str | None: ...


R = TypeVar("R", bound=_VatRow)


def vat_row_matching(rows: Iterable[R], *, tax_id: str | None, rate: Decimal | None) -> R | None:
    """The VAT mapping a source tax is posted with: a row naming its source tax id wins; else a
    row without a tax id for its rate; else none. ``rows`` are already of the invoice's direction.
    The engine posts with this rule and the checklist and forms check coverage with it."""
    rows = list(rows)
    if tax_id:
        for row in rows:
            if row.tax_id and row.tax_id == tax_id:
                return row
    if rate is not None:
        for row in rows:
            if not row.tax_id and row.rate is not None and row.rate == rate:
                return row
    return None


# -- The declaration --------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowSetting:
    """One flow setting.

    ``name`` is the model field and the key in the export document's ``flow`` object.
    ``engine`` is the :class:`syncs.config.FlowConfig` attribute (None: the engine does not read
    it) and ``config_path`` its place in ``CONFIG.json``; ``".".join(config_path)`` is the field
    the engine names in its errors (``accounts.rounding_credit``).
    Checklist: a setting is required when ``required`` is true and, if given, ``direction`` is in
    the flow's scope and the boolean setting ``required_if`` is on.
    """

    name: str
    type: SettingType
    label: str
    help: str = ""
    group: str = ""
    default: Any = None
    max_length: int | None = None
    choices: tuple[tuple[str, str], ...] = ()
    minimum: Decimal | int | None = None
    # checklist
    required: bool = False
    direction: Direction | None = None
    required_if: str | None = None
    # accounts: the kinds the setting takes (most fitting first; a target that reports numbers
    # only has them read by mappings.accounts.kind_from_number), and the numbers to propose where
    # the target's chart is the French one (most specific first)
    account_kinds: tuple[AccountKind, ...] = ()
    french_chart_numbers: tuple[str, ...] = ()
    # engine and CONFIG.json
    engine: str | None = None
    config_path: tuple[str, ...] = ()

    @property
    def export_key(self) -> str:
        return self.name

    @property
    def engine_field(self) -> str:
        """The field path the engine names in its errors and CONFIG.json uses."""
        return ".".join(self.config_path)

    @property
    def optional_text(self) -> bool:
        """A text the engine reads as None when blank (accounts, journals, VAT codes)."""
        return self.type in (SettingType.ACCOUNT, SettingType.JOURNAL, SettingType.VAT_CODE)

    def required_for(self, values: Mapping[str, Any]) -> bool:
        """Whether the checklist asks for this setting, given the flow's settings by name."""
        if not self.required:
            return False
        if self.direction is not None and not in_scope(values["scope"], self.direction):
            return False
        return not (self.required_if and not values[self.required_if])


def _account(
    name: str,
    label: str,
    help: str,
    *,
    engine: str,
    group: str = _("Accounts"),
    direction: Direction | None = None,
    required_if: str | None = None,
    kinds: tuple[AccountKind, ...],
    suggested: tuple[str, ...],
) -> FlowSetting:
    return FlowSetting(
        name,
        SettingType.ACCOUNT,
        label,
        help,
        group=group,
        default="",
        max_length=50,
        required=True,
        direction=direction,
        required_if=required_if,
        account_kinds=kinds,
        french_chart_numbers=suggested,
        engine=engine,
        config_path=("accounts", engine),
    )


_SALES, _PURCHASES = Direction.SALES, Direction.PURCHASES

# In the model's field order (the export document lists them in this order).
FLOW_SETTINGS: tuple[FlowSetting, ...] = (
    FlowSetting(
        "folder",
        SettingType.TEXT,
        _("accounting folder"),
        _("The company/folder of the accounting tool the entries go to."),
        group=_("Connections & folder"),
        default="",
        max_length=100,
    ),
    FlowSetting(
        "folder_name",
        SettingType.TEXT,
        _("folder name"),
        group=_("Connections & folder"),
        default="",
        max_length=200,
    ),
    FlowSetting(
        "company_currency",
        SettingType.CURRENCY,
        _("company currency"),
        _("The folder's currency (ISO 4217); invoices in another currency are converted."),
        group=_("Connections & folder"),
        default="EUR",
        max_length=3,
        engine="company_currency",
        config_path=("company_currency",),
    ),
    FlowSetting(
        "enabled",
        SettingType.BOOL,
        _("enabled"),
        _("Only enabled flows run on their schedule."),
        group=_("What to sync"),
        default=False,
    ),
    FlowSetting(
        "scope",
        SettingType.CHOICE,
        _("what to synchronise"),
        group=_("What to sync"),
        default="both",
        max_length=20,
        choices=SCOPE_CHOICES,
        engine="scope",
        config_path=("scope",),
    ),
    FlowSetting(
        "start_date",
        SettingType.DATE,
        _("start date"),
        _(
            "Invoices issued before this date are not synchronised (from 1990-01-01 to one year "
            "from today)."
        ),
        group=_("What to sync"),
        required=True,
        engine="start_date",
        config_path=("start_date",),
    ),
    FlowSetting(
        "draft_entries",
        SettingType.BOOL,
        _("create entries as draft"),
        _("Leave entries pending for an accountant to validate (where the tool allows)."),
        group=_("What to sync"),
        default=False,
        engine="draft",
        config_path=("draft",),
    ),
    FlowSetting(
        "sync_without_attachment",
        SettingType.BOOL,
        _("synchronise invoices without PDF"),
        _("When off, invoices without a PDF wait until the PDF is there."),
        group=_("What to sync"),
        default=True,
        engine="sync_without_attachment",
        config_path=("sync_without_attachment",),
    ),
    FlowSetting(
        "label_mode",
        SettingType.CHOICE,
        _("entry labels"),
        group=_("Labels & tolerance"),
        default="partner_then_description",
        max_length=40,
        choices=LABEL_MODE_CHOICES,
        engine="label_mode",
        config_path=("label_mode",),
    ),
    FlowSetting(
        "rounding_tolerance",
        SettingType.DECIMAL,
        _("rounding tolerance"),
        _(
            "The largest difference between the lines and the total that gets a rounding line; "
            "beyond it the invoice fails with an amount error."
        ),
        group=_("Labels & tolerance"),
        default=Decimal("0.05"),
        minimum=Decimal("0"),
        engine="rounding_tolerance",
        config_path=("rounding_tolerance",),
    ),
    FlowSetting(
        "schedule_minutes",
        SettingType.INTEGER,
        _("run every (minutes)"),
        _("How often an enabled flow runs in the background."),
        group=_("What to sync"),
        default=60,
        minimum=1,
    ),
    FlowSetting(
        "sales_journal",
        SettingType.JOURNAL,
        _("sales journal"),
        group=_("Journals"),
        default="",
        max_length=50,
        required=True,
        direction=_SALES,
        engine="sales_journal",
        config_path=("journals", "sales"),
    ),
    FlowSetting(
        "purchases_journal",
        SettingType.JOURNAL,
        _("purchase journal"),
        group=_("Journals"),
        default="",
        max_length=50,
        required=True,
        direction=_PURCHASES,
        engine="purchases_journal",
        config_path=("journals", "purchases"),
    ),
    # The engine gets the journal mappings themselves (``journals.by_source_journal``) when on.
    FlowSetting(
        "journals_by_source",
        SettingType.BOOL,
        _("map journals one by one"),
        _(
            "Use the journal mappings below (source journal → accounting journal) instead of one "
            "journal per direction."
        ),
        group=_("Journals"),
        default=False,
    ),
    _account(
        "default_sales_account",
        _("sales account (products)"),
        _("Used on sales lines without an account, or whose account is missing or inactive."),
        engine="sales_default",
        direction=_SALES,
        kinds=(AccountKind.REVENUE,),
        suggested=("706", "707", "70"),
    ),
    _account(
        "default_purchases_account",
        _("purchase account (expenses)"),
        _("Used on purchase lines without an account, or whose account is missing or inactive."),
        engine="purchases_default",
        direction=_PURCHASES,
        kinds=(AccountKind.EXPENSE,),
        suggested=("607", "606", "604", "60"),
    ),
    _account(
        "customer_collective_account",
        _("customer collective account"),
        _("The receivable account the customers' side of sales entries is booked on."),
        engine="customer_collective",
        direction=_SALES,
        kinds=(AccountKind.RECEIVABLE,),
        suggested=("411",),
    ),
    _account(
        "supplier_collective_account",
        _("supplier collective account"),
        _("The payable account the suppliers' side of purchase entries is booked on."),
        engine="supplier_collective",
        direction=_PURCHASES,
        kinds=(AccountKind.PAYABLE,),
        suggested=("401",),
    ),
    # Rounding differences go to miscellaneous income/charges, which some charts type as neither
    # revenue nor expense: "other" accounts are taken too.
    _account(
        "rounding_credit_account",
        _("credit rounding account"),
        _("Takes rounding differences booked as a credit (miscellaneous income)."),
        engine="rounding_credit",
        kinds=(AccountKind.REVENUE, AccountKind.OTHER),
        suggested=("758",),
    ),
    _account(
        "rounding_debit_account",
        _("debit rounding account"),
        _("Takes rounding differences booked as a debit (miscellaneous charges)."),
        engine="rounding_debit",
        kinds=(AccountKind.EXPENSE, AccountKind.OTHER),
        suggested=("658",),
    ),
    FlowSetting(
        "separate_discounts",
        SettingType.BOOL,
        _("post discounts separately"),
        _(
            "Post the gross amount on the product/expense account and the discount on the discount "
            "account; otherwise the net amount goes on the product/expense account."
        ),
        group=_("Discounts"),
        default=False,
        engine="separate_discounts",
        config_path=("separate_discounts",),
    ),
    _account(
        "sales_discount_account",
        _("sales discount account"),
        _("Takes the discounts granted on sales."),
        engine="sales_discount",
        group=_("Discounts"),
        direction=_SALES,
        required_if="separate_discounts",
        kinds=(AccountKind.EXPENSE, AccountKind.REVENUE),
        suggested=("709",),
    ),
    _account(
        "purchases_discount_account",
        _("purchase discount account"),
        _("Takes the discounts obtained on purchases."),
        engine="purchases_discount",
        group=_("Discounts"),
        direction=_PURCHASES,
        required_if="separate_discounts",
        kinds=(AccountKind.EXPENSE, AccountKind.REVENUE),
        suggested=("609",),
    ),
    # Required unless the accounting tool has no plain 0 % code for the direction (the checklist
    # reads the tool's VAT codes for that).
    FlowSetting(
        "sales_rounding_vat_code",
        SettingType.VAT_CODE,
        _("sales rounding VAT code"),
        _("VAT code put on sales rounding lines."),
        group=_("VAT for rounding"),
        default="",
        max_length=50,
        required=True,
        direction=_SALES,
        engine="sales_rounding_vat",
        config_path=("vat", "rounding", "sales"),
    ),
    FlowSetting(
        "purchases_rounding_vat_code",
        SettingType.VAT_CODE,
        _("purchase rounding VAT code"),
        _("VAT code put on purchase rounding lines."),
        group=_("VAT for rounding"),
        default="",
        max_length=50,
        required=True,
        direction=_PURCHASES,
        engine="purchases_rounding_vat",
        config_path=("vat", "rounding", "purchases"),
    ),
)

SETTINGS_BY_NAME: dict[str, FlowSetting] = {s.name: s for s in FLOW_SETTINGS}
SETTINGS_BY_ENGINE: dict[str, FlowSetting] = {s.engine: s for s in FLOW_SETTINGS if s.engine}
ENGINE_SETTINGS: tuple[FlowSetting, ...] = tuple(s for s in FLOW_SETTINGS if s.engine)


def settings_of(kind: SettingType) -> tuple[FlowSetting, ...]:
    return tuple(s for s in FLOW_SETTINGS if s.type is kind)


def required_settings(kind: SettingType, values: Mapping[str, Any]) -> list[str]:
    """The names of the settings of ``kind`` the checklist asks for, in declaration order."""
    return [s.name for s in settings_of(kind) if s.required_for(values)]


def setting_for_engine_field(field: str) -> FlowSetting | None:
    """The setting behind a field the engine names in an error (``accounts.rounding_credit``)."""
    return next((s for s in ENGINE_SETTINGS if s.engine_field == field), None)


# -- Readers' helpers ---------------------------------------------------------------------------

# The admin form's fieldsets, in order: the fields before the group's settings (the flow's
# identity and connections are not settings), then its settings in declaration order.
FORM_GROUPS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (None, ("client", "name")),
    ("Connections & folder", ("invoicing_connection", "accounting_connection")),
    ("What to sync", ()),
    ("Journals", ()),
    ("Accounts", ()),
    ("Discounts", ()),
    ("VAT for rounding", ()),
    ("Labels & tolerance", ()),
)
# Groups whose settings are displayed in another order than the declaration's (the model's).
_FORM_ORDER_OVERRIDES: dict[str, tuple[str, ...]] = {
    # The schedule reads next to the switch it governs.
    "What to sync": (
        "scope",
        "start_date",
        "draft_entries",
        "sync_without_attachment",
        "schedule_minutes",
        "enabled",
    ),
}


def flow_fieldsets(
    extra: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[tuple[str | None, dict[str, tuple[str, ...]]], ...]:
    """The flow form's fieldsets from the declaration; ``extra`` appends form-only fields to a
    group (the admin's shared-ledger confirmation after ``enabled``)."""
    extra = extra or {}
    fieldsets = []
    for group, leading in FORM_GROUPS:
        declared = tuple(s.name for s in FLOW_SETTINGS if s.group == group)
        if group in _FORM_ORDER_OVERRIDES:
            order = _FORM_ORDER_OVERRIDES[group]
            declared = tuple(sorted(declared, key=lambda n: order.index(n) if n in order else 99))
        fieldsets.append((group, {"fields": (*leading, *declared, *extra.get(group or "", ()))}))
    return tuple(fieldsets)


def engine_value(setting: FlowSetting, value: Any) -> Any:
    """A model value as the engine's configuration holds it."""
    if setting.optional_text:
        return value or None
    if setting.type is SettingType.DECIMAL:
        return Decimal(value)
    if setting.type is SettingType.CURRENCY:
        return value or setting.default
    return value


def engine_values(flow: Any) -> dict[str, Any]:
    """The :class:`syncs.config.FlowConfig` keyword arguments of every declared engine setting,
    read from ``flow``'s attributes (a ``SyncFlow``)."""
    return {s.engine: engine_value(s, getattr(flow, s.name)) for s in ENGINE_SETTINGS}


def config_lookup(document: Mapping, path: tuple[str, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def config_place(document: dict, path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` in a CONFIG.json document, creating the objects on the way."""
    for key in path[:-1]:
        document = document.setdefault(key, {})
    document[path[-1]] = value


def export_value(value: Any) -> Any:
    """A setting's value in the export document: decimals as strings, dates ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
