"""The posting engine's input besides the invoice: a flow's configuration as plain values, plus the
target lookups it is checked against. Mirrors CONFIG.json of the posting-preview contract."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from connectors.canonical import Direction, SourceTaxRate, TargetLookups
from mappings.flow_settings import in_scope


@dataclass(frozen=True)
class VatRule:
    """A source rate (or source tax id) → a target VAT code. For a self-assessed source tax
    (reverse charge, intra-EU acquisition: ``TaxKind.self_assessed``) on purchases, ``code`` is
    the deductible VAT code and ``collected_code`` the collected one (e.g. 44566 / 4452): the
    engine books the same VAT amount on both, debit and credit."""

    rate: Decimal | None
    tax_id: str | None
    code: str
    collected_code: str | None = None


@dataclass(frozen=True)
class FlowConfig:
    scope: str = "both"  # both | sales | purchases
    start_date: dt.date | None = None
    draft: bool = False
    # Whether the target books a tax line on the account its VAT code names (False: the target
    # books VAT from the code itself, and tax lines carry no account).
    vat_codes_name_accounts: bool = True
    sync_without_attachment: bool = True
    separate_discounts: bool = False
    label_mode: str = "partner_then_description"
    rounding_tolerance: Decimal = Decimal("0.05")
    company_currency: str = "EUR"
    # journals
    sales_journal: str | None = None
    purchases_journal: str | None = None
    journals_by_source: dict[str, str] | None = None
    # accounts
    sales_default: str | None = None
    purchases_default: str | None = None
    customer_collective: str | None = None
    supplier_collective: str | None = None
    rounding_credit: str | None = None
    rounding_debit: str | None = None
    sales_discount: str | None = None
    purchases_discount: str | None = None
    # VAT
    sales_vat: tuple[VatRule, ...] = ()
    purchases_vat: tuple[VatRule, ...] = ()
    sales_rounding_vat: str | None = None
    purchases_rounding_vat: str | None = None
    target: TargetLookups = field(default_factory=TargetLookups)
    # The invoicing tool's taxes as last read (their names, for messages that name a tax; no
    # amount depends on them).
    source_taxes: tuple[SourceTaxRate, ...] = ()

    def vat_rules(self, direction: Direction) -> tuple[VatRule, ...]:
        return self.sales_vat if direction is Direction.SALES else self.purchases_vat

    def in_scope(self, direction: Direction) -> bool:
        return in_scope(self.scope, direction)

    def source_tax(self, direction: Direction, tax_id: str | None) -> SourceTaxRate | None:
        """The invoicing tool's tax ``tax_id`` of ``direction`` as last read, if it was."""
        if not tax_id:
            return None
        return next(
            (t for t in self.source_taxes if t.tax_id == tax_id and t.direction is direction),
            next((t for t in self.source_taxes if t.tax_id == tax_id), None),
        )
