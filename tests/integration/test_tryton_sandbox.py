"""The Tryton sandbox itself: a real trytond over raw JSON-RPC, against what the build declares."""

from collections import Counter
from decimal import Decimal

import pytest

# Also registered for the whole suite in tests/conftest.py; naming it here keeps this module
# runnable on its own. A plugin is registered once whichever module names it first.
pytest_plugins = ["tests.tryton_fixtures"]

pytestmark = pytest.mark.tryton


def _decimal(value) -> Decimal:
    assert value["__class__"] == "Decimal"
    return Decimal(value["decimal"])


def test_accounting_copy_has_the_french_chart(tryton_accounting):
    accounts = tryton_accounting.call(
        "model.account.account.search_read",
        [
            [["code", "in", ["4111", "4011", "706", "44571"]]],
            0,
            None,
            [["code", "ASC"]],
            ["code", "closed", "party_required", "type.receivable", "type.payable", "type.revenue"],
        ],
        context=True,
    )
    by_code = {account["code"]: account for account in accounts}
    assert set(by_code) == {"4111", "4011", "706", "44571"}
    assert by_code["4111"]["type."]["receivable"] and by_code["4111"]["party_required"]
    assert by_code["4011"]["type."]["payable"] and by_code["4011"]["party_required"]
    assert by_code["706"]["type."]["revenue"] and not by_code["706"]["closed"]
    manifest = tryton_accounting.manifest
    assert manifest["accounts"]["4111"]["id"] == by_code["4111"]["id"]


def test_accounting_copy_has_company_fiscal_years_and_existing_parties(tryton_accounting):
    manifest = tryton_accounting.manifest
    years = tryton_accounting.call(
        "model.account.fiscalyear.search_read",
        [[], 0, None, [["start_date", "ASC"]], ["name", "state", "periods"]],
        context=True,
    )
    assert [y["name"] for y in years] == [y["name"] for y in manifest["fiscal_years"]]
    assert all(len(y["periods"]) == 12 for y in years)
    companies = tryton_accounting.call(
        "model.company.company.search_read",
        [[], 0, None, None, ["party.name", "currency.code"]],
        context=True,
    )
    assert [(c["party."]["name"], c["currency."]["code"]) for c in companies] == [
        (manifest["company"]["name"], "EUR")
    ]
    for existing in manifest["existing_parties"]:
        found = tryton_accounting.call(
            "model.party.identifier.search_read",
            [
                [
                    ["type", "=", "fr_siren"],
                    ["code_compact", "=", existing["identifiers"]["fr_siren"]],
                ],
                0,
                None,
                None,
                ["party.name"],
            ],
            context=True,
        )
        assert [f["party."]["name"] for f in found] == [existing["name"]]


def test_invoicing_copy_matches_the_manifest(tryton_invoicing):
    manifest = tryton_invoicing.manifest
    invoices = tryton_invoicing.call(
        "model.account.invoice.search_read",
        [
            [],
            0,
            None,
            [["id", "ASC"]],
            [
                "number",
                "type",
                "state",
                "total_amount",
                "untaxed_amount",
                "tax_amount",
                "currency.code",
                "party.name",
            ],
        ],
        context=True,
    )
    counts = manifest["counts"]
    assert len(invoices) == counts["total"] >= 30
    assert Counter(i["type"] for i in invoices) == Counter(counts["by_type"])
    assert Counter(i["state"] for i in invoices) == Counter(counts["by_state"])
    assert Counter(f"{i['type']}/{i['state']}" for i in invoices) == Counter(
        counts["by_type_state"]
    )

    by_id = {i["id"]: i for i in invoices}
    for expected in manifest["invoices"]:
        actual = by_id[expected["id"]]
        assert actual["number"] == expected["number"], expected["key"]
        assert _decimal(actual["total_amount"]) == Decimal(expected["total"]), expected["key"]
        assert actual["currency."]["code"] == expected["currency"]
        assert actual["party."]["name"] == expected["party_name"]

    kinds = Counter(i["canonical_type"] for i in manifest["invoices"])
    assert kinds["customer_refund"] >= 1 and kinds["supplier_refund"] >= 1
    keys = {i["key"]: i for i in manifest["invoices"]}
    assert (
        keys["out_unmapped_tax"]["expected_error"]
        == "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
    )
    assert "2.1" in keys["out_unmapped_tax"]["tax_rates"]
    assert keys["out_usd_export"]["currency"] == "USD"
    assert keys["out_draft"]["number"] is None and keys["out_draft"]["expect"] == "skip"
    assert keys["out_cancelled"]["state"] == "cancelled"
    rates = {rate for invoice in manifest["invoices"] for rate in invoice["tax_rates"]}
    assert {"20", "10", "5.5", "0", "2.1"} <= rates


def test_rounding_invoice_total_differs_from_the_sum_of_line_taxes(tryton_invoicing):
    invoice = {i["key"]: i for i in tryton_invoicing.manifest["invoices"]}["out_rounding"]
    assert all(line["tax_rates"] == ["20"] for line in invoice["lines"])
    line_taxes = sum(
        (Decimal(line["untaxed_amount"]) * Decimal("0.20")).quantize(Decimal("0.01"))
        for line in invoice["lines"]
    )
    assert Decimal(invoice["tax_amount"]) == Decimal("0.20")
    assert line_taxes == Decimal("0.21")


def test_party_identifiers_are_stored_as_the_manifest_says(tryton_invoicing):
    parties = {p["key"]: p for p in tryton_invoicing.manifest["parties"]}
    identifiers = tryton_invoicing.call(
        "model.party.identifier.search_read",
        [[], 0, None, None, ["type", "code_compact", "party"]],
        context=True,
    )
    stored = {(i["party"], i["type"], i["code_compact"]) for i in identifiers}
    for party in parties.values():
        for kind, code in party["identifiers"].items():
            assert (party["id"], kind, code) in stored, (party["key"], kind)
    assert parties["mueller_gmbh"]["identifiers"]["eu_vat"].startswith("DE")
    assert "fr_siret" in parties["boulangerie_martin"]["identifiers"]


def test_fresh_accounting_copies_are_isolated(tryton_sandbox, tryton_accounting):
    tryton_accounting.call("model.party.party.create", [[{"name": "Only here"}]], context=True)
    other = tryton_sandbox.fresh_database("accounting")
    from tests.tryton_fixtures import _database

    second = _database(tryton_sandbox, other, "accounting")
    assert (
        second.call("model.party.party.search_count", [[["name", "=", "Only here"]]], context=True)
        == 0
    )
    assert (
        tryton_accounting.call(
            "model.party.party.search_count", [[["name", "=", "Only here"]]], context=True
        )
        == 1
    )


def test_a_session_survives_the_pool_refill_restart(tryton_sandbox, tryton_invoicing):
    before = tryton_invoicing.call("model.account.invoice.search_count", [[]], context=True)
    starts = len(tryton_sandbox.timings.server_starts)
    # Use up the fresh invoicing batch (size 1) twice: the second one refills and restarts.
    tryton_sandbox.fresh_database("invoicing")
    tryton_sandbox.fresh_database("invoicing")
    assert len(tryton_sandbox.timings.server_starts) == starts + 1
    assert tryton_invoicing.call("model.account.invoice.search_count", [[]], context=True) == before


def test_report_timings(tryton_sandbox):
    timings = tryton_sandbox.timings
    print("\nTryton sandbox timings:", timings.summary())
    assert timings.server_starts
