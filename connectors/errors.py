"""The error catalogue and the one application error type.

The first eleven codes are the product's troubleshooting table; the rest are the platform's own.
Every code carries a description, the resolution shown to the person fixing it, a kind, and the
setting that usually fixes it (for the admin's links). Descriptions and resolutions are written
in English inside ``_()`` (gettext_noop: collected by makemessages) and read in the user's language
through ``ErrorInfo.description``/``resolution``: a new code needs its French in
``locale/fr/LC_MESSAGES/django.po`` (``bin/dev messages``; tests/unit/test_translations.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from django.db import models
from django.utils import formats
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _  # marked here, translated when read

from connectors.messages import Msg, english, json_params, render


class ErrorKind(StrEnum):
    CONFIGURATION = "configuration"  # a person must change a setting or a mapping
    TRANSIENT = "transient"  # retried automatically with backoff
    DATA = "data"  # the invoice (or partner) itself must be corrected at its source


class ErrorCode(models.TextChoices):
    ACCOUNT_NUMBER_NOT_FOUND = "ERROR_SYNC_INVOICE_ACCOUNT_NUMBER_NOT_FOUND"
    ACCOUNT_NUMBER_NOT_ACTIVE = "ERROR_SYNC_INVOICE_ACCOUNT_NUMBER_NOT_ACTIVE"
    PARTNER_NOT_FOUND = "ERROR_SYNC_INVOICE_PARTNER_NOT_FOUND"
    AMOUNT_VALIDATION = "ERROR_SYNC_INVOICE_AMOUNT_VALIDATION"
    CONTACT_NOT_FOUND = "ERROR_SYNC_INVOICE_CONTACT_NOT_FOUND"
    JOURNAL_NOT_LINKED = "ERROR_SYNC_INVOICE_JOURNAL_NOT_LINKED"
    LINE_VALIDATION = "ERROR_SYNC_INVOICE_LINE_VALIDATION"
    MAPPING_TAX_RATE_NOT_FOUND = "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
    PARTNER_VALIDATION = "ERROR_SYNC_INVOICE_PARTNER_VALIDATION"
    PDF = "ERROR_SYNC_INVOICE_PDF"
    MAPPING_JOURNAL_NOT_FOUND = "ERROR_SYNC_INVOICE_MAPPING_JOURNAL_NOT_FOUND"
    # The platform's own.
    PARTNER_AMBIGUOUS = "ERROR_SYNC_INVOICE_PARTNER_AMBIGUOUS"
    DUPLICATE_IN_TARGET = "ERROR_SYNC_INVOICE_DUPLICATE_IN_TARGET"
    INVALID_SOURCE_DATA = "ERROR_SYNC_INVOICE_INVALID_SOURCE_DATA"
    TARGET_REJECTED = "ERROR_SYNC_INVOICE_TARGET_REJECTED"
    EINVOICE_INVALID = "ERROR_SYNC_INVOICE_EINVOICE_INVALID"
    EINVOICE_UNSUPPORTED = "ERROR_SYNC_INVOICE_EINVOICE_UNSUPPORTED"
    EINVOICE_NOT_OURS = "ERROR_SYNC_INVOICE_EINVOICE_NOT_OURS"
    AUTHENTICATION_FAILED = "ERROR_CONNECTION_AUTHENTICATION_FAILED"
    PERMISSION_DENIED = "ERROR_CONNECTION_PERMISSION_DENIED"
    RATE_LIMITED = "ERROR_CONNECTION_RATE_LIMITED"
    DAILY_LIMIT_REACHED = "ERROR_CONNECTION_DAILY_LIMIT_REACHED"
    UNAVAILABLE = "ERROR_CONNECTION_UNAVAILABLE"
    OAUTH_GRANT_REVOKED = "ERROR_CONNECTION_OAUTH_GRANT_REVOKED"
    OAUTH_AUTHORIZATION_FAILED = "ERROR_CONNECTION_OAUTH_AUTHORIZATION_FAILED"
    CONFIGURATION_INCOMPLETE = "ERROR_SYNC_CONFIGURATION_INCOMPLETE"
    UNEXPECTED = "ERROR_UNEXPECTED"


# What each kind means, in the reader's language (the failure review shows it beside a code).
KIND_LABELS = {
    ErrorKind.CONFIGURATION: _("configuration"),
    ErrorKind.TRANSIENT: _("transient"),
    ErrorKind.DATA: _("data"),
}


@dataclass(frozen=True)
class ErrorInfo:
    """A code's entry. The texts are stored in English and read in the active language:
    ``description`` and ``resolution`` translate when read (locale/fr/LC_MESSAGES/django.po)."""

    description_text: str
    resolution_text: str
    kind: ErrorKind
    setting: str = ""  # the flow setting (model field or inline) that usually fixes it

    @property
    def description(self) -> str:
        return gettext(self.description_text)

    @property
    def resolution(self) -> str:
        return gettext(self.resolution_text)

    @property
    def kind_label(self) -> str:
        return gettext(KIND_LABELS[self.kind])


_C, _T, _D = ErrorKind.CONFIGURATION, ErrorKind.TRANSIENT, ErrorKind.DATA

CATALOGUE: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.ACCOUNT_NUMBER_NOT_FOUND: ErrorInfo(
        _("An account used by the invoice does not exist in the accounting tool."),
        _(
            "The line's account (from the invoicing tool) was missing or unknown, and so was the "
            "default account of the flow. Create the account in the accounting tool, correct the "
            "account on the invoice's items in the invoicing tool, or choose an existing default "
            "sales/purchase account in the flow, then retry."
        ),
        _C,
        "default_sales_account",
    ),
    ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE: ErrorInfo(
        _("An account used by the invoice is not active (closed) in the accounting tool."),
        _(
            "The line's account and the flow's default account cannot receive entries. Re-open "
            "the account in the accounting tool or choose an active default sales/purchase "
            "account in the flow, then retry."
        ),
        _C,
        "default_sales_account",
    ),
    ErrorCode.PARTNER_NOT_FOUND: ErrorInfo(
        _(
            "The customer or supplier linked to this invoice no longer exists in the accounting "
            "tool."
        ),
        _(
            "It was matched or created earlier and has since been deleted in the accounting tool. "
            "Re-create it there, or remove the partner link in invsync so that it is matched or "
            "created again, then retry."
        ),
        _D,
        "partner_links",
    ),
    ErrorCode.AMOUNT_VALIDATION: ErrorInfo(
        _("The invoice's amounts (untaxed, tax, total) do not add up."),
        _(
            "Either untaxed + tax differs from the total, or the lines differ from the total by "
            "more than the flow's rounding tolerance. Check the invoice in the invoicing tool; if "
            "its amounts are right, raise the flow's rounding tolerance and retry."
        ),
        _D,
        "rounding_tolerance",
    ),
    ErrorCode.CONTACT_NOT_FOUND: ErrorInfo(
        _("The invoicing tool could not return the invoice's customer or supplier."),
        _(
            "The invoice points at a contact that the invoicing tool does not return (deleted, or "
            "not visible to the connected user). Restore the contact or check the connection's "
            "access rights in the invoicing tool, then retry."
        ),
        _D,
    ),
    ErrorCode.JOURNAL_NOT_LINKED: ErrorInfo(
        _("The invoice has no journal in the invoicing tool."),
        _(
            "This flow maps the invoicing tool's journals one by one, so every invoice needs one. "
            "Link a journal to the invoice in the invoicing tool, or switch the flow to one "
            "journal per direction, then retry."
        ),
        _D,
        "journal_mappings",
    ),
    ErrorCode.LINE_VALIDATION: ErrorInfo(
        _("An invoice line is not valid: it has neither a tax rate nor a tax code."),
        _("Give every line of the invoice a tax (0 % counts) in the invoicing tool, then retry."),
        _D,
    ),
    ErrorCode.MAPPING_TAX_RATE_NOT_FOUND: ErrorInfo(
        _("A VAT rate of the invoice is not mapped to a VAT code of the accounting tool."),
        _(
            "Add the rate (or the source tax) to the flow's sales or purchase VAT mapping, "
            "choosing the accounting tool's VAT code, then retry."
        ),
        _C,
        "vat_mappings",
    ),
    ErrorCode.PARTNER_VALIDATION: ErrorInfo(
        _("The invoice has no customer or supplier."),
        _(
            "An entry needs a third party. Set the customer or supplier on the invoice in the "
            "invoicing tool, then retry."
        ),
        _D,
    ),
    ErrorCode.PDF: ErrorInfo(
        _("The invoice's PDF could not be retrieved."),
        _(
            "The invoice has no PDF, or fetching it from the invoicing tool failed. Check that "
            "the invoice has its PDF in the invoicing tool; if the flow should not wait for PDFs, "
            "allow syncing without attachment in the flow's configuration, then retry."
        ),
        _D,
        "sync_without_attachment",
    ),
    ErrorCode.MAPPING_JOURNAL_NOT_FOUND: ErrorInfo(
        _("The invoice's journal is not mapped to a journal of the accounting tool."),
        _(
            "Map the invoicing tool's journal to an accounting journal in the flow (or set the "
            "flow's sales/purchase journal), then retry."
        ),
        _C,
        "journal_mappings",
    ),
    ErrorCode.PARTNER_AMBIGUOUS: ErrorInfo(
        _("Several customers or suppliers in the accounting tool match the invoice's partner."),
        _(
            "invsync never guesses. Merge or correct the duplicates in the accounting tool (or "
            "make their VAT/company numbers distinct), then retry."
        ),
        _D,
        "partner_links",
    ),
    ErrorCode.DUPLICATE_IN_TARGET: ErrorInfo(
        _(
            "The accounting tool already holds an entry for this invoice that invsync did not "
            "write."
        ),
        _(
            "Check the accounting tool: if the existing entry is right, mark the record as "
            "skipped; otherwise delete it there and retry."
        ),
        _D,
    ),
    ErrorCode.INVALID_SOURCE_DATA: ErrorInfo(
        _("The invoicing tool returned an invoice that cannot be read."),
        _(
            "A field is missing or malformed (see the message). Correct the invoice in the "
            "invoicing tool, then retry."
        ),
        _D,
    ),
    ErrorCode.TARGET_REJECTED: ErrorInfo(
        _("The accounting tool refused the entry."),
        _(
            "Its message says why (a closed period, a missing fiscal year, a locked journal...). "
            "Fix that in the accounting tool, then retry."
        ),
        _D,
    ),
    ErrorCode.EINVOICE_INVALID: ErrorInfo(
        _("The e-invoice breaks a rule of its standard (EN16931, Factur-X/ZUGFeRD, UBL)."),
        _(
            "The message names the rule and the field (for example BR-CO-15: the total without "
            "VAT plus the VAT total must equal the total with VAT). Ask the sender for a "
            "corrected invoice, or a credit note and a new invoice; invsync does not guess "
            "amounts."
        ),
        _D,
    ),
    ErrorCode.EINVOICE_UNSUPPORTED: ErrorInfo(
        _("The file is not an e-invoice invsync reads."),
        _(
            "invsync reads Factur-X/ZUGFeRD PDFs, ZUGFeRD 1.0 and UN/CEFACT CII XML, and UBL 2.1 "
            "invoices and credit notes. A plain PDF, a scan or an image, or another standard "
            "(FatturaPA, ...) must be entered by hand; ask the sender for one of those formats."
        ),
        _D,
    ),
    ErrorCode.EINVOICE_NOT_OURS: ErrorInfo(
        _("Neither the seller nor the buyer of the e-invoice is this connection's company."),
        _(
            "invsync tells a sale from a purchase by finding the company among the invoice's "
            "parties (VAT number, SIREN/SIRET or legal id; the exact name where the invoice gives "
            "no identifier). Check that the file belongs to this company, or add the identifier "
            "the invoice uses to the connection's company identifiers, then retry."
        ),
        _D,
        "connection",
    ),
    ErrorCode.AUTHENTICATION_FAILED: ErrorInfo(
        _("A connected tool refused the credentials."),
        _(
            "Open the connection, enter valid credentials (or reconnect OAuth2) and use Test "
            "connection, then retry."
        ),
        _C,
        "connection",
    ),
    ErrorCode.PERMISSION_DENIED: ErrorInfo(
        _("The connected user lacks a permission in the tool."),
        _("Grant the connected user access to the folder, journals and accounts used, then retry."),
        _C,
        "connection",
    ),
    ErrorCode.RATE_LIMITED: ErrorInfo(
        _("The tool's request limit was reached."),
        _("Nothing to do: invsync waits as the tool asks and resumes on the next run."),
        _T,
    ),
    ErrorCode.DAILY_LIMIT_REACHED: ErrorInfo(
        _("The accounting tool's limit of requests for the day is reached: the flow is paused."),
        _(
            "Nothing failed and nothing needs doing: the invoices not yet written stay pending "
            "and the flow resumes on its own when the limit resets (the run says at what time)."
        ),
        _T,
    ),
    ErrorCode.UNAVAILABLE: ErrorInfo(
        _("A connected tool could not be reached or answered with a server error."),
        _(
            "Nothing to do if it is temporary: the next run resumes where this one stopped. If it "
            "lasts, check the connection's address and the tool's status."
        ),
        _T,
        "connection",
    ),
    ErrorCode.OAUTH_GRANT_REVOKED: ErrorInfo(
        _("The tool refused or revoked invsync's OAuth2 authorisation."),
        _(
            "Reconnect: open the connection and use its Reconnect (Connect to …) button to sign "
            "in to the tool and grant access again, then retry."
        ),
        _C,
        "connection",
    ),
    ErrorCode.OAUTH_AUTHORIZATION_FAILED: ErrorInfo(
        _("Connecting to the tool with OAuth2 did not complete."),
        _(
            "Access was declined, the sign-in page was opened from another session or took too "
            "long, or the tool refused the authorisation code (see the message). Use Connect "
            "again; if it keeps failing, check the OAuth app's client id and secret."
        ),
        _C,
        "connection",
    ),
    ErrorCode.CONFIGURATION_INCOMPLETE: ErrorInfo(
        _("The flow's configuration is incomplete."),
        _("Complete the missing settings of the flow (the message names them), then retry."),
        _C,
        "configuration",
    ),
    ErrorCode.UNEXPECTED: ErrorInfo(
        _("An unexpected error occurred."),
        _(
            "Retry once; if it persists, report the record's message and its INVOICE.json and "
            "CONFIG.json downloads to the maintainers."
        ),
        _T,
    ),
}


def error_info(code: str) -> ErrorInfo:
    return CATALOGUE[ErrorCode(code)]


# Errors that concern a connection as a whole, not one record: a run stops on them.
CONNECTION_CODES = frozenset(
    {
        ErrorCode.AUTHENTICATION_FAILED,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.DAILY_LIMIT_REACHED,
        ErrorCode.UNAVAILABLE,
        ErrorCode.CONFIGURATION_INCOMPLETE,
        ErrorCode.OAUTH_GRANT_REVOKED,
    }
)


class InvsyncError(Exception):
    """The one application error: a catalogue code, a message for people, and where it applies.

    Messages must never hold a secret; connectors cut vendor payloads to their message.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        key: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.field = field
        self.retry_after = retry_after
        # The message as a key of connectors.messages.MESSAGES and JSON-safe parameters: what
        # records and runs store, and the admin renders in the reader's language.
        self.key = key
        self.params = json_params(params)

    @classmethod
    def of(
        cls,
        code: ErrorCode,
        key: str,
        /,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        **params: Any,
    ) -> InvsyncError:
        """The error whose message is ``key``'s template filled with ``params`` (its English
        text is the template's)."""
        message = Msg(key, **params)
        return cls(
            code,
            message.english(),
            field=field,
            retry_after=retry_after,
            key=key,
            params=message.params,
        )

    @property
    def kind(self) -> ErrorKind:
        return CATALOGUE[self.code].kind

    @property
    def is_transient(self) -> bool:
        return self.kind is ErrorKind.TRANSIENT

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ConnectorError(InvsyncError):
    """Raised by connectors: a vendor's error turned into a catalogue code by the client's table."""


class RateLimitPause(ConnectorError):
    """The vendor's limit leaves no request before ``resume_at`` (an aware UTC datetime), further
    off than a client may sleep: a daily window full for hours, or a 429 whose Retry-After is past
    the bound (:data:`connectors.ratelimit.PAUSE_AFTER`). Nothing was sent. A run meeting it stops
    without blaming a record and the flow pauses until ``resume_at`` (syncs.run)."""

    def __init__(self, resume_at, message: str = "") -> None:
        super().__init__(
            ErrorCode.DAILY_LIMIT_REACHED,
            message or f"The tool's request limit is reached until {resume_at:%Y-%m-%d %H:%M} UTC.",
        )
        self.resume_at = resume_at


def _localized_number(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    places = max(0, -value.as_tuple().exponent) if value.is_finite() else 0
    return formats.number_format(value, decimal_pos=places, use_l10n=True)


def _localized_date(text: str) -> str:
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        return text
    return formats.date_format(value, "SHORT_DATE_FORMAT", use_l10n=True)


def message_text(key: str, params: Mapping[str, Any] | None, fallback: str) -> str:
    """A stored message in the reader's language: ``key``'s template (connectors.messages)
    translated and filled with ``params``; ``fallback`` (the stored English text) for a row
    without a key, an unknown key or parameters that do not fit."""
    if not key:
        return fallback
    return render(
        key,
        params or {},
        fallback,
        translate=gettext,
        number=_localized_number,
        date=_localized_date,
    )


def english_text(key: str, params: Mapping[str, Any] | None, fallback: str = "") -> str:
    """The same message in English, whatever the active language."""
    return english(key, params or {}, fallback)


# What connectors raise most, as message keys (connectors.messages): by code, and for an
# unreachable tool by the transport failure (connectors.http's CONNECTION, TIMEOUT, DROPPED).
# Other failures (a server error's status, an address the outbound policy refuses) keep their
# vendor's own English sentence, which says more than a shared one would.
_CONNECTION_KEYS = {
    ErrorCode.AUTHENTICATION_FAILED: "connection.authentication_refused",
    ErrorCode.PERMISSION_DENIED: "connection.permission_denied",
    ErrorCode.RATE_LIMITED: "connection.rate_limited",
}
_FAILURE_KEYS = {
    "connection": "connection.unreachable",
    "timeout": "connection.timeout",
    "dropped": "connection.dropped",
}


def connection_message_key(
    code: ErrorCode, *, failure: str | None = None, status: int | None = None
) -> str:
    """The message key of a connector's failure of ``code`` ("" when it has none): the
    parameters are ``vendor``, ``url``, ``status`` and ``timeout``."""
    code = ErrorCode(code)
    if code in _CONNECTION_KEYS:
        return _CONNECTION_KEYS[code]
    if failure in _FAILURE_KEYS and code is ErrorCode.UNAVAILABLE:
        return _FAILURE_KEYS[failure]
    return ""
