"""Stripe into a live Tryton accounting: StripeSource (registry key ``stripe``) reading the
contract-validated fake Stripe (``connectors/devtools/stripe_fake.py``), TrytonTarget writing to a
fresh accounting copy, through ``flow_sync`` as a person or the scheduler runs it. One first run
of a few hundred invoices over several pages, then a few small runs (a key revoked mid-run, 429s
with retries). Every test asserts that the fake saw no contract violation. The mapping
suggestions read the connector's own listing of the tax rates (Stripe's "List all tax rates"):
the rates a person picked by id, Stripe Tax's own ones by rate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from connectors.canonical import Direction
from connectors.devtools.stripe_fake import Line, StripeFake
from connectors.errors import ErrorCode
from connectors.models import Connection
from connectors.providers.stripe.client import StripeClient
from connectors.selectors import connector_for
from mappings.models import SyncFlow, VatMapping
from mappings.services import flow_mappings_suggest
from syncs.models import RecordStatus, RunStatus, SyncedRecord
from syncs.services import flow_sync
from tests.factories import ClientFactory
from tests.integration.test_tryton_sync import _rows, tryton_moves

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]

DURAND_VAT = "FR81534567896"  # Durand et associés (cabinet): a party of the accounting (id 3)


@pytest.fixture
def ticks():
    return [0.0]


@pytest.fixture
def fake(ticks):
    def clock() -> float:
        ticks[0] += 0.2  # every request moves the fake's rate-limit clock (no sleeping)
        return ticks[0]

    with StripeFake(rate_limit=False, clock=clock) as fake:
        yield fake
        fake.assert_no_violations()


@pytest.fixture
def account(fake):
    return fake.add_account("Atelier Démo SAS")


def stripe_flow(fake, account, accounting, key: str) -> SyncFlow:
    client = ClientFactory()
    source = Connection.objects.create(
        client=client, name="Stripe", kind="invoicing", provider="stripe", auth_kind="api_key",
        settings={"api_url": fake.api_url, "rate_limit": "1000/1", "retry_base_delay": "0.01",
                  "retry_attempts": "8"},
        credentials={"api_key": key},
    )  # fmt: skip
    target = Connection.objects.create(
        client=client, name="Accounting", kind="accounting", provider="tryton",
        auth_kind="credentials", settings=accounting.settings, credentials=accounting.credentials,
    )  # fmt: skip
    flow = SyncFlow.objects.create(
        client=client, name="Stripe flow", invoicing_connection=source,
        accounting_connection=target, enabled=True,
    )  # fmt: skip
    flow_mappings_suggest(flow=flow)
    flow = SyncFlow.objects.get(pk=flow.pk)
    map_rates_left_open(flow, account)
    return flow


def map_rates_left_open(flow: SyncFlow, account) -> None:
    """The Stripe rates the suggestion left open (account_fr has several sales taxes of one rate:
    goods and services), mapped as a person would: to the goods tax of that rate; a rate picked
    in Stripe by its id, Stripe Tax's own rates by their rate (as the listing offers them)."""
    target = connector_for(flow.accounting_connection)
    try:
        codes = target.list_vat_codes(flow.folder)
    finally:
        target.close()
    for rate in account.tax_rates.values():
        percentage = D(str(rate["percentage"]))
        by_rate = rate["jurisdiction_level"] is not None  # Stripe Tax's own
        mapped = flow.vat_mappings.filter(direction="sales")
        if (
            mapped.filter(source_tax_id="", source_rate=percentage).exists()
            if by_rate
            else mapped.filter(source_tax_id=rate["id"]).exists()
        ):
            continue
        fitting = sorted(
            (
                code
                for code in codes
                if code.rate == percentage
                and code.direction in (None, Direction.SALES)
                and "intra" not in code.name.lower()
            ),
            key=lambda code: ("bien" not in code.name.lower(), code.code),
        )
        if fitting:
            VatMapping.objects.create(
                flow=flow,
                direction="sales",
                source_rate=percentage if by_rate else None,
                source_tax_id="" if by_rate else rate["id"],
                target_code=fitting[0].code,
            )


def add_tryton_currency(db, code: str, name: str, symbol: str, *, rate: D, date) -> int:
    """A currency without decimals in the accounting, with its rate (units per euro) from
    ``date``."""
    day = {"__class__": "date", "year": date.year, "month": date.month, "day": date.day}
    values = {
        "name": name,
        "code": code,
        "symbol": symbol,
        "digits": 0,
        "rounding": {"__class__": "Decimal", "decimal": "1"},
        "rates": [
            ["create", [{"date": day, "rate": {"__class__": "Decimal", "decimal": str(rate)}}]]
        ],
    }
    (currency,) = db.call("model.currency.currency.create", [[values]], context=True)
    return currency


def run(flow: SyncFlow):
    return flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")


def balanced(move) -> D:
    debit = sum((line["debit"] for line in move["lines"]), D(0))
    credit = sum((line["credit"] for line in move["lines"]), D(0))
    assert debit == credit, move["description"]
    return debit


def test_a_first_run_books_hundreds_of_stripe_invoices_with_their_pdfs_and_customers(
    fake, account, tryton_accounting
):
    rates = {
        "20": fake.add_tax_rate(account, "20", display_name="TVA")["id"],
        "5.5": fake.add_tax_rate(account, "5.5", display_name="TVA")["id"],
        "20i": fake.add_tax_rate(account, "20", inclusive=True, display_name="TVA TTC")["id"],
        "jp10": fake.add_tax_rate(account, "10", country="JP", display_name="JCT")["id"],
        "auto": fake.add_tax_rate(account, "20", automatic=True)["id"],  # Stripe Tax's own
    }
    durand = fake.add_customer(
        account, "Cabinet Durand", tax_ids=[("eu_vat", DURAND_VAT), ("fr_siren", "534567896")]
    )
    thames = fake.add_customer(
        account, "Thames Widgets Ltd", country="GB", tax_ids=[("gb_vat", "GB123456789")]
    )
    plans = [
        (durand, [Line("Conseil", 15000, 1, [rates["20"]]),
                  Line("Livre", 2000, 2, [rates["5.5"]])]),
        (thames, [Line("Widget", 4999, 3, [rates["20"]], discount=500)]),
        (durand, [Line("Forfait TTC", 12000, 1, [rates["20i"]])]),
        (durand, [Line("Abonnement", 7300, 1, [rates["auto"]])]),  # Stripe Tax calculated
    ]  # fmt: skip
    invoices = []
    for n in range(200):
        customer, lines = plans[n % len(plans)]
        invoice = fake.add_invoice(
            account, customer, lines, discount=1000 if n % 8 == 5 else 0, currency="eur",
            automatic_tax=n % len(plans) == 3,
        )  # fmt: skip
        invoices.append(invoice)
    voided = invoices[9]
    fake.void(account, voided["id"])
    note = fake.add_credit_note(
        account, invoices[1]["id"], lines=[(invoices[1]["lines"]["data"][0]["id"], 1)]
    )
    yen = fake.add_invoice(
        account,
        fake.add_customer(account, "Sakura Trading KK", country="JP", currency="jpy"),
        [Line("Tea", 12800, 2, [rates["jp10"]])],
        currency="jpy",
    )
    # Stripe states no exchange rate: the accounting's own yen rate on the invoice's date is
    # taken (160 yen per euro, Tryton's rates being per unit of the company's euro).
    yen_date = dt.datetime.fromtimestamp(yen["created"], dt.UTC).date()
    add_tryton_currency(tryton_accounting, "JPY", "Yen", "¥", rate=D(160), date=yen_date)
    key = fake.keys.issue(account, restricted=True)
    flow = stripe_flow(fake, account, tryton_accounting, key)
    fake.reset_counts()

    result = run(flow)

    assert result.status == RunStatus.SUCCEEDED, (result.error_code, result.error_message)
    records = {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}
    assert len(records) == 202
    failed = [r for r in records.values() if r.status == RecordStatus.FAILED]
    assert not failed, {(r.error_code, r.error_message) for r in failed}
    moves = tryton_moves(tryton_accounting)
    booked = [i for i in invoices if i["id"] != voided["id"]]
    assert set(moves) == {i["number"] for i in booked} | {note["number"], yen["number"]}
    for invoice in booked:
        move = moves[invoice["number"]]
        assert balanced(move) == D(invoice["total"]) / 100, invoice["number"]
        assert move["attachments"] == 1, invoice["number"]  # the invoice's PDF
    # An inclusive-tax invoice: 100.00 net on revenue, 20.00 on the collected VAT account.
    inclusive = moves[invoices[2]["number"]]
    vat = sum(
        (row["credit"] for row in inclusive["lines"] if row["account.code"].startswith("445")), D(0)
    )
    assert (balanced(inclusive), vat) == (D("120.00"), D("20.00"))
    # A Stripe Tax invoice: Stripe's own rate mapped by its rate (no person picked its id).
    taxed = moves[invoices[3]["number"]]
    vat = sum(
        (row["credit"] for row in taxed["lines"] if row["account.code"].startswith("445")), D(0)
    )
    assert (balanced(taxed), vat) == (D("87.60"), D("14.60"))
    assert not flow.vat_mappings.filter(source_tax_id=rates["auto"]).exists()
    # The credit note: the customer's account credited with the note's total.
    refund = moves[note["number"]]
    customer_side = [row for row in refund["lines"] if row["party"]]
    assert (
        sum((row["credit"] - row["debit"] for row in customer_side), D(0)) == D(note["total"]) / 100
    )
    # The voided invoice was never posted: skipped, nothing written.
    assert records[voided["id"]].status == RecordStatus.SKIPPED
    # Matched by VAT number: Durand's entries are on the accounting's own party 3; Thames Widgets
    # did not exist there and was created once, with its VAT number.
    durand_parties = {
        row["party"] for i in booked if i["customer"] == durand["id"]
        for row in moves[i["number"]]["lines"] if row["party"]
    }  # fmt: skip
    assert durand_parties == {3}
    created = _rows(
        tryton_accounting, "party.party", [("name", "=", "Thames Widgets Ltd")],
        ["identifiers.code"],
    )  # fmt: skip
    assert len(created) == 1
    # The yen invoice is read in whole yen (25,600 + 2,560 JCT) and booked at the accounting's
    # rate: 28,160 yen at 1/160 = 176.00 euros, the yen amounts kept as the second currency.
    assert records[yen["id"]].status == RecordStatus.SYNCED
    assert records[yen["id"]].total == D(25600) + D(2560)
    assert D(records[yen["id"]].snapshot["exchange_rate"]) == D("0.00625")
    yen_move = moves[yen["number"]]
    assert balanced(yen_move) == D("176.00")
    jpy = _rows(tryton_accounting, "currency.currency", [("code", "=", "JPY")], ["id"])[0]["id"]
    by_amount = sorted(
        (abs(row["amount_second_currency"]), row["debit"] + row["credit"], row["second_currency"])
        for row in yen_move["lines"]
    )
    assert by_amount == [(D(2560), D("16.00"), jpy), (D(25600), D("160.00"), jpy),
                         (D(28160), D("176.00"), jpy)]  # fmt: skip
    # Several pages, and one PDF download per pushed document.
    assert fake.calls["ListInvoices"] >= 3
    assert fake.calls["InvoicePdf"] + fake.calls["CreditNotePdf"] == len(booked) + 2


def test_a_key_revoked_mid_run_stops_it_and_429s_are_retried_without_losing_an_invoice(
    fake, account, ticks, tryton_accounting, monkeypatch
):
    rate = fake.add_tax_rate(account, "20", display_name="TVA")["id"]
    customer = fake.add_customer(account, "Cabinet Durand", tax_ids=[("eu_vat", DURAND_VAT)])
    invoices = [
        fake.add_invoice(account, customer, [Line(f"Mission {n}", 10000 + n, 1, [rate])])
        for n in range(8)
    ]
    key = fake.keys.issue(account)
    flow = stripe_flow(fake, account, tryton_accounting, key)

    # The key is revoked while the run lists the invoices (after its second call).
    calls = []
    original = StripeClient.get

    def get(self, path, params=None):
        calls.append(path)
        if len(calls) == 3:
            fake.keys.revoke(key)
        return original(self, path, params)

    monkeypatch.setattr(StripeClient, "get", get)
    stopped = run(flow)
    monkeypatch.setattr(StripeClient, "get", original)

    assert stopped.status == RunStatus.FAILED
    assert stopped.error_code == ErrorCode.AUTHENTICATION_FAILED
    assert key not in (stopped.error_message or "")
    assert not SyncedRecord.objects.filter(flow=flow, status=RecordStatus.SYNCED).exists()

    # A new key, and Stripe rate-limiting (2 operations per second): every invoice is booked.
    connection = flow.invoicing_connection
    connection.credentials = {"api_key": fake.keys.issue(account)}
    connection.save()
    fake.rate_limit, fake.limit = True, 2
    resumed = run(flow)

    assert resumed.status == RunStatus.SUCCEEDED, (resumed.error_code, resumed.error_message)
    assert 429 in [status for _operation, status in fake.answers]
    moves = tryton_moves(tryton_accounting)
    assert set(moves) == {i["number"] for i in invoices}
    assert all(m["attachments"] == 1 for m in moves.values())
