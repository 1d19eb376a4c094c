"""The connector contract.

A connector describes one vendor's tool (class attributes: key, name, kind, auth kinds, capability
flags) and wraps one stored connection at run time (an instance built from plain values). Connector
code never touches the ORM and never logs or returns a credential: it receives settings and
credentials as plain mappings and returns the dataclasses of :mod:`connectors.canonical`.

Every method that talks to the vendor raises :class:`connectors.errors.ConnectorError` with a
catalogue code (through the client's one error table), never a bare transport exception.
"""

from __future__ import annotations

import abc
import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from connectors.canonical import (
    Account,
    Attachment,
    ConnectionCheck,
    Direction,
    EntryRef,
    Folder,
    Invoice,
    Journal,
    Partner,
    Posting,
    SourceJournal,
    SourceTaxRate,
    TargetPartner,
    VatCode,
)
from connectors.errors import CONNECTION_CODES, ErrorCode, InvsyncError
from connectors.messages import N_
from connectors.oauth import TokenSource
from connectors.outbound import OutboundPolicy
from connectors.ratelimit import Limits, RateWindows, parse_rate_limit
from connectors.retry import RetryPolicy


class ConnectionKind(StrEnum):
    INVOICING = "invoicing"
    ACCOUNTING = "accounting"


class AuthKind(StrEnum):
    API_KEY = "api_key"
    CREDENTIALS = "credentials"
    OAUTH2 = "oauth2"
    NONE = "none"  # no sign-in: invsync receives the files itself (the e-invoice inbox)


# The secret fields each auth kind stores (encrypted); the admin renders them write-only.
AUTH_FIELDS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.API_KEY: ("api_key",),
    AuthKind.CREDENTIALS: ("username", "password"),
    # The grant's tokens are not typed: Connect stores them (Connection.oauth_tokens). A firm's
    # own OAuth app is typed here; without one the deployment's app (settings) is used.
    AuthKind.OAUTH2: ("client_id", "client_secret"),
    AuthKind.NONE: (),
}


@dataclass(frozen=True)
class SettingField:
    """A non-secret setting a provider needs (shown and editable in the admin).

    ``check``: given a non-empty value (as text), returns what is wrong with it, or None; the
    connection form and service refuse a value it finds fault with.

    ``addresses_credentials``: the setting decides where the credentials are sent (a server
    address, a database, a tenant). Changing it requires the secrets to be entered again: a
    stored secret is never sent to an address it was not entered for.

    ``label`` and ``help_text`` are English inside ``N_("…")`` (connectors.messages), translated
    by the form when shown; ``help_params`` fill the help's ``%(name)s`` placeholders after its
    translation (a default computed in code)."""

    name: str
    label: str
    help_text: str = ""
    required: bool = True
    default: str = ""
    check: Callable[[str], str | None] | None = None
    addresses_credentials: bool = False
    help_params: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def help(self) -> str:
        """The help text in English, its placeholders filled."""
        return self.help_text % dict(self.help_params) if self.help_params else self.help_text

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` for this setting (None: nothing, or no value)."""
        if value is None or value == "":
            return None
        if isinstance(value, dict | list):
            return "must be a plain value"
        text = str(value)
        if "\x00" in text or len(text) > SETTING_MAX_LENGTH:
            return f"must be text of at most {SETTING_MAX_LENGTH} characters"
        return self.check(text.strip()) if self.check else None


SETTING_MAX_LENGTH = 2000


def http_url(value: str) -> str | None:
    """A setting check: an http(s) address with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a valid address"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an address starting with http:// or https://, e.g. https://erp.example.com/"
    if any(c.isspace() for c in value):
        return "must not contain spaces"
    return None


def positive_number(value: str) -> str | None:
    """A setting check: a number of seconds above zero."""
    number = _number(value)
    return None if number is not None and number > 0 else "must be a number above 0"


def non_negative_number(value: str) -> str | None:
    """A setting check: a number ≥ 0."""
    number = _number(value)
    return None if number is not None and number >= 0 else "must be a number ≥ 0"


def whole_number(value: str) -> str | None:
    """A setting check: a whole number from 1 to 1,000,000 (a count, an id)."""
    if value.isascii() and value.isdigit() and 1 <= int(value) <= 1_000_000:
        return None
    return "must be a whole number ≥ 1"


def rate_limit(value: str) -> str | None:
    """A setting check: requests per window, as connectors.ratelimit.parse_rate_limit reads it."""
    try:
        parse_rate_limit(value)
    except ValueError:
        return (
            "must be requests/seconds, e.g. 60/60, with 1 to 1,000,000 requests and a window of "
            "at most a day (or none)"
        )
    return None


def transport_settings(
    *, timeout: float, rate_limit_help: str, retry_after: bool = True
) -> tuple[SettingField, ...]:
    """The settings every connector over HTTP or JSON-RPC declares alike, in this order: the
    answer timeout (``timeout`` seconds by default), the rate limit (``rate_limit_help``: the
    vendor's default, inside ``N_``) and the retry policy's four settings (connectors.retry
    SETTINGS; ``retry_after=False`` leaves out the longest Retry-After, for a vendor that sends
    none)."""
    fields = (
        SettingField(
            "timeout",
            N_("Timeout (s)"),
            N_("Seconds to wait for each answer (default %(default)s)."),
            help_params={"default": f"{timeout:g}"},
            required=False,
            check=positive_number,
        ),
        SettingField(
            "rate_limit", N_("Rate limit"), rate_limit_help, required=False, check=rate_limit
        ),
        SettingField(
            "retry_attempts",
            N_("Tries per call"),
            N_(
                "Tries in all for a call that fails on a passing error (default %(default)s; 1: "
                "never retry)."
            ),
            help_params={"default": str(RetryPolicy.max_attempts)},
            required=False,
            check=whole_number,
        ),
        SettingField(
            "retry_base_delay",
            N_("First retry wait (s)"),
            N_("The first wait, doubled for each retry (default %(default)s)."),
            help_params={"default": f"{RetryPolicy.base_delay:g}"},
            required=False,
            check=non_negative_number,
        ),
        SettingField(
            "retry_max_total_delay",
            N_("Longest total wait (s)"),
            N_("Retries stop once this much waiting is spent (default %(default)s)."),
            help_params={"default": f"{RetryPolicy.max_total_delay:g}"},
            required=False,
            check=non_negative_number,
        ),
        SettingField(
            "retry_after_max",
            N_("Longest Retry-After obeyed (s)"),
            N_(
                "A server asking to wait longer makes the run stop and resume later (default "
                "%(default)s)."
            ),
            help_params={"default": f"{RetryPolicy.max_retry_after:g}"},
            required=False,
            check=non_negative_number,
        ),
    )
    return fields if retry_after else fields[:-1]


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class ConnectionConfig:
    auth_kind: AuthKind
    settings: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    label: str = ""  # the connection's name, for messages
    # Where the connector's calls may go (connectors.outbound); None: the strictest policy, public
    # addresses only. connectors.selectors.connector_for sets the configured one.
    outbound: OutboundPolicy | None = None
    # The rate-limit windows its client waits on (connectors.ratelimit.RateWindows); None: counted
    # in this process alone. connectors.selectors.connector_for hands in the deployment's.
    rate_windows: RateWindows | None = field(default=None, repr=False, compare=False)
    # OAuth2: where the access token comes from (connectors.oauth.TokenSource; refreshed there,
    # single-flight). None for the other auth kinds. connectors.selectors.connector_for hands in
    # the connection's (connectors.token_store); a client gets it with HttpClient(bearer=...).
    tokens: TokenSource | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SourceRecordError:
    """A source record that could not be turned into an :class:`Invoice`. Yielded, not raised,
    so that one bad record never stops a run."""

    source_id: str
    error: InvsyncError
    number: str = ""
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class EntryToWrite:
    posting: Posting
    attachment: Attachment | None = None


@dataclass(frozen=True)
class EntryResult:
    """The outcome of writing one entry: its reference, or the error that refused it alone."""

    external_id: str
    ref: EntryRef | None = None
    error: InvsyncError | None = None


class Connector(abc.ABC):
    key: ClassVar[str]
    name: ClassVar[str]
    kind: ClassVar[ConnectionKind]
    auth_kinds: ClassVar[tuple[AuthKind, ...]]
    settings_fields: ClassVar[tuple[SettingField, ...]] = ()
    # Secrets the tool takes whatever the authentication, typed write-only on the connection's
    # page and kept encrypted with its credentials (Stripe: its webhook's ``webhook_secret``).
    extra_secrets: ClassVar[tuple[str, ...]] = ()
    # Requests per rolling window the vendor allows (None: no published limit).
    rate_limit: ClassVar[tuple[int, float] | None] = None
    # Several windows and a concurrency cap (per account or per app), for vendors that state
    # more than one limit: how to declare and use them, connectors/ratelimit.py ("How a connector
    # declares its vendor's limits"). None: ``rate_limit`` alone.
    rate_limits: ClassVar[Limits | None] = None

    def __init__(self, config: ConnectionConfig) -> None:
        if config.auth_kind not in self.auth_kinds:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"{self.name} does not accept the auth kind {config.auth_kind!s}.",
                field="auth_kind",
            )
        self.config = config

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        """The stable identity of the account these settings reach at the vendor: the namespace
        in which the tool's object ids are unique (a Tryton server and database, a SaaS tenant
        id). invsync builds an invoice's external id from its source's identity and its id, so
        that every flow writing to one folder recognises an entry another flow wrote.

        Must return the same text for every spelling of the same account that the connector can
        recognise offline (address case, default port, trailing slash), and different texts for
        different accounts. Must be computed from the non-secret settings alone: no call to the
        vendor, no credential, nothing secret in the text (it may be hashed into entries a person
        reads). Settings that only change how invsync talks to the account (timeouts, retries,
        rate limits) or what it reads of it (a company filter: ids stay unique in the account)
        must not change it. Raises InvsyncError(CONFIGURATION_INCOMPLETE) when the settings do not
        name an account. Returns "" when the connector cannot name its account: invsync then
        keys its entries by connection, and flows on other connections to the same account are
        not recognised."""
        return ""

    @classmethod
    def settings_problem(cls, settings: Mapping[str, object]) -> str | None:
        """What is wrong with the settings taken together (one setting's own problems are its
        ``SettingField.check``'s), e.g. "at least one of these"; None: nothing. The connection
        form and service refuse settings it finds fault with."""
        return None

    @abc.abstractmethod
    def check_connection(self) -> ConnectionCheck:
        """Log in and make one cheap read. Must return a check (ok or not, with a message for
        people), never raise for a refused login or an unreachable host, never put a credential
        in the message."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions. Safe to call twice."""


class InvoicingSource(Connector):
    kind = ConnectionKind.INVOICING
    supports_journals: ClassVar[bool] = False
    supports_attachments: ClassVar[bool] = True

    @abc.abstractmethod
    def iter_invoices(
        self, *, since: dt.datetime | None, directions: Sequence[Direction]
    ) -> Iterator[Invoice | SourceRecordError]:
        """Yield the final (validated/posted/paid) and cancelled invoices and credit notes of the
        given directions changed at or after ``since`` (all when None), oldest change first,
        streamed page by page. A record that cannot be mapped is yielded as a
        :class:`SourceRecordError`; only a failure of the whole listing raises ConnectorError.
        Must not fetch attachments."""

    @abc.abstractmethod
    def get_invoice(self, source_id: str) -> Invoice | SourceRecordError:
        """Return one invoice by its source id (for retries and held records). Raises
        ConnectorError with INVALID_SOURCE_DATA when it no longer exists."""

    @abc.abstractmethod
    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        """Fetch the invoice's PDF. Raises ConnectorError with code PDF when it is absent or
        cannot be fetched; transport failures keep their transient codes."""

    @abc.abstractmethod
    def list_tax_rates(self) -> list[SourceTaxRate]:
        """The VAT rates (and tax ids) the source uses, per direction, for mapping proposals."""

    def list_journals(self) -> list[SourceJournal]:
        """The source's journals, where it has them (``supports_journals``)."""
        return []


class AccountingTarget(Connector):
    kind = ConnectionKind.ACCOUNTING
    supports_draft_entries: ClassVar[bool] = False
    supports_attachments: ClassVar[bool] = False
    supports_partner_creation: ClassVar[bool] = False
    supports_batch_writes: ClassVar[bool] = False
    # Whether tax lines name an account (True) or the target books VAT from the code itself.
    vat_codes_name_accounts: ClassVar[bool] = True
    # Whether the target gives its own exchange rates (:meth:`exchange_rate`): an invoice whose
    # invoicing tool gives no rate is then booked at the ledger's rate for the invoice's date.
    supports_exchange_rates: ClassVar[bool] = False

    @abc.abstractmethod
    def list_folders(self) -> list[Folder]:
        """The folders (companies, ledgers) the connection can write to."""

    @abc.abstractmethod
    def list_vat_codes(self, folder: str) -> list[VatCode]:
        """The folder's VAT codes with their rates and, where the target has one, the account."""

    @abc.abstractmethod
    def list_journals(self, folder: str) -> list[Journal]:
        """The folder's journals."""

    @abc.abstractmethod
    def list_accounts(self, folder: str) -> list[Account]:
        """The folder's chart: every account that can take entry lines (active or not), each with
        the kind the tool reports (``AccountKind``; ``unknown`` where the tool gives numbers only),
        read in the call that lists the chart, not one call per account."""

    @abc.abstractmethod
    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        """Partners of the folder that may match ``partner`` on any criterion (auxiliary account,
        VAT number, company number or name), with their identifiers. A superset is fine: the
        caller applies the matching rules. Must not create anything."""

    @abc.abstractmethod
    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` still exist in the folder (one call for many ids)."""

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        """Create the partner with its identifiers (only when ``supports_partner_creation``)."""
        raise InvsyncError(
            ErrorCode.PARTNER_NOT_FOUND,
            f"{self.name} does not let invsync create customers or suppliers: create "
            f"{partner.name!r} in the accounting tool.",
        )

    def find_partner_candidates_many(
        self, folder: str, partners: Sequence[Partner]
    ) -> dict[str, list[TargetPartner]]:
        """:meth:`find_partner_candidates` for several partners, by ``source_id``. The default
        asks once per partner; a connector whose tool can search for many at once overrides it
        (same contract: a superset per partner is fine, nothing is created)."""
        return {p.source_id: self.find_partner_candidates(folder, p) for p in partners}

    def create_partners(
        self, folder: str, partners: Sequence[tuple[Partner, Direction]]
    ) -> list[TargetPartner | InvsyncError]:
        """:meth:`create_partner` for several partners, one result per partner, in order: the
        partner created, or the error that refused it (the others are still created). An error
        that concerns the whole connection (:data:`CONNECTION_CODES`) is raised. The default
        creates them one by one."""
        results: list[TargetPartner | InvsyncError] = []
        for partner, direction in partners:
            try:
                results.append(self.create_partner(folder, partner, direction))
            except InvsyncError as error:
                if error.code in CONNECTION_CODES:
                    raise  # the next ones would fail the same way
                results.append(error)
        return results

    @abc.abstractmethod
    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        """Write the entries (draft or posted as each posting says), each with its attachment.
        Returns one result per entry, in order. An entry refused on its own merits gets an error
        result; the others are still written. A failure of the whole call (transport,
        authentication) raises ConnectorError, and then the caller cannot know what was written:
        it resolves that with :meth:`find_entries`. Must never write an entry whose
        ``external_id`` already exists in the folder."""

    @abc.abstractmethod
    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        """The entries already written for these external ids (absent ids are left out)."""

    def attach(self, folder: str, ref: EntryRef, attachment: Attachment) -> None:
        """Attach a file to an existing entry (after a crash between entry and attachment)."""
        raise NotImplementedError

    def exchange_rate(
        self, folder: str, currency: str, company_currency: str, date: dt.date
    ) -> Decimal | None:
        """The folder's rate on ``date``: ``company_currency`` units per ``currency`` unit, or
        None where the ledger has none (only when ``supports_exchange_rates``). A failure to ask
        raises ConnectorError."""
        return None
