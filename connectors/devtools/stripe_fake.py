"""A fake Stripe (REST API v1, reads) on 127.0.0.1 that enforces Stripe's documented contract.

A real HTTP server (threads) holding one or more Stripe accounts: customers (with ``eu_vat``,
``fr_siren``, ``gb_vat``… tax ids), tax rates (inclusive or exclusive, or Stripe Tax's automatic
ones), invoices (lines, per-line and per-invoice discounts, taxes, any currency, zero-decimal ones
such as JPY done in whole units), credit notes, voided invoices, and the events they raise. Every
object starts as a copy of Stripe's own example in ``tests/contracts/stripe/fixtures3.json``
(MIT) and then gets its ids, amounts, currency, status, taxes, discounts and tax ids set.

EVERY request is checked against ``tests/contracts/stripe/endpoints.json`` (the query parameters
Stripe documents per endpoint, written as data): an unknown path answers Stripe's 404
``Unrecognized request URL``, an unknown or ill-typed parameter, an expansion the endpoint does
not offer, ``starting_after`` with ``ending_before``, ``type`` with ``types``, an
``Idempotency-Key`` on a GET answer 400 in Stripe's error shape
(``{"error": {"type": "invalid_request_error", "message": ..., "param": ...}}``); each is ALSO
recorded in :attr:`StripeFake.violations`. Tests assert ``fake.violations == []``.

    with StripeFake() as fake:                         # 25 operations / s per account (test mode)
        acct = fake.add_account("Acme SAS", country="FR")
        key = fake.keys.issue(acct)                    # sk_test_… (restricted=True: rk_test_…)
        invoices = fake.generate(acct, count=300)      # several currencies, taxes, discounts…
        ...                                            # the connector calls fake.api_url + /v1/…
        fake.keys.revoke(key)                          # next call: 401 api_key_expired
        assert fake.violations == []
        fake.calls["ListInvoices"], fake.calls["InvoicePdf"]   # calls per operation (bench)

Connect: ``platform = fake.add_account(...)``; ``fake.connect(platform, acct)`` lets the
platform's key act on ``acct`` through the ``Stripe-Account: acct_…`` header;
``fake.disconnect(platform, acct)`` (deauthorization) makes those calls answer 403. Without the
header a key acts on its own account.

Switches: ``StripeFake(rate_limit=False)``, ``limit`` (operations per second per account; Stripe:
25 in test mode, 100 live) and an injectable ``clock`` (tests move time instead of sleeping);
:meth:`StripeFake.fail_next` (a 5xx burst, answered with ``Stripe-Should-Retry: true``, outside
the contract). Over the limit Stripe answers 429 with ``error.code = "rate_limit"`` and NO
``Retry-After`` header (its docs ask for exponential backoff with jitter); the fake does the same.

PDFs: ``invoice_pdf`` (and a credit note's ``pdf``) is a URL on the fake (``/files/invoice/…``,
``/files/credit_note/…``: Stripe serves them from ``pay.stripe.com``/``files.stripe.com``, a link
that needs no API key); fetching it counts as ``InvoicePdf``/``CreditNotePdf`` and answers a small
PDF naming the document.

Webhooks: :meth:`StripeFake.signed` builds an event delivery (body and a ``Stripe-Signature``
header: ``t=<unix time>,v1=<HMAC-SHA256 hex of "t.body" with the endpoint secret>``, several
``v1`` allowed), :meth:`StripeFake.deliver` POSTs it to a URL.

Development tool: not shipped in the wheel (connectors.devtools is excluded); no django, no ORM.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from connectors.devtools.http_fake import LocalHttpServer

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "tests" / "contracts" / "stripe"
# Stripe's zero-decimal currencies (docs: currencies#zero-decimal): amounts in whole units.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
API_VERSION = "2025-03-31.basil"
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: generated objects are created from here on


@dataclass(frozen=True)
class Violation:
    operation: str
    method: str
    path: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.operation} {self.method} {self.path}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    operation: str
    method: str
    path: str
    pattern: re.Pattern[str]
    query: dict[str, dict[str, Any]]
    expandable: frozenset[str]
    is_list: bool


def load_endpoints(directory: Path = CONTRACT_DIR) -> list[Endpoint]:
    """The endpoints and their documented query parameters (``endpoints.json``)."""
    data = json.loads((directory / "endpoints.json").read_text())
    endpoints = []
    for item in data["endpoints"]:
        regex = re.sub(r"\{[a-z_]+\}", r"([^/]+)", item["path"])
        endpoints.append(
            Endpoint(
                operation=item["operation"],
                method=item["method"],
                path=item["path"],
                pattern=re.compile("^" + regex + "$"),
                query=item["query"],
                expandable=frozenset(item["expandable"]),
                is_list=bool(item.get("list")),
            )
        )
    return endpoints


def load_fixtures(directory: Path = CONTRACT_DIR) -> dict[str, dict]:
    """Stripe's example object per resource (``fixtures3.json``, MIT, from stripe/openapi)."""
    return json.loads((directory / "fixtures3.json").read_text())["resources"]


class StripeRequestError(Exception):
    """An answer in Stripe's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        violation: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.violation = violation
        self.headers = headers or {}

    def answer(self, request_id: str) -> Answer:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return _json_answer(self.status, {"error": error}, self.headers)


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(payload, indent=2).encode()
    return Answer(status, {"Content-Type": "application/json", **(headers or {})}, body)


# -- keys -------------------------------------------------------------------------------------


@dataclass
class KeyInfo:
    account_id: str
    restricted: bool = False
    revoked: bool = False


class KeyRegistry:
    """The API keys the fake accepts: ``sk_test_…`` secret keys, ``rk_test_…`` restricted ones."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyInfo] = {}
        self._lock = threading.Lock()

    def issue(self, account: Account | str, *, restricted: bool = False) -> str:
        account_id = account if isinstance(account, str) else account.id
        key = ("rk_test_" if restricted else "sk_test_") + secrets.token_hex(24)
        self.register(key, account_id, restricted=restricted)
        return key

    def register(self, key: str, account: Account | str, *, restricted: bool = False) -> None:
        """Accept ``key`` (e.g. an OAuth server's platform secret) as ``account``'s."""
        account_id = account if isinstance(account, str) else account.id
        with self._lock:
            self._keys[key] = KeyInfo(account_id, restricted=restricted)

    def revoke(self, key: str) -> None:
        """Roll/delete the key: its next call answers 401 ``api_key_expired``."""
        with self._lock:
            self._keys[key].revoked = True

    def info(self, key: str) -> KeyInfo | None:
        with self._lock:
            return self._keys.get(key)


def _masked(key: str) -> str:
    """How Stripe names a key in an error: its prefix, stars and the last four characters."""
    prefix = key[:8] if key[:3] in ("sk_", "rk_", "pk_") else ""
    return f"{prefix}{'*' * 20}{key[-4:]}"


# -- state ------------------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    name: str
    country: str
    default_currency: str
    object: dict
    connected: set[str] = field(default_factory=set)  # platform account ids acting on it
    customers: dict[str, dict] = field(default_factory=dict)
    tax_ids: dict[str, list[dict]] = field(default_factory=dict)  # customer id -> tax_id objects
    tax_rates: dict[str, dict] = field(default_factory=dict)
    discounts: dict[str, dict] = field(default_factory=dict)
    invoices: dict[str, dict] = field(default_factory=dict)
    invoice_lines: dict[str, list[dict]] = field(default_factory=dict)  # all lines per invoice
    credit_notes: dict[str, dict] = field(default_factory=dict)
    credit_note_lines: dict[str, list[dict]] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)
    pdf_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (kind, id)


@dataclass(frozen=True)
class Line:
    """One invoice line to create: ``unit_amount`` in the currency's minor units (integers; JPY
    has none), ``tax_rates`` by id, ``discount`` an amount off this line (a line-level coupon)."""

    description: str
    unit_amount: int
    quantity: int = 1
    tax_rates: Sequence[str] = ()
    discount: int = 0


class StripeFake(LocalHttpServer):
    """The server, in a thread, on 127.0.0.1 (``port=0``: a free port)."""

    def __init__(
        self,
        *,
        rate_limit: bool = True,
        limit: int = 25,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], int] | None = None,
        port: int = 0,
    ) -> None:
        self.endpoints = load_endpoints()
        self.fixtures = load_fixtures()
        self.rate_limit = rate_limit
        self.limit = limit
        self.clock = clock
        self._now = now
        self.keys = KeyRegistry()
        self.accounts: dict[str, Account] = {}
        self.violations: list[Violation] = []
        self.calls: Counter[str] = Counter()
        self.answers: list[tuple[str, int]] = []  # (operation, status) in order
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, target, headers)
        self._failures: list[int] = []
        self._windows: dict[str, list[float]] = {}  # account id -> [second start, count]
        self._serial = itertools.count(1)
        self._time = itertools.count(EPOCH, 37)
        self._lock = threading.RLock()
        self._listen(_handler(self), port)

    # -- life ----------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:<port>``: Stripe's ``https://api.stripe.com`` (paths ``/v1/…``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    base_url = api_url

    # -- switches --------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` API requests that keep the contract are answered ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.answers.clear()
            self.requests.clear()

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError(
                "Stripe contract broken:\n" + "\n".join(str(v) for v in self.violations)
            )

    def connect(self, platform: Account, account: Account) -> None:
        """Stripe Connect: ``platform``'s keys may act on ``account`` (``Stripe-Account``)."""
        with self._lock:
            account.connected.add(platform.id)

    def disconnect(self, platform: Account, account: Account) -> None:
        """Deauthorization: the platform's calls on ``account`` answer 403 from now on."""
        with self._lock:
            account.connected.discard(platform.id)

    # -- ids and clock ---------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        n = next(self._serial)
        return f"{prefix}_1Fk{n:08d}{secrets.token_hex(6)}"

    def _created(self) -> int:
        return self._now() if self._now is not None else next(self._time)

    # -- building objects from Stripe's fixtures -------------------------------------------------

    def _fixture(self, resource: str) -> dict:
        return copy.deepcopy(self.fixtures[resource])

    def add_account(
        self,
        name: str,
        *,
        country: str = "FR",
        default_currency: str = "eur",
        account_id: str | None = None,
    ) -> Account:
        with self._lock:
            obj = self._fixture("account")
            obj.update(
                id=account_id or self._id("acct"),
                country=country,
                default_currency=default_currency,
                email=f"billing@{re.sub(r'[^a-z]', '', name.lower())[:20] or 'acme'}.test",
                type="standard",
                charges_enabled=True,
                details_submitted=True,
            )
            obj["business_profile"]["name"] = name
            obj["settings"]["dashboard"]["display_name"] = name
            obj["external_accounts"]["url"] = f"/v1/accounts/{obj['id']}/external_accounts"
            account = Account(obj["id"], name, country, default_currency, obj)
            self.accounts[account.id] = account
            return account

    def add_customer(
        self,
        account: Account,
        name: str,
        *,
        email: str | None = None,
        country: str = "FR",
        city: str = "Paris",
        line1: str = "1 rue de la Paix",
        postal_code: str = "75002",
        tax_ids: Iterable[tuple[str, str]] = (),
        currency: str | None = None,
    ) -> dict:
        """A customer; ``tax_ids`` as ``(type, value)``: ``("eu_vat", "FR12345678901")``,
        ``("fr_siren", "123456789")``, ``("gb_vat", "GB123456789")``…"""
        with self._lock:
            obj = self._fixture("customer")
            obj.update(
                id=self._id("cus"),
                name=name,
                email=email or f"{re.sub(r'[^a-z]', '', name.lower())[:20] or 'x'}@example.test",
                created=self._created(),
                currency=currency or account.default_currency,
                discount=None,
                invoice_prefix=secrets.token_hex(4).upper(),
            )
            obj["address"] = {
                "city": city,
                "country": country,
                "line1": line1,
                "line2": None,
                "postal_code": postal_code,
                "state": None,
            }
            account.customers[obj["id"]] = obj
            account.tax_ids[obj["id"]] = []
            for kind, value in tax_ids:
                tax_id = self._fixture("tax_id")
                tax_id.update(
                    id=self._id("txi"),
                    customer=obj["id"],
                    type=kind,
                    value=value,
                    country=value[:2] if kind.endswith("_vat") else kind[:2].upper(),
                    created=obj["created"],
                )
                tax_id["owner"]["customer"] = obj["id"]
                tax_id["verification"]["status"] = "verified"
                account.tax_ids[obj["id"]].append(tax_id)
            self._event(account, "customer.created", obj)
            return obj

    def add_tax_rate(
        self,
        account: Account,
        percentage: Decimal | str | float,
        *,
        inclusive: bool = False,
        country: str = "FR",
        jurisdiction: str | None = None,
        display_name: str = "VAT",
        description: str | None = None,
        automatic: bool = False,
    ) -> dict:
        """A tax rate; ``automatic=True``: one Stripe Tax created for its calculations (its
        ``effective_percentage`` set, ``jurisdiction_level`` country, no description)."""
        with self._lock:
            obj = self._fixture("tax_rate")
            pct = Decimal(str(percentage))
            obj.update(
                id=self._id("txr"),
                percentage=float(pct),
                inclusive=inclusive,
                country=country,
                jurisdiction=jurisdiction or country,
                display_name=display_name,
                description=description or f"{display_name} {country} {pct}%",
                created=self._created(),
                tax_type="vat",
                flat_amount=None,
                rate_type="percentage",
                effective_percentage=float(pct) if automatic else None,
                jurisdiction_level="country" if automatic else None,
            )
            if automatic:
                obj["description"] = None
            account.tax_rates[obj["id"]] = obj
            return obj

    def _discount(
        self, account: Account, customer: str, invoice: str | None, amount: int, currency
    ):
        obj = self._fixture("discount")
        coupon = self._fixture("coupon")
        coupon.update(
            id=self._id("co"),
            amount_off=amount,
            currency=currency,
            percent_off=None,
            name=f"{amount} off",
            duration="once",
        )
        obj.update(
            id=self._id("di"),
            customer=customer,
            invoice=invoice,
            start=self._created(),
            end=None,
        )
        obj["source"] = {"coupon": coupon, "type": "coupon"}
        account.discounts[obj["id"]] = obj
        return obj

    def add_invoice(
        self,
        account: Account,
        customer: dict,
        lines: Sequence[Line],
        *,
        currency: str | None = None,
        status: Literal["open", "paid", "uncollectible", "void", "draft"] = "open",
        discount: int = 0,
        automatic_tax: bool = False,
        created: int | None = None,
        number: str | None = None,
        due_days: int = 30,
    ) -> dict:
        """A finalized invoice (``status`` open by default; ``void``: finalized then voided).
        ``discount`` is an amount off the whole invoice (shared over the discountable lines pro
        rata, as Stripe does); taxes are computed per line after discounts, rounded half up."""
        with self._lock:
            currency = (currency or account.default_currency).lower()
            obj = self._fixture("invoice")
            invoice_id = self._id("in")
            when = created if created is not None else self._created()
            seq = len(account.invoices) + 1
            obj.update(
                id=invoice_id,
                customer=customer["id"],
                currency=currency,
                created=when,
                effective_at=when if status != "draft" else None,
                period_start=when,
                period_end=when,
                due_date=when + due_days * 86400,
                number=number
                or (f"{customer['invoice_prefix']}-{seq:04d}" if status != "draft" else None),
                account_country=account.country,
                account_name=account.name,
                customer_email=customer["email"],
                customer_name=customer["name"],
                customer_phone=None,
                customer_address=copy.deepcopy(customer["address"]),
                customer_tax_ids=[
                    {"type": t["type"], "value": t["value"]}
                    for t in account.tax_ids[customer["id"]]
                ],
                collection_method="send_invoice",
                billing_reason="manual",
                auto_advance=False,
                attempted=False,
                last_finalization_error=None,
                from_invoice=None,
                parent=None,
                next_payment_attempt=None,
                webhooks_delivered_at=when,
                amount_overpaid=0,
                shipping_cost=None,
                description=None,
                default_tax_rates=[],
            )
            obj["automatic_tax"] = {
                "enabled": automatic_tax,
                "liability": {"type": "self"} if automatic_tax else None,
                "status": "complete" if automatic_tax else None,
                "disabled_reason": None,
                "provider": "stripe" if automatic_tax else None,
            }
            invoice_discount = (
                self._discount(account, customer["id"], invoice_id, discount, currency)
                if discount
                else None
            )
            built = self._lines(account, obj, customer, lines, invoice_discount, discount)
            account.invoice_lines[invoice_id] = built
            self._totals(obj, built)
            obj["discounts"] = [invoice_discount["id"]] if invoice_discount else []
            obj["lines"] = self._embedded(built, f"/v1/invoices/{invoice_id}/lines")
            token = secrets.token_urlsafe(24)
            account.pdf_tokens[token] = ("invoice", invoice_id)
            obj["invoice_pdf"] = f"{self.api_url}/files/invoice/{account.id}/{token}/pdf?s=ap"
            obj["hosted_invoice_url"] = f"{self.api_url}/files/invoice/{account.id}/{token}"
            transitions = {
                "finalized_at": when if status != "draft" else None,
                "marked_uncollectible_at": when if status == "uncollectible" else None,
                "paid_at": when if status == "paid" else None,
                "voided_at": None,
            }
            obj["status_transitions"] = transitions
            obj["status"] = "open" if status in ("void", "paid", "uncollectible") else status
            if status == "paid":
                obj["status"] = "paid"
                obj["amount_paid"] = obj["amount_due"]
                obj["amount_remaining"] = 0
            elif status == "uncollectible":
                obj["status"] = "uncollectible"
            account.invoices[invoice_id] = obj
            if status != "draft":
                self._event(account, "invoice.finalized", obj, created=when)
            if status == "paid":
                self._event(account, "invoice.paid", obj, created=when)
            if status == "void":
                self.void(account, invoice_id)
            return obj

    def void(self, account: Account, invoice_id: str) -> dict:
        """Void a finalized invoice (``invoice.voided``)."""
        with self._lock:
            obj = account.invoices[invoice_id]
            obj["status"] = "void"
            when = max(self._created(), obj["created"])
            obj["status_transitions"]["voided_at"] = when
            obj["amount_remaining"] = 0
            self._event(account, "invoice.voided", obj, created=when)
            return obj

    def _lines(self, account, invoice, customer, lines, invoice_discount, discount_total):
        currency = invoice["currency"]
        amounts = [line.unit_amount * line.quantity for line in lines]
        base = sum(amounts) or 1
        shares = [discount_total * a // base for a in amounts]
        if shares:
            shares[-1] += discount_total - sum(shares)  # the rounding rest on the last line
        built = []
        for line, amount, share in zip(lines, amounts, shares, strict=True):
            item = self._fixture("line_item")
            line_id = self._id("il")
            line_discount = (
                self._discount(account, customer["id"], None, line.discount, currency)
                if line.discount
                else None
            )
            discount_amounts = []
            if line_discount:
                discount_amounts.append({"amount": line.discount, "discount": line_discount["id"]})
            if invoice_discount and share:
                discount_amounts.append({"amount": share, "discount": invoice_discount["id"]})
            net = amount - sum(d["amount"] for d in discount_amounts)
            taxes = []
            for rate_id in line.tax_rates:
                rate = account.tax_rates[rate_id]
                pct = Decimal(str(rate["percentage"]))
                if rate["inclusive"]:
                    tax = net - _half_up(Decimal(net) * 100 / (100 + pct))
                    taxable = net - tax
                else:
                    tax = _half_up(Decimal(net) * pct / 100)
                    taxable = net
                taxes.append(
                    {
                        "amount": tax,
                        "tax_behavior": "inclusive" if rate["inclusive"] else "exclusive",
                        "tax_rate_details": {"tax_rate": rate_id},
                        "taxability_reason": "standard_rated" if pct else "zero_rated",
                        "taxable_amount": taxable,
                        "type": "tax_rate_details",
                    }
                )
            item.update(
                id=line_id,
                invoice=invoice["id"],
                amount=amount,
                currency=currency,
                description=line.description,
                quantity=line.quantity,
                discount_amounts=discount_amounts,
                discountable=True,
                discounts=[line_discount["id"]] if line_discount else [],
                period={"start": invoice["created"], "end": invoice["created"]},
                taxes=taxes,
                subscription=None,
                pretax_credit_amounts=[],
                quantity_decimal=str(line.quantity),
            )
            item["pricing"] = {
                "type": "price_details",
                "price_details": {"price": self._id("price"), "product": self._id("prod")},
                "unit_amount_decimal": str(line.unit_amount),
            }
            item["parent"] = {
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": self._id("ii"),
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
                "subscription_item_details": None,
            }
            item["subtotal"] = amount
            built.append(item)
        return built

    @staticmethod
    def _totals(invoice: dict, lines: list[dict]) -> None:
        subtotal = sum(line["amount"] for line in lines)
        inclusive = sum(
            t["amount"] for line in lines for t in line["taxes"] if t["tax_behavior"] == "inclusive"
        )
        exclusive = sum(
            t["amount"] for line in lines for t in line["taxes"] if t["tax_behavior"] == "exclusive"
        )
        discounts: dict[str, int] = {}
        for line in lines:
            for d in line["discount_amounts"]:
                discounts[d["discount"]] = discounts.get(d["discount"], 0) + d["amount"]
        total_taxes: dict[tuple[str, str], dict] = {}
        for line in lines:
            for t in line["taxes"]:
                key = (t["tax_rate_details"]["tax_rate"], t["tax_behavior"])
                row = total_taxes.setdefault(
                    key, {**copy.deepcopy(t), "amount": 0, "taxable_amount": 0}
                )
                row["amount"] += t["amount"]
                row["taxable_amount"] += t["taxable_amount"]
        total = subtotal - sum(discounts.values()) + exclusive
        invoice.update(
            subtotal=subtotal,
            subtotal_excluding_tax=subtotal - inclusive,
            total=total,
            total_excluding_tax=total - inclusive - exclusive,
            total_discount_amounts=[{"amount": a, "discount": d} for d, a in discounts.items()],
            total_taxes=list(total_taxes.values()),
            total_pretax_credit_amounts=[],
            amount_due=total,
            amount_paid=0,
            amount_remaining=total,
            amount_shipping=0,
            starting_balance=0,
            ending_balance=0,
            pre_payment_credit_notes_amount=0,
            post_payment_credit_notes_amount=0,
        )

    @staticmethod
    def _embedded(items: list[dict], url: str) -> dict:
        """An object's embedded list: Stripe shows the first 10 and ``has_more``."""
        return {
            "object": "list",
            "data": copy.deepcopy(items[:10]),
            "has_more": len(items) > 10,
            "total_count": len(items),
            "url": url,
        }

    def add_credit_note(
        self,
        account: Account,
        invoice_id: str,
        *,
        lines: Sequence[tuple[str, int]] | None = None,
        reason: str | None = "order_change",
        memo: str | None = None,
    ) -> dict:
        """A credit note on an invoice: ``lines`` as ``(invoice line id, quantity)`` (taxes and
        discounts in proportion); None: the whole invoice."""
        with self._lock:
            invoice = account.invoices[invoice_id]
            inv_lines = {line["id"]: line for line in account.invoice_lines[invoice_id]}
            picked = (
                lines if lines is not None else [(i, ln["quantity"]) for i, ln in inv_lines.items()]
            )
            obj = self._fixture("credit_note")
            note_id = self._id("cn")
            when = max(self._created(), invoice["created"])
            built = []
            for line_id, quantity in picked:
                source = inv_lines[line_id]
                ratio = Fraction_(quantity, source["quantity"])
                item = self._fixture("credit_note_line_item")
                amount = ratio.of(source["amount"])
                discount_amounts = [
                    {"amount": ratio.of(d["amount"]), "discount": d["discount"]}
                    for d in source["discount_amounts"]
                ]
                taxes = [
                    {
                        **copy.deepcopy(t),
                        "amount": ratio.of(t["amount"]),
                        "taxable_amount": ratio.of(t["taxable_amount"]),
                    }
                    for t in source["taxes"]
                ]
                item.update(
                    id=self._id("cnli"),
                    amount=amount,
                    description=source["description"],
                    discount_amount=sum(d["amount"] for d in discount_amounts),
                    discount_amounts=discount_amounts,
                    invoice_line_item=line_id,
                    quantity=quantity,
                    tax_rates=[
                        copy.deepcopy(account.tax_rates[t["tax_rate_details"]["tax_rate"]])
                        for t in taxes
                    ],
                    taxes=taxes,
                    type="invoice_line_item",
                    unit_amount=int(source["pricing"]["unit_amount_decimal"]),
                    unit_amount_decimal=source["pricing"]["unit_amount_decimal"],
                    pretax_credit_amounts=[],
                    metadata={},
                )
                built.append(item)
            subtotal = sum(i["amount"] for i in built)
            discount = sum(i["discount_amount"] for i in built)
            inclusive = sum(
                t["amount"] for i in built for t in i["taxes"] if t["tax_behavior"] == "inclusive"
            )
            exclusive = sum(
                t["amount"] for i in built for t in i["taxes"] if t["tax_behavior"] == "exclusive"
            )
            total = subtotal - discount + exclusive
            total_taxes: dict[tuple[str, str], dict] = {}
            for i in built:
                for t in i["taxes"]:
                    key = (t["tax_rate_details"]["tax_rate"], t["tax_behavior"])
                    row = total_taxes.setdefault(
                        key, {**copy.deepcopy(t), "amount": 0, "taxable_amount": 0}
                    )
                    row["amount"] += t["amount"]
                    row["taxable_amount"] += t["taxable_amount"]
            discounts: dict[str, int] = {}
            for i in built:
                for d in i["discount_amounts"]:
                    discounts[d["discount"]] = discounts.get(d["discount"], 0) + d["amount"]
            token = secrets.token_urlsafe(24)
            account.pdf_tokens[token] = ("credit_note", note_id)
            seq = sum(1 for n in account.credit_notes.values() if n["invoice"] == invoice_id) + 1
            obj.update(
                id=note_id,
                invoice=invoice_id,
                customer=invoice["customer"],
                currency=invoice["currency"],
                created=when,
                effective_at=when,
                number=f"{invoice['number']}-CN-{seq:02d}",
                amount=total,
                amount_shipping=0,
                subtotal=subtotal,
                subtotal_excluding_tax=subtotal - inclusive,
                total=total,
                total_excluding_tax=total - inclusive - exclusive,
                discount_amount=discount,
                discount_amounts=[{"amount": a, "discount": d} for d, a in discounts.items()],
                total_taxes=list(total_taxes.values()),
                pretax_credit_amounts=[],
                memo=memo,
                reason=reason,
                status="issued",
                type="pre_payment" if invoice["status"] == "open" else "post_payment",
                voided_at=None,
                shipping_cost=None,
                refunds=[],
                out_of_band_amount=None,
                pre_payment_amount=total if invoice["status"] == "open" else 0,
                post_payment_amount=0 if invoice["status"] == "open" else total,
                pdf=f"{self.api_url}/files/credit_note/{account.id}/{token}/pdf?s=ap",
            )
            obj["lines"] = self._embedded(built, f"/v1/credit_notes/{note_id}/lines")
            account.credit_notes[note_id] = obj
            account.credit_note_lines[note_id] = built
            key = (
                "pre_payment_credit_notes_amount"
                if obj["type"] == "pre_payment"
                else "post_payment_credit_notes_amount"
            )
            invoice[key] += total
            self._event(account, "credit_note.created", obj, created=when)
            return obj

    def _event(
        self, account: Account, type_: str, obj: dict, *, created: int | None = None
    ) -> dict:
        event = self._fixture("event")
        event.update(
            id=self._id("evt"),
            type=type_,
            created=created if created is not None else obj.get("created", self._created()),
            api_version=API_VERSION,
            account=None,
            livemode=False,
            pending_webhooks=0,
            request={"id": None, "idempotency_key": None},
        )
        event["data"] = {"object": copy.deepcopy(obj)}
        account.events[event["id"]] = event
        return event

    def event_for(self, account: Account, type_: str, object_id: str) -> dict:
        """The latest event of ``type_`` about ``object_id`` (to deliver it to a webhook)."""
        with self._lock:
            for event in reversed(list(account.events.values())):
                if event["type"] == type_ and event["data"]["object"]["id"] == object_id:
                    return event
        raise KeyError((type_, object_id))

    # -- generators ------------------------------------------------------------------------------

    def generate(self, account: Account, count: int = 300, *, seed: int = 17) -> list[dict]:
        """``count`` invoices, oldest first, with what the connector must get right: EUR, USD, GBP
        and JPY (zero-decimal); exclusive 20 %, 5.5 % and inclusive 20 % rates, a 19 % German
        one, Stripe Tax amounts; per-line and per-invoice discounts; customers with ``eu_vat``,
        ``fr_siren``, ``gb_vat`` ids or none; every tenth invoice voided, every seventh given a
        credit note, some paid, some uncollectible."""
        rnd = random.Random(seed)  # noqa: S311 (test data)
        with self._lock:
            rates = {
                "fr20": self.add_tax_rate(account, "20", country="FR", display_name="TVA"),
                "fr55": self.add_tax_rate(account, "5.5", country="FR", display_name="TVA"),
                "fr20i": self.add_tax_rate(
                    account, "20", inclusive=True, country="FR", display_name="TVA"
                ),
                "de19": self.add_tax_rate(account, "19", country="DE"),
                "gb20": self.add_tax_rate(account, "20", country="GB"),
                "auto": self.add_tax_rate(account, "20", country="FR", automatic=True),
                "jp10": self.add_tax_rate(account, "10", country="JP", display_name="JCT"),
            }
            customers = [
                self.add_customer(
                    account,
                    "Boulangerie Martin SAS",
                    country="FR",
                    tax_ids=[("eu_vat", "FR40303265045"), ("fr_siren", "303265045")],
                ),
                self.add_customer(
                    account,
                    "Atelier Dubois SARL",
                    country="FR",
                    city="Lyon",
                    postal_code="69002",
                    tax_ids=[("fr_siren", "552100554")],
                ),
                self.add_customer(
                    account,
                    "Müller Maschinenbau GmbH",
                    country="DE",
                    city="Berlin",
                    postal_code="10115",
                    tax_ids=[("eu_vat", "DE123456789")],
                    currency="eur",
                ),
                self.add_customer(
                    account,
                    "Thames Widgets Ltd",
                    country="GB",
                    city="London",
                    postal_code="EC1A 1BB",
                    tax_ids=[("gb_vat", "GB123456789")],
                    currency="gbp",
                ),
                self.add_customer(
                    account,
                    "Sakura Trading KK",
                    country="JP",
                    city="Tokyo",
                    postal_code="100-0001",
                    currency="jpy",
                ),
                self.add_customer(
                    account,
                    "Jane Doe",
                    country="US",
                    city="Austin",
                    postal_code="78701",
                    currency="usd",
                ),
            ]
            plans = [  # (customer index, currency, rate keys, unit amounts in minor units)
                (0, "eur", ["fr20"], (1500, 24900, 399)),
                (1, "eur", ["fr55"], (1250, 4500)),
                (0, "eur", ["fr20i"], (12000, 600)),
                (2, "eur", ["de19"], (99000,)),
                (3, "gbp", ["gb20"], (4999, 1000)),
                (4, "jpy", ["jp10"], (12800, 500)),
                (5, "usd", [], (2500,)),
                (1, "eur", ["auto"], (7300, 1100)),
            ]
            invoices = []
            for n in range(count):
                index, currency, rate_keys, units = plans[n % len(plans)]
                automatic = rate_keys == ["auto"]
                lines = []
                for j, unit in enumerate(units[: rnd.randint(1, len(units))]):
                    line_discount = unit // 10 if (n + j) % 5 == 3 else 0
                    lines.append(
                        Line(
                            description=f"Item {j + 1} of invoice {n + 1}",
                            unit_amount=unit,
                            quantity=rnd.randint(1, 4),
                            tax_rates=[rates[k]["id"] for k in rate_keys],
                            discount=line_discount,
                        )
                    )
                discount = sum(line.unit_amount for line in lines) // 20 if n % 6 == 4 else 0
                status = "paid" if n % 4 == 1 else ("uncollectible" if n % 23 == 22 else "open")
                invoice = self.add_invoice(
                    account,
                    customers[index],
                    lines,
                    currency=currency,
                    status=status,
                    discount=discount,
                    automatic_tax=automatic,
                )
                if n % 10 == 9:
                    self.void(account, invoice["id"])
                elif n % 7 == 6:
                    first = account.invoice_lines[invoice["id"]][0]
                    self.add_credit_note(account, invoice["id"], lines=[(first["id"], 1)])
                invoices.append(invoice)
            return invoices

    # -- webhooks --------------------------------------------------------------------------------

    @staticmethod
    def sign(body: bytes, secret: str, timestamp: int, *, extra_secrets: Iterable[str] = ()) -> str:
        """A ``Stripe-Signature`` header: ``t=…,v1=…`` (one ``v1`` per secret: Stripe signs with
        every active secret of the endpoint while one is being rolled)."""
        parts = [f"t={timestamp}"]
        for key in (secret, *extra_secrets):
            signed = f"{timestamp}.".encode() + body
            parts.append("v1=" + hmac.new(key.encode(), signed, hashlib.sha256).hexdigest())
        return ",".join(parts)

    @staticmethod
    def signed(
        event: dict,
        secret: str,
        *,
        timestamp: int | None = None,
        extra_secrets: Iterable[str] = (),
    ) -> tuple[bytes, dict[str, str]]:
        """A delivery of ``event``: the body and headers Stripe POSTs to a webhook endpoint (no
        server needed: ``StripeFake.signed(event, secret)``)."""
        body = json.dumps(event, indent=2).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": StripeFake.sign(body, secret, stamp, extra_secrets=extra_secrets),
        }
        return body, headers

    def deliver(self, url: str, event: dict, secret: str, **kwargs: Any) -> int:
        """POST a signed ``event`` to ``url``; the HTTP status the endpoint answered."""
        body, headers = self.signed(event, secret, **kwargs)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # -- the request path ------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            request_id = "req_" + secrets.token_hex(7)
            parts = urlsplit(target)
            self.requests.append((method, target, dict(headers)))
            if parts.path.startswith("/files/"):
                answer = self._pdf(method, parts.path)
                self.answers.append((answer[0], answer[1].status))
                return answer[1]
            endpoint, params = self._endpoint(method, parts.path)
            operation = endpoint.operation if endpoint else "unknown"
            self.calls[operation] += 1
            try:
                answer = self._answer(endpoint, params, method, parts, headers, request_id)
            except StripeRequestError as exc:
                if exc.violation:
                    self.violations.append(Violation(operation, method, parts.path, (exc.message,)))
                answer = exc.answer(request_id)
            answer = Answer(
                answer.status,
                {**answer.headers, "Request-Id": request_id, "Stripe-Version": API_VERSION},
                answer.body,
            )
            self.answers.append((operation, answer.status))
            return answer

    def _endpoint(self, method: str, path: str) -> tuple[Endpoint | None, tuple[str, ...]]:
        for endpoint in self.endpoints:
            match = endpoint.pattern.match(path)
            if match and endpoint.method == method:
                return endpoint, match.groups()
        return None, ()

    def _answer(self, endpoint, params, method, parts, headers, request_id) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        if endpoint is None:
            raise StripeRequestError(
                404,
                f"Unrecognized request URL ({method}: {parts.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                violation=True,
            )
        # The contract is checked first, so that a break is recorded even when the key is refused.
        broken: StripeRequestError | None = None
        try:
            query = self._query(endpoint, parts.query)
            version = lowered.get("stripe-version")
            if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", version):
                raise StripeRequestError(
                    400, f"Invalid Stripe API version: {version}", violation=True
                )
            if "idempotency-key" in lowered:
                raise StripeRequestError(
                    400,
                    "Idempotency-Key is only for POST requests (Stripe: sending one on GET or "
                    "DELETE has no effect and should be avoided).",
                    violation=True,
                )
        except StripeRequestError as exc:
            if exc.violation:
                self.violations.append(
                    Violation(endpoint.operation, method, parts.path, (exc.message,))
                )
                exc.violation = False
            broken = exc
        key = self._key(lowered)
        account = self._account(key, lowered)
        self._spend(account.id)
        if broken is not None:
            raise broken
        if self._failures:
            status = self._failures.pop(0)
            raise StripeRequestError(
                status,
                "An unknown error occurred",
                type="api_error",
                headers={"Stripe-Should-Retry": "true"},
            )
        payload = self._work(endpoint, params, query, account)
        return _json_answer(200, payload)

    def _key(self, headers: dict[str, str]) -> KeyInfo:
        raw = headers.get("authorization", "")
        key = ""
        if raw.startswith("Bearer "):
            key = raw[7:].strip()
        elif raw.startswith("Basic "):
            try:
                key = base64.b64decode(raw[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeRequestError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
                violation=True,
                headers={"WWW-Authenticate": 'Bearer realm="Stripe"'},
            )
        info = self.keys.info(key)
        if info is None:
            raise StripeRequestError(
                401,
                f"Invalid API Key provided: {_masked(key)}",
                headers={"WWW-Authenticate": 'Bearer realm="Stripe"'},
            )
        if info.revoked:
            raise StripeRequestError(
                401,
                f"Expired API Key provided: {_masked(key)}",
                code="api_key_expired",
                headers={"WWW-Authenticate": 'Bearer realm="Stripe"'},
            )
        return info

    def _account(self, key: KeyInfo, headers: dict[str, str]) -> Account:
        own = self.accounts[key.account_id]
        target = headers.get("stripe-account")
        if target is None or target == own.id:
            return own
        account = self.accounts.get(target)
        if account is None or own.id not in account.connected:
            raise StripeRequestError(
                403,
                f"The provided key does not have access to account '{target}' (or that account "
                "does not exist). Application access may have been revoked.",
                type="invalid_request_error",
                code="account_invalid",
            )
        return account

    def _spend(self, account_id: str) -> None:
        """One operation of ``account_id``'s second (Stripe test mode: 25 read operations/s)."""
        now = self.clock()
        window = self._windows.setdefault(account_id, [now, 0])
        if now >= window[0] + 1.0:
            window[0], window[1] = now, 0
        if self.rate_limit and window[1] >= self.limit:
            raise StripeRequestError(
                429,
                "Too many requests hit the API too quickly. We recommend an exponential backoff "
                "of your requests.",
                code="rate_limit",
            )
        window[1] += 1

    # -- query -----------------------------------------------------------------------------------

    def _query(self, endpoint: Endpoint, raw: str) -> dict[str, Any]:
        """The query, checked against the documented parameters; values parsed."""
        out: dict[str, Any] = {}
        expand: list[str] = []
        for name, value in parse_qsl(raw, keep_blank_values=True):
            match = re.fullmatch(r"([a-z_]+)(?:\[([a-z0-9_]*)\])?", name)
            if match is None:
                raise StripeRequestError(
                    400, f"Received unknown parameter: {name}", param=name, violation=True
                )
            base, sub = match.group(1), match.group(2)
            if base == "expand" and sub is not None and (sub == "" or sub.isdigit()):
                expand.append(value)
                continue
            spec = endpoint.query.get(base)
            if spec is None:
                raise StripeRequestError(
                    400, f"Received unknown parameter: {name}", param=name, violation=True
                )
            kind = spec["type"]
            if kind == "timestamp_range":
                rng = out.setdefault(base, {})
                if sub is None:
                    rng["eq"] = _integer(value, name)
                elif sub in ("gt", "gte", "lt", "lte"):
                    rng[sub] = _integer(value, name)
                else:
                    raise StripeRequestError(
                        400, f"Received unknown parameter: {name}", param=name, violation=True
                    )
                continue
            if kind == "list":
                if sub is None or not (sub == "" or sub.isdigit()):
                    raise StripeRequestError(
                        400,
                        f"Invalid array: {name} must be sent as {base}[]",
                        param=base,
                        violation=True,
                    )
                out.setdefault(base, []).append(value)
                if len(out[base]) > spec.get("max_items", 100):
                    raise StripeRequestError(
                        400,
                        f"{base} may hold at most {spec['max_items']} items",
                        param=base,
                        violation=True,
                    )
                continue
            if sub is not None:
                raise StripeRequestError(
                    400, f"Received unknown parameter: {name}", param=name, violation=True
                )
            if kind == "int":
                number = _integer(value, name)
                if number < spec["min"] or number > spec["max"]:
                    raise StripeRequestError(
                        400,
                        f"This value must be greater than or equal to {spec['min']} and less "
                        f"than or equal to {spec['max']} (it was {number}).",
                        param=name,
                        violation=True,
                    )
                out[base] = number
            elif kind == "enum":
                if value not in spec["values"]:
                    raise StripeRequestError(
                        400,
                        f"Invalid {base}: must be one of {', '.join(spec['values'])}",
                        param=name,
                        violation=True,
                    )
                out[base] = value
            elif kind == "bool":
                if value not in ("true", "false"):
                    raise StripeRequestError(
                        400, f"Invalid boolean: {value}", param=name, violation=True
                    )
                out[base] = value == "true"
            else:
                if not value or len(value) > spec.get("max_length", 5000):
                    raise StripeRequestError(
                        400, f"Invalid string: {value!r}", param=name, violation=True
                    )
                out[base] = value
        if "starting_after" in out and "ending_before" in out:
            raise StripeRequestError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                violation=True,
            )
        if "type" in out and "types" in out:
            raise StripeRequestError(
                400, "You may pass either type or types, but not both.", violation=True
            )
        for path in expand:
            if path not in endpoint.expandable:
                raise StripeRequestError(
                    400,
                    f"This property cannot be expanded ({path}).",
                    param="expand",
                    violation=True,
                )
            if path.count(".") >= 4:
                raise StripeRequestError(
                    400,
                    f"You cannot expand more than 4 levels of a property ({path}).",
                    param="expand",
                    violation=True,
                )
        out["expand"] = expand
        return out

    # -- the work --------------------------------------------------------------------------------

    def _work(self, endpoint: Endpoint, params, query: dict[str, Any], account: Account) -> dict:
        op = endpoint.operation
        expand = query["expand"]
        if op == "RetrieveAccount":
            return copy.deepcopy(account.object)
        if op == "ListInvoices":
            items = list(account.invoices.values())
            items = [i for i in items if _in_range(i["created"], query.get("created"))]
            items = [i for i in items if _in_range(i["due_date"], query.get("due_date"))]
            for name in ("status", "customer", "collection_method"):
                if name in query:
                    items = [i for i in items if i[name] == query[name]]
            if "subscription" in query:
                items = []
            page = self._page(items, query, "/v1/invoices", "invoice")
            return self._expanded(account, page, expand)
        if op == "RetrieveInvoice":
            obj = self._get(account.invoices, params[0], "invoice", "invoice")
            return self._expanded(account, copy.deepcopy(obj), expand)
        if op == "ListInvoiceLines":
            self._get(account.invoices, params[0], "invoice", "invoice")
            lines = account.invoice_lines[params[0]]
            page = self._page(
                lines, query, f"/v1/invoices/{params[0]}/lines", "line item", newest_first=False
            )
            return self._expanded(account, page, expand)
        if op == "ListCreditNotes":
            items = list(account.credit_notes.values())
            items = [i for i in items if _in_range(i["created"], query.get("created"))]
            for name in ("invoice", "customer"):
                if name in query:
                    items = [i for i in items if i[name] == query[name]]
            page = self._page(items, query, "/v1/credit_notes", "credit note")
            return self._expanded(account, page, expand)
        if op == "RetrieveCreditNote":
            obj = self._get(account.credit_notes, params[0], "credit note", "id")
            return self._expanded(account, copy.deepcopy(obj), expand)
        if op == "ListCreditNoteLines":
            self._get(account.credit_notes, params[0], "credit note", "credit_note")
            lines = account.credit_note_lines[params[0]]
            page = self._page(
                lines,
                query,
                f"/v1/credit_notes/{params[0]}/lines",
                "credit note line item",
                newest_first=False,
            )
            return self._expanded(account, page, expand)
        if op == "RetrieveCustomer":
            obj = copy.deepcopy(self._get(account.customers, params[0], "customer", "customer"))
            if "tax_ids" in expand:
                tax_ids = account.tax_ids.get(params[0], [])
                obj["tax_ids"] = {
                    "object": "list",
                    "data": copy.deepcopy(tax_ids),
                    "has_more": False,
                    "total_count": len(tax_ids),
                    "url": f"/v1/customers/{params[0]}/tax_ids",
                }
            return obj
        if op == "ListEvents":
            items = list(account.events.values())
            items = [i for i in items if _in_range(i["created"], query.get("created"))]
            if "type" in query:
                items = [i for i in items if _type_matches(i["type"], query["type"])]
            if "types" in query:
                items = [i for i in items if i["type"] in query["types"]]
            return self._page(items, query, "/v1/events", "event")
        if op == "RetrieveEvent":
            return copy.deepcopy(self._get(account.events, params[0], "event", "id"))
        if op == "ListTaxRates":
            items = list(account.tax_rates.values())
            items = [i for i in items if _in_range(i["created"], query.get("created"))]
            for name in ("active", "inclusive"):
                if name in query:
                    items = [i for i in items if bool(i[name]) == query[name]]
            return self._page(items, query, "/v1/tax_rates", "tax rate")
        if op == "RetrieveTaxRate":
            return copy.deepcopy(self._get(account.tax_rates, params[0], "tax rate", "tax_rate"))
        raise AssertionError(op)

    @staticmethod
    def _get(records: dict[str, dict], object_id: str, noun: str, param: str) -> dict:
        obj = records.get(object_id)
        if obj is None:
            raise StripeRequestError(
                404, f"No such {noun}: '{object_id}'", code="resource_missing", param=param
            )
        return obj

    @staticmethod
    def _page(items: list[dict], query: dict, url: str, noun: str, *, newest_first=True) -> dict:
        """Stripe's cursor pages: newest first (lines: in their order), ``limit`` (default 10),
        ``starting_after`` (the items after that id), ``ending_before`` (those just before it)."""
        if newest_first:
            ordered = sorted(
                enumerate(items), key=lambda pair: (pair[1]["created"], pair[0]), reverse=True
            )
            items = [item for _, item in ordered]
        limit = query.get("limit", 10)
        ids = [item["id"] for item in items]
        if "starting_after" in query:
            cursor = query["starting_after"]
            if cursor not in ids:
                raise StripeRequestError(
                    400,
                    f"No such {noun}: '{cursor}'",
                    code="resource_missing",
                    param="starting_after",
                )
            rest = items[ids.index(cursor) + 1 :]
            chosen, more = rest[:limit], len(rest) > limit
        elif "ending_before" in query:
            cursor = query["ending_before"]
            if cursor not in ids:
                raise StripeRequestError(
                    400,
                    f"No such {noun}: '{cursor}'",
                    code="resource_missing",
                    param="ending_before",
                )
            before = items[: ids.index(cursor)]
            chosen, more = before[-limit:], len(before) > limit
        else:
            chosen, more = items[:limit], len(items) > limit
        return {"object": "list", "data": copy.deepcopy(chosen), "has_more": more, "url": url}

    def _expanded(self, account: Account, obj: dict, paths: list[str]) -> dict:
        for path in paths:
            _expand(obj, path.split("."), lambda oid: self._lookup(account, oid))
        return obj

    @staticmethod
    def _lookup(account: Account, object_id: str) -> dict | None:
        for records in (account.customers, account.discounts, account.invoices, account.tax_rates):
            if object_id in records:
                return copy.deepcopy(records[object_id])
        return None

    def _pdf(self, method: str, path: str) -> tuple[str, Answer]:
        match = re.fullmatch(r"/files/(invoice|credit_note)/([^/]+)/([^/]+)/pdf", path)
        operation = (
            "InvoicePdf" if match is None or match.group(1) == "invoice" else "CreditNotePdf"
        )
        self.calls[operation] += 1
        account = self.accounts.get(match.group(2)) if match else None
        found = account.pdf_tokens.get(match.group(3)) if account and match else None
        if method != "GET" or found is None:
            if method != "GET":
                self.violations.append(
                    Violation(operation, method, path, ("PDFs are fetched with GET",))
                )
            return operation, Answer(404, {"Content-Type": "text/plain"}, b"Not Found")
        kind, object_id = found
        records = account.invoices if kind == "invoice" else account.credit_notes
        return operation, Answer(
            200,
            {"Content-Type": "application/pdf"},
            _pdf_bytes(records[object_id]["number"] or object_id),
        )


class Fraction_:
    """A share of a line (credit note quantity over the line's), rounded half up per amount."""

    def __init__(self, part: int, whole: int) -> None:
        self.part, self.whole = part, whole

    def of(self, amount: int) -> int:
        return _half_up(Decimal(amount) * self.part / self.whole)


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _integer(value: str, name: str) -> int:
    if not re.fullmatch(r"-?\d+", value):
        raise StripeRequestError(400, f"Invalid integer: {value}", param=name, violation=True)
    return int(value)


def _in_range(value: int | None, rng: dict[str, int] | None) -> bool:
    if not rng:
        return True
    if value is None:
        return False
    checks = {
        "eq": value == rng.get("eq", value),
        "gt": value > rng.get("gt", value - 1),
        "gte": value >= rng.get("gte", value),
        "lt": value < rng.get("lt", value + 1),
        "lte": value <= rng.get("lte", value),
    }
    return all(checks.values())


def _type_matches(event_type: str, pattern: str) -> bool:
    """``type`` accepts a ``*`` wildcard (``invoice.*``), as Stripe documents."""
    if "*" in pattern:
        return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), event_type) is not None
    return event_type == pattern


def _expand(obj: Any, parts: list[str], lookup: Callable[[str], dict | None]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(obj, list):
        for item in obj:
            _expand(item, parts, lookup)
        return
    if not isinstance(obj, dict) or head not in obj:
        return
    if not rest:
        value = obj[head]
        if isinstance(value, str):
            obj[head] = lookup(value) or value
        elif isinstance(value, list):
            obj[head] = [lookup(v) or v if isinstance(v, str) else v for v in value]
        return
    _expand(obj[head], rest, lookup)


def _pdf_bytes(title: str) -> bytes:
    """A small valid one-page PDF naming the document."""
    text = f"BT /F1 18 Tf 72 720 Td (Stripe fake {title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _handler(fake: StripeFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

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
