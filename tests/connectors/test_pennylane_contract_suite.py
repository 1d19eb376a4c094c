"""The connector contract on Pennylane: PennylaneTarget (from the registry, key ``pennylane``)
against the contract-validated fake (``connectors/devtools/pennylane_fake.py``: a local HTTP server
that checks every request it receives and every answer it sends against the OpenAPI definitions
in ``tests/contracts/pennylane``). One fake and one company for the module; every test asserts that
the fake saw no contract violation. The fake's rate limit is off here and the connector's raised
(the rate limit is shown in tests/integration/test_pennylane_sync.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.base import AuthKind, ConnectionConfig, ConnectionKind, EntryToWrite
from connectors.canonical import Attachment, EntryLine, InvoiceType, Posting
from connectors.devtools.pennylane_fake import PennylaneFake
from connectors.outbound import OutboundPolicy
from tests.connectors.contract import TargetContract, provider

LOOPBACK = OutboundPolicy.from_allow_list(["127.0.0.1"])


@pytest.fixture(scope="module")
def pennylane():
    with PennylaneFake(rate_limit=False) as fake:
        company = fake.add_company("Contract SAS", reg_no="552100554")
        token = fake.tokens.issue(company_id=company.id)
        yield fake, company, token


@pytest.fixture(autouse=True)
def no_contract_violation(pennylane):
    fake = pennylane[0]
    seen = len(fake.violations)
    yield
    assert fake.violations[seen:] == []


def pennylane_config(fake: PennylaneFake, api_key: str, **settings: str) -> ConnectionConfig:
    return ConnectionConfig(
        AuthKind.API_KEY,
        {"api_url": fake.api_url, "rate_limit": "10000/1", **settings},
        {"api_key": api_key},
        label="contract",
        outbound=LOOPBACK,
    )


class TestPennylaneTargetContract(TargetContract):
    @pytest.fixture
    def target(self, pennylane):
        fake, _company, token = pennylane
        target = provider("pennylane", ConnectionKind.ACCOUNTING)(pennylane_config(fake, token))
        yield target
        target.close()

    @pytest.fixture
    def folder(self, pennylane):
        return str(pennylane[1].id)

    @pytest.fixture
    def refused_target(self, pennylane):
        cls = provider("pennylane", ConnectionKind.ACCOUNTING)
        return lambda secret: cls(pennylane_config(pennylane[0], secret))

    @pytest.fixture
    def make_posting(self):
        date = dt.date(2026, 11, 30)

        def posting(external_id: str, *, draft: bool = False) -> Posting:
            amount = Decimal("100.00")
            return Posting(
                journal="VE", date=date, reference=f"CONTRACT-{external_id[-8:]}",
                external_id=external_id, currency="EUR", company_currency="EUR", draft=draft,
                partner_name="Client", invoice_type=InvoiceType.CUSTOMER_INVOICE,
                lines=(
                    EntryLine("411", amount, Decimal(0), "Contract", partner="Client",
                              maturity_date=date),
                    EntryLine("706", Decimal(0), amount, "Contract service"),
                ),
            )  # fmt: skip

        return posting

    @pytest.fixture
    def count_entries(self, pennylane):
        company = pennylane[1]
        return lambda external_id: sum(
            1 for e in company.ledger_entries.values() if e["label"].endswith(f"[{external_id}]")
        )

    @pytest.fixture
    def count_partners(self, pennylane):
        company = pennylane[1]
        return lambda: len(company.customers) + len(company.suppliers)


def test_a_pdf_attached_after_the_write_lands_on_the_entry_through_the_contract(pennylane):
    """A crash between the write and the PDF leaves an entry without its file: ``attach`` uploads
    it and links it to that entry (PUT /ledger_entries/{id}), within the contract."""
    fake, company, token = pennylane
    target = provider("pennylane", ConnectionKind.ACCOUNTING)(pennylane_config(fake, token))
    try:
        date = dt.date(2026, 11, 30)
        amount = Decimal("42.00")
        posting = Posting(
            journal="VE", date=date, reference="ATTACH-1", external_id="attach-after-write-1",
            currency="EUR", company_currency="EUR", draft=False, partner_name="Client",
            invoice_type=InvoiceType.CUSTOMER_INVOICE,
            lines=(
                EntryLine("411", amount, Decimal(0), "Attach", partner="Client",
                          maturity_date=date),
                EntryLine("706", Decimal(0), amount, "Attach service"),
            ),
        )  # fmt: skip
        [result] = target.create_entries(str(company.id), [EntryToWrite(posting)])
        assert result.error is None and result.ref is not None
        entry = company.ledger_entries[int(result.ref.id)]
        assert not entry.get("ledger_attachment_filename")

        pdf = Attachment("ATTACH-1.pdf", "application/pdf", b"%PDF-1.4 attach test\n%%EOF\n")
        target.attach(str(company.id), result.ref, pdf)

        entry = company.ledger_entries[int(result.ref.id)]
        assert entry["ledger_attachment_filename"] == "ATTACH-1.pdf"
        found = target.find_entries(str(company.id), ["attach-after-write-1"])
        assert found["attach-after-write-1"].has_attachment
    finally:
        target.close()
