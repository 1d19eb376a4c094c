"""An invoice in another currency than the ledger's, whose invoicing tool gives no exchange rate
(Stripe), is booked at the accounting tool's own rate for its date when the target has rates
(``supports_exchange_rates``); without one, the engine's "needs an exchange rate" failure stays.
The in-memory target stands for the ledger (tests/integration/test_stripe_tryton.py: Tryton)."""

from decimal import Decimal as D

import pytest

from connectors.errors import ConnectorError, ErrorCode
from mappings.services import flow_lookups_load
from syncs.models import RecordStatus, SyncedRecord
from syncs.preview import flow_preview
from syncs.services import flow_sync
from tests.factories import InvoiceFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db


def _usd_invoice(**changes):
    # 100.00 + 20.00 VAT in USD, no rate from the invoicing tool.
    return InvoiceFactory(**{"currency": "USD", "exchange_rate": None, **changes})


def test_a_usd_invoice_without_a_rate_is_booked_at_the_ledger_s_rate(memory_connectors):
    source, target = memory_connectors
    target.rates = {"USD": D("0.9137")}
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice())
    flow_sync(flow=flow, trigger="manual")
    record = SyncedRecord.objects.get(flow=flow)
    assert record.status == RecordStatus.SYNCED, record.error_message
    posting = target.entries[next(iter(target.entries))]["posting"]
    assert (posting.currency, posting.company_currency) == ("USD", "EUR")
    assert posting.total_debit == posting.total_credit == D("109.64")
    by_amount = sorted((abs(x.amount_currency), x.debit + x.credit) for x in posting.lines)
    assert by_amount == [(D("20.00"), D("18.27")), (D("100.00"), D("91.37")),
                         (D("120.00"), D("109.64"))]  # fmt: skip
    # The record says at which rate it was booked.
    assert record.snapshot["exchange_rate"] == "0.9137"


def test_the_ledger_is_asked_only_for_an_invoice_in_another_currency_without_a_rate(
    memory_connectors,
):
    source, target = memory_connectors
    target.rates = {"USD": D("0.9137")}
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice(), InvoiceFactory(currency="EUR"),
               InvoiceFactory(currency="USD", exchange_rate=D("0.9")))  # fmt: skip
    flow_sync(flow=flow, trigger="manual")
    assert set(SyncedRecord.objects.filter(flow=flow).values_list("status", flat=True)) == {
        RecordStatus.SYNCED
    }
    assert target.calls["exchange_rate"] == 1
    assert [e["posting"].company_currency for e in target.entries.values()] == ["EUR"] * 3


def test_a_rate_the_invoicing_tool_gives_is_kept(memory_connectors):
    source, target = memory_connectors
    target.rates = {"USD": D("0.5")}
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice(exchange_rate=D("0.9137")))
    flow_sync(flow=flow, trigger="manual")
    posting = target.entries[next(iter(target.entries))]["posting"]
    assert posting.total_debit == D("109.64")
    assert target.calls["exchange_rate"] == 0


def test_without_a_ledger_rate_the_invoice_still_fails_for_its_missing_rate(memory_connectors):
    source, target = memory_connectors  # the ledger has no USD rate
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice())
    flow_sync(flow=flow, trigger="manual")
    record = SyncedRecord.objects.get(flow=flow)
    assert record.status == RecordStatus.FAILED and not target.entries
    assert record.error_code == ErrorCode.AMOUNT_VALIDATION
    assert record.error_key == "engine.exchange_rate_missing"


def test_a_target_without_rates_is_not_asked_and_the_old_failure_stays(
    memory_connectors, monkeypatch
):
    source, target = memory_connectors
    target.rates = {"USD": D("0.9137")}
    monkeypatch.setattr(target, "supports_exchange_rates", False)
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice())
    flow_sync(flow=flow, trigger="manual")
    record = SyncedRecord.objects.get(flow=flow)
    assert record.status == RecordStatus.FAILED and not target.entries
    assert record.error_key == "engine.exchange_rate_missing"
    assert target.calls["exchange_rate"] == 0


def test_a_connection_error_while_asking_the_rate_stops_the_run(memory_connectors, monkeypatch):
    source, target = memory_connectors

    def unreachable(*args):
        raise ConnectorError(ErrorCode.UNAVAILABLE, "The ledger does not answer.")

    monkeypatch.setattr(target, "exchange_rate", unreachable)
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice())
    run = flow_sync(flow=flow, trigger="manual")
    assert not target.entries
    assert run.error_code == ErrorCode.UNAVAILABLE
    record = SyncedRecord.objects.filter(flow=flow).first()
    assert record is None or record.status != RecordStatus.SYNCED


def test_the_preview_shows_the_entry_at_the_ledger_s_rate(memory_connectors):
    source, target = memory_connectors
    target.rates = {"USD": D("0.9137")}
    flow = SyncFlowFactory(company_currency="EUR")
    source.put(_usd_invoice(), _usd_invoice())
    preview = flow_preview(flow, lookups=flow_lookups_load(flow=flow))
    assert [(i.result["status"], i.total_debit) for i in preview.items] == [
        ("ok", D("109.64")),
        ("ok", D("109.64")),
    ]
    assert target.calls["exchange_rate"] == 1  # once per currency and date
