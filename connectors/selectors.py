"""Reads about clients and connections, and the one way to turn a stored connection into a
connector instance."""

from __future__ import annotations

import functools
from dataclasses import replace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from connectors import registry
from connectors.base import AuthKind, ConnectionKind, Connector, SettingField
from connectors.errors import ErrorCode, InvsyncError
from connectors.inbox_store import DatabaseInboxStore
from connectors.models import Client, Connection
from connectors.outbound import OutboundPolicy
from connectors.ratelimit_store import SHARED_WINDOWS
from connectors.token_store import DatabaseTokenSource


def connector_class_for(connection: Connection) -> type[Connector]:
    """The registered connector class of ``connection``'s provider and kind.

    Raises InvsyncError(CONFIGURATION_INCOMPLETE) when no such connector is installed."""
    try:
        return registry.get(connection.provider, ConnectionKind(connection.kind))
    except (KeyError, ValueError):
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"The connection {connection.name!r} uses the {connection.kind} provider "
            f"{connection.provider!r}, which is not installed: choose an installed provider.",
            field="provider",
        ) from None


def connector_for(connection: Connection) -> Connector:
    """An instance of ``connection``'s connector, built from its settings and credentials.

    Raises InvsyncError(CONFIGURATION_INCOMPLETE) when the provider is not installed or does not
    accept the connection's auth kind. The caller closes the connector. Its calls follow the
    configured outbound policy (:func:`outbound_policy`) and wait on the deployment's shared
    rate-limit windows (:mod:`connectors.ratelimit_store`), handed in as an object."""
    config = replace(
        connection.as_config(),
        outbound=outbound_policy(),
        rate_windows=SHARED_WINDOWS,
        # OAuth2: the tokens stored on the connection, refreshed single-flight (token_store).
        tokens=(
            DatabaseTokenSource(connection.pk, label=connection.name)
            if connection.auth_kind == AuthKind.OAUTH2 and connection.pk
            else None
        ),
    )
    cls = connector_class_for(connection)
    if getattr(cls, "uses_inbox_store", False):
        # The files an inbox received are kept by invsync (connectors.inbox_store): handed in as
        # an object, the connector takes no ORM.
        return cls(config, store=DatabaseInboxStore(connection.pk))
    return cls(config)


def outbound_policy() -> OutboundPolicy:
    """The outbound policy of the setting ``INVSYNC_OUTBOUND_ALLOWED_NETWORKS`` (public addresses
    plus the networks and host names it lists). Raises ImproperlyConfigured for an entry that is
    neither (the system check ``invsync.E004`` reports it at start-up)."""
    entries = getattr(settings, "INVSYNC_OUTBOUND_ALLOWED_NETWORKS", ())
    if isinstance(entries, str):
        entries = entries.split(",")
    try:
        return _policy_of(tuple(str(entry) for entry in entries))
    except ValueError as error:
        raise ImproperlyConfigured(f"INVSYNC_OUTBOUND_ALLOWED_NETWORKS: {error}.") from None


@functools.lru_cache(maxsize=16)
def _policy_of(entries: tuple[str, ...]) -> OutboundPolicy:
    return OutboundPolicy.from_allow_list(entries)


def provider_settings_fields(provider: str, kind: str) -> tuple[SettingField, ...]:
    """The non-secret settings a provider declares; empty when the provider is not installed."""
    try:
        return registry.get(provider, ConnectionKind(kind)).settings_fields
    except (KeyError, ValueError):
        return ()


def provider_settings_problem(provider: str, kind: str, settings: object) -> str | None:
    """What a provider finds wrong with its settings taken together (None: nothing, or the
    provider is not installed)."""
    try:
        cls = registry.get(provider, ConnectionKind(kind))
    except (KeyError, ValueError):
        return None
    return cls.settings_problem(settings if isinstance(settings, dict) else {})


def client_list_for_user(user) -> QuerySet[Client]:
    """The clients a staff user may see: all for superusers, those they are a member of else."""
    if user.is_superuser:
        return Client.objects.all()
    return Client.objects.filter(members=user)


def connection_account_identity(connection: Connection) -> str:
    """The identity of the account ``connection`` reaches (its connector's
    ``account_identity``, from the settings: no call, no credential); ``connection:<id>`` when
    the connector cannot name its account. Raises InvsyncError(CONFIGURATION_INCOMPLETE) when the
    provider is not installed or the settings name no account."""
    settings = {str(k): str(v) for k, v in (connection.settings or {}).items()}
    identity = connector_class_for(connection).account_identity(settings)
    return identity or f"connection:{connection.pk}"
