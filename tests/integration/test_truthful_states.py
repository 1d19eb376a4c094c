"""States that tell the truth (issue #15, point 4): a run with failed records reads "Completed, N
failed" wherever it is shown; "Attempts" counts every try of a record; "Sync now" links to the run
it queued; a running run says what it reads; the checklist shows done only what is done."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Task

from connectors.errors import ConnectorError, ErrorCode
from mappings.checklist import StepState, flow_setup_checklist
from mappings.models import SyncFlow
from mappings.services import flow_lookups_load
from syncs.management.commands import demo
from syncs.models import RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.run import writes
from syncs.services import flow_sync, record_external_id, records_retry_enqueue
from tests.doubles import MemorySource
from tests.factories import (
    InvoiceFactory,
    InvoiceLineFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(memory_connectors):
    return SyncFlowFactory(accounting_connection__kind="accounting")


def run(flow) -> SyncRun:
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None
    return result


def text(html: bytes | str) -> str:
    html = html.decode() if isinstance(html, bytes) else html
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def results(response) -> str:
    """The text of a changelist's rows (the filters keep the stored statuses' names)."""
    html = response.content.decode()
    start = html.index('id="result_list"')
    return text(html[start : html.index("</table>", start)])


# -- A run with failed records reads "Completed, N failed" ---------------------------------------


def test_a_run_with_failed_records_reads_completed_n_failed_in_the_flows_list_runs_and_page(
    admin_client, flow
):
    MemorySource.put(
        InvoiceFactory(),
        *(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),)) for _ in range(2)),
    )
    finished = run(flow)
    assert (finished.status, finished.failed_count) == (RunStatus.PARTIAL, 2)

    flows = text(admin_client.get(reverse("admin:mappings_syncflow_changelist")).content)
    assert "Completed, 2 failed" in flows and "Succeeded" not in flows
    runs = results(admin_client.get(reverse("admin:syncs_syncrun_changelist")))
    assert "Completed, 2 failed" in runs and "Finished with failed records" not in runs
    page = text(admin_client.get(reverse("admin:syncs_syncrun_change", args=[finished.pk])).content)
    assert "Completed, 2 failed" in page and "partial" not in page


def test_a_clean_run_reads_completed_and_a_stopped_one_names_its_code(admin_client, flow):
    SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED, synced_count=3)
    stopped = SyncRunFactory(
        flow=flow, status=RunStatus.FAILED, error_code=ErrorCode.AUTHENTICATION_FAILED
    )
    runs = results(admin_client.get(reverse("admin:syncs_syncrun_changelist")))
    assert "Completed" in runs and "Succeeded" not in runs
    assert f"Stopped: {ErrorCode.AUTHENTICATION_FAILED.value}" in runs
    flows = text(admin_client.get(reverse("admin:mappings_syncflow_changelist")).content)
    assert f"Stopped: {ErrorCode.AUTHENTICATION_FAILED.value}" in flows
    # The flows list's last run links to that run.
    assert (
        reverse("admin:syncs_syncrun_change", args=[stopped.pk])
        in admin_client.get(reverse("admin:mappings_syncflow_changelist")).content.decode()
    )


# -- Attempts count every try ------------------------------------------------------------------


def test_attempts_count_each_retry_of_an_invoice_the_engine_rejects(flow, q_sync):
    invoice = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),))
    MemorySource.put(invoice)
    run(flow)
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    assert (record.status, record.attempts) == (RecordStatus.FAILED, 1)
    for expected in (2, 3):
        assert records_retry_enqueue(records=[record]) == 1
        record.refresh_from_db()
        assert (record.status, record.attempts) == (RecordStatus.FAILED, expected)
    # A run that finds it unchanged does not try it again: no attempt.
    run(flow)
    record.refresh_from_db()
    assert record.attempts == 3


def test_a_write_the_tool_refuses_counts_one_attempt_per_run(flow, memory_connectors):
    _, target = memory_connectors
    invoice = InvoiceFactory()
    MemorySource.put(invoice)
    target.refuse[record_external_id(flow, invoice.source_id)] = ConnectorError(
        ErrorCode.TARGET_REJECTED, "no fiscal year"
    )
    run(flow)
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    # Pushed, then refused: one try, not two.
    assert (record.status, record.attempts) == (RecordStatus.FAILED, 1)
    target.refuse.clear()
    records_retry_enqueue(records=[record])
    run(flow)
    record.refresh_from_db()
    assert (record.status, record.attempts) == (RecordStatus.SYNCED, 2)


def test_the_records_list_shows_the_attempts(admin_client, flow):
    invoice = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),))
    MemorySource.put(invoice)
    run(flow)
    html = admin_client.get(reverse("admin:syncs_syncedrecord_changelist")).content.decode()
    assert re.search(r'<td class="field-attempts">1</td>', html)


# -- Sync now links to its run -----------------------------------------------------------------


def test_sync_now_names_the_run_it_started_with_a_link(admin_client, flow, q_sync):
    MemorySource.put(
        InvoiceFactory(), InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),))
    )
    response = admin_client.post(
        reverse("admin:mappings_syncflow_changelist"),
        {"action": "sync_now", "_selected_action": [flow.pk]},
        follow=True,
    )
    started = SyncRun.objects.get(flow=flow)
    (message,) = [str(m) for m in response.context["messages"]]
    url = reverse("admin:syncs_syncrun_change", args=[started.pk])
    assert f'<a href="{url}">run {started.pk}</a> — Completed, 1 failed' in message
    assert message.startswith(f"Queued a sync of “{flow}”")


def test_the_queued_run_page_waits_then_goes_to_the_run(admin_client, flow):
    since = timezone.now()
    url = reverse("admin:syncs_syncrun_queued", args=[flow.pk])
    query = f"?task=abc&since={since.timestamp()}"
    waiting = admin_client.get(url + query)
    assert waiting.status_code == 200
    html = waiting.content.decode()
    assert "Waiting for a worker" in html and 'http-equiv="refresh"' in html
    # An older run is not this one.
    SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED)
    SyncRun.objects.update(started_at=since - dt.timedelta(minutes=5))
    assert admin_client.get(url + query).status_code == 200
    started = SyncRunFactory(flow=flow, status=RunStatus.RUNNING)
    response = admin_client.get(url + query)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:syncs_syncrun_change", args=[started.pk])


def test_the_queued_run_page_says_when_the_flow_was_busy(admin_client, flow):
    running = SyncRunFactory(flow=flow, status=RunStatus.RUNNING)
    SyncRun.objects.update(started_at=timezone.now() - dt.timedelta(minutes=5))
    Task.objects.create(
        id="0" * 32, name="sync flow", func="syncs.tasks.run_flow", started=timezone.now(),
        stopped=timezone.now(), success=True, result={"flow": flow.pk, "status": "busy"},
    )  # fmt: skip
    url = reverse("admin:syncs_syncrun_queued", args=[flow.pk])
    html = admin_client.get(
        f"{url}?task={'0' * 32}&since={timezone.now().timestamp()}"
    ).content.decode()
    assert "another run of this flow" in html and 'http-equiv="refresh"' not in html
    assert reverse("admin:syncs_syncrun_change", args=[running.pk]) in html


def test_the_queued_run_page_takes_bad_input_and_other_clients_flows(client, admin_client, flow):
    url = reverse("admin:syncs_syncrun_queued", args=[flow.pk])
    assert admin_client.get(f"{url}?since=yesterday&task=").status_code == 200
    assert admin_client.get(f"{url}?since=1e400").status_code == 200
    outsider = UserFactory(roles=["Operator"])
    client.force_login(outsider)
    assert client.get(url).status_code == 404


# -- Progress says what a run does while it reads -------------------------------------------------


def test_a_running_run_says_it_reads_invoices_from_the_tool_while_a_chunk_is_processed(
    admin_client, flow, monkeypatch, settings
):
    settings.INVSYNC_BATCH_SIZE = 3
    MemorySource.put(*InvoiceFactory.create_batch(5))
    seen = []
    push = writes.push

    def watching_push(state, batch):
        # What a page following the run reads while the chunk is being written.
        progress = reverse("admin:syncs_syncrun_progress", args=[state.run.pk])
        seen.append(admin_client.get(progress).json())
        push(state, batch)

    monkeypatch.setattr(writes, "push", watching_push)
    run(flow)
    assert [(s["total"], s["processed"]) for s in seen] == [(3, 0), (5, 3)]
    assert seen[0]["text"] == "Reading invoices from In-memory invoicing (tests)…, 3 read"
    assert seen[1]["text"] == (
        "Reading invoices from In-memory invoicing (tests)…, 5 read, 3 processed"
    )
    assert seen[0]["state"] == "Running"


# -- The checklist shows done only what is done ---------------------------------------------------


def test_a_vat_step_with_unmapped_source_rates_is_not_shown_done(admin_client, memory_connectors):
    flow = SyncFlowFactory(
        accounting_connection__kind="accounting", enabled=False, start_date=dt.date(2026, 1, 1)
    )
    MemorySource.put(
        *(
            InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal(rate)),))
            for rate in ("20.0", "2.1", "8.5")
        )
    )
    flow_lookups_load(flow=flow)
    step = {s.key: s for s in flow_setup_checklist(flow)}["sales_vat"]
    assert step.state is StepState.TO_CHECK and not step.done and not step.blocking
    assert "2 rates of the invoicing tool not mapped" in step.detail
    html = admin_client.get(reverse("admin:mappings_syncflow_change", args=[flow.pk]))
    page = html.content.decode()
    item = re.search(r'<li id="step-sales_vat" class="([a-z_]+)">(.*?)</li>', page, re.S)
    assert item.group(1) == "to_check"
    assert "✓" not in item.group(2) and "⚠" in item.group(2)
    assert "Setup: 8 of 9 steps done, 1 to check — the flow can be enabled " in text(page)
    assert "once no step is missing" not in page
    # To check does not keep the flow from being enabled.
    listing = text(admin_client.get(reverse("admin:mappings_syncflow_changelist")).content)
    assert "8/9 ⚠ to check" in listing


# -- The runs list filters by the states it shows; the commands print them ----------------------


def test_the_runs_filter_offers_the_states_people_read_and_filters_by_counts(admin_client, flow):
    clean = SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED, synced_count=3)
    partial = SyncRunFactory(flow=flow, status=RunStatus.PARTIAL, failed_count=2)
    # Stored as succeeded, yet a record failed: it is "with failures" by its counts.
    odd = SyncRunFactory(flow=flow, status=RunStatus.SUCCEEDED, failed_count=1)
    stopped = SyncRunFactory(flow=flow, status=RunStatus.FAILED, failed_count=1)
    running = SyncRunFactory(flow=flow, status=RunStatus.RUNNING)
    url = reverse("admin:syncs_syncrun_changelist")
    page = admin_client.get(url).content.decode()
    sidebar = text(page[page.index('id="changelist-filter"') :])
    for label in ("Running", "Completed", "Completed, with failures", "Stopped"):
        assert label in sidebar
    assert "Succeeded" not in sidebar and "Finished with failed records" not in sidebar
    expected = {
        "completed": {clean},
        "completed_with_failures": {partial, odd},
        "stopped": {stopped},
        "running": {running},
    }
    for state, runs in expected.items():
        response = admin_client.get(url, {"state": state})
        assert set(response.context["cl"].result_list) == runs, state


def test_a_run_s_counts_link_to_its_records_in_that_state(admin_client, flow):
    MemorySource.put(
        InvoiceFactory(number="OK-1"),
        InvoiceFactory(number="BAD-1", lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),)),
    )
    finished = run(flow)
    for page in (
        reverse("admin:syncs_syncrun_changelist"),
        reverse("admin:syncs_syncrun_change", args=[finished.pk]),
        reverse("admin:syncs_flow_dashboard", args=[flow.pk]),  # its last run
    ):
        html = admin_client.get(page).content.decode()
        links = dict(
            (status, href.replace("&amp;", "&"))
            for href, status in re.findall(
                r'<a href="([^"]*last_run__id__exact=\d+[^"]*status__exact=(\w+)[^"]*)"', html
            )
        )
        assert set(links) == {"synced", "waiting_attachment", "failed", "skipped"}, page
        failed = results(admin_client.get(links["failed"]))
        assert "BAD-1" in failed and "OK-1" not in failed
        synced = results(admin_client.get(links["synced"]))
        assert "OK-1" in synced and "BAD-1" not in synced


def test_sync_flow_prints_completed_n_failed_never_succeeded(flow, capsys):
    MemorySource.put(
        InvoiceFactory(), InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),))
    )
    call_command("sync_flow", str(flow.pk))
    out = capsys.readouterr().out
    run_id = SyncRun.objects.get(flow=flow).pk
    assert f"Run {run_id} completed, 1 failed: synced 1, waiting 0, failed 1" in out
    assert "succeeded" not in out.lower() and "partial" not in out.lower()
    call_command("sync_flow", str(flow.pk))  # nothing new: a clean run
    assert "completed: synced 0, waiting 0, failed 0" in capsys.readouterr().out


def test_the_demo_s_first_sync_prints_completed_n_failed(flow):
    MemorySource.put(
        InvoiceFactory(), InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),))
    )
    out = io.StringIO()
    demo.Command(stdout=out).first_sync([SyncFlow.objects.get(pk=flow.pk)])
    assert f"{flow.name}: Run " in out.getvalue()
    assert "completed, 1 failed: synced 1, waiting 0, failed 1" in out.getvalue()
    assert "Finished with failed records" not in out.getvalue()
