"""The sync service against a real database and the in-memory test connectors."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from connectors.base import SourceRecordError
from connectors.canonical import InvoiceStatus, InvoiceType, Partner
from connectors.errors import ConnectorError, ErrorCode
from mappings.models import SyncFlow
from mappings.services import flow_config_changed
from syncs import tasks
from syncs.models import PartnerLink, RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.services import flow_sync, record_external_id, records_retry_enqueue
from tests.factories import (
    InvoiceFactory,
    InvoiceLineFactory,
    PartnerLinkFactory,
    SyncFlowFactory,
    VatMappingFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(memory_connectors):
    source, target = memory_connectors
    return source, target


@pytest.fixture
def flow(world):
    return SyncFlowFactory(accounting_connection__kind="accounting")


def run(flow, trigger="manual"):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger=trigger)
    assert result is not None
    return result


def status(source_id, flow):
    return SyncedRecord.objects.get(flow=flow, source_id=source_id)


def writes(target):
    return sum(
        v for k, v in target.calls.items() if k in {"create_entries", "create_partner", "attach"}
    )


# -- A first run ----------------------------------------------------------------------------------


def test_first_run_writes_each_invoice_once_as_a_balanced_entry(world, flow):
    source, target = world
    source.put(*InvoiceFactory.create_batch(3), InvoiceFactory(type=InvoiceType.SUPPLIER_INVOICE))
    result = run(flow)
    assert result.status == RunStatus.SUCCEEDED
    assert (result.synced_count, result.failed_count, result.total) == (4, 0, 4)
    assert len(target.entries) == 4
    for entry in target.entries.values():
        assert entry["posting"].total_debit == entry["posting"].total_credit
        assert entry["posting"].partner_ref in target.partners
        assert entry["attachment"].content.startswith(b"%PDF")
    records = SyncedRecord.objects.filter(flow=flow)
    assert {r.status for r in records} == {RecordStatus.SYNCED}
    assert all(r.target_ref and r.snapshot["number"] == r.number for r in records)


def test_batches_write_many_entries_per_target_call(world, flow, settings):
    source, target = world
    settings.INVSYNC_BATCH_SIZE = 10
    source.put(*InvoiceFactory.create_batch(25))
    run(flow)
    assert len(target.entries) == 25 and target.calls["create_entries"] == 3


def test_run_records_its_trigger_timings_and_counts(world, flow):
    source, _ = world
    source.put(InvoiceFactory())
    result = run(flow, trigger="command")
    assert result.trigger == "command" and result.finished_at >= result.started_at
    assert result.counts() == {"synced": 1, "waiting": 0, "failed": 0, "skipped": 0, "unchanged": 0}


# -- Nothing twice, nothing lost ------------------------------------------------------------------


def test_second_run_over_unchanged_invoices_makes_no_target_call(world, flow):
    source, target = world
    source.put(*InvoiceFactory.create_batch(5))
    run(flow)
    target.calls.clear()
    second = run(flow)
    assert sum(target.calls.values()) == 0
    assert second.unchanged_count == 5 and second.synced_count == 0
    assert len(target.entries) == 5


def test_unchanged_failed_invoice_is_not_retried_on_every_run(world, flow):
    source, target = world
    source.put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),)))
    assert run(flow).failed_count == 1
    target.calls.clear()
    assert run(flow).unchanged_count == 1
    assert sum(target.calls.values()) == 0


def test_invoice_changed_after_sync_is_flagged_not_written_twice(world, flow):
    source, target = world
    invoice = InvoiceFactory()
    source.put(invoice)
    run(flow)
    changed = InvoiceFactory(
        source_id=invoice.source_id, number=invoice.number,
        updated_at=invoice.updated_at + dt.timedelta(hours=1),
        lines=(InvoiceLineFactory(untaxed_amount=D("200.00")),),
    )  # fmt: skip
    source.put(changed)
    run(flow)
    record = status(invoice.source_id, flow)
    assert record.status == RecordStatus.SYNCED and "120.00 → 240.00" in record.drift
    assert len(target.entries) == 1


def test_cancelled_after_sync_is_flagged(world, flow):
    source, _ = world
    invoice = InvoiceFactory()
    source.put(invoice)
    run(flow)
    source.put(InvoiceFactory(source_id=invoice.source_id, status=InvoiceStatus.CANCELLED))
    run(flow)
    assert "Cancelled" in status(invoice.source_id, flow).drift


def test_source_cursor_advances_to_the_newest_change_read(world, flow):
    source, _ = world
    newest = timezone.make_aware(dt.datetime(2026, 4, 2, 8, 0))
    source.put(InvoiceFactory(), InvoiceFactory(updated_at=newest))
    run(flow)
    flow.refresh_from_db()
    assert flow.source_cursor == newest


def test_crash_after_write_is_resolved_by_asking_the_target(world, flow):
    """The target wrote the entries, then the connection died: records stay pushing; the next run
    finds the entries by external id and writes nothing again."""
    source, target = world
    source.put(*InvoiceFactory.create_batch(3))
    target.fail_next_write = ConnectorError(ErrorCode.UNAVAILABLE, "connection reset")
    target.fail_after_write = True
    first = run(flow)
    assert first.status == RunStatus.FAILED and first.error_code == ErrorCode.UNAVAILABLE
    assert set(SyncedRecord.objects.values_list("status", flat=True)) == {RecordStatus.PUSHING}
    assert len(target.entries) == 3
    second = run(flow)
    assert second.status == RunStatus.SUCCEEDED
    assert set(SyncedRecord.objects.values_list("status", flat=True)) == {RecordStatus.SYNCED}
    assert len(target.entries) == 3 and target.calls["find_entries"] == 1


def test_crash_before_write_pushes_again_exactly_once(world, flow):
    source, target = world
    source.put(*InvoiceFactory.create_batch(2))
    target.fail_next_write = ConnectorError(ErrorCode.UNAVAILABLE, "timed out")
    assert run(flow).status == RunStatus.FAILED
    assert len(target.entries) == 0
    second = run(flow)
    assert second.synced_count == 2 and len(target.entries) == 2


def test_entry_written_without_its_pdf_before_a_crash_gets_it_on_recovery(world, flow):
    source, target = world
    invoice = InvoiceFactory()
    source.put(invoice)
    run(flow)
    external_id = next(iter(target.entries))
    entry = target.entries[external_id]
    entry["attachment"] = None
    entry["ref"] = entry["ref"].__class__(entry["ref"].id, entry["ref"].number, False)
    SyncedRecord.objects.update(status=RecordStatus.PUSHING)
    run(flow)
    assert target.entries[external_id]["attachment"] is not None
    assert status(invoice.source_id, flow).status == RecordStatus.SYNCED


# -- One bad invoice never stops a run ---------------------------------------------------------


def test_one_bad_invoice_fails_alone_with_its_code(world, flow):
    source, _target = world
    bad = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),))
    source.put(InvoiceFactory(), bad, InvoiceFactory())
    result = run(flow)
    assert result.status == RunStatus.PARTIAL
    assert (result.synced_count, result.failed_count) == (2, 1)
    record = status(bad.source_id, flow)
    assert record.error_code == ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
    assert record.error_field == "lines[0].tax_rate"
    assert "mapping" in record.resolution.lower()
    assert record.snapshot["lines"][0]["tax_rate"] == "2.1"


def test_unreadable_source_record_fails_alone(world, flow):
    source, _target = world
    broken = SourceRecordError(
        "inv-x", ConnectorError(ErrorCode.INVALID_SOURCE_DATA, "total is not a number"), "F-X"
    )
    source.put(InvoiceFactory(), broken)
    result = run(flow)
    assert (result.synced_count, result.failed_count) == (1, 1)
    assert status("inv-x", flow).error_code == ErrorCode.INVALID_SOURCE_DATA


def test_batch_refused_for_one_entry_is_split_so_that_entry_fails_alone(world, flow, settings):
    source, target = world
    settings.INVSYNC_BATCH_SIZE = 8
    invoices = InvoiceFactory.create_batch(8)
    source.put(*invoices)
    poisoned = record_external_id(flow, invoices[5].source_id)
    target.poison[poisoned] = ConnectorError(ErrorCode.TARGET_REJECTED, "period is closed")
    result = run(flow)
    assert (result.synced_count, result.failed_count) == (7, 1)
    assert status(invoices[5].source_id, flow).error_code == ErrorCode.TARGET_REJECTED
    assert poisoned not in target.entries and len(target.entries) == 7


def test_entry_refused_on_its_own_merits_fails_alone(world, flow):
    source, target = world
    invoices = InvoiceFactory.create_batch(3)
    source.put(*invoices)
    refused = record_external_id(flow, invoices[1].source_id)
    target.refuse[refused] = ConnectorError(ErrorCode.TARGET_REJECTED, "no fiscal year")
    result = run(flow)
    assert (result.synced_count, result.failed_count) == (2, 1)


def test_source_down_marks_the_run_failed_with_a_transient_code_and_next_run_resumes(world, flow):
    source, _target = world
    source.put(InvoiceFactory())
    source.fail_listing = ConnectorError(ErrorCode.UNAVAILABLE, "502 Bad Gateway")
    first = run(flow)
    assert first.status == RunStatus.FAILED and first.error_code == ErrorCode.UNAVAILABLE
    source.fail_listing = None
    assert run(flow).synced_count == 1


def test_authentication_failure_stops_the_run_without_blaming_records(world, flow):
    source, target = world
    source.put(InvoiceFactory())
    target.fail_next_write = ConnectorError(ErrorCode.AUTHENTICATION_FAILED, "bad token")
    result = run(flow)
    assert (
        result.status == RunStatus.FAILED and result.error_code == ErrorCode.AUTHENTICATION_FAILED
    )
    assert result.failed_count == 0


def test_transient_record_failure_is_retried_after_its_backoff(world, flow):
    source, target = world
    invoice = InvoiceFactory()
    source.put(invoice)
    target.refuse[record_external_id(flow, invoice.source_id)] = ConnectorError(
        ErrorCode.UNEXPECTED, "hiccup"
    )
    run(flow)
    record = status(invoice.source_id, flow)
    assert record.status == RecordStatus.FAILED and record.next_attempt_at > timezone.now()
    target.refuse.clear()
    assert run(flow).synced_count == 0  # still backing off
    SyncedRecord.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert run(flow).synced_count == 1


# -- Attachments ----------------------------------------------------------------------------------


def test_invoice_waiting_for_its_pdf_is_reexamined_each_run_until_it_appears(world, flow):
    source, target = world
    flow.sync_without_attachment = False
    flow.save()
    invoice = InvoiceFactory(has_attachment=False)
    later = InvoiceFactory(
        has_attachment=False, updated_at=invoice.updated_at + dt.timedelta(days=1)
    )
    source.put(invoice, later)
    assert run(flow).waiting_count == 2
    assert run(flow).waiting_count == 2
    source.put(
        InvoiceFactory(source_id=invoice.source_id, number=invoice.number, has_attachment=True)
    )
    source.calls.clear()
    # The invoice's change date did not move (a PDF attached later rarely touches it): the held
    # record is fetched by id.
    third = run(flow)
    assert (third.synced_count, third.waiting_count) == (1, 1)
    assert source.calls["get_invoice"] == 1
    assert next(iter(target.entries.values()))["attachment"] is not None


def test_pdf_that_cannot_be_fetched_fails_the_invoice_when_pdfs_are_required(world, flow):
    source, _ = world
    flow.sync_without_attachment = False
    flow.save()
    invoice = InvoiceFactory()
    source.put(invoice)
    source.failing_attachments.add(invoice.source_id)
    run(flow)
    assert status(invoice.source_id, flow).error_code == ErrorCode.PDF


def test_pdf_that_cannot_be_fetched_is_left_out_when_pdfs_are_optional(world, flow):
    source, target = world
    invoice = InvoiceFactory()
    source.put(invoice)
    source.failing_attachments.add(invoice.source_id)
    assert run(flow).synced_count == 1
    assert next(iter(target.entries.values()))["attachment"] is None


# -- Scope and skips ---------------------------------------------------------------------------


def test_scope_and_start_date_skip_invoices(world, flow):
    source, _target = world
    flow.scope = "sales"
    flow.start_date = dt.date(2026, 3, 1)
    flow.save()
    source.put(
        InvoiceFactory(source_id="old", issue_date=dt.date(2026, 2, 1)),
        InvoiceFactory(source_id="new"),
        InvoiceFactory(source_id="buy", type=InvoiceType.SUPPLIER_INVOICE),
    )
    result = run(flow)
    assert (result.synced_count, result.skipped_count) == (1, 1)
    assert status("old", flow).status == RecordStatus.SKIPPED
    assert not SyncedRecord.objects.filter(source_id="buy").exists()  # never listed


# -- Retry ---------------------------------------------------------------------------------------


def test_fixing_the_mapping_retries_failed_records_on_the_next_run(world, flow):
    source, target = world
    bad = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),))
    source.put(bad)
    run(flow)
    VatMappingFactory(flow=flow, direction="sales", source_rate=D("2.1"), target_code="V0")
    flow_config_changed(flow=flow)
    target.vat_codes = target.vat_codes  # unchanged target
    assert run(flow).synced_count == 1
    assert status(bad.source_id, flow).status == RecordStatus.SYNCED


def test_retry_action_queues_a_run_that_pushes_the_failed_records(world, flow, q_sync):
    source, target = world
    invoice = InvoiceFactory()
    source.put(invoice)
    source.failing_attachments.add(invoice.source_id)
    flow.sync_without_attachment = False
    flow.save()
    run(flow)
    record = status(invoice.source_id, flow)
    assert record.error_code == ErrorCode.PDF
    source.failing_attachments.clear()
    assert records_retry_enqueue(records=[record]) == 1
    record.refresh_from_db()
    # Two tries: the first failed on its PDF before any write, the retry wrote it.
    assert record.status == RecordStatus.SYNCED and record.attempts == 2
    assert SyncRun.objects.filter(trigger="retry").count() == 1
    # Twice is harmless: nothing is failed any more, nothing is queued.
    assert records_retry_enqueue(records=[record]) == 0
    assert len(target.entries) == 1


def test_record_overrides_are_applied_on_retry(world, flow):
    source, target = world
    bad = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),))
    source.put(bad)
    run(flow)
    record = status(bad.source_id, flow)
    record.overrides = {"lines": {"0": {"vat_code": "V20", "account": "707"}}}
    record.save()
    records_retry_enqueue  # noqa: B018 - the admin calls it; here we run directly
    SyncedRecord.objects.filter(pk=record.pk).update(status=RecordStatus.PENDING)
    run(flow)
    record.refresh_from_db()
    assert record.status == RecordStatus.SYNCED
    posting = next(iter(target.entries.values()))["posting"]
    assert posting.lines[1].account == "707" and posting.lines[1].vat_code == "V20"


# -- Partners ------------------------------------------------------------------------------------


def test_partner_is_matched_by_vat_number_and_linked(world, flow):
    source, target = world
    existing = target.add_partner("Acme", vat_numbers=("FR40303265045",))
    partner = Partner(source_id="c-1", name="ACME SAS", vat_number="fr 40 303 265 045")
    source.put(InvoiceFactory(partner=partner), InvoiceFactory(partner=partner))
    run(flow)
    link = PartnerLink.objects.get(flow=flow, source_partner_id="c-1")
    assert (link.target_partner_id, link.matched_by) == (existing.id, "vat_number")
    assert target.calls["find_partner_candidates"] == 1 and target.calls["create_partner"] == 0
    assert {e["posting"].partner_ref for e in target.entries.values()} == {existing.id}


def test_unmatched_partner_is_created_once_with_its_identifiers(world, flow):
    source, target = world
    partner = Partner(source_id="c-2", name="Nouveau SARL", vat_number="FR40303265045")
    source.put(InvoiceFactory(partner=partner))
    run(flow)
    source.put(InvoiceFactory(partner=partner))
    run(flow)
    assert target.calls["create_partner"] == 1
    created = next(iter(target.partners.values()))
    assert created.vat_numbers == ("FR40303265045",)
    assert PartnerLink.objects.get(source_partner_id="c-2").matched_by == "created"


def test_linked_partner_deleted_in_accounting_fails_with_partner_not_found(world, flow):
    source, target = world
    PartnerLinkFactory(flow=flow, source_partner_id="c-3", target_partner_id="gone")
    invoice = InvoiceFactory(partner=Partner(source_id="c-3", name="Ghost"))
    source.put(invoice)
    run(flow)
    record = status(invoice.source_id, flow)
    assert (
        record.error_code == ErrorCode.PARTNER_NOT_FOUND
        and "no longer exists" in record.error_message
    )
    assert len(target.entries) == 0


def test_ambiguous_partner_is_never_guessed(world, flow):
    source, target = world
    target.add_partner("ACME", vat_numbers=("FR40303265045",))
    target.add_partner("ACME SAS", vat_numbers=("FR40303265045",))
    invoice = InvoiceFactory(
        partner=Partner(source_id="c-4", name="Acme", vat_number="FR40303265045")
    )
    source.put(invoice)
    run(flow)
    assert status(invoice.source_id, flow).error_code == ErrorCode.PARTNER_AMBIGUOUS
    assert not PartnerLink.objects.exists()


def test_linked_partners_are_verified_once_per_run(world, flow):
    source, target = world
    existing = target.add_partner("Acme")
    PartnerLinkFactory(flow=flow, source_partner_id="c-5", target_partner_id=existing.id)
    partner = Partner(source_id="c-5", name="Acme")
    source.put(*[InvoiceFactory(partner=partner) for _ in range(5)])
    run(flow)
    assert (
        target.calls["existing_partner_ids"] == 1 and target.calls["find_partner_candidates"] == 0
    )


def test_partners_of_one_chunk_that_are_the_same_get_one_created_partner(world, flow):
    source, target = world
    vat = "FR40303265045"
    source.put(
        InvoiceFactory(partner=Partner("c-6", "Nouveau SARL", vat_number=vat)),
        InvoiceFactory(partner=Partner("c-7", "Nouveau (agence Lyon)", vat_number=vat)),
        InvoiceFactory(partner=Partner("c-8", "nouveau sarl")),  # the same name
        InvoiceFactory(partner=Partner("c-9", "Autre")),
    )
    result = run(flow)
    assert result.synced_count == 4
    assert target.calls["create_partner"] == 2  # "Nouveau" once, "Autre"
    links = {link.source_partner_id: link for link in PartnerLink.objects.filter(flow=flow)}
    assert links["c-6"].target_partner_id == links["c-7"].target_partner_id
    assert links["c-6"].target_partner_id == links["c-8"].target_partner_id
    assert [links[k].matched_by for k in ("c-6", "c-7", "c-8")] == [
        "created", "vat_number", "name",
    ]  # fmt: skip


def test_a_partner_the_tool_refuses_to_create_fails_only_its_invoices(world, flow, monkeypatch):
    from connectors.errors import InvsyncError

    source, target = world
    create = target.create_partner

    def refuse_bad(self, folder, partner, direction):
        if partner.name == "Bad":
            raise InvsyncError(ErrorCode.PARTNER_VALIDATION, "The name is refused.")
        return create(self, folder, partner, direction)

    monkeypatch.setattr(target, "create_partner", refuse_bad)
    bad = InvoiceFactory(partner=Partner("c-10", "Bad"))
    source.put(InvoiceFactory(partner=Partner("c-11", "Good")), bad)
    result = run(flow)
    assert (result.status, result.synced_count, result.failed_count) == (
        RunStatus.PARTIAL, 1, 1,
    )  # fmt: skip
    assert status(bad.source_id, flow).error_code == ErrorCode.PARTNER_VALIDATION


def test_a_refused_search_for_many_partners_is_made_again_one_by_one(world, flow, monkeypatch):
    source, target = world
    find = target.find_partner_candidates

    def refuse_batch(self, folder, partners):
        raise ConnectorError(ErrorCode.TARGET_REJECTED, "The search is refused.")

    def refuse_odd(self, folder, partner):
        if partner.name == "Odd":
            raise ConnectorError(ErrorCode.TARGET_REJECTED, "This name is refused.")
        return find(self, folder, partner)

    monkeypatch.setattr(target, "find_partner_candidates_many", refuse_batch)
    monkeypatch.setattr(target, "find_partner_candidates", refuse_odd)
    odd = InvoiceFactory(partner=Partner("c-12", "Odd"))
    source.put(InvoiceFactory(partner=Partner("c-13", "Even")), odd)
    result = run(flow)
    assert (result.synced_count, result.failed_count) == (1, 1)
    assert status(odd.source_id, flow).error_code == ErrorCode.TARGET_REJECTED


def test_the_tool_going_down_while_creating_partners_stops_the_run(world, flow, monkeypatch):
    source, target = world

    tries = []

    def down(self, folder, partner, direction):
        tries.append(partner.name)
        raise ConnectorError(ErrorCode.UNAVAILABLE, "The ledger did not answer.")

    monkeypatch.setattr(target, "create_partner", down)
    source.put(*(InvoiceFactory(partner=Partner(f"c-{n}", f"New {n}")) for n in range(20, 23)))
    result = run(flow)
    assert (result.status, result.error_code) == (RunStatus.FAILED, ErrorCode.UNAVAILABLE)
    assert len(tries) == 1  # not one more call per partner once the tool is down
    assert not SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).exists()


# -- One run per flow; tasks; command ------------------------------------------------------------


def test_a_flow_runs_once_at_a_time(world, flow):
    from syncs.services import _lease_acquire

    token = _lease_acquire(flow.pk)
    assert token is not None
    assert flow_sync(flow=flow, trigger="manual") is None
    assert SyncRun.objects.count() == 0


def test_an_expired_lease_of_a_dead_worker_does_not_block_the_flow(world, flow):
    SyncFlow.objects.filter(pk=flow.pk).update(
        lease_owner="dead", lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert run(flow).status == RunStatus.SUCCEEDED
    flow.refresh_from_db()
    assert flow.lease_owner == "" and flow.lease_until is None


def test_saving_the_flow_in_a_form_does_not_clobber_a_running_lease(world, flow):
    from syncs.services import _lease_acquire

    stale = SyncFlow.objects.get(pk=flow.pk)
    _lease_acquire(flow.pk)
    stale.name = "Renamed"
    stale.save()
    flow.refresh_from_db()
    assert flow.lease_owner and flow.name == "Renamed"


def test_run_flow_task_is_safe_to_run_twice(world, flow):
    source, target = world
    source.put(*InvoiceFactory.create_batch(2))
    first = tasks.run_flow(flow.pk, "manual")
    second = tasks.run_flow(flow.pk, "manual")
    assert first["synced"] == 2 and second["synced"] == 0 and second["unchanged"] == 2
    assert len(target.entries) == 2


def test_scheduled_task_does_nothing_for_a_disabled_flow(world, flow):
    flow.enabled = False
    flow.save()
    assert tasks.run_flow(flow.pk) == {"flow": flow.pk, "status": "disabled"}
    assert tasks.run_flow(999999) == {"flow": 999999, "status": "missing"}


def test_sync_now_through_django_q_runs_the_flow(world, flow, q_sync):
    from syncs.services import flow_sync_enqueue

    source, _target = world
    source.put(InvoiceFactory())
    flow_sync_enqueue(flow=flow, trigger="manual")
    assert SyncRun.objects.get().synced_count == 1


def test_sync_flow_command_prints_progress_and_counts(world, flow, capsys):
    source, _ = world
    source.put(InvoiceFactory(), InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),)))
    call_command("sync_flow", str(flow.pk))
    out = capsys.readouterr().out
    assert "2 examined" in out
    assert "synced 1, waiting 0, failed 1, skipped 0" in out


def test_sync_flow_command_accepts_the_flow_name(world, flow, capsys):
    call_command("sync_flow", flow.name)
    assert "synced 0" in capsys.readouterr().out


def test_missing_folder_fails_the_run_with_a_configuration_code(world, flow):
    flow.folder = ""
    flow.save()
    result = run(flow)
    assert result.status == RunStatus.FAILED
    assert result.error_code == ErrorCode.CONFIGURATION_INCOMPLETE


def test_unknown_provider_fails_the_run_with_a_configuration_code(world, flow):
    flow.accounting_connection.provider = "nope"
    flow.accounting_connection.save()
    result = run(flow)
    assert result.error_code == ErrorCode.CONFIGURATION_INCOMPLETE


def test_a_run_never_writes_back_overrides_it_loaded_before_a_person_saved_new_ones(world, flow):
    from syncs.run.state import save_record

    source, _ = world
    bad = InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),))
    source.put(bad)
    run(flow)
    stale = SyncedRecord.objects.get(flow=flow)  # what a running sync holds in memory
    SyncedRecord.objects.filter(pk=stale.pk).update(overrides={"lines": {"0": {"vat_code": "V20"}}})
    stale.error_message = "changed by the run"
    save_record(stale)
    fresh = SyncedRecord.objects.get(pk=stale.pk)
    assert fresh.overrides == {"lines": {"0": {"vat_code": "V20"}}}
    assert fresh.error_message == "changed by the run"


def test_a_dead_workers_run_is_closed_when_its_lapsed_lease_is_taken_over(world, flow):
    dead = SyncRun.objects.create(flow=flow, trigger="schedule")  # status running, never finished
    SyncFlow.objects.filter(pk=flow.pk).update(
        lease_owner="dead", lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    run(flow)
    dead.refresh_from_db()
    assert dead.status == RunStatus.FAILED and dead.finished_at is not None
    assert "lease" in dead.error_message
