"""The guided set-up (issue #15, point 2; syncs/admin/setup.py): client → invoicing connection →
accounting connection → folder → mappings pre-filled from the suggestions → checklist → preview →
enable, with back and next, nothing typed lost on an error, on the in-memory test connectors."""

from __future__ import annotations

import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from connectors.canonical import InvoiceType
from connectors.models import Client
from mappings.models import SyncFlow
from mappings.services import flow_create, flow_mappings_suggest
from syncs.admin.setup import FILLED_SETTINGS, SESSION_KEY
from tests.factories import (
    ClientFactory,
    ConnectionFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    SyncFlowFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SETUP = "/admin/setup/"
FOLDER = {"folder": "1", "name": "Sales", "scope": "both", "start_date": "2026-01-01"}


def step_url(step: str) -> str:
    return f"{SETUP}{step}/"


def checked_connection(client, kind, **kwargs):
    return ConnectionFactory(
        client=client,
        kind=kind,
        last_check_ok=True,
        last_checked_at=timezone.now(),
        **kwargs,
    )


@pytest.fixture
def boss(client):
    user = UserFactory(username="boss", is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def books(memory_connectors):
    """A client with one checked connection of each kind to the in-memory tools, and four
    invoices waiting in the source: three sales, one purchase."""
    source, _target = memory_connectors
    source.put(InvoiceFactory(), InvoiceFactory(), InvoiceFactory())
    source.put(InvoiceFactory(type=InvoiceType.SUPPLIER_INVOICE))
    atelier = ClientFactory(name="Atelier")
    invoicing = checked_connection(atelier, "invoicing", name="Invoices")
    accounting = checked_connection(atelier, "accounting", name="Books")
    return atelier, invoicing, accounting


def walk_to_folder(client, atelier, invoicing, accounting):
    assert client.post(step_url("client"), {"client": atelier.pk}).url == step_url("invoicing")
    assert client.post(step_url("invoicing"), {"connection": invoicing.pk}).url == step_url(
        "accounting"
    )
    assert client.post(step_url("accounting"), {"connection": accounting.pk}).url == step_url(
        "folder"
    )


def test_the_start_opens_the_first_step_and_steps_ahead_go_back_to_it(client, boss, books):
    assert client.get(SETUP).url == step_url("client")
    assert client.get(step_url("preview")).url == step_url("client")
    assert client.get(step_url("nowhere")).status_code == 404


def test_the_client_step_needs_a_client_picked_or_typed_and_keeps_the_typed_name(client, boss):
    response = client.post(step_url("client"), {"client": "", "new_client": ""})
    assert response.status_code == 200
    assert "Pick a client or type the name of a new one." in response.content.decode()
    ClientFactory(name="Atelier")
    response = client.post(step_url("client"), {"new_client": "Atelier"})
    html = response.content.decode()
    assert response.status_code == 200 and 'value="Atelier"' in html  # typed, kept
    assert "already exists" in html
    response = client.post(step_url("client"), {"new_client": "Bistro"})
    assert response.url == step_url("invoicing")
    assert client.session[SESSION_KEY]["client"] == Client.objects.get(name="Bistro").pk


def test_a_client_created_by_a_member_of_staff_is_theirs(client, memory_connectors):
    user = UserFactory(username="clerk")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_syncflow", "add_client", "view_client"])
    )
    client.force_login(user)
    client.post(step_url("client"), {"new_client": "Bistro"})
    assert Client.objects.get(name="Bistro").members.filter(pk=user.pk).exists()


def test_the_connection_steps_offer_the_clients_connections_of_their_kind_only(client, boss, books):
    atelier, invoicing, accounting = books
    other = ConnectionFactory(kind="invoicing", name="Someone else's")
    client.post(step_url("client"), {"client": atelier.pk})
    html = client.get(step_url("invoicing")).content.decode()
    assert "Invoices" in html and "Books" not in html and "Someone else" not in html
    assert "/admin/setup/invoicing/add-connection/" in html  # the add link
    response = client.post(step_url("invoicing"), {"connection": other.pk})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    response = client.post(step_url("invoicing"), {"connection": accounting.pk})
    assert response.status_code == 200  # not an invoicing connection
    assert client.post(step_url("invoicing"), {"connection": invoicing.pk}).status_code == 302


def test_back_and_next_keep_the_values_chosen(client, boss, books):
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    html = client.get(step_url("client")).content.decode()
    assert f'<option value="{atelier.pk}" selected>' in html
    html = client.get(step_url("invoicing")).content.decode()
    assert f'value="{invoicing.pk}"' in html and "checked" in html
    client.post(step_url("folder"), FOLDER)
    html = client.get(step_url("folder")).content.decode()
    assert 'value="Sales"' in html
    # Next again from the folder step changes nothing: the same flow.
    client.post(step_url("folder"), FOLDER)
    assert SyncFlow.objects.filter(client=atelier).count() == 1


def test_the_folder_step_reads_the_folders_live_and_keeps_the_name_on_an_error(client, boss, books):
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    html = client.get(step_url("folder")).content.decode()
    assert "Test company" in html
    response = client.post(step_url("folder"), {**FOLDER, "folder": "nope"})
    html = response.content.decode()
    assert response.status_code == 200 and 'value="Sales"' in html and "errorlist" in html
    SyncFlowFactory(client=atelier, name="Taken")
    response = client.post(step_url("folder"), {**FOLDER, "name": "Taken"})
    html = response.content.decode()
    assert response.status_code == 200 and 'value="Taken"' in html and "errorlist" in html


def test_the_mappings_are_prefilled_as_the_suggestions_fill_them(client, boss, books):
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    assert client.post(step_url("folder"), FOLDER).url == step_url("mappings")
    guided = SyncFlow.objects.get(client=atelier, name="Sales")
    reference = flow_create(
        client=atelier,
        name="Reference",
        invoicing_connection=invoicing,
        accounting_connection=accounting,
        folder="1",
        folder_name="Test company",
    )
    flow_mappings_suggest(flow=reference)
    reference.refresh_from_db()
    assert guided.enabled is False
    values = {name: getattr(guided, name) for name in FILLED_SETTINGS}
    assert values == {name: getattr(reference, name) for name in FILLED_SETTINGS}
    assert values["default_sales_account"] and values["sales_journal"]

    def vat_rows(flow):
        return list(
            flow.vat_mappings.order_by("direction", "source_rate").values_list(
                "direction", "source_rate", "source_tax_id", "target_code"
            )
        )

    assert vat_rows(guided) and vat_rows(guided) == vat_rows(reference)
    html = client.get(step_url("mappings")).content.decode()
    # Read as people read them: the account with its name, the VAT code by name and account.
    assert "706 – " in html and "TVA déductible 20 % · 44566" in html
    assert ">A20<" not in html


def test_the_checklist_and_the_preview_show_the_new_flow(client, boss, books):
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    client.post(step_url("folder"), FOLDER)
    assert client.post(step_url("mappings")).url == step_url("checklist")
    html = client.get(step_url("checklist")).content.decode()
    assert 'id="setup-checklist"' in html and 'data-state="done"' in html
    assert client.post(step_url("checklist")).url == step_url("preview")
    html = client.get(step_url("preview")).content.decode()
    assert html.count("F2026-") == 4


def test_enabling_confirms_the_count_and_names_a_flow_already_on_the_folder(client, boss, books):
    atelier, invoicing, accounting = books
    already = SyncFlowFactory(
        client=atelier,
        name="Older flow",
        invoicing_connection=invoicing,
        accounting_connection=accounting,
    )
    walk_to_folder(client, atelier, invoicing, accounting)
    client.post(step_url("folder"), FOLDER)
    html = client.get(step_url("enable")).content.decode()
    assert "The first run will post 4 invoices." in html
    assert 'id="setup-failing"' not in html
    assert "Older flow" in html and f"id {already.pk}" in html
    response = client.post(step_url("enable"), {})  # not confirmed
    assert response.status_code == 200
    assert not SyncFlow.objects.get(name="Sales").enabled
    response = client.post(step_url("enable"), {"confirm": "on"})
    flow = SyncFlow.objects.get(name="Sales")
    assert flow.enabled
    assert response.url == f"/admin/mappings/syncflow/{flow.pk}/change/"
    assert SESSION_KEY not in client.session


def test_enabling_an_incomplete_flow_is_refused_with_what_is_missing(
    client, boss, books, memory_connectors
):
    atelier, invoicing, accounting = books
    memory_connectors[1].journals = ()  # nothing to suggest: the journals stay blank
    walk_to_folder(client, atelier, invoicing, accounting)
    client.post(step_url("folder"), FOLDER)
    response = client.post(step_url("enable"), {"confirm": "on"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "can be enabled only once its setup is complete" in html and "Journals" in html
    assert not SyncFlow.objects.get(name="Sales").enabled


def test_only_staff_who_may_add_flows_reach_the_set_up(client, books):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_syncflow"))
    client.force_login(viewer)
    assert client.get(SETUP).status_code == 403
    assert client.get(step_url("client")).status_code == 403
    adder = UserFactory(username="adder")
    adder.user_permissions.add(*Permission.objects.filter(codename="add_syncflow"))
    client.force_login(adder)
    assert client.get(step_url("client")).status_code == 200
    # Someone else's client cannot be chosen.
    atelier = books[0]
    response = client.post(step_url("client"), {"client": atelier.pk})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    client.logout()
    assert client.get(step_url("client")).status_code == 302  # to the sign-in


def test_the_home_page_and_the_flows_list_link_to_the_set_up(client, boss):
    assert 'href="/admin/setup/"' in client.get("/admin/").content.decode()
    assert 'href="/admin/setup/"' in client.get("/admin/mappings/syncflow/").content.decode()


def test_a_connection_added_from_the_set_up_comes_back_to_it_chosen(client, boss, books):
    atelier, invoicing, _accounting = books
    client.post(step_url("client"), {"client": atelier.pk})
    client.post(step_url("invoicing"), {"connection": invoicing.pk})
    html = client.get(step_url("accounting")).content.decode()
    assert 'href="/admin/setup/accounting/add-connection/"' in html
    first = client.get(step_url("accounting") + "add-connection/")
    assert first.url == f"/admin/connectors/connection/add/?client={atelier.pk}&kind=accounting"
    second = client.get(
        "/admin/connectors/connection/add/",
        {"client": atelier.pk, "name": "New books", "tool": "accounting:memory",
         "auth_kind": "api_key"},
    )  # fmt: skip
    answer = client.post(
        second.url,
        {"client": atelier.pk, "name": "New books", "kind": "accounting", "provider": "memory",
         "auth_kind": "api_key", "credential_api_key": "key", "settings": "{}"},
    )  # fmt: skip
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    added = atelier.connections.get(name="New books")
    assert answer.url == f"{step_url('accounting')}?connection={added.pk}"
    html = client.get(answer.url).content.decode()
    assert re.search(rf'value="{added.pk}"[^>]*checked', html)


def test_a_tool_that_refuses_at_the_folder_step_shows_its_code_and_what_to_do(client, boss, books):
    atelier, invoicing, accounting = books
    accounting.credentials = {"api_key": "wrong-key"}
    accounting.save()
    walk_to_folder(client, atelier, invoicing, accounting)
    response = client.get(step_url("folder"))
    html = response.content.decode()
    assert response.status_code == 200 and 'id="setup-error"' in html
    assert "ERROR_" in html and "wrong-key" not in html
    response = client.post(step_url("folder"), FOLDER)
    html = response.content.decode()
    assert response.status_code == 200 and not SyncFlow.objects.filter(client=atelier).exists()
    assert 'value="Sales"' in html and 'value="2026-01-01"' in html  # typed, kept


def test_another_connection_chosen_after_the_flow_exists_changes_that_flow(client, boss, books):
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    client.post(step_url("folder"), FOLDER)
    other = checked_connection(atelier, "invoicing", name="Other invoices")
    assert client.post(step_url("invoicing"), {"connection": other.pk}).status_code == 302
    flow = SyncFlow.objects.get(client=atelier)
    assert flow.invoicing_connection == other
    assert client.get(step_url("mappings")).status_code == 200


def test_enabling_counts_the_invoices_that_would_fail(client, boss, books, memory_connectors):
    memory_connectors[0].put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),)))
    atelier, invoicing, accounting = books
    walk_to_folder(client, atelier, invoicing, accounting)
    client.post(step_url("folder"), FOLDER)
    flow = SyncFlow.objects.get(client=atelier)
    flow.vat_mappings.filter(source_rate=D("2.1")).delete()  # left unmapped
    html = client.get(step_url("enable")).content.decode()
    assert "The first run will post 4 invoices." in html
    assert "1 invoice would fail with its error code" in html


def test_a_connection_whose_check_fails_stays_on_its_page_with_a_link_back(client, boss, books):
    atelier, invoicing, _accounting = books
    client.post(step_url("client"), {"client": atelier.pk})
    client.post(step_url("invoicing"), {"connection": invoicing.pk})
    client.get(step_url("accounting") + "add-connection/")
    second = client.get(
        "/admin/connectors/connection/add/",
        {"client": atelier.pk, "name": "New books", "tool": "accounting:memory",
         "auth_kind": "api_key"},
    )  # fmt: skip
    answer = client.post(
        second.url,
        {"client": atelier.pk, "name": "New books", "kind": "accounting", "provider": "memory",
         "auth_kind": "api_key", "credential_api_key": "wrong-key", "settings": "{}"},
        follow=True,
    )  # fmt: skip
    added = atelier.connections.get(name="New books")
    assert answer.redirect_chain[-1][0] == f"/admin/connectors/connection/{added.pk}/change/"
    html = answer.content.decode()
    assert f'href="{step_url("accounting")}?connection={added.pk}"' in html
