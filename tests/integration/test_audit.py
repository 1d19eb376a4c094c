"""Every change of a flow's configuration and mappings is recorded: who, when, what."""

import json
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from mappings.audit import acting_as
from mappings.models import ConfigChange, SyncFlow
from mappings.services import flow_delete, flow_mappings_replace, flow_update
from tests.factories import SyncFlowFactory, UserFactory
from tests.integration.test_admin import _form_data

pytestmark = pytest.mark.django_db


def changes(flow):
    return list(ConfigChange.objects.filter(flow=flow).order_by("at", "id"))


def test_a_service_change_is_recorded_with_before_and_after_and_its_actor():
    flow = SyncFlowFactory()
    user = UserFactory(email="alice@firm.example")
    with acting_as(user):
        flow_update(flow=flow, data={"rounding_tolerance": D("0.10"), "label_mode": "partner"})
    last = changes(flow)[-1]
    assert (
        last.action == "changed" and last.actor == user and last.actor_label == "alice@firm.example"
    )
    assert last.changes["rounding_tolerance"] == {"from": "0.05", "to": "0.1"}
    assert last.changes["label_mode"] == {"from": "partner_then_description", "to": "partner"}


def test_mapping_changes_list_what_was_added_and_removed():
    flow = SyncFlowFactory(vat=[("sales", "20.0", "V20")])
    flow_mappings_replace(
        flow=flow,
        vat_mappings=[{"direction": "sales", "source_rate": D("10"), "target_code": "V10"}],
        journal_mappings=[],
    )
    last = changes(flow)[-1]
    assert last.changes["vat_mappings"] == {
        "added": ["sales 10 % → V10"],
        "removed": ["sales 20 % → V20"],
    }
    assert last.actor_label == "system"


def test_nothing_is_recorded_when_nothing_changed():
    flow = SyncFlowFactory()
    before = len(changes(flow))
    flow_update(flow=flow, data={"scope": flow.scope})
    assert len(changes(flow)) == before


def test_a_deletion_is_recorded_and_outlives_the_flow():
    flow = SyncFlowFactory()
    client, label = flow.client, str(flow)
    flow_delete(flow=flow)
    deleted = ConfigChange.objects.get(client=client, action="deleted")
    assert deleted.flow is None and deleted.flow_label == label


def test_an_admin_edit_records_the_signed_in_user(client, memory_connectors):
    flow = SyncFlowFactory()
    admin_user = UserFactory(is_superuser=True, email="boss@firm.example")
    client.force_login(admin_user)
    url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
    data = _form_data(client.get(url))
    data["rounding_tolerance"] = "0.25"
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    last = changes(flow)[-1]
    assert last.actor == admin_user and last.changes["rounding_tolerance"]["to"] == "0.25"


def test_the_import_command_is_the_recorded_actor(tmp_path):
    flow = SyncFlowFactory()
    path = tmp_path / "flow.json"
    call_command("export_flow", str(flow.pk), "--output", str(path))
    data = json.loads(path.read_text())
    data["flow"]["label_mode"] = "partner_and_number"
    path.write_text(json.dumps(data))
    call_command("import_flow", str(path), stdout=open("/dev/null", "w"))  # noqa: SIM115
    last = changes(SyncFlow.objects.get(pk=flow.pk))[-1]
    assert last.actor_label == "command import_flow"
    assert last.changes["label_mode"]["to"] == "partner_and_number"


def test_the_audit_is_readable_in_the_admin_and_scoped_to_the_users_clients(client):
    mine, theirs = SyncFlowFactory(), SyncFlowFactory()
    flow_update(flow=mine, data={"label_mode": "partner"})
    flow_update(flow=theirs, data={"label_mode": "partner"})
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Viewer"))
    mine.client.members.add(user)
    client.force_login(user)
    page = client.get(reverse("admin:mappings_configchange_changelist")).content.decode()
    assert str(mine) in page and str(theirs) not in page
    other = ConfigChange.objects.filter(flow=theirs).first()
    response = client.get(reverse("admin:mappings_configchange_change", args=[other.pk]))
    assert response.status_code in (302, 404)
    own = ConfigChange.objects.filter(flow=mine).last()
    detail = client.get(reverse("admin:mappings_configchange_change", args=[own.pk]))
    assert detail.status_code == 200 and "label_mode" in detail.content.decode()


# -- Inline rows (VAT and journal mappings) saved from the flow's admin page -------------------


def _flow_page_post(client, flow, edit):
    """Open the flow's admin page, let ``edit`` change the form data, post it."""
    url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
    page = client.get(url)
    data = _form_data(page)
    edit(data, page)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


def _inline_prefix(page, model_name: str) -> str:
    for inline in page.context["inline_admin_formsets"]:
        if inline.formset.model._meta.model_name == model_name:
            return inline.formset.prefix
    raise AssertionError(model_name)


def _row(page, model_name: str, **match) -> str:
    """The form prefix of the inline row whose initial values match ``match``."""
    for inline in page.context["inline_admin_formsets"]:
        if inline.formset.model._meta.model_name != model_name:
            continue
        for form in inline.formset.forms:
            if form.instance.pk and all(
                str(getattr(form.instance, k)) == str(v) for k, v in match.items()
            ):
                return form.prefix
    raise AssertionError(match)


@pytest.fixture
def accountant(client, memory_connectors):
    user = UserFactory(is_superuser=True, email="carla@firm.example")
    client.force_login(user)
    return user


def test_inline_vat_rows_changed_in_one_save_are_recorded_in_that_save_with_before_and_after(
    client, accountant
):
    flow = SyncFlowFactory(vat=[("sales", "20.0", "V20"), ("sales", "10.0", "V10")])
    before = len(changes(flow))

    def edit(data, page):
        data[_row(page, "vatmapping", target_code="V10") + "-target_code"] = "V55"
        data[_row(page, "vatmapping", target_code="V20") + "-DELETE"] = "on"

    _flow_page_post(client, flow, edit)
    recorded = changes(flow)[before:]
    assert len(recorded) == 1, [c.changes for c in recorded]
    last = recorded[0]
    assert last.actor == accountant and last.actor_label == "carla@firm.example"
    assert last.changes["vat_mappings"] == {
        "added": ["sales 10 % → V55"],
        "removed": ["sales 10 % → V10", "sales 20 % → V20"],
    }
    assert last.snapshot["vat_mappings"] == ["sales 10 % → V55"]


def test_an_added_journal_row_is_recorded_in_its_own_save_not_the_next_one(client, accountant):
    flow = SyncFlowFactory()
    before = len(changes(flow))

    def add_row(data, page):
        prefix = _inline_prefix(page, "journalmapping")
        data[f"{prefix}-0-source_journal"] = "VT"
        data[f"{prefix}-0-target_journal"] = "REV"

    _flow_page_post(client, flow, add_row)
    first = changes(flow)[before:]
    assert [c.changes.get("journal_mappings") for c in first] == [
        {"added": ["VT → REV"], "removed": []}
    ]
    # The next save, changing only a setting, records only that setting.
    _flow_page_post(client, flow, lambda data, page: data.update(rounding_tolerance="0.25"))
    second = changes(flow)[before + 1 :]
    assert [sorted(c.changes) for c in second] == [["rounding_tolerance"]]


def test_a_setting_and_a_row_changed_together_make_one_record(client, accountant):
    flow = SyncFlowFactory(vat=[("sales", "20.0", "V20")])
    before = len(changes(flow))

    def edit(data, page):
        data["label_mode"] = "partner"
        data[_row(page, "vatmapping", target_code="V20") + "-target_code"] = "V10"

    _flow_page_post(client, flow, edit)
    recorded = changes(flow)[before:]
    assert len(recorded) == 1
    assert sorted(recorded[0].changes) == ["label_mode", "vat_mappings"]
    assert recorded[0].actor == accountant


def test_a_flow_added_with_its_rows_is_one_created_record_holding_them(client, accountant):
    from tests.factories import ClientFactory, ConnectionFactory

    owner = ClientFactory()
    source = ConnectionFactory(client=owner, kind="invoicing")
    target = ConnectionFactory(client=owner, kind="accounting")
    url = reverse("admin:mappings_syncflow_add")
    data = _form_data(client.get(url))
    data.update(
        {
            "client": str(owner.pk),
            "name": "Added with rows",
            "invoicing_connection": str(source.pk),
            "accounting_connection": str(target.pk),
            "schedule_minutes": "60",
            "vat_mappings-TOTAL_FORMS": "1",
            "vat_mappings-0-direction": "sales",
            "vat_mappings-0-source_rate": "20",
            "vat_mappings-0-target_code": "V20",
            "journal_mappings-TOTAL_FORMS": "1",
            "journal_mappings-0-source_journal": "VT",
            "journal_mappings-0-target_journal": "REV",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    flow = SyncFlow.objects.get(name="Added with rows")
    (created,) = changes(flow)
    assert created.action == "created" and created.actor == accountant
    assert created.changes["vat_mappings"] == {"added": ["sales 20 % → V20"], "removed": []}
    assert created.changes["journal_mappings"] == {"added": ["VT → REV"], "removed": []}


def test_a_refused_save_records_nothing(client, accountant):
    flow = SyncFlowFactory(vat=[("sales", "20.0", "V20")])
    before = len(changes(flow))
    url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
    page = client.get(url)
    data = _form_data(page)
    data[_row(page, "vatmapping", target_code="V20") + "-target_code"] = "V10"
    data["schedule_minutes"] = "0"  # refused: the row change must not be recorded either
    response = client.post(url, data)
    assert response.status_code == 200
    assert len(changes(flow)) == before
