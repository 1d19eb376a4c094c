"""The flow's admin page against the in-memory tools: selects filled from the accounting tool
(cached, refreshed on demand, never a 500 when a tool is down), values checked on save, VAT
mapping proposals, the setup checklist and the enabling rule, and the preview of the next
invoices (which writes nothing)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape

from connectors.base import SourceRecordError
from connectors.canonical import Account, InvoiceStatus, InvoiceType
from connectors.errors import ConnectorError, ErrorCode, error_info
from connectors.models import LookupCache
from mappings.checklist import StepState, flow_setup_checklist
from mappings.models import SyncFlow, VatMapping
from mappings.services import flow_create, flow_lookups_load, flow_update
from syncs.admin import flows as flow_admin
from syncs.models import PartnerLink, SyncedRecord
from tests.doubles import MemorySource, MemoryTarget
from tests.factories import (
    ClientFactory,
    ConnectionFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PartnerFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

UNAVAILABLE = ConnectorError(ErrorCode.UNAVAILABLE, "The ledger did not answer within 30 s.")
TARGET_LISTS = ("list_folders", "list_accounts", "list_vat_codes", "list_journals")


def complete_flow(**overrides) -> SyncFlow:
    """A flow whose setup checklist is complete: the factory's, plus a start date and two
    connections that passed their check."""
    values = {
        "start_date": dt.date(2026, 1, 1),
        "invoicing_connection__last_check_ok": True,
        "accounting_connection__last_check_ok": True,
        **overrides,
    }
    return SyncFlowFactory(**values)


def change_url(flow: SyncFlow) -> str:
    return reverse("admin:mappings_syncflow_change", args=[flow.pk])


def form_data(response) -> dict:
    """The POST data of the change form as a browser sends it unchanged."""
    data: dict = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            if value is None:
                value = ""
            if value is False:
                continue
            if value is True:
                value = "on"
            data[form.add_prefix(name)] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def choices(form, name: str) -> dict[str, str]:
    """A select's options, value → label (optgroups flattened), the blank one left out."""
    found = {}
    for value, label in form.fields[name].widget.choices:
        if isinstance(label, list | tuple):
            found.update({str(v): str(lab) for v, lab in label})
        elif value:
            found[str(value)] = str(label)
    return found


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def unreachable(*args, **kwargs):
    raise UNAVAILABLE


# -- Selects from the accounting tool ---------------------------------------------------------


def test_account_selects_offer_the_targets_active_accounts_of_the_right_kind_as_code_and_name(
    admin_client, memory_connectors
):
    flow = complete_flow()  # the in-memory chart states numbers only: kinds read from them
    response = admin_client.get(change_url(flow))
    assert response.status_code == 200
    form = response.context["adminform"].form

    # 411 is inactive: not offered; the VAT accounts (445) are no third-party accounts.
    assert choices(form, "customer_collective_account") == {"4111": "4111 – Clients"}
    assert choices(form, "supplier_collective_account") == {"4011": "4011 – Fournisseurs"}
    sales = {"706", "707", "758", "709"}
    purchases = {"6071", "6063", "658", "609"}  # 607 is closed
    for name in ("default_sales_account", "rounding_credit_account"):
        assert set(choices(form, name)) == sales, name
    for name in ("default_purchases_account", "rounding_debit_account"):
        assert set(choices(form, name)) == purchases, name
    for name in ("sales_discount_account", "purchases_discount_account"):
        assert set(choices(form, name)) == sales | purchases, name
    assert choices(form, "default_sales_account")["706"] == "706 – Prestations de services"

    # VAT codes of the field's direction only; journals and folders of the tool.
    assert set(choices(form, "sales_rounding_vat_code")) == {"V20", "V10", "V55", "V0"}
    assert set(choices(form, "purchases_rounding_vat_code")) == {"A20", "A10", "A55", "A0"}
    assert choices(form, "sales_journal") == {
        "REV": "REV – Revenue",
        "EXP": "EXP – Expense",
        "MISC": "MISC – Miscellaneous",
    }
    assert choices(form, "folder") == {"1": "Test company"}  # by name: the id is the tool's key

    html = response.content.decode()
    assert "4111 – Clients" in html
    assert "TVA collectée 20 %" in html


def test_vat_and_journal_mapping_rows_are_selects_too(admin_client, memory_connectors):
    flow = complete_flow(journals_by_source=True)
    flow.journal_mappings.create(source_journal="VT", target_journal="REV")
    response = admin_client.get(change_url(flow))
    vat, journals = (inline.formset for inline in response.context["inline_admin_formsets"])
    sales_row = next(f for f in vat.forms if f.instance.pk and f.instance.direction == "sales")
    assert set(choices(sales_row, "target_code")) == {"V20", "V10", "V55", "V0"}
    blank_row = vat.forms[-1]
    assert blank_row.instance.pk is None  # the extra row: every code, by direction
    assert set(choices(blank_row, "target_code")) == {
        "V20", "V10", "V55", "V0", "A20", "A10", "A55", "A0",
    }  # fmt: skip
    journal_row = journals.forms[0]
    assert set(choices(journal_row, "target_journal")) == {"REV", "EXP", "MISC"}
    assert choices(journal_row, "source_journal") == {"VT": "VT – Ventes", "HA": "HA – Achats"}


def test_a_stored_value_the_tool_no_longer_offers_stays_visible_and_flagged(
    admin_client, memory_connectors
):
    flow = complete_flow(customer_collective_account="411", sales_journal="OLD")
    form = admin_client.get(change_url(flow)).context["adminform"].form
    assert choices(form, "customer_collective_account")["411"] == (
        "411 (411 – Clients (view), inactive)"
    )
    assert choices(form, "sales_journal")["OLD"] == "OLD (not in the accounting tool)"


def test_lookups_are_read_once_per_page_then_come_from_the_cache(admin_client, memory_connectors):
    flow = complete_flow()
    assert admin_client.get(change_url(flow)).status_code == 200
    # One call per list for the whole page (form, two inlines, checklist).
    assert {name: MemoryTarget.calls[name] for name in TARGET_LISTS} == dict.fromkeys(
        TARGET_LISTS, 1
    )
    assert MemorySource.calls["list_tax_rates"] == 1
    assert set(
        LookupCache.objects.filter(connection=flow.accounting_connection).values_list(
            "name", flat=True
        )
    ) == {"folders", "accounts", "vat_codes", "journals"}

    assert admin_client.get(change_url(flow)).status_code == 200
    assert {name: MemoryTarget.calls[name] for name in TARGET_LISTS} == dict.fromkeys(
        TARGET_LISTS, 1
    )
    assert MemorySource.calls["list_tax_rates"] == 1


def test_refresh_reads_the_tools_again_and_the_page_shows_the_new_lists(
    admin_client, memory_connectors
):
    flow = complete_flow()
    admin_client.get(change_url(flow))
    MemoryTarget.accounts = (*MemoryTarget.accounts, Account("4112", "Clients douteux"))

    refresh = reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk])
    assert admin_client.get(refresh).status_code == 405  # a POST only
    response = admin_client.post(refresh, follow=True)
    assert response.redirect_chain[-1][0] == change_url(flow)
    assert {name: MemoryTarget.calls[name] for name in TARGET_LISTS} == dict.fromkeys(
        TARGET_LISTS, 2
    )
    assert MemorySource.calls["list_tax_rates"] == 2
    assert any("15 accounts" in message for message in page_messages(response))
    form = response.context["adminform"].form
    assert choices(form, "customer_collective_account")["4112"] == "4112 – Clients douteux"
    assert "Refresh from the accounting tool" in response.content.decode()


def test_an_unreachable_accounting_tool_leaves_text_inputs_and_says_what_to_do(
    admin_client, memory_connectors, monkeypatch
):
    flow = complete_flow()
    for name in TARGET_LISTS:
        monkeypatch.setattr(MemoryTarget, name, unreachable)
    response = admin_client.get(change_url(flow))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.fields["customer_collective_account"].widget.input_type == "text"
    shown = " ".join(page_messages(response))
    assert "ERROR_CONNECTION_UNAVAILABLE" in shown
    assert "The ledger did not answer within 30 s." in shown
    assert error_info(ErrorCode.UNAVAILABLE).resolution in shown
    assert "type the values in" in shown

    # Saving still works: the values cannot be checked against the tool meanwhile.
    data = form_data(response)
    data["name"] = "Renamed while the ledger is down"
    assert admin_client.post(change_url(flow), data).status_code == 302
    assert SyncFlow.objects.get(pk=flow.pk).name == "Renamed while the ledger is down"

    # The refresh button says the same, and so does the preview: no 500 anywhere.
    refresh = reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk])
    response = admin_client.post(refresh, follow=True)
    assert response.status_code == 200
    assert any("ERROR_CONNECTION_UNAVAILABLE" in m for m in page_messages(response))
    preview = reverse("admin:mappings_syncflow_preview", args=[flow.pk])
    assert admin_client.get(preview).status_code == 200


def test_an_unreachable_tool_falls_back_on_the_lists_read_before(
    admin_client, memory_connectors, monkeypatch
):
    flow = complete_flow()
    admin_client.get(change_url(flow))  # caches the lists
    for name in TARGET_LISTS:
        monkeypatch.setattr(MemoryTarget, name, unreachable)
    refresh = reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk])
    response = admin_client.post(refresh, follow=True)
    assert response.status_code == 200
    assert any("lists below are those read on" in m for m in page_messages(response))
    form = response.context["adminform"].form
    assert "4111" in choices(form, "customer_collective_account")


def test_a_connection_whose_provider_is_not_installed_gives_a_message(
    admin_client, memory_connectors
):
    flow = complete_flow(accounting_connection__provider="gone")
    response = admin_client.get(change_url(flow))
    assert response.status_code == 200
    assert any("ERROR_SYNC_CONFIGURATION_INCOMPLETE" in m for m in page_messages(response))


def test_a_flow_without_folder_offers_the_folder_select_first(admin_client, memory_connectors):
    flow = complete_flow(folder="", folder_name="")
    response = admin_client.get(change_url(flow))
    form = response.context["adminform"].form
    assert choices(form, "folder") == {"1": "Test company"}  # by name: the id is the tool's key
    assert form["folder"].value() == "1"  # the only folder, pre-selected
    # The other lists need a folder: no call for them yet, and the fields say so.
    assert MemoryTarget.calls["list_accounts"] == 0
    assert form.fields["default_sales_account"].widget.input_type == "text"
    assert "Choose the accounting folder above and save" in (
        form.fields["default_sales_account"].help_text
    )

    data = form_data(response)
    data["folder"] = "1"
    assert admin_client.post(change_url(flow), data).status_code == 302
    saved = SyncFlow.objects.get(pk=flow.pk)
    assert (saved.folder, saved.folder_name) == ("1", "Test company")
    form = admin_client.get(change_url(flow)).context["adminform"].form
    assert "4111" in choices(form, "customer_collective_account")


# -- Values checked on save ---------------------------------------------------------------------


def test_saving_an_inactive_or_absent_account_or_an_unknown_code_is_refused_on_its_field(
    admin_client, memory_connectors
):
    flow = complete_flow()
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    data.update(
        {
            "customer_collective_account": "411",  # inactive
            "default_sales_account": "7999",  # absent
            "sales_rounding_vat_code": "A0",  # a purchase code
            "purchases_rounding_vat_code": "ZZ",  # absent
            "purchases_journal": "NOPE",
        }
    )
    row = next(
        key[: -len("-id")]
        for key, value in data.items()
        if key.startswith("vat_mappings-") and key.endswith("-id") and value
    )
    data[f"{row}-target_code"] = "GHOST"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "inactive" in errors["customer_collective_account"][0]
    assert "does not exist" in errors["default_sales_account"][0]
    assert "purchase code" in errors["sales_rounding_vat_code"][0]
    assert "does not exist" in errors["purchases_rounding_vat_code"][0]
    assert "does not exist" in errors["purchases_journal"][0]
    vat_formset = response.context["inline_admin_formsets"][0].formset
    assert any(
        "GHOST does not exist" in str(form.errors.get("target_code")) for form in vat_formset
    )
    stored = SyncFlow.objects.get(pk=flow.pk)
    assert stored.customer_collective_account == "4111"
    assert not VatMapping.objects.filter(target_code="GHOST").exists()


def test_valid_values_from_the_selects_save(admin_client, memory_connectors):
    flow = complete_flow()
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    data["default_sales_account"] = "707"
    data["sales_journal"] = "MISC"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    stored = SyncFlow.objects.get(pk=flow.pk)
    assert (stored.default_sales_account, stored.sales_journal) == ("707", "MISC")


# -- VAT mapping proposals --------------------------------------------------------------------


def _invoices_with_rates():
    MemorySource.put(
        InvoiceFactory(
            lines=(
                InvoiceLineFactory(tax_rate=Decimal("20.0")),
                InvoiceLineFactory(tax_rate=Decimal("10.0")),
                InvoiceLineFactory(tax_rate=Decimal("5.5")),
            )
        ),
        InvoiceFactory(
            type=InvoiceType.SUPPLIER_INVOICE,
            lines=(
                InvoiceLineFactory(tax_rate=Decimal("20.0")),
                InvoiceLineFactory(tax_rate=Decimal("0")),
            ),
        ),
    )


def test_proposals_cover_every_source_rate_and_preselect_the_same_rate_code(
    admin_client, memory_connectors
):
    _invoices_with_rates()
    flow = complete_flow(enabled=False, vat=[("sales", "20.0", "V20")])
    response = admin_client.get(change_url(flow) + "?propose_vat=1")
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    proposed = {
        (form.initial["direction"], form.initial["source_rate"]): form.initial["target_code"]
        for form in formset.forms
        if form.instance.pk is None
    }
    # Sales 20 % is mapped already; every other rate is proposed, sales and purchases apart.
    assert proposed == {
        ("sales", Decimal("10.0")): "V10",
        ("sales", Decimal("5.5")): "V55",
        ("purchases", Decimal("20.0")): "A20",
        ("purchases", Decimal("0")): "A0",
    }
    assert any("4 VAT mappings proposed below" in m for m in page_messages(response))
    assert not flow.vat_mappings.exclude(target_code="V20").exists()  # nothing saved yet

    # The accountant reviews: changes one code, then saves.
    data = form_data(response)
    changed = next(
        key
        for key, value in data.items()
        if key.endswith("-target_code") and value == "A0" and key.startswith("vat_mappings-")
    )
    data[changed] = "A55"
    assert admin_client.post(change_url(flow), data).status_code == 302
    saved = {(m.direction, m.source_rate): m.target_code for m in flow.vat_mappings.all()}
    assert saved == {
        ("sales", Decimal("20.000")): "V20",
        ("sales", Decimal("10.000")): "V10",
        ("sales", Decimal("5.500")): "V55",
        ("purchases", Decimal("20.000")): "A20",
        ("purchases", Decimal("0.000")): "A55",
    }
    again = admin_client.get(change_url(flow) + "?propose_vat=1")
    assert any("mapped already" in m for m in page_messages(again))


def test_a_rate_with_no_sure_code_is_proposed_for_a_person_to_choose(
    admin_client, memory_connectors
):
    MemorySource.put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),)))
    flow = complete_flow(enabled=False, scope="sales")
    response = admin_client.get(change_url(flow) + "?propose_vat=1")
    formset = response.context["inline_admin_formsets"][0].formset
    (row,) = [form for form in formset.forms if form.instance.pk is None]
    assert (row.initial["source_rate"], row.initial["target_code"]) == (Decimal("2.1"), "")
    assert any("choose one for the 1 rate" in m for m in page_messages(response))


# -- The setup checklist ----------------------------------------------------------------------


def _steps(flow: SyncFlow) -> dict[str, tuple[bool, str]]:
    return {step.key: (step.done, step.detail) for step in flow_setup_checklist(flow)}


def test_checklist_of_an_empty_flow_has_every_step_missing_with_where_to_fix_it():
    client = ClientFactory()
    flow = flow_create(
        client=client,
        name="Empty",
        invoicing_connection=ConnectionFactory(client=client, kind="invoicing"),
        accounting_connection=ConnectionFactory(client=client, kind="accounting"),
    )
    steps = flow_setup_checklist(flow)
    assert [step.name for step in steps] == [
        "Invoicing tool connected",
        "Accounting tool connected",
        "Accounting folder chosen",
        "Sales VAT mapped",
        "Purchase VAT mapped",
        "Rounding VAT codes set",
        "Journals set",
        "Accounts set",
        "Configuration",
    ]
    assert not any(step.done for step in steps)
    anchors = {step.key: step.fix_url_anchor for step in steps}
    assert anchors["folder"] == "#id_folder"
    assert anchors["sales_vat"] == "#vat_mappings-group"
    assert anchors["accounts"] == "#id_default_sales_account"
    assert anchors["configuration"] == "#id_start_date"
    assert anchors["invoicing_connected"] == "#id_invoicing_connection"
    details = {step.key: step.detail for step in steps}
    assert "Never checked" in details["accounting_connected"]
    assert "customer collective account" in details["accounts"]


def test_checklist_of_a_complete_flow_has_every_step_done():
    steps = flow_setup_checklist(complete_flow())
    assert all(step.done for step in steps), [s for s in steps if not s.done]
    assert len(steps) == 9


def test_checklist_follows_the_scope_the_connections_and_the_source_rates(memory_connectors):
    flow = complete_flow(
        scope="sales",
        purchases_journal="",
        default_purchases_account="",
        supplier_collective_account="",
        purchases_rounding_vat_code="",
        vat=[("sales", "20.0", "V20")],
    )
    steps = _steps(flow)
    assert steps["purchases_vat"] == (True, "Not needed: purchases are out of scope.")
    assert all(done for done, _ in steps.values())

    # Once the source's rates are read, those not mapped are named: the step is to check, not
    # done (never shown ✓), and not a blocker either (sources list taxes nobody bills, and an
    # invoice using one fails alone with its code).
    MemorySource.put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=Decimal("5.5")),)))
    flow_lookups_load(flow=flow)
    step = {s.key: s for s in flow_setup_checklist(flow)}["sales_vat"]
    assert step.state is StepState.TO_CHECK and not step.done and not step.blocking
    assert (
        "1 rate of the invoicing tool not mapped (invoices using them will fail until they "
        "are): 5.5 %" in step.detail
    )

    # A failed check of a connection is a missing step, until the tool is read again.
    flow.accounting_connection.last_check_ok = False
    flow.accounting_connection.last_check_message = "Login refused."
    flow.accounting_connection.last_checked_at = timezone.now()
    flow.accounting_connection.save()
    done, detail = _steps(flow)["accounting_connected"]
    assert not done and "Login refused." in detail
    flow_lookups_load(flow=flow, refresh=True)
    assert _steps(flow)["accounting_connected"][0]


def test_checklist_on_the_flow_page_and_in_the_list(admin_client, memory_connectors):
    complete = complete_flow(name="Complete")
    client = ClientFactory()
    empty = flow_create(
        client=client,
        name="Empty",
        invoicing_connection=ConnectionFactory(client=client, kind="invoicing"),
        accounting_connection=ConnectionFactory(client=client, kind="accounting"),
    )
    html = admin_client.get(change_url(empty)).content.decode()
    assert "Setup: 2 of 9 steps done" in html  # the page read both tools: they answered
    assert 'id="step-folder" class="missing"' in html
    assert 'href="#id_folder"' in html
    assert "✗" in html
    html = admin_client.get(change_url(complete)).content.decode()
    assert "Setup: 9 of 9 steps done" in html
    assert "✓" in html

    listing = admin_client.get(reverse("admin:mappings_syncflow_changelist")).content.decode()
    assert ">9/9</span>" in listing
    assert ">2/9</span>" in listing


# -- Enabling needs a complete setup ----------------------------------------------------------


def test_the_service_refuses_to_enable_an_incomplete_flow():
    flow = complete_flow(enabled=False, start_date=None)
    with pytest.raises(ValidationError) as error:
        flow_update(flow=flow, data={"enabled": True})
    message = error.value.message_dict["enabled"][0]
    assert "Configuration (Set the synchronisation start date)" in message
    assert SyncFlow.objects.get(pk=flow.pk).enabled is False

    client = ClientFactory()
    with pytest.raises(ValidationError, match="Accounting folder chosen"):
        flow_create(
            client=client,
            name="Too early",
            invoicing_connection=ConnectionFactory(client=client, kind="invoicing"),
            accounting_connection=ConnectionFactory(client=client, kind="accounting"),
            enabled=True,
        )
    assert not SyncFlow.objects.filter(name="Too early").exists()

    flow_update(flow=flow, data={"enabled": True, "start_date": dt.date(2026, 1, 1)})
    assert SyncFlow.objects.get(pk=flow.pk).enabled is True


def test_an_enabled_flow_may_not_lose_a_step_but_stays_editable_with_one_missing_already():
    flow = complete_flow()
    with pytest.raises(ValidationError, match="would leave the enabled flow incomplete"):
        flow_update(flow=flow, data={"sales_journal": ""})
    flow = SyncFlow.objects.get(pk=flow.pk)
    flow.invoicing_connection.last_check_ok = False
    flow.invoicing_connection.save()
    flow_update(flow=flow, data={"name": "Renamed while the source is down"})
    assert SyncFlow.objects.get(pk=flow.pk).name == "Renamed while the source is down"


def test_the_form_refuses_to_enable_an_incomplete_flow_listing_the_missing_steps(
    admin_client, memory_connectors
):
    flow = complete_flow(enabled=False, start_date=None, vat=[("sales", "20.0", "V20")])
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    data["enabled"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    error = response.context["adminform"].form.errors["enabled"][0]
    assert "can be enabled only once its setup is complete" in error
    assert "Purchase VAT mapped" in error and "Configuration" in error
    assert SyncFlow.objects.get(pk=flow.pk).enabled is False

    # The missing mapping added in the same save counts.
    data["start_date"] = "2026-01-01"
    prefix = "vat_mappings-" + data["vat_mappings-TOTAL_FORMS"]
    data.update(
        {
            f"{prefix}-direction": "purchases",
            f"{prefix}-source_rate": "20",
            f"{prefix}-target_code": "A20",
            "vat_mappings-TOTAL_FORMS": str(int(data["vat_mappings-TOTAL_FORMS"]) + 1),
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert SyncFlow.objects.get(pk=flow.pk).enabled is True


def test_the_form_refuses_removing_the_last_mapping_of_an_enabled_flow(
    admin_client, memory_connectors
):
    flow = complete_flow(vat=[("sales", "20.0", "V20"), ("purchases", "20.0", "A20")])
    url = change_url(flow)
    data = form_data(admin_client.get(url))
    sales_row = next(
        key[: -len("-direction")]
        for key, value in data.items()
        if key.startswith("vat_mappings-") and key.endswith("-direction") and value == "sales"
    )
    data[f"{sales_row}-DELETE"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Sales VAT mapped" in response.context["adminform"].form.errors["enabled"][0]
    assert flow.vat_mappings.filter(direction="sales").exists()


def test_an_import_of_an_enabled_but_incomplete_flow_stays_disabled(tmp_path, memory_connectors):
    from mappings.portable import flow_export, flow_import

    document = flow_export(flow=complete_flow(name="Source flow"))
    result = flow_import(document=document, client_name="Elsewhere")
    assert result.flow.enabled is False
    assert any("stays disabled" in warning for warning in result.warnings)


# -- Preview ----------------------------------------------------------------------------------


def test_preview_shows_the_next_entries_errors_and_skips_and_writes_nothing(
    admin_client, memory_connectors
):
    flow = complete_flow()
    acme = PartnerFactory(name="ACME SAS")
    ok = InvoiceFactory(source_id="a-ok", number="F-OK", partner=acme)
    purchase = InvoiceFactory(
        source_id="b-purchase", number="A-OK", type=InvoiceType.SUPPLIER_INVOICE
    )
    unmapped = InvoiceFactory(
        source_id="c-unmapped",
        number="F-21",
        lines=(InvoiceLineFactory(tax_rate=Decimal("2.1")),),
    )
    draft = InvoiceFactory(source_id="d-draft", number="F-DRAFT", status=InvoiceStatus.DRAFT)
    synced = InvoiceFactory(source_id="e-synced", number="F-SYNCED")
    broken = SourceRecordError(
        "f-broken",
        ConnectorError(ErrorCode.INVALID_SOURCE_DATA, "The invoice has no date."),
        number="F-BROKEN",
    )
    MemorySource.put(ok, purchase, unmapped, draft, synced, broken)
    SyncedRecordFactory(flow=flow, source_id="e-synced", status="synced")
    records_before = SyncedRecord.objects.count()

    url = reverse("admin:mappings_syncflow_preview", args=[flow.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    items = {item.number: item for item in response.context["preview"].items}
    assert set(items) == {"F-OK", "A-OK", "F-21", "F-DRAFT", "F-BROKEN"}  # not the synced one

    entry = items["F-OK"].result["entry"]
    assert items["F-OK"].balanced
    assert (items["F-OK"].total_debit, items["F-OK"].total_credit) == (
        Decimal("120.00"),
        Decimal("120.00"),
    )
    assert [(line["account"], line["debit"], line["credit"]) for line in entry["lines"]] == [
        ("4111", "120.00", "0.00"),
        ("706", "0.00", "100.00"),
        ("44571", "0.00", "20.00"),
    ]
    assert entry["lines"][0]["partner"] == "ACME SAS"
    assert items["A-OK"].result["entry"]["journal"] == "EXP"
    assert items["F-21"].result["code"] == ErrorCode.MAPPING_TAX_RATE_NOT_FOUND.value
    assert items["F-DRAFT"].result["status"] == "skipped"
    assert items["F-BROKEN"].result["code"] == ErrorCode.INVALID_SOURCE_DATA.value

    html = response.content.decode()
    assert "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND" in html
    assert escape(error_info(ErrorCode.MAPPING_TAX_RATE_NOT_FOUND).resolution) in html
    assert "still a draft" in html
    assert "Total — balanced" in html
    # Codes of the accounting tool come with their names.
    assert "<td>4111 — Clients</td><td>ACME SAS</td>" in html
    assert "<td>TVA collectée 20 % · 44571</td>" in html  # a VAT code by name and account
    assert "Sales invoice" in html and "Purchase invoice" in html

    # Nothing written: no entry, no partner, no record, no link, no cursor move, no PDF fetched.
    assert MemoryTarget.entries == {}
    assert MemoryTarget.partners == {}
    for call in ("create_entries", "create_partner", "find_partner_candidates", "attach"):
        assert MemoryTarget.calls[call] == 0, call
    assert MemorySource.calls["fetch_attachment"] == 0
    assert SyncedRecord.objects.count() == records_before
    assert not PartnerLink.objects.exists()
    assert SyncFlow.objects.get(pk=flow.pk).source_cursor is None


def test_preview_shows_the_first_ten_and_says_there_are_more(admin_client, memory_connectors):
    flow = complete_flow()
    MemorySource.put(*(InvoiceFactory(source_id=f"inv-{n:02d}") for n in range(12)))
    response = admin_client.get(reverse("admin:mappings_syncflow_preview", args=[flow.pk]))
    preview = response.context["preview"]
    assert len(preview.items) == 10 and preview.more
    assert [item.source_id for item in preview.items] == [f"inv-{n:02d}" for n in range(10)]
    assert "only the first 10 are shown" in response.content.decode()


def test_preview_of_an_unreachable_source_shows_the_error(admin_client, memory_connectors):
    flow = complete_flow()
    MemorySource.fail_listing = UNAVAILABLE
    response = admin_client.get(reverse("admin:mappings_syncflow_preview", args=[flow.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "ERROR_CONNECTION_UNAVAILABLE" in html
    assert "The ledger did not answer within 30 s." in html


# -- Links on the flow's page -----------------------------------------------------------------


def test_the_flow_page_links_its_tools_and_its_dashboard_when_there_is_one(
    admin_client, memory_connectors, monkeypatch
):
    flow = complete_flow()
    html = admin_client.get(change_url(flow)).content.decode()
    assert reverse("admin:mappings_syncflow_preview", args=[flow.pk]) in html
    assert "?propose_vat=1" in html
    assert reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk]) in html
    try:
        dashboard = reverse("admin:syncs_flow_dashboard", args=[flow.pk])
    except NoReverseMatch:
        dashboard = None
    if dashboard:
        assert f'href="{dashboard}" id="flow-dashboard-link"' in html

    real_reverse = flow_admin.reverse

    def without_dashboard(name, *args, **kwargs):
        if name == "admin:syncs_flow_dashboard":
            raise NoReverseMatch(name)
        return real_reverse(name, *args, **kwargs)

    monkeypatch.setattr(flow_admin, "reverse", without_dashboard)
    response = admin_client.get(change_url(flow))
    assert response.status_code == 200
    assert 'id="flow-dashboard-link"' not in response.content.decode()


def test_a_viewer_sees_the_lists_last_read_and_never_calls_the_tools(client, memory_connectors):
    flow = complete_flow()
    viewer = UserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_syncflow"))
    flow.client.members.add(viewer)
    client.force_login(viewer)
    response = client.get(change_url(flow))
    assert response.status_code == 200
    assert sum(MemoryTarget.calls.values()) == 0
    assert sum(MemorySource.calls.values()) == 0
    html = response.content.decode()
    assert "Setup: 9 of 9 steps done" in html
    assert 'id="flow-refresh-lookups"' not in html
    refresh = reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk])
    assert client.post(refresh).status_code == 403
    assert not LookupCache.objects.exists()


def test_rounding_vat_is_required_only_where_the_target_has_one_plain_zero_rate_code(
    memory_connectors,
):
    _, target = memory_connectors
    target.vat_codes = tuple(v for v in target.vat_codes if v.code != "A0")
    flow = complete_flow(purchases_rounding_vat_code="")
    flow_lookups_load(flow=flow, refresh=True)
    assert _steps(flow)["rounding_vat"][0]
    flow.sales_rounding_vat_code = ""
    flow.save()
    assert not _steps(flow)["rounding_vat"][0]  # sales do have a 0 % code: choose it
    # Several 0 % codes that mean different things (exports of goods, of services): blank is
    # accepted, rounding lines then carry no VAT code.
    from connectors.canonical import Direction, VatCode

    exempt = "Exonération ventes de {} hors communauté"
    target.vat_codes = (
        *(v for v in target.vat_codes if v.code != "V0"),
        VatCode("EXO-B", Decimal(0), exempt.format("biens"), None, Direction.SALES),
        VatCode("EXO-S", Decimal(0), exempt.format("services"), None, Direction.SALES),
    )
    flow_lookups_load(flow=flow, refresh=True)
    assert _steps(flow)["rounding_vat"][0]
