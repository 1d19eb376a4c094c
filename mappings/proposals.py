"""VAT mapping proposals: the rows to offer for the source's rates no mapping covers yet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from mappings.checklist import flow_vat_rows, listed_text, vat_rate_covered
from mappings.lookups import FlowLookups
from mappings.models import SyncFlow
from mappings.selectors import flow_directions
from mappings.suggestions import suggest


@dataclass(frozen=True)
class VatProposal:
    """A VAT mapping row to offer for review: a source rate (or tax) not mapped yet and the target
    code with the same rate, when one stands out ("" when a person must choose)."""

    direction: str
    source_rate: Decimal | None
    source_tax_id: str
    target_code: str
    source_name: str = ""
    candidates: tuple[str, ...] = ()
    collected_code: str = ""  # reverse charge: the collected VAT code proposed beside target_code

    def as_initial(self) -> dict:
        return {
            "direction": self.direction,
            "source_rate": self.source_rate,
            "source_tax_id": self.source_tax_id,
            "target_code": self.target_code,
            "collected_code": self.collected_code,
        }


def flow_vat_proposals(
    flow: SyncFlow, lookups: FlowLookups, *, vat_mappings: Iterable | None = None
) -> list[VatProposal]:
    """A row for every rate (or tax) the invoicing tool uses in the flow's scope that no mapping
    covers yet, with the same-rate target code picked by
    :func:`mappings.suggestions.suggest_vat_code` (the source tax's name as the hint). Empty when
    the source's rates were never read."""
    if lookups.source_rates is None:
        return []
    rows = flow_vat_rows(flow, vat_mappings)
    directions = flow_directions(flow)
    missing = [
        s
        for s in lookups.source_rates
        if s.direction in directions and s.rate is not None and not vat_rate_covered(s, rows)
    ]
    names = {(s.direction, s.tax_id): s.name for s in missing}
    by_rate: dict[tuple, list[str]] = {}
    for s in missing:
        by_rate.setdefault((s.direction, s.rate), []).append(s.name)
    proposals = []
    for row in suggest(
        source_rates=missing, vat_codes=lookups.vat_codes or (), accounts=(), journals=()
    ).vat:
        name = (
            names.get((row.direction, row.tax_id), "")
            if row.tax_id
            else listed_text([n for n in by_rate.get((row.direction, row.rate), []) if n], 3)
        )
        proposals.append(
            VatProposal(
                direction=row.direction.value,
                source_rate=row.rate,
                source_tax_id=row.tax_id or "",
                target_code=row.code or "",
                source_name=name,
                candidates=row.candidates,
                collected_code=row.collected_code or "",
            )
        )
    proposals.sort(key=lambda p: (p.direction != "sales", -(p.source_rate or 0), p.source_tax_id))
    return proposals
