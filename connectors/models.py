from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from connectors.base import AUTH_FIELDS, AuthKind, ConnectionConfig, ConnectionKind
from connectors.crypto import EncryptedJSONField


class Client(models.Model):
    """The company whose books are synced. An accounting firm manages many."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    notes = models.TextField(
        _("notes"),
        blank=True,
        max_length=10_000,
        help_text=_("Free text for the firm's staff (at most 10,000 characters)."),
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="invsync_clients",
        verbose_name=_("staff members"),
        help_text=_(
            "Staff users who may see and manage this client's connections, flows and records."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("client")
        verbose_name_plural = _("clients")

    def __str__(self) -> str:
        return self.name


class Connection(models.Model):
    """One client's account at one tool. Credentials are encrypted at rest and never shown back."""

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="connections", verbose_name=_("client")
    )
    name = models.CharField(_("name"), max_length=200, help_text=_("How this connection is shown."))
    kind = models.CharField(
        _("kind"),
        max_length=20,
        choices=[(k.value, k.value.title()) for k in ConnectionKind],
        help_text=_("An invoicing tool (the source) or an accounting tool (the target)."),
    )
    provider = models.CharField(
        _("provider"), max_length=50, help_text=_("The connector's key in the connector registry.")
    )
    auth_kind = models.CharField(
        _("authentication"),
        max_length=20,
        choices=[
            (AuthKind.API_KEY.value, "API key"),
            (AuthKind.CREDENTIALS.value, "Login and password"),
            (AuthKind.OAUTH2.value, "OAuth2"),
            (AuthKind.NONE.value, "None (files received by invsync)"),
        ],
        help_text=_("How invsync signs in to the tool."),
    )
    settings = models.JSONField(
        _("settings"),
        default=dict,
        blank=True,
        help_text=_("Non-secret settings the provider needs (server address, database...)."),
    )
    credentials = EncryptedJSONField(
        "credentials",
        blank=True,
        default=dict,
        help_text=_("Encrypted at rest; write-only in the admin."),
    )
    oauth_tokens = EncryptedJSONField(
        "OAuth2 tokens",
        blank=True,
        default=dict,
        editable=False,
        help_text=_(
            "The OAuth2 grant's tokens (access, refresh, expiry, scopes, the companies it "
            "gives), encrypted at rest, written only by connectors.oauth_flow and "
            "connectors.token_store; never shown."
        ),
    )
    last_checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    last_check_ok = models.BooleanField(_("last check succeeded"), null=True, blank=True)
    last_check_message = models.CharField(_("last check message"), max_length=500, blank=True)
    last_check_key = models.CharField(
        _("last check message key"),
        max_length=100,
        blank=True,
        help_text=_("The message's key: the admin shows it in the reader's language."),
    )
    last_check_params = models.JSONField(
        _("last check message parameters"), default=dict, blank=True, help_text=_("What it names.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("connection")
        verbose_name_plural = _("connections")
        ordering = ["client__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="connection_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.client} · {self.name}"

    @property
    def credential_fields(self) -> tuple[str, ...]:
        return AUTH_FIELDS.get(AuthKind(self.auth_kind), ())

    def as_config(self) -> ConnectionConfig:
        return ConnectionConfig(
            auth_kind=AuthKind(self.auth_kind),
            settings={str(k): str(v) for k, v in (self.settings or {}).items()},
            credentials=dict(self.credentials or {}),
            label=self.name,
        )


class LookupCache(models.Model):
    """The last lookups read from a tool (folders, VAT codes, journals, accounts, source taxes),
    so forms, previews and downloads work without calling the tool each time."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="lookups", verbose_name=_("connection")
    )
    folder = models.CharField(_("folder"), max_length=100, blank=True)
    name = models.CharField(
        _("lookup"), max_length=50, help_text=_("folders, vat_codes, journals...")
    )
    payload = models.JSONField(_("payload"), default=list)
    fetched_at = models.DateTimeField(_("fetched"), auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "folder", "name"], name="lookup_cache_unique"
            ),
        ]
        verbose_name = _("lookup cache")
        verbose_name_plural = _("lookup caches")

    def __str__(self) -> str:
        return f"{self.connection} {self.folder} {self.name}"


class RateLimitSlot(models.Model):
    """One request's place in a connection's shared rate-limit window (connectors.ratelimit):
    taken before the request is sent, it frees at ``until``. Written and read only by
    :class:`connectors.ratelimit.DatabaseRateLimiter`, in SQL of its own."""

    id = models.CharField(primary_key=True, max_length=32)
    key = models.CharField(max_length=64, help_text=_("SHA-256 of the account at the vendor"))
    until = models.FloatField(help_text=_("Unix time at which the slot frees"))
    in_flight = models.BooleanField(default=True)

    class Meta:
        db_table = "connectors_ratelimitslot"  # connectors.ratelimit.TABLE: its SQL names it
        indexes = [models.Index(fields=["key", "until"], name="ratelimit_key_until")]
        verbose_name = _("rate limit slot")
        verbose_name_plural = _("rate limit slots")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.key[:12]} until {self.until:.3f}"


class InboxFile(models.Model):
    """One file an e-invoice inbox connection received (upload, watched folder or mailbox), kept
    through Django's storage API under its SHA-256 (never under its name). Written and read only
    by :class:`connectors.inbox_store.DatabaseInboxStore`. The same bytes twice are one row; a
    second file with an invoice key (seller + number + issue date) another file holds is kept in
    state ``duplicate`` for review and never reaches a run."""

    class State(models.TextChoices):
        READ = "read", _("read: an invoice")
        FAILED = "failed", _("refused by the reader")
        DUPLICATE = "duplicate", _("duplicate of another file's invoice")

    class Origin(models.TextChoices):
        UPLOAD = "upload", _("upload")
        FOLDER = "folder", _("watched folder")
        MAILBOX = "mailbox", _("mailbox")

    connection = models.ForeignKey(
        Connection,
        on_delete=models.CASCADE,
        related_name="inbox_files",
        verbose_name=_("connection"),
    )
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    name = models.CharField(_("file name"), max_length=255, help_text=_("As received; shown only."))
    size = models.PositiveBigIntegerField("size (bytes)")
    storage_name = models.CharField(_("stored as"), max_length=255, blank=True)
    received_at = models.DateTimeField(_("received"), db_index=True)
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices)
    invoice_key = models.CharField(
        _("invoice key"), max_length=100, blank=True, help_text=_("Seller + number + issue date.")
    )
    seller = models.CharField(_("seller id"), max_length=100, blank=True)
    number = models.CharField(_("invoice number"), max_length=200, blank=True)
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    code = models.CharField(_("error code"), max_length=64, blank=True)
    message = models.TextField(_("message"), blank=True, max_length=2000)

    class Meta:
        ordering = ["received_at", "id"]
        verbose_name = _("received e-invoice file")
        verbose_name_plural = _("received e-invoice files")
        constraints = [
            models.UniqueConstraint(fields=["connection", "sha256"], name="inbox_file_unique_hash"),
            models.UniqueConstraint(
                fields=["connection", "invoice_key"],
                condition=models.Q(state="read"),
                name="inbox_file_unique_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"
