"""Flow runs into Xero: the in-memory invoicing source, XeroTarget (registry key ``xero``) and the
fake Xero (``connectors/devtools/xero_fake.py``: every request and answer checked against Xero's
published spec), through ``flow_sync`` as a person or the scheduler runs it. Every test asserts
that the fake saw no contract violation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from connectors import registry
from connectors.base import AuthKind, ConnectionConfig, EntryToWrite
from connectors.canonical import Direction, InvoiceType, Partner, TaxBreakdown
from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from connectors.devtools.xero_fake import XeroFake, oauth_server_verifier
from connectors.errors import CATALOGUE, ConnectorError, ErrorCode
from connectors.http import HttpClient
from connectors.models import Connection
from connectors.oauth import OAuthTokens, StaticTokenSource
from connectors.oauth_backends import XeroOAuth2
from connectors.oauth_flow import oauth_company_pick
from connectors.outbound import OutboundPolicy
from connectors.providers.xero.target import XeroTarget
from connectors.token_store import stored_tokens
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.connectors.test_xero_contract_suite import posting as contract_posting
from tests.doubles import MemorySource
from tests.factories import InvoiceFactory, SyncFlowFactory, UserFactory
from tests.factories.canonical import InvoiceLineFactory, PartnerFactory
from tests.integration.test_mapping_forms import choices
from tests.oauth_fixtures import connect

pytestmark = pytest.mark.django_db

D = Decimal
VAT = [
    ("sales", "20.0", "OUTPUT2"), ("sales", "5.0", "RROUTPUT"), ("sales", "0", "ZERORATEDOUTPUT"),
    ("purchases", "20.0", "INPUT2"), ("purchases", "5.0", "RRINPUT"),
    ("purchases", "0", "ZERORATEDINPUT"),
]  # fmt: skip
LOOPBACK = OutboundPolicy.from_allow_list(["127.0.0.1"])


class Clock:
    """The fake's clock, moved by the client's retry waits (no real sleep in a test)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    post_init = HttpClient.__post_init__

    def with_clock(self):
        self.sleep = clock.sleep
        post_init(self)

    monkeypatch.setattr(HttpClient, "__post_init__", with_clock)
    return clock


@pytest.fixture
def fake(clock):
    with XeroFake(clock=clock) as fake:  # Xero's limits on: 60/min, 5 at once, 5,000/day
        yield fake
        fake.assert_no_violations()


@pytest.fixture
def tenant(fake):
    return fake.add_tenant("Atelier Ltd")


@pytest.fixture
def connectors():
    MemorySource.reset()
    with registry.override([MemorySource, XeroTarget]):
        yield MemorySource


def make_flow(fake, tenant, *, token=None, **settings):
    token = token or fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    flow = SyncFlowFactory(
        accounting_connection__kind="accounting",
        accounting_connection__provider="xero",
        accounting_connection__auth_kind="oauth2",
        accounting_connection__settings={
            "api_url": fake.api_url, "connections_url": fake.connections_url,
            "company_id": tenant.tenant_id, "retry_base_delay": "0", **settings,
        },
        accounting_connection__credentials={},
        folder=tenant.tenant_id, folder_name=tenant.name, company_currency="GBP",
        sales_journal="SALES", purchases_journal="PURCHASES",
        default_sales_account="200", default_purchases_account="429",
        customer_collective_account="610", supplier_collective_account="800",
        rounding_credit_account="860", rounding_debit_account="860",
        sales_rounding_vat_code="NONE", purchases_rounding_vat_code="NONE",
        vat=VAT,
    )  # fmt: skip
    connection = flow.accounting_connection
    connection.oauth_tokens = OAuthTokens(
        access_token=token, granted=((tenant.tenant_id, tenant.name),)
    ).as_dict()
    connection.save()
    return SyncFlow.objects.get(pk=flow.pk)


def gbp(**kwargs):
    """An invoice in the organisation's currency (GBP)."""
    return InvoiceFactory(currency="GBP", **kwargs)


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None
    return result


def records(flow) -> dict[str, SyncedRecord]:
    return {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}


def documents(tenant) -> list[dict]:
    return [*tenant.invoices.values(), *tenant.credit_notes.values()]


def document(tenant, number: str) -> dict:
    (found,) = [
        d for d in documents(tenant)
        if str(d.get("InvoiceNumber") or d.get("CreditNoteNumber") or "").split(" [")[0] == number
    ]  # fmt: skip
    return found


def taxes(doc) -> dict[str, str]:
    """Tax per tax type, summed over the document's lines."""
    sums: dict[str, Decimal] = {}
    for item in doc["LineItems"]:
        sums[item["TaxType"]] = sums.get(item["TaxType"], D(0)) + D(str(item["TaxAmount"]))
    return {k: f"{v:.2f}" for k, v in sums.items()}


def money(value) -> str:
    return f"{D(str(value)):.2f}"


def xero_target(fake, tenant, token) -> XeroTarget:
    return XeroTarget(
        ConnectionConfig(
            AuthKind.OAUTH2,
            {"api_url": fake.api_url, "connections_url": fake.connections_url,
             "company_id": tenant.tenant_id, "rate_limit": "10000/1"},
            {}, outbound=LOOPBACK, tokens=StaticTokenSource(token),
        )
    )  # fmt: skip


def test_first_sync_books_sales_bills_credit_notes_foreign_currency_and_rounding_to_the_cent(
    fake, tenant, connectors
):
    sale = InvoiceFactory(
        number="INV-0001", currency="GBP",
        lines=(
            InvoiceLineFactory(untaxed_amount=D("1000.00")),
            InvoiceLineFactory(untaxed_amount=D("200.00"), tax_rate=D("5.0")),
            InvoiceLineFactory(untaxed_amount=D("50.00"), tax_rate=D("0")),
        ),
    )  # fmt: skip
    # Three lines of 0.33 at 20 %: Xero's per-line rounding says 0.21, the invoice 0.20.
    rounding = InvoiceFactory(
        number="INV-0002", currency="GBP",
        lines=tuple(
            InvoiceLineFactory(untaxed_amount=D("0.33"), tax_amount=D("0.07")) for _ in range(3)
        ),
        tax_amount=D("0.20"), total=D("1.19"),
        taxes=(TaxBreakdown(base=D("0.99"), amount=D("0.20"), rate=D("20")),),
    )  # fmt: skip
    euros = InvoiceFactory(
        number="INV-0003", currency="EUR", exchange_rate=D("0.85"),
        lines=(InvoiceLineFactory(untaxed_amount=D("100.00")),),
    )  # fmt: skip
    bill = InvoiceFactory(
        number="B-77", type=InvoiceType.SUPPLIER_INVOICE, currency="GBP", has_attachment=False,
        partner=PartnerFactory(name="Stationers Ltd"),
        lines=(InvoiceLineFactory(untaxed_amount=D("50.00"), tax_rate=D("5.0")),),
    )  # fmt: skip
    refund = InvoiceFactory(
        number="CN-0001", type=InvoiceType.CUSTOMER_REFUND, currency="GBP",
        lines=(InvoiceLineFactory(untaxed_amount=D("10.00")),),
    )  # fmt: skip
    supplier_refund = InvoiceFactory(
        number="SCN-9", type=InvoiceType.SUPPLIER_REFUND, currency="GBP", has_attachment=False,
        partner=PartnerFactory(name="Stationers Ltd"),
        lines=(InvoiceLineFactory(untaxed_amount=D("20.00")),),
    )  # fmt: skip
    connectors.put(sale, rounding, euros, bill, refund, supplier_refund)
    flow = make_flow(fake, tenant)

    result = run(flow)

    assert result.synced_count == 6, (result.status, result.error_message)
    doc = document(tenant, "INV-0001")
    assert doc["Type"] == "ACCREC" and doc["Status"] == "AUTHORISED"
    assert money(doc["Total"]) == "1460.00" and money(doc["TotalTax"]) == "210.00"
    assert taxes(doc) == {"OUTPUT2": "200.00", "RROUTPUT": "10.00", "ZERORATEDOUTPUT": "0.00"}
    assert doc["Reference"] == records(flow)[sale.source_id].entry_key
    doc = document(tenant, "INV-0002")
    assert sorted(money(i["TaxAmount"]) for i in doc["LineItems"]) == ["0.06", "0.07", "0.07"]
    assert money(doc["Total"]) == "1.19" and money(doc["TotalTax"]) == "0.20"
    doc = document(tenant, "INV-0003")
    assert doc["CurrencyCode"] == "EUR" and money(doc["Total"]) == "120.00"
    assert D(str(doc["CurrencyRate"])) == (D(1) / D("0.85")).quantize(D("0.000001"))
    doc = document(tenant, "B-77")
    assert doc["Type"] == "ACCPAY" and taxes(doc) == {"RRINPUT": "2.50"}
    assert money(doc["Total"]) == "52.50"
    assert {item["AccountCode"] for item in doc["LineItems"]} == {"429"}
    doc = document(tenant, "CN-0001")
    assert doc["Type"] == "ACCRECCREDIT" and money(doc["Total"]) == "12.00"
    doc = document(tenant, "SCN-9")
    assert doc["Type"] == "ACCPAYCREDIT" and money(doc["Total"]) == "24.00"
    # The PDFs of the four documents whose invoice has one, attached after the write.
    attached = {
        d.get("InvoiceNumber") or d.get("CreditNoteNumber"): [
            tenant.files[a["AttachmentID"]] for a in tenant.attachments.get(
                d.get("InvoiceID") or d.get("CreditNoteID"), [])
        ]
        for d in documents(tenant)
    }  # fmt: skip
    assert attached["INV-0001"] == [b"%PDF-1.4 INV-0001"]
    assert attached["CN-0001"] == [b"%PDF-1.4 CN-0001"]
    assert sum(len(files) for files in attached.values()) == 4
    # Two write calls (invoices, credit notes) for the six documents; one attachment call per PDF.
    assert fake.calls["createInvoices"] == 1 and fake.calls["createCreditNotes"] == 1
    assert sum(n for op, n in fake.calls.items() if "Attachment" in op) == 4

    # A second run writes nothing.
    assert run(flow).synced_count == 0
    assert len(documents(tenant)) == 6


def test_contacts_are_matched_by_account_number_tax_number_company_number_and_name_else_created(
    fake, tenant, connectors
):
    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    target = xero_target(fake, tenant, token)
    made = {
        key: target.create_partner(tenant.tenant_id, partner, Direction.SALES).id
        for key, partner in {
            "aux": Partner("x1", "Aux Holder Ltd", auxiliary_account="CUST-001"),
            "vat": Partner("x2", "Vat Holder Ltd", vat_number="GB123456789"),
            "company": Partner("x3", "Company Holder Ltd", company_number="01234567"),
            "name": Partner("x4", "Name Holder Ltd"),
        }.items()
    }
    target.close()
    sources = {
        "aux": PartnerFactory(name="Other name 1", auxiliary_account="CUST-001"),
        "vat": PartnerFactory(name="Other name 2", vat_number="GB 123 456 789"),
        "company": PartnerFactory(name="Other name 3", company_number="01234567"),
        "name": PartnerFactory(name="Name Holder Ltd"),
        "new": PartnerFactory(name="Brand New Ltd", vat_number="GB999999973"),
    }
    invoices = {k: gbp(number=f"M-{k}", partner=p) for k, p in sources.items()}
    connectors.put(*invoices.values())
    flow = make_flow(fake, tenant, token=token)

    assert run(flow).synced_count == 5

    for key, contact_id in made.items():
        assert document(tenant, f"M-{key}")["Contact"]["ContactID"] == contact_id, key
    created = document(tenant, "M-new")["Contact"]["ContactID"]
    assert created not in made.values()
    assert tenant.contacts[created]["Name"] == "Brand New Ltd"
    assert tenant.contacts[created]["TaxNumber"] == "GB999999973"
    assert len(tenant.contacts) == 5


def test_one_invoice_refused_in_a_batch_of_fifty_fails_alone_and_the_49_others_are_written(
    fake, tenant, connectors
):
    invoices = [
        gbp(number=f"B-{n:03d}", has_attachment=False) for n in range(50)
    ]  # fmt: skip
    connectors.put(*invoices)
    fake.refuse("B-017", message="Account code '200' is not a valid code for this document.")
    flow = make_flow(fake, tenant)

    result = run(flow)

    found = records(flow)
    failed = found[invoices[17].source_id]
    assert failed.status == RecordStatus.FAILED
    assert failed.error_code == ErrorCode.ACCOUNT_NUMBER_NOT_FOUND
    assert "is not a valid code" in failed.error_message
    assert result.synced_count == 49
    assert len(tenant.invoices) == 49
    assert fake.calls["createInvoices"] == 1  # the fifty in one call


def test_a_429_with_retry_after_mid_run_is_waited_out_and_the_run_completes(
    fake, tenant, connectors, clock
):
    # The connector's own window is set above Xero's, so that Xero answers 429.
    fake.minute_limit = 4
    connectors.put(*(gbp() for _ in range(3)))
    flow = make_flow(fake, tenant, rate_limit="1000/60", retry_after_max="120",
                     retry_max_total_delay="600")  # fmt: skip

    result = run(flow)

    assert result.synced_count == 3, (result.status, result.error_message)
    assert any(status == 429 for _, status in fake.answers)
    assert clock.slept and max(clock.slept) > 1  # Retry-After obeyed on the fake's clock
    assert len(tenant.invoices) == 3


def test_the_grants_organisations_come_from_connections_and_the_picked_one_is_written_to(
    fake, tenant, connectors, client, settings
):
    other = fake.add_tenant("Other Ltd")
    with OAuthServer() as oauth:
        flow = oauth_flow(fake, oauth, client, settings, tenant, other, pick=other)
        connectors.put(gbp(number="PICK-1", has_attachment=False))

        assert run(flow).synced_count == 1

    assert [d["InvoiceNumber"] for d in other.invoices.values()] == ["PICK-1"]
    assert tenant.invoices == {}


def test_a_token_refreshed_mid_run_saves_the_rotated_refresh_token_and_the_run_completes(
    fake, tenant, connectors, client, settings
):
    with OAuthServer() as oauth:
        flow = oauth_flow(fake, oauth, client, settings, tenant)
        before = stored_tokens(flow.accounting_connection)
        connectors.put(*(gbp(has_attachment=False) for _ in range(3)))
        create = XeroTarget.create_entries

        def expire_then_write(self, folder, entries):
            oauth.expire_access_tokens()  # Xero drops the token in the middle of the run
            return create(self, folder, entries)

        XeroTarget.create_entries = expire_then_write
        try:
            result = run(flow)
        finally:
            XeroTarget.create_entries = create

        assert result.synced_count == 3, (result.status, result.error_message)
        assert oauth.stats.refreshes == 1
        assert ("createInvoices", 401) in fake.answers or ("getInvoices", 401) in fake.answers
        after = stored_tokens(Connection.objects.get(pk=flow.accounting_connection_id))
        assert after.refresh_token and after.refresh_token != before.refresh_token
        assert after.access_token != before.access_token
        assert len(tenant.invoices) == 3


def test_a_revoked_grant_stops_the_run_with_grant_revoked_and_blames_no_record(
    fake, tenant, connectors
):
    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    connectors.put(gbp(has_attachment=False))
    flow = make_flow(fake, tenant, token=token)
    fake.tokens.revoke(token)

    result = run(flow)

    assert result.error_code == ErrorCode.OAUTH_GRANT_REVOKED
    assert "Reconnect" in CATALOGUE[ErrorCode.OAUTH_GRANT_REVOKED].resolution
    assert not SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).exists()
    assert tenant.invoices == {}


def test_a_crash_between_the_document_and_its_pdf_attaches_it_on_the_rerun_and_writes_once(
    fake, tenant, connectors, monkeypatch
):
    invoices = [gbp(number=f"P-{n}") for n in range(2)]
    connectors.put(*invoices)
    flow = make_flow(fake, tenant)
    attach = XeroTarget.attach

    def crash(self, folder, ref, attachment):
        raise ConnectorError(ErrorCode.UNAVAILABLE, "Xero dropped the connection.")

    monkeypatch.setattr(XeroTarget, "attach", crash)
    run(flow)
    assert len(tenant.invoices) == 2 and not tenant.attachments

    monkeypatch.setattr(XeroTarget, "attach", attach)
    run(flow)

    assert {r.status for r in records(flow).values()} == {RecordStatus.SYNCED}
    assert len(tenant.invoices) == 2  # no second document
    for invoice in invoices:
        doc = document(tenant, invoice.number)
        (file,) = tenant.attachments[doc["InvoiceID"]]
        assert tenant.files[file["AttachmentID"]] == b"%PDF-1.4 " + invoice.number.encode()


def test_a_lost_answer_to_a_batch_is_looked_up_and_nothing_is_written_twice(
    fake, tenant, connectors
):
    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    target = xero_target(fake, tenant, token)
    target.create_partner(tenant.tenant_id, Partner("p", "Known Ltd"), Direction.SALES)
    target.close()
    partner = PartnerFactory(name="Known Ltd")
    connectors.put(*(gbp(has_attachment=False, partner=partner) for _ in range(3)))
    flow = make_flow(fake, tenant, token=token)
    fake.drop_after_write(1)  # the batch's write is done, its answer lost

    result = run(flow)

    assert {r.status for r in records(flow).values()} == {RecordStatus.SYNCED}, result
    assert len(tenant.invoices) == 3
    assert fake.calls["createInvoices"] == 2  # sent again under its Idempotency-Key


def test_the_connection_declares_xeros_settings_and_oauth2_only():
    names = [field.name for field in XeroTarget.settings_fields]
    assert names[:2] == ["company_id", "api_url"]
    assert XeroTarget.auth_kinds == (AuthKind.OAUTH2,)
    assert XeroOAuth2.connector_keys == ("xero",)
    assert "offline_access" in XeroOAuth2.DEFAULT_SCOPE


def oauth_flow(fake, oauth, client, settings, *tenants, pick=None):
    """A flow whose Xero connection signs in through the admin's Connect (the local
    authorization server standing in for Xero's identity service, the fake's /connections
    listing the grant's organisations), then the organisation picked."""
    settings.INVSYNC_OAUTH = {
        "xero": {
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": oauth.url,
            "scopes": "", "connections_url": fake.connections_url,
        }
    }  # fmt: skip
    fake.trust(oauth_server_verifier(oauth, tenant_ids=[t.tenant_id for t in tenants]))
    flow = make_flow(fake, tenants[0])
    connection = flow.accounting_connection
    Connection.objects.filter(pk=connection.pk).update(
        oauth_tokens=None, settings={k: v for k, v in connection.settings.items()
                                     if k != "company_id"},
    )  # fmt: skip
    connection.refresh_from_db()
    client.force_login(UserFactory(username="root", is_superuser=True))
    connect(client, connection)
    granted = stored_tokens(Connection.objects.get(pk=connection.pk)).granted
    assert {t for t, _ in granted} == {t.tenant_id for t in tenants}
    if pick is not None:
        oauth_company_pick(connection=connection, company_id=pick.tenant_id)
        SyncFlow.objects.filter(pk=flow.pk).update(folder=pick.tenant_id)
    return SyncFlow.objects.get(pk=flow.pk)


# -- The accountant's view -----------------------------------------------------------------------


def test_the_flow_page_offers_xeros_accounts_tax_types_and_organisations_read_live(
    fake, tenant, connectors, client
):
    flow = make_flow(fake, tenant)
    client.force_login(UserFactory(username="root", is_superuser=True))

    response = client.get(reverse("admin:mappings_syncflow_change", args=[flow.pk]))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"SALES", "PURCHASES"} <= set(choices(form, "sales_journal"))
    assert "200" in choices(form, "default_sales_account")
    assert "429" in choices(form, "default_purchases_account")
    # The control accounts are the collective ones; archived and control accounts are not
    # offered for lines.
    assert "610" in choices(form, "customer_collective_account")
    assert "800" in choices(form, "supplier_collective_account")
    assert "610" not in choices(form, "default_sales_account")
    assert "499" not in choices(form, "default_purchases_account")
    assert tenant.tenant_id in choices(form, "folder")
    assert fake.calls["getAccounts"] >= 1 and fake.calls["getTaxRates"] >= 1


def test_the_connection_page_shows_xeros_settings_and_connect_rather_than_a_token_field(
    fake, tenant, connectors, client
):
    flow = make_flow(fake, tenant)
    connection = flow.accounting_connection
    client.force_login(UserFactory(username="root", is_superuser=True))

    page = client.get(reverse("admin:connectors_connection_change", args=[connection.pk]))

    assert page.status_code == 200
    form = page.context["adminform"].form
    assert form["setting__api_url"].value() == fake.api_url
    assert b'name="setting__company_id"' in page.content
    assert b'name="credential_api_key"' not in page.content
    assert b"Xero" in page.content


def test_a_burst_of_5xx_is_retried_and_the_run_completes(fake, tenant, connectors):
    connectors.put(gbp(number="RETRY-1", has_attachment=False))
    flow = make_flow(fake, tenant)
    fake.fail_next(2, status=503)  # the run's first two calls to the organisation

    assert run(flow).synced_count == 1

    assert [status for _, status in fake.answers[:2]] == [503, 503]
    assert len(tenant.invoices) == 1


def test_a_draft_found_when_the_flow_posts_is_approved_not_written_again(fake, tenant):
    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    target = xero_target(fake, tenant, token)
    try:
        contact = target.create_partner(
            tenant.tenant_id, Partner("d", "Draft Client"), Direction.SALES
        ).id
        external_id = "invsync:acct-test:invoice:draft-1"
        [draft] = target.create_entries(
            tenant.tenant_id, [EntryToWrite(contract_posting(external_id, contact, draft=True))]
        )
        assert draft.ref is not None and not draft.ref.posted

        [posted] = target.create_entries(
            tenant.tenant_id, [EntryToWrite(contract_posting(external_id, contact))]
        )
    finally:
        target.close()

    assert posted.ref is not None and posted.ref.posted and posted.ref.id == draft.ref.id
    (document,) = tenant.invoices.values()
    assert document["Status"] == "AUTHORISED"
