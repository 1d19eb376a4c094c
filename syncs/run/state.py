"""What one run carries from step to step (:class:`RunState`), what a chunk of invoices holds on
its way to the target, and the small record helpers every step shares."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from django.utils import timezone

from connectors.base import AccountingTarget, InvoicingSource
from connectors.canonical import Attachment, Invoice, TargetLookups
from connectors.errors import CONNECTION_CODES, ConnectorError, ErrorCode, InvsyncError
from mappings.models import SyncFlow
from syncs import selectors
from syncs.config import FlowConfig
from syncs.models import ObjectType, PartnerLink, RecordStatus, SyncedRecord, SyncRun, external_id

# Errors that concern the connection as a whole: the run stops, nothing is blamed on a record.
RUN_STOPPING_CODES = CONNECTION_CODES
MAX_MESSAGE = 2000


class StopRun(Exception):
    """Raised inside a run to stop it with ``error`` (the run fails with its code)."""

    def __init__(self, error: InvsyncError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class Ready:
    """An invoice the engine turned into a posting, waiting for its partner and its write."""

    record: SyncedRecord
    invoice: Invoice
    posting: object  # connectors.canonical.Posting
    attachment: Attachment | None = None


@dataclass
class Chunk:
    """A chunk's invoices ready to write, and the records to save whatever happens."""

    ready: list[Ready] = field(default_factory=list)
    dirty: list[SyncedRecord] = field(default_factory=list)


@dataclass
class RunState:
    """One run of a flow: what it was handed (the flow, its SyncRun row, the two connectors, how to
    keep its lease and read the target's lookups) and what it learns on the way (the engine
    configuration, partner links, the flows sharing its ledger)."""

    flow: SyncFlow
    run: SyncRun
    source: InvoicingSource
    target: AccountingTarget
    # Pushes the run's leases forward; raises InvsyncError when the lease was lost.
    renew_lease: Callable[[], None]
    # Reads the target's accounts, VAT codes and journals (and keeps them for the forms).
    read_lookups: Callable[[], TargetLookups]
    progress: Callable[[SyncRun], None] | None = None
    batch_size: int = 1
    now: datetime = field(default_factory=timezone.now)
    source_account: str = ""
    links: dict[str, PartnerLink] = field(default_factory=dict)
    verified_partners: set[str] = field(default_factory=set)
    # Other flows reading the same source account and writing the same folder (by id), and the
    # flows (this one included) whose entries may carry the old per-flow keys.
    relatives: dict[int, SyncFlow] = field(default_factory=dict)
    legacy_flows: list[int] = field(default_factory=list)
    # The records this run tried to book (by source id): each counts one attempt per run.
    attempted: set[str] = field(default_factory=set)
    _config: FlowConfig | None = None

    @property
    def folder(self) -> str:
        return self.flow.folder

    @property
    def config(self) -> FlowConfig:
        """Built on first need, so that a run with nothing new makes no call to the target."""
        if self._config is None:
            self._config = selectors.flow_engine_config(self.flow, self.call(self.read_lookups))
        return self._config

    def key(self, source_id: str) -> str:
        """The key the invoice ``source_id`` is written under (its identity in the source
        account)."""
        return external_id(self.source_account, ObjectType.INVOICE, source_id)

    def call(self, method, *args):
        """Call a connector; a connector error stops the run."""
        try:
            return method(*args)
        except ConnectorError as error:
            raise StopRun(error) from error

    def count(self, what: str) -> None:
        name = f"{what}_count"
        setattr(self.run, name, getattr(self.run, name) + 1)

    def attempt(self, record: SyncedRecord) -> None:
        """Count this run's try at booking ``record``: once per run, whether it failed before
        its write (engine, partner, PDF) or at it, or was written. Invoices left unchanged,
        skipped or waiting for their PDF are not tried."""
        if record.source_id not in self.attempted:
            self.attempted.add(record.source_id)
            record.attempts += 1

    def fail(self, record: SyncedRecord, error: InvsyncError) -> None:
        if error.code == ErrorCode.DAILY_LIMIT_REACHED:
            # The tool's daily limit is no record's fault: the run stops (paused), the record
            # stays as it was, to be written when the flow resumes.
            raise StopRun(error)
        self.attempt(record)
        record.status = RecordStatus.FAILED
        record.error_code = error.code
        record.error_message = clip(error.message)
        record.error_key, record.error_params = error.key, error.params
        record.error_field = (error.field or "")[:100]
        record.config_version = self.flow.config_version
        record.last_run = self.run
        record.next_attempt_at = (
            timezone.now() + retry_delay(record.attempts) if error.is_transient else None
        )
        self.count("failed")


def clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def retry_delay(attempts: int) -> timedelta:
    """Bounded exponential backoff with jitter for records that failed on a transient error."""
    base = min(3600.0, 60.0 * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto


def chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def clear_error(record: SyncedRecord) -> None:
    record.error_code = record.error_message = record.error_field = record.error_key = ""
    record.error_params = {}
    record.next_attempt_at = None


# What a run writes on a record: everything but what people set on it (overrides), so a run that
# loaded a record before someone saved overrides never writes the old ones back.
RUN_FIELDS = [
    f.name
    for f in SyncedRecord._meta.concrete_fields
    if f.name not in {"id", "overrides", "created_at", "flow", "object_type", "source_id"}
]


def save_record(record: SyncedRecord) -> None:
    if record.pk is None:
        record.save()
    else:
        record.save(update_fields=RUN_FIELDS)
