"""The admin: every page loads, credentials are write-only and never shown, saves go through the
services (schedules, configuration versions), and the actions call the sync services."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection as db
from django.urls import reverse
from django.utils.html import escape
from django_q.models import Schedule

from connectors.models import Client, Connection
from mappings.models import SyncFlow
from mappings.selectors import flow_schedule_name
from syncs.models import PartnerLink, SyncedRecord, SyncRun
from tests.factories import (
    ClientFactory,
    ConnectionFactory,
    JournalMappingFactory,
    PartnerLinkFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-api-key-XYZ"


@pytest.fixture
def data(memory_connectors):
    """One of everything, with a planted secret on the flow's connections."""
    flow = SyncFlowFactory(
        client__name="ACME",
        invoicing_connection__credentials={"api_key": SECRET},
        accounting_connection__credentials={"api_key": SECRET},
    )
    JournalMappingFactory(flow=flow)
    run = SyncRunFactory(flow=flow, status="partial", failed_count=1)
    record = SyncedRecordFactory(flow=flow, last_run=run, partner_name="Globex")
    link = PartnerLinkFactory(flow=flow)
    return {
        Client: flow.client,
        Connection: flow.invoicing_connection,
        SyncFlow: flow,
        SyncRun: run,
        SyncedRecord: record,
        PartnerLink: link,
    }


def _url(model, view, *args):
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def _form_data(response) -> dict:
    """The POST data of an admin change form as the browser would send it unchanged."""
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
            data[form.add_prefix(name)] = (
                [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
            )

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# Every page


ALL_MODELS = (Client, Connection, SyncFlow, SyncRun, SyncedRecord, PartnerLink)
READ_ONLY = (SyncRun, SyncedRecord, PartnerLink)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_changelist_add_and_change_pages_load(admin_client, data, model):
    obj = data[model]
    pages = [_url(model, "changelist"), _url(model, "change", obj.pk)]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode()
    add = admin_client.get(_url(model, "add"))
    assert add.status_code == (403 if model in READ_ONLY else 200)


def test_admin_index_loads(admin_client, data):
    assert admin_client.get(reverse("admin:index")).status_code == 200


def test_record_page_shows_the_error_message_and_its_resolution(admin_client, data):
    record = data[SyncedRecord]
    html = admin_client.get(_url(SyncedRecord, "change", record.pk)).content.decode()
    assert record.error_message in html
    # The catalogue's resolution, HTML-escaped as the page shows it.
    assert record.resolution.startswith("Add the rate (or the source tax) to the flow's")
    assert escape(record.resolution) in html
    assert "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND" in html


def test_logs_are_read_only(admin_client, data):
    run, record = data[SyncRun], data[SyncedRecord]
    response = admin_client.post(_url(SyncRun, "change", run.pk), {"status": "failed"})
    assert response.status_code == 403
    assert admin_client.post(_url(SyncedRecord, "delete", record.pk)).status_code == 403


def test_a_partner_link_can_be_deleted_to_reset_it(admin_client, data):
    link = data[PartnerLink]
    response = admin_client.post(_url(PartnerLink, "delete", link.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not PartnerLink.objects.filter(pk=link.pk).exists()


# Credentials are write-only


def _raw_credentials(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM connectors_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_the_stored_secret_is_never_rendered_nor_stored_in_clear(admin_client, data):
    connection = data[Connection]
    urls = [
        _url(Connection, "changelist"),
        _url(Connection, "change", connection.pk),
        _url(Connection, "history", connection.pk),
        _url(Connection, "delete", connection.pk),
        _url(SyncFlow, "change", data[SyncFlow].pk),
        _url(Client, "change", connection.client.pk),
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url
    html = admin_client.get(_url(Connection, "change", connection.pk)).content.decode()
    assert 'name="credential_api_key"' in html
    assert "API key: stored" in html
    assert SECRET not in _raw_credentials(connection.pk)
    # Nor can it be found by searching for it.
    search = admin_client.get(_url(Connection, "changelist"), {"q": SECRET})
    assert search.context["cl"].result_count == 0


def _post_connection(admin_client, connection, **changes):
    url = _url(Connection, "change", connection.pk)
    data = _form_data(admin_client.get(url))
    assert data["credential_api_key"] == ""  # the form never carries the stored secret
    data.update(changes)
    return admin_client.post(url, data)


def test_posting_a_blank_secret_keeps_the_stored_one(admin_client, data):
    connection = data[Connection]
    response = _post_connection(admin_client, connection, name="Renamed")
    assert response.status_code == 302
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.name == "Renamed"
    assert stored.credentials == {"api_key": SECRET}


def test_posting_a_new_secret_replaces_the_stored_one_and_logs_no_value(admin_client, data):
    connection = data[Connection]
    response = _post_connection(admin_client, connection, credential_api_key="new-key-ABC")
    assert response.status_code == 302
    assert Connection.objects.get(pk=connection.pk).credentials == {"api_key": "new-key-ABC"}
    entry = LogEntry.objects.filter(object_id=str(connection.pk)).latest("action_time")
    assert "new-key-ABC" not in entry.change_message
    assert "credentials" in entry.change_message
    assert "API key" not in entry.change_message
    history = admin_client.get(_url(Connection, "history", connection.pk)).content.decode()
    assert "new-key-ABC" not in history


def test_a_refused_form_does_not_echo_the_typed_secret(admin_client, data):
    connection = data[Connection]
    response = _post_connection(
        admin_client, connection, credential_password="typed-secret-123", name=""
    )
    assert response.status_code == 200
    assert "typed-secret-123" not in response.content.decode()
    assert Connection.objects.get(pk=connection.pk).credentials == {"api_key": SECRET}


def test_adding_a_connection_stores_its_secret_encrypted(admin_client, memory_connectors):
    client = ClientFactory()
    # The first step (tool and authentication) leads to the form of that tool's fields.
    first = admin_client.get(
        _url(Connection, "add"),
        {"client": client.pk, "name": "Books", "tool": "accounting:memory", "auth_kind": "api_key"},
    )
    assert first.status_code == 302
    add_url = first["Location"]
    form = _form_data(admin_client.get(add_url))
    assert (form["client"], form["name"], form["provider"]) == (str(client.pk), "Books", "memory")
    form.update(credential_api_key=SECRET)
    response = admin_client.post(add_url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    connection = Connection.objects.get(name="Books")
    assert connection.credentials == {"api_key": SECRET}
    assert SECRET not in _raw_credentials(connection.pk)
    entry = LogEntry.objects.get(object_id=str(connection.pk))
    assert SECRET not in entry.change_message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": "vendor-x"}, "provider"),
        ({"auth_kind": "oauth2"}, "auth_kind"),  # the memory source does not take OAuth2
        ({"credential_password": "pw"}, "credential_password"),  # not an API-key secret
        ({"settings": '{"colour": "red"}'}, "settings"),
        ({"kind": "accounting"}, "kind"),  # used by a flow as its source
    ],
)
def test_the_connection_form_refuses_inconsistent_values(admin_client, data, changes, field):
    response = _post_connection(admin_client, data[Connection], **changes)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors


def test_test_connection_action_shows_each_check_message(admin_client, data):
    good = data[Connection]
    bad = ConnectionFactory(client=good.client, credentials={"api_key": "wrong"})
    response = admin_client.post(
        _url(Connection, "changelist"),
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    shown = _messages(response)
    assert any("invoices visible" in message for message in shown)
    assert any("refused the API key" in message for message in shown)
    assert Connection.objects.get(pk=good.pk).last_check_ok is True
    assert Connection.objects.get(pk=bad.pk).last_check_ok is False
    assert SECRET not in response.content.decode()


# Flows


def _schedule(flow) -> Schedule | None:
    return Schedule.objects.filter(name=flow_schedule_name(flow.pk)).first()


def test_adding_an_enabled_flow_creates_its_schedule(admin_client, memory_connectors):
    client = ClientFactory()
    # A flow is enabled only with its setup complete, connections checked included.
    source = ConnectionFactory(client=client, kind="invoicing", last_check_ok=True)
    target = ConnectionFactory(client=client, kind="accounting", last_check_ok=True)
    add_url = _url(SyncFlow, "add")
    form = _form_data(admin_client.get(add_url))
    form.update(
        {
            "client": str(client.pk),
            "name": "Main",
            "invoicing_connection": str(source.pk),
            "accounting_connection": str(target.pk),
            "enabled": "on",
            "schedule_minutes": "30",
            "folder": "1",
            "start_date": "2026-01-01",
            "sales_journal": "REV",
            "purchases_journal": "EXP",
            "default_sales_account": "706",
            "default_purchases_account": "6071",
            "customer_collective_account": "4111",
            "supplier_collective_account": "4011",
            "rounding_credit_account": "758",
            "rounding_debit_account": "658",
            "sales_rounding_vat_code": "V0",
            "purchases_rounding_vat_code": "A0",
            "vat_mappings-TOTAL_FORMS": "2",
            "vat_mappings-0-direction": "sales",
            "vat_mappings-0-source_rate": "20",
            "vat_mappings-0-target_code": "V20",
            "vat_mappings-1-direction": "purchases",
            "vat_mappings-1-source_rate": "20",
            "vat_mappings-1-target_code": "A20",
        }
    )
    response = admin_client.post(add_url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    flow = SyncFlow.objects.get(name="Main")
    assert flow.vat_mappings.get(direction="sales").target_code == "V20"
    schedule = _schedule(flow)
    assert schedule.func == "syncs.tasks.run_flow"
    assert schedule.minutes == 30


def test_a_flow_with_another_clients_connection_is_refused(admin_client, data):
    flow = data[SyncFlow]
    foreign = ConnectionFactory(kind="accounting")
    url = _url(SyncFlow, "change", flow.pk)
    form = _form_data(admin_client.get(url))
    form["accounting_connection"] = str(foreign.pk)
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "accounting_connection" in response.context["adminform"].form.errors


def test_disabling_a_flow_removes_its_schedule(admin_client, data):
    flow = data[SyncFlow]
    url = _url(SyncFlow, "change", flow.pk)
    form = _form_data(admin_client.get(url))
    assert admin_client.post(url, form).status_code == 302
    assert _schedule(flow) is not None
    form.pop("enabled")
    assert admin_client.post(url, form).status_code == 302
    assert _schedule(flow) is None
    assert SyncFlow.objects.get(pk=flow.pk).enabled is False


def test_editing_a_mapping_inline_raises_the_config_version(admin_client, data):
    flow = data[SyncFlow]
    url = _url(SyncFlow, "change", flow.pk)
    before = SyncFlow.objects.get(pk=flow.pk).config_version
    form = _form_data(admin_client.get(url))
    assert admin_client.post(url, form).status_code == 302
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before  # nothing changed

    form = _form_data(admin_client.get(url))
    form["journal_mappings-0-target_journal"] = "MISC"
    assert admin_client.post(url, form).status_code == 302
    assert flow.journal_mappings.get().target_journal == "MISC"
    assert SyncFlow.objects.get(pk=flow.pk).config_version > before


def test_a_vat_rate_mapped_twice_is_refused(admin_client, data):
    flow = data[SyncFlow]
    url = _url(SyncFlow, "change", flow.pk)
    form = _form_data(admin_client.get(url))
    extra = int(form["vat_mappings-TOTAL_FORMS"]) - 1  # the empty extra form
    form.update(
        {
            f"vat_mappings-{extra}-direction": "purchases",
            f"vat_mappings-{extra}-source_tax_id": "tax-1",
            f"vat_mappings-{extra}-target_code": "A20",
            f"vat_mappings-{extra + 1}-direction": "purchases",
            f"vat_mappings-{extra + 1}-source_tax_id": "tax-1",
            f"vat_mappings-{extra + 1}-target_code": "A10",
            f"vat_mappings-{extra + 1}-flow": str(flow.pk),
            "vat_mappings-TOTAL_FORMS": str(extra + 2),
        }
    )
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert not flow.vat_mappings.filter(source_tax_id="tax-1").exists()


def test_flow_list_shows_the_last_run_and_a_link_to_failed_records(admin_client, data):
    html = admin_client.get(_url(SyncFlow, "changelist")).content.decode()
    assert "Completed, 1 failed" in html
    assert f"flow__id__exact={data[SyncFlow].pk}&amp;status__exact=failed" in html


def test_sync_now_action_queues_each_flow(admin_client, data, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "syncs.services.flow_sync_enqueue",
        lambda *, flow, trigger="manual": calls.append((flow.pk, trigger)) or "task-id",
    )
    other = SyncFlowFactory()
    response = admin_client.post(
        _url(SyncFlow, "changelist"),
        {"action": "sync_now", "_selected_action": [data[SyncFlow].pk, other.pk]},
        follow=True,
    )
    assert sorted(calls) == sorted([(data[SyncFlow].pk, "manual"), (other.pk, "manual")])
    # Each flow's message links to a page that follows its run until it starts.
    texts = _messages(response)
    for flow in (data[SyncFlow], other):
        (text,) = [t for t in texts if f"Queued a sync of “{flow}”" in t]
        queued = reverse("admin:syncs_syncrun_queued", args=[flow.pk])
        assert f'<a href="{queued}?task=task-id&amp;since=' in text and "follow its run" in text


def test_retry_all_failed_records_action_passes_the_failed_records(admin_client, data, monkeypatch):
    passed = []

    def fake(*, records):
        passed.extend(records)
        return len(passed)

    monkeypatch.setattr("syncs.services.records_retry_enqueue", fake)
    flow = data[SyncFlow]
    SyncedRecordFactory(flow=flow, status="synced", error_code="")
    SyncedRecordFactory(status="failed")  # another flow's
    response = admin_client.post(
        _url(SyncFlow, "changelist"),
        {"action": "retry_failed_records", "_selected_action": [flow.pk]},
        follow=True,
    )
    assert passed == [data[SyncedRecord]]
    assert "Queued 1 failed record for retry." in _messages(response)


def test_retry_action_on_records_passes_only_failed_ones(admin_client, data, monkeypatch):
    passed = []

    def fake(*, records):
        passed.extend(records)
        return len(passed)

    monkeypatch.setattr("syncs.services.records_retry_enqueue", fake)
    synced = SyncedRecordFactory(flow=data[SyncFlow], status="synced", error_code="")
    response = admin_client.post(
        _url(SyncedRecord, "changelist"),
        {"action": "retry", "_selected_action": [data[SyncedRecord].pk, synced.pk]},
        follow=True,
    )
    assert passed == [data[SyncedRecord]]
    shown = _messages(response)
    assert "Queued 1 failed record for retry." in shown
    assert "1 selected record was not failed and not retried." in shown


def test_export_configuration_action_downloads_the_json_without_secrets(admin_client, data):
    response = admin_client.post(
        _url(SyncFlow, "changelist"),
        {"action": "export_configuration", "_selected_action": [data[SyncFlow].pk]},
    )
    assert response["Content-Type"] == "application/json"
    assert response.json()["format"] == "invsync.flow"
    assert SECRET not in response.content.decode()


def test_deleting_a_flow_in_the_admin_removes_its_schedule(admin_client, data):
    flow = data[SyncFlow]
    url = _url(SyncFlow, "change", flow.pk)
    admin_client.post(url, _form_data(admin_client.get(url)))
    name = flow_schedule_name(flow.pk)
    assert Schedule.objects.filter(name=name).exists()
    response = admin_client.post(_url(SyncFlow, "delete", flow.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Schedule.objects.filter(name=name).exists()


# Staff see only their clients


def test_staff_see_only_the_clients_they_are_members_of(client, data):
    user = UserFactory()
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_syncflow", "view_syncedrecord"])
    )
    other = SyncFlowFactory(client__name="Globex")
    other.client.members.add(user)
    client.force_login(user)
    html = client.get(_url(SyncFlow, "changelist")).content.decode()
    assert "Globex" in html
    assert "ACME" not in html
    assert client.get(_url(SyncFlow, "change", data[SyncFlow].pk)).status_code == 302
    assert client.get(_url(SyncedRecord, "change", data[SyncedRecord].pk)).status_code == 302
    # Without the right to add runs or change records, the actions are not offered.
    assert "sync_now" not in html
    assert "retry_failed_records" not in html


def test_a_client_is_deleted_in_the_admin_with_its_flows_connections_and_schedules(
    admin_client, data
):
    # Flows RESTRICT their connections on their own, but deleting the client takes both along.
    flow, client = data[SyncFlow], data[Client]
    url = _url(SyncFlow, "change", flow.pk)
    admin_client.post(url, _form_data(admin_client.get(url)))
    name = flow_schedule_name(flow.pk)
    assert Schedule.objects.filter(name=name).exists()
    confirm = admin_client.get(_url(Client, "delete", client.pk))
    assert confirm.status_code == 200 and not confirm.context["protected"]
    response = admin_client.post(_url(Client, "delete", client.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Client.objects.filter(pk=client.pk).exists()
    assert not Connection.objects.filter(client_id=client.pk).exists()
    assert not SyncRun.objects.exists()
    assert not Schedule.objects.filter(name=name).exists()
