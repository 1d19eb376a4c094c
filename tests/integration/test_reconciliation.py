"""Reconciliation: every source invoice of the period in exactly one bucket; nothing unexplained
after a run; what is missing is shown."""

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal as D

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import translation

from connectors import roles
from connectors.canonical import InvoiceType
from syncs.models import SyncedRecord
from syncs.reconciliation import flow_reconcile
from syncs.services import flow_sync
from tests.factories import (
    InvoiceFactory,
    InvoiceLineFactory,
    PartnerFactory,
    SyncFlowFactory,
    UserFactory,
)

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


def test_command_json_has_the_totals(synced_flow, capsys):
    flow, _, _ = synced_flow
    call_command(
        "reconcile_flow", str(flow.pk), "--from", "2026-03-01", "--to", "2026-03-31",
        "--format", "json",
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["grand_total"] == {"count": 5, "untaxed": "300.00", "tax": "32.10"}
    failed = next(b for b in report["by_bucket"] if b["bucket"] == "failed")
    assert failed["label"] == "Failed" and failed["count"] == 1
    assert [t["label"] for t in report["by_type"]] == [
        "Sales invoice", "Sales credit note", "Purchase invoice",
    ]  # fmt: skip


def test_admin_page_shows_the_verdict(synced_flow, client):
    flow, _, _ = synced_flow
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("admin:syncs_flow_reconciliation", args=[flow.pk])
    page = client.get(url, {"from": "2026-03-01", "to": "2026-03-31", "run": "1"})
    assert page.status_code == 200
    assert "Nothing unexplained" in page.content.decode()


# -- Totals, exports, links (issue #15 point 7) -------------------------------------------------

PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


def _url(flow) -> str:
    return reverse("admin:syncs_flow_reconciliation", args=[flow.pk])


@pytest.fixture
def french(admin_client):
    response = admin_client.post(reverse("set_language"), {"language": "fr", "next": "/admin/"})
    assert response.status_code == 302
    yield admin_client
    translation.activate("en")


def _csv_rows(response, delimiter: str) -> list[list[str]]:
    body = response.content
    assert body.startswith("\ufeff".encode())  # UTF-8 with BOM: Excel reads the accents
    return list(csv.reader(io.StringIO(body.decode("utf-8")[1:]), delimiter=delimiter))


def test_totals_per_status_per_invoice_type_and_overall(synced_flow):
    flow, _, _ = synced_flow
    report = flow_reconcile(flow=flow, start=MARCH[0], end=MARCH[1])
    by_bucket = report.by_bucket
    # ok1 120 + ok2 110 + refund -120 + buy 120 synced; bad 102.10 failed (2.1 % unmapped).
    assert (by_bucket["synced"].count, by_bucket["synced"].total) == (4, D("230.00"))
    assert (by_bucket["failed"].count, by_bucket["failed"].total) == (1, D("102.10"))
    assert all(by_bucket[b].count == 0 for b in ("waiting", "skipped", "unexplained"))
    by_type = report.by_type
    assert list(by_type) == ["customer_invoice", "customer_refund", "supplier_invoice"]
    assert by_type["customer_invoice"]["source"].count == 3
    assert by_type["customer_invoice"]["failed"].total == D("102.10")
    assert by_type["customer_refund"]["source"].total == D("-120.00")
    assert (report.grand_total.count, report.grand_total.total) == (5, D("332.10"))
    # One line per invoice, its status as people read it.
    failed = next(line for line in report.lines if line.number and line.bucket == "failed")
    assert failed.status_label == "Failed" and failed.type_label == "Sales invoice"


def test_the_page_shows_totals_with_their_currency_and_links_the_failed_records(
    synced_flow, admin_client
):
    flow, _, _ = synced_flow
    page = admin_client.get(_url(flow), {**PERIOD, "run": "1"}).content.decode()
    totals = page[page.index('id="totals-by-status"') :]
    assert "€230.00" in totals and "€102.10" in totals and "€332.10" in totals
    assert "Sales credit note" in page[page.index('id="totals-by-type"') :]
    failed_link = re.search(r'href="([^"]*status__exact=failed[^"]*)"', totals).group(1)
    records = admin_client.get(failed_link.replace("&amp;", "&")).content.decode()
    numbers = {r.source_id: r.number for r in SyncedRecord.objects.filter(flow=flow)}
    assert numbers["bad"] in records and numbers["ok1"] not in records
    assert 'id="export-csv"' in page and 'id="export-xlsx"' in page


def test_the_page_lists_the_invoices_not_synced_with_their_records(synced_flow, admin_client):
    flow, source, _ = synced_flow
    source.put(InvoiceFactory(source_id="late", number="F-LATE"))
    page = admin_client.get(_url(flow), {**PERIOD, "run": "1"}).content.decode()
    listed = page[page.index('id="open-invoices"') :]
    bad = SyncedRecord.objects.get(flow=flow, source_id="bad")
    record_url = reverse("admin:syncs_syncedrecord_change", args=[bad.pk])
    assert f'<a href="{record_url}">{bad.number}</a>' in listed
    assert bad.error_code in listed and "€102.10" in listed
    assert "F-LATE" in listed and "never read by a run" in listed  # no record: no link
    ok = SyncedRecord.objects.get(flow=flow, source_id="ok1")
    assert ok.number not in listed


def test_csv_export_in_english_has_commas_a_decimal_point_iso_dates_and_a_totals_row(
    synced_flow, admin_client
):
    flow, _, _ = synced_flow
    response = admin_client.get(_url(flow), {**PERIOD, "export": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response["Content-Disposition"].endswith('-2026-03-01-2026-03-31.csv"')
    rows = _csv_rows(response, ",")
    assert rows[0] == [
        "Number", "Issue date", "Invoice type", "Partner", "Invoice currency", "Untaxed (EUR)",
        "Tax (EUR)", "Total (EUR)", "Status", "Detail",
    ]  # fmt: skip
    lines = rows[1:-1]
    assert len(lines) == 5
    refund = next(row for row in lines if row[2] == "Sales credit note")
    assert refund[1] == "2026-03-01" and refund[5:8] == ["-100.00", "-20.00", "-120.00"]
    assert refund[8] == "Synced"
    failed = next(row for row in lines if row[8] == "Failed")
    assert failed[7] == "102.10" and failed[9]  # the error code
    assert rows[-1][0] == "Total" and rows[-1][5:8] == ["300.00", "32.10", "332.10"]
    assert rows[-1][9] == "5 invoices"


def test_csv_export_in_french_has_semicolons_and_a_decimal_comma(synced_flow, french):
    flow, _, _ = synced_flow
    response = french.get(_url(flow), {**PERIOD, "export": "csv"})
    rows = _csv_rows(response, ";")
    assert all(len(row) == 10 for row in rows)
    lines = rows[1:-1]
    refund = next(row for row in lines if row[7] == "-120,00")
    # French Excel reads 31/03/2026 as a date and -100,00 as a number.
    assert refund[1] == "01/03/2026" and refund[5:7] == ["-100,00", "-20,00"]
    assert refund[2] == "Avoir de vente" and refund[8] != "Synced"  # the French labels
    assert rows[-1][5:8] == ["300,00", "32,10", "332,10"]
    assert "." not in "".join(cell for row in rows[1:] for cell in row[5:8])


def test_xlsx_export_has_numbers_dates_a_header_and_a_totals_row(synced_flow, admin_client):
    flow, _, _ = synced_flow
    response = admin_client.get(_url(flow), {**PERIOD, "export": "xlsx"})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = workbook.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("Number", "Issue date", "Invoice type")
    lines = rows[1:-1]
    assert len(lines) == 5
    refund = next(row for row in lines if row[2] == "Sales credit note")
    assert refund[1] == dt.datetime(2026, 3, 1)  # a date cell (openpyxl reads it as a datetime)
    assert isinstance(refund[7], float | int) and refund[7] == -120
    total = rows[-1]
    assert total[0] == "Total" and total[7] == pytest.approx(332.10)
    assert sum(row[7] for row in lines) == pytest.approx(total[7])
    totals = workbook.worksheets[1]
    values = [row for row in totals.iter_rows(values_only=True) if row and row[0]]
    failed = next(row for row in values if row[0] == "Failed")
    assert failed[1:] == (1, 100, pytest.approx(2.10), pytest.approx(102.10))
    assert any(row[0] == "Purchase invoice" and row[1] == 1 for row in values)


def test_text_that_looks_like_a_formula_is_exported_as_text(memory_connectors, admin_client):
    source, _ = memory_connectors
    flow = SyncFlowFactory()
    source.put(InvoiceFactory(partner=PartnerFactory(name="=HYPERLINK(1)")))
    flow_sync(flow=flow, trigger="manual")
    rows = _csv_rows(admin_client.get(_url(flow), {**PERIOD, "export": "csv"}), ",")
    assert rows[1][3] == "'=HYPERLINK(1)"
    response = admin_client.get(_url(flow), {**PERIOD, "export": "xlsx"})
    cell = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]["D2"]
    assert (cell.value, cell.data_type) == ("=HYPERLINK(1)", "s")


def test_exports_follow_the_page_s_scoping_and_permissions(synced_flow, client):
    flow, _, _ = synced_flow
    member = UserFactory(roles=[roles.VIEWER], clients=[flow.client])
    client.force_login(member)
    assert client.get(_url(flow), {**PERIOD, "export": "csv"}).status_code == 200
    outsider = UserFactory(roles=[roles.VIEWER])  # a member of no client: not this flow's
    client.force_login(outsider)
    assert client.get(_url(flow), {**PERIOD, "export": "csv"}).status_code == 404
    assert client.get(_url(flow), {**PERIOD, "export": "xlsx"}).status_code == 404
    bare = UserFactory(clients=[flow.client])  # staff without the right to see records
    client.force_login(bare)
    assert client.get(_url(flow), {**PERIOD, "export": "csv"}).status_code == 403


def test_a_bad_period_exports_nothing_and_says_why(synced_flow, admin_client):
    flow, _, _ = synced_flow
    response = admin_client.get(_url(flow), {"from": "31/03/2026", "to": "x", "export": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "Dates are written YYYY-MM-DD." in response.content.decode()


def test_reconciliation_is_linked_from_the_flow_page_the_flows_list_and_the_dashboards(
    synced_flow, admin_client
):
    flow, _, _ = synced_flow
    url = _url(flow)
    for page in (
        reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        reverse("admin:mappings_syncflow_changelist"),
        reverse("admin:syncs_dashboards"),
        reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
        reverse("admin:index"),
    ):
        assert f'href="{url}"' in admin_client.get(page).content.decode(), page
