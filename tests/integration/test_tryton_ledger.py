"""Idempotency is per ledger, against the live Tryton: however many flows read the sample
invoicing database and write to one accounting company, each invoice ends as exactly one move
there, and moves written under the old per-flow keys are recognised after the upgrade."""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command

from connectors.models import Connection
from mappings.models import SyncFlow
from mappings.services import SHARED_LEDGER, flow_mappings_suggest, flow_update
from syncs.models import RecordStatus, SyncedRecord, legacy_external_id
from syncs.run.state import RunState
from tests.factories import ClientFactory
from tests.integration.test_tryton_sync import (  # noqa: F401 - the autouse fixture registers
    STANDARD_RATES,  # the Tryton connectors
    _rows,
    connectors_registered,
    make_flow,
    run,
)

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]


def moves_per_invoice(db) -> Counter:
    """How many moves invsync wrote in Tryton for each invoice number, and under which keys."""
    rows = _rows(db, "account.move", [("description", "like", "%[invsync:%")], ["description"])
    return Counter(row["description"].split(" [")[0] for row in rows)


def move_keys(db) -> set[str]:
    rows = _rows(db, "account.move", [("description", "like", "%[invsync:%")], ["description"])
    return {row["description"].rsplit("[", 1)[1].rstrip("]") for row in rows}


def assert_each_invoice_once(db, expected: int) -> None:
    moves = moves_per_invoice(db)
    assert len(moves) == expected and set(moves.values()) == {1}, moves


def synced(flow) -> dict[str, SyncedRecord]:
    return {
        r.source_id: r for r in SyncedRecord.objects.filter(flow=flow, status=RecordStatus.SYNCED)
    }


def second_client_flow(invoicing, accounting) -> SyncFlow:
    """Another client's flow, on its own connections to the same databases (the server's address
    written without its trailing slash)."""
    client = ClientFactory(name="Second firm")
    connections = {}
    for kind, db in (("invoicing", invoicing), ("accounting", accounting)):
        settings = {**db.settings, "url": db.settings["url"].rstrip("/")}
        connections[f"{kind}_connection"] = Connection.objects.create(
            client=client, name=kind.title(), kind=kind, provider="tryton",
            auth_kind="credentials", settings=settings, credentials=db.credentials,
        )  # fmt: skip
    flow = SyncFlow.objects.create(client=client, name="Second flow", enabled=True, **connections)
    flow_mappings_suggest(flow=flow, rates=STANDARD_RATES)
    return SyncFlow.objects.get(pk=flow.pk)


def test_an_import_flow_copy_enabled_with_confirmation_writes_each_invoice_once(
    tryton_invoicing, tryton_accounting, tmp_path
):
    # A start date: the setup checklist wants one before a flow is enabled.
    flow = make_flow(tryton_invoicing, tryton_accounting, start_date=dt.date(2000, 1, 1))
    first = run(flow)
    assert_each_invoice_once(tryton_accounting, first.synced_count)

    path = tmp_path / "flow.json"
    call_command("export_flow", str(flow.pk), "--output", str(path))
    call_command("import_flow", str(path), "--name", "Copy")
    copy = SyncFlow.objects.get(client=flow.client, name="Copy")
    assert copy.enabled is False
    Connection.objects.filter(client=flow.client).update(last_check_ok=True)
    with pytest.raises(ValidationError) as refused:
        flow_update(flow=copy, data={"enabled": True})
    assert refused.value.error_dict["enabled"][0].code == SHARED_LEDGER
    flow_update(flow=copy, data={"enabled": True}, shared_ledger_confirmed=[flow.pk])

    again = run(copy)
    assert again.synced_count == first.synced_count
    assert_each_invoice_once(tryton_accounting, first.synced_count)
    originals = synced(flow)
    for source_id, record in synced(copy).items():
        assert record.target_ref == originals[source_id].target_ref
        assert f"(id {flow.pk})" in record.note
    assert run(flow).synced_count == 0  # the original keeps running, finds nothing new
    assert_each_invoice_once(tryton_accounting, first.synced_count)


def test_a_second_clients_flow_on_the_same_databases_writes_each_invoice_once(
    tryton_invoicing, tryton_accounting
):
    flow = make_flow(tryton_invoicing, tryton_accounting)
    first = run(flow)
    other = second_client_flow(tryton_invoicing, tryton_accounting)
    second = run(other)
    assert second.synced_count == first.synced_count
    assert_each_invoice_once(tryton_accounting, first.synced_count)
    originals = synced(flow)
    for source_id, record in synced(other).items():
        assert record.target_ref == originals[source_id].target_ref
        assert "written by the flow" in record.note


def test_moves_under_old_per_flow_keys_are_not_written_again_after_the_upgrade(
    tryton_invoicing, tryton_accounting, monkeypatch
):
    flow = make_flow(tryton_invoicing, tryton_accounting)
    # Before the upgrade: keys per flow.
    with monkeypatch.context() as patch:
        patch.setattr(
            RunState, "key", lambda self, sid: legacy_external_id(self.flow.pk, "invoice", sid)
        )
        first = run(flow)
    written = synced(flow)
    assert move_keys(tryton_accounting) == {
        legacy_external_id(flow.pk, "invoice", source_id) for source_id in written
    }
    # A run that died after writing three of them, before recording it.
    stuck = sorted(written)[:3]
    SyncedRecord.objects.filter(flow=flow, source_id__in=stuck).update(
        status=RecordStatus.PUSHING, target_ref=""
    )
    # The upgrade: a key column, filled by the migration for what was written.
    SyncedRecord.objects.filter(flow=flow).update(entry_key="")
    migration = importlib.import_module("syncs.migrations.0003_record_entry_key_and_note")
    migration.key_written_entries(apps, None)

    after = run(flow)
    assert after.synced_count == 0  # nothing written (crash recovery counts nothing)
    assert_each_invoice_once(tryton_accounting, first.synced_count)
    resolved = synced(flow)
    assert len(resolved) == first.synced_count
    for source_id in stuck:
        assert resolved[source_id].target_ref == written[source_id].target_ref

    # Another flow on the same ledger finds the old moves too.
    other = second_client_flow(tryton_invoicing, tryton_accounting)
    assert run(other).synced_count == first.synced_count
    assert_each_invoice_once(tryton_accounting, first.synced_count)
    for source_id, record in synced(other).items():
        assert record.entry_key == legacy_external_id(flow.pk, "invoice", source_id)
        assert record.target_ref == written[source_id].target_ref
