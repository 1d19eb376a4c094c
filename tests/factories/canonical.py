"""Factories for the canonical dataclasses (no database)."""

import datetime as dt
from decimal import Decimal

import factory

from connectors.canonical import Invoice, InvoiceLine, InvoiceType, Partner


class PartnerFactory(factory.Factory):
    class Meta:
        model = Partner

    source_id = factory.Sequence(lambda n: f"c-{n}")
    name = factory.Sequence(lambda n: f"Customer {n} SAS")
    country = "FR"


class InvoiceLineFactory(factory.Factory):
    """A 100.00 line at 20 % unless told otherwise."""

    class Meta:
        model = InvoiceLine

    description = "Consulting"
    quantity = Decimal("1")
    unit_price = factory.LazyAttribute(lambda o: o.untaxed_amount)
    untaxed_amount = Decimal("100.00")
    tax_rate = Decimal("20.0")
    tax_amount = factory.LazyAttribute(
        lambda o: (o.untaxed_amount * (o.tax_rate or 0) / 100).quantize(Decimal("0.01"))
    )
    total = factory.LazyAttribute(lambda o: o.untaxed_amount + o.tax_amount)


class InvoiceFactory(factory.Factory):
    """A customer invoice whose header totals are the sums of its lines."""

    class Meta:
        model = Invoice

    source_id = factory.Sequence(lambda n: f"inv-{n}")
    number = factory.Sequence(lambda n: f"F2026-{n:04d}")
    type = InvoiceType.CUSTOMER_INVOICE
    issue_date = dt.date(2026, 3, 1)
    due_date = dt.date(2026, 3, 31)
    currency = "EUR"
    partner = factory.SubFactory(PartnerFactory)
    lines = factory.LazyFunction(lambda: (InvoiceLineFactory(),))
    untaxed_amount = factory.LazyAttribute(
        lambda o: sum((x.untaxed_amount for x in o.lines), Decimal(0))
    )
    tax_amount = factory.LazyAttribute(lambda o: sum((x.tax_amount for x in o.lines), Decimal(0)))
    total = factory.LazyAttribute(lambda o: o.untaxed_amount + o.tax_amount)
    has_attachment = True
    updated_at = factory.LazyFunction(lambda: dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
