from __future__ import annotations

import hashlib

from django.db import models

from connectors.canonical import InvoiceType
from connectors.errors import CATALOGUE, ErrorCode
from connectors.selectors import connection_account_identity
from mappings.models import SyncFlow

# How the admin names the canonical invoice types (the stored value is InvoiceType's).
INVOICE_TYPE_CHOICES = [
    (InvoiceType.CUSTOMER_INVOICE.value, "Sales invoice"),
    (InvoiceType.CUSTOMER_REFUND.value, "Sales credit note"),
    (InvoiceType.SUPPLIER_INVOICE.value, "Purchase invoice"),
    (InvoiceType.SUPPLIER_REFUND.value, "Purchase credit note"),
]


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Sync now"
    RETRY = "retry", "Retry"
    COMMAND = "command", "Command line"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Finished with failed records"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    """One execution of a flow."""

    # A read-only log: deleting its flow or client in the admin takes it along without asking for
    # its delete permission (connectors.admin.CascadeLogsDeleteMixin).
    deleted_with_owner = True

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="runs", verbose_name="flow"
    )
    trigger = models.CharField("trigger", max_length=20, choices=RunTrigger.choices)
    status = models.CharField(
        "status", max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    started_at = models.DateTimeField("started", auto_now_add=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    total = models.PositiveIntegerField(
        "to process", default=0, help_text="Records this run has found to examine so far."
    )
    processed = models.PositiveIntegerField("processed", default=0)
    synced_count = models.PositiveIntegerField("synced", default=0)
    waiting_count = models.PositiveIntegerField("waiting for PDF", default=0)
    failed_count = models.PositiveIntegerField("failed", default=0)
    skipped_count = models.PositiveIntegerField("skipped", default=0)
    unchanged_count = models.PositiveIntegerField(
        "unchanged", default=0, help_text="Already synced and unchanged: no call to the target."
    )
    error_code = models.CharField(
        "error code",
        max_length=64,
        blank=True,
        choices=ErrorCode.choices,
        help_text="Why the run as a whole stopped, if it did.",
    )
    error_message = models.TextField("error message", blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["flow", "-started_at"], name="run_flow_started")]
        verbose_name = "sync run"

    def __str__(self) -> str:
        # No status here: what people read of it is syncs.states.run_state_text, from the counts.
        return f"{self.flow} run {self.pk}"

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
    INVOICE = "invoice", "Invoice or credit note"


class RecordStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING = "waiting_attachment", "Waiting for PDF"
    PUSHING = "pushing", "Pushing"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class SyncedRecord(models.Model):
    """One source object's state in one flow."""

    # A read-only log: deleting its flow or client in the admin takes it along without asking for
    # its delete permission (connectors.admin.CascadeLogsDeleteMixin).
    deleted_with_owner = True

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="records", verbose_name="flow"
    )
    object_type = models.CharField(
        "object type", max_length=20, choices=ObjectType.choices, default=ObjectType.INVOICE
    )
    source_id = models.CharField("source id", max_length=100)
    number = models.CharField("number", max_length=100, blank=True)
    invoice_type = models.CharField(
        "invoice type", max_length=30, blank=True, choices=INVOICE_TYPE_CHOICES
    )
    issue_date = models.DateField("issue date", null=True, blank=True)
    partner_name = models.CharField("partner", max_length=300, blank=True)
    currency = models.CharField("currency", max_length=3, blank=True)
    total = models.DecimalField("total", max_digits=18, decimal_places=4, null=True, blank=True)
    status = models.CharField(
        "status", max_length=20, choices=RecordStatus.choices, default=RecordStatus.PENDING
    )
    fingerprint = models.CharField(
        "fingerprint",
        max_length=64,
        blank=True,
        help_text="Hash of the invoice as last read: an unchanged invoice is not pushed again.",
    )
    target_ref = models.CharField(
        "entry in accounting",
        max_length=100,
        blank=True,
        help_text="The id of the entry written in the accounting tool.",
    )
    target_number = models.CharField("entry number", max_length=100, blank=True)
    error_code = models.CharField(
        "error code", max_length=64, blank=True, choices=ErrorCode.choices
    )
    error_message = models.TextField("error message", blank=True)
    error_field = models.CharField("error field", max_length=100, blank=True)
    skip_reason = models.CharField("skip reason", max_length=300, blank=True)
    drift = models.CharField(
        "changed after sync",
        max_length=500,
        blank=True,
        help_text="Set when the invoice changed in the invoicing tool after its entry was written "
        "(the entry is never written twice; correct it in accounting).",
    )
    entry_key = models.CharField(
        "key in accounting",
        max_length=200,
        blank=True,
        help_text="The external id its entry was written (or is being written) under in the "
        "accounting tool; every flow writing to the folder looks for it before writing.",
    )
    note = models.CharField(
        "note",
        max_length=500,
        blank=True,
        help_text="What invsync found when it went to write the entry, e.g. that another flow "
        "had already written it.",
    )
    attempts = models.PositiveIntegerField("attempts", default=0)
    next_attempt_at = models.DateTimeField(
        "next automatic retry",
        null=True,
        blank=True,
        help_text="For transient errors: not retried before this time.",
    )
    config_version = models.PositiveIntegerField(
        "configuration version",
        default=0,
        help_text="The flow's configuration version at the last attempt.",
    )
    snapshot = models.JSONField(
        "invoice snapshot",
        default=dict,
        blank=True,
        help_text="The canonical invoice (INVOICE.json) as last read.",
    )
    overrides = models.JSONField(
        "overrides",
        default=dict,
        blank=True,
        help_text="Per-record corrections applied on retry (line accounts, VAT codes).",
    )
    last_run = models.ForeignKey(
        "SyncRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="last run",
    )
    created_at = models.DateTimeField("first seen", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)
    synced_at = models.DateTimeField("synced", null=True, blank=True)

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
        verbose_name = "synced record"

    def __str__(self) -> str:
        return f"{self.number or self.source_id} ({self.get_status_display()})"

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
    AUXILIARY_ACCOUNT = "auxiliary_account", "Auxiliary account"
    VAT_NUMBER = "vat_number", "VAT number"
    COMPANY_NUMBER = "company_number", "Company number (SIRET/SIREN)"
    NAME = "name", "Name"
    CREATED = "created", "Created by invsync"
    MANUAL = "manual", "Set by hand"


class PartnerLink(models.Model):
    """A source partner known to be this target partner: later invoices skip the search."""

    flow = models.ForeignKey(
        SyncFlow, on_delete=models.CASCADE, related_name="partner_links", verbose_name="flow"
    )
    source_partner_id = models.CharField("source partner id", max_length=100)
    source_partner_name = models.CharField("source name", max_length=300, blank=True)
    target_partner_id = models.CharField("accounting partner id", max_length=100)
    target_partner_name = models.CharField("accounting name", max_length=300, blank=True)
    matched_by = models.CharField("matched by", max_length=30, choices=MatchedBy.choices)
    created_at = models.DateTimeField("linked", auto_now_add=True)

    class Meta:
        ordering = ["source_partner_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "source_partner_id"], name="partner_link_unique"
            ),
        ]
        verbose_name = "partner link"

    def __str__(self) -> str:
        return f"{self.source_partner_name} → {self.target_partner_name or self.target_partner_id}"
