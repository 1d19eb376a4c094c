"""The connector contract on Xero: XeroTarget (from the registry, key ``xero``) against the fake
Xero (``connectors/devtools/xero_fake.py``: a local server checking every request it receives and
every answer it sends against Xero's published OpenAPI spec, ``tests/contracts/xero``). One fake
and one organisation for the module; every test asserts that the fake saw no contract violation.
The fake's rate limit is off here and the connector's raised (the limits are shown in
tests/integration/test_xero_sync.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from connectors.base import AuthKind, ConnectionConfig, ConnectionKind, EntryToWrite
from connectors.canonical import (
    Attachment,
    Direction,
    EntryLine,
    InvoiceType,
    Partner,
    Posting,
    TaxRole,
)
from connectors.devtools.xero_fake import XeroFake
from connectors.errors import ErrorCode, InvsyncError
from connectors.oauth import StaticTokenSource
from connectors.outbound import OutboundPolicy
from tests.connectors.contract import TargetContract, provider

LOOPBACK = OutboundPolicy.from_allow_list(["127.0.0.1"])


class RefusedTokens:
    """A grant the vendor refuses: its token is answered 401 and cannot be renewed."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def access_token(self) -> str:
        return self.secret

    def refresh(self, stale_token: str) -> str:
        raise InvsyncError(ErrorCode.AUTHENTICATION_FAILED, "Xero refused the token.")


@pytest.fixture(scope="module")
def xero():
    with XeroFake(rate_limit=False) as fake:
        tenant = fake.add_tenant("Contract Ltd")
        token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86400.0)
        # The contact the postings are written for, created through the connector.
        target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
        client = Partner("contract-client", "Contract Client")
        contact = target.create_partner(tenant.tenant_id, client, Direction.SALES).id
        target.close()
        yield fake, tenant, token, contact


@pytest.fixture(autouse=True)
def no_contract_violation(xero):
    fake = xero[0]
    seen = len(fake.violations)
    yield
    assert fake.violations[seen:] == []


def xero_config(fake, token, tenant, tokens=None, **settings) -> ConnectionConfig:
    return ConnectionConfig(
        AuthKind.OAUTH2,
        {
            "api_url": fake.api_url, "connections_url": fake.connections_url,
            "company_id": tenant.tenant_id, "rate_limit": "10000/60", **settings,
        },
        {},
        label="contract",
        outbound=LOOPBACK,
        tokens=tokens or StaticTokenSource(token),
    )  # fmt: skip


def posting(external_id: str, contact: str, *, draft: bool = False, amount="100.00") -> Posting:
    date = dt.date(2026, 11, 30)
    net, tax = Decimal(amount), (Decimal(amount) * Decimal("0.2")).quantize(Decimal("0.01"))
    return Posting(
        journal="SALES", date=date, reference=f"C-{uuid.uuid4().hex[:10]}",
        external_id=external_id, currency="GBP", company_currency="GBP", draft=draft,
        partner_name="Contract Client", partner_ref=contact,
        invoice_type=InvoiceType.CUSTOMER_INVOICE,
        lines=(
            EntryLine("610", net + tax, Decimal(0), "Contract", partner="Contract Client",
                      maturity_date=date),
            EntryLine("200", Decimal(0), net, "Contract service", vat_code="OUTPUT2",
                      tax_role=TaxRole.BASE),
            EntryLine("820", Decimal(0), tax, "VAT 20 %", vat_code="OUTPUT2",
                      tax_role=TaxRole.TAX),
        ),
    )  # fmt: skip


class TestXeroTargetContract(TargetContract):
    @pytest.fixture
    def target(self, xero):
        fake, tenant, token, _contact = xero
        target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
        yield target
        target.close()

    @pytest.fixture
    def folder(self, xero):
        return xero[1].tenant_id

    @pytest.fixture
    def refused_target(self, xero):
        fake, tenant, _token, _contact = xero
        cls = provider("xero", ConnectionKind.ACCOUNTING)
        return lambda secret: cls(
            xero_config(fake, secret, tenant, tokens=RefusedTokens(f"tok-{secret}"))
        )

    @pytest.fixture
    def make_posting(self, xero):
        contact = xero[3]
        return lambda external_id, *, draft=False: posting(external_id, contact, draft=draft)

    @pytest.fixture
    def count_entries(self, xero):
        tenant = xero[1]

        def count(external_id: str) -> int:
            documents = [*tenant.invoices.values(), *tenant.credit_notes.values()]
            return sum(
                1
                for d in documents
                if d.get("Reference") == external_id
                or str(d.get("InvoiceNumber") or d.get("CreditNoteNumber") or "").endswith(
                    f"[{external_id}]"
                )
            )

        return count

    @pytest.fixture
    def count_partners(self, xero):
        tenant = xero[1]
        return lambda: len(tenant.contacts)


def test_a_pdf_attached_after_the_write_lands_on_the_document_through_the_contract(xero):
    """A crash between the document and its PDF leaves a document without its file: ``attach``
    puts it on that document (PUT /Invoices/{id}/Attachments/{name}), within the contract."""
    fake, tenant, token, contact = xero
    target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
    try:
        external_id = f"invsync:contract:invoice:{uuid.uuid4().hex}"
        [result] = target.create_entries(
            tenant.tenant_id, [EntryToWrite(posting(external_id, contact))]
        )
        assert result.error is None and result.ref is not None
        assert not result.ref.has_attachment

        pdf = Attachment("ATTACH-1.pdf", "application/pdf", b"%PDF-1.4 attach test\n%%EOF\n")
        target.attach(tenant.tenant_id, result.ref, pdf)

        document_id = result.ref.id.split(":", 1)[1]
        (stored,) = tenant.attachments[document_id]
        assert stored["FileName"] == "ATTACH-1.pdf"
        assert target.find_entries(tenant.tenant_id, [external_id])[external_id].has_attachment
    finally:
        target.close()


def test_the_connection_check_names_the_organisation_and_refuses_one_the_grant_lacks(xero):
    fake, tenant, token, _contact = xero
    cls = provider("xero", ConnectionKind.ACCOUNTING)
    target = cls(xero_config(fake, token, tenant))
    elsewhere = cls(
        xero_config(fake, token, tenant, company_id="0" * 8 + "-0000-0000-0000-" + "0" * 12)
    )
    try:
        check = target.check_connection()
        assert check.ok and "Contract Ltd" in check.message
        refused = elsewhere.check_connection()
        assert not refused.ok and refused.code == ErrorCode.PERMISSION_DENIED
    finally:
        target.close()
        elsewhere.close()


def test_tracking_categories_are_listed_with_their_options(xero):
    fake, tenant, token, _contact = xero
    target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
    try:
        categories = dict(target.list_tracking_categories(tenant.tenant_id))
    finally:
        target.close()
    assert set(categories["Region"]) >= {"North", "South"}


def test_vat_codes_are_xeros_tax_types_with_their_rates_and_directions(xero):
    fake, tenant, token, _contact = xero
    target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
    try:
        codes = {v.code: v for v in target.list_vat_codes(tenant.tenant_id)}
        accounts = {a.number: a for a in target.list_accounts(tenant.tenant_id)}
    finally:
        target.close()
    assert codes["OUTPUT2"].rate == Decimal("20") and codes["RROUTPUT"].rate == Decimal("5")
    assert codes["OUTPUT2"].account is None  # Xero books VAT from the tax type
    assert accounts["610"].kind == "receivable" and accounts["800"].kind == "payable"
    assert accounts["200"].kind == "revenue" and accounts["429"].kind == "expense"
    assert not accounts["499"].active  # archived


def test_a_bill_is_found_by_its_external_id_alone_after_a_crash(xero):
    """After a crash only the external id is known: a bill (no Reference in Xero) is found by
    the id its number carries."""
    fake, tenant, token, _contact = xero
    target = provider("xero", ConnectionKind.ACCOUNTING)(xero_config(fake, token, tenant))
    try:
        supplier = target.create_partner(
            tenant.tenant_id, Partner("s", f"Supplier {uuid.uuid4().hex[:6]}"), Direction.PURCHASES
        ).id
        external_id = f"invsync:contract:invoice:{uuid.uuid4().hex}"
        sale = posting(external_id, supplier)
        bill = replace(
            sale, invoice_type=InvoiceType.SUPPLIER_INVOICE,
            lines=tuple(replace(line, debit=line.credit, credit=line.debit,
                                account="800" if line.partner else "429",
                                vat_code=line.vat_code and "INPUT2") for line in sale.lines),
        )  # fmt: skip
        [written] = target.create_entries(tenant.tenant_id, [EntryToWrite(bill)])
        assert written.ref is not None, written.error
        found = target.find_entries(tenant.tenant_id, [external_id])
    finally:
        target.close()
    assert found[external_id].id == written.ref.id
