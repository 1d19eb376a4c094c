"""Pennylane's published contract, merged and enforced.

``tests/contracts/pennylane/*.json`` holds one OpenAPI document per operation we call (see its
SOURCES.md for what was read on Pennylane's pages and what was reconstructed). :func:`load_contract`
merges them into one document (a component defined twice must be identical); :class:`Contract`
checks a request (method, path, query, headers, JSON or multipart body) and a response (status,
headers, body) against it with ``openapi-core``, and answers a list of readable reasons (empty:
the message keeps the contract).

Beyond plain OpenAPI it refuses what Pennylane refuses and OpenAPI lets through: an unknown query
parameter, a ``filter`` that is not a JSON array of ``{field, operator, value}`` with a field and
an operator the operation lists in ``x-invsync-filter-fields``, a ``sort`` on a field not in
``x-invsync-sort-fields``. The bearer token itself is not checked here
(openapi-core cannot check an oauth2 scheme): the fake does it, as Pennylane does, with a 401.

Development tool: not shipped in the wheel (connectors.devtools is excluded).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
)
from openapi_core.validation.response.validators import V30ResponseHeadersValidator
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "tests" / "contracts" / "pennylane"
SERVER = "https://app.pennylane.com"
_METHODS = ("get", "post", "put", "patch", "delete")


class ContractError(ValueError):
    """The contract files themselves are inconsistent (two definitions of one thing)."""


def load_contract(directory: Path = CONTRACT_DIR) -> dict:
    """One OpenAPI document made of every ``*.json`` operation file in ``directory``."""
    merged: dict = {
        "openapi": "3.0.1",
        "info": {"title": "Pennylane Company API v2 (merged)", "version": "2.0"},
        "servers": [{"url": SERVER}],
        "paths": {},
        "components": {},
    }
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ContractError(f"no contract file in {directory}")
    for file in files:
        document = json.loads(file.read_text(encoding="utf-8"))
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                if method in merged["paths"].get(path, {}):
                    raise ContractError(f"{file.name}: {method.upper()} {path} is defined twice")
                merged["paths"].setdefault(path, {})[method] = operation
        for kind, items in document.get("components", {}).items():
            known = merged["components"].setdefault(kind, {})
            for name, value in items.items():
                if name in known and known[name] != value:
                    raise ContractError(f"{file.name}: components/{kind}/{name} differs")
                known[name] = value
    return merged


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    pattern: re.Pattern
    query_names: frozenset[str]
    filter_fields: dict[str, frozenset[str]]  # field -> the operators Pennylane takes on it
    sort_fields: frozenset[str]
    scopes: tuple[str, ...]
    request_media: dict[str, OAS30Validator | None]
    response_media: dict[str, dict[str, OAS30Validator | None]]

    def path_params(self, path: str) -> dict[str, str]:
        match = self.pattern.fullmatch(path)
        return match.groupdict() if match else {}


class _Request:
    """What openapi-core reads of a request; the host is always Pennylane's server."""

    def __init__(self, method: str, path: str, query: str, headers, body: bytes | None) -> None:
        self.host_url = SERVER
        self.path = path
        self.method = method.lower()
        self.body = body or None
        self._headers = Headers(list(dict(headers).items()))
        self.content_type = (self._headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
            header=self._headers,
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
        elif str(cause) and str(cause) not in reasons:
            reasons.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return "; ".join(reasons)


def _without_security(document: dict) -> dict:
    copied = copy.deepcopy(document)
    for methods in copied["paths"].values():
        for operation in methods.values():
            operation.pop("security", None)
    return copied


def _inline(document: dict, node):
    """``node`` with every local ``$ref`` replaced by its target (our schemas do not recurse)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for key in node["$ref"].removeprefix("#/").split("/"):
                target = target[key]
            return _inline(document, target)
        return {key: _inline(document, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(document, item) for item in node]
    return node


def _media_types(document: dict, content: dict | None) -> dict[str, OAS30Validator | None]:
    """Each declared media type, with a compiled validator of its schema for JSON."""
    out: dict[str, OAS30Validator | None] = {}
    for media_type, media in (content or {}).items():
        if media_type == "application/json" and "schema" in media:
            out[media_type] = OAS30Validator(_inline(document, media["schema"]))
        else:
            out[media_type] = None
    return out


def _mimetype(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _strict_json_errors(validator: OAS30Validator, body: bytes) -> list[str]:
    """JSON bodies checked as JSON: openapi-core casts ``"12"`` to an integer and lets it pass,
    Pennylane's parser does not (and openapi-core's casting is slow on long lists)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        return [f"body is not JSON: {exc}"]
    errors = []
    for error in validator.iter_errors(data):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{where}: {error.message}")
    return sorted(errors)


def _body_errors(
    media_types: dict[str, OAS30Validator | None], content_type: str, body: bytes | None
) -> tuple[list[str], bool]:
    """(errors, whether openapi-core must still check the body: multipart and the like)."""
    if not media_types:
        return [], False
    mimetype = _mimetype(content_type)
    if not body:
        return ["body is required"], False
    if mimetype not in media_types:
        return [f"content type {mimetype or '(none)'} is not one of {sorted(media_types)}"], False
    validator = media_types[mimetype]
    if validator is None:
        return [], mimetype != "text/plain"
    return _strict_json_errors(validator, body), False


def _parameter(document: dict, item: dict) -> dict:
    if "$ref" in item:
        name = item["$ref"].rsplit("/", 1)[-1]
        return document["components"]["parameters"][name]
    return item


class Contract:
    """Pennylane's contract, ready to check requests and responses."""

    def __init__(self, document: dict | None = None) -> None:
        self.document = document if document is not None else load_contract()
        spec = OpenAPI.from_dict(_without_security(self.document)).spec
        self._parameters = V30RequestParametersValidator(spec)
        self._bodies = V30RequestBodyValidator(spec)
        self._response_headers = V30ResponseHeadersValidator(spec)
        self.operations: list[Operation] = []
        for path, methods in self.document["paths"].items():
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
            for method, operation in methods.items():
                if method not in _METHODS:
                    continue
                params = [_parameter(self.document, p) for p in operation.get("parameters", [])]
                security = operation.get("security") or [{}]
                self.operations.append(
                    Operation(
                        operation_id=operation["operationId"],
                        method=method.upper(),
                        path=path,
                        pattern=re.compile(regex),
                        query_names=frozenset(p["name"] for p in params if p["in"] == "query"),
                        filter_fields={
                            name: frozenset(operators)
                            for name, operators in operation.get(
                                "x-invsync-filter-fields", {}
                            ).items()
                        },
                        sort_fields=frozenset(operation.get("x-invsync-sort-fields", [])),
                        scopes=tuple(next(iter(security[0].values()), [])),
                        request_media=_media_types(
                            self.document, operation.get("requestBody", {}).get("content")
                        ),
                        response_media={
                            status: _media_types(self.document, response.get("content"))
                            for status, response in operation["responses"].items()
                        },
                    )
                )
        # Literal segments win over templates (/customer_invoices/import before /{id}).
        self.operations.sort(key=lambda op: (op.path.count("{"), -len(op.path)))

    def operation_for(self, method: str, path: str) -> Operation | None:
        for operation in self.operations:
            if operation.method == method.upper() and operation.pattern.fullmatch(path):
                return operation
        return None

    def request_errors(
        self, *, method: str, url: str, headers, body: bytes | None = None
    ) -> list[str]:
        """Why this request breaks the contract (empty list: it keeps it)."""
        parts = urlsplit(url)
        operation = self.operation_for(method, parts.path)
        if operation is None:
            return [f"{method.upper()} {parts.path}: no such operation in Pennylane's contract"]
        errors = []
        query = parse_qsl(parts.query, keep_blank_values=True)
        for name in sorted({name for name, _ in query} - operation.query_names):
            errors.append(f"{operation.operation_id}: unknown query parameter {name!r}")
        for name, value in query:
            if name == "filter" and "filter" in operation.query_names:
                errors += self.filter_errors(operation, value)
            elif name == "sort" and value.removeprefix("-") not in operation.sort_fields:
                allowed = ", ".join(sorted(operation.sort_fields))
                errors.append(f"{operation.operation_id}: cannot sort on {value!r} ({allowed})")
        request = _Request(method, parts.path, parts.query, headers, body)
        for exc in self._parameters.iter_errors(request):
            errors.append(f"{operation.operation_id}: {_describe(exc)}")
        reasons, deeper = _body_errors(operation.request_media, request.content_type, body)
        errors += [f"{operation.operation_id}: request {reason}" for reason in reasons]
        if deeper:
            for exc in self._bodies.iter_errors(request):
                errors.append(f"{operation.operation_id}: {_describe(exc)}")
        return list(dict.fromkeys(errors))

    def filter_errors(self, operation: Operation, raw: str) -> list[str]:
        where = f"{operation.operation_id}: filter"
        try:
            rules = json.loads(raw)
        except ValueError:
            return [f"{where} is not JSON: {raw!r}"]
        if not isinstance(rules, list):
            return [f"{where} must be a JSON array of {{field, operator, value}}"]
        errors = []
        for rule in rules:
            if not isinstance(rule, dict) or set(rule) != {"field", "operator", "value"}:
                errors.append(f"{where}: each rule is {{field, operator, value}}, not {rule!r}")
                continue
            operators = operation.filter_fields.get(rule["field"])
            if operators is None:
                allowed = ", ".join(sorted(operation.filter_fields)) or "none"
                errors.append(f"{where}: field {rule['field']!r} not filterable ({allowed})")
            elif rule["operator"] not in operators:
                taken = ", ".join(sorted(operators))
                errors.append(
                    f"{where}: {rule['field']!r} does not take {rule['operator']!r} ({taken})"
                )
            elif rule["operator"] in ("in", "not_in") and not isinstance(rule["value"], list):
                errors.append(f"{where}: {rule['operator']!r} takes an array value")
        return errors

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
        """Why this response to this request breaks the contract (empty list: it keeps it)."""
        parts = urlsplit(url)
        operation = self.operation_for(method, parts.path)
        if operation is None:
            return [f"{method.upper()} {parts.path}: no such operation in Pennylane's contract"]
        request = _Request(method, parts.path, parts.query, request_headers, request_body)
        response = _Response(status, headers, body)
        where = f"{operation.operation_id} answered {status}"
        errors = [
            f"{where}: {_describe(exc)}"
            for exc in self._response_headers.iter_errors(request, response)
        ]
        media = operation.response_media.get(str(status))
        if media is None:
            return errors or [f"{where}: no such response in Pennylane's contract"]
        reasons, _ = _body_errors(media, response.content_type, body)
        return errors + [f"{where}: {reason}" for reason in reasons]
