"""``manage.py read_einvoice``: exit 0 with the canonical invoice (INVOICE.json plus taxes and
payable_amount), 3 with a JSON refusal for an invoice that cannot be accepted, 2 with a message
on stderr for anything else; never a traceback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncs.serialization import invoice_from_json
from tests.factories.einvoices import MISSING_REASON, PNG_1PX, REPO, SAMPLES

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON)

BASICWL = SAMPLES / "ZUGFeRDv2/correct/FNFE-factur-x-examples/Facture_FR_BASICWL.pdf"
BUYER_VAT = "FR19787878784"


def run(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("read_einvoice", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


@needs_samples
def test_a_readable_invoice_prints_invoice_json_with_taxes_and_payable_amount():
    out, error = run(str(BASICWL), "--company-id", BUYER_VAT)
    assert error is None
    data = json.loads(out)
    assert data["type"] == "supplier_invoice"
    assert (data["untaxed_amount"], data["tax_amount"], data["total"]) == (
        "624.90",
        "46.25",
        "671.15",
    )
    assert data["payable_amount"] == "470.15"
    assert [
        {key: row[key] for key in ("category", "rate", "base", "amount")} for row in data["taxes"]
    ] == [
        {"category": "S", "rate": "20.00", "base": "81.90", "amount": "16.38"},
        {"category": "S", "rate": "5.50", "base": "543.00", "amount": "29.87"},
    ]
    assert data["partner"]["vat_number"] == "FR11999999998"
    assert data["einvoice"]["format"] == "factur-x"
    # The output is an INVOICE.json preview_posting reads.
    invoice = invoice_from_json(json.loads(out, parse_float=Decimal))
    assert invoice.total == Decimal("671.15") and len(invoice.lines) == 2


@needs_samples
def test_table_format_shows_lines_breakdown_and_totals():
    out, error = run(str(BASICWL), "--company-id", BUYER_VAT, "--format", "table")
    assert error is None
    assert "supplier invoice FA-2017-0010" in out
    assert "81.90" in out and "16.38" in out and "due 470.15" in out


@needs_samples
def test_an_invoice_that_is_not_ours_prints_the_refusal_and_exits_3():
    out, error = run(str(BASICWL), "--company-id", "FR40303265045")
    assert error is not None and error.returncode == 3
    data = json.loads(out)
    assert data["status"] == "error"
    assert data["code"] == "ERROR_SYNC_INVOICE_EINVOICE_NOT_OURS"
    assert "Au bon moulin" in data["message"]


@needs_samples
def test_an_invoice_breaking_a_rule_prints_code_rule_and_field_and_exits_3(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_bytes(
        (SAMPLES / "XML-Rechnung/CII/EN16931_Einfach.cii.xml")
        .read_bytes()
        .replace(b"<ram:DuePayableAmount>529.87<", b"<ram:DuePayableAmount>520.00<")
    )
    out, error = run(str(broken), "--company-id", "DE123456789")
    assert error is not None and error.returncode == 3
    data = json.loads(out)
    assert data["code"] == "ERROR_SYNC_INVOICE_EINVOICE_INVALID"
    assert data["field"] == "BT-115" and data["message"].startswith("BR-CO-16:")


@pytest.mark.parametrize(
    "content", [PNG_1PX, b"hello", b"<html/>"], ids=["image", "text", "other-xml"]
)
def test_a_file_that_is_no_einvoice_exits_2(tmp_path, content):
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    out, error = run(str(path), "--company-id", BUYER_VAT)
    assert out == ""
    assert error is not None and error.returncode == 2
    assert "ERROR_SYNC_INVOICE_EINVOICE_UNSUPPORTED" in str(error)


def test_a_file_larger_than_an_einvoice_may_be_exits_2_unread(tmp_path):
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:
        handle.truncate(60 * 1024 * 1024)  # sparse: nothing is written
    _, error = run(str(path), "--company-id", BUYER_VAT)
    assert error is not None and error.returncode == 2
    assert "larger than the 50 MB" in str(error)


def test_a_missing_file_exits_2(tmp_path):
    _, error = run(str(tmp_path / "absent.pdf"), "--company-id", BUYER_VAT)
    assert error is not None and error.returncode == 2
    assert "cannot be read" in str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1024))
def test_any_bytes_exit_0_2_or_3_never_with_another_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(content)
        _, error = run(str(path), "--company-id", BUYER_VAT)
    assert error is None or error.returncode in (2, 3)


def _manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "read_einvoice", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@needs_samples
def test_real_exit_codes_and_no_traceback(tmp_path):
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\n" + os.urandom(3000))
    ok = _manage(str(BASICWL), "--company-id", BUYER_VAT)
    refused = _manage(str(BASICWL), "--company-id", "nobody")
    unreadable = _manage(str(garbage), "--company-id", BUYER_VAT)
    assert (ok.returncode, refused.returncode) == (0, 3)
    assert unreadable.returncode == 2
    assert "ERROR_SYNC_INVOICE_EINVOICE_UNSUPPORTED" in unreadable.stderr
    for result in (ok, refused, unreadable):
        assert "Traceback" not in result.stderr + result.stdout
