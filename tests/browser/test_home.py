"""The admin's home page in a browser: an accountant of one client signs in and lands on what needs
attention (failed records by flow and code with what to do, a flow not set up, a run in
progress, each flow's last and next run), follows the review link to the failure review, and
never sees the technical sections nor the other client; in English and in French (switched with the
header's language switch, as a person does), at 1024 and 1400 px wide. In-memory connectors: no
Tryton."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext
from playwright.sync_api import Page, expect

from connectors.errors import ErrorCode
from syncs.models import RecordStatus, RunStatus
from tests.browser.pages import follow, sign_in, switch_language
from tests.browser.test_page_widths import SCROLL_WIDTH, WIDTHS
from tests.factories import (
    ClientFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.integration.test_i18n import english_left

pytestmark = pytest.mark.browser

TAX = ErrorCode.MAPPING_TAX_RATE_NOT_FOUND.value


def _checked(flow):
    for connection in (flow.invoicing_connection, flow.accounting_connection):
        connection.last_check_ok, connection.last_checked_at = True, timezone.now()
        connection.save()
    return flow


def fits_both_widths(page: Page) -> None:
    """The page does not scroll sideways at 1024 nor 1400 px; the window is left at 1400 px."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        measured = page.evaluate(SCROLL_WIDTH)
        assert measured["page"] <= measured["viewport"], (width, measured)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_an_accountant_lands_on_what_needs_attention_and_follows_it_to_the_failure_review(
    server, page: Page, artifacts, memory_connectors, language
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
    if language != "en":
        switch_language(page, language)
    with translation.override(language):
        heading = gettext("What needs attention")
        failed = ngettext("%(counter)s failed record", "%(counter)s failed records", 2)
    expect(page.locator("h1")).to_have_text(heading)
    content = page.locator("#content-main")

    failures = page.locator("#home-failures")
    expect(failures.locator("h2")).to_have_text(failed % {"counter": 2})
    row = failures.locator(f'tr[data-code="{TAX}"]')
    expect(row).to_contain_text("Atelier Démo · Ventes")
    expect(page.locator("#home-setup")).to_contain_text("Atelier Démo · Achats")
    flows = page.locator("#home-flows")
    expect(flows.locator(f'tr[data-flow="{sales.pk}"] td.waiting')).to_have_text("1")
    if language == "en":
        expect(row).to_contain_text("Add the rate (or the source tax)")
        expect(page.locator("#home-setup")).to_contain_text("Accounting folder chosen")
        expect(page.locator("#home-running")).to_contain_text(
            "Reading invoices from In-memory invoicing (tests)…, 50 read, 20 processed"
        )
        expect(flows.locator(f'tr[data-flow="{sales.pk}"] td.last-run')).to_contain_text("Running")
    else:
        expect(page.locator("html")).to_have_attribute("lang", language)
        left = english_left(content.inner_html())
        assert not left, f"English left on the home page in {language}: {left}"
    # Not the other client's, and no technical section anywhere (page nor sidebar).
    expect(content).not_to_contain_text("Bistro")
    expect(page.locator("#home-technical")).to_have_count(0)
    expect(page.locator('a[href*="/admin/django_q/"]')).to_have_count(0)
    expect(page.locator('a[href*="/admin/auth/group/"]')).to_have_count(0)
    # The work's sections are still there.
    expect(content.locator("a.addlink[href$='/mappings/syncflow/add/']")).to_have_count(1)
    # Fits a 1024 and a 1400 px screen without sideways scrolling.
    fits_both_widths(page)
    artifacts(page, f"home-accountant-{language}")

    follow(page, row.locator("a.review-link"))
    assert page.url.endswith(f"#code-{TAX}"), page.url
    expect(page.locator(f"#code-{TAX} h2")).to_contain_text(TAX)
    if language == "en":
        expect(page.locator("h1")).to_contain_text("Failures of Atelier Démo · Ventes")
        expect(page.locator(f"#code-{TAX} h2")).to_contain_text(f"{TAX} — 2 records")
    else:
        expect(page.locator("h1")).to_contain_text("Atelier Démo · Ventes")
        left = english_left(page.locator("#content-main").inner_html())
        assert not left, f"English left on the failure review in {language}: {left}"
    fits_both_widths(page)
