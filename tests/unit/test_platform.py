"""The connector registry, the error catalogue, credentials encryption and settings invariants."""

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from connectors import crypto, registry
from connectors.base import AccountingTarget, ConnectionConfig, ConnectionKind
from connectors.errors import CATALOGUE, ErrorCode, ErrorKind, InvsyncError
from tests.doubles import MemorySource, MemoryTarget

SEED_CODES = [
    "ERROR_SYNC_INVOICE_ACCOUNT_NUMBER_NOT_FOUND",
    "ERROR_SYNC_INVOICE_ACCOUNT_NUMBER_NOT_ACTIVE",
    "ERROR_SYNC_INVOICE_PARTNER_NOT_FOUND",
    "ERROR_SYNC_INVOICE_AMOUNT_VALIDATION",
    "ERROR_SYNC_INVOICE_CONTACT_NOT_FOUND",
    "ERROR_SYNC_INVOICE_JOURNAL_NOT_LINKED",
    "ERROR_SYNC_INVOICE_LINE_VALIDATION",
    "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND",
    "ERROR_SYNC_INVOICE_PARTNER_VALIDATION",
    "ERROR_SYNC_INVOICE_PDF",
    "ERROR_SYNC_INVOICE_MAPPING_JOURNAL_NOT_FOUND",
]


def test_catalogue_holds_the_eleven_codes_of_the_troubleshooting_table_spelled_as_there():
    assert set(SEED_CODES) <= set(ErrorCode.values)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_a_description_a_resolution_and_a_kind(code):
    info = CATALOGUE[code]
    assert info.description and len(info.resolution) > 30 and isinstance(info.kind, ErrorKind)


def test_platform_codes_cover_connection_and_partner_failures():
    for code in ("AUTHENTICATION_FAILED", "PERMISSION_DENIED", "RATE_LIMITED", "UNAVAILABLE",
                 "PARTNER_AMBIGUOUS", "DUPLICATE_IN_TARGET", "UNEXPECTED"):  # fmt: skip
        assert hasattr(ErrorCode, code)
    assert CATALOGUE[ErrorCode.UNAVAILABLE].kind is ErrorKind.TRANSIENT
    assert CATALOGUE[ErrorCode.MAPPING_TAX_RATE_NOT_FOUND].kind is ErrorKind.CONFIGURATION


def test_invsync_error_carries_its_code_kind_and_field():
    error = InvsyncError(ErrorCode.RATE_LIMITED, "slow down", field="x", retry_after=3)
    assert error.is_transient and error.field == "x" and error.retry_after == 3
    assert str(error) == "ERROR_CONNECTION_RATE_LIMITED: slow down"


def test_registry_lists_only_real_connectors_and_no_test_double():
    shipped = registry.providers()
    assert MemorySource not in shipped and MemoryTarget not in shipped
    assert registry.problems() == []


def test_registry_override_registers_doubles_for_the_block_only():
    with registry.override([MemorySource, MemoryTarget]):
        assert registry.get("memory", ConnectionKind.ACCOUNTING) is MemoryTarget
        assert registry.get("memory", ConnectionKind.INVOICING) is MemorySource
        assert ("memory", MemoryTarget.name) in registry.choices(ConnectionKind.ACCOUNTING)
    with pytest.raises(KeyError):
        registry.get("memory", ConnectionKind.ACCOUNTING)


def test_registry_reports_abstract_and_duplicate_connectors():
    class Half(AccountingTarget):
        key = "half"
        name = "Half"
        auth_kinds = ("api_key",)

    class Twin(MemoryTarget):
        pass

    problems = registry.problems([Half, MemoryTarget, Twin])
    assert any("Half does not implement" in p for p in problems)
    assert any("share the key 'memory'" in p for p in problems)


def test_connector_refuses_an_auth_kind_it_does_not_accept():
    with pytest.raises(InvsyncError) as caught:
        MemorySource(ConnectionConfig(auth_kind="oauth2"))
    assert caught.value.code == ErrorCode.CONFIGURATION_INCOMPLETE


def test_credentials_round_trip_and_are_not_readable_in_the_token():
    token = crypto.encrypt({"password": "hunter2-secret"})
    assert "hunter2" not in token
    assert crypto.decrypt(token) == {"password": "hunter2-secret"}


def test_rotating_keys_reencrypts_under_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    token = crypto.encrypt({"api_key": "k"})
    settings.CREDENTIALS_KEYS = [new, old]
    rotated = crypto.rotate(token)
    settings.CREDENTIALS_KEYS = [new]
    assert crypto.decrypt(rotated) == {"api_key": "k"}
    with pytest.raises(Exception, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_secrets_never_show_their_values_in_repr_or_str():
    secrets = crypto.Secrets({"password": "hunter2-secret"})
    config = ConnectionConfig(auth_kind="credentials", credentials=secrets)
    for text in (repr(secrets), str(secrets), repr(config), f"{secrets}"):
        assert "hunter2" not in text


def test_task_timeout_is_below_retry_so_a_running_sync_is_never_handed_out_twice():
    assert settings.Q_CLUSTER["timeout"] < settings.Q_CLUSTER["retry"]


def test_without_environment_the_project_uses_sqlite_and_the_orm_broker():
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS"))
    }
    code = (
        "import django;django.setup();from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.Q_CLUSTER.get('orm'), s.Q_CLUSTER.get('redis'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "invsync.settings"},
        capture_output=True, text=True, check=True, cwd=settings.BASE_DIR,
    ).stdout  # fmt: skip
    assert out.split() == ["django.db.backends.sqlite3", "default", "None"]


def _deploy_check(**extra):
    import os
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INVSYNC_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "invsync.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "x" * 20 + Fernet.generate_key().decode(),
            "DJANGO_ALLOWED_HOSTS": "invsync.example.com",
            "INVSYNC_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            **extra,
        }
    )
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env, capture_output=True, text=True, check=False, cwd=settings.BASE_DIR,
    )  # fmt: skip


def test_production_settings_pass_the_deploy_check_without_warnings():
    done = _deploy_check()
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no issues" in done.stdout


def test_deploy_check_warns_when_credentials_use_the_derived_key():
    done = _deploy_check(INVSYNC_CREDENTIALS_KEYS=None)
    assert done.returncode != 0 and "invsync.W001" in done.stderr + done.stdout
