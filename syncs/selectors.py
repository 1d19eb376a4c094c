"""Reads for the sync service, the admin and the commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_q.models import Task

from connectors.canonical import Direction, Invoice, InvoiceType, TargetLookups
from connectors.errors import CATALOGUE, ErrorCode, ErrorInfo, InvsyncError
from connectors.models import LookupCache
from connectors.selectors import client_list_for_user, connector_class_for
from mappings.flow_settings import engine_values
from mappings.lookups import lookup_rows_decode
from mappings.models import SyncFlow
from mappings.selectors import flow_schedule_name
from syncs.config import FlowConfig, VatRule
from syncs.engine import LineOverride
from syncs.models import RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.serialization import invoice_to_json


def _blank_to_none(value: str) -> str | None:
    return value or None


def flow_engine_config(flow: SyncFlow, lookups: TargetLookups) -> FlowConfig:
    """The engine's view of a flow: its settings and mappings as plain values."""
    rules: dict[str, list[VatRule]] = {"sales": [], "purchases": []}
    for mapping in flow.vat_mappings.all():
        rules[mapping.direction].append(
            VatRule(
                mapping.source_rate,
                _blank_to_none(mapping.source_tax_id),
                mapping.target_code,
                _blank_to_none(mapping.collected_code),
            )
        )
    by_source = None
    if flow.journals_by_source:
        by_source = {m.source_journal: m.target_journal for m in flow.journal_mappings.all()}
    # What the target can do decides over settings it cannot honour (the flow form refuses them);
    # a provider no longer installed writes nothing, and its flow keeps its settings as they are.
    drafts, vat_accounts = True, True
    if flow.accounting_connection_id:
        try:
            target = connector_class_for(flow.accounting_connection)
            drafts, vat_accounts = target.supports_draft_entries, target.vat_codes_name_accounts
        except InvsyncError:
            pass
    settings = engine_values(flow)
    settings["draft"] = settings["draft"] and drafts
    return FlowConfig(
        **settings,
        vat_codes_name_accounts=vat_accounts,
        journals_by_source=by_source,
        sales_vat=tuple(rules["sales"]),
        purchases_vat=tuple(rules["purchases"]),
        target=lookups,
        source_taxes=flow_source_taxes(flow),
    )


def flow_source_taxes(flow: SyncFlow) -> tuple:
    """The invoicing tool's taxes as last read for the flow's forms (names and rates, for the
    engine's messages), without calling the tool; () when they were never read."""
    if not flow.invoicing_connection_id:
        return ()
    row = (
        LookupCache.objects.filter(
            connection_id=flow.invoicing_connection_id, folder="", name="tax_rates"
        )
        .only("payload")
        .first()
    )
    if row is None:
        return ()
    try:
        return tuple(lookup_rows_decode("tax_rates", "invoicing", row.payload))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return ()  # an unreadable cache names nothing: the messages fall back to the rate


def invoice_fingerprint(invoice: Invoice) -> str:
    """What decides whether an invoice changed: its content, not the time it was last touched."""
    data = invoice_to_json(invoice)
    data.pop("updated_at", None)
    # The VAT breakdown follows from the lines and totals already fingerprinted; left out so that
    # invoices synced before sources stated one are not all reported as changed afterwards.
    data.pop("taxes", None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def record_overrides(record: SyncedRecord) -> dict[int, LineOverride]:
    return {
        int(index): LineOverride(account=value.get("account"), vat_code=value.get("vat_code"))
        for index, value in (record.overrides or {}).get("lines", {}).items()
    }


def flow_record_counts(flow: SyncFlow) -> dict[str, int]:
    counts = dict(
        flow.records.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in RecordStatus.values}


# -- Failure review, progress and dashboards ------------------------------------------------------


def flow_list_with_run_stats(queryset: QuerySet[SyncFlow] | None = None) -> QuerySet[SyncFlow]:
    """Flows annotated with their last run's ``last_run_id``, ``last_run_status``,
    ``last_run_started_at``, ``last_run_failed_count`` and ``last_run_error_code``, and with
    ``failed_record_count``."""
    queryset = SyncFlow.objects.all() if queryset is None else queryset
    last_runs = SyncRun.objects.filter(flow=OuterRef("pk")).order_by("-started_at", "-id")
    return queryset.select_related(
        "client", "invoicing_connection", "accounting_connection"
    ).annotate(
        last_run_id=Subquery(last_runs.values("id")[:1]),
        last_run_status=Subquery(last_runs.values("status")[:1]),
        last_run_started_at=Subquery(last_runs.values("started_at")[:1]),
        last_run_failed_count=Subquery(last_runs.values("failed_count")[:1]),
        last_run_error_code=Subquery(last_runs.values("error_code")[:1]),
        failed_record_count=Count("records", filter=Q(records__status=RecordStatus.FAILED)),
    )


def flow_list_for_user(user) -> QuerySet[SyncFlow]:
    """The flows of the clients ``user`` may see (every flow for a superuser): the same rule as the
    admin's ClientScopedAdminMixin."""
    return SyncFlow.objects.filter(client__in=client_list_for_user(user)).select_related("client")


def error_info_or_none(code: str) -> ErrorInfo | None:
    """The catalogue's entry for ``code``; None for a blank code or one no longer catalogued."""
    try:
        return CATALOGUE[ErrorCode(code)]
    except ValueError:
        return None


@dataclass(frozen=True)
class FlowFailures:
    flow: SyncFlow
    count: int


@dataclass(frozen=True)
class FailureGroup:
    """The failed records of one error code, in total and flow by flow (largest first)."""

    code: str
    count: int
    info: ErrorInfo | None
    flows: tuple[FlowFailures, ...]


def failures_by_code(records: QuerySet[SyncedRecord]) -> list[FailureGroup]:
    """The failed records among ``records`` (already scoped to what the reader may see) grouped by
    error code, largest group first, each split by flow. One query for the counts, one for the
    flows."""
    rows = list(
        records.filter(status=RecordStatus.FAILED)
        .order_by()
        .values_list("error_code", "flow_id")
        .annotate(n=Count("id"))
    )
    flows = SyncFlow.objects.select_related("client").in_bulk({flow_id for _, flow_id, _ in rows})
    by_code: dict[str, list[FlowFailures]] = {}
    for code, flow_id, count in rows:
        by_code.setdefault(code, []).append(FlowFailures(flows[flow_id], count))
    groups = [
        FailureGroup(
            code=code,
            count=sum(f.count for f in per_flow),
            info=error_info_or_none(code),
            flows=tuple(sorted(per_flow, key=lambda f: (-f.count, str(f.flow)))),
        )
        for code, per_flow in by_code.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, g.code))


def flows_record_counts(flows: Iterable[SyncFlow]) -> dict[int, dict[str, int]]:
    """flow_record_counts for many flows in one query: {flow id: {status: count}}."""
    ids = [flow.pk for flow in flows]
    counts: dict[int, dict[str, int]] = {pk: dict.fromkeys(RecordStatus.values, 0) for pk in ids}
    rows = (
        SyncedRecord.objects.filter(flow_id__in=ids)
        .order_by()
        .values_list("flow_id", "status")
        .annotate(n=Count("id"))
    )
    for flow_id, status, n in rows:
        counts[flow_id][status] = n
    return counts


def flow_last_run(flow: SyncFlow) -> SyncRun | None:
    return flow.runs.order_by("-started_at", "-id").first()


def flow_running_run(flow: SyncFlow) -> SyncRun | None:
    return flow.runs.filter(status=RunStatus.RUNNING).order_by("-started_at", "-id").first()


def flows_next_runs(flows: Iterable[SyncFlow]) -> dict[int, dt.datetime | None]:
    """When each flow's django-q2 schedule runs it next; None when it is not scheduled (disabled
    flow, no schedule, or a schedule with no repeats left)."""
    from django_q.models import Schedule

    flows = list(flows)
    names = {flow_schedule_name(flow.pk): flow for flow in flows}
    result: dict[int, dt.datetime | None] = dict.fromkeys((flow.pk for flow in flows), None)
    for schedule in Schedule.objects.filter(name__in=list(names)):
        flow = names[schedule.name]
        if flow.enabled and schedule.repeats != 0:
            result[flow.pk] = schedule.next_run
    return result


def flow_next_run(flow: SyncFlow) -> dt.datetime | None:
    return flows_next_runs([flow])[flow.pk]


@dataclass(frozen=True)
class QueuedRun:
    """What became of a queued "Sync now": its run, once started (``run``); else, when its task
    ended without one (the flow was busy, disabled or gone), the task's answer (``outcome``);
    else both None: still waiting for a worker."""

    run: SyncRun | None
    outcome: str | None = None


def queued_run(*, flow: SyncFlow, task_id: str, since: dt.datetime | None) -> QueuedRun:
    """The run a queued task of ``flow`` started: the run its finished task names, else the
    flow's first run started since ``since`` (when the task was queued; the task's own answer
    comes only once the run is over)."""
    # By id only (Task.get_task also looks names up, and "Sync now" tasks share theirs).
    task = Task.objects.filter(id=task_id).first() if task_id else None
    result = task.result if task is not None and isinstance(task.result, dict) else None
    if result and result.get("flow") == flow.pk:
        run = flow.runs.filter(pk=result.get("run")).first() if result.get("run") else None
        if run is not None:
            return QueuedRun(run)
        return QueuedRun(None, str(result.get("status") or ""))
    if since is None:
        return QueuedRun(None)
    return QueuedRun(flow.runs.filter(started_at__gte=since).order_by("started_at", "id").first())


def run_progress(run: SyncRun) -> dict:
    """A run's progress as the run page polls it. ``total`` is what the run has found to examine
    so far (it grows while the source is read), so the percentage is of that."""
    percent = min(100, run.processed * 100 // run.total) if run.total else 0
    return {
        "id": run.pk,
        "status": run.status,
        "running": run.status == RunStatus.RUNNING,
        "processed": run.processed,
        "total": run.total,
        "percent": percent,
        "counts": run.counts(),
    }


@dataclass(frozen=True)
class DayOutcome:
    day: dt.date
    synced: int
    failed: int


def flow_daily_outcomes(
    flow: SyncFlow, *, days: int = 30, today: dt.date | None = None
) -> list[DayOutcome]:
    """Invoices synced and failed per day over the last ``days`` days (today included), oldest
    first, one bucket per day even when empty; days are in the current time zone.

    Counted from the records, not the runs, so that each invoice counts once: a synced invoice on
    the day its entry was written (``synced_at``); a failed one only while it is still failed, on
    the day of its last attempt (``updated_at``). An invoice that failed on Monday and was synced
    on Wednesday therefore shows as synced on Wednesday only. (Runs' counts would count every
    attempt of the same invoice again.)"""
    tz = timezone.get_current_timezone()
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    end = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min), tz)

    def per_day(queryset: QuerySet, field: str) -> dict[dt.date, int]:
        return dict(
            queryset.filter(**{f"{field}__gte": start, f"{field}__lt": end})
            .order_by()
            .annotate(day=TruncDate(field, tzinfo=tz))
            .values_list("day")
            .annotate(n=Count("id"))
            .values_list("day", "n")
        )

    synced = per_day(flow.records.all(), "synced_at")
    failed = per_day(flow.records.filter(status=RecordStatus.FAILED), "updated_at")
    return [
        DayOutcome(day, synced.get(day, 0), failed.get(day, 0))
        for day in (first + dt.timedelta(days=n) for n in range(days))
    ]


@dataclass(frozen=True)
class SnapshotLine:
    """One line of a record's snapshot as the override form lists it."""

    index: int
    description: str
    untaxed_amount: str
    tax_rate: str | None
    tax_id: str | None
    account_number: str | None
    # The invoicing tool's name of the line's tax, where its list of taxes was read (people
    # read the tax by name, never by its id).
    tax_name: str = ""


def record_lines(record: SyncedRecord) -> list[SnapshotLine]:
    lines = (record.snapshot or {}).get("lines") or []
    direction = record_direction(record)
    names = {
        tax.tax_id: tax.name
        for tax in flow_source_taxes(record.flow)
        if tax.name and tax.tax_id and (direction is None or tax.direction is direction)
    }
    return [
        SnapshotLine(
            index=index,
            description=line.get("description") or line.get("product_code") or "",
            untaxed_amount=line.get("untaxed_amount") or "",
            tax_rate=line.get("tax_rate"),
            tax_id=line.get("tax_id"),
            account_number=line.get("account_number"),
            tax_name=names.get(line.get("tax_id") or "", ""),
        )
        for index, line in enumerate(lines)
        if isinstance(line, dict)
    ]


def record_direction(record: SyncedRecord) -> Direction | None:
    """Sales or purchases, from the snapshot (or the record's invoice type); None if unknown."""
    value = (record.snapshot or {}).get("type") or record.invoice_type
    try:
        return InvoiceType(value).direction
    except ValueError:
        return None
