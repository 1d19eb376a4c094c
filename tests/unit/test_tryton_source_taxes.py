"""The Tryton source's VAT breakdown and reverse-charge flags, from records shaped like Tryton's
JSON-RPC answers (the live counterpart is tests/integration/test_tryton_vat.py)."""

import datetime as dt
from decimal import Decimal as D

from connectors.base import ConnectionConfig
from connectors.canonical import Direction, InvoiceType, TaxBreakdown, TaxKind
from connectors.providers.tryton.source import TrytonSource


def _tax(id, name, type="percentage", rate=None, parent=None, childs=(), kind="purchase"):
    return {
        "id": id, "name": name, "type": type, "rate": None if rate is None else D(rate),
        "amount": None, "parent": parent, "childs": list(childs), "start_date": None,
        "end_date": None, "group.": {"kind": kind} if parent is None else None,
    }  # fmt: skip


# As account_fr: a "Taux Normal" parent with a dated 20 % child (lines take the parent), and the
# intra-EU acquisition parent whose dated child has +20 % (44566) and -20 % (4452) children.
TAXES = [
    _tax(1, "T.V.A. Vente de biens Taux Normal", "none", parent=None, childs=[2], kind="sale"),
    _tax(2, "T.V.A. Vente de biens 20%", rate="0.2", parent=1, kind="sale"),
    _tax(10, "T.V.A. Achat Intracommunautaire de biens Taux Normal", "none", childs=[11]),
    _tax(11, "T.V.A. Achat Intracommunautaire de biens 20%", "none", parent=10, childs=[12, 13]),
    _tax(12, "T.V.A. Achat Intracommunautaire de biens 20% (1)", rate="0.2", parent=11),
    _tax(13, "T.V.A. Achat Intracommunautaire de biens 20% (2)", rate="-0.2", parent=11),
    _tax(20, "Autoliquidation BTP", "none", childs=[21, 22]),
    _tax(21, "Autoliquidation BTP (déductible)", rate="0.2", parent=20),
    _tax(22, "Autoliquidation BTP (due)", rate="-0.2", parent=20),
]


class FakeClient:
    def __init__(self, lines):
        self.lines = lines

    def search_read(self, model, domain, fields, *args, **kwargs):
        return {"account.invoice.line": self.lines, "account.tax": TAXES}.get(model, [])

    def read(self, model, ids, fields, *args, **kwargs):
        if model == "company.company":
            return [{"id": 1, "currency": 1, "currency.": {"code": "EUR"}}]
        return []

    def close(self):
        pass


def _row(type, untaxed, tax, taxes):
    return {
        "id": 5, "number": "F-5", "type": type, "state": "posted",
        "invoice_date": dt.date(2026, 3, 1), "company": 1, "currency": 1,
        "currency.": {"code": "EUR", "rounding": D("0.01")}, "party": None,
        "untaxed_amount": D(untaxed), "tax_amount": D(tax), "total_amount": D(untaxed) + D(tax),
        "taxes.": taxes, "write_date": dt.datetime(2026, 3, 1, 12),
    }  # fmt: skip


def _line(amount, taxes, quantity="1"):
    return {
        "id": 9, "invoice": 5, "type": "line", "description": "x", "quantity": D(quantity),
        "unit_price": D(amount), "amount": D(amount), "taxes": taxes, "sequence": 1,
    }  # fmt: skip


def _map(row, lines):
    config = ConnectionConfig("credentials", {"url": "http://127.0.0.1:1/", "database": "x"}, {})
    (invoice,) = TrytonSource(config, client=FakeClient(lines))._map_page([row])
    return invoice


def test_invoice_tax_lines_become_the_breakdown_under_the_tax_the_lines_take():
    row = _row("out", "5.54", "1.11", [{"tax": 2, "base": D("5.54"), "amount": D("1.11")}])
    invoice = _map(row, [_line("2.77", [1]), _line("2.77", [1])])
    assert invoice.taxes == (TaxBreakdown(D("5.54"), D("1.11"), D("20"), "1"),)
    assert [x.tax_amount for x in invoice.lines] == [D("0.55"), D("0.55")]
    assert invoice.lines[0].tax_id == "1"


def test_intra_eu_acquisition_is_one_self_assessed_row_and_a_zero_vat_line_at_20():
    taxes = [
        {"tax": 12, "base": D("2480.00"), "amount": D("496.00")},
        {"tax": 13, "base": D("2480.00"), "amount": D("-496.00")},
    ]
    invoice = _map(_row("in", "2480.00", "0", taxes), [_line("2480.00", [10])])
    assert invoice.taxes == (
        TaxBreakdown(D("2480.00"), D("496.00"), D("20"), "10", TaxKind.INTRA_EU),
    )
    (line,) = invoice.lines
    assert (line.tax_rate, line.tax_amount, line.tax_kind) == (D("20"), D(0), TaxKind.INTRA_EU)


def test_a_self_assessed_tax_not_named_intra_community_is_a_domestic_reverse_charge():
    taxes = [
        {"tax": 21, "base": D("100.00"), "amount": D("20.00")},
        {"tax": 22, "base": D("100.00"), "amount": D("-20.00")},
    ]
    invoice = _map(_row("in", "100.00", "0", taxes), [_line("100.00", [20])])
    assert invoice.taxes[0].kind is TaxKind.REVERSE_CHARGE
    assert invoice.lines[0].tax_kind is TaxKind.REVERSE_CHARGE


def test_a_credit_notes_breakdown_is_positive_like_its_other_amounts():
    taxes = [
        {"tax": 12, "base": D("-100.00"), "amount": D("-20.00")},
        {"tax": 13, "base": D("-100.00"), "amount": D("20.00")},
    ]
    invoice = _map(_row("in", "-100.00", "0", taxes), [_line("-100.00", [10], quantity="-1")])
    assert invoice.type is InvoiceType.SUPPLIER_REFUND
    assert invoice.taxes == (
        TaxBreakdown(D("100.00"), D("20.00"), D("20"), "10", TaxKind.INTRA_EU),
    )


def test_records_read_without_tax_lines_keep_no_breakdown():
    row = _row("out", "100.00", "20.00", None)
    del row["taxes."]
    assert _map(row, [_line("100.00", [1])]).taxes == ()


def test_listed_taxes_give_the_self_assessed_rate_and_kind():
    config = ConnectionConfig("credentials", {"url": "http://127.0.0.1:1/", "database": "x"}, {})
    listed = {r.tax_id: r for r in TrytonSource(config, client=FakeClient([])).list_tax_rates()}
    assert (listed["10"].rate, listed["10"].kind) == (D("20"), TaxKind.INTRA_EU)
    assert listed["10"].direction is Direction.PURCHASES
    assert (listed["1"].rate, listed["1"].kind) == (D("20"), TaxKind.STANDARD)
