"""Run progress and the flow dashboards in the admin: "n of m" and a JSON endpoint while a run
runs, record counts, last and next run, failures by code, and the 30-day chart of synced and
failed invoices; every page scoped to the user's clients."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from connectors.errors import ErrorCode
from mappings.selectors import flow_schedule_name
from syncs.admin.widgets import daily_chart
from syncs.models import RecordStatus, RunStatus, SyncedRecord
from syncs.selectors import flow_daily_outcomes
from tests.factories import SyncedRecordFactory, SyncFlowFactory, SyncRunFactory, UserFactory

pytestmark = pytest.mark.django_db

VIEW = ("view_syncrun", "view_syncedrecord", "view_syncflow")


def staff_client(client, flow, *codenames):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    flow.client.members.add(user)
    client.force_login(user)
    return client


def dashboard_url(flow):
    return reverse("admin:syncs_flow_dashboard", args=[flow.pk])


def progress_url(run):
    return reverse("admin:syncs_syncrun_progress", args=[run.pk])


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


# -- Progress --------------------------------------------------------------------------------------


@pytest.fixture
def running(memory_connectors):
    return SyncRunFactory(status=RunStatus.RUNNING, total=10, processed=4, synced_count=3)


def test_progress_json_of_a_running_run(admin_client, running):
    response = admin_client.get(progress_url(running))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    data = response.json()
    assert (data["status"], data["processed"], data["total"]) == ("running", 4, 10)
    assert data["percent"] == 40 and data["running"] is True
    assert data["counts"] == {"synced": 3, "waiting": 0, "failed": 0, "skipped": 0, "unchanged": 0}


def test_run_list_and_page_say_what_a_running_run_reads_with_a_bar(admin_client, running):
    reading = "Reading invoices from In-memory invoicing (tests)…, 10 read, 4 processed"
    listing = admin_client.get(reverse("admin:syncs_syncrun_changelist")).content.decode()
    assert reading in listing and '<progress value="4" max="10"' in listing
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[running.pk]))
    html = page.content.decode()
    assert reading in html
    # While running, the page follows the run: a script polls the JSON, or the page reloads.
    assert progress_url(running) in html and 'http-equiv="refresh"' in html


def test_a_finished_run_page_does_not_refresh(admin_client, running):
    running.status, running.processed = RunStatus.SUCCEEDED, 10
    running.finished_at = timezone.now()
    running.save()
    html = admin_client.get(reverse("admin:syncs_syncrun_change", args=[running.pk])).content
    assert b"10 of 10 processed" in html
    assert progress_url(running).encode() not in html and b'http-equiv="refresh"' not in html


def test_progress_of_another_clients_run_is_a_404(client, running):
    mine = SyncFlowFactory()
    staff = staff_client(client, mine, *VIEW)
    assert staff.get(progress_url(running)).status_code == 404
    assert staff.get(progress_url(SyncRunFactory(flow=mine))).status_code == 200


# -- The flow dashboard ----------------------------------------------------------------------------


@pytest.fixture
def flow(memory_connectors):
    flow = SyncFlowFactory(schedule_minutes=30)
    SyncedRecordFactory.create_batch(3, flow=flow, status=RecordStatus.SYNCED, error_code="")
    SyncedRecordFactory.create_batch(2, flow=flow, error_code=ErrorCode.PDF)
    SyncedRecordFactory(flow=flow, error_code=ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    SyncedRecordFactory(flow=flow, status=RecordStatus.WAITING, error_code="")
    return flow


def test_dashboard_counts_records_by_status(admin_client, flow):
    response = admin_client.get(dashboard_url(flow))
    assert response.status_code == 200
    counts = {status: count for status, _, count, _ in response.context["counts"]}
    assert counts == {
        "pending": 0,
        "waiting_attachment": 1,
        "pushing": 0,
        "synced": 3,
        "failed": 3,
        "skipped": 0,
    }
    assert response.context["record_total"] == 7
    html = response.content.decode()
    assert f"?flow__id__exact={flow.pk}&amp;status__exact=synced" in html


def test_dashboard_shows_the_last_run_and_the_next_from_the_schedule(admin_client, flow):
    SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED, synced_count=2)
    last = SyncRunFactory(flow=flow, status=RunStatus.PARTIAL, synced_count=5, failed_count=1)
    next_run = timezone.now() + dt.timedelta(minutes=17)
    Schedule.objects.create(
        name=flow_schedule_name(flow.pk), func="syncs.tasks.run_flow", args=repr(flow.pk),
        schedule_type=Schedule.MINUTES, minutes=30, repeats=-1, next_run=next_run,
    )  # fmt: skip
    response = admin_client.get(dashboard_url(flow))
    assert response.context["last_run"] == last
    assert response.context["next_run"] == next_run
    html = response.content.decode()
    text = re.sub(r"<[^>]+>", "", html)  # the counts are links to the run's records
    assert "Completed, 1 failed" in text and "5 synced, 1 failed" in text
    assert "(every 30 min)" in html


def test_a_disabled_or_unscheduled_flow_is_not_scheduled(admin_client, flow):
    assert admin_client.get(dashboard_url(flow)).context["next_run"] is None
    Schedule.objects.create(
        name=flow_schedule_name(flow.pk), func="syncs.tasks.run_flow",
        schedule_type=Schedule.MINUTES, minutes=30, repeats=-1,
    )  # fmt: skip
    flow.enabled = False
    flow.save()
    response = admin_client.get(dashboard_url(flow))
    assert response.context["next_run"] is None
    assert "not scheduled (the flow is disabled)" in response.content.decode()


def test_dashboard_shows_a_running_run_with_its_progress(admin_client, flow):
    SyncRunFactory(flow=flow, status=RunStatus.RUNNING, total=10, processed=4)
    html = admin_client.get(dashboard_url(flow)).content.decode()
    assert 'id="running-run"' in html and "…, 10 read, 4 processed" in html


def test_dashboard_lists_failures_by_code_with_links_to_the_review(admin_client, flow):
    response = admin_client.get(dashboard_url(flow))
    failures = [(f["code"], f["count"]) for f in response.context["failures"]]
    assert failures == [(ErrorCode.PDF, 2), (ErrorCode.MAPPING_TAX_RATE_NOT_FOUND, 1)]
    review = reverse("admin:syncs_flow_failures", args=[flow.pk])
    assert response.context["failures"][0]["review_url"] == f"{review}#code-{ErrorCode.PDF}"
    html = response.content.decode()
    assert f"{review}#code-{ErrorCode.PDF}" in html
    assert reverse("admin:syncs_syncrun_changelist") + f"?flow__id__exact={flow.pk}" in html


# -- The 30-day chart ------------------------------------------------------------------------------


def test_chart_has_thirty_day_buckets_with_the_right_totals(admin_client, memory_connectors):
    flow = SyncFlowFactory()
    today = timezone.localdate()
    synced = SyncedRecordFactory.create_batch(4, flow=flow, status=RecordStatus.SYNCED)
    failed = SyncedRecordFactory.create_batch(3, flow=flow, status=RecordStatus.FAILED)

    def on(records, field, day):
        SyncedRecord.objects.filter(pk__in=[r.pk for r in records]).update(**{field: at(day)})

    on(synced[:2], "synced_at", today)
    on(synced[2:3], "synced_at", today - dt.timedelta(days=29))  # the oldest day shown
    on(synced[3:], "synced_at", today - dt.timedelta(days=30))  # too old
    on(failed[:2], "updated_at", today - dt.timedelta(days=3))
    on(failed[2:], "updated_at", today)
    # A record synced long after it last failed counts as synced only.
    SyncedRecord.objects.filter(pk=failed[2].pk).update(status=RecordStatus.SYNCED)
    on(failed[2:], "synced_at", today - dt.timedelta(days=1))

    response = admin_client.get(dashboard_url(flow))
    days = response.context["days"]
    assert len(days) == 30
    assert days[0].day == today - dt.timedelta(days=29) and days[-1].day == today
    by_day = {d.day: (d.synced, d.failed) for d in days if d.synced or d.failed}
    assert by_day == {
        today: (2, 0),
        today - dt.timedelta(days=1): (1, 0),
        today - dt.timedelta(days=3): (0, 2),
        today - dt.timedelta(days=29): (1, 0),
    }
    chart = response.context["chart"]
    assert len(chart["bars"]) == 30
    assert (chart["synced_total"], chart["failed_total"]) == (4, 2)
    html = response.content.decode()
    assert html.count('<g class="day"') == 30
    assert f'data-date="{today.isoformat()}" data-synced="2" data-failed="0"' in html
    assert '<svg id="daily-chart"' in html and "<script" not in html.split('id="daily')[1]


def test_days_are_those_of_the_current_time_zone(memory_connectors, settings):
    settings.TIME_ZONE = "Europe/Paris"
    flow = SyncFlowFactory()
    record = SyncedRecordFactory(flow=flow, status=RecordStatus.SYNCED)
    # 23:30 UTC on 9 March is 00:30 on 10 March in Paris.
    late = dt.datetime(2026, 3, 9, 23, 30, tzinfo=dt.UTC)
    SyncedRecord.objects.filter(pk=record.pk).update(synced_at=late)
    with timezone.override("Europe/Paris"):
        days = flow_daily_outcomes(flow, today=dt.date(2026, 3, 10))
    assert [(d.day, d.synced) for d in days if d.synced] == [(dt.date(2026, 3, 10), 1)]


def test_chart_bars_scale_to_a_round_top():
    today = dt.date(2026, 3, 10)
    from syncs.selectors import DayOutcome

    days = [DayOutcome(today - dt.timedelta(days=29 - n), n + 1, 0) for n in range(30)]
    chart = daily_chart(days)
    assert [t["value"] for t in chart["ticks"]] == [0, 15, 30]
    assert chart["bars"][-1]["synced_h"] == 150  # the peak reaches the top
    assert chart["bars"][0]["synced_h"] == 5
    assert chart["bars"][0]["failed_h"] == 0
    assert [b["label"] for b in chart["bars"] if b["label"]][-1] == "10 Mar"


# -- Scope and permissions -------------------------------------------------------------------------


def test_another_clients_flow_dashboard_is_a_404(client, flow):
    mine = SyncFlowFactory(name="Mine")
    staff = staff_client(client, mine, *VIEW)
    assert staff.get(dashboard_url(flow)).status_code == 404
    assert staff.get(dashboard_url(mine)).status_code == 200


def test_dashboards_need_the_view_permission(client, flow):
    staff = staff_client(client, flow, "view_syncflow")
    assert staff.get(dashboard_url(flow)).status_code == 403
    assert staff.get(reverse("admin:syncs_dashboards")).status_code == 403


def test_dashboards_index_lists_the_users_flows_with_their_counts(client, flow):
    mine = SyncFlowFactory(name="Mine", client=flow.client, enabled=False)
    SyncFlowFactory(name="Theirs")
    staff = staff_client(client, flow, *VIEW)
    response = staff.get(reverse("admin:syncs_dashboards"))
    rows = {row["flow"]: row for row in response.context["rows"]}
    assert set(rows) == {flow, mine}
    assert {label: n for label, n, _ in rows[flow]["counts"]}["Failed"] == 3
    assert rows[mine]["next_run"] is None
    html = response.content.decode()
    assert dashboard_url(flow) in html and "Theirs" not in html
    # Reached from the runs' and the records' lists.
    runs = staff.get(reverse("admin:syncs_syncrun_changelist")).content.decode()
    assert reverse("admin:syncs_dashboards") in runs
    records = staff.get(reverse("admin:syncs_syncedrecord_changelist")).content.decode()
    assert reverse("admin:syncs_failures") in records
