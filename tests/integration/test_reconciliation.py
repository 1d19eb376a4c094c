"""Reconciliation: every source invoice of the period in exactly one bucket; nothing unexplained
after a run; what is missing is shown."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from connectors.canonical import InvoiceType
from syncs.models import SyncedRecord
from syncs.reconciliation import flow_reconcile
from syncs.services import flow_sync
from tests.factories import InvoiceFactory, InvoiceLineFactory, SyncFlowFactory, UserFactory

pytestmark = pytest.mark.django_db
MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


@pytest.fixture
def synced_flow(memory_connectors):
    source, target = memory_connectors
    flow = SyncFlowFactory()
    source.put(
        InvoiceFactory(source_id="ok1"),
        InvoiceFactory(source_id="ok2", lines=(InvoiceLineFactory(tax_rate=D("10.0")),)),
        InvoiceFactory(source_id="refund", type=InvoiceType.CUSTOMER_REFUND),
        InvoiceFactory(source_id="buy", type=InvoiceType.SUPPLIER_INVOICE),
        InvoiceFactory(source_id="bad", lines=(InvoiceLineFactory(tax_rate=D("2.1")),)),
        InvoiceFactory(source_id="april", issue_date=dt.date(2026, 4, 2)),
    )
    flow_sync(flow=flow, trigger="manual")
    return flow, source, target


def test_after_a_run_nothing_is_unexplained(synced_flow):
    flow, _, _ = synced_flow
    report = flow_reconcile(flow=flow, start=MARCH[0], end=MARCH[1])
    assert report.balanced
    rows = {(r["direction"], r["rate"]): r for r in report.as_dict()["rows"]}
    sales20 = rows[("sales", "20")]
    # One invoice of 100 + 20 and one credit note of -100 - 20; 10 % has its own row.
    assert sales20["source"] == {"count": 2, "untaxed": "0.00", "tax": "0.00"}
    assert sales20["synced"]["count"] == 2
    assert rows[("sales", "10")]["source"] == {"count": 1, "untaxed": "100.00", "tax": "10.00"}
    assert rows[("sales", "2.1")]["failed"]["count"] == 1
    assert rows[("purchases", "20")]["synced"]["count"] == 1
    assert all(r["difference"]["count"] == 0 for r in rows.values())
    assert sum(r["source"]["count"] for r in rows.values()) == 5  # april is outside the period


def test_an_invoice_never_read_is_unexplained(synced_flow):
    flow, source, _ = synced_flow
    source.put(InvoiceFactory(source_id="late", number="F-LATE"))
    report = flow_reconcile(flow=flow, start=MARCH[0], end=MARCH[1])
    assert not report.balanced and report.unexplained == ["F-LATE: never read by a run"]


def test_an_entry_missing_in_accounting_is_unexplained(synced_flow):
    flow, _, target = synced_flow
    record = SyncedRecord.objects.get(flow=flow, source_id="ok1")
    target.entries.pop(record.external_id)
    report = flow_reconcile(flow=flow, start=MARCH[0], end=MARCH[1])
    assert not report.balanced
    assert "not in the accounting tool" in report.unexplained[0]


def test_command_prints_the_table_and_fails_on_unexplained(synced_flow, capsys):
    flow, source, _ = synced_flow
    call_command("reconcile_flow", str(flow.pk), "--from", "2026-03-01", "--to", "2026-03-31")
    assert "nothing unexplained" in capsys.readouterr().out
    source.put(InvoiceFactory(source_id="late"))
    with pytest.raises(CommandError):
        call_command("reconcile_flow", str(flow.pk), "--from", "2026-03-01", "--to", "2026-03-31")


def test_admin_page_shows_the_verdict(synced_flow, client):
    flow, _, _ = synced_flow
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("admin:syncs_flow_reconciliation", args=[flow.pk])
    page = client.get(url, {"from": "2026-03-01", "to": "2026-03-31", "run": "1"})
    assert page.status_code == 200
    assert "Nothing unexplained" in page.content.decode()
