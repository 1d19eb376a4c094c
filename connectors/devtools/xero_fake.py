"""A fake Xero (Accounting API 2.0 and ``/connections``) on 127.0.0.1 that enforces Xero's spec.

A real HTTP server (threads) holding one or more organisations (tenants): Organisation, a UK-like
chart of accounts, UK tax rates, tracking categories, currencies, contacts, invoices, credit notes
and their attachments. EVERY request it receives is checked against Xero's published spec
(:mod:`connectors.devtools.xero_contract`): one that breaks it is answered 400 with the reasons
AND recorded in :attr:`XeroFake.violations`; every response it sends is checked too (a bad one is
recorded and answered 500). Tests assert ``fake.violations == []``. How to use it, what it
answers and its switches: ``tests/contracts/xero/README.md``.

    with XeroFake(clock=clock) as fake:
        acme = fake.add_tenant("Acme Ltd")
        token = fake.tokens.issue(tenant_ids=[acme.tenant_id])
        ...  # the connector calls fake.connections_url and fake.api_url
        fake.assert_no_violations()

Development tool: not shipped in the wheel (connectors.devtools is excluded); no django, no ORM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import mimetypes
import re
import secrets
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.devtools.http_fake import LocalHttpServer
from connectors.devtools.xero_contract import API_PREFIX, Operation, XeroContract

CENT = Decimal("0.01")
ZERO = Decimal(0)
BATCH_MAX = 50  # documents per PUT/POST (Xero's documented limit)
ATTACHMENTS_MAX = 10  # attachments per document (Xero's documented limit)
ATTACHMENT_BYTES_MAX = 25 * 1024 * 1024

# (code, name, type, default TaxType, status, SystemAccount)
UK_CHART: tuple[tuple[str, str, str, str, str, str | None], ...] = (
    ("090", "Business Bank Account", "BANK", "NONE", "ACTIVE", None),
    ("200", "Sales", "REVENUE", "OUTPUT2", "ACTIVE", None),
    ("260", "Other Revenue", "REVENUE", "OUTPUT2", "ACTIVE", None),
    ("270", "Interest Income", "OTHERINCOME", "EXEMPTOUTPUT", "ACTIVE", None),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "INPUT2", "ACTIVE", None),
    ("400", "Advertising", "OVERHEADS", "INPUT2", "ACTIVE", None),
    ("429", "General Expenses", "OVERHEADS", "INPUT2", "ACTIVE", None),
    ("461", "Printing & Stationery", "OVERHEADS", "INPUT2", "ACTIVE", None),
    ("477", "Salaries", "OVERHEADS", "NONE", "ACTIVE", None),
    ("499", "Old Expenses", "OVERHEADS", "INPUT2", "ARCHIVED", None),
    ("610", "Accounts Receivable", "CURRENT", "NONE", "ACTIVE", "DEBTORS"),
    ("800", "Accounts Payable", "CURRLIAB", "NONE", "ACTIVE", "CREDITORS"),
    ("820", "VAT", "CURRLIAB", "NONE", "ACTIVE", "GST"),
    ("860", "Rounding", "CURRLIAB", "NONE", "ACTIVE", "ROUNDING"),
)
_CLASSES = {
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET", "PREPAYMENT": "ASSET", "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY", "PAYG": "LIABILITY", "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE", "DIRECTCOSTS": "EXPENSE", "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE", "OTHERINCOME": "REVENUE", "REVENUE": "REVENUE", "SALES": "REVENUE",
}  # fmt: skip
# (TaxType, name, display rate %, effective rate %, ReportTaxType). Reverse-charge rates show
# 20 % but their two components (+20, -20) leave nothing on the document (effective 0).
UK_TAX_RATES: tuple[tuple[str, str, str, str, str], ...] = (
    ("OUTPUT2", "20% (VAT on Income)", "20", "20", "OUTPUT"),
    ("INPUT2", "20% (VAT on Expenses)", "20", "20", "INPUT"),
    ("RROUTPUT", "5% (VAT on Income)", "5", "5", "OUTPUT"),
    ("RRINPUT", "5% (VAT on Expenses)", "5", "5", "INPUT"),
    ("ZERORATEDOUTPUT", "Zero Rated Income", "0", "0", "ZERORATEDOUTPUT"),
    ("ZERORATEDINPUT", "Zero Rated Expenses", "0", "0", "ZERORATEDINPUT"),
    ("EXEMPTOUTPUT", "Exempt Income", "0", "0", "EXEMPTOUTPUT"),
    ("EXEMPTINPUT", "Exempt Expenses", "0", "0", "EXEMPTINPUT"),
    ("ECZROUTPUT", "Zero Rated EC Goods Income", "0", "0", "ECOUTPUT"),
    ("ECZROUTPUTSERVICES", "Zero Rated EC Services", "0", "0", "ECOUTPUTSERVICES"),
    ("ECZRINPUT", "Zero Rated EC Expenses", "0", "0", "ECINPUT"),
    ("ECACQUISITIONS", "20% (EC Acquisitions)", "20", "0", "ECACQUISITIONS"),
    ("REVERSECHARGES", "Reverse Charge Expenses (20%)", "20", "0", "REVERSECHARGES"),
    ("NONE", "No VAT", "0", "0", "NONE"),
)
CURRENCY_NAMES = {
    "GBP": "British Pound", "EUR": "Euro", "USD": "United States Dollar",
    "AUD": "Australian Dollar", "NZD": "New Zealand Dollar", "CHF": "Swiss Franc",
}  # fmt: skip
DOCUMENT_STATUSES_ON_CREATION = ("DRAFT", "SUBMITTED", "AUTHORISED")
# What an update may turn a document's status into (reconstructed from Xero's docs: drafts and
# submitted ones are deleted, approved ones voided, nothing goes back to a draft once approved).
STATUS_CHANGES = {
    "DRAFT": ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"),
    "SUBMITTED": ("SUBMITTED", "DRAFT", "AUTHORISED", "DELETED"),
    "AUTHORISED": ("AUTHORISED", "VOIDED"),
    "PAID": ("PAID",),
    "VOIDED": ("VOIDED",),
    "DELETED": ("DELETED",),
}


class NotFound(Exception):
    """Answered 404, as Xero does for an unknown id in the path."""


class Refused(Exception):
    """Answered 400 with Xero's ValidationException shape (one message)."""


# -- small helpers --------------------------------------------------------------------------


def _msdate(moment: datetime) -> str:
    """Xero's JSON date: ``/Date(1573603200000+0000)/``."""
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def _now() -> datetime:
    return datetime.now(UTC)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(value: Any, default: Decimal | None = None) -> Decimal | None:
    if value is None:
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return default


def _parse_date(text: Any) -> date | None:
    if not isinstance(text, str) or not text:
        return None
    match = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).date()
    try:
        return datetime.fromisoformat(text[:19] if "T" in text else text[:10]).date()
    except ValueError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# -- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What a token verifier says of a token it knows."""

    state: Literal["valid", "expired", "revoked"]
    tenant_ids: tuple[str, ...] | None = None  # None: every tenant of the fake


@dataclass
class TokenInfo:
    tenant_ids: tuple[str, ...] | None
    expires_at: float | None
    auth_event_id: str
    revoked: bool = False


class TokenRegistry:
    """The bearer tokens the fake accepts, on the fake's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()

    def issue(self, *, tenant_ids: Iterable[str] | None = None, ttl: float | None = 1800.0) -> str:
        """A new access token whose grant holds ``tenant_ids`` (None: every tenant); Xero's
        access tokens live 30 minutes."""
        token = "xero_" + secrets.token_urlsafe(24)
        self.register(token, tenant_ids=tenant_ids, ttl=ttl)
        return token

    def register(
        self, token: str, *, tenant_ids: Iterable[str] | None = None, ttl: float | None = None
    ) -> None:
        with self._lock:
            self._tokens[token] = TokenInfo(
                tenant_ids=tuple(str(t) for t in tenant_ids) if tenant_ids is not None else None,
                expires_at=self._clock() + ttl if ttl is not None else None,
                auth_event_id=str(uuid.uuid4()),
            )

    def expire(self, token: str) -> None:
        with self._lock:
            self._tokens[token].expires_at = self._clock() - 1

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens[token].revoked = True

    def verdict(self, token: str) -> Verdict | None:
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return None
            if info.revoked:
                return Verdict("revoked", info.tenant_ids)
            if info.expires_at is not None and info.expires_at <= self._clock():
                return Verdict("expired", info.tenant_ids)
            return Verdict("valid", info.tenant_ids)


def oauth_server_verifier(
    server: Any, *, tenant_ids: Iterable[str] | None = None
) -> Callable[[str], Verdict | None]:
    """A verifier for access tokens issued by
    :class:`connectors.devtools.oauth_server.OAuthServer`: live → valid (holding ``tenant_ids``,
    None: every tenant), grant revoked → revoked, otherwise unknown (401)."""
    ids = tuple(str(t) for t in tenant_ids) if tenant_ids is not None else None

    def verify(token: str) -> Verdict | None:
        if server.grant_revoked(token):
            return Verdict("revoked", ids)
        if server.is_live(token):
            return Verdict("valid", ids)
        return None

    return verify


# -- state ------------------------------------------------------------------------------------


@dataclass
class Tenant:
    tenant_id: str
    name: str
    base_currency: str
    country: str
    currencies: tuple[str, ...]
    unique_invoice_numbers: bool = True
    organisation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: datetime = field(default_factory=_now)
    accounts: dict[str, dict] = field(default_factory=dict)  # AccountID -> account
    tax_rates: dict[str, dict] = field(default_factory=dict)  # TaxType -> tax rate
    tracking_categories: dict[str, dict] = field(default_factory=dict)
    contacts: dict[str, dict] = field(default_factory=dict)
    invoices: dict[str, dict] = field(default_factory=dict)
    credit_notes: dict[str, dict] = field(default_factory=dict)
    attachments: dict[str, list[dict]] = field(default_factory=dict)  # document id -> list
    files: dict[str, bytes] = field(default_factory=dict)  # AttachmentID -> bytes
    numbers: Counter = field(default_factory=Counter)  # INV / CN sequences

    def account(self, code: str) -> dict | None:
        for account in self.accounts.values():
            if account.get("Code") == code:
                return account
        return None

    def invoice_by_reference(self, reference: str) -> dict | None:
        for document in (*self.invoices.values(), *self.credit_notes.values()):
            if document.get("Reference") == reference:
                return document
        return None


@dataclass(frozen=True)
class Violation:
    direction: Literal["request", "response"]
    operation_id: str
    method: str
    path: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.direction} {self.method} {self.path}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False  # close the connection without answering (the answer lost)


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(_jsonable(payload)).encode()
    return Answer(
        status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body
    )


def _problem(status: int, title: str, detail: str, headers: dict | None = None) -> Answer:
    """Xero's identity/gateway errors (401, 403, 429, 5xx): RFC 7807 problem details."""
    payload = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return _json_answer(status, payload, headers)


def _validation_exception(message: str, elements: list[dict] | None = None) -> Answer:
    """Xero's 400: ``{"ErrorNumber": 10, "Type": "ValidationException", ...}``."""
    payload: dict[str, Any] = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": message,
    }
    if elements is not None:
        payload["Elements"] = elements
    return _json_answer(400, payload)


@dataclass
class _Remembered:
    expires_at: float
    fingerprint: str
    answer: Answer


class XeroFake(LocalHttpServer):
    """The server, in a thread, on 127.0.0.1 (``port=0``: a free port)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: bool = True,
        minute_limit: int = 60,
        day_limit: int = 5000,
        concurrent_limit: int = 5,
        app_minute_limit: int = 10_000,
        idempotency_ttl: float = 86_400.0,
        contract: XeroContract | None = None,
        port: int = 0,
    ) -> None:
        self.contract = contract if contract is not None else XeroContract()
        self.clock = clock
        self.rate_limit = rate_limit
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        self.idempotency_ttl = idempotency_ttl
        self.tokens = TokenRegistry(clock)
        self.tenants: dict[str, Tenant] = {}
        self.violations: list[Violation] = []
        self.calls: Counter[str] = Counter()
        self.answers: list[tuple[str, int]] = []  # (operationId, status) in order
        self._verifiers: list[Callable[[str], Verdict | None]] = []
        self._refusals: dict[str, str] = {}  # reference or number -> validation message
        self._failures: list[int] = []
        self._drops = 0
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, deque[float]] = {}
        self._app_minute: deque[float] = deque()
        self._in_progress: Counter[str] = Counter()
        self._gate: threading.Event | None = None
        self._remembered: dict[tuple[str, str, str, str], _Remembered] = {}
        self._lock = threading.RLock()
        self._listen(_handler(self), port)

    # -- life ----------------------------------------------------------------------------------

    def stop(self) -> None:
        if self._gate is not None:
            self._gate.set()
        super().stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: Xero's ``https://api.xero.com``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """``<base_url>/api.xro/2.0``: the Accounting API's base address."""
        return self.base_url + API_PREFIX

    @property
    def connections_url(self) -> str:
        return self.base_url + "/connections"

    # -- set-up --------------------------------------------------------------------------------

    def add_tenant(
        self,
        name: str = "Demo Company (UK)",
        *,
        base_currency: str = "GBP",
        country: str = "GB",
        tenant_id: str | None = None,
        currencies: Iterable[str] | None = None,
        unique_invoice_numbers: bool = True,
    ) -> Tenant:
        """An organisation with the UK-like chart, tax rates, a "Region" tracking category and
        its currencies (the base one plus EUR and USD unless ``currencies`` says otherwise)."""
        wanted = list(currencies) if currencies is not None else ["EUR", "USD", "GBP"]
        ordered = tuple(dict.fromkeys([base_currency, *wanted]))
        with self._lock:
            tenant = Tenant(
                tenant_id=tenant_id or str(uuid.uuid4()),
                name=name,
                base_currency=base_currency,
                country=country,
                currencies=ordered,
                unique_invoice_numbers=unique_invoice_numbers,
            )
            self.tenants[tenant.tenant_id] = tenant
            for code, account_name, kind, tax_type, status, system in UK_CHART:
                self.add_account(
                    tenant, code, account_name, kind, tax_type=tax_type, status=status,
                    system_account=system,
                )  # fmt: skip
            for tax_type, rate_name, display, effective, report in UK_TAX_RATES:
                components = [{"Name": "VAT", "Rate": Decimal(display), "IsCompound": False,
                               "IsNonRecoverable": False}]  # fmt: skip
                if Decimal(display) != Decimal(effective):
                    components.append({"Name": "Reverse Charge", "Rate": -Decimal(display),
                                       "IsCompound": False, "IsNonRecoverable": False})  # fmt: skip
                tenant.tax_rates[tax_type] = {
                    "Name": rate_name,
                    "TaxType": tax_type,
                    "ReportTaxType": report,
                    "Status": "ACTIVE",
                    "CanApplyToAssets": True,
                    "CanApplyToEquity": True,
                    "CanApplyToExpenses": True,
                    "CanApplyToLiabilities": True,
                    "CanApplyToRevenue": True,
                    "DisplayTaxRate": Decimal(display),
                    "EffectiveRate": Decimal(effective),
                    "TaxComponents": components,
                }
            category_id = str(uuid.uuid4())
            tenant.tracking_categories[category_id] = {
                "TrackingCategoryID": category_id,
                "Name": "Region",
                "Status": "ACTIVE",
                "Options": [
                    {"TrackingOptionID": str(uuid.uuid4()), "Name": option, "Status": "ACTIVE"}
                    for option in ("North", "South")
                ],
            }
            return tenant

    def add_account(
        self,
        tenant: Tenant,
        code: str,
        name: str,
        kind: str,
        *,
        tax_type: str = "NONE",
        status: str = "ACTIVE",
        system_account: str | None = None,
    ) -> dict:
        with self._lock:
            account_id = str(uuid.uuid4())
            account = {
                "AccountID": account_id,
                "Code": code,
                "Name": name,
                "Type": kind,
                "Status": status,
                "TaxType": tax_type,
                "Class": _CLASSES.get(kind, "EXPENSE"),
                "EnablePaymentsToAccount": False,
                "ShowInExpenseClaims": False,
                "BankAccountType": "BANK" if kind == "BANK" else "",
                "ReportingCode": "",
                "HasAttachments": False,
                "UpdatedDateUTC": _msdate(_now()),
                "AddToWatchlist": False,
            }
            if system_account:
                account["SystemAccount"] = system_account
            tenant.accounts[account_id] = account
            return account

    def tenant(self, tenant_id: str) -> Tenant:
        return self.tenants[tenant_id]

    # -- switches ------------------------------------------------------------------------------

    def trust(self, verifier: Callable[[str], Verdict | None]) -> None:
        """Accept the tokens ``verifier`` vouches for (OAuth2 access tokens issued elsewhere)."""
        self._verifiers.append(verifier)

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` tenant calls (past auth and limits) answer ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    def refuse(self, reference: str, message: str = "The document was refused.") -> None:
        """Refuse the document whose Reference (or InvoiceNumber, CreditNoteNumber) is
        ``reference``, with ``message`` in its ValidationErrors."""
        with self._lock:
            self._refusals[reference] = message

    def drop_after_write(self, count: int = 1) -> None:
        """The next ``count`` writes (PUT/POST) are done, then the connection is closed
        without an answer."""
        with self._lock:
            self._drops += count

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Requests past the limits wait inside the fake (in progress) until the block ends."""
        gate = threading.Event()
        self._gate = gate
        try:
            yield
        finally:
            self._gate = None
            gate.set()

    def in_progress(self, tenant_id: str) -> int:
        with self._lock:
            return self._in_progress[tenant_id]

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.answers.clear()

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError(
                "Xero contract broken:\n" + "\n".join(str(v) for v in self.violations)
            )

    # -- the request path ----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """One request, answered: contract, token, tenant, limits, then the work."""
        parts = urlsplit(target)
        with self._lock:
            operation = self.contract.operation_for(method, parts.path)
            op_id = operation.operation_id if operation else "unknown"
            self.calls[op_id] += 1
            answer, tenant = self._admit(operation, method, target, headers, body)
        if answer is not None:
            return self._finish(op_id, answer)
        try:
            gate = self._gate
            if gate is not None:
                gate.wait(timeout=30)
            with self._lock:
                answer = self._serve(operation, tenant, method, target, headers, body)
                return self._finish(op_id, answer)
        finally:
            with self._lock:
                self._in_progress[tenant.tenant_id] -= 1

    def _finish(self, op_id: str, answer: Answer) -> Answer:
        with self._lock:
            self.answers.append((op_id, answer.status))
        return answer

    def _violation(self, direction, operation: Operation | None, method, path, reasons) -> None:
        op_id = operation.operation_id if operation else "unknown"
        self.violations.append(Violation(direction, op_id, method, path, tuple(reasons)))

    def _admit(self, operation, method, target, headers, body) -> tuple[Answer | None, Any]:
        """Contract, token, tenant, limits: an answer when the request stops here."""
        path = urlsplit(target).path
        if operation is None:
            reasons = [f"{method} {path}: no such operation in Xero's contract"]
            self._violation("request", None, method, path, reasons)
            return _validation_exception("; ".join(reasons)), None
        # Checked first, so that a contract break is recorded even when the token is refused.
        reasons = self.contract.request_errors(
            method=method, url=target, headers=headers, body=body
        )
        if reasons:
            self._violation("request", operation, method, path, reasons)
        lowered = {k.lower(): v for k, v in headers.items()}
        authorization = lowered.get("authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            missing = ["Authorization: Bearer <access token> is required on every call"]
            self._violation("request", operation, method, path, missing)
            return self._unauthorized("AuthenticationUnsuccessful"), None
        token = authorization[7:].strip()
        verdict = self._verdict(token)
        if verdict is None or verdict.state == "revoked":
            return self._unauthorized("AuthenticationUnsuccessful"), None
        if verdict.state == "expired":
            return self._unauthorized("TokenExpired: token expired"), None
        if operation.operation_id == "getConnections":
            if reasons:
                return _validation_exception("; ".join(reasons)), None
            return _json_answer(200, self._connections(token, verdict)), None
        tenant_id = lowered.get("xero-tenant-id")
        if tenant_id is None:
            return _validation_exception("; ".join(reasons)), None
        tenant = self.tenants.get(tenant_id)
        held = verdict.tenant_ids is None or tenant_id in verdict.tenant_ids
        if tenant is None or not held:
            return _problem(403, "Forbidden", "AuthenticationUnsuccessful"), None
        limited = self._spend(tenant.tenant_id)
        if limited is not None:
            return limited, None
        self._in_progress[tenant.tenant_id] += 1
        if reasons:
            self._in_progress[tenant.tenant_id] -= 1
            return self._with_limits(_validation_exception("; ".join(reasons)), tenant), None
        return None, tenant

    def _verdict(self, token: str) -> Verdict | None:
        verdict = self.tokens.verdict(token)
        if verdict is not None:
            return verdict
        for verifier in self._verifiers:
            verdict = verifier(token)
            if verdict is not None:
                return verdict
        return None

    def _unauthorized(self, detail: str) -> Answer:
        return _problem(
            401, "Unauthorized", detail, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )

    def _connections(self, token: str, verdict: Verdict) -> list[dict]:
        ids = verdict.tenant_ids if verdict.tenant_ids is not None else tuple(self.tenants)
        event = str(uuid.uuid5(uuid.NAMESPACE_URL, token))
        out = []
        for tenant_id in ids:
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                continue
            stamp = tenant.created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            out.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, token + tenant_id)),
                    "authEventId": event,
                    "tenantId": tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": tenant.name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
            )
        return out

    # -- limits --------------------------------------------------------------------------------

    def _spend(self, tenant_id: str) -> Answer | None:
        """One call out of the tenant's windows, or the 429 Xero answers."""
        now = self.clock()
        minute = self._minute.setdefault(tenant_id, deque())
        day = self._day.setdefault(tenant_id, deque())
        for window, span in ((minute, 60.0), (day, 86_400.0), (self._app_minute, 60.0)):
            while window and window[0] <= now - span:
                window.popleft()
        if self.rate_limit:
            problem = None
            if len(day) >= self.day_limit:
                problem, retry = "day", day[0] + 86_400.0 - now
            elif len(minute) >= self.minute_limit:
                problem, retry = "minute", minute[0] + 60.0 - now
            elif len(self._app_minute) >= self.app_minute_limit:
                problem, retry = "appminute", self._app_minute[0] + 60.0 - now
            elif self._in_progress[tenant_id] >= self.concurrent_limit:
                problem, retry = "concurrent", 1.0
            if problem is not None:
                headers = {
                    "Retry-After": str(max(1, math.ceil(retry))),
                    "X-Rate-Limit-Problem": problem,
                    **self._remaining(tenant_id),
                }
                detail = f"Rate limit exceeded: {problem} limit"
                return _problem(429, "Too Many Requests", detail, headers)
        minute.append(now)
        day.append(now)
        self._app_minute.append(now)
        return None

    def _remaining(self, tenant_id: str) -> dict[str, str]:
        return {
            "X-MinLimit-Remaining": str(
                max(0, self.minute_limit - len(self._minute.get(tenant_id, ())))
            ),
            "X-DayLimit-Remaining": str(max(0, self.day_limit - len(self._day.get(tenant_id, ())))),
            "X-AppMinLimit-Remaining": str(max(0, self.app_minute_limit - len(self._app_minute))),
        }

    def _with_limits(self, answer: Answer, tenant: Tenant) -> Answer:
        return Answer(
            answer.status, {**answer.headers, **self._remaining(tenant.tenant_id)}, answer.body,
            answer.drop,
        )  # fmt: skip

    # -- serving -------------------------------------------------------------------------------

    def _serve(self, operation: Operation, tenant: Tenant, method, target, headers, body) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        if self._failures:
            status = self._failures.pop(0)
            return self._with_limits(
                _problem(status, "Service Unavailable", "injected fault"), tenant
            )
        path = urlsplit(target).path
        write = method.upper() in ("PUT", "POST")
        key = lowered.get("idempotency-key") if write else None
        fingerprint = hashlib.sha256(target.encode() + b"\0" + (body or b"")).hexdigest()
        slot = (tenant.tenant_id, method.upper(), path, key or "")
        if key:
            remembered = self._remembered.get(slot)
            if remembered is not None and remembered.expires_at > self.clock():
                if remembered.fingerprint == fingerprint:
                    return self._with_limits(remembered.answer, tenant)
                return self._with_limits(
                    _validation_exception("Idempotency-Key reused with a different request"),
                    tenant,
                )
        try:
            status, payload = self._work(operation, tenant, target, lowered, body)
            answer = payload if isinstance(payload, Answer) else _json_answer(status, payload)
        except NotFound as exc:
            answer = _problem(404, "Not Found", str(exc))
        except Refused as exc:
            answer = _validation_exception(str(exc))
        except Exception as exc:  # noqa: BLE001 - a fake's bug answers 500, never a dropped socket
            answer = _problem(500, "Internal Server Error", f"the fake failed: {exc!r}")
        reasons = self.contract.response_errors(
            method=method,
            url=target,
            request_headers=headers,
            request_body=body,
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
        )
        if reasons:
            self._violation("response", operation, method, path, reasons)
            answer = _problem(500, "Internal Server Error", "; ".join(reasons))
        if key and answer.status < 500:
            self._remembered[slot] = _Remembered(
                self.clock() + self.idempotency_ttl, fingerprint, answer
            )
        answer = self._with_limits(answer, tenant)
        if write and self._drops and answer.status < 500:
            self._drops -= 1
            return Answer(answer.status, answer.headers, answer.body, drop=True)
        return answer

    def _envelope(self, key: str, items: list[dict], **extra: Any) -> dict:
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "invsync fake Xero",
            "DateTimeUTC": _msdate(_now()),
            **extra,
            key: items,
        }

    def _work(self, operation: Operation, tenant: Tenant, target, headers, body):
        op = operation.operation_id
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        params = {k: unquote(v) for k, v in operation.path_params(parts.path).items()}
        data = None
        if body and headers.get("content-type", "").startswith("application/json"):
            data = json.loads(body, parse_float=Decimal)
        summarize = query.get("summarizeErrors", "true").lower() != "false"
        unitdp = 4 if query.get("unitdp") == "4" else 2
        if op == "getOrganisations":
            return 200, self._envelope("Organisations", [self._organisation(tenant)])
        if op == "getAccounts":
            items = _where(list(tenant.accounts.values()), query.get("where"))
            return 200, self._envelope("Accounts", _ordered(items, query.get("order"), "Code"))
        if op == "getTaxRates":
            items = _where(list(tenant.tax_rates.values()), query.get("where"))
            return 200, self._envelope("TaxRates", _ordered(items, query.get("order"), "Name"))
        if op == "getTrackingCategories":
            items = _where(list(tenant.tracking_categories.values()), query.get("where"))
            return 200, self._envelope("TrackingCategories", items)
        if op == "getCurrencies":
            items = [
                {"Code": c, "Description": CURRENCY_NAMES.get(c, c)} for c in tenant.currencies
            ]
            return 200, self._envelope("Currencies", _where(items, query.get("where")))
        if op == "getContacts":
            return 200, self._list_contacts(tenant, query, headers.get("if-modified-since"))
        if op == "getContact":
            return 200, self._envelope(
                "Contacts", [self._one(tenant.contacts, params["ContactID"])]
            )
        if op in ("createContacts", "updateOrCreateContacts", "updateContact"):
            return self._write_contacts(tenant, op, data, summarize, params.get("ContactID"))
        if op in ("getInvoices", "getCreditNotes"):
            return 200, self._list_documents(tenant, op, query, headers.get("if-modified-since"))
        if op == "getInvoice":
            return 200, self._envelope(
                "Invoices", [self._one(tenant.invoices, params["InvoiceID"])]
            )
        if op == "getCreditNote":
            found = self._one(tenant.credit_notes, params["CreditNoteID"])
            return 200, self._envelope("CreditNotes", [found])
        if op in ("createInvoices", "updateOrCreateInvoices", "updateInvoice"):
            return self._write_documents(
                tenant, "invoice", op != "createInvoices", data, summarize,
                params.get("InvoiceID"), unitdp,
            )  # fmt: skip
        if op in ("createCreditNotes", "updateOrCreateCreditNotes", "updateCreditNote"):
            return self._write_documents(
                tenant, "credit_note", op != "createCreditNotes", data, summarize,
                params.get("CreditNoteID"), unitdp,
            )  # fmt: skip
        if op in ("getInvoiceAttachments", "getCreditNoteAttachments"):
            document_id = params.get("InvoiceID") or params.get("CreditNoteID")
            self._document(tenant, params)
            return 200, {"Attachments": tenant.attachments.get(document_id.lower(), [])}
        if op in (
            "createInvoiceAttachmentByFileName",
            "updateInvoiceAttachmentByFileName",
            "createCreditNoteAttachmentByFileName",
            "updateCreditNoteAttachmentByFileName",
        ):
            attachment = self._attach(tenant, params, params["FileName"], body, query)
            return 200, {"Attachments": [attachment]}
        if op in (
            "getInvoiceAttachmentByFileName",
            "getCreditNoteAttachmentByFileName",
            "getInvoiceAttachmentById",
            "getCreditNoteAttachmentById",
        ):
            document_id = params.get("InvoiceID") or params.get("CreditNoteID")
            self._document(tenant, params)
            wanted = params.get("FileName") or params.get("AttachmentID", "").lower()
            for attachment in tenant.attachments.get(document_id.lower(), []):
                if wanted in (attachment["FileName"], attachment["AttachmentID"]):
                    content = tenant.files[attachment["AttachmentID"]]
                    return 200, Answer(200, {"Content-Type": "application/octet-stream"}, content)
            raise NotFound(f"no attachment {wanted}")
        raise NotFound(f"{op} is not served by the fake")

    @staticmethod
    def _one(records: dict[str, dict], raw_id: str) -> dict:
        item = records.get(raw_id.lower())
        if item is None:
            raise NotFound(f"no record {raw_id}")
        return item

    def _organisation(self, tenant: Tenant) -> dict:
        return {
            "OrganisationID": tenant.organisation_id,
            "Name": tenant.name,
            "LegalName": tenant.name,
            "PaysTax": True,
            "Version": "UK" if tenant.country == "GB" else "GLOBAL",
            "OrganisationType": "COMPANY",
            "BaseCurrency": tenant.base_currency,
            "CountryCode": tenant.country,
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUALS",
            "SalesTaxPeriod": "QUARTERLY1",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": _msdate(tenant.created),
            "OrganisationEntityType": "COMPANY",
            "Timezone": "GMTSTANDARDTIME",
            "ShortCode": "!" + tenant.tenant_id[:5],
            "Edition": "BUSINESS",
            "Class": "STANDARD",
        }

    # -- contacts ------------------------------------------------------------------------------

    def _list_contacts(self, tenant: Tenant, query: dict[str, str], since: str | None) -> dict:
        items = _modified_since(list(tenant.contacts.values()), since)
        if query.get("includeArchived", "false").lower() != "true":
            items = [c for c in items if c["ContactStatus"] == "ACTIVE"]
        if query.get("IDs"):
            wanted = {i.strip().lower() for i in query["IDs"].split(",")}
            items = [c for c in items if c["ContactID"] in wanted]
        if query.get("searchTerm"):
            term = query["searchTerm"].lower()
            fields = ("Name", "FirstName", "LastName", "ContactNumber", "CompanyNumber",
                      "EmailAddress", "AccountNumber")  # fmt: skip
            items = [c for c in items if any(term in str(c.get(f) or "").lower() for f in fields)]
        items = _ordered(_where(items, query.get("where")), query.get("order"), "Name")
        return self._paged("Contacts", items, query)

    def _paged(self, key: str, items: list[dict], query: dict[str, str]) -> dict:
        if "page" not in query:
            return self._envelope(key, items)
        page = max(1, int(query["page"]))
        size = min(1000, max(1, int(query.get("pageSize") or 100)))
        chunk = items[(page - 1) * size : page * size]
        pagination = {
            "page": page,
            "pageSize": size,
            "pageCount": max(1, math.ceil(len(items) / size)),
            "itemCount": len(items),
        }
        return self._envelope(key, chunk, pagination=pagination)

    def _write_contacts(self, tenant, op, data, summarize, path_id):
        raws = list((data or {}).get("Contacts") or [])
        if len(raws) > BATCH_MAX:
            raise Refused(f"At most {BATCH_MAX} contacts per request")
        results, failed = [], False
        staged: dict[str, dict] = {}
        for raw in raws:
            existing_id = path_id or (raw.get("ContactID") if op != "createContacts" else None)
            errors, contact = self._contact(tenant, raw, existing_id, staged)
            if errors:
                failed = True
                messages = [{"Message": m} for m in errors]
                refused = {"HasValidationErrors": True, "StatusAttributeString": "ERROR"}
                results.append({**raw, **refused, "ValidationErrors": messages})
            else:
                staged[contact["ContactID"]] = contact
                results.append({**contact, "StatusAttributeString": "OK"})
        if failed and summarize:
            elements = [r for r in results if r.get("StatusAttributeString") == "ERROR"]
            return 400, _validation_exception("A validation exception occurred", elements)
        tenant.contacts.update(staged)
        return 200, self._envelope("Contacts", results)

    def _contact(self, tenant, raw, existing_id, staged) -> tuple[list[str], dict | None]:
        errors = []
        existing = None
        if existing_id:
            existing = tenant.contacts.get(str(existing_id).lower())
            if existing is None:
                return [f"Contact {existing_id} could not be found"], None
        merged = {**(existing or {}), **{k: v for k, v in raw.items() if k != "ContactID"}}
        name = (merged.get("Name") or "").strip()
        if not name:
            errors.append("The contact name must be specified.")
        contact_id = existing["ContactID"] if existing else str(uuid.uuid4())
        others = [
            c for c in (*tenant.contacts.values(), *staged.values())
            if c["ContactID"] != contact_id and c.get("ContactStatus", "ACTIVE") == "ACTIVE"
        ]  # fmt: skip
        if name and any(c["Name"].lower() == name.lower() for c in others):
            errors.append(
                f"The contact name {name} is already assigned to another contact. The contact "
                "name must be unique across all active contacts."
            )
        for unique, label in (
            ("AccountNumber", "Account Number"),
            ("ContactNumber", "Contact Number"),
        ):
            value = merged.get(unique)
            if value and any(c.get(unique) == value for c in others):
                errors.append(f"The {label} already exists. Please enter a different {label}.")
        if errors:
            return errors, None
        contact = {
            "ContactID": contact_id,
            "ContactStatus": merged.get("ContactStatus") or "ACTIVE",
            "Name": name,
            "Addresses": merged.get("Addresses") or [],
            "Phones": merged.get("Phones") or [],
            "UpdatedDateUTC": _msdate(_now()),
            "ContactGroups": [],
            "IsSupplier": bool(merged.get("IsSupplier", False)),
            "IsCustomer": bool(merged.get("IsCustomer", False)),
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
        for name_ in ("ContactNumber", "AccountNumber", "TaxNumber", "CompanyNumber",
                      "EmailAddress", "FirstName", "LastName", "DefaultCurrency"):  # fmt: skip
            if merged.get(name_):
                contact[name_] = merged[name_]
        return [], contact

    def _contact_for(self, tenant: Tenant, raw: Any) -> tuple[dict | None, str | None]:
        """The document's contact: by ContactID, else by name (created when new, as Xero does)."""
        if not isinstance(raw, dict):
            return None, "A Contact must be specified for this type of transaction"
        if raw.get("ContactID"):
            contact = tenant.contacts.get(str(raw["ContactID"]).lower())
            if contact is None:
                return None, f"Contact {raw['ContactID']} could not be found"
            return contact, None
        name = (raw.get("Name") or "").strip()
        if not name:
            return None, "A Contact must be specified for this type of transaction"
        for contact in tenant.contacts.values():
            if contact["Name"].lower() == name.lower() and contact["ContactStatus"] == "ACTIVE":
                return contact, None
        errors, contact = self._contact(tenant, raw, None, {})
        if errors:
            return None, errors[0]
        tenant.contacts[contact["ContactID"]] = contact
        return contact, None

    # -- invoices and credit notes -------------------------------------------------------------

    def _list_documents(self, tenant: Tenant, op: str, query: dict[str, str], since) -> dict:
        invoices = op == "getInvoices"
        records = tenant.invoices if invoices else tenant.credit_notes
        items = _modified_since(list(records.values()), since)
        id_field = "InvoiceID" if invoices else "CreditNoteID"
        for param, name, lower in (
            ("IDs", id_field, True),
            ("InvoiceNumbers", "InvoiceNumber", False),
            ("Statuses", "Status", False),
        ):
            if query.get(param):
                wanted = {v.strip() for v in query[param].split(",")}
                if lower:
                    wanted = {v.lower() for v in wanted}
                items = [d for d in items if str(d.get(name)) in wanted]
        if query.get("ContactIDs"):
            wanted = {v.strip().lower() for v in query["ContactIDs"].split(",")}
            items = [d for d in items if d["Contact"]["ContactID"] in wanted]
        if query.get("searchTerm"):
            term = query["searchTerm"].lower()
            items = [
                d for d in items
                if term in str(d.get("InvoiceNumber", "")).lower()
                or term in str(d.get("Reference", "")).lower()
            ]  # fmt: skip
        items = _ordered(_where(items, query.get("where")), query.get("order"), "UpdatedDateUTC")
        return self._paged("Invoices" if invoices else "CreditNotes", items, query)

    def _document(self, tenant: Tenant, params: dict[str, str]) -> dict:
        """The invoice (``InvoiceID`` in the path) or credit note (``CreditNoteID``)."""
        if "InvoiceID" in params:
            document_id, records = params["InvoiceID"], tenant.invoices
        else:
            document_id, records = params["CreditNoteID"], tenant.credit_notes
        found = records.get(document_id.lower())
        if found is None:
            raise NotFound(f"no document {document_id}")
        return found

    def _write_documents(self, tenant, kind, may_update, data, summarize, path_id, unitdp=2):
        key = "Invoices" if kind == "invoice" else "CreditNotes"
        raws = list((data or {}).get(key) or [])
        if len(raws) > BATCH_MAX:
            raise Refused(f"At most {BATCH_MAX} documents per request")
        results, failed, staged = [], False, {}
        for raw in raws:
            errors, document = self._build_document(
                tenant, kind, raw, may_update, path_id, staged, unitdp
            )
            if errors:
                failed = True
                results.append(
                    {**raw, "HasErrors": True, "StatusAttributeString": "ERROR",
                     "ValidationErrors": [{"Message": m} for m in errors]}
                )  # fmt: skip
            else:
                staged[document["InvoiceID" if kind == "invoice" else "CreditNoteID"]] = document
                results.append({**document, "StatusAttributeString": "OK"})
        if failed and summarize:
            elements = [r for r in results if r["StatusAttributeString"] == "ERROR"]
            return 400, _validation_exception("A validation exception occurred", elements)
        records = tenant.invoices if kind == "invoice" else tenant.credit_notes
        records.update(staged)
        return 200, self._envelope(key, results)

    def _build_document(self, tenant, kind, raw, may_update, path_id, staged, unitdp=2):
        invoice = kind == "invoice"
        id_field, number_field = (
            ("InvoiceID", "InvoiceNumber") if invoice else ("CreditNoteID", "CreditNoteNumber")
        )
        records = tenant.invoices if invoice else tenant.credit_notes
        existing = None
        wanted_id = path_id or (raw.get(id_field) if may_update else None)
        if wanted_id:
            existing = records.get(str(wanted_id).lower()) or staged.get(str(wanted_id).lower())
            if existing is None:
                return [
                    f"{'Invoice' if invoice else 'Credit note'} {wanted_id} could not be found"
                ], None
        elif may_update and raw.get(number_field) and raw.get("Type", "").startswith("ACCREC"):
            existing = next(
                (d for d in records.values() if d.get(number_field) == raw[number_field]), None
            )
        merged = {**(existing or {}), **raw}
        errors: list[str] = []
        for reference in (raw.get("Reference"), raw.get(number_field)):
            if reference and reference in self._refusals:
                errors.append(self._refusals[reference])
        kinds = ("ACCREC", "ACCPAY") if invoice else ("ACCRECCREDIT", "ACCPAYCREDIT")
        doc_type = merged.get("Type")
        if doc_type not in kinds:
            errors.append(f"Type must be one of {', '.join(kinds)}" if doc_type else
                          "Type must be specified")  # fmt: skip
        contact, problem = self._contact_for(tenant, merged.get("Contact"))
        if problem:
            errors.append(problem)
        status = merged.get("Status") or "DRAFT"
        if existing is None and status not in DOCUMENT_STATUSES_ON_CREATION:
            errors.append(
                f"{'Invoice' if invoice else 'Credit note'} not of valid status for creation"
            )
        elif existing is not None and status not in STATUS_CHANGES[existing["Status"]]:
            errors.append(
                f"{'Invoice' if invoice else 'Credit note'} status cannot be changed from "
                f"{existing['Status']} to {status}"
            )
        currency = merged.get("CurrencyCode") or tenant.base_currency
        if currency not in tenant.currencies:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        issued = _parse_date(merged.get("Date")) if merged.get("Date") else date.today()
        if issued is None:
            errors.append(f"Date {merged.get('Date')!r} is not a valid date")
        due = _parse_date(merged.get("DueDate")) if merged.get("DueDate") else None
        if merged.get("DueDate") and due is None:
            errors.append(f"DueDate {merged.get('DueDate')!r} is not a valid date")
        amount_types = merged.get("LineAmountTypes") or "Exclusive"
        lines, line_errors = self._lines(
            tenant, merged.get("LineItems") or [], amount_types, status, unitdp
        )
        errors += line_errors
        number = merged.get(number_field)
        sales = doc_type in ("ACCREC", "ACCRECCREDIT")
        if sales and number and tenant.unique_invoice_numbers:
            own = existing[id_field] if existing else None
            taken = [
                d for d in (*records.values(), *staged.values())
                if d.get(number_field) == number and d[id_field] != own
                and d["Status"] not in ("DELETED", "VOIDED")
            ]  # fmt: skip
            if taken:
                errors.append(
                    "Invoice # must be unique." if invoice else "Credit Note # must be unique."
                )
        if errors:
            return errors, None
        if sales and not number:
            prefix = "INV" if invoice else "CN"
            tenant.numbers[prefix] += 1
            number = f"{prefix}-{tenant.numbers[prefix]:04d}"
        sub_total = sum(
            (
                line["LineAmount"] - (line["TaxAmount"] if amount_types == "Inclusive" else ZERO)
                for line in lines
            ),
            ZERO,
        )
        total_tax = sum((line["TaxAmount"] for line in lines), ZERO)
        total = sub_total + total_tax
        if total < 0:
            return [
                f"{'Invoice' if invoice else 'Credit note'} total cannot be negative "
                f"({_money(total)})"
            ], None
        rate = _decimal(merged.get("CurrencyRate"))
        if rate is None:
            rate = Decimal("1") if currency == tenant.base_currency else Decimal("1.000000")
        document_id = existing[id_field] if existing else str(uuid.uuid4())
        document = {
            "Type": doc_type,
            id_field: document_id,
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": _msdate(datetime(issued.year, issued.month, issued.day, tzinfo=UTC)),
            "DateString": issued.isoformat() + "T00:00:00",
            "Status": status,
            "LineAmountTypes": amount_types,
            "LineItems": lines,
            "SubTotal": _money(sub_total),
            "TotalTax": _money(total_tax),
            "Total": _money(total),
            "UpdatedDateUTC": _msdate(_now()),
            "CurrencyCode": currency,
            "CurrencyRate": rate,
            "HasAttachments": bool(existing and existing.get("HasAttachments")),
            "HasErrors": False,
        }
        if number:
            document[number_field] = number
        if merged.get("Reference"):
            document["Reference"] = merged["Reference"]
        if due is not None:
            document["DueDate"] = _msdate(datetime(due.year, due.month, due.day, tzinfo=UTC))
            document["DueDateString"] = due.isoformat() + "T00:00:00"
        if invoice:
            document.update(AmountDue=_money(total), AmountPaid=ZERO, AmountCredited=ZERO,
                            IsDiscounted=False)  # fmt: skip
        else:
            document.update(RemainingCredit=_money(total), AppliedAmount=ZERO)
        return [], document

    def _lines(self, tenant, raws, amount_types, status, unitdp=2) -> tuple[list[dict], list[str]]:
        lines, errors = [], []
        if not raws and status in ("SUBMITTED", "AUTHORISED"):
            errors.append("At least one line item is required")
        for index, raw in enumerate(raws, 1):
            where = f"Line {index}: "
            code = raw.get("AccountCode")
            account = None
            if raw.get("AccountID"):
                account = tenant.accounts.get(str(raw["AccountID"]).lower())
            elif code:
                account = tenant.account(code)
            if (code or raw.get("AccountID")) and account is None:
                unknown = code or raw.get("AccountID")
                errors.append(f"Account code '{unknown}' is not a valid code for this document.")
            elif account is None and status in ("SUBMITTED", "AUTHORISED"):
                errors.append(where + "an AccountCode must be specified")
            elif account is not None and account["Status"] != "ACTIVE":
                errors.append(
                    f"Account code '{account['Code']}' has been archived, or has been deleted. "
                    "Each line item must reference a valid account."
                )
            elif account is not None and account.get("SystemAccount") in (
                "DEBTORS",
                "CREDITORS",
                "GST",
            ):
                errors.append(
                    f"Account code '{account['Code']}' is a system account and cannot be used "
                    "on a line item."
                )
            tax_type = raw.get("TaxType") or (account or {}).get("TaxType") or "NONE"
            tax_rate = tenant.tax_rates.get(tax_type)
            if tax_rate is None or tax_rate["Status"] != "ACTIVE":
                errors.append(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used for this "
                    "type of transaction."
                )
                tax_rate = tenant.tax_rates["NONE"]
            quantity = _decimal(raw.get("Quantity"), Decimal(1))
            unit = _decimal(raw.get("UnitAmount"))
            if unit is not None:  # Xero keeps 2 decimals of a unit amount, 4 with unitdp=4
                unit = unit.quantize(Decimal(1).scaleb(-unitdp), rounding=ROUND_HALF_UP)
            quantity = quantity.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            given = _decimal(raw.get("LineAmount"))
            discount = _decimal(raw.get("DiscountRate"), ZERO)
            if unit is not None:
                expected = _money(quantity * unit * (1 - discount / 100))
                if given is not None and _money(given) != expected:
                    errors.append(
                        f"{where}the line total {_money(given)} does not match the expected "
                        f"line total {expected}"
                    )
                amount = expected
            elif given is not None:
                amount = _money(given)
                unit = (given / quantity) if quantity else given
            else:
                amount, unit = ZERO, ZERO
            rate = tax_rate["EffectiveRate"] / 100
            if amount_types == "NoTax":
                computed = ZERO
            elif amount_types == "Inclusive":
                computed = _money(amount * rate / (1 + rate))
            else:
                computed = _money(amount * rate)
            tax = _decimal(raw.get("TaxAmount"))
            tax = _money(tax) if tax is not None and amount_types != "NoTax" else computed
            line = {
                "LineItemID": str(raw.get("LineItemID") or uuid.uuid4()),
                "Description": raw.get("Description") or "",
                "Quantity": quantity,
                "UnitAmount": unit,
                "TaxType": tax_type,
                "TaxAmount": tax,
                "LineAmount": amount,
                "Tracking": self._tracking(tenant, raw.get("Tracking") or [], where, errors),
            }
            if account is not None:
                line["AccountCode"] = account["Code"]
                line["AccountID"] = account["AccountID"]
            if discount:
                line["DiscountRate"] = discount
            lines.append(line)
        return lines, errors

    @staticmethod
    def _tracking(tenant: Tenant, raws: list[dict], where: str, errors: list[str]) -> list[dict]:
        """A line's tracking: each category and option by name (or id), active ones only."""
        out = []
        for raw in raws:
            category = next(
                (
                    c for c in tenant.tracking_categories.values()
                    if c["Status"] == "ACTIVE" and (
                        c["Name"] == raw.get("Name")
                        or c["TrackingCategoryID"] == str(raw.get("TrackingCategoryID", "")).lower()
                    )
                ),
                None,
            )  # fmt: skip
            if category is None:
                errors.append(f"{where}the tracking category {raw.get('Name')!r} is not valid")
                continue
            option = next(
                (
                    o
                    for o in category["Options"]
                    if o["Status"] == "ACTIVE" and o["Name"] == raw.get("Option")
                ),
                None,
            )
            if option is None:
                errors.append(
                    f"{where}the tracking option {raw.get('Option')!r} is not valid for "
                    f"{category['Name']}"
                )
                continue
            out.append(
                {
                    "TrackingCategoryID": category["TrackingCategoryID"],
                    "TrackingOptionID": option["TrackingOptionID"],
                    "Name": category["Name"],
                    "Option": option["Name"],
                }
            )
        return out

    def _attach(self, tenant: Tenant, params, filename: str, body: bytes, query) -> dict:
        document = self._document(tenant, params)
        document_id = params.get("InvoiceID") or params["CreditNoteID"]
        existing = tenant.attachments.setdefault(document_id.lower(), [])
        kept = [a for a in existing if a["FileName"] != filename]
        if len(kept) >= ATTACHMENTS_MAX:
            raise Refused(f"A document holds at most {ATTACHMENTS_MAX} attachments")
        if len(body) > ATTACHMENT_BYTES_MAX:
            raise Refused("The file is larger than 25 MB")
        attachment_id = str(uuid.uuid4())
        kind = "Invoices" if "InvoiceID" in document else "CreditNotes"
        attachment = {
            "AttachmentID": attachment_id,
            "FileName": filename,
            "Url": f"{self.api_url}/{kind}/{document_id}/Attachments/{filename}",
            "MimeType": mimetypes.guess_type(filename)[0] or "application/octet-stream",
            "ContentLength": len(body),
            "IncludeOnline": query.get("IncludeOnline", "false").lower() == "true",
        }
        kept.append(attachment)
        tenant.attachments[document_id.lower()] = kept
        tenant.files[attachment_id] = body
        document["HasAttachments"] = True
        return attachment


def _modified_since(items: list[dict], since: str | None) -> list[dict]:
    """The records changed at or after ``If-Modified-Since`` (an ISO date-time, as the spec
    declares it)."""
    if not since:
        return items
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"If-Modified-Since {since!r} is not a date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    cutoff = int(moment.timestamp() * 1000)

    def stamp(item: dict) -> int:
        match = re.match(r"/Date\((-?\d+)", item.get("UpdatedDateUTC") or "")
        return int(match.group(1)) if match else 0

    return [item for item in items if stamp(item) >= cutoff]


# -- where and order ----------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"(?P<field>[A-Za-z][\w.]*?)(?P<lower>\.ToLower\(\)|\.ToUpper\(\))?\s*"
    r"(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+)"
)
_METHOD = re.compile(
    r"(?P<field>[A-Za-z][\w.]*?)\.(?P<method>Contains|StartsWith|EndsWith)\((?P<value>.+)\)"
)


def _split(text: str) -> list[list[str]]:
    """``a AND b OR c`` → [[a, b], [c]] (AND binds tighter), quotes respected."""
    groups: list[list[str]] = [[]]
    current, quoted, i = "", False, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            quoted = not quoted
        if not quoted:
            for word, new_group in ((" AND ", False), (" OR ", True), ("&&", False), ("||", True)):
                if text[i : i + len(word)].upper() == word:
                    groups[-1].append(current.strip())
                    current = ""
                    if new_group:
                        groups.append([])
                    i += len(word)
                    break
            else:
                current += char
                i += 1
            continue
        current += char
        i += 1
    groups[-1].append(current.strip())
    return groups


def _value(text: str) -> Any:
    text = text.strip()
    match = re.fullmatch(r'(?:Guid\()?"(.*)"\)?', text)
    if match:
        return match.group(1)
    match = re.fullmatch(r"DateTime\((\d{4}),\s*(\d{1,2}),\s*(\d{1,2})\)", text)
    if match:
        return date(*(int(g) for g in match.groups()))
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    number = _decimal(text)
    if number is None:
        raise Refused(f"The where clause value {text} could not be read")
    return number


def _get(item: dict, path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, str) and value.startswith("/Date("):
        return _parse_date(value)
    return value


def _test(item: dict, clause: str) -> bool:
    clause = clause.strip()
    while clause.startswith("(") and clause.endswith(")"):  # (A==1): the grouping, not a call's
        clause = clause[1:-1].strip()
    match = _METHOD.fullmatch(clause)
    if match:
        found = str(_get(item, match["field"]) or "")
        wanted = str(_value(match["value"]))
        return {
            "Contains": wanted in found,
            "StartsWith": found.startswith(wanted),
            "EndsWith": found.endswith(wanted),
        }[match["method"]]
    match = _CLAUSE.fullmatch(clause)
    if not match:
        raise Refused(f"The where clause {clause!r} could not be parsed")
    found, wanted = _get(item, match["field"]), _value(match["value"])
    if match["lower"] and isinstance(found, str):
        found = found.lower() if "Lower" in match["lower"] else found.upper()
    if isinstance(wanted, Decimal) and found is not None:
        found = _decimal(found)
    uuid_like = isinstance(wanted, str) and re.fullmatch(r"[0-9a-fA-F-]{36}", wanted)
    if isinstance(found, str) and uuid_like:
        found, wanted = found.lower(), wanted.lower()
    op = match["op"]
    if op in ("==", "!="):
        return (found == wanted) == (op == "==")
    if found is None or wanted is None:
        return False
    try:
        return {">": found > wanted, "<": found < wanted, ">=": found >= wanted,
                "<=": found <= wanted}[op]  # fmt: skip
    except TypeError:
        raise Refused(f"The where clause {clause!r} compares unlike values") from None


def _where(items: list[dict], where: str | None) -> list[dict]:
    if not where:
        return items
    groups = _split(where)
    return [item for item in items if any(all(_test(item, c) for c in g) for g in groups)]


def _ordered(items: list[dict], order: str | None, default: str) -> list[dict]:
    text = (order or default).strip()
    name, _, direction = text.partition(" ")
    reverse = direction.strip().upper() == "DESC"
    return sorted(items, key=lambda item: str(_get(item, name) or ""), reverse=reverse)


# -- the HTTP side ------------------------------------------------------------------------------


def _handler(fake: XeroFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed ACK

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = fake.handle(self.command, self.path, dict(self.headers.items()), body)
            if answer.drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


__all__ = [
    "Answer",
    "Tenant",
    "TokenRegistry",
    "Verdict",
    "Violation",
    "XeroFake",
    "oauth_server_verifier",
]
