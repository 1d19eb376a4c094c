from __future__ import annotations

import hashlib

from django.db import models
from django.utils.translation import gettext_lazy as _

from connectors.canonical import InvoiceType
from connectors.errors import CATALOGUE, ErrorCode, message_text
from connectors.models import Connection
from connectors.selectors import connection_account_identity
from mappings.models import SyncFlow

# How the admin names the canonical invoice types (the stored value is InvoiceType's).
INVOICE_TYPE_CHOICES = [
    (InvoiceType.CUSTOMER_INVOICE.value, _("Sales invoice")),
    (InvoiceType.CUSTOMER_REFUND.value, _("Sales credit note")),
    (InvoiceType.SUPPLIER_INVOICE.value, _("Purchase invoice")),
    (InvoiceType.SUPPLIER_REFUND.value, _("Purchase credit note")),
]


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    MANUAL = "manual", _("Sync now")
    RETRY = "retry", _("Retry")
    COMMAND = "command", _("Command line")
    WEBHOOK = "webhook", _("Webhook")


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    PARTIAL = "partial", _("Finished with failed records")
    FAILED = "failed", _("Failed")
    # Stopped by the accounting tool's daily request limit: nothing failed, it resumes later.
    PAUSED = "paused", _("Paused")


class SyncRun(models.Model):
    """One execution of a flow."""

    # A read-only log: deleting its flow or client in the admin takes it along without asking for
    # its delete permission (connectors.admin.CascadeLogsDeleteMixin).
    deleted_with_owner = True

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="runs", verbose_name=_("flow")
    )
    trigger = models.CharField(_("trigger"), max_length=20, choices=RunTrigger.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    total = models.PositiveIntegerField(
        _("to process"), default=0, help_text=_("Records this run has found to examine so far.")
    )
    processed = models.PositiveIntegerField(_("processed"), default=0)
    synced_count = models.PositiveIntegerField(_("synced"), default=0)
    waiting_count = models.PositiveIntegerField(_("waiting for PDF"), default=0)
    failed_count = models.PositiveIntegerField(_("failed"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    unchanged_count = models.PositiveIntegerField(
        _("unchanged"),
        default=0,
        help_text=_("Already synced and unchanged: no call to the target."),
    )
    error_code = models.CharField(
        _("error code"),
        max_length=64,
        blank=True,
        choices=ErrorCode.choices,
        help_text=_("Why the run as a whole stopped, if it did."),
    )
    error_message = models.TextField(_("error message"), blank=True)
    error_key = models.CharField(
        _("error message key"),
        max_length=100,
        blank=True,
        help_text=_("The message's key: the admin shows it in the reader's language."),
    )
    error_params = models.JSONField(
        _("error message parameters"), default=dict, blank=True, help_text=_("What it names.")
    )
    paused_until = models.DateTimeField(
        _("paused until"),
        null=True,
        blank=True,
        help_text=_("A paused run: when the accounting tool's limit lets the flow resume."),
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["flow", "-started_at"], name="run_flow_started")]
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")

    def __str__(self) -> str:
        # No status here: what people read of it is syncs.states.run_state_text, from the counts.
        return _("%(flow)s run %(number)s") % {"flow": self.flow, "number": self.pk}

    @property
    def error_text(self) -> str:
        """Why the run stopped, in the reader's language (the stored English for old rows)."""
        return message_text(self.error_key, self.error_params, self.error_message)

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None

    def counts(self) -> dict[str, int]:
        return {
            "synced": self.synced_count,
            "waiting": self.waiting_count,
            "failed": self.failed_count,
            "skipped": self.skipped_count,
            "unchanged": self.unchanged_count,
        }


class ObjectType(models.TextChoices):
    INVOICE = "invoice", _("Invoice or credit note")


class RecordStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    WAITING = "waiting_attachment", _("Waiting for PDF")
    PUSHING = "pushing", _("Pushing")
    SYNCED = "synced", _("Synced")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class SyncedRecord(models.Model):
    """One source object's state in one flow."""

    # A read-only log: deleting its flow or client in the admin takes it along without asking for
    # its delete permission (connectors.admin.CascadeLogsDeleteMixin).
    deleted_with_owner = True

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="records", verbose_name=_("flow")
    )
    object_type = models.CharField(
        _("object type"), max_length=20, choices=ObjectType.choices, default=ObjectType.INVOICE
    )
    source_id = models.CharField(_("source id"), max_length=100)
    number = models.CharField(_("number"), max_length=100, blank=True)
    invoice_type = models.CharField(
        _("invoice type"), max_length=30, blank=True, choices=INVOICE_TYPE_CHOICES
    )
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    partner_name = models.CharField(_("partner"), max_length=300, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    total = models.DecimalField(_("total"), max_digits=18, decimal_places=4, null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=RecordStatus.choices, default=RecordStatus.PENDING
    )
    fingerprint = models.CharField(
        _("fingerprint"),
        max_length=64,
        blank=True,
        help_text=_("Hash of the invoice as last read: an unchanged invoice is not pushed again."),
    )
    target_ref = models.CharField(
        _("entry in accounting"),
        max_length=100,
        blank=True,
        help_text=_("The id of the entry written in the accounting tool."),
    )
    target_number = models.CharField(_("entry number"), max_length=100, blank=True)
    error_code = models.CharField(
        _("error code"), max_length=64, blank=True, choices=ErrorCode.choices
    )
    error_message = models.TextField(_("error message"), blank=True)
    error_key = models.CharField(
        _("error message key"),
        max_length=100,
        blank=True,
        help_text=_("The message's key: the admin shows it in the reader's language."),
    )
    error_params = models.JSONField(
        _("error message parameters"), default=dict, blank=True, help_text=_("What it names.")
    )
    error_field = models.CharField(_("error field"), max_length=100, blank=True)
    skip_reason = models.CharField(_("skip reason"), max_length=300, blank=True)
    skip_key = models.CharField(
        _("skip reason key"),
        max_length=100,
        blank=True,
        help_text=_("The reason's key: the admin shows it in the reader's language."),
    )
    skip_params = models.JSONField(
        _("skip reason parameters"), default=dict, blank=True, help_text=_("What it names.")
    )
    drift = models.CharField(
        _("changed after sync"),
        max_length=500,
        blank=True,
        help_text=_(
            "Set when the invoice changed in the invoicing tool after its entry was written "
            "(the entry is never written twice; correct it in accounting)."
        ),
    )
    entry_key = models.CharField(
        _("key in accounting"),
        max_length=200,
        blank=True,
        help_text=_(
            "The external id its entry was written (or is being written) under in the "
            "accounting tool; every flow writing to the folder looks for it before writing."
        ),
    )
    note = models.CharField(
        _("note"),
        max_length=500,
        blank=True,
        help_text=_(
            "What invsync found when it went to write the entry, e.g. that another flow "
            "had already written it."
        ),
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next automatic retry"),
        null=True,
        blank=True,
        help_text=_("For transient errors: not retried before this time."),
    )
    config_version = models.PositiveIntegerField(
        _("configuration version"),
        default=0,
        help_text=_("The flow's configuration version at the last attempt."),
    )
    snapshot = models.JSONField(
        _("invoice snapshot"),
        default=dict,
        blank=True,
        help_text=_("The canonical invoice (INVOICE.json) as last read."),
    )
    overrides = models.JSONField(
        _("overrides"),
        default=dict,
        blank=True,
        help_text=_("Per-record corrections applied on retry (line accounts, VAT codes)."),
    )
    last_run = models.ForeignKey(
        "SyncRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last run"),
    )
    created_at = models.DateTimeField(_("first seen"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    synced_at = models.DateTimeField(_("synced"), null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "object_type", "source_id"], name="synced_record_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["flow", "status"], name="record_flow_status"),
            models.Index(fields=["flow", "error_code"], name="record_flow_error"),
        ]
        verbose_name = _("synced record")
        verbose_name_plural = _("synced records")

    def __str__(self) -> str:
        return f"{self.number or self.source_id} ({self.get_status_display()})"

    @property
    def error_text(self) -> str:
        """The error message in the reader's language (the stored English for old rows)."""
        return message_text(self.error_key, self.error_params, self.error_message)

    @property
    def skip_text(self) -> str:
        """Why the record was skipped, in the reader's language (the stored English for old
        rows)."""
        return message_text(self.skip_key, self.skip_params, self.skip_reason)

    @property
    def resolution(self) -> str:
        return CATALOGUE[ErrorCode(self.error_code)].resolution if self.error_code else ""

    @property
    def external_id(self) -> str:
        """The key its entry was written under, else the key it would be written under now
        (computed from the flow's invoicing connection: no call to any tool)."""
        if self.entry_key:
            return self.entry_key
        account = connection_account_identity(self.flow.invoicing_connection)
        return external_id(account, self.object_type, self.source_id)


def external_id(source_account: str, object_type: str, source_id: str) -> str:
    """The key by which any flow finds this object's entry in a folder (DESIGN: idempotency is
    per ledger): the source account's identity (:meth:`connectors.base.Connector.account_identity`,
    hashed to stay short and say nothing of the server) plus the object's id in that account."""
    digest = hashlib.sha256(source_account.encode("utf-8")).hexdigest()[:16]
    return f"invsync:acct-{digest}:{object_type}:{source_id}"


def legacy_external_id(flow_id: int, object_type: str, source_id: str) -> str:
    """The key entries were written under before keys became per source account (one flow's
    entries only); still looked for, so an upgrade writes nothing twice."""
    return f"invsync:{flow_id}:{object_type}:{source_id}"


class MatchedBy(models.TextChoices):
    AUXILIARY_ACCOUNT = "auxiliary_account", _("Auxiliary account")
    VAT_NUMBER = "vat_number", _("VAT number")
    COMPANY_NUMBER = "company_number", _("Company number (SIRET/SIREN)")
    NAME = "name", _("Name")
    CREATED = "created", _("Created by invsync")
    MANUAL = "manual", _("Set by hand")


class PartnerLink(models.Model):
    """A source partner known to be this target partner: later invoices skip the search."""

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="partner_links", verbose_name=_("flow")
    )
    source_partner_id = models.CharField(_("source partner id"), max_length=100)
    source_partner_name = models.CharField(_("source name"), max_length=300, blank=True)
    target_partner_id = models.CharField(_("accounting partner id"), max_length=100)
    target_partner_name = models.CharField(_("accounting name"), max_length=300, blank=True)
    matched_by = models.CharField(_("matched by"), max_length=30, choices=MatchedBy.choices)
    created_at = models.DateTimeField(_("linked"), auto_now_add=True)

    class Meta:
        ordering = ["source_partner_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "source_partner_id"], name="partner_link_unique"
            ),
        ]
        verbose_name = _("partner link")
        verbose_name_plural = _("partner links")

    def __str__(self) -> str:
        return f"{self.source_partner_name} → {self.target_partner_name or self.target_partner_id}"


class WebhookEvent(models.Model):
    """An event a tool's webhook delivered and invsync acted on, kept so that the same event
    delivered again (a replay, or Stripe's retry of a delivery we did answer) does nothing.
    Rows older than :data:`WEBHOOK_EVENTS_KEPT_DAYS` are pruned: a delivery that old fails the
    signature's time check anyway."""

    connection = models.ForeignKey(
        Connection,
        on_delete=models.CASCADE,
        related_name="webhook_events",
        verbose_name=_("connection"),
    )
    event_id = models.CharField(
        _("event id"), max_length=255, help_text=_("The tool's id of the event.")
    )
    event_type = models.CharField(_("event type"), max_length=100)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    queued_flows = models.PositiveIntegerField(
        _("runs queued"),
        default=0,
        help_text=_("Runs this event queued (a flow with a run already queued gets no second)."),
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "event_id"], name="webhook_event_unique"),
        ]
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


WEBHOOK_EVENTS_KEPT_DAYS = 7  # Stripe retries an unanswered delivery for up to three days


class WebhookQueuedRun(models.Model):
    """The run a webhook last queued for a flow: while it has not started, later events of the
    flow queue nothing more (a burst of events makes one run)."""

    flow = models.OneToOneField(
        SyncFlow,
        on_delete=models.CASCADE,
        related_name="webhook_queued_run",
        verbose_name=_("flow"),
    )
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    task_id = models.CharField(_("task"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("run queued by a webhook")
        verbose_name_plural = _("runs queued by webhooks")

    def __str__(self) -> str:
        return f"{self.flow} {self.queued_at}"
