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

Screenshots: var/browser-artifacts/setup-*.png.

The same guide in English and in French (switched with the header's switch), on the in-memory
tools (no Tryton), each step at 1024 and 1400 px, ending on the flow's form, whose long selects
are filled from the page's shared option lists (mappings/admin_widgets.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext
from playwright.sync_api import Page, expect

from connectors.canonical import InvoiceType
from mappings.models import SyncFlow
from tests.browser.pages import choose, follow, sign_in, switch_language
from tests.browser.test_page_widths import SCROLL_WIDTH
from tests.factories import ClientFactory, ConnectionFactory, InvoiceFactory, UserFactory
from tests.integration.test_i18n import english_left
from tests.integration.test_page_weight import MANY_VAT_CODES
from tests.integration.test_tryton_sync import tryton_moves

pytestmark = [pytest.mark.browser]

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


@pytest.mark.tryton
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


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_guide_reads_in_each_language_and_fits_1024_and_1400_px(
    server, page: Page, artifacts, memory_connectors, language
):
    source, target = memory_connectors
    target.vat_codes = MANY_VAT_CODES
    source.put(
        InvoiceFactory(), InvoiceFactory(), InvoiceFactory(type=InvoiceType.SUPPLIER_INVOICE)
    )
    atelier = ClientFactory(name="Atelier Démo")
    for kind, name in (("invoicing", "Factures"), ("accounting", "Comptabilité")):
        ConnectionFactory(client=atelier, kind=kind, name=name, last_check_ok=True,
                          last_checked_at=timezone.now())  # fmt: skip
    user = UserFactory(username="claire", email="claire@firm.example",
                       roles=["Accountant", "Operator"], clients=[atelier])  # fmt: skip
    sign_in(page, server, user.email)
    if language != "en":
        switch_language(page, language)

    def english_on_the_page(step: str) -> None:
        if language != "en":
            left = english_left(page.locator("#content-main").inner_html())
            assert not left, f"English left on the {step} step in {language}: {left}"

    follow(page, page.locator("#home-setup-link a"))
    choose(page.locator("#id_client"), "Atelier Démo")
    for step in ("client", "invoicing", "accounting"):
        expect(page.locator("#content-main")).to_have_attribute("data-step", step)
        english_on_the_page(step)
        next_step(page)
    expect(page.locator("#content-main")).to_have_attribute("data-step", "folder")
    page.locator("#id_name").fill("Ventes")
    page.locator("#id_start_date").fill("2026-01-01")
    english_on_the_page("folder")
    next_step(page)
    for step in ("mappings", "checklist", "preview"):
        expect(page.locator("#content-main")).to_have_attribute("data-step", step)
        english_on_the_page(step)
        next_step(page)
    expect(page.locator("#content-main")).to_have_attribute("data-step", "enable")
    english_on_the_page("enable")
    fits(page)
    artifacts(page, f"setup-memory-{language}-enable")
    page.locator("#id_confirm").check()
    follow(page, page.locator("#setup-next"))

    # The flow's form: every VAT row's select offers the whole list, its own code chosen.
    with translation.override(language):
        expect(page.locator("ul.messagelist")).to_contain_text(
            gettext("The flow “%(flow)s” is enabled.") % {"flow": "Atelier Démo · Ventes"}
        )
    rows = page.locator('#vat_mappings-group tr.has_original select[name$="-target_code"]')
    assert rows.count() >= 1
    first = rows.first
    assert first.get_attribute("data-options"), "a shared-options select"
    assert first.locator("option").count() > 12
    chosen = first.locator("option:checked")
    expect(chosen).to_have_count(1)
    assert chosen.get_attribute("value")
    flow = SyncFlow.objects.get(name="Ventes")
    saved = flow.vat_mappings.order_by("pk").values_list("target_code", flat=True)
    assert chosen.get_attribute("value") in set(saved)
    # "Add another" gives a row whose selects are filled too.
    page.locator("#vat_mappings-group .add-row a").click()
    added = page.locator('#vat_mappings-group tr.dynamic-vat_mappings select[name$="-target_code"]')
    expect(added.last.locator("option")).not_to_have_count(0)
    assert added.last.locator("option").count() > 12
    assert flow.enabled
