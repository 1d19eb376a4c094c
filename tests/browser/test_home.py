"""The admin's home page in a browser: an accountant of one client signs in and lands on what needs
attention (failed records by flow and code with what to do, a flow not set up, a run in
progress, each flow's last and next run), follows the review link to the failure review, and
never sees the technical sections nor the other client. In-memory connectors: no Tryton."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from connectors.errors import ErrorCode
from syncs.models import RecordStatus, RunStatus
from tests.browser.pages import follow, sign_in
from tests.factories import (
    ClientFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

TAX = ErrorCode.MAPPING_TAX_RATE_NOT_FOUND.value


def _checked(flow):
    for connection in (flow.invoicing_connection, flow.accounting_connection):
        connection.last_check_ok, connection.last_checked_at = True, timezone.now()
        connection.save()
    return flow


def test_an_accountant_lands_on_what_needs_attention_and_follows_it_to_the_failure_review(
    server, page: Page, artifacts, memory_connectors
):
    atelier, bistro = ClientFactory(name="Atelier Démo"), ClientFactory(name="Bistro")
    sales = _checked(SyncFlowFactory(client=atelier, name="Ventes", start_date=dt.date(2026, 1, 1)))
    _checked(SyncFlowFactory(client=atelier, name="Achats", folder="", enabled=False))
    other = _checked(SyncFlowFactory(client=bistro, name="Bistro ventes"))
    SyncedRecordFactory.create_batch(2, flow=sales)
    SyncedRecordFactory(flow=sales, status=RecordStatus.WAITING, error_code="")
    SyncedRecordFactory.create_batch(4, flow=other)
    SyncRunFactory(flow=sales, status=RunStatus.RUNNING, total=50, processed=20)
    user = UserFactory(
        username="claire",
        email="claire@firm.example",
        roles=["Accountant", "Operator"],
        clients=[atelier],
    )

    sign_in(page, server, user.email)
    expect(page.locator("h1")).to_have_text("What needs attention")
    content = page.locator("#content-main")

    failures = page.locator("#home-failures")
    expect(failures.locator("h2")).to_have_text("2 failed records")
    row = failures.locator(f'tr[data-code="{TAX}"]')
    expect(row).to_contain_text("Atelier Démo · Ventes")
    expect(row).to_contain_text("Add the rate (or the source tax)")
    expect(page.locator("#home-setup")).to_contain_text("Atelier Démo · Achats")
    expect(page.locator("#home-setup")).to_contain_text("Accounting folder chosen")
    expect(page.locator("#home-running")).to_contain_text(
        "Reading invoices from In-memory invoicing (tests)…, 50 read, 20 processed"
    )
    flows = page.locator("#home-flows")
    expect(flows.locator(f'tr[data-flow="{sales.pk}"] td.waiting')).to_have_text("1")
    expect(flows.locator(f'tr[data-flow="{sales.pk}"] td.last-run')).to_contain_text("Running")
    # Not the other client's, and no technical section anywhere (page nor sidebar).
    expect(content).not_to_contain_text("Bistro")
    expect(page.locator("#home-technical")).to_have_count(0)
    expect(page.locator('a[href*="/admin/django_q/"]')).to_have_count(0)
    expect(page.locator('a[href*="/admin/auth/group/"]')).to_have_count(0)
    # The work's sections are still there.
    expect(content.locator("a.addlink[href$='/mappings/syncflow/add/']")).to_have_count(1)
    # Fits a 1400 px screen without sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    artifacts(page, "home-accountant")

    follow(page, row.locator("a.review-link"))
    expect(page.locator("h1")).to_contain_text("Failures of Atelier Démo · Ventes")
    assert page.url.endswith(f"#code-{TAX}"), page.url
    expect(page.locator(f"#code-{TAX} h2")).to_contain_text(f"{TAX} — 2 records")
