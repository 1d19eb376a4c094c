from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from connectors.currencies import is_currency_code
from connectors.models import Client, Connection
from mappings.flow_settings import (
    FLOW_SETTINGS,
    LABEL_MODE_CHOICES,
    SCOPE_CHOICES,
    FlowSetting,
    SettingType,
)

# No accounting tool we sync with holds invoices from before this date.
EARLIEST_START_DATE = dt.date(1990, 1, 1)


def latest_start_date(today: dt.date | None = None) -> dt.date:
    """One year after ``today`` (the server's local date): a later start date is a typo."""
    today = today or timezone.localdate()
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year + 1, day=28)


def validate_start_date(value: dt.date) -> None:
    """Refuse start dates before 1990 or more than a year ahead (a mistyped year, most often)."""
    if value < EARLIEST_START_DATE:
        raise ValidationError(
            _(
                "%(date)s is before %(earliest)s: enter the date of the first invoice to "
                "synchronise."
            )
            % {"date": value.isoformat(), "earliest": EARLIEST_START_DATE.isoformat()},
            code="start_date_too_early",
        )
    latest = latest_start_date()
    if value > latest:
        raise ValidationError(
            _(
                "%(date)s is more than a year ahead (the latest start date is %(latest)s): "
                "check the year."
            )
            % {"date": value.isoformat(), "latest": latest.isoformat()},
            code="start_date_too_late",
        )


def validate_currency_code(value: str) -> None:
    """Refuse anything but an ISO 4217 alphabetic code (EUR, USD, GBP...)."""
    if is_currency_code(value):
        return
    upper = value.strip().upper()
    message = _(
        "“%(value)s” is not an ISO 4217 currency code (three capital letters such as EUR, USD, "
        "GBP)."
    ) % {"value": value}
    if is_currency_code(upper):
        message = f"{message} " + _("Did you mean %(code)s?") % {"code": upper}
    raise ValidationError(message, code="currency_code")


# Labels are declared in English in flow_settings and translated where shown.
Scope = models.TextChoices("Scope", [(v.upper(), (v, _(label))) for v, label in SCOPE_CHOICES])
LabelMode = models.TextChoices(
    "LabelMode",
    [(v.upper(), (v, _(label))) for v, label in LABEL_MODE_CHOICES],
)


class DirectionChoice(models.TextChoices):
    SALES = "sales", _("Sales")
    PURCHASES = "purchases", _("Purchases")


# The model field of each setting type; the declaration gives its label, help, default and bounds.
_VALIDATORS = {
    SettingType.CURRENCY: [validate_currency_code],
    SettingType.DATE: [validate_start_date],
}
_BLANK_TEXT = (SettingType.TEXT, SettingType.ACCOUNT, SettingType.JOURNAL, SettingType.VAT_CODE)


def _setting_field(setting: FlowSetting) -> models.Field:
    # The declaration's texts are English; shown in the reader's language (lazily, no migration).
    label = _(setting.label)
    options: dict = {"help_text": _(setting.help) if setting.help else ""}
    validators = list(_VALIDATORS.get(setting.type, ()))
    if setting.minimum is not None:
        validators.append(MinValueValidator(setting.minimum))
    if validators:
        options["validators"] = validators
    if setting.type in _BLANK_TEXT:
        return models.CharField(label, max_length=setting.max_length, blank=True, **options)
    if setting.type is SettingType.DATE:
        return models.DateField(label, null=True, blank=True, **options)
    options["default"] = setting.default
    if setting.type in (SettingType.CURRENCY, SettingType.CHOICE):
        if setting.choices:
            options["choices"] = [(v, _(text)) for v, text in setting.choices]
        return models.CharField(label, max_length=setting.max_length, **options)
    if setting.type is SettingType.BOOL:
        return models.BooleanField(label, **options)
    if setting.type is SettingType.DECIMAL:
        return models.DecimalField(label, max_digits=12, decimal_places=4, **options)
    if setting.type is SettingType.INTEGER:
        return models.PositiveIntegerField(label, **options)
    raise ValueError(f"no model field for the setting type {setting.type}")


class SyncFlow(models.Model):
    """One invoicing connection → one accounting connection and folder, with its configuration."""

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="flows", verbose_name=_("client")
    )
    name = models.CharField(_("name"), max_length=200)
    invoicing_connection = models.ForeignKey(
        Connection,
        on_delete=models.RESTRICT,
        related_name="flows_as_source",
        limit_choices_to={"kind": "invoicing"},
        verbose_name=_("invoicing connection"),
        help_text=_("Where invoices are read."),
    )
    accounting_connection = models.ForeignKey(
        Connection,
        on_delete=models.RESTRICT,
        related_name="flows_as_target",
        limit_choices_to={"kind": "accounting"},
        verbose_name=_("accounting connection"),
        help_text=_("Where entries are written."),
    )
    # Configuration: every flow setting declared in mappings/flow_settings.py, in its order.
    # Class-body generation keeps the fields' order (and the migration state) as if written here.
    locals().update({s.name: _setting_field(s) for s in FLOW_SETTINGS})

    # Bookkeeping (not configuration)
    config_version = models.PositiveIntegerField(
        _("configuration version"),
        default=1,
        editable=False,
        help_text=_(
            "Raised on every change of configuration or mappings; failed records are "
            "retried automatically once it moves."
        ),
    )
    source_cursor = models.DateTimeField(
        _("read up to"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Changes in the invoicing tool up to this time have been read."),
    )
    lease_owner = models.CharField(_("run lease owner"), max_length=64, blank=True, editable=False)
    lease_until = models.DateTimeField(_("run lease until"), null=True, blank=True, editable=False)
    paused_until = models.DateTimeField(
        _("paused until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "The accounting tool's daily request limit is reached: scheduled runs wait until "
            "this time, then the flow resumes on its own."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["client__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="flow_unique_name"),
        ]
        verbose_name = _("sync flow")
        verbose_name_plural = _("sync flows")

    def __str__(self) -> str:
        return f"{self.client} · {self.name}"

    def save(self, *args, **kwargs) -> None:
        # Bookkeeping fields are written by the sync service with conditional UPDATEs (the run
        # lease, the cursor, the version bump). Saving a flow edited in a form must not write back
        # the stale copies it loaded, or a running sync could lose its lease to a second one.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in BOOKKEEPING_FIELDS
            ]
        super().save(*args, **kwargs)


BOOKKEEPING_FIELDS = frozenset(
    {"config_version", "source_cursor", "lease_owner", "lease_until", "paused_until"}
)


class VatMapping(models.Model):
    """A source VAT rate (or a source tax id) → a VAT code of the accounting tool."""

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="vat_mappings", verbose_name=_("flow")
    )
    direction = models.CharField(_("direction"), max_length=20, choices=DirectionChoice.choices)
    source_rate = models.DecimalField(
        _("source rate (%)"),
        max_digits=7,
        decimal_places=3,
        null=True,
        blank=True,
        help_text=_("The VAT rate in the invoicing tool, e.g. 20 or 5.5."),
    )
    source_tax_id = models.CharField(
        _("source tax id"),
        max_length=100,
        blank=True,
        help_text=_("Map one source tax by its id instead of by rate (it wins over the rate)."),
    )
    target_code = models.CharField(
        _("accounting VAT code"),
        max_length=50,
        help_text=_(
            "The VAT code in the accounting tool (for a reverse-charge tax: the deductible one)."
        ),
    )
    collected_code = models.CharField(
        _("collected VAT code (reverse charge)"),
        max_length=50,
        blank=True,
        help_text=_(
            "Only for a purchase tax the buyer self-assesses (reverse charge, intra-EU "
            "acquisition): the VAT code of the VAT due (e.g. 4452). The same amount is booked on "
            "both codes, deductible as a debit and collected as a credit."
        ),
    )

    class Meta:
        ordering = ["direction", "source_rate", "source_tax_id"]
        constraints = [
            # A rate is mapped once per direction, and so is a source tax id; NULLs being distinct
            # in unique indexes, each rule gets its own conditional constraint.
            models.UniqueConstraint(
                fields=["flow", "direction", "source_rate"],
                condition=models.Q(source_tax_id=""),
                name="vat_mapping_unique_rate",
            ),
            models.UniqueConstraint(
                fields=["flow", "direction", "source_tax_id"],
                condition=~models.Q(source_tax_id=""),
                name="vat_mapping_unique_tax_id",
            ),
            models.CheckConstraint(
                condition=models.Q(source_rate__isnull=False) | ~models.Q(source_tax_id=""),
                name="vat_mapping_has_rate_or_tax_id",
            ),
        ]
        verbose_name = _("VAT mapping")
        verbose_name_plural = _("VAT mappings")

    def __str__(self) -> str:
        what = self.source_tax_id or f"{self.source_rate} %"
        pair = f" + {self.collected_code}" if self.collected_code else ""
        return f"{self.get_direction_display()} {what} → {self.target_code}{pair}"

    def clean(self) -> None:
        super().clean()
        if not self.collected_code:
            return
        if self.direction != DirectionChoice.PURCHASES:
            message = (
                "Only purchases self-assess VAT: leave this empty on a sales row (the seller of a "
                "reverse-charge sale books no VAT)."
            )
            raise ValidationError({"collected_code": message})
        if self.collected_code == self.target_code:
            raise ValidationError(
                {"collected_code": "The collected VAT code must differ from the deductible one."}
            )


class JournalMapping(models.Model):
    """A source journal → a journal of the accounting tool (when journals are mapped one by one)."""

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="journal_mappings", verbose_name=_("flow")
    )
    source_journal = models.CharField(_("source journal"), max_length=100)
    target_journal = models.CharField(_("accounting journal"), max_length=50)

    class Meta:
        ordering = ["source_journal"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "source_journal"], name="journal_mapping_unique"
            ),
        ]
        verbose_name = _("journal mapping")
        verbose_name_plural = _("journal mappings")

    def __str__(self) -> str:
        return f"{self.source_journal} → {self.target_journal}"


class ConfigChange(models.Model):
    """One change of a flow's configuration or mappings: who, when, what (read-only audit)."""

    # A read-only log: deleting its flow or client in the admin takes it along without asking for
    # its delete permission (connectors.admin.CascadeLogsDeleteMixin).
    deleted_with_owner = True

    class Action(models.TextChoices):
        CREATED = "created", _("Created")
        CHANGED = "changed", _("Changed")
        DELETED = "deleted", _("Deleted")

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="config_changes", verbose_name=_("client")
    )
    flow = models.ForeignKey(
        SyncFlow,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="config_changes",
        verbose_name=_("flow"),
    )
    flow_label = models.CharField(
        _("flow name"), max_length=300, help_text=_("The flow's name then (kept after a deletion).")
    )
    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    actor_label = models.CharField(
        _("who (as recorded)"),
        max_length=200,
        help_text=_("The user's email or name, or the command or process that made the change."),
    )
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    changes = models.JSONField(
        _("what changed"),
        default=dict,
        help_text=_(
            "Each changed setting with its value before and after; mappings added and removed."
        ),
    )
    snapshot = models.JSONField(
        _("configuration after"),
        default=dict,
        help_text=_("The whole configuration after the change."),
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("configuration change")
        verbose_name_plural = _("configuration changes")

    def __str__(self) -> str:
        return f"{self.flow_label}: {self.get_action_display()} by {self.actor_label}"
