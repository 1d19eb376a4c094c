"""Runs, records and configuration changes are logs nobody deletes one by one, yet deleting their
flow or client in the admin takes them along: staff allowed to delete a flow (or a client) are not
asked for the logs' delete permission. The upper apps mark those models
(``deleted_with_owner``); connectors' admin names none of them."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.urls import reverse

from connectors.models import Client
from mappings.models import ConfigChange, SyncFlow
from mappings.services import flow_config_changed
from syncs.models import SyncedRecord, SyncRun
from tests.factories import SyncedRecordFactory, SyncFlowFactory, SyncRunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(memory_connectors):
    flow = SyncFlowFactory(client__name="ACME")
    run = SyncRunFactory(flow=flow)
    SyncedRecordFactory(flow=flow, last_run=run)
    flow_config_changed(flow=flow)  # a configuration change in the audit
    return flow


def _staff_who_may_delete(client, flow: SyncFlow, *codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    flow.client.members.add(user)
    client.force_login(user)
    return client


def test_the_log_models_are_those_marked_deleted_with_owner():
    marked = {m for m in apps.get_models() if getattr(m, "deleted_with_owner", False)}
    assert marked == {SyncRun, SyncedRecord, ConfigChange}


def test_staff_delete_a_flow_with_its_runs_records_and_audit(client, flow):
    staff = _staff_who_may_delete(client, flow, "view_syncflow", "delete_syncflow")
    url = reverse("admin:mappings_syncflow_delete", args=[flow.pk])
    confirm = staff.get(url)
    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"]
    assert staff.post(url, {"post": "yes"}).status_code == 302
    assert not SyncFlow.objects.filter(pk=flow.pk).exists()
    assert not SyncRun.objects.exists() and not SyncedRecord.objects.exists()


def test_staff_delete_a_client_with_its_flows_and_their_logs(client, flow):
    staff = _staff_who_may_delete(
        client,
        flow,
        "view_client",
        "delete_client",
        "delete_connection",
        "delete_syncflow",
        "delete_vatmapping",
        "delete_journalmapping",
        "delete_partnerlink",
    )
    url = reverse("admin:connectors_client_delete", args=[flow.client.pk])
    confirm = staff.get(url)
    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"]
    assert staff.post(url, {"post": "yes"}).status_code == 302
    assert not Client.objects.filter(pk=flow.client.pk).exists()
    assert not SyncRun.objects.exists() and not SyncedRecord.objects.exists()
