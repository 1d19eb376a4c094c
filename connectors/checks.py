from django.conf import settings
from django.core import checks

from connectors import registry
from connectors.ratelimit_store import DATABASE_VENDORS, STORES
from connectors.selectors import outbound_policy


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


@checks.register()
def check_rate_limit_store(app_configs=None, **kwargs):
    from django.db import connections

    store = getattr(settings, "INVSYNC_RATE_LIMIT_STORE", "auto")
    if store not in STORES:
        return [
            checks.Error(
                f"INVSYNC_RATE_LIMIT_STORE is {store!r}.",
                hint="Set it to one of: " + ", ".join(STORES) + ".",
                id="invsync.E002",
            )
        ]
    vendor = connections["default"].vendor
    if vendor in DATABASE_VENDORS:
        return []
    if store == "database":
        return [
            checks.Error(
                f"Rate-limit windows cannot be kept in a {vendor} database.",
                hint="Use SQLite or PostgreSQL, or INVSYNC_RATE_LIMIT_STORE=process.",
                id="invsync.E003",
            )
        ]
    return [
        checks.Warning(
            f"Rate-limit windows are counted per process: a {vendor} database cannot keep them.",
            hint="Several workers on one connection may together exceed a vendor's limit.",
            id="invsync.W002",
        )
    ]


@checks.register()
def check_outbound_policy(app_configs=None, **kwargs):
    from django.core.exceptions import ImproperlyConfigured

    try:
        outbound_policy()
    except ImproperlyConfigured as error:
        return [
            checks.Error(
                str(error),
                hint="List networks (10.0.0.0/8), addresses (127.0.0.1) or host names "
                "(tryton.internal), comma-separated.",
                id="invsync.E004",
            )
        ]
    return []
