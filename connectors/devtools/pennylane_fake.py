"""A fake Pennylane (Company API v2) on 127.0.0.1 that enforces Pennylane's contract.

A real HTTP server (threads) holding the state of one or more companies: journals, a French chart
of accounts, customers, suppliers, ledger entries (balanced, or 422 as Pennylane answers), file
attachments and customer/supplier invoice imports. EVERY request it receives is checked against the
contract in ``tests/contracts/pennylane`` (:mod:`connectors.devtools.pennylane_contract`): a request
that breaks it is answered 400 with the reasons AND recorded in :attr:`PennylaneFake.violations`;
every response it sends is checked too (a bad one is recorded and answered 500). Tests assert
``fake.violations == []``.

    with PennylaneFake() as fake:                     # rate limit on: 25 requests / 5 s per token
        acme = fake.add_company("Acme SAS", reg_no="123456789")
        token = fake.tokens.issue(company_id=acme.id)  # a company API token
        ...                                            # the connector calls fake.api_url
        assert fake.violations == []
        fake.calls["postLedgerEntries"]                # calls per operationId (bench figures)

Tokens: :attr:`PennylaneFake.tokens` issues company API tokens (one company), firm tokens (several
companies, ``X-Company-Id`` required) and registers tokens issued elsewhere;
``tokens.expire(token)`` and ``tokens.revoke(token)`` make the next call answer 401 as
Pennylane's OAuth server (Doorkeeper) does. OAuth2 access tokens issued by another server are
accepted through :meth:`PennylaneFake.trust`: a callable answering a :class:`Verdict` (or None:
unknown) for a token; :func:`oauth_server_verifier` builds one for
:class:`connectors.devtools.oauth_server.OAuthServer` (its ``is_live`` and ``grant_revoked``).

Switches: ``PennylaneFake(rate_limit=False)``, ``limit``/``window`` and an injectable ``clock``
(tests move time instead of sleeping), :meth:`PennylaneFake.refuse_entries` (422 with
Pennylane's error shape for the entries a predicate picks), :meth:`PennylaneFake.fail_next` (a
5xx burst: those answers are fault injection, outside the contract, so not validated).

Amounts on invoice import lines: ``currency_amount`` is the line's amount tax included and
``currency_tax`` its VAT (reconstructed: see tests/contracts/pennylane/SOURCES.md).

Development tool: not shipped in the wheel (connectors.devtools is excluded); no django, no ORM.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from connectors.devtools.http_fake import LocalHttpServer
from connectors.devtools.pennylane_contract import Contract, Operation

API_PREFIX = "/api/external/v2"
CENT = Decimal("0.01")

# A French chart's usual accounts (number, label, vat_rate).
FRENCH_CHART: tuple[tuple[str, str, str | None], ...] = (
    ("401", "Fournisseurs", None),
    ("411", "Clients", None),
    ("44566", "TVA déductible sur autres biens et services", "FR_200"),
    ("445661", "TVA déductible 10 %", "FR_100"),
    ("445665", "TVA déductible 5,5 %", "FR_55"),
    ("445662", "TVA déductible intracommunautaire", "intracom_200"),
    ("44571", "TVA collectée", "FR_200"),
    ("445711", "TVA collectée 10 %", "FR_100"),
    ("445715", "TVA collectée 5,5 %", "FR_55"),
    ("4452", "TVA due intracommunautaire", "intracom_200"),
    ("512", "Banque", None),
    ("601", "Achats stockés - matières premières", None),
    ("606", "Achats non stockés de matières et fournitures", None),
    ("607", "Achats de marchandises", None),
    ("6226", "Honoraires", None),
    ("6256", "Missions", None),
    ("658", "Charges diverses de gestion courante", None),
    ("701", "Ventes de produits finis", None),
    ("706", "Prestations de services", None),
    ("707", "Ventes de marchandises", None),
    ("758", "Produits divers de gestion courante", None),
)
JOURNALS = (("VE", "Ventes"), ("HA", "Achats"), ("OD", "Opérations diverses"), ("BQ", "Banque"))
SALES_VAT = {"FR_200": "44571", "FR_100": "445711", "FR_55": "445715"}
PURCHASE_VAT = {"FR_200": "44566", "FR_100": "445661", "FR_55": "445665"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        raise Unprocessable(f"{text!r} is not an amount") from None


class Unprocessable(Exception):
    """Answered 422, as Pennylane does for a well-formed request it refuses."""


class NotFound(Exception):
    """Answered 404."""


class BadRequest(Exception):
    """Answered 400 (a value the contract's types let through but Pennylane refuses)."""


# -- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What a token verifier says of a token it knows."""

    state: Literal["valid", "expired", "revoked"]
    company_ids: tuple[int, ...] | None = None  # None: any company of the fake
    scopes: frozenset[str] | None = None  # None: every scope


@dataclass
class TokenInfo:
    company_ids: tuple[int, ...] | None
    firm: bool
    scopes: frozenset[str] | None
    expires_at: float | None
    revoked: bool = False


class TokenRegistry:
    """The tokens the fake accepts: company API tokens, firm tokens, tokens issued elsewhere."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        *,
        company_id: int | None = None,
        company_ids: Iterable[int] | None = None,
        firm: bool = False,
        scopes: Iterable[str] | None = None,
        ttl: float | None = None,
    ) -> str:
        """A new token: a company API token (``company_id``) or a firm token (``firm=True``,
        acting on ``company_ids``, or on any company when None, through ``X-Company-Id``)."""
        token = ("firm_" if firm else "company_") + secrets.token_urlsafe(18)
        self.register(
            token, company_id=company_id, company_ids=company_ids, firm=firm, scopes=scopes, ttl=ttl
        )
        return token

    def register(
        self,
        token: str,
        *,
        company_id: int | None = None,
        company_ids: Iterable[int] | None = None,
        firm: bool = False,
        scopes: Iterable[str] | None = None,
        ttl: float | None = None,
    ) -> None:
        """Accept ``token`` (issued by another server) with these rights."""
        if company_id is not None:
            ids: tuple[int, ...] | None = (int(company_id),)
        else:
            ids = tuple(int(i) for i in company_ids) if company_ids is not None else None
        with self._lock:
            self._tokens[token] = TokenInfo(
                company_ids=ids,
                firm=firm,
                scopes=frozenset(scopes) if scopes is not None else None,
                expires_at=self._clock() + ttl if ttl is not None else None,
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
                state = "revoked"
            elif info.expires_at is not None and info.expires_at <= self._clock():
                state = "expired"
            else:
                state = "valid"
            return Verdict(state, info.company_ids, info.scopes)

    def is_firm(self, token: str) -> bool:
        with self._lock:
            info = self._tokens.get(token)
            return bool(info and info.firm)


def oauth_server_verifier(
    server: Any, *, company_ids: Iterable[int] | None = None
) -> Callable[[str], Verdict | None]:
    """A verifier for tokens issued by :class:`connectors.devtools.oauth_server.OAuthServer`:
    live → valid, its grant revoked → revoked, otherwise unknown (the 401 of an expired token)."""
    ids = tuple(int(i) for i in company_ids) if company_ids is not None else None

    def verify(token: str) -> Verdict | None:
        if server.grant_revoked(token):
            return Verdict("revoked", ids)
        if server.is_live(token):
            return Verdict("valid", ids)
        return None

    return verify


# -- state ------------------------------------------------------------------------------------


@dataclass
class Company:
    id: int
    name: str
    reg_no: str
    journals: dict[int, dict] = field(default_factory=dict)
    ledger_accounts: dict[int, dict] = field(default_factory=dict)
    customers: dict[int, dict] = field(default_factory=dict)
    suppliers: dict[int, dict] = field(default_factory=dict)
    ledger_entries: dict[int, dict] = field(default_factory=dict)
    file_attachments: dict[int, dict] = field(default_factory=dict)
    files: dict[int, bytes] = field(default_factory=dict)
    customer_invoices: dict[int, dict] = field(default_factory=dict)
    supplier_invoices: dict[int, dict] = field(default_factory=dict)

    def account(self, number: str) -> dict:
        for account in self.ledger_accounts.values():
            if account["number"] == number:
                return account
        raise Unprocessable(f"no ledger account {number}")

    def journal(self, code: str) -> dict:
        for journal in self.journals.values():
            if journal["code"] == code:
                return journal
        raise Unprocessable(f"no journal {code}")


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


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(payload).encode()
    return Answer(status, {"Content-Type": "application/json", **(headers or {})}, body)


def _error(status: int, message: str) -> Answer:
    """Pennylane's error body: ``{"error": <what went wrong>, "status": <the HTTP status>}``."""
    return _json_answer(status, {"error": message, "status": status})


class PennylaneFake(LocalHttpServer):
    """The server, in a thread, on 127.0.0.1 (``port=0``: a free port)."""

    def __init__(
        self,
        *,
        rate_limit: bool = True,
        limit: int = 25,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        contract: Contract | None = None,
        port: int = 0,
    ) -> None:
        self.contract = contract if contract is not None else Contract()
        self.rate_limit = rate_limit
        self.limit = limit
        self.window = window
        self.clock = clock
        self.tokens = TokenRegistry(clock)
        self.companies: dict[int, Company] = {}
        self.violations: list[Violation] = []
        self.calls: Counter[str] = Counter()
        self.answers: list[tuple[str, int]] = []  # (operationId, status) in order
        self._verifiers: list[Callable[[str], Verdict | None]] = []
        self._refusals: list[tuple[Callable[[dict], bool], str]] = []
        self._failures: list[int] = []
        self._windows: dict[str, list[float]] = {}  # token -> [window start, count]
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._listen(_handler(self), port)

    # -- life ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: Pennylane's ``https://app.pennylane.com``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """``<base_url>/api/external/v2``: the connector's base address."""
        return self.base_url + API_PREFIX

    # -- set-up and switches ---------------------------------------------------------------------

    def add_company(
        self, name: str, *, reg_no: str = "123456789", company_id: int | None = None
    ) -> Company:
        """A company with the French chart's usual accounts and the VE, HA, OD, BQ journals."""
        with self._lock:
            company = Company(id=company_id or next(self._ids), name=name, reg_no=reg_no)
            self.companies[company.id] = company
            for code, label in JOURNALS:
                self._new_journal(company, code, label)
            for number, label, vat_rate in FRENCH_CHART:
                self._new_account(company, number, label, vat_rate or "any")
            return company

    def trust(self, verifier: Callable[[str], Verdict | None]) -> None:
        """Accept the tokens ``verifier`` vouches for (OAuth2 access tokens issued elsewhere)."""
        self._verifiers.append(verifier)

    def refuse_entries(
        self,
        predicate: Callable[[dict], bool],
        message: str = "Ledger entry is invalid",
    ) -> None:
        """Answer 422 with ``message`` to the entries (request bodies) ``predicate`` picks."""
        self._refusals.append((predicate, message))

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` requests that keep the contract are answered ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.answers.clear()

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError(
                "Pennylane contract broken:\n" + "\n".join(str(v) for v in self.violations)
            )

    # -- the request path ------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """One request, answered: contract, token, rate limit, company, scope, then the work."""
        with self._lock:
            parts = urlsplit(target)
            operation = self.contract.operation_for(method, parts.path)
            op_id = operation.operation_id if operation else "unknown"
            self.calls[op_id] += 1
            answer = self._answer(operation, method, target, headers, body)
            if operation is not None and answer.status < 500:  # 5xx: injected faults
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
                    self._violation("response", operation, method, parts.path, reasons)
                    answer = _error(500, "; ".join(reasons))
            self.answers.append((op_id, answer.status))
            return answer

    def _violation(self, direction, operation: Operation | None, method, path, reasons) -> None:
        op_id = operation.operation_id if operation else "unknown"
        self.violations.append(Violation(direction, op_id, method, path, tuple(reasons)))

    def _answer(self, operation, method, target, headers, body) -> Answer:
        path = urlsplit(target).path
        if operation is None:
            reasons = [f"{method} {path}: no such operation in Pennylane's contract"]
            self._violation("request", None, method, path, reasons)
            return _error(400, "; ".join(reasons))
        # Checked first, so that a contract break is recorded even when the token is refused.
        reasons = self.contract.request_errors(
            method=method, url=target, headers=headers, body=body
        )
        if reasons:
            self._violation("request", operation, method, path, reasons)
        lowered = {k.lower(): v for k, v in headers.items()}
        authorization = lowered.get("authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            missing = ["Authorization: Bearer <token> is required on every operation"]
            self._violation("request", operation, method, path, missing)
            return self._unauthorized("The access token is invalid")
        token = authorization[7:].strip()
        verdict = self._verdict(token)
        if verdict is None:
            return self._unauthorized("The access token is invalid")
        if verdict.state == "expired":
            return self._unauthorized("The access token expired")
        if verdict.state == "revoked":
            return self._unauthorized("The access token was revoked")
        limited, rate_headers = self._spend(token)
        if limited is not None:
            return limited
        if reasons:
            return self._with(_error(400, "; ".join(reasons)), rate_headers)
        company, refusal = self._company(operation, token, verdict, lowered, method, path)
        if refusal is not None:
            return self._with(refusal, rate_headers)
        scopes = verdict.scopes
        if scopes is not None and operation.scopes and not set(operation.scopes) & scopes:
            needed = " or ".join(operation.scopes)
            return self._with(_error(403, f"scope {needed} needed"), rate_headers)
        if self._failures:
            status = self._failures.pop(0)
            return self._with(_error(status, "try again"), rate_headers)
        try:
            status, payload = self._work(operation, company, target, lowered, body)
        except Unprocessable as exc:
            return self._with(_error(422, str(exc)), rate_headers)
        except NotFound as exc:
            return self._with(_error(404, str(exc)), rate_headers)
        except BadRequest as exc:
            return self._with(_error(400, str(exc)), rate_headers)
        return self._with(_json_answer(status, payload), rate_headers)

    def _verdict(self, token: str) -> Verdict | None:
        verdict = self.tokens.verdict(token)
        if verdict is not None:
            return verdict
        for verifier in self._verifiers:
            verdict = verifier(token)
            if verdict is not None:
                return verdict
        return None

    def _unauthorized(self, description: str) -> Answer:
        challenge = (
            f'Bearer realm="Pennylane", error="invalid_token", error_description="{description}"'
        )
        return _json_answer(
            401, {"error": description, "status": 401}, {"WWW-Authenticate": challenge}
        )

    def _spend(self, token: str) -> tuple[Answer | None, dict[str, str]]:
        """One request out of ``token``'s window (Pennylane: 25 every 5 s per token)."""
        now = self.clock()
        window = self._windows.setdefault(token, [now, 0])
        if now >= window[0] + self.window:
            window[0], window[1] = now, 0
        left = window[0] + self.window - now
        reset = str(int(time.time() + left))
        if self.rate_limit and window[1] >= self.limit:
            wait = max(1, math.ceil(left))
            headers = {
                "Content-Type": "text/plain",
                "retry-after": str(wait),
                "ratelimit-limit": str(self.limit),
                "ratelimit-remaining": "0",
                "ratelimit-reset": reset,
            }
            text = f"Rate limit exceeded. Please retry in {wait} seconds."
            return Answer(429, headers, text.encode()), {}
        window[1] += 1
        remaining = max(0, self.limit - int(window[1]))
        return None, {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": reset,
        }

    @staticmethod
    def _with(answer: Answer, headers: dict[str, str]) -> Answer:
        return Answer(answer.status, {**answer.headers, **headers}, answer.body)

    def _company(self, operation, token, verdict: Verdict, headers, method, path):
        """The company acted on: the token's own, or ``X-Company-Id`` for a firm-wide token."""
        allowed = verdict.company_ids
        bound = allowed is not None and len(allowed) == 1 and not self.tokens.is_firm(token)
        if bound:
            company = self.companies.get(allowed[0])
            if company is None:
                return None, _error(403, "the token's company is unknown")
            return company, None
        raw = headers.get("x-company-id")
        if raw is None:
            if allowed is None and len(self.companies) == 1:
                return next(iter(self.companies.values())), None
            reasons = ["X-Company-Id is required when the token reaches several companies"]
            self._violation("request", operation, method, path, reasons)
            return None, _error(400, reasons[0])
        company = self.companies.get(int(raw))
        if company is None or (allowed is not None and company.id not in allowed):
            return None, _error(403, f"no access to company {raw}")
        return company, None

    # -- the work --------------------------------------------------------------------------------

    def _work(self, operation: Operation, company: Company, target, headers, body):
        op = operation.operation_id
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        params = operation.path_params(parts.path)
        is_json = headers.get("content-type", "").startswith("application/json")
        data = json.loads(body) if body and is_json else None
        if op == "getMe":
            return 200, {
                "user": {
                    "id": 1,
                    "first_name": "Camille",
                    "last_name": "Fake",
                    "email": "camille@example.test",
                    "locale": "fr",
                },
                "company": {"id": company.id, "name": company.name, "reg_no": company.reg_no},
            }
        listings = {
            "getJournals": (company.journals, "id"),
            "getLedgerAccounts": (company.ledger_accounts, "id"),
            "getCustomers": (company.customers, "-id"),
            "getSuppliers": (company.suppliers, "-id"),
            "getLedgerEntries": (company.ledger_entries, "id"),
            "getCustomerInvoices": (company.customer_invoices, "-id"),
            "getSupplierInvoices": (company.supplier_invoices, "-id"),
        }
        if op in listings:
            records, default_sort = listings[op]
            page = self._page(records, query, default_sort)
            if op == "getLedgerEntries":  # a listing shows entries without their lines
                page["items"] = [_listed_entry(entry) for entry in page["items"]]
            return 200, page
        singles = {
            "getLedgerEntry": company.ledger_entries,
            "getCustomerInvoice": company.customer_invoices,
            "getSupplierInvoice": company.supplier_invoices,
        }
        if op in singles:
            return 200, self._one(singles[op], params["id"])
        creations = {
            "postJournals": self._post_journal,
            "postLedgerAccounts": self._post_account,
            "postCompanyCustomer": self._post_customer,
            "postSupplier": self._post_supplier,
            "postLedgerEntries": self._post_entry,
            "importCustomerInvoices": self._import_customer_invoice,
            "importSupplierInvoice": self._import_supplier_invoice,
        }
        if op in creations:
            return 201, creations[op](company, data)
        if op == "putLedgerEntries":
            return 200, self._put_entry(
                company, self._one(company.ledger_entries, params["id"]), data
            )
        if op == "postFileAttachments":
            return 201, self._post_file(company, headers.get("content-type", ""), body)
        raise NotFound(f"{op} is not served by the fake")  # a contract file the fake lacks

    @staticmethod
    def _one(records: dict[int, dict], raw_id: str) -> dict:
        item = records.get(int(raw_id))
        if item is None:
            raise NotFound(f"no record {raw_id}")
        return item

    def _page(self, records: dict[int, dict], query: dict[str, str], default_sort: str) -> dict:
        sort = query.get("sort") or default_sort
        key = sort.removeprefix("-")
        items = sorted(
            records.values(),
            key=lambda item: (item.get(key) is None, str(item.get(key)).zfill(20), item["id"]),
            reverse=sort.startswith("-"),
        )
        for rule in json.loads(query.get("filter") or "[]"):
            items = [item for item in items if _matches(item, rule)]
        start = 0
        if query.get("cursor"):
            try:
                start = int(base64.urlsafe_b64decode(query["cursor"].encode()).decode())
            except ValueError:
                raise BadRequest(f"cursor {query['cursor']!r} is not one this API gave") from None
        limit = int(query.get("limit") or 20)
        page, more = items[start : start + limit], len(items) > start + limit
        cursor = base64.urlsafe_b64encode(str(start + limit).encode()).decode() if more else None
        return {"has_more": more, "next_cursor": cursor, "items": page}

    def _new_journal(self, company: Company, code: str, label: str) -> dict:
        journal = {"id": next(self._ids), "code": code, "label": label}
        company.journals[journal["id"]] = journal
        return journal

    def _new_account(
        self, company: Company, number: str, label: str, vat_rate: str, country: str = "FR"
    ) -> dict:
        stamp = _now()
        account = {
            "id": next(self._ids),
            "number": number,
            "label": label,
            "vat_rate": vat_rate,
            "country_alpha2": country,
            "enabled": True,
            "created_at": stamp,
            "updated_at": stamp,
        }
        company.ledger_accounts[account["id"]] = account
        return account

    def _post_journal(self, company: Company, data: dict) -> dict:
        if any(j["code"] == data["code"] for j in company.journals.values()):
            raise Unprocessable(f"code {data['code']} has already been taken")
        return self._new_journal(company, data["code"], data["label"])

    def _post_account(self, company: Company, data: dict) -> dict:
        number = data["number"]
        rate = data.get("vat_rate", "any")
        if any(
            a["number"] == number and a["vat_rate"] == rate
            for a in company.ledger_accounts.values()
        ):
            raise Unprocessable(f"number {number} has already been taken")
        account = self._new_account(
            company, number, data["label"], rate, data.get("country_alpha2", "FR")
        )
        # Published: "If the number starts with 401 (supplier) or 411 (customer) a corresponding
        # supplier or company customer will also be created."
        if number.startswith("411"):
            self._post_customer(
                company,
                {"name": data["label"], "billing_address": _BLANK_ADDRESS},
                account=account,
            )
        elif number.startswith("401"):
            self._post_supplier(company, {"name": data["label"]}, account=account)
        return account

    def _auxiliary(self, company: Company, prefix: str, name: str) -> dict:
        """Pennylane gives each customer and supplier its own account (411ACME, 401DUPONT)."""
        stem = prefix + (re.sub(r"[^A-Z0-9]", "", name.upper())[:8] or "TIERS")
        numbers = {a["number"] for a in company.ledger_accounts.values()}
        number = stem
        for n in itertools.count(2):
            if number not in numbers:
                break
            number = f"{stem}{n}"
        return self._new_account(company, number, name, "any")

    def _partner_account(self, company, prefix, data, account) -> dict:
        if account is not None:
            return account
        chosen = (data.get("ledger_account") or {}).get("id")
        if chosen is not None:
            if chosen not in company.ledger_accounts:
                raise Unprocessable(f"ledger_account {chosen}: ledger account not found")
            return company.ledger_accounts[chosen]
        return self._auxiliary(company, prefix, data["name"])

    def _post_customer(self, company: Company, data: dict, account: dict | None = None) -> dict:
        stamp = _now()
        account = self._partner_account(company, "411", data, account)
        customer_id = next(self._ids)
        customer = {
            "id": customer_id,
            "name": data["name"],
            "customer_type": "company",
            "billing_iban": data.get("billing_iban"),
            "payment_conditions": data.get("payment_conditions", "30_days"),
            "recipient": data.get("recipient", ""),
            "phone": data.get("phone", ""),
            "reference": data.get("reference"),
            "notes": data.get("notes"),
            "vat_number": data.get("vat_number"),
            "reg_no": data.get("reg_no"),
            "ledger_account": {"id": account["id"]},
            "emails": data.get("emails", []),
            "billing_address": data["billing_address"],
            "delivery_address": data.get("delivery_address", data["billing_address"]),
            "external_reference": data.get("external_reference") or f"pl-customer-{customer_id}",
            "billing_language": data.get("billing_language", "fr_FR"),
            "created_at": stamp,
            "updated_at": stamp,
        }
        company.customers[customer_id] = customer
        return customer

    def _post_supplier(self, company: Company, data: dict, account: dict | None = None) -> dict:
        stamp = _now()
        account = self._partner_account(company, "401", data, account)
        supplier_id = next(self._ids)
        supplier = {
            "id": supplier_id,
            "name": data["name"],
            "establishment_no": data.get("establishment_no"),
            "vat_number": data.get("vat_number", ""),
            "ledger_account": {"id": account["id"]},
            "emails": data.get("emails", []),
            "iban": data.get("iban", ""),
            "postal_address": data.get("postal_address", _BLANK_ADDRESS),
            "supplier_payment_method": data.get("supplier_payment_method"),
            "supplier_due_date_delay": data.get("supplier_due_date_delay"),
            "supplier_due_date_rule": data.get("supplier_due_date_rule"),
            "external_reference": data.get("external_reference") or f"pl-supplier-{supplier_id}",
            "created_at": stamp,
            "updated_at": stamp,
        }
        company.suppliers[supplier_id] = supplier
        return supplier

    def _post_entry(self, company: Company, data: dict) -> dict:
        for predicate, message in self._refusals:
            if predicate(data):
                raise Unprocessable(message)
        lines = self._lines(company, data["ledger_entry_lines"])
        _balanced(lines)
        return self._store_entry(
            company,
            journal_id=data["journal_id"],
            date=data["date"],
            label=data["label"],
            lines=lines,
            piece_number=data.get("piece_number"),
            currency=data.get("currency", "EUR"),
            due_date=data.get("due_date"),
            file_attachment_id=data.get("file_attachment_id"),
        )

    def _lines(self, company: Company, raw_lines: Iterable[dict]) -> list[dict]:
        lines = []
        for raw in raw_lines:
            account = company.ledger_accounts.get(raw["ledger_account_id"])
            if account is None:
                raise Unprocessable(
                    f"ledger_account_id {raw['ledger_account_id']}: ledger account not found"
                )
            debit, credit = _decimal(raw["debit"]), _decimal(raw["credit"])
            if debit < 0 or credit < 0 or (debit and credit) or not (debit or credit):
                raise Unprocessable(
                    f"line on {account['number']}: one of debit or credit, positive, per line"
                )
            lines.append(
                {
                    "id": next(self._ids),
                    "debit": _money(debit),
                    "credit": _money(credit),
                    "ledger_account_id": account["id"],
                    "label": raw.get("label") or "",
                }
            )
        return lines

    def _attachment(self, company: Company, file_id: int | None) -> dict | None:
        if file_id is None:
            return None
        attachment = company.file_attachments.get(file_id)
        if attachment is None:
            raise Unprocessable(f"file_attachment_id {file_id}: file not found")
        return attachment

    def _store_entry(
        self,
        company: Company,
        *,
        journal_id,
        date,
        label,
        lines,
        piece_number=None,
        currency="EUR",
        due_date=None,
        file_attachment_id=None,
    ) -> dict:
        if journal_id not in company.journals:
            raise Unprocessable(f"journal_id {journal_id}: journal not found")
        attachment = self._attachment(company, file_attachment_id)
        stamp = _now()
        entry = {
            "id": next(self._ids),
            "label": label,
            "date": date,
            "journal_id": journal_id,
            "ledger_attachment_filename": attachment["filename"] if attachment else None,
            "ledger_attachment_id": file_attachment_id,
            "ledger_entry_lines": lines,
            "piece_number": piece_number,
            "file_attachment_id": file_attachment_id,
            "currency": currency,
            "due_date": due_date,
            "created_at": stamp,
            "updated_at": stamp,
        }
        company.ledger_entries[entry["id"]] = entry
        return entry

    def _put_entry(self, company: Company, entry: dict, data: dict) -> dict:
        updated = dict(entry)
        for name in ("date", "label", "currency"):
            if name in data:
                updated[name] = data[name]
        if "journal_id" in data:
            if data["journal_id"] not in company.journals:
                raise Unprocessable(f"journal_id {data['journal_id']}: journal not found")
            updated["journal_id"] = data["journal_id"]
        file_id = data.get("file_attachment_id", data.get("ledger_attachment_id"))
        if file_id is not None:
            attachment = self._attachment(company, file_id)
            updated["file_attachment_id"] = updated["ledger_attachment_id"] = file_id
            updated["ledger_attachment_filename"] = attachment["filename"]
        changes = data.get("ledger_entry_lines") or {}
        lines = {line["id"]: dict(line) for line in entry["ledger_entry_lines"]}
        for gone in changes.get("delete", []):
            lines.pop(gone["id"], None)
        for change in changes.get("update", []):
            if change["id"] not in lines:
                raise Unprocessable(f"ledger entry line {change['id']} not found")
            merged = {**lines[change["id"]], **change}
            (lines[change["id"]],) = self._lines(company, [merged])
        for line in self._lines(company, changes.get("create", [])):
            lines[line["id"]] = line
        updated["ledger_entry_lines"] = list(lines.values())
        _balanced(updated["ledger_entry_lines"])
        updated["updated_at"] = _now()
        company.ledger_entries[entry["id"]] = updated
        return updated

    def _post_file(self, company: Company, content_type: str, body: bytes) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        parts = {
            part.get_param("name", header="content-disposition"): part
            for part in message.iter_parts()
        }
        file_part = parts.get("file")
        if file_part is None:
            raise Unprocessable("file is missing")
        if file_part.get_content_type() not in _FILE_TYPES:
            raise Unprocessable(f"file: {file_part.get_content_type()} is not an allowed type")
        filename = (
            parts["filename"].get_content().strip()
            if "filename" in parts
            else file_part.get_filename() or "file"
        )
        stamp = _now()
        attachment = {
            "id": next(self._ids),
            "url": f"{self.base_url}/files/{company.id}/{filename}",
            "filename": filename,
            "created_at": stamp,
            "updated_at": stamp,
        }
        company.file_attachments[attachment["id"]] = attachment
        company.files[attachment["id"]] = file_part.get_payload(decode=True) or b""
        return attachment

    def _import_customer_invoice(self, company: Company, data: dict) -> dict:
        customer = company.customers.get(data["customer_id"])
        if customer is None:
            raise Unprocessable(f"customer_id {data['customer_id']}: customer not found")
        return self._import(company, data, "customer", customer, "VE", SALES_VAT, "706")

    def _import_supplier_invoice(self, company: Company, data: dict) -> dict:
        supplier = company.suppliers.get(data["supplier_id"])
        if supplier is None:
            raise Unprocessable(f"supplier_id {data['supplier_id']}: supplier not found")
        return self._import(company, data, "supplier", supplier, "HA", PURCHASE_VAT, "606")

    def _import(self, company, data, party, partner, journal_code, vat_accounts, default):
        attachment = self._attachment(company, data["file_attachment_id"])
        total = _decimal(data["currency_amount"])
        before_tax = _decimal(data["currency_amount_before_tax"])
        tax = _decimal(data["currency_tax"])
        lines = data["invoice_lines"]
        line_totals = sum((_decimal(line["currency_amount"]) for line in lines), Decimal(0))
        line_taxes = sum((_decimal(line["currency_tax"]) for line in lines), Decimal(0))
        tolerance = CENT * len(lines)  # published: up to 1 cent per invoice line
        if abs(before_tax + tax - total) > CENT:
            raise Unprocessable("currency_amount differs from amount before tax plus tax")
        if abs(line_totals - total) > tolerance or abs(line_taxes - tax) > tolerance:
            raise Unprocessable("the invoice lines do not add up to the invoice's totals")
        sales = party == "customer"
        postings = [(partner["ledger_account"]["id"], total, True)]  # (account, amount, partner?)
        for line in lines:
            line_tax = _decimal(line["currency_tax"])
            account_id = line.get("ledger_account_id") or company.account(default)["id"]
            postings.append((account_id, _decimal(line["currency_amount"]) - line_tax, False))
            if line_tax:
                number = vat_accounts.get(line["vat_rate"])
                if number is None:
                    raise Unprocessable(f"vat_rate {line['vat_rate']}: no VAT account for it")
                postings.append((company.account(number)["id"], line_tax, False))
        raw = []
        for account_id, amount, partner_side in postings:
            debit_side = partner_side == sales
            raw.append(
                {
                    "ledger_account_id": account_id,
                    "debit": _money(amount) if debit_side else "0",
                    "credit": "0" if debit_side else _money(amount),
                    "label": data.get("invoice_number") or "",
                }
            )
        # A rounding difference Pennylane tolerates lands on the partner's line.
        gap = sum(Decimal(r["debit"]) - Decimal(r["credit"]) for r in raw)
        side = "debit" if sales else "credit"
        raw[0][side] = _money(Decimal(raw[0][side]) - gap if sales else Decimal(raw[0][side]) + gap)
        entry = self._store_entry(
            company,
            journal_id=company.journal(journal_code)["id"],
            date=data["date"],
            label=data.get("invoice_number") or f"{party} invoice",
            lines=self._lines(company, raw),
            piece_number=data.get("invoice_number"),
            currency=data.get("currency", "EUR"),
            due_date=data.get("deadline"),
            file_attachment_id=data["file_attachment_id"],
        )
        stamp = _now()
        invoice_id = next(self._ids)
        api = f"{self.api_url}/{party}_invoices/{invoice_id}"
        invoice = {
            "id": invoice_id,
            "label": None,
            "invoice_number": data.get("invoice_number", ""),
            "currency": data.get("currency", "EUR"),
            "amount": _money(total),
            "currency_amount": _money(total),
            "currency_amount_before_tax": _money(before_tax),
            "exchange_rate": "1.0",
            "date": data["date"],
            "deadline": data["deadline"],
            "currency_tax": _money(tax),
            "tax": _money(tax),
            "filename": attachment["filename"],
            "public_file_url": attachment["url"],
            "remaining_amount_with_tax": _money(total),
            "remaining_amount_without_tax": _money(before_tax),
            "ledger_entry": {"id": entry["id"]},
            "invoice_lines": {"url": f"{api}/invoice_lines"},
            "categories": {"url": f"{api}/categories"},
            "transaction_reference": data.get("transaction_reference"),
            "payments": {"url": f"{api}/payments"},
            "matched_transactions": {"url": f"{api}/matched_transactions"},
            "external_reference": data.get("external_reference") or f"pl-{party}-{invoice_id}",
            "archived_at": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        partner_ref = {"id": partner["id"], "url": f"{self.api_url}/{party}s/{partner['id']}"}
        if sales:
            invoice.update(
                language="fr_FR",
                paid=False,
                status="incomplete" if data.get("import_as_incomplete") else "upcoming",
                discount={"type": "absolute", "value": None},
                customer=partner_ref,
                invoice_line_sections={"url": f"{api}/invoice_line_sections"},
                draft=False,
                special_mention=None,
                pdf_invoice_free_text="",
                pdf_invoice_subject="",
                pdf_description=None,
                billing_subscription=None,
                credited_invoice=None,
                customer_invoice_template=None,
                appendices={"url": f"{api}/appendices"},
                from_estimate_id=None,
                estimate=None,
            )
            company.customer_invoices[invoice_id] = invoice
        else:
            invoice.update(
                reconciled=False,
                accounting_status="entry" if data.get("import_as_incomplete") else "draft",
                supplier=partner_ref,
                payment_status="to_be_paid",
            )
            company.supplier_invoices[invoice_id] = invoice
        return invoice


_BLANK_ADDRESS = {"address": "", "postal_code": "", "city": "", "country_alpha2": "FR"}
_FILE_TYPES = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/tiff", "image/bmp", "image/gif"}
)
_LISTED_ENTRY = (
    "id",
    "created_at",
    "updated_at",
    "label",
    "date",
    "journal_id",
    "ledger_attachment_filename",
    "piece_number",
    "file_attachment_id",
)


def _listed_entry(entry: dict) -> dict:
    return {name: entry[name] for name in _LISTED_ENTRY}


def _balanced(lines: list[dict]) -> None:
    debit = sum((Decimal(line["debit"]) for line in lines), Decimal(0))
    credit = sum((Decimal(line["credit"]) for line in lines), Decimal(0))
    if debit != credit:
        raise Unprocessable(
            f"Ledger entry is not balanced: debit {_money(debit)}, credit {_money(credit)}"
        )


def _field(item: dict, name: str) -> Any:
    if name.endswith("_id") and name[:-3] in item and isinstance(item[name[:-3]], dict):
        return item[name[:-3]]["id"]  # ledger_account_id, customer_id, supplier_id
    return item.get(name)


def _matches(item: dict, rule: dict) -> bool:
    value, operator, wanted = _field(item, rule["field"]), rule["operator"], rule["value"]
    if operator in ("in", "not_in"):
        found = str(value) in {str(w) for w in wanted}
        return found if operator == "in" else not found
    if value is None:
        return operator == "not_eq"
    if operator == "start_with":
        return str(value).startswith(str(wanted))
    if isinstance(value, int) and not isinstance(value, bool):
        left, right = value, int(wanted)
    else:
        left, right = str(value), str(wanted)
    return {
        "eq": left == right,
        "not_eq": left != right,
        "lt": left < right,
        "gt": left > right,
        "lteq": left <= right,
        "gteq": left >= right,
    }[operator]


def _handler(fake: PennylaneFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed ACK

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = fake.handle(self.command, self.path, dict(self.headers.items()), body)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
