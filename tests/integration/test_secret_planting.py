"""A planted secret appears nowhere: not in a log line, an error message, a task result, an admin
page, an export or any database column in clear."""

import io
import logging

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection as db
from django.urls import reverse
from django_q.models import Task

from connectors.errors import ConnectorError, ErrorCode
from connectors.models import Connection
from connectors.services import connection_check
from syncs.models import SyncedRecord, SyncRun
from syncs.services import flow_sync_enqueue
from tests.factories import InvoiceFactory, SyncFlowFactory, UserFactory

pytestmark = pytest.mark.django_db
SECRET = "Pl4nted-S3cret-7d1f"


def every_text_in_the_database() -> str:
    chunks = []
    with db.cursor() as cursor:
        for model in apps.get_models():
            table = db.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT * FROM {table}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.fixture
def planted(memory_connectors, caplog, q_sync):
    caplog.set_level(logging.DEBUG)
    source, target = memory_connectors
    flow = SyncFlowFactory()
    for connection in (flow.invoicing_connection, flow.accounting_connection):
        connection.auth_kind = "credentials"
        connection.credentials = {"username": "accountant", "password": SECRET}
        connection.save()
    source.put(InvoiceFactory(), InvoiceFactory())
    # A run that works, then one that fails on the target (its error goes into the run).
    flow_sync_enqueue(flow=flow, trigger="manual")
    source.put(InvoiceFactory())
    target.fail_next_write = ConnectorError(ErrorCode.AUTHENTICATION_FAILED, "login refused")
    flow_sync_enqueue(flow=flow, trigger="manual")
    for connection in Connection.objects.all():
        connection_check(connection=connection)
    return flow


def test_the_secret_is_in_no_log_line(planted, caplog):
    records = caplog.get_records("setup")  # the runs and checks happened in the fixture
    assert records, "the runs logged nothing: the test would prove nothing"
    for record in records:
        assert SECRET not in record.getMessage() and SECRET not in repr(record.args)


def test_the_secret_is_in_no_error_message_and_no_task_result(planted):
    assert SyncRun.objects.filter(error_code=ErrorCode.AUTHENTICATION_FAILED).exists()
    messages = [r.error_message for r in SyncRun.objects.all()]
    messages += [r.error_message for r in SyncedRecord.objects.all()]
    messages += [c.last_check_message for c in Connection.objects.all()]
    assert all(SECRET not in (m or "") for m in messages)
    tasks = list(Task.objects.all())
    assert tasks, "django-q2 stored no task: the test would prove nothing"
    assert all(SECRET not in repr(task.result) and SECRET not in repr(task.args) for task in tasks)


def test_the_secret_is_in_no_database_column_in_clear(planted):
    text = every_text_in_the_database()
    assert "accountant" not in text  # the username is encrypted with it
    assert SECRET not in text


def test_the_secret_is_in_no_admin_page(planted, client):
    client.force_login(UserFactory(is_superuser=True))
    connection = planted.accounting_connection
    record = SyncedRecord.objects.filter(flow=planted).first()
    run = SyncRun.objects.filter(flow=planted).first()
    urls = [
        reverse("admin:connectors_connection_changelist"),
        reverse("admin:connectors_connection_change", args=[connection.pk]),
        reverse("admin:connectors_connection_history", args=[connection.pk]),
        reverse("admin:mappings_syncflow_change", args=[planted.pk]),
        reverse("admin:syncs_syncrun_change", args=[run.pk]),
        reverse("admin:syncs_syncedrecord_change", args=[record.pk]),
        reverse("admin:syncs_syncedrecord_config_json", args=[record.pk]),
        reverse("admin:django_q_success_changelist"),
        reverse("admin:django_q_failure_changelist"),
    ]
    for url in urls:
        page = client.get(url)
        assert page.status_code == 200, url
        assert SECRET not in page.content.decode(), url


def test_the_secret_is_in_no_export(planted):
    out = io.StringIO()
    call_command("export_flow", str(planted.pk), stdout=out)
    assert out.getvalue().strip() and SECRET not in out.getvalue()
