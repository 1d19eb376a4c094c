"""The sandbox's sample invoices (connectors/devtools/tryton/sample_invoices.json): every invoice
in the file is well-formed — its lines make its stated untaxed/tax/total, the entry balances, its
taxes, accounts and parties are ones the builder knows — so an edit cannot break the live tests'
figures silently. (The build also checks Tryton's own figures against the file.)"""

import ast
import copy
import datetime as dt
from decimal import Decimal

import pytest

from connectors.devtools.tryton import sample_invoices
from connectors.devtools.tryton.sample_invoices import TAXES, figures, invoice_specs, load, problems
from connectors.devtools.tryton.sandbox import BUILD_INPUTS, BUILD_SCRIPT


def _builder_constants() -> dict[str, list]:
    """Literal lists of sandbox_build.py (it imports proteus: read, not imported)."""
    found = {}
    for node in ast.parse(BUILD_SCRIPT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in {"CUSTOMER_SPECS", "SUPPLIER_SPECS", "NAMED_ACCOUNTS"}:
                found[name] = [
                    element.elts[0].value if isinstance(element, ast.Tuple) else element.value
                    for element in node.value.elts
                ]
    return found


def test_the_file_holds_every_sample_invoice_and_finds_no_problem():
    data = load()
    assert problems(data) == []
    assert len(data["invoices"]) == 37
    by_key = {invoice["key"]: invoice for invoice in data["invoices"]}
    # Figures the live tests rely on (tests/integration/test_tryton_sandbox.py and others).
    assert figures(by_key["out_rounding"], by_key)[1:] == (Decimal("0.20"), Decimal("1.19"))
    assert figures(by_key["in_eu_acquisition"], by_key)[1] == Decimal("0.00")
    assert figures(by_key["out_credit_note_from_invoice"], by_key) == (
        Decimal("-3250.00"),
        Decimal("-650.00"),
        Decimal("-3900.00"),
    )


def test_each_invoice_balances_and_its_lines_make_its_stated_figures():
    data = load()
    earlier = {}
    for invoice in data["invoices"]:
        stated = tuple(Decimal(invoice[name]) for name in ("untaxed", "tax", "total"))
        assert stated[0] + stated[1] == stated[2], invoice["key"]
        assert figures(invoice, earlier) == stated, invoice["key"]
        earlier[invoice["key"]] = invoice


def test_each_line_names_a_known_tax_an_account_the_builder_names_and_a_known_party():
    known = _builder_constants()
    parties = {"out": set(known["CUSTOMER_SPECS"]), "in": set(known["SUPPLIER_SPECS"])}
    accounts = set(known["NAMED_ACCOUNTS"])
    for invoice in load()["invoices"]:
        assert invoice["party"] in parties[invoice["type"]], invoice["key"]
        for line in invoice.get("lines", []):
            assert line["tax"] is None or tuple(line["tax"]) in TAXES, invoice["key"]
            assert line["account"] in accounts, (invoice["key"], line["account"])


def _edited(edit) -> list[str]:
    data = copy.deepcopy(load())
    edit({invoice["key"]: invoice for invoice in data["invoices"]}, data)
    return problems(data)


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda inv, _: inv["out_services_20"]["lines"][0].update(unit_price="651.00"), "make"),
        (lambda inv, _: inv["out_services_20"].update(total="3900.01"), "balance"),
        (lambda inv, _: inv["out_food_5_5"]["lines"][0].update(tax=["sale", "7"]), "unknown tax"),
        (lambda inv, _: inv["in_transport"]["lines"][0].update(tax=["sale", "20"]), "tax"),
        (lambda inv, _: inv["in_transport"]["lines"][0].update(account="706"), "class 6"),
        (lambda inv, _: inv["out_draft"].update(state="sent"), "unknown state"),
        (lambda inv, _: inv["out_paid"]["lines"][0].update(unit="kg"), "fields"),
        (lambda inv, _: inv["in_recent"].update(credit_of="in_transport"), "lines or credit_of"),
        (lambda inv, d: d["invoices"].append(dict(inv["out_draft"])), "key used twice"),
        (lambda inv, _: inv["out_cancelled"].update(expect="fail"), "expected_error"),
        (lambda inv, _: inv["out_last_year"].update(days=3), "days or date"),
    ],
)
def test_an_edit_that_breaks_an_invoice_is_found(edit, says):
    found = _edited(edit)
    assert found, "the edit went unnoticed"
    assert any(says in problem for problem in found), found


def test_the_builder_gets_the_invoices_in_date_order_and_refuses_a_broken_file():
    today = dt.date(2026, 12, 3)
    specs = invoice_specs(today)
    assert len(specs) == 37
    assert [spec["date"] for spec in specs] == sorted(spec["date"] for spec in specs)
    first = specs[0]
    assert first["date"] == dt.date(2025, 12, 15) and first["days"] is None
    services = next(spec for spec in specs if spec["key"] == "out_services_20")
    assert services["date"] == today - dt.timedelta(days=95)
    assert services["lines"] == [("Conseil en organisation", 5, "650.00", ("sale", "20"), "706")]
    assert services["state"] == "posted" and services["term"] == "30 jours"

    broken = copy.deepcopy(load())
    broken["invoices"][0]["tax"] = "0.00"
    with pytest.raises(ValueError, match="out_services_20"):
        invoice_specs(today, broken)


def test_a_change_to_the_sample_invoices_changes_the_template_key():
    assert BUILD_SCRIPT in BUILD_INPUTS
    assert sample_invoices.DATA in BUILD_INPUTS
    assert {path.name for path in BUILD_INPUTS} >= {"sample_invoices.py", "sample_invoices.json"}
