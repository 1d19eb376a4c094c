from django.conf import settings
from django.core import checks

from connectors import registry


@checks.register()
def check_registry(app_configs=None, **kwargs):
    return [
        checks.Error(
            problem, id="invsync.E001", hint="Fix the class listed in connectors/registry.py"
        )
        for problem in registry.problems()
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_credentials_keys(app_configs=None, **kwargs):
    if settings.CREDENTIALS_KEYS:
        return []
    return [
        checks.Warning(
            "Credentials are encrypted with a key derived from SECRET_KEY.",
            hint="Set INVSYNC_CREDENTIALS_KEYS to one or more Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())').",
            id="invsync.W001",
        )
    ]
