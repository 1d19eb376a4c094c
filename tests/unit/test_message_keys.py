"""Messages as a key and parameters (connectors/messages.py): every key the code raises has a
template, French keeps each template's placeholders, a message renders in the reader's language
and falls back to its stored text, and the engine names a source tax by its name and rate, never
by the tool's id. No database."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.utils import translation

from connectors.canonical import Direction, SourceTaxRate, TaxKind
from connectors.errors import ErrorCode, InvsyncError, connection_message_key, message_text
from connectors.messages import MESSAGES, Msg
from syncs.config import VatRule
from syncs.engine import Rejected, build_posting
from tests.unit.test_engine import PURCHASES, SALES, invoice, line, make_config, rejected

ROOT = Path(__file__).resolve().parents[2]
# Where keys are raised: InvsyncError.of(code, "key"), Msg("key"), key="key", connection keys.
SOURCES = [
    p
    for folder in ("connectors", "syncs", "mappings", "invsync")
    for p in (ROOT / folder).rglob("*.py")
    if "devtools" not in p.parts and "migrations" not in p.parts
]
# A key where the code gives one: Msg("key"), InvsyncError.of(code, "key"), key="key" (plain or
# f-string keys, whose placeholders EXPANSIONS lists).
KEY_LITERAL = re.compile(
    r"(?:\bMsg\(|\.of\(\s*[\w.]+,|\bkey\s*=|\bkey, params =)\s*"
    r'f?"([a-z]+\.[a-z_]*(?:\{[^}"]+\}[a-z_]*)*)"'
)
# What a placeholder of an f-string key stands for.
EXPANSIONS = {
    "self.direction.value": ("sales", "purchases"),
    "direction": ("sales", "purchases"),
    "state": ("missing", "inactive"),
    "name": ("untaxed_amount", "tax_amount", "total", "discount_amount", "base", "amount"),
    "invoice.type.value": ("customer_refund", "supplier_refund"),
    "criterion.field": ("auxiliary_account", "vat_number", "company_number", "name"),
    "key": (
        "sales_default", "purchases_default", "customer_collective", "supplier_collective",
        "rounding_credit", "rounding_debit", "sales_discount", "purchases_discount",
    ),
}  # fmt: skip


def raised_keys() -> set[str]:
    keys = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        if path.name == "messages.py":
            continue  # the table itself
        for key in KEY_LITERAL.findall(text):
            variants = [key]
            for placeholder in re.findall(r"\{([^}]+)\}", key):
                values = EXPANSIONS[placeholder]  # an unknown placeholder fails here: add it
                variants = [
                    v.replace("{" + placeholder + "}", value, 1)
                    for v in variants
                    for value in values
                ]
            keys.update(variants)
    return keys


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sd]|%%", text))


def test_the_scan_finds_the_keys_the_engine_connectors_and_runs_raise():
    keys = raised_keys()
    assert {"engine.no_lines", "engine.purchases_tax_not_mapped", "run.no_folder"} <= keys
    assert {"check.tryton_login_refused", "word.untaxed_amount", "account.rounding_debit"} <= keys


def test_every_key_the_code_raises_has_a_template():
    assert sorted(raised_keys() - set(MESSAGES)) == []


def test_every_connection_key_has_a_template():
    keys = {
        connection_message_key(code, failure=failure, status=status)
        for code in ErrorCode
        for failure in (None, "connection", "timeout", "dropped", "blocked")
        for status in (None, 403, 500)
    }
    assert sorted(keys - set(MESSAGES) - {""}) == []


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_french_keeps_the_placeholders_of_each_template(key):
    english = MESSAGES[key]
    assert english in translation.trans_real.translation("fr")._catalog, f"no French for {key}"
    with translation.override("fr"):
        french = translation.gettext(english)
    assert placeholders(french) == placeholders(english)


# -- Rendering ---------------------------------------------------------------------------------


def test_an_error_of_a_key_carries_its_english_text_and_json_safe_parameters():
    error = InvsyncError.of(
        ErrorCode.LINE_VALIDATION, "engine.line_without_tax", field="x", line=2, invoice="F-1"
    )
    assert error.message == "Line 2 of invoice F-1 has neither a tax rate nor a tax code."
    assert (error.key, error.params, error.field) == (
        "engine.line_without_tax",
        {"line": 2, "invoice": "F-1"},
        "x",
    )
    assert json.loads(json.dumps(error.params)) == error.params


def test_nested_messages_and_amounts_render_in_the_readers_language():
    error = InvsyncError.of(
        ErrorCode.AMOUNT_VALIDATION,
        "engine.header_amount_invalid",
        invoice="F-1",
        what=Msg("word.untaxed_amount"),
    )
    assert error.message == "Invoice F-1 has no valid untaxed amount."
    stored = json.loads(json.dumps(error.params))  # as a record keeps it
    with translation.override("fr"):
        assert message_text(error.key, stored, error.message) == (
            "La facture F-1 n'a pas de montant HT valide."
        )
    tolerance = InvsyncError.of(
        ErrorCode.AMOUNT_VALIDATION,
        "engine.breakdown_total_mismatch",
        invoice="F-1",
        stated=D("1234.50"),
        tax=D("1234.40"),
    )
    with translation.override("fr"):
        text = message_text(tolerance.key, tolerance.params, tolerance.message)
    assert "1234,50" in text.replace("\u202f", "").replace("\xa0", "").replace(" ", "")


def test_an_unknown_key_or_parameters_that_do_not_fit_show_the_stored_text():
    assert message_text("", {}, "Stored text.") == "Stored text."
    assert message_text("engine.gone_since", {}, "Stored text.") == "Stored text."
    assert message_text("engine.no_lines", {"other": 1}, "Stored text.") == "Stored text."


# -- Names, not ids ----------------------------------------------------------------------------

NAMED = (
    SourceTaxRate(Direction.PURCHASES, D("20"), "60", "TVA déductible 20 %"),
    SourceTaxRate(Direction.SALES, D("20"), "60s", "TVA collectée 20 %"),
)


def test_an_unmapped_tax_is_named_by_its_name_and_rate_and_never_by_its_id():
    config = make_config(purchases_vat=(VatRule(D("10"), None, "A10"),), source_taxes=NAMED)
    inv = invoice(PURCHASES, [line(rate="20", tax_id="60")])
    result = rejected(build_posting(inv, config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert result.message == (
        "Purchase tax 'TVA déductible 20 %' (20 %) is not mapped to a VAT code."
    )
    assert "60" not in result.message
    assert "60" not in json.dumps(result.params)
    assert result.key == "engine.purchases_tax_not_mapped"


def test_an_unmapped_tax_of_the_vat_breakdown_is_named_too():
    from connectors.canonical import TaxBreakdown

    config = make_config(sales_vat=(VatRule(D("10"), None, "V10"),), source_taxes=NAMED)
    inv = invoice(
        SALES,
        [line(rate="20", tax_id="60s")],
        taxes=(TaxBreakdown(D("100.00"), D("20.00"), D("20"), "60s"),),
    )
    result = rejected(build_posting(inv, config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert result.message == "Sales tax 'TVA collectée 20 %' (20 %) is not mapped to a VAT code."
    assert "60s" not in result.message


def test_a_tax_the_source_list_does_not_name_is_told_by_its_rate_not_its_id():
    config = make_config(purchases_vat=(VatRule(D("10"), None, "A10"),))
    inv = invoice(PURCHASES, [line(rate="20", tax_id="60")])
    result = rejected(build_posting(inv, config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert result.message == "Purchase VAT rate 20 % is not mapped to a VAT code."


def test_a_reverse_charge_tax_without_collected_code_names_the_deductible_code_by_its_name():
    config = make_config(purchases_vat=(VatRule(None, "61", "A20"),), source_taxes=NAMED)
    inv = invoice(
        PURCHASES,
        [line(rate="20", tax_id="61", tax_amount=D("0"), total=D("100.00"),
              tax_kind=TaxKind.REVERSE_CHARGE)],
        tax_amount=D("0"), total=D("100.00"),
    )  # fmt: skip
    result = rejected(build_posting(inv, config), ErrorCode.MAPPING_TAX_RATE_NOT_FOUND)
    assert "'TVA déductible 20 %' (44566)" in result.message
    assert "'A20'" not in result.message and "61" not in result.message


def test_a_rejected_result_turns_back_into_the_same_error():
    config = replace(make_config(), purchases_vat=())
    result = build_posting(invoice(PURCHASES, [line(rate="20")]), config)
    assert isinstance(result, Rejected)
    error = result.error()
    assert (error.code, error.message, error.key, error.params) == (
        result.code,
        result.message,
        result.key,
        result.params,
    )
