"""Xero's published contract, enforced.

``tests/contracts/xero/xero_accounting.yaml`` is Xero's own OpenAPI description of the Accounting
API (MIT); ``connections.yaml`` is ours, for the identity API's ``GET /connections`` that spec
lacks (see SOURCES.md there). :class:`XeroContract` checks a request (method, path, query, headers,
JSON or binary body) and a response (status, headers, body) against them with ``openapi-core``,
and answers a list of readable reasons (empty: the message keeps the contract).

- The spec does not pass spec validation (a boolean with a string default): it is loaded with
  validation off. The documents and openapi-core's specs are loaded once per process
  (:func:`documents`, ``XeroContract()`` is cheap after the first).
- JSON bodies are checked as JSON with compiled JSON Schemas (openapi-core would cast ``"12"``
  into a number), ``$ref`` resolved within the document (Xero's schemas refer to each other).
- Beyond plain OpenAPI: an unknown query parameter is refused, and an ``Idempotency-Key`` over
  the 128 characters the spec's description allows.
- The bearer token is not checked here (openapi-core cannot check an oauth2 scheme): the fake
  does it. Statuses the spec does not list (401, 403, 404, 429, 5xx; 400 on reads) are not
  checked: the spec has nothing to check them against.

Development tool: not shipped in the wheel (connectors.devtools is excluded); no django.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import yaml
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import V30RequestParametersValidator
from openapi_core.validation.response.validators import V30ResponseHeadersValidator
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from werkzeug.datastructures import Headers, ImmutableMultiDict

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "tests" / "contracts" / "xero"
SPEC_FILE = CONTRACT_DIR / "xero_accounting.yaml"
CONNECTIONS_FILE = CONTRACT_DIR / "connections.yaml"
CACHE_DIR = Path(__file__).resolve().parents[2] / "var" / "contracts"
SERVER = "https://api.xero.com"
API_PREFIX = "/api.xro/2.0"
IDEMPOTENCY_KEY_MAX = 128  # the spec's description of the Idempotency-Key header
_METHODS = ("get", "post", "put", "patch", "delete")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's C loader (0.35 s for the 926 KB spec instead of ~8 s), timestamps kept as text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> dict:
    """The YAML document at ``path``, through a JSON copy under ``var/contracts`` keyed by the
    file's hash (JSON reads in a tenth of the C loader's time; without libyaml PyYAML needs
    about 8 s for the spec)."""
    raw = path.read_bytes()
    cache = CACHE_DIR / f"{path.stem}-{hashlib.sha256(raw).hexdigest()[:16]}.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(cache.read_text(encoding="utf-8"))
    document = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a safe loader subclass
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(document), encoding="utf-8")
        partial.replace(cache)  # atomic: a concurrent reader sees the whole file or none
    return document


@dataclass(frozen=True)
class Loaded:
    """Both documents and what openapi-core built of them, with the seconds each load took."""

    accounting: dict
    connections: dict
    accounting_spec: object
    connections_spec: object
    seconds: dict[str, float]


@functools.cache
def documents() -> Loaded:
    """Load once per process (measured: ``documents().seconds``)."""
    seconds = {}
    started = time.perf_counter()
    accounting = load_yaml(SPEC_FILE)
    connections = load_yaml(CONNECTIONS_FILE)
    seconds["read"] = time.perf_counter() - started
    started = time.perf_counter()
    config = Config(spec_validator_cls=None)  # the spec itself fails validation: SOURCES.md
    accounting_spec = OpenAPI.from_dict(accounting, config=config).spec
    connections_spec = OpenAPI.from_dict(connections, config=config).spec
    seconds["openapi"] = time.perf_counter() - started
    return Loaded(accounting, connections, accounting_spec, connections_spec, seconds)


@dataclass
class Operation:
    operation_id: str
    method: str
    path: str  # as served: /api.xro/2.0/Invoices/{InvoiceID} or /connections
    pattern: re.Pattern
    document: dict = field(repr=False)
    query_names: frozenset[str]
    request_content: dict = field(repr=False)
    responses: dict = field(repr=False)
    spec: object = field(repr=False)
    kind: str = "accounting"  # which document: accounting or connections
    pointer_parts: tuple[str, ...] = ()  # where the operation sits in its document
    body_parts: tuple[str, ...] = ()  # where its request body sits (a $ref: under components)

    def path_params(self, path: str) -> dict[str, str]:
        match = self.pattern.fullmatch(path)
        return match.groupdict() if match else {}


class _Request:
    """What openapi-core reads of a request; the host is always Xero's."""

    def __init__(
        self, method: str, path: str, query: str, headers, body: bytes | None, operation
    ) -> None:
        self.host_url = SERVER
        self.path = path
        # The operation our router chose (openapi-core's own would take /Attachments/{FileName}
        # for /Attachments/{AttachmentID}): its template, and the values of its path parameters.
        self.path_pattern = operation.path
        self.method = method.lower()
        self.body = body or None
        self._headers = Headers(list(dict(headers).items()))
        self.content_type = (self._headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
            header=self._headers,
            path=operation.path_params(path),
        )


class _Response:
    def __init__(self, status: int, headers, body: bytes | None) -> None:
        self.status_code = status
        self.headers = Headers(list(dict(headers).items()))
        self.content_type = (self.headers.get("Content-Type") or "").lower()
        self.data = body or b""


def _describe(exc: BaseException) -> str:
    """The reason an openapi-core exception gives, with the schema errors under it."""
    reasons = [str(exc)]
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            for error in schema_errors:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                reasons.append(f"{where}: {error.message}")
        elif str(cause) and str(cause) not in reasons and not str(cause).startswith("400 Bad"):
            reasons.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return "; ".join(reasons)


def _resolve(document: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for key in node["$ref"].removeprefix("#/").split("/"):
            target = target[key]
        node = target
    return node


def _mimetype(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


@functools.cache
def _validator(kind: str, parts: tuple[str, ...]) -> OAS30Validator:
    """A compiled validator of the schema at ``parts`` (keys into the document), its ``$ref``s
    resolved against the document's components (Xero's schemas refer to each other, some in
    cycles: no inlining)."""
    loaded = documents()
    document = loaded.accounting if kind == "accounting" else loaded.connections
    node = document
    for key in parts:
        node = node[key]
    schema = {"components": document.get("components", {}), "allOf": [node]}
    return OAS30Validator(schema, format_checker=oas30_format_checker)


class XeroContract:
    """Xero's contract, ready to check requests and responses (cheap after the first)."""

    def __init__(self) -> None:
        self.loaded = documents()
        self.operations = _operations()
        self._validators = _spec_validators()

    def operation_for(self, method: str, path: str) -> Operation | None:
        for operation in self.operations:
            if operation.method == method.upper() and operation.pattern.fullmatch(path):
                return operation
        return None

    # -- requests ------------------------------------------------------------------------------

    def request_errors(
        self, *, method: str, url: str, headers, body: bytes | None = None
    ) -> list[str]:
        """Why this request breaks the contract (empty list: it keeps it)."""
        parts = urlsplit(url)
        operation = self.operation_for(method, parts.path)
        if operation is None:
            return [f"{method.upper()} {parts.path}: no such operation in Xero's contract"]
        where = operation.operation_id
        errors = []
        query = parse_qsl(parts.query, keep_blank_values=True)
        for name in sorted({name for name, _ in query} - operation.query_names):
            errors.append(f"{where}: unknown query parameter {name!r}")
        lowered = {str(k).lower(): v for k, v in dict(headers).items()}
        key = lowered.get("idempotency-key")
        if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
            errors.append(f"{where}: Idempotency-Key is {len(key)} characters (128 at most)")
        request = _Request(method, parts.path, parts.query, headers, body, operation)
        parameters, _ = self._validators[id(operation.spec)]
        for exc in parameters.iter_errors(request):
            errors.append(f"{where}: {_describe(exc)}")
        errors += [
            f"{where}: request {reason}" for reason in self._request_body(operation, request)
        ]
        return list(dict.fromkeys(errors))

    def _request_body(self, operation: Operation, request: _Request) -> list[str]:
        content = operation.request_content
        if not content:
            return ["takes no body"] if request.body and request.method == "get" else []
        if not request.body:
            return ["body is required"]
        mimetype = _mimetype(request.content_type)
        if mimetype not in content:
            return [f"content type {mimetype or '(none)'} is not one of {sorted(content)}"]
        if mimetype != "application/json":
            return []  # binary (attachments): any bytes
        parts = (*operation.body_parts, "content", mimetype, "schema")
        return _json_errors(_validator(operation.kind, parts), request.body)

    # -- responses -----------------------------------------------------------------------------

    def response_errors(
        self,
        *,
        method: str,
        url: str,
        request_headers,
        request_body: bytes | None,
        status: int,
        headers,
        body: bytes | None,
    ) -> list[str]:
        """Why this response to this request breaks the contract (empty list: it keeps it).
        Statuses of 400 and over the operation does not list are not checked (SOURCES.md)."""
        parts = urlsplit(url)
        operation = self.operation_for(method, parts.path)
        if operation is None:
            return [f"{method.upper()} {parts.path}: no such operation in Xero's contract"]
        where = f"{operation.operation_id} answered {status}"
        declared = operation.responses.get(str(status))
        if declared is None:
            return [] if status >= 400 else [f"{where}: no such response in Xero's contract"]
        request = _Request(
            method, parts.path, parts.query, request_headers, request_body, operation
        )
        response = _Response(status, headers, body)
        _, header_validator = self._validators[id(operation.spec)]
        errors = [
            f"{where}: {_describe(exc)}" for exc in header_validator.iter_errors(request, response)
        ]
        content = _resolve(operation.document, declared).get("content") or {}
        if not content:
            return errors
        mimetype = _mimetype(response.content_type)
        if mimetype not in content:
            return [*errors, f"{where}: content type {mimetype or '(none)'} not {sorted(content)}"]
        if mimetype != "application/json":
            return errors
        if "$ref" in declared:  # a shared response: it lives under components
            place = tuple(declared["$ref"].removeprefix("#/").split("/"))
        else:
            place = (*operation.pointer_parts, "responses", str(status))
        parts = (*place, "content", mimetype, "schema")
        reasons = _json_errors(_validator(operation.kind, parts), body or b"")
        return errors + [f"{where}: {reason}" for reason in reasons]


def _json_errors(validator: OAS30Validator, body: bytes) -> list[str]:
    """JSON bodies checked as JSON: no casting of ``"12"`` into a number."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        return [f"body is not JSON: {exc}"]
    errors = []
    for error in validator.iter_errors(data):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{where}: {error.message}")
    return sorted(errors)


@functools.cache
def _spec_validators() -> dict[int, tuple]:
    """openapi-core's parameter and response-header validators of each spec (built once)."""
    loaded = documents()
    return {
        id(spec): (V30RequestParametersValidator(spec), V30ResponseHeadersValidator(spec))
        for spec in (loaded.accounting_spec, loaded.connections_spec)
    }


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _path_regex(path: str, params: list[dict]) -> str:
    """The path as a regex; a uuid parameter matches a uuid only, as Xero routes
    ``/Attachments/{AttachmentID}`` and ``/Attachments/{FileName}`` apart."""
    uuids = {
        p["name"]
        for p in params
        if p.get("in") == "path" and (p.get("schema") or {}).get("format") == "uuid"
    }

    def segment(match: re.Match) -> str:
        name = match.group(1)
        return f"(?P<{name}>{_UUID if name in uuids else '[^/]+'})"

    return re.sub(r"\\\{(\w+)\\\}", segment, re.escape(path))


@functools.cache
def _operations() -> list[Operation]:
    loaded = documents()
    operations = []
    for kind, document, spec, prefix in (
        ("accounting", loaded.accounting, loaded.accounting_spec, API_PREFIX),
        ("connections", loaded.connections, loaded.connections_spec, ""),
    ):
        for path, item in document["paths"].items():
            shared = [_resolve(document, p) for p in item.get("parameters", [])]
            served = prefix + path
            for method, raw in item.items():
                if method not in _METHODS:
                    continue
                params = shared + [_resolve(document, p) for p in raw.get("parameters", [])]
                regex = _path_regex(served, params)
                raw_body = raw.get("requestBody", {})
                body = _resolve(document, raw_body)
                if "$ref" in raw_body:
                    body_parts = tuple(raw_body["$ref"].removeprefix("#/").split("/"))
                else:
                    body_parts = ("paths", path, method, "requestBody")
                operation = Operation(
                    operation_id=raw["operationId"],
                    method=method.upper(),
                    path=served,
                    pattern=re.compile(regex),
                    document=document,
                    query_names=frozenset(p["name"] for p in params if p["in"] == "query"),
                    request_content=body.get("content") or {},
                    responses=raw.get("responses", {}),
                    spec=spec,
                    kind=kind,
                    pointer_parts=("paths", path, method),
                    body_parts=body_parts,
                )
                operations.append(operation)
    # Literal segments win over templates.
    operations.sort(key=lambda op: (op.path.count("{"), -len(op.path)))
    return operations
