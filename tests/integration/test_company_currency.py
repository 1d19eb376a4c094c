"""The company currency comes from the ledger: the accounting folder reports it, choosing the folder
sets it on the flow, and entries state company-currency debits/credits beside the invoice-currency
amounts. The in-memory target stands for a ledger that books in GBP or USD (the live Tryton
sandbox's company books in EUR; tests/integration/test_tryton_company_currency.py covers it)."""

from decimal import Decimal as D

import pytest

from connectors.canonical import InvoiceType, TargetLookups
from connectors.errors import ErrorCode
from mappings.models import SyncFlow
from mappings.services import flow_mappings_suggest
from syncs.models import RecordStatus, SyncedRecord
from syncs.selectors import flow_engine_config
from syncs.services import flow_sync
from tests.factories import InvoiceFactory, SyncFlowFactory
from tests.integration.test_mapping_forms import change_url, complete_flow, form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def gbp_ledger(memory_connectors):
    source, target = memory_connectors
    target.currency = "GBP"
    return source, target


def _flow_choosing_its_folder(**changes) -> SyncFlow:
    flow = SyncFlowFactory(folder="", folder_name="", **changes)
    flow_mappings_suggest(flow=flow)
    return SyncFlow.objects.get(pk=flow.pk)


def test_choosing_the_folder_takes_the_ledgers_currency(gbp_ledger):
    flow = _flow_choosing_its_folder(company_currency="EUR")
    assert flow.folder == "1" and flow.company_currency == "GBP"


def test_the_engine_config_carries_the_ledgers_currency(gbp_ledger):
    flow = _flow_choosing_its_folder()
    assert flow_engine_config(flow, TargetLookups()).company_currency == "GBP"


@pytest.mark.parametrize("type_", [InvoiceType.CUSTOMER_INVOICE, InvoiceType.SUPPLIER_INVOICE])
def test_eur_invoice_into_a_gbp_ledger_states_gbp_debits_and_eur_amounts(gbp_ledger, type_):
    source, target = gbp_ledger
    flow = _flow_choosing_its_folder()
    # 100.00 + 20.00 VAT in EUR at 1 EUR = 0.8571 GBP.
    invoice = InvoiceFactory(type=type_, currency="EUR", exchange_rate=D("0.8571"))
    source.put(invoice)
    flow_sync(flow=flow, trigger="manual")
    assert SyncedRecord.objects.get(flow=flow).status == RecordStatus.SYNCED
    posting = target.entries[next(iter(target.entries))]["posting"]
    assert (posting.currency, posting.company_currency) == ("EUR", "GBP")
    assert posting.total_debit == posting.total_credit == D("102.85")
    by_amount = sorted((abs(x.amount_currency), x.debit + x.credit) for x in posting.lines)
    assert by_amount == [(D("20.00"), D("17.14")), (D("100.00"), D("85.71")),
                         (D("120.00"), D("102.85"))]  # fmt: skip


def test_a_flow_that_still_believes_in_eur_is_refused_by_a_gbp_ledger(gbp_ledger):
    source, target = gbp_ledger
    flow = SyncFlowFactory(company_currency="EUR")  # folder chosen before it reported GBP
    source.put(InvoiceFactory())
    flow_sync(flow=flow, trigger="manual")
    record = SyncedRecord.objects.get(flow=flow)
    assert record.status == RecordStatus.FAILED and not target.entries
    assert record.error_code == ErrorCode.CONFIGURATION_INCOMPLETE
    assert record.error_field == "company_currency"


def test_choosing_the_folder_on_the_flow_page_takes_its_currency(admin_client, memory_connectors):
    _, target = memory_connectors
    target.currency = "USD"
    flow = complete_flow(folder="", folder_name="", company_currency="EUR")
    response = admin_client.get(change_url(flow))
    data = form_data(response)
    data["folder"] = "1"
    assert admin_client.post(change_url(flow), data).status_code == 302
    assert SyncFlow.objects.get(pk=flow.pk).company_currency == "USD"
