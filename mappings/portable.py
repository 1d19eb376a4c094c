"""A flow's whole configuration as a JSON document, to copy a flow between clients or
installations (``export_flow`` / ``import_flow``). Credentials never leave: a document names the
connections and their non-secret settings only.

Format (version 1)::

    {"format": "invsync.flow", "version": 1,
     "flow": {"name", then every flow setting by its export key (mappings/flow_settings.py)},
     "client": "<client name>",
     "invoicing_connection": {"name", "provider", "auth_kind", "settings"},
     "accounting_connection": {"name", "provider", "auth_kind", "settings"},
     "vat_mappings": [{"direction", "source_rate", "source_tax_id", "target_code",
                       "collected_code" (optional: reverse charge)}, ...],
     "journal_mappings": [{"source_journal", "target_journal"}, ...]}

Decimals are strings, dates ISO 8601. A configuration field missing from the document takes its
default (so documents written before a field existed still import); an unknown key is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from connectors.base import AuthKind, ConnectionKind
from connectors.models import Client, Connection
from connectors.services import client_create, connection_create
from mappings.flow_settings import FLOW_SETTINGS, export_value
from mappings.models import JournalMapping, SyncFlow, VatMapping
from mappings.selectors import FLOW_RELATION_FIELDS
from mappings.services import flow_create, flow_mappings_replace, flow_update

FORMAT = "invsync.flow"
VERSION = 1

TOP_LEVEL_KEYS = (
    "format",
    "version",
    "flow",
    "client",
    "invoicing_connection",
    "accounting_connection",
    "vat_mappings",
    "journal_mappings",
)
# An explicit list, so that no field added to Connection later (a secret) is ever exported.
CONNECTION_KEYS = ("name", "provider", "auth_kind", "settings")
VAT_MAPPING_KEYS = ("direction", "source_rate", "source_tax_id", "target_code", "collected_code")
JOURNAL_MAPPING_KEYS = ("source_journal", "target_journal")


class PortableError(ValueError):
    """A document that cannot be imported; ``key`` is the path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _plain(value: Any) -> Any:
    return export_value(value)


# The ``flow`` object: the flow's name, then every declared setting by its export key.
FLOW_KEYS = ("name", *(setting.export_key for setting in FLOW_SETTINGS))


def _connection_document(connection: Connection) -> dict[str, Any]:
    return {
        "name": connection.name,
        "provider": connection.provider,
        "auth_kind": connection.auth_kind,
        "settings": dict(connection.settings or {}),
    }


def flow_export(*, flow: SyncFlow) -> dict[str, Any]:
    """The flow's configuration, connections (without credentials) and mappings."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "flow": {
            "name": flow.name,
            **{s.export_key: _plain(getattr(flow, s.name)) for s in FLOW_SETTINGS},
        },
        "client": flow.client.name,
        "invoicing_connection": _connection_document(flow.invoicing_connection),
        "accounting_connection": _connection_document(flow.accounting_connection),
        "vat_mappings": [
            {key: _plain(getattr(mapping, key)) for key in VAT_MAPPING_KEYS}
            for mapping in flow.vat_mappings.order_by("direction", "source_rate", "source_tax_id")
        ],
        "journal_mappings": [
            {key: getattr(mapping, key) for key in JOURNAL_MAPPING_KEYS}
            for mapping in flow.journal_mappings.order_by("source_journal")
        ],
    }


# Reading a document: shape and types first, before anything is written.


def _require_object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PortableError(key, "must be a JSON object.")
    return value


def _require_text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PortableError(key, "must be a non-empty string.")
    return value


def _check_keys(data: dict[str, Any], allowed: tuple[str, ...], key: str, *, required=()) -> None:
    for name in data:
        if name not in allowed:
            raise PortableError(f"{key}.{name}" if key else name, "unknown key.")
    for name in required:
        if name not in data:
            raise PortableError(f"{key}.{name}" if key else name, "missing.")


def _convert(model, name: str, value: Any, key: str) -> Any:
    model_field = model._meta.get_field(name)
    if isinstance(value, dict | list):
        # No configuration field holds a structure; some to_python() raise TypeError on one.
        raise PortableError(key, "must be a plain value, not a JSON object or list.")
    try:
        return model_field.to_python(value)
    except ValidationError as exc:
        raise PortableError(key, " ".join(exc.messages)) from None


def _read_flow(data: Any) -> dict[str, Any]:
    data = _require_object(data, "flow")
    _check_keys(data, FLOW_KEYS, "flow")
    names = {s.export_key: s.name for s in FLOW_SETTINGS} | {"name": "name"}
    return {
        names[key]: _convert(SyncFlow, names[key], value, f"flow.{key}")
        for key, value in data.items()
    }


def _read_connection(data: Any, key: str) -> dict[str, Any]:
    data = _require_object(data, key)
    _check_keys(data, CONNECTION_KEYS, key, required=CONNECTION_KEYS)
    _require_text(data["name"], f"{key}.name")
    _require_text(data["provider"], f"{key}.provider")
    if not isinstance(data["auth_kind"], str) or data["auth_kind"] not in {
        kind.value for kind in AuthKind
    }:
        raise PortableError(
            f"{key}.auth_kind", f"must be one of {', '.join(kind.value for kind in AuthKind)}."
        )
    settings = _require_object(data["settings"], f"{key}.settings")
    for name, value in settings.items():
        if isinstance(value, dict | list):
            raise PortableError(f"{key}.settings.{name}", "must be a plain value.")
    return dict(data)


def _read_rows(data: Any, key: str, model, keys: tuple[str, ...], required: tuple[str, ...]):
    if not isinstance(data, list):
        raise PortableError(key, "must be a JSON list.")
    rows = []
    for index, row in enumerate(data):
        row_key = f"{key}[{index}]"
        row = _require_object(row, row_key)
        _check_keys(row, keys, row_key, required=required)
        rows.append(
            {name: _convert(model, name, value, f"{row_key}.{name}") for name, value in row.items()}
        )
    return rows


@dataclass
class ImportDocument:
    flow: dict[str, Any]
    client: str
    invoicing_connection: dict[str, Any]
    accounting_connection: dict[str, Any]
    vat_mappings: list[dict[str, Any]]
    journal_mappings: list[dict[str, Any]]


def flow_document_read(document: Any) -> ImportDocument:
    """Check a document's shape and convert its values. Raises PortableError naming the key."""
    document = _require_object(document, "document")
    if document.get("format") != FORMAT:
        raise PortableError("format", f"must be {FORMAT!r}.")
    if document.get("version") != VERSION:
        raise PortableError("version", f"must be {VERSION} (this invsync reads version {VERSION}).")
    _check_keys(document, TOP_LEVEL_KEYS, "", required=TOP_LEVEL_KEYS)
    return ImportDocument(
        flow=_read_flow(document["flow"]),
        client=_require_text(document["client"], "client"),
        invoicing_connection=_read_connection(
            document["invoicing_connection"], "invoicing_connection"
        ),
        accounting_connection=_read_connection(
            document["accounting_connection"], "accounting_connection"
        ),
        vat_mappings=_read_rows(
            document["vat_mappings"],
            "vat_mappings",
            VatMapping,
            VAT_MAPPING_KEYS,
            required=("direction", "target_code"),
        ),
        journal_mappings=_read_rows(
            document["journal_mappings"],
            "journal_mappings",
            JournalMapping,
            JOURNAL_MAPPING_KEYS,
            required=JOURNAL_MAPPING_KEYS,
        ),
    )


# Writing.


@dataclass
class ImportResult:
    flow: SyncFlow
    created: bool
    warnings: list[str] = field(default_factory=list)


def _validation_to_portable(exc: ValidationError, prefix: str) -> PortableError:
    if hasattr(exc, "error_dict"):
        name, messages = next(iter(exc.message_dict.items()))
        if name == "__all__":
            key = prefix
        elif name.startswith(("vat_mappings", "journal_mappings")) or name in FLOW_RELATION_FIELDS:
            key = name
        else:
            key = f"{prefix}.{name}"
        return PortableError(key, " ".join(messages))
    return PortableError(prefix, " ".join(exc.messages))


def _connection_for(
    *, client: Client, data: dict[str, Any], name: str, kind: ConnectionKind, key: str
) -> tuple[Connection, list[str]]:
    existing = Connection.objects.filter(client=client, name=name).first()
    if existing is not None:
        if existing.kind != kind:
            raise PortableError(
                f"{key}.name",
                f"{client.name}'s connection {name!r} is an {existing.kind} connection, "
                f"not an {kind} one.",
            )
        warnings = []
        if existing.provider != data["provider"]:
            warnings.append(
                f"The existing connection {name!r} uses the provider {existing.provider!r}; "
                f"the document's used {data['provider']!r}. The existing connection is kept."
            )
        return existing, warnings
    try:
        connection = connection_create(
            client=client,
            name=name,
            kind=kind,
            provider=data["provider"],
            auth_kind=data["auth_kind"],
            settings=data["settings"],
            credentials={},
        )
    except ValidationError as exc:
        raise _validation_to_portable(exc, key) from None
    return connection, [
        f"Created the {kind} connection {name!r} without credentials: enter them in the admin "
        "(Connections) and use Test connection before enabling the flow."
    ]


def flow_import(
    *,
    document: Any,
    client_name: str | None = None,
    invoicing_connection_name: str | None = None,
    accounting_connection_name: str | None = None,
    flow_name: str | None = None,
) -> ImportResult:
    """Create or update (by client and name) the flow a document describes, replacing its
    mappings, all in one transaction. The client and missing connections are created (connections
    without credentials; the flow then stays disabled until someone enters them). Raises
    PortableError naming the offending key; nothing is written then.

    An import never turns a flow on: a new flow is created disabled, whatever the document says
    (a copy on the same connections would otherwise start feeding the same ledger at once, see
    DESIGN "idempotency is per ledger"), and an existing flow keeps its enabled state. A person
    enables it in the admin, which asks for confirmation when another enabled flow reads the
    same invoicing account and writes to the same folder."""
    read = flow_document_read(document)
    name = flow_name or read.flow.get("name")
    if not name:
        raise PortableError("flow.name", "missing (or give a new name).")
    warnings: list[str] = []

    with transaction.atomic():
        client_name = client_name or read.client
        client = Client.objects.filter(name=client_name).first()
        if client is None:
            try:
                client = client_create(name=client_name)
            except ValidationError as exc:
                raise _validation_to_portable(exc, "client") from None
            warnings.append(f"Created the client {client_name!r}.")

        connections = {}
        for key, kind, override in (
            ("invoicing_connection", ConnectionKind.INVOICING, invoicing_connection_name),
            ("accounting_connection", ConnectionKind.ACCOUNTING, accounting_connection_name),
        ):
            data = getattr(read, key)
            connection, notes = _connection_for(
                client=client, data=data, name=override or data["name"], kind=kind, key=key
            )
            connections[key] = connection
            warnings.extend(notes)

        values = {
            s.name: read.flow.get(s.name, SyncFlow._meta.get_field(s.name).get_default())
            for s in FLOW_SETTINGS
        }
        existing = SyncFlow.objects.filter(client=client, name=name).first()
        enabled_in_document = bool(values["enabled"])
        values["enabled"] = existing.enabled if existing is not None else False
        if existing is None and enabled_in_document:
            warnings.append(
                "The flow stays disabled: an import creates flows disabled. Review it, then "
                "enable it in the admin."
            )
        without_credentials = [c.name for c in connections.values() if not c.credentials]
        if values["enabled"] and without_credentials:
            values["enabled"] = False
            warnings.append(
                f"The flow stays disabled: {', '.join(without_credentials)} has no credentials."
            )
        elif enabled_in_document and without_credentials:
            warnings.append(
                f"{', '.join(without_credentials)} has no credentials: enter them before "
                "enabling the flow."
            )

        # The mappings are replaced right after: the completeness check counts them.
        rows = {"vat_mappings": read.vat_mappings, "journal_mappings": read.journal_mappings}

        def save() -> SyncFlow:
            if existing is None:
                return flow_create(client=client, name=name, **connections, **values, **rows)
            data = {"name": name, **connections, **values}
            return flow_update(flow=existing, data=data, **rows)

        try:
            try:
                flow = save()
            except ValidationError as exc:
                refusal = getattr(exc, "error_dict", {})
                if not (values["enabled"] and set(refusal) == {"enabled"}):
                    raise
                # An enabled flow whose setup is not complete here (its connections never
                # checked, say) is imported disabled, as one without credentials is.
                values["enabled"] = False
                why = " ".join(ValidationError(refusal["enabled"]).messages)
                warnings.append(f"The flow stays disabled: {why}")
                flow = save()
        except ValidationError as exc:
            raise _validation_to_portable(exc, "flow") from None
        try:
            flow_mappings_replace(
                flow=flow, vat_mappings=read.vat_mappings, journal_mappings=read.journal_mappings
            )
        except ValidationError as exc:
            raise _validation_to_portable(exc, "mappings") from None

    return ImportResult(flow=flow, created=existing is None, warnings=warnings)
