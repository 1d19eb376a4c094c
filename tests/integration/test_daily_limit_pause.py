"""The daily-limit pause (issue #16 point 3) with the in-memory target: a target that allows a few
writes a day raises RateLimitPause once they are spent. The run stops paused (nothing failed,
nothing counted failed), the flow is paused until the limit resets and a run is queued then; the
schedule (and webhooks, retries) skip the paused flow; "Sync now" says why it waits; the home
page, the flows list and the run say so. On the next day (a simulated clock) the queued run
writes the rest, each invoice once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler

from connectors.errors import ErrorCode, RateLimitPause
from mappings.models import SyncFlow
from syncs import tasks
from syncs.models import RecordStatus, RunStatus, RunTrigger, SyncedRecord, SyncRun
from syncs.run.pause import resume_schedule_name
from syncs.services import flow_sync
from syncs.states import run_state_text
from tests.factories import InvoiceFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db

PER_DAY = 3  # writes the pretend tool allows a day


class Clock:
    """The simulated time every module reads through django.utils.timezone.now."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(dt.datetime(2026, 3, 2, 21, 30, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock)
    return clock


def next_midnight(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(moment.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


@pytest.fixture
def limited_target(memory_connectors, monkeypatch, clock, settings):
    """The memory target, allowing PER_DAY write calls a (simulated) day, one invoice a call."""
    source, target = memory_connectors
    settings.INVSYNC_BATCH_SIZE = 1
    spent: dict[dt.date, int] = {}
    write = target.create_entries

    def create_entries(self, folder, entries):
        today = clock.now.date()
        if spent.get(today, 0) >= PER_DAY:
            raise RateLimitPause(next_midnight(clock.now))  # refused before anything is written
        spent[today] = spent.get(today, 0) + 1
        return write(self, folder, entries)

    monkeypatch.setattr(target, "create_entries", create_entries)
    return source, target


@pytest.fixture
def flow(limited_target):
    return SyncFlowFactory(accounting_connection__kind="accounting", enabled=True)


def test_the_daily_limit_pauses_the_flow_and_the_next_day_writes_the_rest_once(
    limited_target, flow, clock
):
    source, target = limited_target
    source.put(*InvoiceFactory.create_batch(5))

    outcome = tasks.run_flow(flow.pk)  # the schedule's run
    run = SyncRun.objects.get(pk=outcome["run"])
    midnight = dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
    # Paused, not failed: nothing blamed on a record.
    assert run.status == RunStatus.PAUSED and run.paused_until == midnight
    assert run.error_code == ErrorCode.DAILY_LIMIT_REACHED
    assert (run.synced_count, run.failed_count) == (PER_DAY, 0)
    assert len(target.entries) == PER_DAY
    records = SyncedRecord.objects.filter(flow=flow)
    assert not records.filter(status=RecordStatus.FAILED).exists()
    assert records.filter(status=RecordStatus.SYNCED).count() == PER_DAY
    # The one whose write was refused stays to write (asked for first on the next run).
    assert set(records.exclude(status=RecordStatus.SYNCED).values_list("status", flat=True)) <= {
        RecordStatus.PENDING,
        RecordStatus.PUSHING,
    }
    assert run_state_text(run).startswith("Paused until ")
    assert run_state_text(run).endswith(": the accounting tool's daily limit")
    flow.refresh_from_db()
    assert flow.paused_until == midnight
    resume = Schedule.objects.get(name=resume_schedule_name(flow.pk))
    assert (resume.func, resume.schedule_type, resume.next_run) == (
        "syncs.tasks.run_flow",
        Schedule.ONCE,
        midnight,
    )

    # Later that evening the schedule, a webhook and a retry skip the paused flow: no run.
    clock.now = dt.datetime(2026, 3, 2, 23, 0, tzinfo=dt.UTC)
    for trigger in (RunTrigger.SCHEDULE, RunTrigger.WEBHOOK, RunTrigger.RETRY):
        assert tasks.run_flow(flow.pk, trigger=trigger)["status"] == "paused"
    assert SyncRun.objects.filter(flow=flow).count() == 1
    assert len(target.entries) == PER_DAY

    # The next day the queued run resumes: the rest written, none twice (the memory target fails
    # the test on a second write of an external id).
    clock.now = midnight + dt.timedelta(minutes=1)
    outcome = tasks.run_flow(flow.pk)
    resumed = SyncRun.objects.get(pk=outcome["run"])
    assert resumed.status == RunStatus.SUCCEEDED and resumed.failed_count == 0
    assert len(target.entries) == 5
    assert records.filter(status=RecordStatus.SYNCED).count() == 5
    flow.refresh_from_db()
    assert flow.paused_until is None
    assert not Schedule.objects.filter(name=resume_schedule_name(flow.pk)).exists()


def test_a_second_day_short_of_room_pauses_again_until_the_following_midnight(
    limited_target, flow, clock
):
    source, target = limited_target
    source.put(*InvoiceFactory.create_batch(2 * PER_DAY + 1))
    tasks.run_flow(flow.pk)
    clock.now = dt.datetime(2026, 3, 3, 0, 1, tzinfo=dt.UTC)
    second = SyncRun.objects.get(pk=tasks.run_flow(flow.pk)["run"])
    assert second.status == RunStatus.PAUSED
    assert second.paused_until == dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    clock.now = dt.datetime(2026, 3, 4, 0, 1, tzinfo=dt.UTC)
    assert tasks.run_flow(flow.pk)["status"] == RunStatus.SUCCEEDED
    assert len(target.entries) == 2 * PER_DAY + 1


def test_sync_now_during_the_pause_says_why_it_waits(
    limited_target, flow, clock, admin_client, monkeypatch
):
    source, _ = limited_target
    source.put(*InvoiceFactory.create_batch(PER_DAY + 1))
    flow_sync(flow=flow, trigger=RunTrigger.MANUAL)
    queued = []
    monkeypatch.setattr(
        "syncs.services.flow_sync_enqueue",
        lambda *, flow, trigger="manual": queued.append(flow.pk) or "task-id",
    )
    response = admin_client.post(
        reverse("admin:mappings_syncflow_changelist"),
        {"action": "sync_now", "_selected_action": [flow.pk]},
        follow=True,
    )
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert queued == []  # a run now would stop at once
    assert any(
        f"“{flow}” waits: Paused until" in t and "daily limit" in t and "nothing failed" in t
        for t in texts
    ), texts


def test_the_home_page_and_the_flows_list_show_the_pause(limited_target, flow, clock, admin_client):
    source, _ = limited_target
    source.put(*InvoiceFactory.create_batch(PER_DAY + 1))
    flow_sync(flow=flow, trigger=RunTrigger.MANUAL)
    home = admin_client.get(reverse("admin:index")).content.decode()
    assert "Paused until" in home and "the accounting tool&#x27;s daily limit" in home
    flows = admin_client.get(reverse("admin:mappings_syncflow_changelist")).content.decode()
    assert "Paused until" in flows
    runs = admin_client.get(
        reverse("admin:syncs_syncrun_changelist") + "?state=paused"
    ).content.decode()
    assert "Paused until" in runs


def test_a_run_ending_normally_clears_an_old_pause(limited_target, flow, clock):
    SyncFlow.objects.filter(pk=flow.pk).update(paused_until=clock.now - dt.timedelta(hours=1))
    assert tasks.run_flow(flow.pk)["status"] == RunStatus.SUCCEEDED
    flow.refresh_from_db()
    assert flow.paused_until is None


def test_django_q2_s_scheduler_runs_the_resume_at_the_pause_s_end_and_not_before(
    limited_target, flow, clock, q_sync
):
    source, target = limited_target
    source.put(*InvoiceFactory.create_batch(PER_DAY + 2))
    tasks.run_flow(flow.pk)
    clock.now = dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC)
    scheduler()  # the resume is not due yet
    assert SyncRun.objects.filter(flow=flow).count() == 1
    clock.now = dt.datetime(2026, 3, 3, 0, 0, 30, tzinfo=dt.UTC)
    scheduler()  # due: its task runs (synchronously here) and the schedule is gone
    resumed = SyncRun.objects.filter(flow=flow).latest("id")
    assert resumed.status == RunStatus.SUCCEEDED and resumed.trigger == RunTrigger.SCHEDULE
    assert len(target.entries) == PER_DAY + 2
    assert not Schedule.objects.filter(name=resume_schedule_name(flow.pk)).exists()
