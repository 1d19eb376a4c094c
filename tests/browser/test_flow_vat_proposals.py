"""The VAT proposals on the flow's page, in a real browser against the live Tryton: rows the
accountant removes before saving stay unmapped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from connectors.models import Connection
from mappings.models import SyncFlow
from tests.browser.pages import save_and_continue, sign_in, vat_proposal

pytestmark = [pytest.mark.browser, pytest.mark.tryton]


def configured_flow(client) -> SyncFlow:
    """A flow of ``client`` with everything set but its VAT mappings (French chart values)."""
    return SyncFlow.objects.create(
        client=client,
        name="Proposals",
        invoicing_connection=Connection.objects.get(client=client, kind="invoicing"),
        accounting_connection=Connection.objects.get(client=client, kind="accounting"),
        folder="1",
        folder_name="Atelier Démo SAS",
        start_date=dt.date(2025, 1, 1),
        sales_journal="REV",
        purchases_journal="EXP",
        customer_collective_account="4111",
        supplier_collective_account="401",
        default_sales_account="706",
        default_purchases_account="604",
        rounding_credit_account="758",
        rounding_debit_account="658",
        sales_rounding_vat_code="44",
        purchases_rounding_vat_code="52",
    )


def test_rows_removed_from_the_proposals_stay_unmapped_after_the_next_saves(
    server, page: Page, accountant
):
    flow = configured_flow(accountant.invsync_clients.get())
    sign_in(page, server, accountant.email)
    page.goto(f"{server}/admin/mappings/syncflow/{flow.pk}/change/?propose_vat=1")
    expect(page.locator("ul.messagelist")).to_contain_text("VAT mappings proposed below")
    # Tryton's reverse-charge purchase taxes come one by one with both codes, none at 0 %.
    expect(vat_proposal(page, "purchases", "0")).to_have_count(0)
    sales_21 = vat_proposal(page, "sales", "2.1")
    expect(sales_21).to_have_count(2)
    for _ in range(2):
        sales_21.first.locator("a.inline-deletelink").click()
    expect(sales_21).to_have_count(0)
    save_and_continue(page)
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    assert not flow.vat_mappings.filter(direction="sales", source_rate=Decimal("2.1")).exists()
    assert not flow.vat_mappings.filter(direction="sales", source_tax_id__in=["9", "10"]).exists()

    # The page saving leads to is the flow's page, not the proposals again (the page is loaded:
    # read it now rather than wait for a change).
    assert "propose_vat" not in page.url, page.url
    assert "VAT mappings proposed below" not in page.locator("ul.messagelist").inner_text()
    # Saving it again, changing nothing, maps nothing more and is accepted.
    save_and_continue(page)
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    assert not flow.vat_mappings.filter(direction="sales", source_tax_id__in=["9", "10"]).exists()
    expect(page.locator("#step-sales_vat")).to_contain_text("2.1 % (T.V.A. Vente de biens 2,1%)")
