"""INVOICE.json, CONFIG.json and engine results as JSON, per the posting-preview contract.

No database: the serialization is pure Python.
"""

import copy
import datetime as dt
import json
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.canonical import (
    Account,
    Direction,
    EntryLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Partner,
    Posting,
    TargetLookups,
    TaxRole,
    VatCode,
)
from connectors.errors import CATALOGUE, ErrorCode
from syncs.config import FlowConfig, VatRule
from syncs.engine import Posted, Rejected, Skipped, Waiting
from syncs.serialization import (
    InputError,
    config_from_json,
    config_to_json,
    invoice_from_json,
    invoice_to_json,
    posting_to_json,
    result_to_json,
    result_to_table,
)
from tests.factories import InvoiceFactory, InvoiceLineFactory, PartnerFactory

# The contract's examples, verbatim.
CONTRACT_INVOICE_JSON = """{
  "source_id": "inv-42", "number": "F2026-0042", "type": "customer_invoice",
  "issue_date": "2026-03-01", "due_date": "2026-03-31", "currency": "EUR", "exchange_rate": null,
  "untaxed_amount": "100.00", "tax_amount": "20.00", "total": "120.00",
  "journal_code": null,
  "partner": {"source_id": "c-7", "name": "ACME SAS", "vat_number": "FR40303265045",
              "company_number": "30326504500016", "auxiliary_account": null, "country": "FR"},
  "lines": [{"description": "Consulting", "quantity": "1", "unit_price": "100.00",
             "discount_amount": "0.00", "untaxed_amount": "100.00", "tax_rate": "20.0",
             "tax_id": null, "tax_amount": "20.00", "total": "120.00", "account_number": null}],
  "has_attachment": true
}"""

CONTRACT_CONFIG_JSON = """{
  "scope": "both", "start_date": "2026-01-01", "draft": false,
  "sync_without_attachment": true, "separate_discounts": false,
  "label_mode": "partner_then_description",
  "rounding_tolerance": "0.05",
  "journals": {"sales": "REV", "purchases": "EXP", "by_source_journal": null},
  "accounts": {"sales_default": "706", "purchases_default": "6071",
               "customer_collective": "4111", "supplier_collective": "4011",
               "rounding_credit": "758", "rounding_debit": "658",
               "sales_discount": "709", "purchases_discount": "609"},
  "vat": {"sales": [{"rate": "20.0", "tax_id": null, "code": "V20"}],
          "purchases": [{"rate": "20.0", "tax_id": null, "code": "A20"}],
          "rounding": {"sales": "V0", "purchases": "A0"}},
  "target": {"accounts": [{"number": "706", "active": true}],
             "vat_codes": [{"code": "V20", "rate": "20.0", "account": "44571"}],
             "journals": [{"code": "REV"}]}
}"""


def contract_invoice() -> dict:
    return json.loads(CONTRACT_INVOICE_JSON)


def contract_config() -> dict:
    return json.loads(CONTRACT_CONFIG_JSON)


def full_config() -> FlowConfig:
    """Every setting away from its default, so that a round trip proves each key is carried."""
    return FlowConfig(
        scope="sales",
        start_date=dt.date(2026, 1, 1),
        draft=True,
        sync_without_attachment=False,
        separate_discounts=True,
        label_mode="partner_and_number",
        rounding_tolerance=D("0.10"),
        company_currency="CHF",
        sales_journal="VE",
        purchases_journal="AC",
        journals_by_source={"SAL": "VE", "PUR": "AC"},
        sales_default="706",
        purchases_default="6071",
        customer_collective="4111",
        supplier_collective="4011",
        rounding_credit="758",
        rounding_debit="658",
        sales_discount="709",
        purchases_discount="609",
        sales_vat=(VatRule(D("20.0"), None, "V20"), VatRule(None, "tax-7", "V55")),
        purchases_vat=(VatRule(D("0"), None, "A0"),),
        sales_rounding_vat="V0",
        purchases_rounding_vat=None,
        target=TargetLookups(
            accounts=(
                Account("706", "Services", True),
                Account("4111", "", True),
                Account("658", "Old charges", False),
            ),
            vat_codes=(
                VatCode("V20", D("20.0"), "Output 20 %", "44571", Direction.SALES),
                VatCode("V55", D("5.5"), "", None, None),
                VatCode("EXO", None, "Exempt", None, Direction.PURCHASES),
            ),
            journals=("VE", "AC"),
        ),
    )


# Contract examples


def test_contract_invoice_example_parses_to_the_canonical_invoice():
    invoice = invoice_from_json(contract_invoice())

    assert invoice == Invoice(
        source_id="inv-42",
        number="F2026-0042",
        type=InvoiceType.CUSTOMER_INVOICE,
        issue_date=dt.date(2026, 3, 1),
        due_date=dt.date(2026, 3, 31),
        currency="EUR",
        exchange_rate=None,
        untaxed_amount=D("100.00"),
        tax_amount=D("20.00"),
        total=D("120.00"),
        journal_code=None,
        partner=Partner(
            source_id="c-7",
            name="ACME SAS",
            vat_number="FR40303265045",
            company_number="30326504500016",
            auxiliary_account=None,
            country="FR",
        ),
        lines=(
            InvoiceLine(
                description="Consulting",
                quantity=D("1"),
                unit_price=D("100.00"),
                discount_amount=D("0.00"),
                untaxed_amount=D("100.00"),
                tax_rate=D("20.0"),
                tax_id=None,
                tax_amount=D("20.00"),
                total=D("120.00"),
                account_number=None,
            ),
        ),
        has_attachment=True,
    )
    assert invoice.status is InvoiceStatus.FINAL
    assert invoice.updated_at is None


def test_contract_config_example_parses_to_the_flow_config():
    config = config_from_json(contract_config())

    assert config == FlowConfig(
        scope="both",
        start_date=dt.date(2026, 1, 1),
        draft=False,
        sync_without_attachment=True,
        separate_discounts=False,
        label_mode="partner_then_description",
        rounding_tolerance=D("0.05"),
        company_currency="EUR",
        sales_journal="REV",
        purchases_journal="EXP",
        journals_by_source=None,
        sales_default="706",
        purchases_default="6071",
        customer_collective="4111",
        supplier_collective="4011",
        rounding_credit="758",
        rounding_debit="658",
        sales_discount="709",
        purchases_discount="609",
        sales_vat=(VatRule(D("20.0"), None, "V20"),),
        purchases_vat=(VatRule(D("20.0"), None, "A20"),),
        sales_rounding_vat="V0",
        purchases_rounding_vat="A0",
        target=TargetLookups(
            accounts=(Account("706", "", True),),
            vat_codes=(VatCode("V20", D("20.0"), "", "44571"),),
            journals=("REV",),
        ),
    )


def test_contract_invoice_example_written_back_keeps_every_contract_key_and_value():
    written = invoice_to_json(invoice_from_json(contract_invoice()))

    original = contract_invoice()
    for key, value in original.items():
        if key not in ("partner", "lines"):
            assert written[key] == value, key
    assert {k: written["partner"][k] for k in original["partner"]} == original["partner"]
    assert {k: written["lines"][0][k] for k in original["lines"][0]} == original["lines"][0]


def test_contract_config_example_written_back_keeps_every_contract_key_and_value():
    written = config_to_json(config_from_json(contract_config()))

    original = contract_config()
    for key in ("scope", "start_date", "draft", "sync_without_attachment", "separate_discounts"):
        assert written[key] == original[key]
    assert written["label_mode"] == original["label_mode"]
    assert written["rounding_tolerance"] == original["rounding_tolerance"]
    assert written["journals"] == original["journals"]
    assert written["accounts"] == original["accounts"]
    assert written["vat"] == original["vat"]
    assert written["target"]["accounts"] == [{"number": "706", "active": True, "name": ""}]
    assert written["target"]["vat_codes"][0] | {"name": "", "direction": None} == {
        "code": "V20",
        "rate": "20.0",
        "account": "44571",
        "name": "",
        "direction": None,
    }
    assert written["target"]["journals"] == [{"code": "REV"}]
    assert written["company_currency"] == "EUR"


# Round trips


@pytest.mark.parametrize(
    "invoice",
    [
        pytest.param(InvoiceFactory(), id="factory"),
        pytest.param(InvoiceFactory(partner=None), id="no-partner"),
        pytest.param(
            InvoiceFactory(
                type=InvoiceType.SUPPLIER_REFUND,
                currency="USD",
                exchange_rate=D("1.0842"),
                journal_code="PUR",
                due_date=None,
                has_attachment=False,
                status=InvoiceStatus.PAID,
                updated_at=dt.datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=dt.UTC),
                partner=PartnerFactory(
                    vat_number="FR40303265045",
                    company_number="30326504500016",
                    auxiliary_account="401ACME",
                    email="billing@example.com",
                    address="1 rue de la Paix\n75002 Paris",
                ),
                lines=(
                    InvoiceLineFactory(
                        description="",
                        quantity=D("2.5"),
                        unit_price=D("40.004"),
                        discount_amount=D("0.01"),
                        untaxed_amount=D("100.00"),
                        tax_rate=None,
                        tax_id="tax-7",
                        tax_amount=D("0.00"),
                        account_number="6071",
                        product_code="SKU-1",
                    ),
                    InvoiceLineFactory(tax_rate=D("5.5"), untaxed_amount=D("-10.00")),
                ),
            ),
            id="every-optional-field",
        ),
        pytest.param(InvoiceFactory(currency="JPY", lines=()), id="no-lines"),
        pytest.param(
            InvoiceFactory(untaxed_amount=D("1E+2"), tax_amount=D("0E-7"), total=D("-0.00000001")),
            id="exponent-decimals",
        ),
    ],
)
def test_invoice_round_trips_through_json(invoice):
    as_json = invoice_to_json(invoice)

    assert invoice_from_json(as_json) == invoice
    # And the document survives a real JSON encoding (no Decimal or date left in it).
    assert invoice_from_json(json.loads(json.dumps(as_json))) == invoice


_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4, max_value=10**9)
_text = st.text(max_size=20)
_optional_text = st.none() | _text
_lines = st.builds(
    InvoiceLine,
    description=_text,
    quantity=_decimals,
    unit_price=_decimals,
    untaxed_amount=_decimals,
    tax_amount=_decimals,
    total=_decimals,
    discount_amount=_decimals,
    tax_rate=st.none() | _decimals,
    tax_id=_optional_text,
    account_number=_optional_text,
    product_code=_optional_text,
)
_invoices = st.builds(
    Invoice,
    source_id=_text,
    number=_text,
    type=st.sampled_from(InvoiceType),
    issue_date=st.dates(),
    currency=st.sampled_from(["EUR", "USD", "JPY", "KWD"]),
    untaxed_amount=_decimals,
    tax_amount=_decimals,
    total=_decimals,
    partner=st.none()
    | st.builds(
        Partner,
        source_id=_text,
        name=_text,
        vat_number=_optional_text,
        company_number=_optional_text,
        auxiliary_account=_optional_text,
        country=_optional_text,
        email=_optional_text,
        address=_optional_text,
    ),
    lines=st.lists(_lines, max_size=3).map(tuple),
    due_date=st.none() | st.dates(),
    exchange_rate=st.none() | _decimals,
    journal_code=_optional_text,
    has_attachment=st.booleans(),
    updated_at=st.none() | st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    status=st.sampled_from(InvoiceStatus),
)


@given(_invoices)
def test_any_invoice_round_trips_through_json_text(invoice):
    text = json.dumps(invoice_to_json(invoice))

    assert invoice_from_json(json.loads(text)) == invoice


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(FlowConfig(), id="defaults"),
        pytest.param(full_config(), id="every-setting"),
    ],
)
def test_config_round_trips_through_json(config):
    as_json = config_to_json(config)

    assert config_from_json(as_json) == config
    assert config_from_json(json.loads(json.dumps(as_json))) == config


def test_empty_config_document_gives_flow_config_defaults():
    assert config_from_json({}) == FlowConfig()


def test_config_sections_may_be_partial():
    config = config_from_json(
        {"accounts": {"sales_default": "706"}, "vat": {"rounding": {}}, "target": {}}
    )

    assert config == FlowConfig(sales_default="706")


def test_config_accepts_every_label_mode_and_scope():
    for mode in ("partner_then_description", "partner", "partner_and_description"):
        assert config_from_json({"label_mode": mode}).label_mode == mode
    for scope in ("sales", "purchases", "both"):
        assert config_from_json({"scope": scope}).scope == scope


def test_invoice_extra_keys_are_ignored():
    data = contract_invoice()
    data["vendor_payload"] = {"anything": [1, 2]}
    data["partner"]["phone"] = "+33 1 23 45 67 89"
    data["lines"][0]["sku_family"] = "services"

    assert invoice_from_json(data) == invoice_from_json(contract_invoice())


def test_invoice_optional_keys_take_canonical_defaults():
    data = contract_invoice()
    for key in ("due_date", "exchange_rate", "journal_code", "partner", "has_attachment"):
        del data[key]
    for key in ("discount_amount", "tax_rate", "tax_id", "account_number"):
        del data["lines"][0][key]

    invoice = invoice_from_json(data)

    assert invoice.partner is None
    assert invoice.due_date is None
    assert invoice.has_attachment is False
    assert invoice.status is InvoiceStatus.FINAL
    assert invoice.lines[0].discount_amount == D("0")
    assert invoice.lines[0].tax_rate is None


def test_partner_may_be_null():
    data = contract_invoice()
    data["partner"] = None

    assert invoice_from_json(data).partner is None


# Numbers


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        ("120.00", D("120.00")),
        ("-0.5", D("-0.5")),
        ("1E+2", D("1E+2")),
        (120, D("120")),
        (120.1, D("120.1")),  # via str(), never the float's binary expansion
        (0.1, D("0.1")),
        (D("120.10"), D("120.10")),  # what json.loads(parse_float=Decimal) gives
    ],
)
def test_amounts_are_read_exactly(given_value, expected):
    data = contract_invoice()
    data["total"] = given_value

    total = invoice_from_json(data).total

    assert total == expected
    assert str(total) == str(expected)


@pytest.mark.parametrize(
    "bad_value",
    [
        "abc",
        "",
        " 1.00",
        "1,50",
        "1_000",
        "NaN",
        "Infinity",
        "-inf",
        "0x10",
        float("nan"),
        float("inf"),
        D("NaN"),
        D("-Infinity"),
        True,
        None,
        ["1"],
    ],
)
def test_non_decimal_amounts_are_refused_naming_the_field(bad_value):
    data = contract_invoice()
    data["lines"][0]["untaxed_amount"] = bad_value

    with pytest.raises(InputError) as caught:
        invoice_from_json(data)

    assert caught.value.field == "lines[0].untaxed_amount"
    assert "lines[0].untaxed_amount" in str(caught.value)


# Every InputError names its field


def _set(path: tuple, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: tuple):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _two_lines(data):
    data["lines"].append(copy.deepcopy(data["lines"][0]))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        *[
            (_delete((key,)), key)
            for key in (
                "source_id",
                "number",
                "type",
                "issue_date",
                "currency",
                "untaxed_amount",
                "tax_amount",
                "total",
                "lines",
            )
        ],
        *[
            (_delete(("lines", 0, key)), f"lines[0].{key}")
            for key in (
                "description",
                "quantity",
                "unit_price",
                "untaxed_amount",
                "tax_amount",
                "total",
            )
        ],
        (_delete(("partner", "name")), "partner.name"),
        (_delete(("partner", "source_id")), "partner.source_id"),
        (_set(("source_id",), 42), "source_id"),
        (_set(("number",), None), "number"),
        (_set(("type",), "invoice"), "type"),
        (_set(("type",), "Customer_Invoice"), "type"),
        (_set(("issue_date",), "01/03/2026"), "issue_date"),
        (_set(("issue_date",), "2026-02-30"), "issue_date"),
        (_set(("issue_date",), "20260301"), "issue_date"),
        (_set(("issue_date",), "2026-03-01T00:00:00"), "issue_date"),
        (_set(("due_date",), 20260331), "due_date"),
        (_set(("currency",), "eur"), "currency"),
        (_set(("currency",), "EURO"), "currency"),
        (_set(("currency",), None), "currency"),
        (_set(("exchange_rate",), "1,08"), "exchange_rate"),
        (_set(("tax_amount",), "twenty"), "tax_amount"),
        (_set(("total",), "Infinity"), "total"),
        (_set(("journal_code",), 7), "journal_code"),
        (_set(("has_attachment",), "true"), "has_attachment"),
        (_set(("has_attachment",), 1), "has_attachment"),
        (_set(("updated_at",), "yesterday"), "updated_at"),
        (_set(("status",), "open"), "status"),
        (_set(("partner",), "ACME SAS"), "partner"),
        (_set(("partner", "vat_number"), 303265045), "partner.vat_number"),
        (_set(("lines",), {"0": {}}), "lines"),
        (_set(("lines",), "Consulting"), "lines"),
        (_set(("lines", 0), "Consulting"), "lines[0]"),
        (_set(("lines", 0, "description"), None), "lines[0].description"),
        (_set(("lines", 0, "quantity"), "one"), "lines[0].quantity"),
        (_set(("lines", 0, "unit_price"), "100.00 EUR"), "lines[0].unit_price"),
        (_set(("lines", 0, "discount_amount"), "-"), "lines[0].discount_amount"),
        (_set(("lines", 0, "tax_rate"), "20%"), "lines[0].tax_rate"),
        (_set(("lines", 0, "tax_id"), 12), "lines[0].tax_id"),
        (_set(("lines", 0, "tax_amount"), "NaN"), "lines[0].tax_amount"),
        (_set(("lines", 0, "total"), ""), "lines[0].total"),
        (_set(("lines", 0, "account_number"), 706), "lines[0].account_number"),
        (_set(("lines", 0, "product_code"), ["SKU"]), "lines[0].product_code"),
        (
            lambda data: (_two_lines(data), _set(("lines", 1, "tax_rate"), "abc")(data)),
            "lines[1].tax_rate",
        ),
    ],
)
def test_invalid_invoice_raises_input_error_naming_the_field(change, field):
    data = contract_invoice()
    change(data)

    with pytest.raises(InputError) as caught:
        invoice_from_json(data)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("document", [[], "INVOICE", None, 42])
def test_invoice_document_must_be_an_object(document):
    with pytest.raises(InputError, match="JSON object") as caught:
        invoice_from_json(document)

    assert caught.value.field == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set(("scope",), "all"), "scope"),
        (_set(("start_date",), "2026-13-01"), "start_date"),
        (_set(("draft",), "no"), "draft"),
        (_set(("sync_without_attachment",), None), "sync_without_attachment"),
        (_set(("separate_discounts",), 0), "separate_discounts"),
        (_set(("label_mode",), "description"), "label_mode"),
        (_set(("label_mode",), None), "label_mode"),
        (_set(("rounding_tolerance",), "five cents"), "rounding_tolerance"),
        (_set(("rounding_tolerance",), "-0.05"), "rounding_tolerance"),
        (_set(("company_currency",), "euro"), "company_currency"),
        (_set(("journals",), ["REV"]), "journals"),
        (_set(("journals", "sales"), 411), "journals.sales"),
        (_set(("journals", "purchases"), ["EXP"]), "journals.purchases"),
        (_set(("journals", "by_source_journal"), ["SAL"]), "journals.by_source_journal"),
        (
            _set(("journals", "by_source_journal"), {"SAL": 1}),
            "journals.by_source_journal.SAL",
        ),
        (_set(("accounts",), "706"), "accounts"),
        *[
            (_set(("accounts", key), 706), f"accounts.{key}")
            for key in (
                "sales_default",
                "purchases_default",
                "customer_collective",
                "supplier_collective",
                "rounding_credit",
                "rounding_debit",
                "sales_discount",
                "purchases_discount",
            )
        ],
        (_set(("vat",), []), "vat"),
        (_set(("vat", "sales"), {"rate": "20.0"}), "vat.sales"),
        (_set(("vat", "sales", 0), "V20"), "vat.sales[0]"),
        (_set(("vat", "sales", 0, "rate"), "20 %"), "vat.sales[0].rate"),
        (_set(("vat", "sales", 0, "tax_id"), 3), "vat.sales[0].tax_id"),
        (_delete(("vat", "purchases", 0, "code")), "vat.purchases[0].code"),
        (_set(("vat", "purchases", 0, "code"), None), "vat.purchases[0].code"),
        (_set(("vat", "rounding"), "V0"), "vat.rounding"),
        (_set(("vat", "rounding", "sales"), 0), "vat.rounding.sales"),
        (_set(("vat", "rounding", "purchases"), False), "vat.rounding.purchases"),
        (_set(("target",), None), "target"),
        (_set(("target", "accounts"), "706"), "target.accounts"),
        (_set(("target", "accounts", 0), "706"), "target.accounts[0]"),
        (_delete(("target", "accounts", 0, "number")), "target.accounts[0].number"),
        (_set(("target", "accounts", 0, "number"), 706), "target.accounts[0].number"),
        (_set(("target", "accounts", 0, "active"), "yes"), "target.accounts[0].active"),
        (_set(("target", "accounts", 0, "name"), None), "target.accounts[0].name"),
        (_delete(("target", "vat_codes", 0, "code")), "target.vat_codes[0].code"),
        (_set(("target", "vat_codes", 0, "rate"), "twenty"), "target.vat_codes[0].rate"),
        (_set(("target", "vat_codes", 0, "account"), 44571), "target.vat_codes[0].account"),
        (_set(("target", "vat_codes", 0, "direction"), "both"), "target.vat_codes[0].direction"),
        (_set(("target", "journals"), "REV"), "target.journals"),
        (_set(("target", "journals", 0), "REV"), "target.journals[0]"),
        (_delete(("target", "journals", 0, "code")), "target.journals[0].code"),
    ],
)
def test_invalid_config_raises_input_error_naming_the_field(change, field):
    data = contract_config()
    change(data)

    with pytest.raises(InputError) as caught:
        config_from_json(data)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_config_document_must_be_an_object():
    with pytest.raises(InputError, match="JSON object"):
        config_from_json(["scope", "both"])


# Results


def contract_posting(**changes) -> Posting:
    values = {
        "journal": "REV",
        "date": dt.date(2026, 3, 1),
        "due_date": dt.date(2026, 3, 31),
        "reference": "F2026-0042",
        "external_id": "flow-1:inv-42",
        "currency": "EUR",
        "company_currency": "EUR",
        "draft": False,
        "partner_name": "ACME SAS",
        "lines": (
            EntryLine("4111", D("120"), D("0"), "ACME SAS", partner="ACME SAS"),
            EntryLine(
                "706", D("0"), D("100.00"), "Consulting", vat_code="V20", tax_role=TaxRole.BASE
            ),
            EntryLine(
                "44571", D("0"), D("20.004"), "VAT 20 %", vat_code="V20", tax_role=TaxRole.TAX
            ),
        ),
    }
    return Posting(**(values | changes))


CONTRACT_OK_OUTPUT = {
    "status": "ok",
    "entry": {
        "journal": "REV",
        "date": "2026-03-01",
        "due_date": "2026-03-31",
        "reference": "F2026-0042",
        "currency": "EUR",
        "draft": False,
        "lines": [
            {
                "account": "4111",
                "partner": "ACME SAS",
                "debit": "120.00",
                "credit": "0.00",
                "label": "ACME SAS",
                "vat_code": None,
            },
            {
                "account": "706",
                "partner": None,
                "debit": "0.00",
                "credit": "100.00",
                "label": "Consulting",
                "vat_code": "V20",
            },
            {
                "account": "44571",
                "partner": None,
                "debit": "0.00",
                "credit": "20.00",
                "label": "VAT 20 %",
                "vat_code": "V20",
            },
        ],
    },
}


def test_posted_result_is_the_contract_json_with_amounts_at_the_currency_decimals():
    assert result_to_json(Posted(contract_posting())) == CONTRACT_OK_OUTPUT


def test_posted_result_in_a_foreign_currency_adds_company_currency_and_amount_currency():
    posting = contract_posting(
        currency="USD",
        company_currency="JPY",
        lines=(
            EntryLine(
                "4111", D("15000.4"), D("0"), "ACME", partner="ACME", amount_currency=D("100")
            ),
            EntryLine(
                "706", D("0"), D("15000.4"), "Consulting", vat_code="V0", amount_currency=D("-100")
            ),
        ),
    )

    entry = result_to_json(Posted(posting))["entry"]

    assert entry["currency"] == "USD"
    assert entry["company_currency"] == "JPY"
    assert [(line["debit"], line["credit"]) for line in entry["lines"]] == [
        ("15000", "0"),
        ("0", "15000"),
    ]
    assert [line["amount_currency"] for line in entry["lines"]] == ["100.00", "-100.00"]


def test_tax_line_without_account_is_null_in_json():
    posting = contract_posting(
        lines=(EntryLine(None, D("0"), D("20"), "V20", vat_code="V20", tax_role=TaxRole.TAX),)
    )

    assert posting_to_json(posting)["lines"][0]["account"] is None


def test_rejected_result_is_the_contract_error_json():
    result = Rejected(
        ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
        "Sales VAT rate 5.5 % is not mapped to a VAT code.",
        "lines[1].tax_rate",
    )

    assert result_to_json(result) == {
        "status": "error",
        "code": "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND",
        "message": "Sales VAT rate 5.5 % is not mapped to a VAT code.",
        "field": "lines[1].tax_rate",
    }


def test_skipped_and_waiting_results_are_the_contract_json():
    assert result_to_json(Skipped("Before the start date.")) == {
        "status": "skipped",
        "reason": "Before the start date.",
    }
    assert result_to_json(Waiting()) == {"status": "waiting", "reason": "attachment"}


def test_results_are_json_serializable():
    for result in (Posted(contract_posting()), Rejected(ErrorCode.PDF, "No PDF."), Waiting()):
        json.dumps(result_to_json(result))


def test_posted_table_shows_header_lines_and_totals():
    table = result_to_table(Posted(contract_posting()))
    lines = table.splitlines()

    assert "REV" in lines[0]
    assert "2026-03-01" in lines[0]
    assert "F2026-0042" in lines[0]
    assert "EUR" in lines[0]
    assert "Draft: no" in lines[0]
    header = next(line for line in lines if line.startswith("Account"))
    for column in ("Partner", "Debit", "Credit", "Label", "VAT code"):
        assert column in header
    assert any(line.split()[:1] == ["4111"] and "120.00" in line for line in lines)
    assert any(line.split()[:1] == ["706"] and "Consulting" in line for line in lines)
    assert any(line.split()[:1] == ["44571"] and "20.00" in line for line in lines)
    assert lines[-1].split() == ["Total", "120.00", "120.00"]


def test_rejected_table_shows_code_message_field_and_resolution():
    code = ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
    table = result_to_table(
        Rejected(code, "Sales VAT rate 5.5 % is not mapped.", "lines[1].tax_rate")
    )

    assert code.value in table
    assert "Sales VAT rate 5.5 % is not mapped." in table
    assert "lines[1].tax_rate" in table
    assert CATALOGUE[code].resolution in table


def test_skipped_and_waiting_tables_say_so():
    assert result_to_table(Skipped("Outside the scope.")) == "Skipped: Outside the scope."
    assert result_to_table(Waiting()).startswith("Waiting:")
    assert "attachment" in result_to_table(Waiting())
