"""The admin's main pages stay light as the data grows (issue #15 point 9): the flow's form writes
each long option list once (not once per VAT row), and the main pages run as many SQL queries
with thirty rows as with three. The server times themselves are measured by
``bench/run.py --only pages`` (the demo's data), not here."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.canonical import Direction, VatCode
from mappings.models import VatMapping
from syncs.models import RecordStatus
from tests.doubles import FRENCH_VAT_CODES
from tests.factories import (
    InvoiceFactory,
    PartnerFactory,
    PartnerLinkFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
)

pytestmark = pytest.mark.django_db

# A chart with as many VAT codes as a real one (the demo's Tryton has 77), at rates of their own
# (the suggestions still map 20, 10, 5.5 and 0 % each to one code).
MANY_VAT_CODES = FRENCH_VAT_CODES + tuple(
    VatCode(f"{prefix}X{n}", Decimal(f"{n}.7"), f"TVA {label} spéciale {n},7 %", account, direction)
    for prefix, label, account, direction in (
        ("V", "collectée", "44571", Direction.SALES),
        ("A", "déductible", "44566", Direction.PURCHASES),
    )
    for n in range(1, 21)
)


def _flow_with_vat_rows(rows: int):
    flow = SyncFlowFactory(
        start_date=dt.date(2026, 1, 1),
        invoicing_connection__last_check_ok=True,
        accounting_connection__last_check_ok=True,
    )
    for n in range(rows):
        VatMapping.objects.create(
            flow=flow, direction="sales", source_rate=Decimal(100 + n), target_code="V20"
        )
    return flow


def _queries(client, url: str) -> tuple[int, bytes]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries), response.content


def test_the_flow_form_writes_each_vat_code_list_once_not_once_per_row(
    admin_client, memory_connectors
):
    _source, target = memory_connectors
    target.vat_codes = MANY_VAT_CODES
    flow = _flow_with_vat_rows(20)
    html = admin_client.get(reverse("admin:mappings_syncflow_change", args=[flow.pk])).content
    html = html.decode()

    # A code is written once per distinct list (the sales codes; all codes by direction for
    # a blank row), in the page's <template>s, never in a row's select…
    templates = re.findall(r"<template[^>]*>(.*?)</template>", html)
    assert 2 <= len(templates) <= 6
    for code in ("VX7", "VX13", "V10"):
        assert html.count(f'<option value="{code}">') == sum(
            t.count(f'<option value="{code}">') for t in templates
        ), code
        assert html.count(f'<option value="{code}">') <= 2, code
    # …and each row's select names that list and holds its own choice only.
    selects = re.findall(
        r'<select[^>]*name="vat_mappings-\d+-target_code"[^>]*>(.*?)</select>', html
    )
    assert len(selects) >= 20
    row = re.search(r'<select[^>]*name="vat_mappings-3-target_code"[^>]*>', html).group(0)
    assert 'data-options="' in row
    assert re.search(
        r'name="vat_mappings-3-target_code"[^>]*><option value="V20" selected>', html
    ), "the row's saved code is in its select"
    assert "invsync/shared_options.js" in html


def test_the_flow_form_is_far_smaller_than_its_rows_times_its_options(
    admin_client, memory_connectors
):
    _source, target = memory_connectors
    target.vat_codes = MANY_VAT_CODES
    few = admin_client.get(
        reverse("admin:mappings_syncflow_change", args=[_flow_with_vat_rows(2).pk])
    )
    many = admin_client.get(
        reverse("admin:mappings_syncflow_change", args=[_flow_with_vat_rows(30).pk])
    )
    # 28 rows more: about 2.5 KB each (their fields), not their 2 × 25 options (~6 KB each).
    per_row = (len(many.content) - len(few.content)) / 28
    assert per_row < 3500, per_row


def _grow(flow, runs: int, records: int) -> None:
    for _ in range(runs):
        SyncRunFactory(flow=flow, status="succeeded", total=3, processed=3, synced_count=2,
                       failed_count=1)  # fmt: skip
    SyncedRecordFactory.create_batch(records, flow=flow)
    SyncedRecordFactory.create_batch(records, flow=flow, status=RecordStatus.SYNCED, error_code="",
                                     error_message="")  # fmt: skip


PAGES = {
    "home": lambda flow: reverse("admin:index"),
    "flows list": lambda flow: reverse("admin:mappings_syncflow_changelist"),
    "flow form": lambda flow: reverse("admin:mappings_syncflow_change", args=[flow.pk]),
    "runs list": lambda flow: reverse("admin:syncs_syncrun_changelist"),
    "records list": lambda flow: reverse("admin:syncs_syncedrecord_changelist"),
    "failure review": lambda flow: reverse("admin:syncs_flow_failures", args=[flow.pk]),
    "reconciliation": lambda flow: reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
    "connections list": lambda flow: reverse("admin:connectors_connection_changelist"),
    "configuration changes": lambda flow: reverse("admin:mappings_configchange_changelist"),
}


@pytest.mark.parametrize("page", PAGES)
def test_a_main_page_runs_as_many_queries_with_thirty_rows_as_with_three(
    admin_client, memory_connectors, page
):
    flow = _flow_with_vat_rows(3)
    _grow(flow, runs=3, records=3)
    SyncFlowFactory(client=flow.client, name="Second flow")
    url = PAGES[page](flow)
    admin_client.get(url)  # warm: lookups cached, session written
    small, _ = _queries(admin_client, url)

    _grow(flow, runs=27, records=27)
    for n in range(27):
        VatMapping.objects.create(
            flow=flow, direction="purchases", source_rate=Decimal(200 + n), target_code="A20"
        )
        SyncFlowFactory(client=flow.client, name=f"Extra flow {n}")
    large, _ = _queries(admin_client, url)
    assert large == small, f"{page}: {small} queries with 3 rows, {large} with 30"


def test_the_flow_preview_reads_the_partner_links_of_its_invoices_at_once(
    admin_client, memory_connectors
):
    source, _target = memory_connectors
    flow = _flow_with_vat_rows(0)
    url = reverse("admin:mappings_syncflow_preview", args=[flow.pk])

    def invoices(first: int, count: int) -> None:
        for n in range(first, first + count):
            partner = PartnerFactory(source_id=f"c-{n}", name=f"Client {n} SARL")
            source.put(InvoiceFactory(partner=partner))
            PartnerLinkFactory(flow=flow, source_partner_id=f"c-{n}", target_partner_id=f"t-{n}")

    invoices(0, 2)
    admin_client.get(url)
    small, _ = _queries(admin_client, url)
    invoices(2, 8)  # the preview's ten invoices, each with its partner's link
    large, html = _queries(admin_client, url)
    assert html.count(b"t-9") or html.count(b"t-2")
    assert large == small, f"{small} queries for 2 invoices, {large} for 10"
