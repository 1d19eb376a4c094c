"""Credentials: encrypted at rest, rotated by a command, never shown back."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db

from connectors import crypto
from connectors.models import Connection
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

SECRET = "pl4nted-s3cret-Qx7"


def raw_column(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM connectors_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_credentials_are_never_stored_in_clear():
    connection = ConnectionFactory(credentials={"api_key": SECRET})
    assert SECRET not in raw_column(connection.pk)
    assert Connection.objects.get(pk=connection.pk).credentials == {"api_key": SECRET}


def test_rotating_the_key_reencrypts_every_connection(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    connections = [ConnectionFactory(credentials={"api_key": f"{SECRET}-{i}"}) for i in range(3)]
    before = {c.pk: raw_column(c.pk) for c in connections}
    settings.CREDENTIALS_KEYS = [new, old]
    call_command("rotate_credentials_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.CREDENTIALS_KEYS = [new]  # the old key is gone
    for i, connection in enumerate(connections):
        token = raw_column(connection.pk)
        assert token != before[connection.pk] and SECRET not in token
        assert crypto.decrypt(token) == {"api_key": f"{SECRET}-{i}"}
        assert Connection.objects.get(pk=connection.pk).credentials["api_key"] == f"{SECRET}-{i}"


def test_rotation_refuses_to_run_without_configured_keys(settings):
    settings.CREDENTIALS_KEYS = []
    with pytest.raises(Exception, match="INVSYNC_CREDENTIALS_KEYS is not set"):
        call_command("rotate_credentials_key")
