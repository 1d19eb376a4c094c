"""Stripe's invoices and credit notes as canonical invoices, read from the contract-validated fake
Stripe (``connectors/devtools/stripe_fake.py``: a local HTTP server that answers 400 and records a
violation for any request Stripe does not document). Each test builds the objects it reads and
asserts that the fake saw no violation."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from connectors.base import AuthKind, ConnectionConfig
from connectors.canonical import Direction, Invoice, InvoiceStatus, InvoiceType, TaxKind
from connectors.devtools.stripe_fake import Line, StripeFake
from connectors.errors import ErrorCode, InvsyncError
from connectors.oauth import StaticTokenSource
from connectors.outbound import OutboundPolicy
from connectors.providers.stripe.client import key_rate_limit
from connectors.providers.stripe.source import StripeSource, money
from mappings.flow_settings import vat_row_matching
from tests.connectors.contract import assert_no_secret

LOOPBACK = OutboundPolicy.from_allow_list(["127.0.0.1"])
SALES = [Direction.SALES]


def config(fake: StripeFake, key: str, **settings: str) -> ConnectionConfig:
    return ConnectionConfig(
        AuthKind.API_KEY,
        {"api_url": fake.api_url, "rate_limit": "10000/1", **settings},
        {"api_key": key},
        label="unit",
        outbound=LOOPBACK,
    )


@pytest.fixture(scope="module")
def stripe():
    with StripeFake(rate_limit=False) as fake:
        account = fake.add_account("Unit SAS")
        key = fake.keys.issue(account)
        fr = fake.add_customer(
            account,
            "Boulangerie Martin SAS",
            tax_ids=[("eu_vat", "FR40303265045"), ("fr_siren", "303265045")],
        )
        gb = fake.add_customer(
            account, "Thames Widgets Ltd", country="GB", tax_ids=[("gb_vat", "GB123456789")]
        )
        jp = fake.add_customer(account, "Sakura Trading KK", country="JP", currency="jpy")
        rates = {
            "fr20": fake.add_tax_rate(account, "20", display_name="TVA")["id"],
            "fr20i": fake.add_tax_rate(account, "20", inclusive=True, display_name="TVA")["id"],
            "jp10": fake.add_tax_rate(account, "10", country="JP", display_name="JCT")["id"],
        }
        yield fake, account, key, {"fr": fr, "gb": gb, "jp": jp}, rates


@pytest.fixture
def source(stripe):
    fake, _account, key, _customers, _rates = stripe
    seen = len(fake.violations)
    source = StripeSource(config(fake, key))
    yield source
    source.close()
    assert [str(v) for v in fake.violations[seen:]] == []


def read(source: StripeSource, source_id: str) -> Invoice:
    invoice = source.get_invoice(source_id)
    assert isinstance(invoice, Invoice), invoice
    return invoice


def test_an_inclusive_tax_line_books_its_net_amount_and_its_vat(stripe, source):
    fake, account, _key, customers, rates = stripe
    obj = fake.add_invoice(account, customers["fr"], [Line("Box", 12000, 1, [rates["fr20i"]])])

    invoice = read(source, obj["id"])

    [line] = invoice.lines
    assert (line.untaxed_amount, line.tax_amount, line.total) == (
        Decimal("100.00"),
        Decimal("20.00"),
        Decimal("120.00"),
    )
    assert (line.tax_rate, line.tax_id) == (Decimal(20), rates["fr20i"])
    assert (invoice.untaxed_amount, invoice.tax_amount, invoice.total) == (
        Decimal("100.00"),
        Decimal("20.00"),
        Decimal("120.00"),
    )
    [row] = invoice.taxes
    assert (row.base, row.amount, row.rate, row.tax_id) == (
        Decimal("100.00"),
        Decimal("20.00"),
        Decimal(20),
        rates["fr20i"],
    )


def test_a_yen_invoice_has_no_minor_unit(stripe, source):
    fake, account, _key, customers, rates = stripe
    obj = fake.add_invoice(
        account,
        customers["jp"],
        [Line("Tea", 12800, 2, [rates["jp10"]]), Line("Cup", 500, 1, [rates["jp10"]])],
        currency="jpy",
    )

    invoice = read(source, obj["id"])

    assert invoice.currency == "JPY"
    assert (invoice.untaxed_amount, invoice.tax_amount, invoice.total) == (
        Decimal(26100),
        Decimal(2610),
        Decimal(28710),
    )
    assert all(a.as_tuple().exponent == 0 for a in (invoice.total, invoice.lines[0].total))
    assert money(500, "jpy") == Decimal(500) and money(500, "eur") == Decimal("5.00")
    assert money(5000, "kwd") == Decimal("5.000") and money(500, "isk") == Decimal("5.00")


def test_discounts_of_a_line_and_of_the_invoice_are_the_lines_discounts(stripe, source):
    fake, account, _key, customers, rates = stripe
    obj = fake.add_invoice(
        account,
        customers["fr"],
        [
            Line("Bread", 10000, 1, [rates["fr20"]], discount=1000),
            Line("Cake", 5000, 1, [rates["fr20"]]),
        ],
        discount=1500,  # shared pro rata: 10.00 on the bread, 5.00 on the cake
    )

    invoice = read(source, obj["id"])

    bread, cake = invoice.lines
    assert (bread.discount_amount, bread.untaxed_amount, bread.tax_amount) == (
        Decimal("20.00"),
        Decimal("80.00"),
        Decimal("16.00"),
    )
    assert (cake.discount_amount, cake.untaxed_amount, cake.tax_amount) == (
        Decimal("5.00"),
        Decimal("45.00"),
        Decimal("9.00"),
    )
    assert bread.unit_price == Decimal(100)  # before its discount, without tax
    assert (invoice.untaxed_amount, invoice.tax_amount, invoice.total) == (
        Decimal("125.00"),
        Decimal("25.00"),
        Decimal("150.00"),
    )


def test_a_credit_note_is_a_refund_of_its_invoices_customer_with_positive_amounts(stripe, source):
    fake, account, _key, customers, rates = stripe
    obj = fake.add_invoice(
        account, customers["gb"], [Line("Widget", 4999, 2, [rates["fr20"]])], currency="gbp"
    )
    note = fake.add_credit_note(account, obj["id"], lines=[(obj["lines"]["data"][0]["id"], 1)])

    credit = read(source, note["id"])

    assert credit.type is InvoiceType.CUSTOMER_REFUND
    assert credit.number == note["number"] and credit.status is InvoiceStatus.FINAL
    assert (credit.untaxed_amount, credit.tax_amount, credit.total) == (
        Decimal("49.99"),
        Decimal("10.00"),
        Decimal("59.99"),
    )
    assert credit.partner is not None
    assert (credit.partner.name, credit.partner.vat_number) == ("Thames Widgets Ltd", "GB123456789")
    assert credit.has_attachment


def test_a_voided_invoice_is_cancelled_and_a_paid_one_final(stripe, source):
    fake, account, _key, customers, rates = stripe
    voided = fake.add_invoice(account, customers["fr"], [Line("X", 1000, 1, [rates["fr20"]])])
    fake.void(account, voided["id"])
    paid = fake.add_invoice(
        account, customers["fr"], [Line("Y", 1000, 1, [rates["fr20"]])], status="paid"
    )

    assert read(source, voided["id"]).status is InvoiceStatus.CANCELLED
    assert read(source, paid["id"]).status is InvoiceStatus.FINAL


def test_tax_ids_give_the_vat_number_and_the_company_number(stripe, source):
    fake, account, _key, customers, rates = stripe
    french = fake.add_invoice(account, customers["fr"], [Line("X", 1000, 1, [rates["fr20"]])])
    japanese = fake.add_invoice(
        account, customers["jp"], [Line("Y", 1000, 1, [rates["jp10"]])], currency="jpy"
    )

    partner = read(source, french["id"]).partner
    assert partner is not None
    assert (partner.source_id, partner.name) == (customers["fr"]["id"], "Boulangerie Martin SAS")
    assert (partner.vat_number, partner.company_number, partner.country) == (
        "FR40303265045",
        "303265045",
        "FR",
    )
    assert partner.email and partner.address and "Paris" in partner.address
    other = read(source, japanese["id"]).partner
    assert other is not None and (other.vat_number, other.company_number) == (None, None)


def test_a_line_without_tax_has_rate_zero_and_stripe_tax_reasons_give_the_kind(stripe, source):
    fake, account, _key, customers, _rates = stripe
    obj = fake.add_invoice(account, customers["fr"], [Line("Untaxed", 2500, 1)])

    [line] = read(source, obj["id"]).lines

    assert (line.tax_rate, line.tax_id, line.tax_amount) == (Decimal(0), None, Decimal(0))
    assert line.tax_kind is TaxKind.STANDARD


def test_the_listing_is_oldest_first_and_pdfs_are_fetched_only_when_asked(stripe, source):
    fake, _account, _key, _customers, _rates = stripe
    before = fake.calls["InvoicePdf"]

    items = list(source.iter_invoices(since=None, directions=SALES))

    invoices = [i for i in items if isinstance(i, Invoice)]
    assert invoices and len(invoices) == len(items)
    stamps = [i.updated_at for i in invoices]
    assert stamps == sorted(stamps)
    assert {i.type for i in invoices} == {InvoiceType.CUSTOMER_INVOICE, InvoiceType.CUSTOMER_REFUND}
    assert fake.calls["InvoicePdf"] == before
    assert list(source.iter_invoices(since=None, directions=[Direction.PURCHASES])) == []

    pdf = source.fetch_attachment(invoices[0])

    assert pdf.content.startswith(b"%PDF") and pdf.filename.endswith(".pdf")
    assert fake.calls["InvoicePdf"] == before + 1


def test_a_key_revoked_mid_listing_stops_it_with_authentication_failed_and_no_secret(stripe):
    fake, account, _key, customers, rates = stripe
    for n in range(6):
        fake.add_invoice(account, customers["fr"], [Line(f"Item {n}", 1000, 1, [rates["fr20"]])])
    key = fake.keys.issue(account, restricted=True)
    source = StripeSource(config(fake, key), page_size=2)
    listing = source.iter_invoices(since=None, directions=SALES)
    first = next(listing)
    assert isinstance(first, Invoice)

    fake.keys.revoke(key)
    with pytest.raises(InvsyncError) as caught:
        list(listing)

    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED
    assert_no_secret(key, caught.value)
    check = source.check_connection()
    assert not check.ok and check.code == ErrorCode.AUTHENTICATION_FAILED


def test_429_and_5xx_answers_are_retried_and_the_listing_completes():
    ticks = [0.0]

    def clock() -> float:
        ticks[0] += 0.2  # every request moves the fake's clock: a second passes in 5
        return ticks[0]

    with StripeFake(limit=3, clock=clock) as fake:
        account = fake.add_account("Busy SAS")
        key = fake.keys.issue(account)
        fake.generate(account, count=12)
        fake.fail_next(2, 503)
        source = StripeSource(
            config(fake, key, retry_attempts="20", retry_base_delay="0", retry_max_total_delay="1"),
            page_size=5,
        )

        items = list(source.iter_invoices(since=None, directions=SALES))

        statuses = [status for _op, status in fake.answers]
        assert 429 in statuses and 503 in statuses
        assert len([i for i in items if isinstance(i, Invoice)]) >= 12
        assert fake.violations == []


def test_the_rate_limit_is_stripes_for_the_keys_mode(stripe):
    assert key_rate_limit("sk_test_abc") == (25, 1.0)
    assert key_rate_limit("rk_test_abc") == (25, 1.0)
    assert key_rate_limit("sk_live_abc") == (100, 1.0)
    assert key_rate_limit("rk_live_abc") == (100, 1.0)

    asked = []

    class Windows:
        def window(self, key, limit, hold=None):
            asked.append(limit)
            return None

    fake = stripe[0]
    cfg = ConnectionConfig(
        AuthKind.API_KEY,
        {"api_url": fake.api_url},
        {"api_key": "sk_test_123"},
        rate_windows=Windows(),  # type: ignore[arg-type]
    )
    StripeSource(cfg).client  # noqa: B018 - builds the client
    assert asked == [(25, 1.0)]


def test_what_changed_since_the_last_run_comes_from_the_events_latest_state_first():
    base = int(dt.datetime.now(dt.UTC).timestamp()) - 3600
    now = [base]
    with StripeFake(rate_limit=False, now=lambda: now[0]) as fake:
        account = fake.add_account("Events SAS")
        key = fake.keys.issue(account)
        customer = fake.add_customer(account, "Client SA", tax_ids=[("eu_vat", "FR40303265045")])
        rate = fake.add_tax_rate(account, "20")["id"]
        kept = fake.add_invoice(account, customer, [Line("Kept", 1000, 1, [rate])])
        later_void = fake.add_invoice(account, customer, [Line("Voided", 2000, 1, [rate])])
        source = StripeSource(config(fake, key), clock=lambda: now[0] + 1)
        first = list(source.iter_invoices(since=None, directions=SALES))
        cursor = max(i.updated_at for i in first if i.updated_at)

        now[0] = base + 600
        fake.void(account, later_void["id"])
        new = fake.add_invoice(account, customer, [Line("New", 3000, 1, [rate])])
        quick = fake.add_invoice(account, customer, [Line("Quick", 4000, 1, [rate])])
        fake.void(account, quick["id"])  # finalized and voided between two runs
        fake.reset_counts()

        changed = list(
            source.iter_invoices(since=cursor + dt.timedelta(seconds=1), directions=SALES)
        )

        by_id = {i.source_id: i for i in changed}
        assert fake.calls["ListEvents"] >= 1 and fake.calls["ListInvoices"] == 0
        assert kept["id"] not in by_id
        assert by_id[later_void["id"]].status is InvoiceStatus.CANCELLED
        assert by_id[new["id"]].status is InvoiceStatus.FINAL
        assert by_id[quick["id"]].status is InvoiceStatus.CANCELLED
        assert [i.source_id for i in changed].count(quick["id"]) == 1
        assert fake.violations == []


def test_a_platform_key_reads_a_connected_account_through_stripe_account(stripe):
    fake = stripe[0]
    platform = fake.add_account("Platform Inc")
    connected = fake.add_account("Connected SARL")
    customer = fake.add_customer(connected, "Client")
    invoice = fake.add_invoice(connected, customer, [Line("Z", 1000, 1)])
    fake.connect(platform, connected)
    key = fake.keys.issue(platform)
    source = StripeSource(config(fake, key, company_id=connected.id))

    assert read(source, invoice["id"]).source_id == invoice["id"]
    assert StripeSource.account_identity({"company_id": connected.id}).endswith(connected.id)

    fake.disconnect(platform, connected)
    with pytest.raises(InvsyncError) as caught:
        source.get_invoice(invoice["id"])
    assert caught.value.code == ErrorCode.PERMISSION_DENIED


@pytest.mark.parametrize("page_size", [1, 4, 100])
def test_every_document_is_listed_once_oldest_first_whatever_the_page_size(page_size):
    now = [1_767_225_600]
    with StripeFake(rate_limit=False, now=lambda: now[0]) as fake:
        account = fake.add_account("Pages SAS")
        key = fake.keys.issue(account)
        customer = fake.add_customer(account, "Client SA")
        for n in range(30):
            now[0] += 0 if n % 5 else 3 * 86400  # bursts of five in one second, days apart
            invoice = fake.add_invoice(account, customer, [Line(f"Item {n}", 1000 + n, 1)])
            if n % 9 == 4:
                fake.add_credit_note(account, invoice["id"])
        fake.add_invoice(account, customer, [Line("Draft", 100, 1)], status="draft")
        source = StripeSource(config(fake, key), page_size=page_size, clock=lambda: now[0] + 1)

        listed = list(source.iter_invoices(since=None, directions=SALES))

        expected = {i for i, obj in account.invoices.items() if obj["status"] != "draft"}
        expected |= set(account.credit_notes)
        ids = [item.source_id for item in listed]
        assert sorted(ids) == sorted(expected)
        stamps = [item.updated_at for item in listed]
        assert stamps == sorted(stamps)
        assert fake.violations == []


def test_a_stripe_connect_connection_sends_its_token_and_the_connected_account(stripe):
    fake = stripe[0]
    platform = fake.add_account("Platform OAuth Inc")
    connected = fake.add_account("Connected OAuth SARL")
    invoice = fake.add_invoice(connected, fake.add_customer(connected, "C"), [Line("Z", 500, 1)])
    fake.connect(platform, connected)
    token = fake.keys.issue(platform)
    cfg = ConnectionConfig(
        AuthKind.OAUTH2,
        {"api_url": fake.api_url, "company_id": connected.id, "rate_limit": "10000/1"},
        {},
        outbound=LOOPBACK,
        tokens=StaticTokenSource(token),
    )
    source = StripeSource(cfg)

    assert read(source, invoice["id"]).source_id == invoice["id"]
    _method, _target, headers = fake.requests[-1]
    sent = {k.lower(): v for k, v in headers.items()}
    assert sent["authorization"] == f"Bearer {token}"
    assert sent["stripe-account"] == connected.id
    assert sent["stripe-version"] == "2025-03-31.basil"
    not_connected = StripeSource(replace(cfg, tokens=None))
    assert not not_connected.check_connection().ok


# -- tax rates for the VAT mapping -------------------------------------------------------------


def mapped_by(rows, line_or_row):
    """The listed row a person maps that a line (or a breakdown row) is posted with: the engine's
    own rule (a row naming its tax id, else a row without tax id for its rate)."""
    rate = getattr(line_or_row, "tax_rate", getattr(line_or_row, "rate", None))
    return vat_row_matching(rows, tax_id=line_or_row.tax_id, rate=rate)


def test_tax_rates_are_listed_from_stripe_with_stripe_tax_s_own_rates_once_per_rate():
    with StripeFake(rate_limit=False) as fake:
        account = fake.add_account("Rates SAS")
        manual = fake.add_tax_rate(account, "5.5", display_name="TVA")
        inclusive = fake.add_tax_rate(account, "20", inclusive=True, display_name="TVA TTC")
        for _ in range(3):  # Stripe Tax creates a rate as it calculates: three ids, one rate
            fake.add_tax_rate(account, "20", automatic=True)
        source = StripeSource(config(fake, fake.keys.issue(account)))
        try:
            rates = source.list_tax_rates()
        finally:
            source.close()
        fake.assert_no_violations()
        assert fake.calls["ListTaxRates"] == 1  # one page of 100 holds the five rates

    by_id = {r.tax_id: r for r in rates}
    assert by_id[manual["id"]].rate == Decimal("5.5")
    assert by_id[inclusive["id"]].name == "TVA TTC 20.0 % incl. FR"
    assert [(r.rate, r.name) for r in rates if r.tax_id is None] == [
        (Decimal(0), "No tax rate on the line"),
        (Decimal(20), "Stripe Tax 20 %"),
    ]
    # The account uses Stripe Tax: its amounts without a tax rate object can be mapped too.
    assert {r.tax_id: r.kind for r in rates if (r.tax_id or "").startswith("stripe_tax:")} == {
        "stripe_tax:standard_rated": TaxKind.STANDARD,
        "stripe_tax:reduced_rated": TaxKind.STANDARD,
        "stripe_tax:zero_rated": TaxKind.ZERO,
        "stripe_tax:reverse_charge": TaxKind.REVERSE_CHARGE,
    }


def test_stripe_tax_amounts_with_or_without_a_tax_rate_object_map_to_a_listed_row(stripe, source):
    fake, account, _key, customers, _rates = stripe
    automatic = fake.add_tax_rate(account, "20", automatic=True)
    obj = fake.add_invoice(
        account,
        customers["fr"],
        [Line("Calculated", 7300, 1, [automatic["id"]]), Line("Also", 1100, 1, [automatic["id"]])],
        automatic_tax=True,
    )
    # Stripe Tax's second amount comes without a tax rate object (tax_rate_details null).
    stored = account.invoices[obj["id"]]
    for lines in (stored["lines"]["data"], account.invoice_lines[obj["id"]]):
        lines[1]["taxes"][0]["tax_rate_details"] = None
    (row,) = stored["total_taxes"]  # 20 % of 73.00 + 11.00
    stored["total_taxes"] = [
        {**row, "amount": 1460, "taxable_amount": 7300},
        {**row, "amount": 220, "taxable_amount": 1100, "tax_rate_details": None},
    ]

    invoice = read(source, obj["id"])
    rows = source.list_tax_rates()

    first, second = invoice.lines
    assert (first.tax_id, first.tax_rate) == (automatic["id"], Decimal(20))
    assert (second.tax_id, second.tax_rate, second.tax_amount) == (
        "stripe_tax:standard_rated", None, Decimal("2.20")
    )  # fmt: skip
    assert mapped_by(rows, first).name == "Stripe Tax 20 %"  # by its rate
    assert mapped_by(rows, second).tax_id == "stripe_tax:standard_rated"  # by its own id
    assert [mapped_by(rows, row) is not None for row in invoice.taxes] == [True, True]
