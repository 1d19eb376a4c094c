"""``manage.py preview_posting`` run for real in a subprocess: stdout, stderr and exit codes are the
contract (0 entry/skipped/waiting, 3 rejected, 2 invalid input).

The database URL points at a directory that does not exist, so any database access would fail.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CONTRACT_INVOICE = {
    "source_id": "inv-42",
    "number": "F2026-0042",
    "type": "customer_invoice",
    "issue_date": "2026-03-01",
    "due_date": "2026-03-31",
    "currency": "EUR",
    "exchange_rate": None,
    "untaxed_amount": "100.00",
    "tax_amount": "20.00",
    "total": "120.00",
    "journal_code": None,
    "partner": {
        "source_id": "c-7",
        "name": "ACME SAS",
        "vat_number": "FR40303265045",
        "company_number": "30326504500016",
        "auxiliary_account": None,
        "country": "FR",
    },
    "lines": [
        {
            "description": "Consulting",
            "quantity": "1",
            "unit_price": "100.00",
            "discount_amount": "0.00",
            "untaxed_amount": "100.00",
            "tax_rate": "20.0",
            "tax_id": None,
            "tax_amount": "20.00",
            "total": "120.00",
            "account_number": None,
        }
    ],
    "has_attachment": True,
}

# The contract's CONFIG.json with a target chart holding every account the example uses.
COMPLETE_CONFIG = {
    "scope": "both",
    "start_date": "2026-01-01",
    "draft": False,
    "sync_without_attachment": True,
    "separate_discounts": False,
    "label_mode": "partner_then_description",
    "rounding_tolerance": "0.05",
    "journals": {"sales": "REV", "purchases": "EXP", "by_source_journal": None},
    "accounts": {
        "sales_default": "706",
        "purchases_default": "6071",
        "customer_collective": "4111",
        "supplier_collective": "4011",
        "rounding_credit": "758",
        "rounding_debit": "658",
        "sales_discount": "709",
        "purchases_discount": "609",
    },
    "vat": {
        "sales": [{"rate": "20.0", "tax_id": None, "code": "V20"}],
        "purchases": [{"rate": "20.0", "tax_id": None, "code": "A20"}],
        "rounding": {"sales": "V0", "purchases": "A0"},
    },
    "target": {
        "accounts": [
            {"number": number, "active": True}
            for number in (
                "706",
                "6071",
                "4111",
                "4011",
                "758",
                "658",
                "709",
                "609",
                "44571",
                "44566",
            )
        ],
        "vat_codes": [
            {"code": "V20", "rate": "20.0", "account": "44571"},
            {"code": "A20", "rate": "20.0", "account": "44566"},
            {"code": "V0", "rate": "0.0", "account": None},
            {"code": "A0", "rate": "0.0", "account": None},
        ],
        "journals": [{"code": "REV"}, {"code": "EXP"}],
    },
}

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


def invoice(**changes) -> dict:
    return json.loads(json.dumps(CONTRACT_INVOICE)) | changes


def config(**changes) -> dict:
    return json.loads(json.dumps(COMPLETE_CONFIG)) | changes


@pytest.fixture
def preview(tmp_path):
    """Write the documents to tmp_path and run the real command on them."""

    def run(
        invoice_data=None,
        config_data=None,
        *,
        invoice_text=None,
        config_text=None,
        invoice_path=None,
        extra=(),
    ) -> subprocess.CompletedProcess:
        if invoice_path is None:
            invoice_path = tmp_path / "INVOICE.json"
            invoice_path.write_text(
                invoice_text if invoice_text is not None else json.dumps(invoice_data),
                encoding="utf-8",
            )
        config_path = tmp_path / "CONFIG.json"
        config_path.write_text(
            config_text if config_text is not None else json.dumps(config_data), encoding="utf-8"
        )
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "invsync.settings",
            "INVSYNC_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}",
        }
        return subprocess.run(
            [
                sys.executable,
                "manage.py",
                "preview_posting",
                str(invoice_path),
                "--config",
                str(config_path),
                *extra,
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_contract_example_prints_the_contract_entry_and_exits_0(preview):
    done = preview(CONTRACT_INVOICE, COMPLETE_CONFIG)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == CONTRACT_OK_OUTPUT
    assert done.stderr == ""


def test_json_is_the_default_format(preview):
    default = preview(CONTRACT_INVOICE, COMPLETE_CONFIG)
    explicit = preview(CONTRACT_INVOICE, COMPLETE_CONFIG, extra=["--format", "json"])

    assert explicit.returncode == 0, explicit.stderr
    assert explicit.stdout == default.stdout


def test_table_format_shows_the_accounts_and_totals(preview):
    done = preview(CONTRACT_INVOICE, COMPLETE_CONFIG, extra=["--format", "table"])

    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert "REV" in done.stdout
    assert "F2026-0042" in done.stdout
    assert any(row[:1] == ["4111"] and "120.00" in row for row in rows)
    assert any(row[:1] == ["706"] and "100.00" in row and "V20" in row for row in rows)
    assert any(row[:1] == ["44571"] and "20.00" in row and "V20" in row for row in rows)
    assert ["Total", "120.00", "120.00"] in rows


def test_unmapped_vat_rate_exits_3_with_the_catalogue_code_and_field(preview):
    data = invoice(untaxed_amount="200.00", tax_amount="25.50", total="225.50")
    data["lines"].append(
        data["lines"][0]
        | {"description": "Books", "tax_rate": "5.5", "tax_amount": "5.50", "total": "105.50"}
    )

    done = preview(data, COMPLETE_CONFIG)

    assert done.returncode == 3, done.stderr
    output = json.loads(done.stdout)
    assert output["status"] == "error"
    assert output["code"] == "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
    assert output["field"] == "lines[1].tax_rate"
    assert "5.5" in output["message"]
    assert set(output) >= {"status", "code", "message", "field"}


def test_rejected_table_shows_code_field_and_resolution_and_exits_3(preview):
    data = invoice(tax_amount="5.50", total="105.50")
    data["lines"][0] |= {"tax_rate": "5.5", "tax_amount": "5.50", "total": "105.50"}

    done = preview(data, COMPLETE_CONFIG, extra=["--format", "table"])

    assert done.returncode == 3, done.stderr
    assert "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND" in done.stdout
    assert "lines[0].tax_rate" in done.stdout
    assert "VAT mapping" in done.stdout  # the catalogue's resolution


def test_non_decimal_amount_exits_2_naming_the_file_and_field(preview):
    data = invoice()
    data["lines"][0]["untaxed_amount"] = "abc"

    done = preview(data, COMPLETE_CONFIG)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "lines[0].untaxed_amount" in done.stderr
    assert "INVOICE.json" in done.stderr


def test_invalid_config_value_exits_2_naming_the_config_file_and_field(preview):
    done = preview(CONTRACT_INVOICE, config(label_mode="description_only"))

    assert done.returncode == 2
    assert "CONFIG.json" in done.stderr
    assert "label_mode" in done.stderr


def test_missing_invoice_file_exits_2_naming_it(preview, tmp_path):
    missing = tmp_path / "missing-INVOICE.json"

    done = preview(config_data=COMPLETE_CONFIG, invoice_path=missing)

    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("text", ["{", "", '{"total": NaN}', "not json"])
def test_invalid_json_exits_2(preview, text):
    done = preview(invoice_text=text, config_data=COMPLETE_CONFIG)

    assert done.returncode == 2
    assert "INVOICE.json" in done.stderr
    assert "invalid JSON" in done.stderr


def test_invalid_json_config_exits_2(preview):
    done = preview(CONTRACT_INVOICE, config_text="[1, 2,]")

    assert done.returncode == 2
    assert "CONFIG.json" in done.stderr


def test_amount_written_as_json_number_is_read_exactly(preview):
    data = invoice(untaxed_amount=100.00, tax_amount=20.00, total=120.00)

    done = preview(data, COMPLETE_CONFIG)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == CONTRACT_OK_OUTPUT


def test_invoice_before_start_date_is_skipped_with_exit_0(preview):
    done = preview(invoice(issue_date="2025-12-31"), COMPLETE_CONFIG)

    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["status"] == "skipped"
    assert output["reason"]


def test_invoice_outside_scope_is_skipped_with_exit_0_in_table_format(preview):
    done = preview(CONTRACT_INVOICE, config(scope="purchases"), extra=["--format", "table"])

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Skipped:")


def test_invoice_without_attachment_waits_with_exit_0(preview):
    done = preview(invoice(has_attachment=False), config(sync_without_attachment=False))

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "waiting", "reason": "attachment"}


def test_waiting_in_table_format_exits_0(preview):
    done = preview(
        invoice(has_attachment=False),
        config(sync_without_attachment=False),
        extra=["--format", "table"],
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Waiting:")


def test_eur_invoice_under_a_usd_company_states_usd_debits_and_eur_amounts(preview):
    done = preview(invoice(exchange_rate="1.0837"), config(company_currency="USD"))

    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["entry"]
    assert (entry["currency"], entry["company_currency"]) == ("EUR", "USD")
    assert [(x["debit"], x["credit"], x["amount_currency"]) for x in entry["lines"]] == [
        ("130.04", "0.00", "120.00"),
        ("0.00", "108.37", "-100.00"),
        ("0.00", "21.67", "-20.00"),
    ]


def test_foreign_entry_table_names_the_currency_of_every_amount_column(preview):
    done = preview(
        invoice(exchange_rate="1.0837"), config(company_currency="USD"), extra=["--format", "table"]
    )

    assert done.returncode == 0, done.stderr
    header, _, columns, *_ = done.stdout.splitlines()
    assert "Currency: EUR (debit and credit in USD)" in header
    assert columns.split()[2:4] == ["Debit", "USD"] and "Credit USD" in columns
    assert "Amount EUR" in columns


def test_eur_invoice_under_a_usd_company_without_a_rate_exits_3_asking_for_one(preview):
    done = preview(CONTRACT_INVOICE, config(company_currency="USD"))

    assert done.returncode == 3
    output = json.loads(done.stdout)
    assert output["field"] == "exchange_rate" and "to USD" in output["message"]
