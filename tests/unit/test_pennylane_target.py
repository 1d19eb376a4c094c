"""Pennylane's pieces that need no server: the error table turns Pennylane's refusals into the
catalogue codes a person acts on, VAT-rate codes become percentages, the external id is read back
from an entry's label, and the account identity names the company without a secret."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from connectors.errors import ErrorCode
from connectors.http import Action
from connectors.providers.pennylane.client import ERROR_TABLE, vendor_error
from connectors.providers.pennylane.target import PennylaneTarget, label_key, vat_rate


def answer(status: int, body: bytes, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    return response


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (
            422,
            "Ledger entry is not balanced: debit 100.00, credit 90.00",
            ErrorCode.AMOUNT_VALIDATION,
        ),
        (422, "ledger_account_id 12: ledger account not found", ErrorCode.ACCOUNT_NUMBER_NOT_FOUND),
        (422, "journal_id 3: journal not found", ErrorCode.MAPPING_JOURNAL_NOT_FOUND),
        (422, "file_attachment_id 9: file not found", ErrorCode.PDF),
        (422, "Date is outside the open fiscal years", ErrorCode.TARGET_REJECTED),
        (403, "scope ledger_entries:all needed", ErrorCode.PERMISSION_DENIED),
        (401, "The access token expired", ErrorCode.AUTHENTICATION_FAILED),
        (429, "Rate limit exceeded. Please retry in 2 seconds.", ErrorCode.RATE_LIMITED),
        (503, "try again", ErrorCode.UNAVAILABLE),
        (400, "X-Company-Id is required with a firm token", ErrorCode.CONFIGURATION_INCOMPLETE),
    ],
)
def test_pennylanes_refusals_get_the_catalogue_code_their_message_points_at(status, message, code):
    assert ERROR_TABLE.match(status=status, message=message).code == code


def test_a_429_waits_as_retry_after_says_and_a_5xx_is_retried():
    assert ERROR_TABLE.match(status=429).action is Action.RATE_LIMITED
    assert ERROR_TABLE.match(status=502).action is Action.RETRY
    assert ERROR_TABLE.match(status=401).action is Action.REAUTHENTICATE


def test_pennylanes_error_bodies_are_read_json_or_text():
    body = b'{"status": 422, "error": "Unprocessable Entity", "message": "not balanced"}'
    assert vendor_error(answer(422, body)) == (None, "Unprocessable Entity — not balanced")
    oauth = b'{"error": "invalid_token", "error_description": "The access token expired"}'
    assert vendor_error(answer(401, oauth))[1] == "invalid_token — The access token expired"
    text = answer(429, b"Rate limit exceeded. Please retry in 2 seconds.", "text/plain")
    assert vendor_error(text) == (None, "Rate limit exceeded. Please retry in 2 seconds.")


@pytest.mark.parametrize(
    ("code", "rate"),
    [("FR_200", Decimal("20")), ("FR_55", Decimal("5.5")), ("FR_21", Decimal("2.1")),
     ("any", None), ("exempt", None), (None, None)],
)  # fmt: skip
def test_vat_rate_codes_become_percentages(code, rate):
    assert vat_rate(code) == rate


def test_the_external_id_is_read_back_from_the_label_exactly():
    assert label_key("F-1 [invsync:acct-1:invoice:9]") == "invsync:acct-1:invoice:9"
    assert label_key("F-1 written by hand") is None
    assert label_key("Loyer [mars] payé") is None


def test_the_account_identity_names_the_company_and_ignores_the_spelling_of_the_address():
    first = PennylaneTarget.account_identity({"company_id": "101"})
    assert first == PennylaneTarget.account_identity(
        {"company_id": "101", "api_url": "HTTPS://app.pennylane.com/api/external/v2/"}
    )
    assert first != PennylaneTarget.account_identity({"company_id": "202"})
    assert PennylaneTarget.account_identity({}) == ""
