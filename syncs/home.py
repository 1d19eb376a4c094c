"""What the admin's home page shows a user, read in a bounded number of queries whatever the
number of flows: what needs attention first (failed records by flow and error code, flows not
set up or disabled), runs in progress, and each flow's last and next run and its records waiting
for their PDF. Scoped to the clients the user may see, and to what their role may read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Q, Subquery

from connectors.errors import ErrorInfo
from mappings.checklist import Step, StepState, flows_setup_checklists
from mappings.models import SyncFlow
from syncs.models import RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.run.pause import flow_paused_until
from syncs.selectors import error_info_or_none, flow_list_for_user, flows_next_runs
from syncs.states import paused_text, run_progress_text, run_state_text


@dataclass(frozen=True)
class FailureLine:
    """The failed records of one flow with one error code, and what the catalogue says of it."""

    flow: SyncFlow
    code: str
    count: int
    info: ErrorInfo | None


@dataclass
class FlowLine:
    flow: SyncFlow
    steps: list[Step] = field(default_factory=list)
    last_run: SyncRun | None = None
    running: SyncRun | None = None
    next_run: dt.datetime | None = None
    failed: int = 0
    waiting: int = 0

    @property
    def missing(self) -> list[Step]:
        return [step for step in self.steps if step.blocking]

    @property
    def to_check(self) -> list[Step]:
        return [step for step in self.steps if step.state is StepState.TO_CHECK]

    @property
    def steps_done(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def steps_total(self) -> int:
        return sum(step.counted for step in self.steps)

    @property
    def last_run_text(self) -> str:
        return run_state_text(self.last_run) if self.last_run else ""

    @property
    def running_text(self) -> str:
        return run_progress_text(self.running) if self.running else ""

    @property
    def paused_until(self) -> dt.datetime | None:
        """When a flow paused by its tool's daily limit resumes (None: not paused)."""
        return flow_paused_until(self.flow)

    @property
    def paused_text(self) -> str:
        until = self.paused_until
        return paused_text(until) if until else ""

    @property
    def needs_setup(self) -> bool:
        """Not set up (a step missing) or disabled: it syncs nothing on its schedule."""
        return bool(self.missing) or not self.flow.enabled


@dataclass(frozen=True)
class Home:
    failures: list[FailureLine]
    flows: list[FlowLine]
    # What the user's role may read: the page leaves out what it may not.
    sees_records: bool
    sees_runs: bool
    sees_flows: bool = True

    @property
    def failed_total(self) -> int:
        return sum(line.count for line in self.failures)

    @property
    def waiting_total(self) -> int:
        return sum(line.waiting for line in self.flows)

    @property
    def not_ready(self) -> list[FlowLine]:
        if not self.sees_flows:
            return []
        return [line for line in self.flows if line.needs_setup]

    @property
    def running(self) -> list[FlowLine]:
        return [line for line in self.flows if line.running is not None]


def _may(user, *perms: str) -> bool:
    return any(user.has_perm(perm) for perm in perms)


def home_for_user(user) -> Home:
    """The home page of ``user``: only the flows of their clients (every flow for a superuser),
    failures and waiting records only if they may read records, runs only if they may read runs.
    About eight queries for any number of flows."""
    sees_flows = _may(user, "mappings.view_syncflow", "mappings.change_syncflow")
    sees_records = _may(user, "syncs.view_syncedrecord", "syncs.change_syncedrecord")
    sees_runs = _may(user, "syncs.view_syncrun")
    if not (sees_flows or sees_records or sees_runs):
        return Home([], [], sees_records, sees_runs, sees_flows)
    last_runs = SyncRun.objects.filter(flow=OuterRef("pk")).order_by("-started_at", "-id")
    flows = list(
        flow_list_for_user(user)
        .select_related("client", "invoicing_connection", "accounting_connection")
        .prefetch_related("vat_mappings", "journal_mappings")
        .annotate(last_run_id=Subquery(last_runs.values("id")[:1]))
        .order_by("client__name", "name")
    )
    lines = {flow.pk: FlowLine(flow) for flow in flows}
    if sees_flows:
        for flow_id, steps in flows_setup_checklists(flows).items():
            lines[flow_id].steps = steps
    if sees_runs and flows:
        runs = SyncRun.objects.filter(
            Q(pk__in=[flow.last_run_id for flow in flows if flow.last_run_id])
            | Q(flow_id__in=list(lines), status=RunStatus.RUNNING)
        ).order_by("started_at", "id")
        for run in runs:
            line = lines[run.flow_id]
            run.flow = line.flow  # no query for the flow (nor its connections) of each run
            if run.pk == line.flow.last_run_id:
                line.last_run = run
            if run.status == RunStatus.RUNNING:
                line.running = run
        for flow_id, next_run in flows_next_runs(flows).items():
            # A paused flow's schedule waits: its next run is the one that resumes it.
            lines[flow_id].next_run = lines[flow_id].paused_until or next_run
    failures: list[FailureLine] = []
    if sees_records and flows:
        counts = (
            SyncedRecord.objects.filter(
                flow_id__in=list(lines), status__in=[RecordStatus.FAILED, RecordStatus.WAITING]
            )
            .order_by()
            .values_list("flow_id", "status", "error_code")
            .annotate(n=Count("id"))
        )
        for flow_id, status, code, count in counts:
            line = lines[flow_id]
            if status == RecordStatus.WAITING:
                line.waiting += count
                continue
            line.failed += count
            failures.append(FailureLine(line.flow, code, count, error_info_or_none(code)))
        failures.sort(key=lambda f: (-f.count, str(f.flow), f.code))
    return Home(failures, list(lines.values()), sees_records, sees_runs, sees_flows)
