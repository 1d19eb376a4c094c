"""VAT as the invoice states it, and reverse charge, from the Tryton sample into a live Tryton.

The invoicing database's manifest lists each sample invoice's tax lines as Tryton states them
(rounded per invoice and tax); every entry invsync writes must carry the same VAT per account,
to the cent, so that a VAT return made from the books agrees with the invoices.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import pytest

from connectors.base import ConnectionConfig
from connectors.canonical import Direction, TaxKind
from connectors.providers.tryton.source import TrytonSource
from connectors.selectors import outbound_policy
from tests.integration.test_tryton_sync import (  # noqa: F401 (an autouse fixture)
    account_totals,
    connectors_registered,
    make_flow,
    run,
    tryton_moves,
)

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]


@pytest.fixture
def sample(tryton_invoicing, tryton_accounting):
    """The sample synced once by a flow mapped as the manifest assumes: (moves, manifest)."""
    run(make_flow(tryton_invoicing, tryton_accounting))
    return tryton_moves(tryton_accounting), tryton_invoicing.manifest


def _invoice(manifest, key):
    return next(i for i in manifest["invoices"] if i["key"] == key)


def test_every_entrys_vat_lines_equal_the_invoices_tax_lines_to_the_cent(sample):
    moves, manifest = sample
    checked = 0
    for invoice in manifest["invoices"]:
        move = moves.get(invoice["number"])
        if move is None:
            continue
        sales = invoice["type"] == "out"
        stated: dict[str, D] = defaultdict(D)
        for tax in invoice["taxes"]:
            stated[tax["account"]] += D(tax["amount"])
        totals = account_totals(move)
        booked = {
            account: (credit - debit) if sales else (debit - credit)
            for account, (debit, credit) in totals.items()
            if account.startswith("445")
        }
        # Tryton signs tax lines like the invoice (negative on a credit note), and so does this.
        assert booked == {a: v for a, v in stated.items() if v}, invoice["key"]
        assert sum(booked.values(), D(0)) == D(invoice["tax_amount"]), invoice["key"]
        checked += 1
    assert checked == manifest["counts"]["by_expect"]["sync"]


def test_invoice_stating_1_11_of_vat_over_lines_of_0_55_books_1_11_on_44571(sample):
    moves, manifest = sample
    invoice = _invoice(manifest, "out_rounding_vat_1_11")
    assert D(invoice["tax_amount"]) == D("1.11")
    totals = account_totals(moves[invoice["number"]])
    assert totals["44571"] == (D(0), D("1.11"))
    assert totals["4111"] == (D("6.65"), D(0))
    assert "758" not in totals and "658" not in totals


def test_intra_eu_acquisition_books_44566_debit_and_4452_credit_of_equal_amount(sample):
    moves, manifest = sample
    invoice = _invoice(manifest, "in_eu_acquisition")
    assert D(invoice["tax_amount"]) == 0
    move = moves[invoice["number"]]
    totals = account_totals(move)
    assert totals["44566"] == (D("496.00"), D(0))
    assert totals["4452"] == (D(0), D("496.00"))
    (supplier,) = [x for x in move["lines"] if x["party"]]
    assert (supplier["debit"], supplier["credit"]) == (D(0), D("2480.00"))
    assert totals["6063"] == (D("2480.00"), D(0))
    assert move["state"] == "posted"


def test_tryton_source_states_the_breakdown_and_flags_the_reverse_charge(tryton_invoicing):
    source = TrytonSource(
        ConnectionConfig(
            "credentials", tryton_invoicing.settings, tryton_invoicing.credentials,
            outbound=outbound_policy(),
        )
    )  # fmt: skip
    manifest = tryton_invoicing.manifest
    try:
        by_number = {
            i.number: i
            for i in source.iter_invoices(since=None, directions=list(Direction))
            if getattr(i, "taxes", None) is not None
        }
        rounding = by_number[_invoice(manifest, "out_rounding_vat_1_11")["number"]]
        assert [(t.base, t.amount, t.rate) for t in rounding.taxes] == [
            (D("5.54"), D("1.11"), D("20"))
        ]
        assert sum(line.tax_amount for line in rounding.lines) == D("1.10")
        assert rounding.taxes[0].tax_id == rounding.lines[0].tax_id

        intra = by_number[_invoice(manifest, "in_eu_acquisition")["number"]]
        (row,) = intra.taxes
        assert (row.base, row.amount, row.rate, row.kind) == (
            D("2480.00"), D("496.00"), D("20"), TaxKind.INTRA_EU,
        )  # fmt: skip
        (line,) = intra.lines
        assert (line.tax_rate, line.tax_amount, line.tax_kind) == (D("20"), 0, TaxKind.INTRA_EU)
        assert intra.tax_amount == 0

        note = by_number[_invoice(manifest, "out_credit_note")["number"]]
        assert note.taxes and all(t.amount > 0 and t.base > 0 for t in note.taxes)

        listed = [r for r in source.list_tax_rates() if r.kind is TaxKind.INTRA_EU]
        assert listed and all(r.direction is Direction.PURCHASES for r in listed)
        assert any(r.rate == D("20") and r.tax_id == row.tax_id for r in listed)
    finally:
        source.close()
