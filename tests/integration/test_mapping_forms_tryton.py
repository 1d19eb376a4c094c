"""The flow's admin page against a live Tryton: the selects list Tryton's chart by kind with names,
VAT proposals cover the sample invoicing database's rates, and the preview of the next invoices
gives balanced entries (and the manifest's expected outcomes) while writing nothing to Tryton."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from connectors.canonical import Direction
from connectors.selectors import connector_for
from mappings.accounts import ACCOUNT_FIELD_KINDS, account_fits
from mappings.checklist import VatRow, vat_rate_covered
from mappings.lookups import flow_cached_lookups
from syncs.models import SyncedRecord
from syncs.preview import flow_preview
from tests.integration.test_mapping_forms import choices, page_messages
from tests.integration.test_tryton_sync import make_flow, tryton_moves

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]


@pytest.fixture
def flow(tryton_invoicing, tryton_accounting):
    """A flow from the sample invoicing database to a fresh French-chart accounting database,
    configured by the suggestions (20, 10, 5.5 and 0 % mapped)."""
    return make_flow(tryton_invoicing, tryton_accounting)


def change_url(flow) -> str:
    return reverse("admin:mappings_syncflow_change", args=[flow.pk])


def test_the_flow_page_lists_trytons_accounts_of_each_kind_with_their_names(admin_client, flow):
    response = admin_client.get(change_url(flow))
    assert response.status_code == 200
    assert not [m for m in page_messages(response) if "could not be read" in m]
    form = response.context["adminform"].form

    target = connector_for(flow.accounting_connection)
    try:
        chart = target.list_accounts(flow.folder)
        folders = target.list_folders()
    finally:
        target.close()
    for name in ACCOUNT_FIELD_KINDS:
        expected = {
            a.number: f"{a.number} – {a.name}" for a in chart if a.active and account_fits(a, name)
        }
        offered = choices(form, name)
        assert expected, name
        assert all(label.split(" – ", 1)[1] for label in expected.values()), name
        # Every active account of the kind, and beyond them only the stored value if the
        # chart does not offer it.
        assert expected.items() <= offered.items(), name
        assert set(offered) - set(expected) <= {getattr(flow, name)}, name
    collectives = choices(form, "customer_collective_account")
    assert collectives["4111"].startswith("4111 – ")
    assert all(number.startswith("41") for number in collectives)  # Tryton's receivable ones
    assert "44571" not in collectives and "4011" not in collectives
    assert "758" in choices(form, "rounding_credit_account")  # typed neither revenue nor expense
    assert set(choices(form, "folder")) == {f.id for f in folders}


def test_vat_proposals_cover_every_rate_of_the_sample_invoicing_database(admin_client, flow):
    flow.vat_mappings.all().delete()
    response = admin_client.get(change_url(flow) + "?propose_vat=1")
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    proposed = [form.initial for form in formset.forms if form.instance.pk is None]
    assert proposed

    source = connector_for(flow.invoicing_connection)
    try:
        source_rates = source.list_tax_rates()
    finally:
        source.close()
    rows = [
        VatRow(p["direction"], p["source_rate"], p["source_tax_id"], p["target_code"])
        for p in proposed
    ]
    uncovered = [s for s in source_rates if s.rate is not None and not vat_rate_covered(s, rows)]
    assert uncovered == []

    # Where a code is pre-selected, it has the source's rate and the row's direction.
    vat_codes = {v.code: v for v in flow_cached_lookups(flow).vat_codes}
    for row in rows:
        if row.code:
            code = vat_codes[row.code]
            assert code.rate == row.rate, row
            assert code.direction in (None, Direction(row.direction)), row
    # The everyday French rates get a code both ways.
    for direction in ("sales", "purchases"):
        for rate in ("20", "10", "5.5"):
            picked = [r for r in rows if r.direction == direction and r.rate == Decimal(rate)]
            assert picked and all(r.code for r in picked), (direction, rate)


def test_preview_of_the_next_invoices_shows_balanced_entries_and_writes_nothing(
    admin_client, flow, tryton_accounting, tryton_invoicing
):
    response = admin_client.get(reverse("admin:mappings_syncflow_preview", args=[flow.pk]))
    assert response.status_code == 200
    preview = response.context["preview"]
    assert len(preview.items) == 10 and preview.more
    entries = [item for item in preview.items if item.result["status"] == "ok"]
    assert entries
    for item in entries:
        lines = item.result["entry"]["lines"]
        assert item.balanced, item.number
        assert sum(Decimal(line["debit"]) for line in lines) == item.total_debit
        assert sum(Decimal(line["credit"]) for line in lines) == item.total_credit
    html = response.content.decode()
    assert html.count("Total — balanced") == len(entries)

    # Beyond the page's ten: every invoice of the sample ends as its manifest expects.
    everything = flow_preview(flow, lookups=flow_cached_lookups(flow), limit=100)
    by_number = {item.number: item for item in everything.items}
    for invoice in tryton_invoicing.manifest["invoices"]:
        if not invoice["number"]:
            continue  # drafts are never listed
        item = by_number[invoice["number"]]
        expected = {"sync": "ok", "fail": "error", "skip": "skipped"}[invoice["expect"]]
        assert item.result["status"] == expected, (invoice["number"], item.result)
        if expected == "ok":
            assert item.balanced, invoice["number"]
        if expected == "error":
            assert item.result["code"] == invoice["expected_error"]

    assert tryton_moves(tryton_accounting) == {}
    assert not SyncedRecord.objects.filter(flow=flow).exists()
