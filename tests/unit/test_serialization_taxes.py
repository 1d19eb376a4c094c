"""INVOICE.json's optional VAT breakdown (``taxes``) and line ``tax_kind``; CONFIG.json's VAT
rows with a collected code (reverse charge), per docs/posting-preview.md. No database."""

from decimal import Decimal as D

import pytest

from connectors.canonical import TaxBreakdown, TaxKind
from syncs.config import VatRule
from syncs.engine import build_posting
from syncs.serialization import (
    InputError,
    config_from_json,
    config_to_json,
    invoice_from_json,
    invoice_to_json,
    result_to_json,
)
from tests.unit.test_serialization import contract_config, contract_invoice

INTRA_INVOICE = {
    "source_id": "in-7", "number": "DE-2026-118", "type": "supplier_invoice",
    "issue_date": "2026-03-01", "currency": "EUR",
    "untaxed_amount": "1000.00", "tax_amount": "0.00", "total": "1000.00",
    "partner": {"source_id": "s-3", "name": "Müller GmbH"},
    "lines": [{"description": "Machine", "quantity": "1", "unit_price": "1000.00",
               "untaxed_amount": "1000.00", "tax_rate": "20", "tax_id": "intra",
               "tax_amount": "0.00", "total": "1000.00", "tax_kind": "intra_eu"}],
    "taxes": [{"category": "K", "rate": "20", "base": "1000.00", "amount": "0.00",
               "tax_id": "intra", "kind": "intra_eu"}],
}  # fmt: skip

INTRA_CONFIG = {
    "journals": {"purchases": "EXP"},
    "accounts": {"purchases_default": "6071", "supplier_collective": "4011"},
    "vat": {"purchases": [{"rate": None, "tax_id": "intra", "code": "AI20",
                           "collected_code": "AI20D"}]},
    "target": {
        "accounts": [{"number": n} for n in ("6071", "4011", "44566", "4452")],
        "vat_codes": [{"code": "AI20", "rate": "20", "account": "44566"},
                      {"code": "AI20D", "rate": "-20", "account": "4452"}],
    },
}  # fmt: skip


def test_invoice_without_taxes_key_loads_with_an_empty_breakdown_and_is_written_back_unchanged():
    invoice = invoice_from_json(contract_invoice())
    assert invoice.taxes == () and invoice.lines[0].tax_kind is TaxKind.STANDARD
    written = invoice_to_json(invoice)
    assert "taxes" not in written and "tax_kind" not in written["lines"][0]


def test_invoice_breakdown_is_read_and_written_back():
    data = contract_invoice()
    data["taxes"] = [{"category": "S", "rate": "20.0", "base": "100.00", "amount": "20.00",
                      "tax_id": "t1", "kind": "standard"}]  # fmt: skip
    invoice = invoice_from_json(data)
    assert invoice.taxes == (TaxBreakdown(D("100.00"), D("20.00"), D("20.0"), "t1",
                                          TaxKind.STANDARD, "S"),)  # fmt: skip
    assert invoice_to_json(invoice)["taxes"] == data["taxes"]


def test_breakdown_row_needs_only_base_and_amount():
    data = contract_invoice()
    data["taxes"] = [{"base": "100.00", "amount": "20.00"}]
    (row,) = invoice_from_json(data).taxes
    assert (row.rate, row.tax_id, row.kind, row.category) == (None, None, TaxKind.STANDARD, None)


@pytest.mark.parametrize(
    "row, field",
    [
        ({"base": "100.00"}, "taxes[0].amount"),
        ({"base": "100.00", "amount": 20.5, "kind": "reverse"}, "taxes[0].kind"),
        ({"base": "1,00", "amount": "0"}, "taxes[0].base"),
    ],
)
def test_bad_breakdown_row_names_its_field(row, field):
    data = contract_invoice()
    data["taxes"] = [row]
    with pytest.raises(InputError) as error:
        invoice_from_json(data)
    assert error.value.field == field


def test_line_tax_kind_is_read_and_a_bad_one_named():
    invoice = invoice_from_json(INTRA_INVOICE)
    assert invoice.lines[0].tax_kind is TaxKind.INTRA_EU
    assert invoice_to_json(invoice)["lines"][0]["tax_kind"] == "intra_eu"
    data = {**INTRA_INVOICE, "lines": [{**INTRA_INVOICE["lines"][0], "tax_kind": "nope"}]}
    with pytest.raises(InputError) as error:
        invoice_from_json(data)
    assert error.value.field == "lines[0].tax_kind"


def test_vat_row_collected_code_is_read_and_written_back():
    config = config_from_json(INTRA_CONFIG)
    assert config.purchases_vat == (VatRule(None, "intra", "AI20", "AI20D"),)
    assert config_to_json(config)["vat"]["purchases"] == INTRA_CONFIG["vat"]["purchases"]


def test_vat_rows_without_collected_code_are_written_as_the_contract_shows_them():
    written = config_to_json(config_from_json(contract_config()))
    assert written["vat"]["sales"] == [{"rate": "20.0", "tax_id": None, "code": "V20"}]


def test_reverse_charge_preview_from_files_shows_the_deductible_and_collected_vat():
    result = build_posting(invoice_from_json(INTRA_INVOICE), config_from_json(INTRA_CONFIG))
    entry = result_to_json(result)["entry"]
    assert [(x["account"], x["debit"], x["credit"], x["vat_code"]) for x in entry["lines"]] == [
        ("4011", "0.00", "1000.00", None),
        ("6071", "1000.00", "0.00", "AI20"),
        ("44566", "200.00", "0.00", "AI20"),
        ("4452", "0.00", "200.00", "AI20D"),
    ]
