"""The engine's accountant checks in a real run: the refused invoice fails with its code, nothing of
it reaches the ledger (no entry, no partner), and the other invoices of the run are written."""

from decimal import Decimal as D

import pytest

from connectors.canonical import InvoiceType, Partner
from connectors.errors import ErrorCode
from syncs.models import PartnerLink, RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.factories import InvoiceFactory, InvoiceLineFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db


def _refund_stated_negative():
    line = InvoiceLineFactory(untaxed_amount=D("-100.00"), tax_amount=D("-20.00"))
    return InvoiceFactory(type=InvoiceType.CUSTOMER_REFUND, lines=(line,))


@pytest.mark.parametrize(
    "bad, code, field",
    [
        (lambda: InvoiceFactory(partner=Partner("", "Sans Id SARL")), "PARTNER_VALIDATION",
         "partner.source_id"),
        (_refund_stated_negative, "AMOUNT_VALIDATION", "total"),
        (lambda: InvoiceFactory(untaxed_amount=D("100.50"), tax_amount=D("19.50")),
         "AMOUNT_VALIDATION", "untaxed_amount"),
        (lambda: InvoiceFactory(lines=(InvoiceLineFactory(tax_amount=D("25.00")),)),
         "LINE_VALIDATION", "lines[0].tax_amount"),
    ],
)  # fmt: skip
def test_a_refused_invoice_reaches_nothing_in_the_ledger(memory_connectors, bad, code, field):
    source, target = memory_connectors
    flow = SyncFlowFactory()
    refused, fine = bad(), InvoiceFactory()
    source.put(refused, fine)
    flow_sync(flow=flow, trigger="manual")
    record = SyncedRecord.objects.get(flow=flow, source_id=refused.source_id)
    assert record.status == RecordStatus.FAILED
    assert (record.error_code, record.error_field) == (getattr(ErrorCode, code), field)
    assert SyncedRecord.objects.get(flow=flow, source_id=fine.source_id).status == (
        RecordStatus.SYNCED
    )
    assert [e["posting"].reference for e in target.entries.values()] == [fine.number]
    assert len(target.partners) == 1 and PartnerLink.objects.filter(flow=flow).count() == 1
