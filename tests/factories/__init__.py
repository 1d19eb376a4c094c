"""factory-boy factories for invsync's models and canonical dataclasses."""

from tests.factories.canonical import InvoiceFactory, InvoiceLineFactory, PartnerFactory
from tests.factories.models import (
    ClientFactory,
    ConnectionFactory,
    JournalMappingFactory,
    PartnerLinkFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
    VatMappingFactory,
)

__all__ = [
    "ClientFactory",
    "ConnectionFactory",
    "InvoiceFactory",
    "InvoiceLineFactory",
    "JournalMappingFactory",
    "PartnerFactory",
    "PartnerLinkFactory",
    "SyncFlowFactory",
    "SyncRunFactory",
    "SyncedRecordFactory",
    "UserFactory",
    "VatMappingFactory",
]
