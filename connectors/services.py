"""Writes on clients and connections. Credentials go in through here only, and never come back out
in a message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from connectors.base import AUTH_FIELDS, AuthKind
from connectors.canonical import ConnectionCheck
from connectors.errors import InvsyncError
from connectors.models import Client, Connection
from connectors.selectors import connector_for, provider_settings_fields

# What connection_update may change; credentials have their own argument, check results their
# own service.
CONNECTION_EDITABLE_FIELDS = ("client", "name", "kind", "provider", "auth_kind", "settings")
REDACTED = "[redacted]"
# Secrets shorter than this are not looked for in messages: redacting "ab" would garble any text.
_MIN_REDACTED_LENGTH = 3


def credential_fields(auth_kind: str) -> tuple[str, ...]:
    """The secret fields stored for ``auth_kind`` (empty for an unknown kind)."""
    try:
        return AUTH_FIELDS[AuthKind(auth_kind)]
    except ValueError:
        return ()


def _check_credentials(auth_kind: str, credentials: Mapping[str, Any]) -> None:
    allowed = credential_fields(auth_kind)
    unknown = sorted(set(credentials) - set(allowed))
    if unknown:
        # Name the fields, never their values.
        raise ValidationError(
            {
                "credentials": f"{', '.join(unknown)} is not a credential of the "
                f"{auth_kind} authentication (expected {', '.join(allowed) or 'none'})."
            }
        )
    for name, value in credentials.items():
        if not isinstance(value, str):
            raise ValidationError({"credentials": f"{name} must be text."})


def _check_settings(connection: Connection) -> None:
    if not isinstance(connection.settings, dict):
        raise ValidationError({"settings": "The settings must be a JSON object."})
    for name, value in connection.settings.items():
        if isinstance(value, dict | list):
            raise ValidationError({"settings": f"The setting {name!r} must be a plain value."})
    # A provider that is not installed here (an imported connection) is not checked: its settings
    # are kept as given and the connection cannot run until the provider is installed.
    declared = provider_settings_fields(connection.provider, connection.kind)
    problems = [
        f"{field.name} {problem}"
        for field in declared
        if (problem := field.problem(connection.settings.get(field.name)))
    ]
    if problems:
        raise ValidationError({"settings": f"The setting {'; '.join(problems)}."})
    missing = [
        field.name
        for field in declared
        if field.required
        and not field.default
        and connection.settings.get(field.name) in (None, "")
    ]
    if missing:
        raise ValidationError({"settings": f"Missing required setting(s): {', '.join(missing)}."})


def _clean_secrets(credentials: Mapping[str, Any] | None) -> dict[str, str]:
    # Blank values mean "not given": they never overwrite a stored secret.
    return {name: value for name, value in (credentials or {}).items() if value not in (None, "")}


@transaction.atomic
def connection_create(
    *,
    client: Client,
    name: str,
    kind: str,
    provider: str,
    auth_kind: str,
    settings: Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
) -> Connection:
    """Create a connection. ``credentials`` holds only the secret fields of ``auth_kind``
    (blank ones are dropped); they are stored encrypted. Raises ValidationError."""
    secrets = _clean_secrets(credentials)
    _check_credentials(auth_kind, secrets)
    connection = Connection(
        client=client,
        name=name,
        kind=kind,
        provider=provider,
        auth_kind=auth_kind,
        settings=dict(settings or {}),
        credentials=secrets,
    )
    connection.full_clean()
    _check_settings(connection)
    connection.save()
    return connection


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    data: Mapping[str, Any],
    credentials: Mapping[str, str] | None = None,
) -> Connection:
    """Change a connection's fields (``data``, keys among CONNECTION_EDITABLE_FIELDS) and replace
    the secret fields given non-empty in ``credentials``; blank or absent secrets keep their stored
    value, and secrets of another auth kind are dropped when the auth kind changes.

    When anything changes, the previous check result is cleared and the flows using the connection
    get a new configuration version (so their failed records are retried). Raises ValidationError.
    """
    unknown = sorted(set(data) - set(CONNECTION_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(f"Cannot set {', '.join(unknown)} on a connection.")
    stored = Connection.objects.select_for_update().get(pk=connection.pk)

    for field_name, value in data.items():
        setattr(connection, field_name, value)

    secrets = _clean_secrets(credentials)
    _check_credentials(connection.auth_kind, secrets)
    kept = {
        name: value
        for name, value in (stored.credentials or {}).items()
        if name in credential_fields(connection.auth_kind)
    }
    connection.credentials = {**kept, **secrets}

    in_use = connection.flows_as_source.exists() or connection.flows_as_target.exists()
    if in_use and connection.kind != stored.kind:
        raise ValidationError({"kind": "Flows use this connection: its kind cannot change."})
    if in_use and connection.client_id != stored.client_id:
        raise ValidationError({"client": "Flows use this connection: its client cannot change."})

    connection.full_clean()
    _check_settings(connection)

    changed = any(
        getattr(connection, name) != getattr(stored, name)
        for name in (*CONNECTION_EDITABLE_FIELDS, "credentials")
        if name != "client"
    ) or (connection.client_id != stored.client_id)
    if changed:
        connection.last_checked_at = None
        connection.last_check_ok = None
        connection.last_check_message = ""
    connection.save()

    if changed:
        from mappings.services import flow_config_changed  # mappings depends on connectors

        for flow in {*connection.flows_as_source.all(), *connection.flows_as_target.all()}:
            flow_config_changed(flow=flow)
    return connection


def _without_secrets(message: str, secrets: Mapping[str, str]) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        if isinstance(value, str) and len(value) >= _MIN_REDACTED_LENGTH:
            message = message.replace(value, REDACTED)
    return message


def connection_check(*, connection: Connection) -> ConnectionCheck:
    """Log in to the tool with the stored credentials and make one cheap read; store and return
    the outcome. A refused login, an unreachable tool or a provider that is not installed is a
    failed check, not an exception. The stored message never holds a credential."""
    try:
        connector = connector_for(connection)
        try:
            result = connector.check_connection()
        finally:
            connector.close()
    except InvsyncError as exc:
        result = ConnectionCheck(False, exc.message)

    max_length = Connection._meta.get_field("last_check_message").max_length
    message = _without_secrets(str(result.message), connection.credentials or {})[:max_length]
    result = ConnectionCheck(bool(result.ok), message)

    connection.last_checked_at = timezone.now()
    connection.last_check_ok = result.ok
    connection.last_check_message = result.message
    connection.save(update_fields=["last_checked_at", "last_check_ok", "last_check_message"])
    return result


@transaction.atomic
def client_delete(*, client: Client) -> None:
    """Delete a client with its connections, flows and records, and its flows' schedules."""
    from mappings.services import flow_delete  # mappings depends on connectors

    for flow in client.flows.all():
        flow_delete(flow=flow)
    client.delete()


def client_create(*, name: str, notes: str = "") -> Client:
    """Create a client. Raises ValidationError (blank or duplicate name)."""
    client = Client(name=name, notes=notes)
    client.full_clean()
    client.save()
    return client
