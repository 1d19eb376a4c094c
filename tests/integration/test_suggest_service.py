from decimal import Decimal as D

import pytest

from mappings.models import SyncFlow
from mappings.services import flow_mappings_suggest
from tests.factories import InvoiceFactory, InvoiceLineFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db


def test_suggestions_fill_blank_settings_and_map_the_source_rates(memory_connectors):
    source, _ = memory_connectors
    source.put(InvoiceFactory(lines=(InvoiceLineFactory(), InvoiceLineFactory(tax_rate=D("2.1")))))
    flow = SyncFlowFactory(
        vat=False,
        folder="",
        sales_journal="",
        default_sales_account="",
        customer_collective_account="707",
    )
    version = flow.config_version
    flow_mappings_suggest(flow=flow)
    flow = SyncFlow.objects.get(pk=flow.pk)
    assert (flow.folder, flow.folder_name) == ("1", "Test company")
    assert flow.sales_journal == "REV" and flow.default_sales_account == "706"
    assert flow.customer_collective_account == "707"  # set by a person: kept
    assert list(flow.vat_mappings.values_list("direction", "source_rate", "target_code")) == [
        ("sales", D("20.000"), "V20")
    ]
    assert flow.config_version > version
    flow_mappings_suggest(flow=flow)  # twice is harmless
    assert flow.vat_mappings.count() == 1
