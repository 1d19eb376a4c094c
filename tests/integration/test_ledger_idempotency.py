"""Idempotency is per ledger (DESIGN): whatever the number of flows reading one invoicing account
and writing to one accounting folder, each invoice is written there once. In-memory connectors
(the memory target refuses, by assertion, to write an external id twice); the same against the
live Tryton is in test_tryton_ledger.py."""

from __future__ import annotations

import importlib
import json

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command

from mappings.models import SyncFlow
from mappings.overlaps import flows_sharing_ledger
from mappings.services import SHARED_LEDGER, flow_update
from syncs.models import RecordStatus, SyncedRecord, legacy_external_id
from syncs.run.state import RunState
from syncs.services import flow_sync, record_external_id
from tests.factories import ClientFactory, InvoiceFactory
from tests.integration.test_mapping_forms import change_url, complete_flow, form_data

pytestmark = pytest.mark.django_db

SHOP = {"account": "shop"}  # one invoicing account, reached by several connections
BOOKS = {"account": "books"}  # one accounting account


def ledger_flow(client_name: str, *, source=SHOP, target=BOOKS, **values) -> SyncFlow:
    """A complete flow of its own client, on its own connections to the given accounts."""
    return complete_flow(
        client=ClientFactory(name=client_name),
        invoicing_connection__settings=dict(source),
        accounting_connection__settings=dict(target),
        **values,
    )


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk))
    assert result is not None and result.status != "failed", result.error_message
    return result


def records(flow) -> dict[str, SyncedRecord]:
    return {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}


def write_with_per_flow_keys(monkeypatch, flow) -> None:
    """Run ``flow`` as invsync did before keys were per source account, then upgrade its
    records as the migration does (they had no key column then)."""
    with monkeypatch.context() as patch:
        patch.setattr(
            RunState, "key", lambda self, sid: legacy_external_id(self.flow.pk, "invoice", sid)
        )
        run(flow)
    SyncedRecord.objects.filter(flow=flow).update(entry_key="")
    migration = importlib.import_module("syncs.migrations.0003_record_entry_key_and_note")
    migration.key_written_entries(apps, None)


# -- The key ---------------------------------------------------------------------------------


def test_the_key_is_the_invoice_identity_in_its_source_account_not_the_flow(memory_connectors):
    first, second = ledger_flow("Acme"), ledger_flow("Other firm")
    elsewhere = ledger_flow("Third", source={"account": "another shop"})
    assert record_external_id(first, "7") == record_external_id(second, "7")
    assert record_external_id(first, "7") != record_external_id(elsewhere, "7")
    assert record_external_id(first, "7") != record_external_id(first, "8")
    assert record_external_id(first, "7").startswith("invsync:acct-")
    assert record_external_id(first, "7") != legacy_external_id(first.pk, "invoice", "7")


def test_flows_share_a_ledger_with_the_same_source_account_target_account_and_folder(
    memory_connectors,
):
    flow = ledger_flow("Acme")
    same = ledger_flow("Other firm", enabled=False)
    other_folder = ledger_flow("Folder 2", folder="2")
    other_books = ledger_flow("Other books", target={"account": "other books"})
    other_shop = ledger_flow("Other shop", source={"account": "other shop"})
    assert flows_sharing_ledger(flow) == [same]
    assert flows_sharing_ledger(flow, enabled_only=True) == []
    assert flows_sharing_ledger(other_folder) == []
    assert flows_sharing_ledger(other_books) == flows_sharing_ledger(other_shop) == []


# -- Two flows, one ledger -------------------------------------------------------------------


def test_a_second_clients_flow_on_the_same_account_and_folder_writes_nothing_twice(
    memory_connectors,
):
    source, target = memory_connectors
    first = ledger_flow("Acme")
    second = ledger_flow("Other firm")
    invoices = InvoiceFactory.create_batch(4)
    source.put(*invoices)
    assert run(first).synced_count == 4 and len(target.entries) == 4

    late = InvoiceFactory()
    source.put(late)
    result = run(second)
    # Every invoice synced for the second flow; only the new one written.
    assert result.synced_count == 5 and result.failed_count == 0
    assert len(target.entries) == 5 and target.calls["create_entries"] == 2
    mine, theirs = records(second), records(first)
    for invoice in invoices:
        record = mine[invoice.source_id]
        assert record.status == RecordStatus.SYNCED
        assert record.target_ref == theirs[invoice.source_id].target_ref
        assert "written by the flow Acme/" in record.note and f"(id {first.pk})" in record.note
    assert mine[late.source_id].note == ""

    # And back: the first flow finds the invoice the second one wrote.
    assert run(first).synced_count == 1
    assert len(target.entries) == 5
    found = records(first)[late.source_id]
    assert found.target_ref == mine[late.source_id].target_ref
    assert "written by the flow Other firm/" in found.note


def test_flows_alone_on_their_ledger_ask_the_target_nothing_more(memory_connectors):
    source, target = memory_connectors
    flow = ledger_flow("Acme")
    ledger_flow("Elsewhere", folder="2")
    source.put(*InvoiceFactory.create_batch(3))
    run(flow)
    # The write itself is the only look-up (create_entries never writes an id twice).
    assert target.calls["find_entries"] == 0 and target.calls["create_entries"] == 1


def test_an_import_flow_copy_is_disabled_and_once_confirmed_writes_nothing_twice(
    memory_connectors, tmp_path
):
    source, target = memory_connectors
    flow = ledger_flow("Acme")
    source.put(*InvoiceFactory.create_batch(3))
    run(flow)
    path = tmp_path / "flow.json"
    call_command("export_flow", str(flow.pk), "--output", str(path))
    call_command("import_flow", str(path), "--name", "Copy")
    copy = SyncFlow.objects.get(client=flow.client, name="Copy")
    assert copy.enabled is False
    assert (copy.invoicing_connection, copy.accounting_connection) == (
        flow.invoicing_connection,
        flow.accounting_connection,
    )

    with pytest.raises(ValidationError) as refused:
        flow_update(flow=copy, data={"enabled": True})
    (error,) = refused.value.error_dict["enabled"]
    assert error.code == SHARED_LEDGER and error.params["flows"] == [flow.pk]
    assert f"Acme/{flow.name} (id {flow.pk})" in error.message
    assert "no invoice is written twice" in error.message and "keeps running" in error.message
    assert SyncFlow.objects.get(pk=copy.pk).enabled is False

    flow_update(flow=copy, data={"enabled": True}, shared_ledger_confirmed=[flow.pk])
    assert SyncFlow.objects.get(pk=copy.pk).enabled is True
    source.put(InvoiceFactory())
    result = run(copy)
    assert result.synced_count == 4 and len(target.entries) == 4
    assert SyncFlow.objects.get(pk=flow.pk).enabled is True  # the other flow keeps running


def test_enabling_needs_no_confirmation_beside_disabled_or_other_ledgers_flows(memory_connectors):
    ledger_flow("Acme", enabled=False)
    ledger_flow("Folder 2", folder="2")
    flow = ledger_flow("Other firm", enabled=False)
    flow_update(flow=flow, data={"enabled": True})
    assert SyncFlow.objects.get(pk=flow.pk).enabled is True


def test_an_enabled_flow_moved_onto_another_flows_ledger_needs_the_confirmation(
    memory_connectors,
):
    first = ledger_flow("Acme")
    second = ledger_flow("Other firm", folder="2")
    with pytest.raises(ValidationError) as refused:
        flow_update(flow=second, data={"folder": "1"})
    assert refused.value.error_dict["enabled"][0].code == SHARED_LEDGER
    flow_update(flow=second, data={"folder": "1"}, shared_ledger_confirmed=[first.pk])
    # Saved again unchanged: nothing more to confirm.
    flow_update(flow=SyncFlow.objects.get(pk=second.pk), data={"name": "Renamed"})


def test_the_flow_admin_asks_to_confirm_a_shared_ledger_naming_the_other_flow(
    memory_connectors, admin_client
):
    first = ledger_flow("Acme")
    second = ledger_flow("Other firm", enabled=False)
    url = change_url(second)
    data = form_data(admin_client.get(url))
    data["enabled"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    (message,) = response.context["adminform"].form.errors["confirm_shared_ledger"]
    assert f"Acme/{first.name} (id {first.pk})" in message and "keeps running" in message
    assert SyncFlow.objects.get(pk=second.pk).enabled is False

    data["confirm_shared_ledger"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert SyncFlow.objects.get(pk=second.pk).enabled is True


# -- Entries written before the upgrade ------------------------------------------------------


def test_entries_under_old_per_flow_keys_are_found_by_another_flow_after_the_upgrade(
    memory_connectors, monkeypatch
):
    source, target = memory_connectors
    first = ledger_flow("Acme")
    invoices = InvoiceFactory.create_batch(3)
    source.put(*invoices)
    write_with_per_flow_keys(monkeypatch, first)
    assert set(target.entries) == {
        legacy_external_id(first.pk, "invoice", i.source_id) for i in invoices
    }
    assert {r.entry_key for r in records(first).values()} == set(target.entries)

    second = ledger_flow("Other firm")
    result = run(second)
    assert result.synced_count == 3 and len(target.entries) == 3
    for record in records(second).values():
        assert record.entry_key == legacy_external_id(first.pk, "invoice", record.source_id)
        assert f"(id {first.pk})" in record.note
    # Nothing new for the first flow either.
    assert run(first).synced_count == 0 and len(target.entries) == 3


def test_a_push_interrupted_before_the_upgrade_is_resolved_under_its_old_key(
    memory_connectors, monkeypatch
):
    source, target = memory_connectors
    flow = ledger_flow("Acme")
    invoice = InvoiceFactory()
    source.put(invoice)
    write_with_per_flow_keys(monkeypatch, flow)
    # The old run died after writing, before it recorded the result.
    SyncedRecord.objects.filter(flow=flow).update(status=RecordStatus.PUSHING, target_ref="")
    migration = importlib.import_module("syncs.migrations.0003_record_entry_key_and_note")
    SyncedRecord.objects.filter(flow=flow).update(entry_key="")
    migration.key_written_entries(apps, None)

    run(flow)
    record = records(flow)[invoice.source_id]
    assert record.status == RecordStatus.SYNCED and record.target_ref
    assert record.entry_key == legacy_external_id(flow.pk, "invoice", invoice.source_id)
    assert len(target.entries) == 1 and target.calls["create_entries"] == 1


def test_the_upgrade_keys_written_records_by_their_old_key_and_leaves_the_others(
    memory_connectors,
):
    flow = ledger_flow("Acme")
    for source_id, status in (("1", "synced"), ("2", "pushing"), ("3", "failed"), ("4", "pending")):
        SyncedRecord.objects.create(flow=flow, source_id=source_id, status=status)
    migration = importlib.import_module("syncs.migrations.0003_record_entry_key_and_note")
    migration.key_written_entries(apps, None)
    assert {r.source_id: r.entry_key for r in SyncedRecord.objects.filter(flow=flow)} == {
        "1": f"invsync:{flow.pk}:invoice:1",
        "2": f"invsync:{flow.pk}:invoice:2",
        "3": "",
        "4": "",
    }


def test_import_flow_says_the_new_flow_is_disabled(memory_connectors, tmp_path, capsys):
    flow = ledger_flow("Acme")
    path = tmp_path / "flow.json"
    call_command("export_flow", str(flow.pk), "--output", str(path))
    assert json.loads(path.read_text())["flow"]["enabled"] is True
    call_command("import_flow", str(path), "--name", "Copy")
    out = capsys.readouterr()
    assert "It is disabled" in out.out and "an import creates flows disabled" in out.err


def test_a_records_page_says_which_flow_wrote_its_entry(memory_connectors, admin_client):
    from django.urls import reverse

    source, _target = memory_connectors
    first, second = ledger_flow("Acme"), ledger_flow("Other firm")
    invoice = InvoiceFactory()
    source.put(invoice)
    run(first)
    run(second)
    record = records(second)[invoice.source_id]
    page = admin_client.get(reverse("admin:syncs_syncedrecord_change", args=[record.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert f"written by the flow Acme/{first.name} (id {first.pk})" in text
    assert record.entry_key in text


def test_a_sales_flow_and_a_purchases_flow_on_one_ledger_do_not_overlap(memory_connectors):
    sales = ledger_flow("Acme", scope="sales")
    purchases = ledger_flow("Other firm", scope="purchases", enabled=False)
    both = ledger_flow("Third", scope="both", enabled=False)
    assert flows_sharing_ledger(sales) == [both]
    assert flows_sharing_ledger(purchases) == [both]
    flow_update(flow=purchases, data={"enabled": True})  # no confirmation needed
    with pytest.raises(ValidationError):
        flow_update(flow=both, data={"enabled": True})


def test_a_flow_does_not_run_while_a_flow_on_its_ledger_runs(memory_connectors):
    from syncs.services import _lease_acquire, _lease_release, _ledger_lease_acquire

    source, target = memory_connectors
    first, second = ledger_flow("Acme"), ledger_flow("Other firm")
    elsewhere = ledger_flow("Folder 2", folder="2")
    source.put(InvoiceFactory())
    token = _lease_acquire(first.pk)  # a run of the first flow, in another worker
    assert flow_sync(flow=second) is None
    assert not second.runs.exists() and not target.entries
    assert flow_sync(flow=elsewhere) is not None  # another ledger: not held up
    _lease_release(first.pk, token)

    # A run takes the leases of every flow on its ledger, and gives them back.
    token = _ledger_lease_acquire(second)
    assert {f.lease_owner for f in SyncFlow.objects.filter(pk__in=[first.pk, second.pk])} == {token}
    assert SyncFlow.objects.get(pk=elsewhere.pk).lease_owner == ""
    _lease_release(second.pk, token)
    assert not SyncFlow.objects.exclude(lease_owner="").exists()

    # Of two starting together, the one that finds a lease taken holds none.
    token = _lease_acquire(second.pk)
    assert _ledger_lease_acquire(first) is None
    assert SyncFlow.objects.get(pk=first.pk).lease_owner == ""
    _lease_release(second.pk, token)
    assert run(second).synced_count == 1


def test_reconciliation_finds_entries_under_old_keys_and_other_flows_keys(
    memory_connectors, monkeypatch
):
    import datetime as dt

    from syncs.reconciliation import flow_reconcile

    source, target = memory_connectors
    first = ledger_flow("Acme")
    source.put(*InvoiceFactory.create_batch(2, issue_date=dt.date(2026, 3, 10)))
    write_with_per_flow_keys(monkeypatch, first)
    second = ledger_flow("Other firm")
    run(second)
    for flow in (first, second):
        report = flow_reconcile(flow=flow, start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31))
        assert report.balanced, report.unexplained
    target.entries.pop(legacy_external_id(first.pk, "invoice", next(iter(source.invoices))))
    report = flow_reconcile(flow=second, start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31))
    assert not report.balanced


def test_import_flow_over_an_existing_flow_keeps_its_enabled_state(memory_connectors, tmp_path):
    enabled = ledger_flow("Acme")
    disabled = ledger_flow("Other firm", enabled=False)
    for flow, state in ((enabled, True), (disabled, False)):
        path = tmp_path / f"{flow.pk}.json"
        call_command("export_flow", str(flow.pk), "--output", str(path))
        document = json.loads(path.read_text())
        document["flow"]["enabled"] = not state
        path.write_text(json.dumps(document))
        call_command("import_flow", str(path))
        assert SyncFlow.objects.get(pk=flow.pk).enabled is state
