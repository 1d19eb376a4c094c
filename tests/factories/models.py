"""Factories for invsync's models."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from connectors.models import Client, Connection
from mappings.models import JournalMapping, SyncFlow, VatMapping
from syncs.models import PartnerLink, SyncedRecord, SyncRun

# Every factory-made user's password.
PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user. ``roles=[...]`` puts them in those role groups (created by the roles
    migration), ``clients=[...]`` makes them a member of those clients."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = True
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*(Group.objects.get(name=name) for name in extracted))

    @factory.post_generation
    def clients(self, create, extracted, **kwargs):
        if create and extracted:
            self.invsync_clients.add(*extracted)


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    name = factory.Sequence(lambda n: f"Client {n}")


class ConnectionFactory(factory.django.DjangoModelFactory):
    """An invoicing connection to the in-memory test source unless told otherwise."""

    class Meta:
        model = Connection

    client = factory.SubFactory(ClientFactory)
    name = factory.Sequence(lambda n: f"Connection {n}")
    kind = "invoicing"
    provider = "memory"
    auth_kind = "api_key"
    settings = factory.LazyFunction(dict)
    credentials = factory.LazyFunction(lambda: {"api_key": "test-key"})


class SyncFlowFactory(factory.django.DjangoModelFactory):
    """A complete flow on the in-memory test connectors, with the French chart's accounts."""

    class Meta:
        model = SyncFlow
        skip_postgeneration_save = True

    client = factory.SubFactory(ClientFactory)
    name = factory.Sequence(lambda n: f"Flow {n}")
    invoicing_connection = factory.SubFactory(
        ConnectionFactory, client=factory.SelfAttribute("..client"), kind="invoicing"
    )
    accounting_connection = factory.SubFactory(
        ConnectionFactory, client=factory.SelfAttribute("..client"), kind="accounting"
    )
    folder = "1"
    folder_name = "Test company"
    enabled = True
    sales_journal = "REV"
    purchases_journal = "EXP"
    default_sales_account = "706"
    default_purchases_account = "6071"
    customer_collective_account = "4111"
    supplier_collective_account = "4011"
    rounding_credit_account = "758"
    rounding_debit_account = "658"
    sales_discount_account = "709"
    purchases_discount_account = "609"
    sales_rounding_vat_code = "V0"
    purchases_rounding_vat_code = "A0"
    rounding_tolerance = Decimal("0.05")

    @factory.post_generation
    def vat(self, create, extracted, **kwargs):
        """Map 20, 10, 5.5 and 0 % both ways unless ``vat=False`` (or a list of rows) is given."""
        if not create or extracted is False:
            return
        rows = extracted or [
            ("sales", "20.0", "V20"), ("sales", "10.0", "V10"), ("sales", "5.5", "V55"),
            ("sales", "0", "V0"), ("purchases", "20.0", "A20"), ("purchases", "10.0", "A10"),
            ("purchases", "5.5", "A55"), ("purchases", "0", "A0"),
        ]  # fmt: skip
        for direction, rate, code in rows:
            VatMapping.objects.create(
                flow=self, direction=direction, source_rate=Decimal(rate), target_code=code
            )

    @factory.post_generation
    def audit_baseline(self, create, extracted, **kwargs):
        """The first audit record, as flow_create makes it (factories bypass the services)."""
        if create:
            from mappings.audit import config_change_record

            config_change_record(flow=self)


class VatMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VatMapping

    flow = factory.SubFactory(SyncFlowFactory, vat=False)
    direction = "sales"
    source_rate = Decimal("20.0")
    target_code = "V20"


class JournalMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JournalMapping

    flow = factory.SubFactory(SyncFlowFactory)
    source_journal = "VT"
    target_journal = "REV"


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    flow = factory.SubFactory(SyncFlowFactory)
    trigger = "manual"


class SyncedRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncedRecord

    flow = factory.SubFactory(SyncFlowFactory)
    source_id = factory.Sequence(lambda n: f"inv-{n}")
    number = factory.Sequence(lambda n: f"F2026-{n:04d}")
    status = "failed"
    error_code = "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
    error_message = "Sales VAT rate 5.5 % is not mapped to a VAT code."


class PartnerLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PartnerLink

    flow = factory.SubFactory(SyncFlowFactory)
    source_partner_id = factory.Sequence(lambda n: f"c-{n}")
    source_partner_name = "ACME SAS"
    target_partner_id = factory.Sequence(lambda n: f"p-{n}")
    matched_by = "vat_number"
