"""The company currency comes from the live Tryton company: choosing the folder takes it, and a move
for a flow that believes in another currency is refused before anything is written (Tryton would
read its debits and credits as its own currency). Foreign-currency moves state both amounts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from connectors.canonical import InvoiceType, Partner
from connectors.errors import ErrorCode
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from tests.doubles import MemorySource
from tests.factories import InvoiceFactory
from tests.integration.test_tryton_sync import (  # noqa: F401 (an autouse fixture)
    _rows,
    connectors_registered,
    make_flow,
    memory_flow,
    run,
    tryton_moves,
)

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]


def _invoice(**changes):
    return InvoiceFactory(
        type=InvoiceType.CUSTOMER_INVOICE, partner=Partner("c-cur", "Devises SARL"),
        issue_date=dt.date.today(), **changes,
    )  # fmt: skip


def test_choosing_the_tryton_company_takes_its_currency(tryton_accounting):
    flow = make_flow(None, tryton_accounting, source="memory", company_currency="USD")
    assert flow.folder and flow.company_currency == "EUR"


@pytest.mark.parametrize(
    "currency, rate",
    [
        # The dangerous one: a USD invoice looks like a company-currency one to the flow, so its
        # USD amounts would be booked as EUR with no second currency.
        ("USD", None),
        ("EUR", D("1.08")),
    ],
)
def test_a_flow_believing_in_usd_is_refused_before_anything_is_written(
    tryton_accounting, currency, rate
):
    flow = memory_flow(tryton_accounting)
    SyncFlow.objects.filter(pk=flow.pk).update(company_currency="USD")
    invoice = _invoice(currency=currency, exchange_rate=rate)
    MemorySource.put(invoice)
    run(flow)
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    assert record.status == RecordStatus.FAILED
    assert record.error_code == ErrorCode.CONFIGURATION_INCOMPLETE
    assert record.error_field == "company_currency"
    assert "books in EUR" in record.error_message
    assert invoice.number not in tryton_moves(tryton_accounting)


def test_usd_invoice_states_eur_debits_and_usd_amounts_with_the_currency_named(tryton_accounting):
    flow = memory_flow(tryton_accounting)
    invoice = _invoice(currency="USD", exchange_rate=D("0.9259"))
    MemorySource.put(invoice)
    run(flow)
    move = tryton_moves(tryton_accounting)[invoice.number]
    usd = _rows(tryton_accounting, "currency.currency", [("code", "=", "USD")], ["id"])[0]["id"]
    lines = sorted(move["lines"], key=lambda line: abs(line["amount_second_currency"]))
    assert [(abs(x["amount_second_currency"]), x["debit"] + x["credit"]) for x in lines] == [
        (D("20.00"), D("18.52")), (D("100.00"), D("92.59")), (D("120.00"), D("111.11")),
    ]  # fmt: skip
    assert {x["second_currency"] for x in lines} == {usd}
    collective = next(x for x in lines if x["party"])
    assert collective["debit"] == D("111.11") and collective["amount_second_currency"] == D("120")
