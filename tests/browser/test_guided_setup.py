"""The guided set-up in a real browser, against the live Tryton sandbox of the accountant's
journey (tests/browser/test_accountant_journey.py, same fixtures): from the home page's "Set up a
new flow" to an enabled flow, with the mappings pre-filled from the accounting tool and the
confirmation counting the invoices the first run will post. Nothing is written to Tryton.

The demo's set-up (Tryton → Tryton, both connections there) takes here 3 fields filled (client,
flow name, start date), the confirmation ticked, and 9 clicks (the link, seven Next, Enable),
against 15 fields and 11 clicks, five of them saves, on the flow form (the journey up to its
preview: add, 4 connection/name/client fields, save; folder, save; 8 accounts and journals and the
start date, save; propose VAT, remove two rows, save; back to the flow, enabled, save; preview —
9 clicks without the two removals the journey makes on purpose).

Screenshots: var/browser-artifacts/setup-*.png."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Page, expect

from mappings.models import SyncFlow
from tests.browser.pages import choose, follow, sign_in
from tests.browser.test_page_widths import SCROLL_WIDTH
from tests.integration.test_tryton_sync import tryton_moves

pytestmark = [pytest.mark.browser, pytest.mark.tryton]

FLOW_NAME = "Guided Tryton to Tryton"


def fits(page: Page) -> None:
    """The step's page does not scroll sideways at 1024 nor 1400 px."""
    for width in (1024, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        measured = page.evaluate(SCROLL_WIDTH)
        assert measured["page"] <= measured["viewport"], (width, measured)


def next_step(page: Page) -> None:
    fits(page)
    follow(page, page.locator("#setup-next"))


def test_an_accountant_sets_up_an_enabled_flow_through_the_guide(
    server, page: Page, artifacts, accountant, tryton_invoicing, tryton_accounting
):
    manifest = tryton_invoicing.manifest
    first_date = min(
        dt.date.fromisoformat(i["invoice_date"]) for i in manifest["invoices"] if i["invoice_date"]
    )
    clicks = 0
    sign_in(page, server, accountant.email)

    follow(page, page.locator("#home-setup-link a"))
    clicks += 1
    expect(page.locator("#content-main")).to_have_attribute("data-step", "client")
    choose(page.locator("#id_client"), "Atelier Démo")
    next_step(page)
    clicks += 1

    # Each connection step offers the client's only connection of its kind, chosen already.
    expect(page.locator("#content-main")).to_have_attribute("data-step", "invoicing")
    expect(page.get_by_label("Atelier Démo · Tryton invoicing")).to_be_checked()
    next_step(page)
    expect(page.locator("#content-main")).to_have_attribute("data-step", "accounting")
    expect(page.get_by_label("Atelier Démo · Tryton accounting")).to_be_checked()
    # Back keeps what was chosen.
    follow(page, page.locator("#setup-back"))
    expect(page.get_by_label("Atelier Démo · Tryton invoicing")).to_be_checked()
    next_step(page)
    next_step(page)
    clicks += 2  # the Next of each connection step (not the Back and Next just tried)

    # The folder, read live from Tryton.
    expect(page.locator("#content-main")).to_have_attribute("data-step", "folder")
    expect(page.get_by_label("Atelier Démo SAS")).to_be_checked()  # the only folder
    page.locator("#id_name").fill(FLOW_NAME)
    page.locator("#id_start_date").fill(first_date.replace(month=1, day=1).isoformat())
    artifacts(page, "setup-01-folder")
    next_step(page)
    clicks += 1

    # Pre-filled from Tryton's chart, journals and taxes.
    expect(page.locator("#content-main")).to_have_attribute("data-step", "mappings")
    settings = page.locator("#setup-settings")
    expect(settings).to_contain_text("4111")
    expect(settings).to_contain_text("REV")
    expect(page.locator("#setup-vat tbody tr").first).to_be_visible()
    artifacts(page, "setup-02-mappings")
    flow = SyncFlow.objects.get(name=FLOW_NAME)
    assert not flow.enabled and flow.vat_mappings.count() > 8
    next_step(page)
    clicks += 1

    expect(page.locator("#content-main")).to_have_attribute("data-step", "checklist")
    expect(page.locator('#setup-checklist li[data-state="missing"]')).to_have_count(0)
    next_step(page)
    clicks += 1

    expect(page.locator("#content-main")).to_have_attribute("data-step", "preview")
    expect(page.locator("#setup-preview")).to_contain_text("Entry balanced")
    artifacts(page, "setup-03-preview")
    next_step(page)
    clicks += 1

    expect(page.locator("#content-main")).to_have_attribute("data-step", "enable")
    expect(page.locator("#setup-count")).to_contain_text(re.compile(r"The first run will post \d+"))
    expect(page.locator("#setup-others")).to_have_count(0)
    artifacts(page, "setup-04-enable")
    fits(page)
    page.locator("#id_confirm").check()
    follow(page, page.locator("#setup-next"))
    clicks += 1
    expect(page.locator("ul.messagelist")).to_contain_text(f"“Atelier Démo · {FLOW_NAME}”")
    expect(page.locator("#id_enabled")).to_be_checked()
    flow.refresh_from_db()
    assert flow.enabled
    assert clicks == 9
    assert tryton_moves(tryton_accounting) == {}
