"""The accountant's journey in a real browser, against the live Tryton.

An accountant who also operates (groups Accountant and Operator), member of a client whose two
Tryton connections exist, signs in with email and password, creates a flow choosing everything
from the selects the accounting tool fills, takes the VAT proposals but leaves the sales 2.1 %
rate unmapped (nothing is missing; the sales VAT step is to check, not done), enables the flow,
previews the entries, syncs, finds the one failed invoice
(ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND) with what to do, follows the link to the VAT
mappings, maps 2.1 %, retries, and sees the invoice synced, in the admin and in Tryton.

Screenshots of the main pages go to var/browser-artifacts/journey-*.png.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Page, expect

from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from tests.browser.pages import (
    choose,
    follow,
    save_and_continue,
    sign_in,
    step,
    vat_proposal,
    vat_rows,
)
from tests.integration.test_tryton_sync import tryton_moves

pytestmark = [pytest.mark.browser, pytest.mark.tryton]

TAX_RATE_NOT_FOUND = "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
FLOW_NAME = "Tryton to Tryton"
# "Sync now" runs the whole first sync (37 sample invoices into Tryton, about 10 s here) inside
# the request: the one step allowed more than the default 30 s.
SYNC_TIMEOUT_MS = 90_000

DONE = re.compile(r"\bdone\b")
TO_CHECK = re.compile(r"\bto_check\b")
MISSING = re.compile(r"\bmissing\b")


def test_accountant_sets_up_a_flow_syncs_fixes_the_unmapped_rate_and_retries(
    server, page: Page, artifacts, accountant, tryton_invoicing, tryton_accounting
):
    manifest = tryton_invoicing.manifest
    failing = next(i for i in manifest["invoices"] if i["expect"] == "fail")
    assert failing["expected_error"] == TAX_RATE_NOT_FOUND
    first_date = min(
        dt.date.fromisoformat(i["invoice_date"]) for i in manifest["invoices"] if i["invoice_date"]
    )
    messages = page.locator("ul.messagelist")

    # -- Sign in with email and password ---------------------------------------------------------
    page.goto(f"{server}/accounts/login/")
    artifacts(page, "journey-01-sign-in")
    sign_in(page, server, accountant.email)
    expect(page.locator("#user-tools")).to_contain_text("claire")
    expect(page.locator("#content")).to_contain_text("Sync flows")

    # -- Create the flow: client, name and connections first -------------------------------------
    follow(page, page.locator("#content-main a.addlink[href$='/mappings/syncflow/add/']"))
    expect(page.locator("h1")).to_contain_text("Add sync flow")
    choose(page.locator("#id_client"), "Atelier Démo")
    page.locator("#id_name").fill(FLOW_NAME)
    choose(page.locator("#id_invoicing_connection"), "Atelier Démo · Tryton invoicing")
    choose(page.locator("#id_accounting_connection"), "Atelier Démo · Tryton accounting")
    save_and_continue(page)
    expect(messages).to_contain_text(f"“Atelier Démo · {FLOW_NAME}” was added successfully")
    flow = SyncFlow.objects.get(name=FLOW_NAME)
    flow_url = f"{server}/admin/mappings/syncflow/{flow.pk}/change/"

    # The folder comes from the accounting tool's list; the other lists come from the folder.
    expect(step(page, "folder")).to_have_class(MISSING)
    expect(step(page, "accounting_connected")).to_have_class(DONE)
    choose(page.locator("#id_folder"), "Atelier Démo SAS")
    save_and_continue(page)
    expect(messages).to_contain_text("was changed successfully")
    expect(step(page, "folder")).to_have_class(DONE)
    expect(step(page, "folder")).to_contain_text("Atelier Démo SAS")

    # Journals, accounts and start date, each account and journal chosen by its visible text.
    for field, label in (
        ("sales_journal", "REV – Revenue"),
        ("purchases_journal", "EXP – Expense"),
        ("customer_collective_account", "4111 – Clients"),
        ("supplier_collective_account", "401 – Fournisseurs"),
        ("default_sales_account", "706 – Prestations de services"),
        ("default_purchases_account", "604 – Achats d'études et prestations de services"),
        ("rounding_credit_account", "758 – "),
        ("rounding_debit_account", "658 – "),
    ):
        choose(page.locator(f"#id_{field}"), label)
    page.locator("#id_start_date").fill(first_date.replace(month=1, day=1).isoformat())
    save_and_continue(page)
    expect(messages).to_contain_text("was changed successfully")
    for key in ("invoicing_connected", "accounting_connected", "folder", "rounding_vat",
                "journals", "accounts", "configuration"):  # fmt: skip
        expect(step(page, key)).to_have_class(DONE)
    expect(step(page, "sales_vat")).to_have_class(MISSING)
    expect(step(page, "sales_vat")).to_contain_text("No sales VAT mapping yet")
    expect(page.locator("#setup-checklist h2")).to_contain_text("7 of 9 steps done")

    # -- VAT: the proposals the form offers, without the sales 2.1 % rows -------------------------
    follow(page, page.locator("#flow-propose-vat-link"))
    expect(messages).to_contain_text("VAT mappings proposed below, pre-filled and not saved yet")
    proposed = vat_rows(page).count()
    assert proposed > 8
    artifacts(page, "journey-02-vat-proposals")
    # The everyday rates come with a code of the same rate already chosen, both ways.
    for direction, rate, label in (
        ("sales", "20", "20%"), ("sales", "10", "10%"), ("sales", "5.5", "5,5%"),
        ("sales", "0", "Exonération de TVA"), ("purchases", "20", "20%"),
        ("purchases", "10", "10%"), ("purchases", "5.5", "5,5%"),
    ):  # fmt: skip
        rows = vat_proposal(page, direction, rate)
        assert rows.count() >= 1, (direction, rate)
        for index in range(rows.count()):
            chosen = rows.nth(index).locator('select[name$="-target_code"] option:checked')
            expect(chosen).to_contain_text(label)
    # Tryton's reverse-charge purchase taxes (intra-EU acquisitions: +20 % and -20 % children)
    # come one by one, each with its deductible and its collected code; none is listed at 0 %.
    expect(vat_proposal(page, "purchases", "0")).to_have_count(0)
    intra = vat_rows(page).filter(
        has=page.locator('select[name$="-collected_code"] option:checked', has_text="(2)")
    )
    assert intra.count() >= 1
    expect(intra.first.locator('select[name$="-target_code"] option:checked')).to_contain_text(
        "(1)"
    )
    # Remove the sales 2.1 % rows: that rate stays unmapped.
    sales_21 = vat_proposal(page, "sales", "2.1")
    expect(sales_21).to_have_count(2)
    for _ in range(2):
        sales_21.first.locator("a.inline-deletelink").click()
    expect(vat_rows(page)).to_have_count(proposed - 2)
    save_and_continue(page)
    expect(messages).to_contain_text("was changed successfully")
    assert flow.vat_mappings.count() == proposed - 2
    # Back on the flow's own page: "Save and continue editing" keeps ?propose_vat=1, which
    # proposes the removed rows again (see test_flow_vat_proposals.py).
    page.goto(flow_url)

    # -- Nothing is missing; sales VAT is to check (2.1 % unmapped), not done: enable the flow ----
    expect(page.locator("#setup-checklist h2")).to_have_text(
        "Setup: 8 of 9 steps done, 1 to check — the flow can be enabled"
    )
    expect(step(page, "sales_vat")).to_have_class(TO_CHECK)
    expect(step(page, "sales_vat")).to_contain_text(
        "not mapped (invoices using them will fail until they are): 2.1 %"
    )
    expect(step(page, "purchases_vat")).to_have_class(DONE)
    page.locator("#id_enabled").check()
    save_and_continue(page)
    expect(messages).to_contain_text("was changed successfully")
    expect(page.locator("#id_enabled")).to_be_checked()
    artifacts(page, "journey-03-flow-enabled")
    flow.refresh_from_db()
    assert flow.enabled

    # -- Preview: the next invoices as entries; nothing is written -------------------------------
    page.goto(flow_url)
    follow(page, page.locator("#flow-preview-link"))
    expect(page.locator("h1")).to_contain_text(f"Preview of Atelier Démo · {FLOW_NAME}")
    expect(page.locator("#preview-missing-steps")).to_have_count(0)
    entries = page.locator("table.preview-entry")
    expect(entries.first).to_be_visible()
    assert entries.count() >= 5
    expect(entries.first.locator("thead")).to_contain_text("Account")
    expect(entries.first.locator("tbody")).to_contain_text("4111")
    expect(entries.first.locator("tfoot")).to_contain_text("Total — balanced")
    expect(page.locator("#content-main")).to_contain_text("Entry in journal REV")
    expect(page.locator("#content-main")).not_to_contain_text("NOT balanced")
    artifacts(page, "journey-04-preview")
    assert tryton_moves(tryton_accounting) == {}

    # -- Sync now, from the flows list -----------------------------------------------------------
    follow(page, page.locator(".breadcrumbs").get_by_role("link", name="Sync flows", exact=True))
    row = page.locator("#result_list tbody tr", has_text=FLOW_NAME)
    row.locator("input.action-select").check()
    page.locator('select[name="action"]').select_option(label="Sync now")
    follow(page, page.locator('button[name="index"]'), timeout=SYNC_TIMEOUT_MS)
    # The message names the run it started, with a link, and what it did.
    expect(messages).to_contain_text(f"Queued a sync of “Atelier Démo · {FLOW_NAME}”: run ")
    expect(messages).to_contain_text("Completed, 1 failed")
    row = page.locator("#result_list tbody tr", has_text=FLOW_NAME)
    expect(row.locator("td.field-enabled img")).to_have_attribute("alt", "True")
    expect(row.locator("td.field-last_run")).to_contain_text("Completed, 1 failed")
    expect(row.locator("td.field-failed_records")).to_have_text("1")
    artifacts(page, "journey-05-flows-after-sync")

    # -- The failed record: its code, its message and what to do ---------------------------------
    follow(page, row.locator("td.field-failed_records a"))
    records = page.locator("#result_list tbody tr")
    expect(records).to_have_count(1)
    expect(records.first).to_contain_text(failing["number"])
    expect(records.first.locator("td.field-status")).to_have_text("Failed")
    expect(records.first).to_contain_text(TAX_RATE_NOT_FOUND)
    follow(page, records.first.get_by_role("link", name=failing["number"]))
    panel = page.locator(".field-error_panel")
    expect(panel).to_contain_text(TAX_RATE_NOT_FOUND)
    # Named as the invoicing tool names the tax (account_fr's), never by its id.
    expect(panel).to_contain_text(
        "Sales tax 'T.V.A. Vente de biens 2,1%' (2.1 %) is not mapped to a VAT code."
    )
    expect(panel).to_contain_text(
        "How to fix it: Add the rate (or the source tax) to the flow's sales or purchase VAT "
        "mapping, choosing the accounting tool's VAT code, then retry."
    )
    expect(page.locator(".field-status")).to_contain_text("Failed")
    artifacts(page, "journey-06-failed-record")
    record_url = page.url

    # The failure review of the flow links to the setting that fixes it.
    follow(page, page.locator(".object-tools a", has_text="Failures of the flow"))
    group = page.locator(f"#code-{TAX_RATE_NOT_FOUND}")
    expect(group.locator("h2")).to_contain_text(f"{TAX_RATE_NOT_FOUND} — 1 record")
    expect(group).to_contain_text("How to fix it: Add the rate (or the source tax)")
    artifacts(page, "journey-07-failure-review")
    follow(page, group.locator(".fix-links a", has_text="VAT mappings of the flow"))
    assert page.url.endswith("#vat_mappings-group"), page.url
    expect(page.locator("#vat_mappings-group h2")).to_contain_text("VAT mappings")

    # -- The fix: map sales 2.1 % to the accounting tool's 2.1 % code ----------------------------
    page.locator("#vat_mappings-group a.addlink").click()
    added = page.locator("#vat_mappings-group tr.form-row.dynamic-vat_mappings:not(.has_original)")
    expect(added).to_have_count(2)  # the blank extra row and the one just added
    new_row = added.last
    new_row.locator('select[name$="-direction"]').select_option(label="Sales")
    new_row.locator('input[name$="-source_rate"]').fill("2.1")
    choose(new_row.locator('select[name$="-target_code"]'), "T.V.A. Vente de biens 2,1%")
    save_and_continue(page)
    expect(messages).to_contain_text("was changed successfully")
    expect(step(page, "sales_vat")).to_have_class(DONE)
    expect(step(page, "sales_vat")).to_contain_text("Every rate of the invoicing tool is mapped.")
    expect(page.locator("#setup-checklist h2")).to_have_text(
        "Setup: 9 of 9 steps done — the flow can be enabled"
    )
    expect(page.locator("#id_enabled")).to_be_checked()
    artifacts(page, "journey-08-vat-fixed")

    # -- Back to the record: retry it, and see it synced -----------------------------------------
    page.goto(record_url)
    expect(page.locator(".field-status")).to_contain_text("Failed")
    follow(page, page.locator(".object-tools button", has_text="Retry"))
    expect(messages).to_contain_text("Queued 1 failed record for retry.")
    expect(page.locator(".field-status")).to_contain_text("Synced")
    expect(page.locator(".field-error_panel")).not_to_contain_text(TAX_RATE_NOT_FOUND)
    expect(page.locator(".object-tools")).not_to_contain_text("Retry")
    artifacts(page, "journey-09-record-synced")

    # The flow's dashboard: every invoice meant to sync is synced, nothing failed.
    follow(page, page.locator(".object-tools a", has_text="Flow dashboard"))
    counts = page.locator("#record-counts")
    synced = manifest["counts"]["by_expect"]["sync"] + 1
    expect(counts.locator("tr[data-status='synced'] td")).to_have_text(str(synced))
    expect(counts.locator("tr[data-status='failed'] td")).to_have_text("0")
    expect(page.locator("#last-run")).to_contain_text("Completed")
    expect(page.locator("#last-run")).to_contain_text("1 synced, 0 failed")
    expect(page.locator("#next-run")).to_contain_text("every 60 min")
    artifacts(page, "journey-10-flow-dashboard")

    assert SyncedRecord.objects.get(flow=flow, number=failing["number"]).status == (
        RecordStatus.SYNCED
    )
    assert not SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).exists()
    assert failing["number"] in tryton_moves(tryton_accounting)
