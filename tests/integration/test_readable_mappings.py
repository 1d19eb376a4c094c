"""The flow's mappings read as an accountant reads them (the rendered page, against the in-memory
tools with a Tryton-like chart): VAT codes by name and account number, source taxes by name and
rate, sales and purchases apart, reverse charge explained, errors at the row and summed up at the
top, and no internal id of either tool shown."""

from __future__ import annotations

import re
from decimal import Decimal as D

import lxml.html
import pytest
from django.urls import reverse

from connectors.canonical import Direction, SourceTaxRate, TaxKind, VatCode
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.doubles import FRENCH_VAT_CODES
from tests.factories import InvoiceFactory, InvoiceLineFactory, SyncedRecordFactory
from tests.integration.test_mapping_forms import change_url, complete_flow, form_data

pytestmark = pytest.mark.django_db

P, S = Direction.PURCHASES, Direction.SALES
# As Tryton lists them: VAT codes are tax ids ("61"), the intra-EU acquisition tax has a +20 %
# child on 44566 and a -20 % child on 4452; the invoicing tool's taxes are ids with names.
TRYTON_LIKE_CODES = (
    *FRENCH_VAT_CODES,
    VatCode("61", D("20"), "T.V.A. Achat Intracommunautaire de biens 20% (1)", "44566", P),
    VatCode("62", D("-20"), "T.V.A. Achat Intracommunautaire de biens 20% (2)", "4452", P),
)
SOURCE_TAXES = [
    SourceTaxRate(S, D("20"), "11", "T.V.A. Vente de biens Taux Normal"),
    SourceTaxRate(P, D("20"), "50", "T.V.A. Achat de biens Taux Normal"),
    SourceTaxRate(
        P, D("20"), "60", "T.V.A. Achat Intracommunautaire de biens Taux Normal", TaxKind.INTRA_EU
    ),
]


@pytest.fixture
def tryton_like(memory_connectors, monkeypatch):
    source, target = memory_connectors
    target.vat_codes = TRYTON_LIKE_CODES
    monkeypatch.setattr(source, "list_tax_rates", lambda self: list(SOURCE_TAXES))
    return source, target


def reverse_charge_flow():
    return complete_flow(
        vat=[("sales", "20.0", "V20"), ("purchases", "20.0", "A20")],
    )


def page(response):
    assert response.status_code == 200, response.status_code
    return lxml.html.fromstring(response.content.decode())


def has(name: str) -> str:
    """An XPath test: the element has the class ``name``."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def text(node) -> str:
    return re.sub(r"\s+", " ", "".join(node.itertext())).strip()


def vat_group(doc):
    return doc.get_element_by_id("vat_mappings-group")


def saved_rows(doc) -> list:
    return vat_group(doc).xpath(f".//tr[{has('form-row')} and {has('has_original')}]")


def options(row, field: str, selected: bool = False) -> dict[str, str]:
    """A select's options in ``row`` (value → label), the blank one left out."""
    test = " and @selected" if selected else ""
    return {
        o.get("value"): text(o)
        for o in row.xpath(f".//select[substring(@name, string-length(@name) - "
                           f"{len(field)}) = '-{field}']/option[@value != ''{test}]")
    }  # fmt: skip


def selected_label(row, field: str) -> str:
    return next(iter(options(row, field, selected=True).values()), "")


# -- VAT codes and source taxes by name ----------------------------------------------------------


def test_vat_rows_show_the_target_code_by_name_and_account_number(admin_client, tryton_like):
    flow = reverse_charge_flow()
    rows = saved_rows(page(admin_client.get(change_url(flow))))
    labels = {selected_label(row, "target_code") for row in rows}
    assert labels == {"TVA collectée 20 % · 44571", "TVA déductible 20 % · 44566"}
    # Every code the select offers reads the same way; the codes stay the values sent.
    purchase_row = next(r for r in rows if "44566" in selected_label(r, "target_code"))
    offered = options(purchase_row, "target_code")
    assert offered["61"] == "T.V.A. Achat Intracommunautaire de biens 20% (1) · 44566"
    assert offered["62"] == "T.V.A. Achat Intracommunautaire de biens 20% (2) · 4452"


def test_the_source_tax_is_a_select_of_the_invoicing_tools_taxes_by_name_and_rate(
    admin_client, tryton_like
):
    flow = reverse_charge_flow()
    doc = page(admin_client.get(change_url(flow)))
    purchase_row = next(r for r in saved_rows(doc) if "44566" in selected_label(r, "target_code"))
    offered = options(purchase_row, "source_tax_id")
    # A purchase row offers the purchase taxes, by name and rate; not the sales one.
    assert offered == {
        "50": "T.V.A. Achat de biens Taux Normal (20 %)",
        "60": "T.V.A. Achat Intracommunautaire de biens Taux Normal (20 %)",
    }
    # The saved rate as written, not in the column's three decimals ("20.000").
    assert purchase_row.xpath(".//input[contains(@name, '-source_rate')]/@value") == ["20"]
    # Under it, the invoicing tool's names of the taxes at the row's rate.
    names = purchase_row.xpath(f".//td[{has('field-source_tax_id')}]/p[{has('source-names')}]")
    assert text(names[0]) == (
        "T.V.A. Achat de biens Taux Normal, T.V.A. Achat Intracommunautaire de biens Taux Normal"
    )
    header = text(vat_group(doc).xpath(".//thead")[0])
    assert "Source tax" in header and "Source tax id" not in header


def test_sales_and_purchase_rows_are_shown_apart_sales_first(admin_client, tryton_like):
    flow = complete_flow(
        vat=[("purchases", "20.0", "A20"), ("sales", "20.0", "V20"), ("purchases", "10.0", "A10"),
             ("sales", "10.0", "V10")],
    )  # fmt: skip
    body = vat_group(page(admin_client.get(change_url(flow)))).xpath(".//tbody")[0]
    order = []
    for row in body.xpath("./tr"):
        classes = (row.get("class") or "").split()
        if "vat-section" in classes:
            order.append(text(row))
        elif "has_original" in classes:
            order.append(next(iter(options(row, "direction", selected=True))))
    assert order[:6] == ["Sales", "sales", "sales", "Purchases", "purchases", "purchases"]


def test_no_internal_id_is_shown_on_the_flow_form(admin_client, tryton_like):
    flow = reverse_charge_flow()
    flow.vat_mappings.create(
        direction="purchases", source_tax_id="60", target_code="61", collected_code="62"
    )
    doc = page(admin_client.get(change_url(flow)))
    group = vat_group(doc)
    # No key above a row ("Purchases 60 → 61 + 62", the row's __str__), no id in a label.
    assert "→" not in text(group.xpath(".//tbody")[0])
    for option in group.xpath(".//select/option[@selected]"):
        assert not re.match(r"\d+\b", text(option)), text(option)
    # The checklist names the folder, not "Test company (1)".
    assert text(doc.get_element_by_id("step-folder")).endswith("— Test company")
    # The folder by its name, not "1 – Test company".
    assert [text(o) for o in doc.xpath("//select[@id='id_folder']/option[@selected]")] == [
        "Test company"
    ]


# -- Reverse charge explained ----------------------------------------------------------------------


def test_a_reverse_charge_row_says_what_will_be_booked(admin_client, tryton_like):
    flow = reverse_charge_flow()
    flow.vat_mappings.create(
        direction="purchases", source_tax_id="60", target_code="61", collected_code="62"
    )
    group = vat_group(page(admin_client.get(change_url(flow))))
    helps = [text(p) for p in group.xpath(f".//tr[{has('vat-reverse-charge')}]//p")]
    assert helps == [
        "Reverse charge (T.V.A. Achat Intracommunautaire de biens Taux Normal): the invoice "
        "states no VAT and you self-assess it. invsync books 20 % of the base twice: as "
        "deductible VAT on T.V.A. Achat Intracommunautaire de biens 20% (1) · 44566 (debit) and "
        "as VAT due on T.V.A. Achat Intracommunautaire de biens 20% (2) · 4452 (credit). The two "
        "cancel out; the supplier's total is unchanged."
    ]
    # The help line follows its row; plain rows have none.
    help_row = group.xpath(f".//tr[{has('vat-reverse-charge')}]")[0]
    row = help_row.xpath(f"preceding-sibling::tr[{has('form-row')}][1]")[0]
    assert selected_label(row, "source_tax_id").startswith("T.V.A. Achat Intracommunautaire")


# -- Errors: at the row, and summed up at the top --------------------------------------------------


def test_a_refused_save_shows_each_error_at_its_row_and_in_a_summary_at_the_top(
    admin_client, tryton_like
):
    flow = reverse_charge_flow()
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    prefix = "vat_mappings-" + data["vat_mappings-TOTAL_FORMS"]
    data.update(
        {
            f"{prefix}-direction": "purchases",
            f"{prefix}-source_tax_id": "60",
            f"{prefix}-target_code": "61",  # no collected code: refused
            "vat_mappings-TOTAL_FORMS": str(int(data["vat_mappings-TOTAL_FORMS"]) + 1),
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200
    doc = page(response)
    summary = doc.get_element_by_id("error-summary")
    items = [text(li) for li in summary.xpath(".//li")]
    assert len(items) == 1, items
    assert items[0].startswith(
        "VAT mappings (source rate or tax → accounting VAT code), Purchases T.V.A. Achat "
        "Intracommunautaire de biens Taux Normal (20 %) — Collected VAT code (reverse charge): "
    ), items[0]
    assert "reverse-charge tax" in items[0]
    # The link leads to the row, which carries the error in its cell.
    row = doc.get_element_by_id(summary.xpath(".//li/a")[0].get("href").lstrip("#"))
    assert "row-has-errors" in row.get("class").split()
    errors = row.xpath(f".//td[{has('field-collected_code')}]//ul[{has('errorlist')}]")
    assert "reverse-charge tax" in text(errors[0])
    assert not flow.vat_mappings.filter(source_tax_id="60").exists()


def test_a_field_error_of_the_flow_is_in_the_summary_with_its_label(admin_client, tryton_like):
    flow = reverse_charge_flow()
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    data["customer_collective_account"] = "999999"
    summary = page(admin_client.post(url, data)).get_element_by_id("error-summary")
    items = [text(li) for li in summary.xpath(".//li")]
    assert any(item.startswith("Customer collective account: ") for item in items), items
    assert summary.xpath(".//a[@href='#id_customer_collective_account']")


def test_a_plain_rate_row_saves_beside_the_row_of_a_reverse_charge_tax_at_that_rate(
    admin_client, tryton_like
):
    # Purchases 20 % → A20 maps the plain taxes at 20 %; the intra-EU tax at 20 % has its own
    # row with both codes, so the rate row needs no collected code.
    flow = reverse_charge_flow()
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    prefix = "vat_mappings-" + data["vat_mappings-TOTAL_FORMS"]
    data.update(
        {
            f"{prefix}-direction": "purchases",
            f"{prefix}-source_tax_id": "60",
            f"{prefix}-target_code": "61",
            f"{prefix}-collected_code": "62",
            "vat_mappings-TOTAL_FORMS": str(int(data["vat_mappings-TOTAL_FORMS"]) + 1),
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, [text(li) for li in page(response).xpath("//li")][:5]
    assert flow.vat_mappings.get(source_tax_id="60").collected_code == "62"
    assert flow.vat_mappings.get(direction="purchases", source_rate=D("20")).collected_code == ""


# -- The record's page -----------------------------------------------------------------------------


def test_a_failed_records_page_keeps_the_tools_keys_folded_away_for_support(
    admin_client, memory_connectors
):
    record = SyncedRecordFactory(
        flow=complete_flow(), source_id="src-key-7781", target_ref="tgt-key-9912"
    )
    doc = page(admin_client.get(reverse("admin:syncs_syncedrecord_change", args=[record.pk])))
    for key in ("src-key-7781", "tgt-key-9912"):
        places = doc.xpath(f"//*[contains(text(), '{key}')]")
        assert places, key
        for place in places:
            folded = place.xpath(f"ancestor::fieldset[{has('collapse')}]")
            assert folded and "For support" in text(folded[0]), (key, text(place.getparent()))


def test_a_failed_records_line_overrides_offer_vat_codes_by_name_and_account(
    admin_client, tryton_like
):
    source, _ = tryton_like
    flow = complete_flow()
    admin_client.get(change_url(flow))  # reads (and caches) the accounting tool's lists
    source.put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),)))
    flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    record = SyncedRecord.objects.get(flow=flow, status=RecordStatus.FAILED)
    doc = page(admin_client.get(reverse("admin:syncs_syncedrecord_change", args=[record.pk])))
    lines = doc.get_element_by_id("overrides-lines")
    offered = {
        o.get("value"): text(o)
        for o in lines.xpath(".//select[contains(@name, 'vat_code')]/option")
    }
    assert offered["V20"] == "TVA collectée 20 % · 44571"
    assert not any(label.startswith("V20") for label in offered.values())
