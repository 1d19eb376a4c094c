"""Flow and connection services: validation, configuration versions, django-q2 schedules, checks."""

from __future__ import annotations

import ast
import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection as db
from django.utils import timezone
from django_q.models import Schedule

from connectors.base import AuthKind, InvoicingSource
from connectors.canonical import ConnectionCheck
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import Connection
from connectors.selectors import connector_for
from connectors.services import (
    REDACTED,
    client_delete,
    connection_check,
    connection_create,
    connection_update,
)
from mappings.models import SyncFlow
from mappings.selectors import flow_get_by_name_or_id, flow_schedule_name
from mappings.services import (
    RUN_FLOW_TASK,
    flow_config_changed,
    flow_create,
    flow_delete,
    flow_mappings_replace,
    flow_schedule_sync,
    flow_update,
)
from tests.doubles import MemorySource, MemoryTarget
from tests.factories import ClientFactory, ConnectionFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-api-key-XYZ"


def _connections(client, *, checked=False):
    # ``checked``: both passed Test connection, as a flow needs before it can be enabled.
    check = {"last_check_ok": True, "last_checked_at": timezone.now()} if checked else {}
    source = ConnectionFactory(client=client, kind="invoicing", name="Invoicing", **check)
    target = ConnectionFactory(client=client, kind="accounting", name="Accounting", **check)
    return source, target


# Everything a flow's setup checklist asks for, so that the flow may be enabled.
COMPLETE_SETUP = {
    "folder": "1",
    "start_date": dt.date(2026, 1, 1),
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
}
COMPLETE_VAT = [
    {"direction": "sales", "source_rate": "20", "target_code": "V20"},
    {"direction": "purchases", "source_rate": "20", "target_code": "A20"},
]


def _schedule(flow) -> Schedule | None:
    return Schedule.objects.filter(name=flow_schedule_name(flow.pk)).first()


# flow_create / flow_update


def test_flow_create_with_connections_of_another_client_is_refused():
    client, other = ClientFactory(), ClientFactory()
    source, _ = _connections(client)
    _, foreign_target = _connections(other)
    with pytest.raises(ValidationError) as error:
        flow_create(
            client=client,
            name="Flow",
            invoicing_connection=source,
            accounting_connection=foreign_target,
        )
    assert "accounting_connection" in error.value.message_dict
    assert not SyncFlow.objects.exists()


def test_flow_create_with_swapped_connection_kinds_is_refused():
    client = ClientFactory()
    source, target = _connections(client)
    with pytest.raises(ValidationError) as error:
        flow_create(
            client=client, name="Flow", invoicing_connection=target, accounting_connection=source
        )
    assert set(error.value.message_dict) == {"invoicing_connection", "accounting_connection"}


def test_flow_create_rejects_unknown_settings():
    client = ClientFactory()
    source, target = _connections(client)
    with pytest.raises(ValidationError, match="bogus"):
        flow_create(
            client=client,
            name="Flow",
            invoicing_connection=source,
            accounting_connection=target,
            bogus=1,
        )


def test_enabled_flow_gets_a_django_q_schedule_running_its_task_every_schedule_minutes():
    client = ClientFactory()
    source, target = _connections(client, checked=True)
    flow = flow_create(
        client=client,
        name="Flow",
        invoicing_connection=source,
        accounting_connection=target,
        enabled=True,
        schedule_minutes=15,
        **COMPLETE_SETUP,
        vat_mappings=COMPLETE_VAT,
    )
    schedule = _schedule(flow)
    assert schedule is not None
    assert schedule.func == RUN_FLOW_TASK == "syncs.tasks.run_flow"
    assert schedule.schedule_type == Schedule.MINUTES
    assert schedule.minutes == 15
    assert schedule.repeats == -1
    # django-q2 literal_evals the arguments: run_flow(<pk>, trigger="schedule").
    assert ast.literal_eval(schedule.args) == flow.pk
    assert schedule.kwargs == "trigger='schedule'"
    assert flow.default_sales_account == "706"


def test_disabled_flow_has_no_schedule():
    client = ClientFactory()
    source, target = _connections(client)
    flow = flow_create(
        client=client, name="Flow", invoicing_connection=source, accounting_connection=target
    )
    assert flow.enabled is False
    assert _schedule(flow) is None


def test_flow_schedule_follows_enabling_disabling_and_minutes_and_is_idempotent():
    flow = SyncFlowFactory(
        enabled=False,
        start_date=dt.date(2026, 1, 1),
        invoicing_connection__last_check_ok=True,
        accounting_connection__last_check_ok=True,
    )
    flow_update(flow=flow, data={"enabled": True})
    assert _schedule(flow).minutes == 60
    flow_schedule_sync(flow=flow)
    flow_schedule_sync(flow=flow)
    assert Schedule.objects.filter(name=flow_schedule_name(flow.pk)).count() == 1

    flow_update(flow=flow, data={"schedule_minutes": 5})
    assert _schedule(flow).minutes == 5

    flow_update(flow=flow, data={"enabled": False})
    assert _schedule(flow) is None
    flow_schedule_sync(flow=flow)
    assert _schedule(flow) is None


def test_flow_update_raises_config_version_only_when_a_value_changes():
    flow = SyncFlowFactory()
    before = SyncFlow.objects.get(pk=flow.pk).config_version
    flow_update(flow=flow, data={"default_sales_account": flow.default_sales_account})
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before
    flow_update(flow=flow, data={"default_sales_account": "707"})
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before + 1
    assert flow.config_version == before + 1


def test_flow_update_never_overwrites_the_cursor_and_lease_from_a_stale_copy():
    flow = SyncFlowFactory()
    stale = SyncFlow.objects.get(pk=flow.pk)
    cursor = timezone.now() - dt.timedelta(hours=1)
    SyncFlow.objects.filter(pk=flow.pk).update(
        source_cursor=cursor, lease_owner="worker-1", lease_until=timezone.now()
    )
    flow_update(flow=stale, data={"sales_journal": "MISC"})
    stored = SyncFlow.objects.get(pk=flow.pk)
    assert stored.sales_journal == "MISC"
    assert stored.source_cursor == cursor
    assert stored.lease_owner == "worker-1"


def test_flow_update_rejects_bookkeeping_fields():
    flow = SyncFlowFactory()
    with pytest.raises(ValidationError, match="config_version"):
        flow_update(flow=flow, data={"config_version": 99})


def test_flow_update_validates_values():
    flow = SyncFlowFactory()
    with pytest.raises(ValidationError) as error:
        flow_update(flow=flow, data={"scope": "everything"})
    assert "scope" in error.value.message_dict


def test_flow_config_changed_increments_in_the_database():
    flow = SyncFlowFactory()
    stale = SyncFlow.objects.get(pk=flow.pk)
    flow_config_changed(flow=flow)
    flow_config_changed(flow=stale)  # F(): a stale copy still adds one
    assert SyncFlow.objects.get(pk=flow.pk).config_version == flow.config_version + 1


def test_flow_mappings_replace_replaces_rows_and_names_a_bad_row():
    flow = SyncFlowFactory()
    before = SyncFlow.objects.get(pk=flow.pk).config_version
    flow_mappings_replace(
        flow=flow,
        vat_mappings=[{"direction": "sales", "source_tax_id": "tax-1", "target_code": "V20"}],
        journal_mappings=[{"source_journal": "VT", "target_journal": "REV"}],
    )
    assert list(flow.vat_mappings.values_list("source_tax_id", flat=True)) == ["tax-1"]
    assert flow.journal_mappings.count() == 1
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before + 1
    with pytest.raises(ValidationError) as error:
        flow_mappings_replace(
            flow=flow,
            vat_mappings=[{"direction": "sales", "target_code": "V0"}],
            journal_mappings=[],
        )
    assert "vat_mappings[0]" in error.value.message_dict


def test_flow_delete_removes_its_schedule():
    flow = SyncFlowFactory(enabled=True)
    flow_schedule_sync(flow=flow)
    name = flow_schedule_name(flow.pk)
    flow_delete(flow=flow)
    assert not Schedule.objects.filter(name=name).exists()


def test_client_delete_removes_its_flows_schedules():
    flow = SyncFlowFactory(enabled=True)
    flow_schedule_sync(flow=flow)
    name = flow_schedule_name(flow.pk)
    client_delete(client=flow.client)
    assert not Schedule.objects.filter(name=name).exists()
    assert not SyncFlow.objects.exists()


# flow_get_by_name_or_id


def test_flow_get_by_id_name_and_client_slash_name():
    flow = SyncFlowFactory(name="Main sync", client__name="ACME")
    assert flow_get_by_name_or_id(str(flow.pk)) == flow
    assert flow_get_by_name_or_id("Main sync") == flow
    assert flow_get_by_name_or_id("ACME/Main sync") == flow
    with pytest.raises(SyncFlow.DoesNotExist):
        flow_get_by_name_or_id("Nope")


def test_flow_get_by_ambiguous_name_lists_the_candidates_with_ids():
    first = SyncFlowFactory(name="Main sync", client__name="ACME")
    second = SyncFlowFactory(name="Main sync", client__name="Globex")
    with pytest.raises(ValueError) as error:
        flow_get_by_name_or_id("Main sync")
    assert f"id {first.pk}" in str(error.value)
    assert f"id {second.pk}" in str(error.value)
    assert flow_get_by_name_or_id("Globex/Main sync") == second


def test_flow_get_by_numeric_name_when_no_such_id():
    flow = SyncFlowFactory(name="2026")
    assert flow_get_by_name_or_id("2026") == flow


# Connections


def _raw_credentials(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM connectors_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_connection_create_stores_credentials_encrypted(memory_connectors):
    client = ClientFactory()
    connection = connection_create(
        client=client,
        name="Books",
        kind="accounting",
        provider="memory",
        auth_kind="api_key",
        settings={},
        credentials={"api_key": SECRET},
    )
    assert SECRET not in _raw_credentials(connection.pk)
    assert Connection.objects.get(pk=connection.pk).credentials == {"api_key": SECRET}
    assert SECRET not in repr(Connection.objects.get(pk=connection.pk).credentials)


def test_connection_create_refuses_secrets_of_another_auth_kind_without_echoing_them():
    with pytest.raises(ValidationError) as error:
        connection_create(
            client=ClientFactory(),
            name="Books",
            kind="accounting",
            provider="memory",
            auth_kind="api_key",
            settings={},
            credentials={"password": SECRET},
        )
    assert "password" in str(error.value)
    assert SECRET not in str(error.value)


def test_connection_update_keeps_blank_secrets_and_replaces_given_ones():
    connection = ConnectionFactory(auth_kind="credentials", credentials={})
    connection_update(
        connection=connection, data={}, credentials={"username": "bob", "password": SECRET}
    )
    connection_update(
        connection=connection,
        data={"name": "Renamed"},
        credentials={"username": "", "password": ""},
    )
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.name == "Renamed"
    assert stored.credentials == {"username": "bob", "password": SECRET}
    connection_update(connection=connection, data={}, credentials={"password": "new-password"})
    assert Connection.objects.get(pk=connection.pk).credentials == {
        "username": "bob",
        "password": "new-password",
    }


def test_connection_update_to_another_auth_kind_drops_the_old_secrets():
    connection = ConnectionFactory(auth_kind="credentials", credentials={"password": SECRET})
    connection_update(
        connection=connection, data={"auth_kind": "api_key"}, credentials={"api_key": "k-123"}
    )
    assert Connection.objects.get(pk=connection.pk).credentials == {"api_key": "k-123"}


def test_connection_update_raises_the_config_version_of_the_flows_using_it():
    flow = SyncFlowFactory()
    before = SyncFlow.objects.get(pk=flow.pk).config_version
    connection_update(
        connection=flow.accounting_connection, data={}, credentials={"api_key": "fixed"}
    )
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before + 1
    connection_update(connection=flow.accounting_connection, data={}, credentials={})
    assert SyncFlow.objects.get(pk=flow.pk).config_version == before + 1


def test_connection_used_by_a_flow_cannot_change_kind():
    flow = SyncFlowFactory()
    with pytest.raises(ValidationError) as error:
        connection_update(
            connection=flow.invoicing_connection, data={"kind": "accounting"}, credentials=None
        )
    assert "kind" in error.value.message_dict


def test_connection_check_stores_a_successful_check(memory_connectors):
    connection = ConnectionFactory(kind="accounting")
    result = connection_check(connection=connection)
    assert result == ConnectionCheck(True, "Connected to the in-memory ledger.")
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.last_check_ok is True
    assert stored.last_check_message == "Connected to the in-memory ledger."
    assert stored.last_checked_at is not None


def test_connection_check_stores_a_refused_login(memory_connectors):
    connection = ConnectionFactory(kind="invoicing", credentials={"api_key": "wrong"})
    result = connection_check(connection=connection)
    assert result.ok is False
    assert Connection.objects.get(pk=connection.pk).last_check_ok is False


def test_connection_check_of_a_provider_not_installed_fails_with_a_message(memory_connectors):
    connection = ConnectionFactory(provider="vendor-x")
    result = connection_check(connection=connection)
    assert result.ok is False
    assert "vendor-x" in result.message
    assert "not installed" in Connection.objects.get(pk=connection.pk).last_check_message


def test_connection_check_of_an_auth_kind_the_provider_refuses_fails(memory_connectors):
    connection = ConnectionFactory(kind="invoicing", auth_kind="oauth2", credentials={})
    result = connection_check(connection=connection)
    assert result.ok is False
    assert "auth kind" in result.message


class LeakySource(MemorySource):
    """A badly written connector that puts the key in its messages."""

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(False, f"Key {self.config.credentials['api_key']} refused.")


class RaisingSource(MemorySource):
    def check_connection(self) -> ConnectionCheck:
        raise InvsyncError(
            ErrorCode.UNAVAILABLE, f"Host down (key {self.config.credentials['api_key']})."
        )


@pytest.mark.parametrize("connector", [LeakySource, RaisingSource])
def test_connection_check_message_never_holds_a_secret(connector):
    from connectors import registry

    connection = ConnectionFactory(kind="invoicing", credentials={"api_key": SECRET})
    with registry.override([connector, MemoryTarget]):
        result = connection_check(connection=connection)
    assert result.ok is False
    assert SECRET not in result.message
    assert REDACTED in result.message
    assert SECRET not in Connection.objects.get(pk=connection.pk).last_check_message


def test_connector_for_builds_the_registered_connector(memory_connectors):
    connection = ConnectionFactory(kind="accounting", auth_kind=AuthKind.API_KEY)
    connector = connector_for(connection)
    assert isinstance(connector, MemoryTarget)
    assert connector.config.credentials == {"api_key": "test-key"}
    assert not isinstance(connector, InvoicingSource)


def test_connector_for_an_unknown_provider_is_a_configuration_error(memory_connectors):
    connection = ConnectionFactory(provider="vendor-x")
    with pytest.raises(InvsyncError) as error:
        connector_for(connection)
    assert error.value.code == ErrorCode.CONFIGURATION_INCOMPLETE
