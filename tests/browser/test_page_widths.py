"""Every key admin page fits the screen: at 1024 and 1400 px wide the page never scrolls
sideways, with realistic data (a flow with all its mappings, lists of 30 rows, a failed record
with a long message). One browser, one sign-in, many pages; the in-memory tools, no Tryton."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from connectors.models import Connection
from mappings.models import JournalMapping, SyncFlow
from syncs.models import RecordStatus, SyncedRecord, SyncRun
from syncs.services import flow_sync
from tests.browser.pages import sign_in
from tests.doubles import MemorySource
from tests.factories import (
    ClientFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PartnerFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser]

WIDTHS = (1024, 1400)

LONG_MESSAGE = (
    "The accounting tool refused the entry: "
    + "account 44571000 is locked for the period 2026-03 because the VAT return was filed; " * 4
    + "see https://accounting.example/companies/12345/periods/2026-03/locks?reason=vat-return"
    "&requested_by=invsync-flow-atelier-demo-ventes-et-achats-france for the lock."
)


def realistic_data() -> dict[str, str]:
    """A client with a fully mapped flow that has run (30 invoices, some failing), a second
    flow per row of the flows list, 30 runs, and a failed record with a long message. The
    admin URLs of the pages to measure, by name."""
    client = ClientFactory(name="Atelier Démo — Conseil et Ingénierie des Systèmes d'Information")
    flow = SyncFlowFactory(
        client=client,
        name="Ventes et achats France (Tryton → comptabilité générale)",
        accounting_connection__kind="accounting",
        accounting_connection__name="Comptabilité générale du cabinet (dossier principal)",
        invoicing_connection__name="Facturation Atelier Démo (production)",
        start_date=dt.date(2026, 1, 1),
        journals_by_source=True,
        vat=[
            ("sales", "20.0", "V20"), ("sales", "10.0", "V10"), ("sales", "5.5", "V55"),
            ("sales", "0", "V0"), ("purchases", "20.0", "A20"), ("purchases", "10.0", "A10"),
            ("purchases", "5.5", "A55"), ("purchases", "0", "A0"),
        ],
    )  # fmt: skip
    JournalMapping.objects.create(flow=flow, source_journal="VT", target_journal="REV")
    JournalMapping.objects.create(flow=flow, source_journal="HA", target_journal="EXP")
    source = Connection.objects.get(pk=flow.invoicing_connection_id)
    MemorySource.put(
        *[
            InvoiceFactory(
                journal_code="VT",
                partner=PartnerFactory(
                    name=f"Société Générale d'Équipements Industriels et Commerciaux n° {n}"
                ),
                lines=(InvoiceLineFactory(tax_rate=D("2.1") if n % 5 == 0 else D("20.0")),),
            )
            for n in range(30)
        ]
    )
    flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    # A failed record of the run (with its snapshot), its message long and full of a URL.
    long_failure = SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).first()
    long_failure.error_code = "ERROR_SYNC_INVOICE_TARGET_REJECTED"
    long_failure.error_message = LONG_MESSAGE
    long_failure.partner_name = (
        "Société Générale d'Équipements Industriels et Commerciaux du Grand Ouest"
    )
    long_failure.save()
    for n in range(30):
        SyncRunFactory(
            flow=flow, status="succeeded" if n % 3 else "failed", total=30, processed=30,
            synced_count=24, failed_count=6, error_message=LONG_MESSAGE if n == 0 else "",
        )  # fmt: skip
    for n in range(6):
        SyncFlowFactory(client=client, name=f"Flux de refacturation intra-groupe n° {n}")
    runs = SyncRun.objects.filter(flow=flow)
    assert SyncedRecord.objects.filter(flow=flow).count() >= 30
    return {
        "home": reverse("admin:index"),
        "flows list": reverse("admin:mappings_syncflow_changelist"),
        "flow form": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        "flow preview": reverse("admin:mappings_syncflow_preview", args=[flow.pk]),
        "records list": reverse("admin:syncs_syncedrecord_changelist"),
        "failed record": reverse("admin:syncs_syncedrecord_change", args=[long_failure.pk]),
        "record preview": reverse("admin:syncs_syncedrecord_preview", args=[long_failure.pk]),
        "failure review": reverse("admin:syncs_flow_failures", args=[flow.pk]),
        "runs list": reverse("admin:syncs_syncrun_changelist"),
        "run": reverse("admin:syncs_syncrun_change", args=[runs.first().pk]),
        "dashboards": reverse("admin:syncs_dashboards"),
        "flow dashboard": reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
        "reconciliation": reverse("admin:syncs_flow_reconciliation", args=[flow.pk])
        + "?from=2026-01-01&to=2026-12-31&run=1",
        "connection form": reverse("admin:connectors_connection_change", args=[source.pk]),
        "configuration changes": reverse("admin:mappings_configchange_changelist"),
    }


SCROLL_WIDTH = """() => ({
    page: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    widest: [...document.querySelectorAll('#content *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 3)
        .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
             + (typeof e.className === 'string' && e.className
                ? '.' + e.className.split(' ')[0] : '')
             + ' ' + Math.round(e.getBoundingClientRect().right) + 'px'),
})"""


def test_key_admin_pages_never_scroll_sideways_at_1024_and_1400_px(
    server, page: Page, memory_connectors, artifacts
):
    pages = realistic_data()
    UserFactory(username="claire", email="claire@firm.example", is_superuser=True)
    sign_in(page, server, "claire@firm.example")
    too_wide = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in pages.items():
            response = page.goto(f"{server}{url}")
            assert response is not None and response.ok, (name, url, response and response.status)
            # Folded sections count too: a person opens them.
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            measured = page.evaluate(SCROLL_WIDTH)
            if name in ("flow form", "failed record"):
                artifacts(page, f"width-{width}-{name}")
            if name == "records list":
                # The list chooses its columns: the attempts and last change only where wide.
                attempts = page.locator("#result_list th.column-attempts")
                assert attempts.is_visible() is (width >= 1280), width
            if measured["page"] > measured["viewport"]:
                too_wide[f"{name} at {width} px"] = (measured["page"], measured["widest"])
    if too_wide:
        pytest.fail(
            "Pages wider than the window (page width, elements past the right edge):\n"
            + "\n".join(
                f"{name}: {width} px, {widest}" for name, (width, widest) in too_wide.items()
            )
        )
