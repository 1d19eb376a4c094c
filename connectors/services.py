"""Writes on clients and connections. Credentials go in through here only, and never come back out
in a message."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext

from connectors import signals
from connectors.base import AUTH_FIELDS, SETTING_MAX_LENGTH, AuthKind
from connectors.canonical import ConnectionCheck
from connectors.errors import ErrorCode, InvsyncError
from connectors.messages import json_params
from connectors.models import Client, Connection
from connectors.providers.einvoice.inbox import EInvoiceInbox, Receipt
from connectors.selectors import (
    connector_for,
    provider_settings_fields,
    provider_settings_problem,
)

logger = logging.getLogger(__name__)

# What connection_update may change; credentials have their own argument, check results their
# own service.
CONNECTION_EDITABLE_FIELDS = ("client", "name", "kind", "provider", "auth_kind", "settings")
# Fields of the connection itself that decide where its credentials are sent (the provider's
# settings that do are declared with ``SettingField.addresses_credentials``).
CREDENTIAL_ADDRESS_FIELDS = ("provider", "kind", "auth_kind")
# A connection's settings: a flat JSON object of at most this many names, each this long.
SETTINGS_MAX_NAMES = 50
SETTING_NAME_MAX_LENGTH = 100
REDACTED = "[redacted]"
# Secrets shorter than this are not looked for in messages: redacting "ab" would garble any text.
_MIN_REDACTED_LENGTH = 3
# Secrets a connection keeps whatever its authentication: set by their own service, never typed
# in the connection form, so an edit of the connection keeps them (the signing secret of a Stripe
# connection's webhook endpoint: syncs/webhooks.py, manage.py stripe_webhook --set-secret).
WEBHOOK_SECRET = "webhook_secret"
KEPT_SECRETS = (WEBHOOK_SECRET,)


def credential_fields(auth_kind: str) -> tuple[str, ...]:
    """The secret fields stored for ``auth_kind`` (empty for an unknown kind)."""
    try:
        return AUTH_FIELDS[AuthKind(auth_kind)]
    except ValueError:
        return ()


def _check_credentials(auth_kind: str, credentials: Mapping[str, Any]) -> None:
    allowed = (*credential_fields(auth_kind), *KEPT_SECRETS)
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


def settings_shape_problem(settings: object) -> str | None:
    """What is wrong with the shape of a connection's settings (None: nothing): they must be a
    flat JSON object of a few names, each holding text, a finite number, true/false or null.

    Never recurses into a value, so a deeply nested one is refused, not crashed on."""
    if not isinstance(settings, dict):
        return "The settings must be a JSON object."
    if len(settings) > SETTINGS_MAX_NAMES:
        return f"The settings hold {len(settings)} names; at most {SETTINGS_MAX_NAMES} are taken."
    for name, value in settings.items():
        if not isinstance(name, str) or not name or len(name) > SETTING_NAME_MAX_LENGTH:
            return f"A setting name must be text of 1 to {SETTING_NAME_MAX_LENGTH} characters."
        if "\x00" in name:
            return "A setting name must not contain a NUL character."
        shown = name if len(name) <= 40 else name[:39] + "…"
        if isinstance(value, dict | list | tuple):
            return f"The setting {shown!r} must be a plain value, not a list or an object."
        if isinstance(value, float) and not math.isfinite(value):
            return f"The setting {shown!r} must be a finite number."
        if value is not None and not isinstance(value, str | int | float | bool):
            return f"The setting {shown!r} must be text, a number, true or false."
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
            return f"The setting {shown!r} is too large a number."
        if isinstance(value, str) and ("\x00" in value or len(value) > SETTING_MAX_LENGTH):
            return f"The setting {shown!r} must be text of at most {SETTING_MAX_LENGTH} characters."
    return None


def _check_settings(connection: Connection) -> None:
    if problem := settings_shape_problem(connection.settings):
        raise ValidationError({"settings": problem})
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
        raise ValidationError(
            {
                "settings": gettext("Missing required setting(s): %(names)s.")
                % {"names": ", ".join(missing)}
            }
        )
    problem = provider_settings_problem(connection.provider, connection.kind, connection.settings)
    if problem:
        raise ValidationError({"settings": problem[0].upper() + problem[1:] + "."})


def credential_address_changes(
    *, stored: Connection, provider: str, kind: str, auth_kind: str, settings: Mapping[str, Any]
) -> list[str]:
    """What changed, from ``stored`` to the given values, among what decides where the
    credentials are sent: the provider, kind and auth kind, and the provider's settings declared
    ``addresses_credentials`` (every setting when the provider is not installed, and every
    setting it does not declare: what is not known not to address credentials does)."""
    changed = [
        name
        for name, value in zip(CREDENTIAL_ADDRESS_FIELDS, (provider, kind, auth_kind), strict=True)
        if str(value or "") != str(getattr(stored, name) or "")
    ]
    declared = {field.name: field for field in provider_settings_fields(provider, kind)}
    before = stored.settings if isinstance(stored.settings, dict) else {}
    after = settings if isinstance(settings, Mapping) else {}
    for name in sorted(set(before) | set(after), key=str):
        field = declared.get(name)
        if field is not None and not field.addresses_credentials:
            continue
        if _setting_text(before.get(name)) != _setting_text(after.get(name)):
            changed.append(str(name))
    return changed


def _setting_text(value: object) -> str:
    return "" if value is None else str(value)


def credentials_to_reenter(
    *,
    stored: Connection,
    provider: str,
    kind: str,
    auth_kind: str,
    settings: Mapping[str, Any],
    given: Mapping[str, Any] | None,
) -> tuple[list[str], list[str]]:
    """(what changed in the credentials' address, the stored secrets that would be kept and so
    must be entered again). A stored secret is never sent to an address it was not entered for:
    when the address changes, every stored secret of ``auth_kind`` must be given anew."""
    changed = credential_address_changes(
        stored=stored, provider=provider, kind=kind, auth_kind=auth_kind, settings=settings
    )
    if not changed:
        return changed, []
    secrets = _clean_secrets(given)
    stored_secrets = stored.credentials or {}
    missing = [
        name
        for name in credential_fields(auth_kind)
        if stored_secrets.get(name) not in (None, "") and name not in secrets
    ]
    return changed, missing


def reenter_message(changed: list[str], missing: list[str]) -> str:
    """Why the secrets must be entered again (names only, never values)."""
    return gettext(
        "The address the credentials are sent to changed (%(changed)s): enter %(missing)s again. "
        "A stored secret is never sent to an address it was not entered for."
    ) % {"changed": ", ".join(changed), "missing": ", ".join(missing)}


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
    if problem := settings_shape_problem(settings if settings is not None else {}):
        raise ValidationError({"settings": problem})
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
    if "settings" in data and (problem := settings_shape_problem(data["settings"])):
        # Before anything serialises them: a deeply nested value would crash the JSON encoder.
        raise ValidationError({"settings": problem})
    stored = Connection.objects.select_for_update().get(pk=connection.pk)
    # The OAuth2 tokens are the token store's (connectors.token_store): the ones read under the
    # lock, never the copy loaded with the form (a refresh since then rotated them).
    connection.oauth_tokens = stored.oauth_tokens

    for field_name, value in data.items():
        setattr(connection, field_name, value)

    secrets = _clean_secrets(credentials)
    _check_credentials(connection.auth_kind, secrets)
    kept = {
        name: value
        for name, value in (stored.credentials or {}).items()
        if name in credential_fields(connection.auth_kind) or name in KEPT_SECRETS
    }
    connection.credentials = {**kept, **secrets}

    in_use = connection.flows_as_source.exists() or connection.flows_as_target.exists()
    if in_use and connection.kind != stored.kind:
        raise ValidationError(
            {"kind": gettext("Flows use this connection: its kind cannot change.")}
        )
    if in_use and connection.client_id != stored.client_id:
        raise ValidationError(
            {"client": gettext("Flows use this connection: its client cannot change.")}
        )

    connection.full_clean()
    _check_settings(connection)
    address_changed, missing = credentials_to_reenter(
        stored=stored,
        provider=connection.provider,
        kind=connection.kind,
        auth_kind=connection.auth_kind,
        settings=connection.settings,
        given=secrets,
    )
    if missing:
        raise ValidationError({"credentials": reenter_message(address_changed, missing)})
    if address_changed:
        # An OAuth2 grant is never sent to an address it was not given for either: reconnect.
        connection.oauth_tokens = {}

    changed = any(
        getattr(connection, name) != getattr(stored, name)
        for name in (*CONNECTION_EDITABLE_FIELDS, "credentials")
        if name != "client"
    ) or (connection.client_id != stored.client_id)
    if changed:
        connection.last_checked_at = None
        connection.last_check_ok = None
        connection.last_check_message = connection.last_check_key = ""
        connection.last_check_params = {}
    connection.save()

    reentered = bool(address_changed and secrets)
    if reentered:
        # Names of what changed, never a value of a secret (the address itself is not secret).
        logger.info(
            "connection %s: credentials re-entered because their address changed (%s)",
            connection.pk,
            ", ".join(address_changed),
        )
    if changed:
        # The flows using it get a new configuration version (mappings.receivers).
        note = _address_change_note(stored, connection, address_changed) if reentered else None
        signals.connection_changed.send(Connection, connection=connection, address_note=note)
    return connection


def _address_change_note(
    stored: Connection, connection: Connection, changed: list[str]
) -> dict[str, dict[str, str]]:
    """The audit's record of an address change: each changed part before and after, and that the
    credentials were entered again (never their values)."""
    note: dict[str, dict[str, str]] = {}
    for name in changed:
        if name in CREDENTIAL_ADDRESS_FIELDS:
            before, after = getattr(stored, name), getattr(connection, name)
        else:
            before = (stored.settings or {}).get(name)
            after = (connection.settings or {}).get(name)
        note[name] = {"from": _setting_text(before)[:300], "to": _setting_text(after)[:300]}
    note["credentials"] = {
        "from": "stored",
        "to": "re-entered because the address changed",
    }
    return note


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
        result = ConnectionCheck(False, exc.message, exc.code, exc.key, exc.params)

    max_length = Connection._meta.get_field("last_check_message").max_length
    secrets = connection.credentials or {}
    message = _without_secrets(str(result.message), secrets)[:max_length]
    params = {
        name: _without_secrets(value, secrets) if isinstance(value, str) else value
        for name, value in json_params(result.params).items()
    }
    result = ConnectionCheck(bool(result.ok), message, result.code, result.key, params)

    connection.last_checked_at = timezone.now()
    connection.last_check_ok = result.ok
    connection.last_check_message = result.message
    connection.last_check_key, connection.last_check_params = result.key, result.params
    connection.save(
        update_fields=[
            "last_checked_at",
            "last_check_ok",
            "last_check_message",
            "last_check_key",
            "last_check_params",
        ]
    )
    return result


@transaction.atomic
def client_delete(*, client: Client) -> None:
    """Delete a client with its connections, flows and records, and its flows' schedules (the
    flows go first, through mappings.receivers)."""
    signals.client_deleting.send(Client, client=client)
    client.delete()


def client_create(*, name: str, notes: str = "") -> Client:
    """Create a client. Raises ValidationError (blank or duplicate name, notes too long)."""
    limit = Client._meta.get_field("notes").max_length
    if limit and len(notes) > limit:  # a TextField's max_length is not a model validator
        raise ValidationError(
            {
                "notes": gettext("At most %(limit)s characters.")
                % {"limit": number_format(limit, force_grouping=True)}
            }
        )
    client = Client(name=name, notes=notes)
    client.full_clean()
    client.save()
    return client


def inbox_upload(*, connection: Connection, files: list[tuple[str, bytes]]) -> list[Receipt]:
    """Receive uploaded files (each one file or a zip of them) into an e-invoice inbox: every
    file is stored once with its hash and read; one receipt per file. Raises InvsyncError when
    the connection is no inbox accepting uploads, or a zip is refused as a whole (the files
    before it are kept)."""
    connector = connector_for(connection)
    try:
        if not isinstance(connector, EInvoiceInbox):
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The connection {connection.name!r} is not an e-invoice inbox.",
            )
        receipts: list[Receipt] = []
        for name, content in files:
            receipts.extend(connector.receive_upload(name, content))
        return receipts
    finally:
        connector.close()
