"""The admin's home page (issue #15, point 1): what needs attention first — failed records by flow
and error code with what to do and a link to the failure review, flows not set up or disabled,
runs in progress, each flow's last and next run and its records waiting for their PDF — scoped
to the user's clients, in a bounded number of queries; the technical sections only for
superusers."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from connectors.errors import CATALOGUE, ErrorCode
from mappings.selectors import flow_schedule_name
from syncs.models import RecordStatus, RunStatus
from tests.factories import (
    ClientFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

HOME = "/admin/"
TAX = ErrorCode.MAPPING_TAX_RATE_NOT_FOUND.value  # the records factory's code


def section(html: str, section_id: str) -> str:
    """The HTML of one section of the home page ("" when it is not there)."""
    match = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', html, re.S)
    return match.group(1) if match else ""


def rows(html: str) -> list[str]:
    return re.findall(r"<tr data-flow[^>]*>.*?</tr>", html, re.S)


def checked(*flows):
    """Both connections of each flow checked a moment ago (two steps of the checklist)."""
    for flow in flows:
        for connection in (flow.invoicing_connection, flow.accounting_connection):
            connection.last_check_ok, connection.last_checked_at = True, timezone.now()
            connection.save()
    return flows[0]


@pytest.fixture
def firm(memory_connectors):
    """Two clients: Atelier (a member's) and Bistro (someone else's), each with flows in every
    state the home page tells apart."""
    atelier, bistro = ClientFactory(name="Atelier"), ClientFactory(name="Bistro")
    ready = SyncFlowFactory(client=atelier, name="Sales", start_date=dt.date(2026, 1, 1))
    disabled = SyncFlowFactory(
        client=atelier, name="Purchases", enabled=False, start_date=dt.date(2026, 1, 1)
    )
    unset = SyncFlowFactory(client=atelier, name="New", enabled=False, folder="", start_date=None)
    other = SyncFlowFactory(client=bistro, name="Bistro sales", start_date=dt.date(2026, 1, 1))
    checked(ready, disabled, unset, other)
    SyncedRecordFactory.create_batch(3, flow=ready)  # the tax rate code
    SyncedRecordFactory(
        flow=ready, error_code=ErrorCode.PARTNER_AMBIGUOUS.value, error_message="Two ACME."
    )
    SyncedRecordFactory.create_batch(2, flow=ready, status=RecordStatus.WAITING, error_code="")
    SyncedRecordFactory.create_batch(5, flow=other)
    SyncRunFactory(flow=ready, status=RunStatus.PARTIAL, synced_count=8, failed_count=3)
    running = SyncRunFactory(flow=ready, status=RunStatus.RUNNING, total=40, processed=10)
    SyncRunFactory(flow=other, status=RunStatus.RUNNING, total=5, processed=1)
    next_run = timezone.now() + dt.timedelta(minutes=17)
    Schedule.objects.create(
        name=flow_schedule_name(ready.pk), func="syncs.tasks.run_flow", args=repr(ready.pk),
        schedule_type=Schedule.MINUTES, minutes=60, repeats=-1, next_run=next_run,
    )  # fmt: skip
    return {
        "atelier": atelier,
        "bistro": bistro,
        "ready": ready,
        "disabled": disabled,
        "unset": unset,
        "other": other,
        "running": running,
        "next_run": next_run,
    }


@pytest.fixture
def member(client, firm):
    """An Accountant and Operator of Atelier only."""
    user = UserFactory(roles=["Accountant", "Operator"], clients=[firm["atelier"]])
    client.force_login(user)
    return client


def test_home_shows_failed_records_by_flow_and_code_with_the_resolution_and_the_review_link(
    member, firm
):
    html = member.get(HOME).content.decode()
    failures = section(html, "home-failures")
    ready = firm["ready"]
    (row,) = [r for r in rows(failures) if f'data-code="{TAX}"' in r]
    assert f'data-flow="{ready.pk}"' in row and ">3</a>" in row
    info = CATALOGUE[ErrorCode(TAX)]
    assert str(info.resolution)[:40] in row.replace("&#x27;", "'")
    review = reverse("admin:syncs_flow_failures", args=[ready.pk]) + f"#code-{TAX}"
    assert review in row
    records = reverse("admin:syncs_syncedrecord_changelist")
    assert f"{records}?flow__id__exact={ready.pk}&amp;status__exact=failed" in row
    assert "4 failed records" in failures
    assert reverse("admin:syncs_failures") in failures
    # The largest group first, each flow and code on its own row.
    codes = re.findall(r'data-code="([A-Z_]+)"', failures)
    assert codes == [TAX, ErrorCode.PARTNER_AMBIGUOUS.value]


def test_home_lists_flows_not_set_up_or_disabled_with_what_is_missing(member, firm):
    html = member.get(HOME).content.decode()
    setup = section(html, "home-setup")
    by_flow = {int(re.search(r'data-flow="(\d+)"', r).group(1)): r for r in rows(setup)}
    assert set(by_flow) == {firm["disabled"].pk, firm["unset"].pk}
    assert "disabled" in by_flow[firm["disabled"].pk]
    unset = by_flow[firm["unset"].pk]
    assert "Setup:" in unset and "missing:" in unset and "Accounting folder chosen" in unset
    assert reverse("admin:mappings_syncflow_change", args=[firm["unset"].pk]) in unset


def test_home_shows_runs_in_progress_with_what_they_do(member, firm):
    running = section(member.get(HOME).content.decode(), "home-running")
    (row,) = rows(running)
    assert reverse("admin:syncs_syncrun_change", args=[firm["running"].pk]) in row
    assert "Reading invoices from In-memory invoicing (tests)…, 40 read, 10 processed" in row
    assert '<progress value="10" max="40"' in row


def test_home_shows_each_flows_last_and_next_run_and_records_waiting_for_their_pdf(member, firm):
    response = member.get(HOME)
    flows = section(response.content.decode(), "home-flows")
    by_flow = {int(re.search(r'data-flow="(\d+)"', r).group(1)): r for r in rows(flows)}
    ready = by_flow[firm["ready"].pk]
    # The last run is the one running; the one before said what it did.
    assert "Running" in ready
    waiting = reverse("admin:syncs_syncedrecord_changelist")
    assert f"{waiting}?flow__id__exact={firm['ready'].pk}&amp;status__exact=waiting_attachment" in (
        ready
    )
    assert re.search(r'class="num waiting"><a [^>]*>2</a>', ready)
    assert re.search(r'class="num failed"><a [^>]*>4</a>', ready)
    assert (
        "not scheduled" in by_flow[firm["disabled"].pk] and "never" in by_flow[firm["disabled"].pk]
    )
    assert reverse("admin:syncs_flow_reconciliation", args=[firm["ready"].pk]) in ready
    line = next(line for line in response.context["home"].flows if line.flow == firm["ready"])
    assert line.next_run == firm["next_run"]


def test_home_shows_completed_with_failures_for_a_finished_last_run(member, firm):
    firm["running"].delete()
    html = section(member.get(HOME).content.decode(), "home-flows")
    (ready,) = [r for r in rows(html) if f'data-flow="{firm["ready"].pk}"' in r]
    assert "Completed, 3 failed" in ready


def test_home_shows_only_the_users_clients(member, firm):
    html = member.get(HOME).content.decode()
    assert "Bistro" not in html
    assert f'data-flow="{firm["other"].pk}"' not in html
    assert "5 failed" not in html


def test_a_viewer_of_flows_only_sees_no_records_nor_runs(client, firm):
    user = UserFactory(clients=[firm["atelier"]])
    user.user_permissions.add(Permission.objects.get(codename="view_syncflow"))
    client.force_login(user)
    html = client.get(HOME).content.decode()
    assert section(html, "home-failures") == "" and section(html, "home-running") == ""
    flows = section(html, "home-flows")
    assert "Sales" in flows and "Waiting for PDF" not in flows and "Last run" not in flows


def test_a_superuser_sees_every_client(client, firm):
    client.force_login(UserFactory(username="root", is_superuser=True))
    html = client.get(HOME).content.decode()
    assert f'data-flow="{firm["other"].pk}"' in html
    assert len(rows(section(html, "home-running"))) == 2


def test_nothing_to_do_says_so(client, memory_connectors):
    flow = checked(SyncFlowFactory(start_date=dt.date(2026, 1, 1)))
    SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED, synced_count=3)
    client.force_login(UserFactory(username="root", is_superuser=True))
    html = client.get(HOME).content.decode()
    assert "Nothing needs attention" in html
    assert section(html, "home-failures") == "" and section(html, "home-setup") == ""


# -- Technical sections ------------------------------------------------------------------------


TECHNICAL = ("django_q", "social_django", "mfa", "account")


def test_technical_sections_are_out_of_the_way_of_staff_who_are_not_superusers(client):
    user = UserFactory(username="all-perms")
    user.user_permissions.set(Permission.objects.all())
    client.force_login(user)
    response = client.get(HOME)
    labels = {app["app_label"] for app in response.context["app_list"]}
    assert not labels & set(TECHNICAL) and {"connectors", "mappings", "syncs"} <= labels
    html = response.content.decode()
    assert 'id="home-technical"' not in html
    for url in (
        reverse("admin:django_q_schedule_changelist"),
        reverse("admin:mfa_authenticator_changelist"),
        reverse("admin:auth_group_changelist"),
    ):
        assert url not in html  # neither on the page nor in the sidebar
    # The sidebar of any other page neither.
    other = client.get(reverse("admin:mappings_syncflow_changelist")).content.decode()
    assert reverse("admin:django_q_schedule_changelist") not in other
    assert reverse("admin:auth_group_changelist") not in other


def test_superusers_reach_the_technical_sections_from_their_own_section(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    html = client.get(HOME).content.decode()
    technical = section(html, "home-technical")
    for url in (
        reverse("admin:django_q_schedule_changelist"),
        reverse("admin:mfa_authenticator_changelist"),
        reverse("admin:auth_group_changelist"),
        reverse("admin:social_django_nonce_changelist"),
    ):
        assert url in technical, url
    work = section(html, "home-sections")
    assert reverse("admin:mappings_syncflow_changelist") in work
    assert reverse("admin:django_q_schedule_changelist") not in work


# -- Bounded queries ---------------------------------------------------------------------------


def _flows(count: int, client_obj) -> None:
    for n in range(count):
        flow = SyncFlowFactory(client=client_obj, name=f"Flow {n:02d}", enabled=n % 3 != 0)
        SyncedRecordFactory(flow=flow)
        SyncedRecordFactory(flow=flow, status=RecordStatus.WAITING, error_code="")
        SyncRunFactory(flow=flow, status=RunStatus.PARTIAL, failed_count=1)
        if n % 4 == 0:
            SyncRunFactory(flow=flow, status=RunStatus.RUNNING, total=3, processed=1)


def test_the_home_page_of_twenty_flows_takes_a_bounded_number_of_queries(
    client, memory_connectors, django_assert_max_num_queries
):
    atelier = ClientFactory(name="Atelier")
    _flows(20, atelier)
    user = UserFactory(roles=["Accountant", "Operator"], clients=[atelier])
    client.force_login(user)
    client.get(HOME)  # the permission caches of the session are warm after this
    # Session, user, permissions (2), flows, their VAT and journal mappings, the cached lists,
    # runs, schedules, record counts: 11, whatever the number of flows.
    with django_assert_max_num_queries(12):
        response = client.get(HOME)
    assert len(response.context["home"].flows) == 20
    assert len(response.context["home"].failures) == 20


def test_the_flows_list_reads_the_setup_of_its_flows_at_once(
    client, memory_connectors, django_assert_max_num_queries
):
    atelier = ClientFactory(name="Atelier")
    _flows(20, atelier)
    client.force_login(UserFactory(roles=["Accountant", "Operator"], clients=[atelier]))
    url = reverse("admin:mappings_syncflow_changelist")
    client.get(url)
    # Session, user, permissions (2), counts (2), flows, mappings (2), cached lists: 10.
    with django_assert_max_num_queries(11):
        html = client.get(url).content.decode()
    assert html.count('class="field-setup_progress"') == 20


def test_a_reader_of_records_only_sees_failures_but_no_setup_nor_flow_links(client, firm):
    user = UserFactory(clients=[firm["atelier"]])
    user.user_permissions.add(Permission.objects.get(codename="view_syncedrecord"))
    client.force_login(user)
    html = client.get(HOME).content.decode()
    assert f'data-code="{TAX}"' in section(html, "home-failures")
    assert section(html, "home-setup") == ""
    assert reverse("admin:mappings_syncflow_change", args=[firm["ready"].pk]) not in html
