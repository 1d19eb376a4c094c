"""Reads about clients and connections, and the one way to turn a stored connection into a
connector instance."""

from __future__ import annotations

from django.db.models import QuerySet

from connectors import registry
from connectors.base import ConnectionKind, Connector, SettingField
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import Client, Connection


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
    accept the connection's auth kind. The caller closes the connector."""
    return connector_class_for(connection)(connection.as_config())


def provider_settings_fields(provider: str, kind: str) -> tuple[SettingField, ...]:
    """The non-secret settings a provider declares; empty when the provider is not installed."""
    try:
        return registry.get(provider, ConnectionKind(kind)).settings_fields
    except (KeyError, ValueError):
        return ()


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
