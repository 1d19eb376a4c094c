"""Credentials: encrypted at rest, rotated by a command, never shown back."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db

from connectors import crypto
from connectors.models import Connection
from tests.factories import ConnectionFactory, UserFactory

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


# -- Staff two-factor secrets (allauth, through invsync.adapters.MFAAdapter) --------------------


def raw_authenticator(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT data FROM mfa_authenticator WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def totp_code(secret: str) -> str:
    import time

    from allauth.mfa import app_settings as mfa_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def test_totp_secrets_and_recovery_seeds_are_stored_encrypted():
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = UserFactory()
    secret = generate_totp_secret()
    totp = TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user)
    stored = raw_authenticator(totp.instance.pk)
    assert secret not in stored and crypto.TEXT_PREFIX in stored
    seed = crypto.decrypt_text(codes.instance.data["seed"])
    assert seed not in raw_authenticator(codes.instance.pk)
    # allauth reads them back through the adapter: the codes work.
    assert TOTP(totp.instance).validate_code(totp_code(secret))
    assert len(codes.generate_codes()) == 10


def test_rotation_reencrypts_two_factor_secrets_too_and_encrypts_ones_stored_in_clear(settings):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    user, legacy_user = UserFactory(), UserFactory()
    secret, legacy_secret = generate_totp_secret(), generate_totp_secret()
    totp = TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user)
    before_codes = codes.generate_codes()
    # Stored before the adapter encrypted anything: in clear, still read.
    legacy = Authenticator.objects.create(
        user=legacy_user, type=Authenticator.Type.TOTP, data={"secret": legacy_secret}
    )
    assert TOTP(legacy).validate_code(totp_code(legacy_secret))
    before = raw_authenticator(totp.instance.pk)

    settings.CREDENTIALS_KEYS = [new, old]
    call_command("rotate_credentials_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.CREDENTIALS_KEYS = [new]  # the old key is gone

    assert raw_authenticator(totp.instance.pk) != before
    assert legacy_secret not in raw_authenticator(legacy.pk)
    for authenticator, clear in ((totp.instance, secret), (legacy, legacy_secret)):
        authenticator.refresh_from_db()
        assert crypto.decrypt_text(authenticator.data["secret"]) == clear
    codes.instance.refresh_from_db()
    assert RecoveryCodes(codes.instance).generate_codes() == before_codes
