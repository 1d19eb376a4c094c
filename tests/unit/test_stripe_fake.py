"""The fake Stripe keeps Stripe's documented contract (tests/contracts/stripe): pages, filters,
errors in Stripe's shape with violations recorded, keys, Connect, the rate limit, amounts."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from connectors.devtools.stripe_fake import Line, StripeFake, load_fixtures


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def fake(clock):
    with StripeFake(clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def acct(fake):
    account = fake.add_account("Acme SAS")
    fake.generate(account, count=250)
    return account


@pytest.fixture(scope="module")
def key(fake, acct):
    return fake.keys.issue(acct)


@pytest.fixture(autouse=True)
def fresh(fake, clock):
    clock.now += 5.0  # a new rate-limit second for every test
    fake.violations.clear()
    yield


def call(fake, path, key=None, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = path if path.startswith("http") else fake.api_url + path
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            kind = response.headers["Content-Type"]
            return (
                response.status,
                json.loads(body) if kind == "application/json" else body,
                dict(response.headers),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_invoices_page_by_100_newest_first_with_starting_after(fake, acct, key):
    seen, pages, cursor = [], 0, None
    while True:
        path = "/v1/invoices?limit=100" + (f"&starting_after={cursor}" if cursor else "")
        status, page, _ = call(fake, path, key)
        assert status == 200 and page["object"] == "list" and page["url"] == "/v1/invoices"
        seen += page["data"]
        pages += 1
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert pages == 3 and len(seen) == 250 == len({i["id"] for i in seen})
    created = [i["created"] for i in seen]
    assert created == sorted(created, reverse=True)
    status, before, _ = call(fake, f"/v1/invoices?limit=5&ending_before={seen[10]['id']}", key)
    assert [i["id"] for i in before["data"]] == [i["id"] for i in seen[5:10]]
    assert fake.violations == []


def test_created_and_status_filters_and_indexed_arrays(fake, acct, key):
    invoices = sorted(acct.invoices.values(), key=lambda i: i["created"])
    middle = invoices[100]["created"]
    status, page, _ = call(fake, f"/v1/invoices?limit=100&created[gt]={middle}&status=void", key)
    assert status == 200 and page["data"]
    assert all(i["created"] > middle and i["status"] == "void" for i in page["data"])
    status, page, _ = call(fake, "/v1/invoices?limit=3&expand[0]=data.customer", key)
    assert status == 200 and page["data"][0]["customer"]["object"] == "customer"
    assert fake.violations == []


def test_tax_rates_are_listed_newest_first_by_active_inclusive_and_created(fake, key):
    status, page, _ = call(fake, "/v1/tax_rates?limit=100", key)
    assert status == 200 and page["url"] == "/v1/tax_rates" and not page["has_more"]
    assert len(page["data"]) == 7  # generate()'s rates, Stripe Tax's own among them
    created = [r["created"] for r in page["data"]]
    assert created == sorted(created, reverse=True)
    _, inclusive, _ = call(fake, "/v1/tax_rates?inclusive=true&active=true", key)
    assert [r["inclusive"] for r in inclusive["data"]] == [True]
    _, none, _ = call(fake, "/v1/tax_rates?active=false", key)
    assert none["data"] == []
    oldest = min(created)
    _, later, _ = call(fake, f"/v1/tax_rates?created[gt]={oldest}&limit=2", key)
    assert len(later["data"]) == 2 and later["has_more"]
    _, rest, _ = call(fake, f"/v1/tax_rates?starting_after={later['data'][-1]['id']}", key)
    assert len(rest["data"]) == 5
    assert fake.violations == []


@pytest.mark.parametrize(
    ("path", "status", "param"),
    [
        ("/v1/invoices?page=2", 400, "page"),
        ("/v1/invoices?limit=101", 400, "limit"),
        ("/v1/invoices?created[since]=1", 400, "created[since]"),
        ("/v1/invoices?status=finalized", 400, "status"),
        ("/v1/invoices?starting_after=in_1&ending_before=in_2", 400, None),
        ("/v1/events?type=invoice.voided&types[]=invoice.finalized", 400, None),
        ("/v1/invoices?expand[]=data.charge", 400, "expand"),
        ("/v1/tax_rates?percentage=20", 400, "percentage"),
        ("/v1/tax_rates?active=yes", 400, "active"),
        ("/v1/invoice", 404, None),
    ],
)
def test_a_request_off_the_contract_is_refused_in_stripes_shape_and_recorded(
    fake, acct, key, path, status, param
):
    answer_status, body, _ = call(fake, path, key)
    assert answer_status == status
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    assert body["error"].get("param") == param
    assert len(fake.violations) == 1


def test_idempotency_key_on_a_get_is_a_violation(fake, acct, key):
    status, _, _ = call(fake, "/v1/account", key, **{"Idempotency-Key": "abc"})
    assert status == 400 and len(fake.violations) == 1


def test_a_malformed_stripe_version_is_a_violation_a_pinned_one_is_not(fake, acct, key):
    assert call(fake, "/v1/account", key, **{"Stripe-Version": "2025-03-31.basil"})[0] == 200
    assert fake.violations == []
    assert call(fake, "/v1/account", key, **{"Stripe-Version": "latest"})[0] == 400
    assert len(fake.violations) == 1


def test_a_missing_object_is_404_resource_missing_not_a_violation(fake, acct, key):
    status, body, _ = call(fake, "/v1/invoices/in_nothing", key)
    assert status == 404 and body["error"]["code"] == "resource_missing"
    assert fake.violations == []


def test_a_revoked_key_answers_401_api_key_expired_without_the_key(fake, acct):
    key = fake.keys.issue(acct, restricted=True)
    assert key.startswith("rk_test_")
    assert call(fake, "/v1/account", key)[0] == 200
    fake.keys.revoke(key)
    status, body, _headers = call(fake, "/v1/account", key)
    assert status == 401 and body["error"]["code"] == "api_key_expired"
    assert key not in json.dumps(body) and key[-4:] in body["error"]["message"]
    status, body, _ = call(fake, "/v1/account")
    assert status == 401 and len(fake.violations) == 1  # no key at all


def test_rate_limit_25_per_second_answers_429_rate_limit_without_retry_after(fake, clock):
    account = fake.add_account("Busy SARL")
    key = fake.keys.issue(account)
    statuses = [call(fake, "/v1/account", key)[0] for _ in range(25)]
    assert statuses == [200] * 25
    status, body, headers = call(fake, "/v1/account", key)
    assert status == 429 and body["error"]["code"] == "rate_limit"
    assert "Retry-After" not in headers
    clock.now += 1.0
    assert call(fake, "/v1/account", key)[0] == 200


def test_5xx_burst_then_back(fake, acct, key):
    fake.fail_next(2, status=500)
    first, second, third = (call(fake, "/v1/account", key) for _ in range(3))
    assert first[0] == second[0] == 500 and first[1]["error"]["type"] == "api_error"
    assert first[2]["Stripe-Should-Retry"] == "true"
    assert third[0] == 200


def test_connect_platform_key_acts_on_a_connected_account_until_deauthorized(fake, acct):
    platform = fake.add_account("Platform Ltd", country="GB")
    platform_key = fake.keys.issue(platform)
    header = {"Stripe-Account": acct.id}
    assert call(fake, "/v1/account", platform_key, **header)[1].get("error")["code"] == (
        "account_invalid"
    )
    fake.connect(platform, acct)
    status, account, _ = call(fake, "/v1/account", platform_key, **header)
    assert status == 200 and account["id"] == acct.id
    assert call(fake, "/v1/account", platform_key)[1]["id"] == platform.id
    fake.disconnect(platform, acct)
    assert call(fake, "/v1/account", platform_key, **header)[0] == 403


def test_objects_keep_every_field_of_stripes_examples(fake, acct, key):
    examples = load_fixtures()
    invoice = call(fake, "/v1/invoices?limit=1", key)[1]["data"][0]
    assert set(examples["invoice"]) <= set(invoice)
    note = call(fake, "/v1/credit_notes?limit=1", key)[1]["data"][0]
    assert set(examples["credit_note"]) <= set(note)
    customer = call(fake, f"/v1/customers/{invoice['customer']}", key)[1]
    assert set(examples["customer"]) <= set(customer)


def test_invoice_totals_add_up_with_discounts_and_both_tax_behaviours(fake, acct):
    for invoice in acct.invoices.values():
        lines = acct.invoice_lines[invoice["id"]]
        discounts = sum(d["amount"] for line in lines for d in line["discount_amounts"])
        exclusive = sum(
            t["amount"] for line in lines for t in line["taxes"] if t["tax_behavior"] == "exclusive"
        )
        assert invoice["total"] == sum(line["amount"] for line in lines) - discounts + exclusive
        assert sum(d["amount"] for d in invoice["total_discount_amounts"]) == discounts
        assert sum(t["amount"] for t in invoice["total_taxes"]) == sum(
            t["amount"] for line in lines for t in line["taxes"]
        )
    kinds = {
        (i["currency"], i["automatic_tax"]["enabled"], i["status"]) for i in acct.invoices.values()
    }
    assert {c for c, _, _ in kinds} == {"eur", "gbp", "jpy", "usd"}
    assert any(auto for _, auto, _ in kinds)
    assert {s for _, _, s in kinds} >= {"open", "paid", "void", "uncollectible"}


def test_inclusive_tax_and_zero_decimal_currency_by_hand(fake):
    account = fake.add_account("Tokyo KK", country="JP", default_currency="jpy")
    key = fake.keys.issue(account)
    inclusive = fake.add_tax_rate(account, "10", inclusive=True, country="JP")
    customer = fake.add_customer(account, "Sakura", country="JP")
    invoice = fake.add_invoice(
        account, customer, [Line("Tea", 1100, quantity=3, tax_rates=[inclusive["id"]])]
    )
    line = invoice["lines"]["data"][0]
    assert invoice["currency"] == "jpy" and invoice["total"] == 3300  # yen: no minor unit
    assert line["taxes"][0] == {
        "amount": 300,
        "tax_behavior": "inclusive",
        "tax_rate_details": {"tax_rate": inclusive["id"]},
        "taxability_reason": "standard_rated",
        "taxable_amount": 3000,
        "type": "tax_rate_details",
    }
    assert invoice["total_excluding_tax"] == 3000
    rate = call(fake, f"/v1/tax_rates/{inclusive['id']}", key)[1]
    assert rate["inclusive"] is True and Decimal(str(rate["percentage"])) == 10


def test_invoice_lines_beyond_ten_come_from_the_lines_endpoint(fake):
    account = fake.add_account("Many Lines SAS")
    key = fake.keys.issue(account)
    customer = fake.add_customer(account, "Client", tax_ids=[("gb_vat", "GB123456789")])
    invoice = fake.add_invoice(account, customer, [Line(f"L{n}", 100) for n in range(13)])
    _status, got, _ = call(fake, f"/v1/invoices/{invoice['id']}", key)
    assert got["lines"]["has_more"] is True and len(got["lines"]["data"]) == 10
    page = call(fake, f"/v1/invoices/{invoice['id']}/lines?limit=100", key)[1]
    assert [line["description"] for line in page["data"]] == [f"L{n}" for n in range(13)]
    cus = call(fake, f"/v1/customers/{customer['id']}?expand[]=tax_ids", key)[1]
    assert [(t["type"], t["value"]) for t in cus["tax_ids"]["data"]] == [("gb_vat", "GB123456789")]
    assert got["customer_tax_ids"] == [{"type": "gb_vat", "value": "GB123456789"}]
    assert fake.violations == []


def test_credit_notes_by_invoice_with_lines_and_the_pdf(fake, acct, key):
    note = next(iter(acct.credit_notes.values()))
    status, page, _ = call(fake, f"/v1/credit_notes?invoice={note['invoice']}", key)
    assert [n["id"] for n in page["data"]] == [note["id"]]
    lines = call(fake, f"/v1/credit_notes/{note['id']}/lines", key)[1]["data"]
    assert lines[0]["type"] == "invoice_line_item" and lines[0]["invoice_line_item"]
    status, pdf, headers = call(fake, note["pdf"])
    assert (
        status == 200 and pdf.startswith(b"%PDF") and headers["Content-Type"] == "application/pdf"
    )
    invoice = acct.invoices[note["invoice"]]
    before = fake.calls["InvoicePdf"]
    assert call(fake, invoice["invoice_pdf"])[0] == 200
    assert fake.calls["InvoicePdf"] == before + 1


def test_events_by_type_wildcard_and_types(fake, acct, key):
    voided = call(fake, "/v1/events?types[]=invoice.voided&limit=100", key)[1]["data"]
    assert voided and {e["type"] for e in voided} == {"invoice.voided"}
    assert len(voided) == sum(1 for i in acct.invoices.values() if i["status"] == "void")
    some = call(fake, "/v1/events?type=credit_note.*&limit=100", key)[1]["data"]
    assert {e["type"] for e in some} == {"credit_note.created"}
    event = fake.event_for(acct, "invoice.voided", voided[0]["data"]["object"]["id"])
    assert call(fake, f"/v1/events/{event['id']}", key)[1]["id"] == event["id"]


def test_signed_delivery_is_an_hmac_of_timestamp_dot_body_with_each_secret(fake, acct):
    event = next(iter(acct.events.values()))
    body, headers = fake.signed(event, "whsec_one", timestamp=1_800_000_000, extra_secrets=["two"])
    parts = headers["Stripe-Signature"].split(",")
    assert parts[0] == "t=1800000000"
    expected = [
        hmac.new(secret.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
        for secret in ("whsec_one", "two")
    ]
    assert parts[1:] == [f"v1={sig}" for sig in expected]
