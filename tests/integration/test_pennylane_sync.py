"""Flow runs into Pennylane: the in-memory invoicing source, PennylaneTarget (registry key
``pennylane``) and H4's contract-validated fake (``connectors/devtools/pennylane_fake.py``), through
``flow_sync`` as a person or the scheduler runs it. Every test asserts that the fake saw no
contract violation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from connectors import registry
from connectors.base import AuthKind, ConnectionConfig, EntryToWrite
from connectors.canonical import Direction, InvoiceType, Partner
from connectors.devtools.oauth_server import OAuthServer
from connectors.devtools.pennylane_fake import Answer, PennylaneFake, oauth_server_verifier
from connectors.errors import CATALOGUE, ConnectorError, ErrorCode
from connectors.models import Connection
from connectors.oauth_flow import oauth_company_pick
from connectors.outbound import OutboundPolicy
from connectors.providers.pennylane.target import PennylaneTarget
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.doubles import MemorySource
from tests.factories import InvoiceFactory, SyncFlowFactory, UserFactory
from tests.factories.canonical import InvoiceLineFactory, PartnerFactory
from tests.integration.test_admin import _form_data as form_data
from tests.integration.test_mapping_forms import choices
from tests.oauth_fixtures import connect, oauth_settings

pytestmark = pytest.mark.django_db

VAT = [
    ("sales", "20.0", "44571"), ("sales", "10.0", "445711"), ("sales", "5.5", "445715"),
    ("purchases", "20.0", "44566"), ("purchases", "10.0", "445661"),
    ("purchases", "5.5", "445665"),
]  # fmt: skip


@pytest.fixture
def fake():
    with PennylaneFake() as fake:  # Pennylane's rate limit on: 25 requests / 5 s per token
        yield fake
        fake.assert_no_violations()


@pytest.fixture
def company(fake):
    return fake.add_company("Atelier Dupont SAS", reg_no="732829320")


@pytest.fixture
def connectors():
    MemorySource.reset()
    with registry.override([MemorySource, PennylaneTarget]):
        yield MemorySource


def make_flow(fake, company, *, token=None, **settings):
    token = token or fake.tokens.issue(company_id=company.id)
    flow = SyncFlowFactory(
        accounting_connection__kind="accounting",
        accounting_connection__provider="pennylane",
        accounting_connection__auth_kind="api_key",
        accounting_connection__settings={"api_url": fake.api_url, **settings},
        accounting_connection__credentials={"api_key": token},
        folder=str(company.id), folder_name=company.name,
        sales_journal="VE", purchases_journal="HA",
        default_sales_account="706", default_purchases_account="607",
        customer_collective_account="411", supplier_collective_account="401",
        rounding_credit_account="758", rounding_debit_account="658",
        sales_rounding_vat_code="44571", purchases_rounding_vat_code="44566",
        vat=VAT,
    )  # fmt: skip
    return SyncFlow.objects.get(pk=flow.pk)


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None
    return result


def records(flow) -> dict[str, SyncedRecord]:
    return {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}


def entries_of(company, number: str) -> list[dict]:
    return [e for e in company.ledger_entries.values() if e["piece_number"] == number]


def lines_by_account(company, entry) -> dict[str, tuple[str, str]]:
    """(debit, credit) per account number, summed over the entry's lines."""
    sums: dict[str, list[Decimal]] = {}
    for line in entry["ledger_entry_lines"]:
        account_id = line.get("ledger_account_id") or line["ledger_account"]["id"]
        number = company.ledger_accounts[account_id]["number"]
        total = sums.setdefault(number, [Decimal(0), Decimal(0)])
        total[0] += Decimal(line["debit"])
        total[1] += Decimal(line["credit"])
    return {number: (f"{d:.2f}", f"{c:.2f}") for number, (d, c) in sums.items()}


def test_first_sync_books_each_sample_invoice_once_as_a_balanced_entry_with_its_vat_and_pdf(
    fake, company, connectors
):
    sale = InvoiceFactory(
        number="F-2026-0001",
        lines=(
            InvoiceLineFactory(untaxed_amount=Decimal("1000.00")),
            InvoiceLineFactory(untaxed_amount=Decimal("200.00"), tax_rate=Decimal("5.5")),
        ),
    )
    purchase = InvoiceFactory(
        number="FA-77", type=InvoiceType.SUPPLIER_INVOICE, has_attachment=False,
        partner=PartnerFactory(name="Papeterie Martin"),
        lines=(InvoiceLineFactory(untaxed_amount=Decimal("50.00"), tax_rate=Decimal("10.0")),),
    )  # fmt: skip
    connectors.put(sale, purchase)
    flow = make_flow(fake, company)

    result = run(flow)

    assert result.synced_count == 2, (result.status, result.error_message)
    (sale_entry,) = entries_of(company, "F-2026-0001")
    (purchase_entry,) = entries_of(company, "FA-77")
    journals = {j["id"]: j["code"] for j in company.journals.values()}
    assert (
        journals[sale_entry["journal_id"]] == "VE"
        and journals[purchase_entry["journal_id"]] == "HA"
    )
    sale_lines = lines_by_account(company, sale_entry)
    # VAT as the invoice states it, on the mapped VAT accounts, to the cent.
    assert sale_lines["44571"] == ("0.00", "200.00")
    assert sale_lines["445715"] == ("0.00", "11.00")
    assert sale_lines["706"] == ("0.00", "1200.00")
    # The customer's own account (created in Pennylane), not the collective 411.
    (customer_account,) = [n for n in sale_lines if n.startswith("411")]
    assert customer_account != "411" and sale_lines[customer_account] == ("1411.00", "0.00")
    assert lines_by_account(company, purchase_entry)["445661"] == ("5.00", "0.00")
    # The PDF went with the sale's entry (the purchase had none).
    assert company.files[sale_entry["file_attachment_id"]] == b"%PDF-1.4 F-2026-0001"
    assert purchase_entry["file_attachment_id"] is None
    assert fake.calls["postFileAttachments"] == 1
    assert len(company.customers) == 1 and len(company.suppliers) == 1

    # A second run writes nothing.
    assert run(flow).synced_count == 0
    assert len(company.ledger_entries) == 2


def test_partners_are_matched_by_auxiliary_account_vat_number_siren_and_name_else_created(
    fake, company, connectors
):
    flow = make_flow(fake, company)
    target = PennylaneTarget(
        ConnectionConfig(
            AuthKind.API_KEY, {"api_url": fake.api_url},
            {"api_key": fake.tokens.issue(company_id=company.id)},
            outbound=OutboundPolicy.from_allow_list(["127.0.0.1"]),
        )
    )  # fmt: skip
    folder = str(company.id)
    existing = {
        "aux": target.create_partner(folder, Partner("x1", "Boulangerie Aux"), Direction.SALES),
        "vat": target.create_partner(
            folder, Partner("x2", "Vat Holding", vat_number="FR40303265045"), Direction.SALES
        ),
        "siren": target.create_partner(
            folder, Partner("x3", "Siren SA", company_number="552120222"), Direction.SALES
        ),
        "name": target.create_partner(folder, Partner("x4", "Garage Leblanc"), Direction.SALES),
    }
    target.close()
    accounts = {a["id"]: a["number"] for a in company.ledger_accounts.values()}
    own = {c["id"]: accounts[c["ledger_account"]["id"]] for c in company.customers.values()}
    expected = {key: own[int(p.id.split(":")[1])] for key, p in existing.items()}
    aux_account = expected["aux"]
    partners = {
        "aux": Partner("p1", "Boulangerie (autre nom)", auxiliary_account=aux_account),
        "vat": Partner("p2", "VH Group", vat_number="FR 40 303 265 045"),
        "siren": Partner("p3", "Siren Société Anonyme", company_number="55212022200019"),
        "name": Partner("p4", "Garage Leblanc"),
        "new": Partner("p5", "Nouveau Client SARL", vat_number="FR12345678901", country="FR"),
    }
    for key, partner in partners.items():
        connectors.put(InvoiceFactory(number=f"M-{key}", partner=partner))
    customers_before = len(company.customers)

    result = run(flow)

    assert result.synced_count == 5, (result.status, result.error_message)
    assert len(company.customers) == customers_before + 1  # only the new one is created
    new = next(c for c in company.customers.values() if c["name"] == "Nouveau Client SARL")
    assert new["vat_number"] == "FR12345678901"
    accounts = {a["id"]: a["number"] for a in company.ledger_accounts.values()}
    expected["new"] = accounts[new["ledger_account"]["id"]]
    for key, account in expected.items():
        (entry,) = entries_of(company, f"M-{key}")
        assert account in lines_by_account(company, entry), (key, lines_by_account(company, entry))


def test_a_refused_entry_fails_that_invoice_alone_with_a_code_from_pennylanes_message(
    fake, company, connectors
):
    good, bad = InvoiceFactory(number="OK-1"), InvoiceFactory(number="BAD-1")
    connectors.put(good, bad)
    fake.refuse_entries(
        lambda body: body.get("piece_number") == "BAD-1",
        message="Ledger account 706 is locked for this fiscal year",
    )
    flow = make_flow(fake, company)

    run(flow)

    found = records(flow)
    assert found[good.source_id].status == RecordStatus.SYNCED
    failed = found[bad.source_id]
    assert failed.status == RecordStatus.FAILED
    assert failed.error_code == ErrorCode.ACCOUNT_NUMBER_NOT_FOUND
    assert "locked for this fiscal year" in failed.error_message
    assert entries_of(company, "BAD-1") == [] and len(entries_of(company, "OK-1")) == 1


def test_a_run_over_pennylanes_rate_limit_obeys_retry_after_and_completes(
    fake, company, connectors
):
    # The connector's own window is set above Pennylane's, so that Pennylane answers 429.
    fake.limit, fake.window = 6, 1.0
    connectors.put(*(InvoiceFactory(has_attachment=False) for _ in range(6)))
    flow = make_flow(fake, company, rate_limit="1000/1")

    result = run(flow)

    assert result.synced_count == 6, (result.status, result.error_message)
    assert ("postLedgerEntries", 429) in fake.answers or ("getLedgerEntries", 429) in fake.answers
    assert len(company.ledger_entries) == 6


def test_the_connectors_own_window_keeps_a_run_under_pennylanes_limit(fake, company, connectors):
    fake.limit, fake.window = 8, 1.0
    connectors.put(*(InvoiceFactory(has_attachment=False) for _ in range(6)))
    flow = make_flow(fake, company, rate_limit="8/1")

    result = run(flow)

    assert result.synced_count == 6, (result.status, result.error_message)
    assert all(status != 429 for _, status in fake.answers)
    assert sum(fake.calls.values()) > 8  # the run needed more than one window


def test_a_burst_of_5xx_on_reads_is_retried_and_the_run_completes(fake, company, connectors):
    connectors.put(InvoiceFactory(number="RETRY-1", has_attachment=False))
    flow = make_flow(fake, company, retry_base_delay="0")
    fake.fail_next(2, status=503)  # the run's first two requests (reads)

    assert run(flow).synced_count == 1

    assert [status for _, status in fake.answers[:2]] == [503, 503]
    assert len(entries_of(company, "RETRY-1")) == 1


def test_a_crash_after_the_write_then_a_rerun_writes_no_duplicate(
    fake, company, connectors, monkeypatch
):
    invoices = [InvoiceFactory() for _ in range(3)]
    connectors.put(*invoices)
    flow = make_flow(fake, company)
    write = PennylaneTarget.create_entries

    def written_then_lost(self, folder, entries: list[EntryToWrite]):
        write(self, folder, entries)
        raise ConnectorError(ErrorCode.UNAVAILABLE, "Pennylane dropped the connection.")

    monkeypatch.setattr(PennylaneTarget, "create_entries", written_then_lost)
    run(flow)
    assert {r.status for r in records(flow).values()} == {RecordStatus.PUSHING}
    assert len(company.ledger_entries) == 3  # the batch was written, its answer lost

    monkeypatch.setattr(PennylaneTarget, "create_entries", write)
    result = run(flow)

    assert {r.status for r in records(flow).values()} == {RecordStatus.SYNCED}
    assert sorted(len(entries_of(company, i.number)) for i in invoices) == [1, 1, 1]
    assert result is not None


def test_a_lost_answer_to_an_entry_is_looked_up_before_it_is_written_again(
    fake, company, connectors
):
    connectors.put(InvoiceFactory(number="LOST-1", has_attachment=False))
    flow = make_flow(fake, company)
    answer = fake.handle
    lost = []

    def first_entry_answer_lost(method, target, headers, body):
        result = answer(method, target, headers, body)
        if method == "POST" and "/ledger_entries" in target and not lost:
            lost.append(result)  # Pennylane wrote it; the answer never arrives (a 503)
            return Answer(503, {"Content-Type": "application/json"}, b'{"error": "Unavailable"}')
        return result

    fake.handle = first_entry_answer_lost
    run(flow)

    assert lost and lost[0].status == 201
    (record,) = records(flow).values()
    assert record.status == RecordStatus.SYNCED
    assert len(entries_of(company, "LOST-1")) == 1


def test_a_firm_token_acts_on_the_company_of_the_company_id_setting(fake, company, connectors):
    other = fake.add_company("Autre Client SAS")
    token = fake.tokens.issue(firm=True, company_ids=[company.id, other.id])
    connectors.put(InvoiceFactory(number="FIRM-1", has_attachment=False))
    flow = make_flow(fake, company, token=token, company_id=str(company.id))

    assert run(flow).synced_count == 1

    assert len(entries_of(company, "FIRM-1")) == 1 and other.ledger_entries == {}


# -- OAuth2: the connection signed in through Pennylane's backend against the local server -------


@pytest.fixture
def oauth(settings):
    """The local authorization server (connectors/devtools/oauth_server.py) standing in for
    Pennylane's, the settings pointing Pennylane's backend at it."""
    with OAuthServer() as server:
        settings.INVSYNC_OAUTH = oauth_settings(server.url)
        yield server


def oauth_flow(fake, oauth, client):
    """A flow whose Pennylane connection signs in with OAuth2: the dance through the admin, then
    the company picked among the two the grant gives (sent as X-Company-Id)."""
    company = fake.add_company("Boulangerie Martin SAS", company_id=101)
    fake.add_company("Atelier Dubois SARL", company_id=202)
    fake.trust(oauth_server_verifier(oauth))  # the server's access tokens, for any company
    flow = make_flow(fake, company)
    connection = flow.accounting_connection
    Connection.objects.filter(pk=connection.pk).update(auth_kind="oauth2", credentials={})
    connection.refresh_from_db()
    client.force_login(UserFactory(username="root", is_superuser=True))
    connect(client, connection)
    oauth_company_pick(connection=connection, company_id="101")
    return SyncFlow.objects.get(pk=flow.pk), company


def test_an_access_token_that_expires_mid_run_is_refreshed_and_the_run_completes(
    fake, oauth, connectors, client
):
    flow, company = oauth_flow(fake, oauth, client)
    connectors.put(*(InvoiceFactory(has_attachment=False) for _ in range(3)))
    answer = fake.handle
    seen = []

    def expire_after_first_entry(method, target, headers, body):
        result = answer(method, target, headers, body)
        if method == "POST" and "/ledger_entries" in target and not seen:
            seen.append(target)
            oauth.expire_access_tokens()  # Pennylane drops the token in the middle of the run
        return result

    fake.handle = expire_after_first_entry
    result = run(flow)

    assert result.synced_count == 3, (result.status, result.error_message)
    assert oauth.stats.refreshes == 1
    assert ("postLedgerEntries", 401) in fake.answers or ("getLedgerEntries", 401) in fake.answers
    assert len(company.ledger_entries) == 3


def test_a_revoked_grant_stops_the_run_with_grant_revoked_and_writes_nothing(
    fake, oauth, connectors, client
):
    flow, company = oauth_flow(fake, oauth, client)
    connectors.put(InvoiceFactory(has_attachment=False))
    oauth.revoke_all()

    result = run(flow)

    assert result.error_code == ErrorCode.OAUTH_GRANT_REVOKED
    assert "Reconnect" in CATALOGUE[ErrorCode.OAUTH_GRANT_REVOKED].resolution
    assert company.ledger_entries == {}


# -- The accountant's view -----------------------------------------------------------------------


def test_the_flow_page_offers_pennylanes_journals_accounts_and_vat_accounts_read_live(
    fake, company, connectors, client
):
    flow = make_flow(fake, company)
    client.force_login(UserFactory(username="root", is_superuser=True))

    response = client.get(reverse("admin:mappings_syncflow_change", args=[flow.pk]))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"VE", "HA"} <= set(choices(form, "sales_journal"))
    assert choices(form, "default_sales_account")["706"] == "706 – Prestations de services"
    assert "607" in choices(form, "default_purchases_account")
    assert set(choices(form, "customer_collective_account")) >= {"411"}
    assert "44571" not in choices(form, "default_sales_account")
    assert choices(form, "folder") == {str(company.id): "Atelier Dupont SAS"} or str(
        company.id
    ) in choices(form, "folder")
    assert fake.calls["getLedgerAccounts"] >= 1 and fake.calls["getJournals"] >= 1


def test_the_connection_declares_pennylanes_settings_and_both_auth_kinds():
    names = [field.name for field in PennylaneTarget.settings_fields]
    assert names[:2] == ["company_id", "api_url"]
    assert set(PennylaneTarget.auth_kinds) == {AuthKind.API_KEY, AuthKind.OAUTH2}
    (company_id,) = [f for f in PennylaneTarget.settings_fields if f.name == "company_id"]
    assert company_id.problem("12x") and company_id.problem("123") is None


def test_the_connection_page_shows_pennylanes_settings_as_fields_and_saves_what_is_typed(
    fake, company, connectors, client
):
    flow = make_flow(fake, company)
    connection = flow.accounting_connection
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:connectors_connection_change", args=[connection.pk])

    page = client.get(url)

    form = page.context["adminform"].form
    assert str(form["setting__company_id"].label) == "Company id"
    assert form["setting__api_url"].value() == fake.api_url
    assert b'name="setting__company_id"' in page.content
    data = form_data(page)
    data["setting__company_id"] = "12x"
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "must be a whole number" in str(refused.context["adminform"].form.errors).lower()
    data["setting__company_id"] = str(company.id)
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    connection.refresh_from_db()
    assert connection.settings == {"api_url": fake.api_url, "company_id": str(company.id)}


def test_a_new_api_address_typed_in_its_field_asks_for_the_token_again(
    fake, company, connectors, client
):
    flow = make_flow(fake, company)
    connection = flow.accounting_connection
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:connectors_connection_change", args=[connection.pk])
    data = form_data(client.get(url))
    data["setting__api_url"] = "https://sandbox.example.test/api/external/v2"

    refused = client.post(url, data)

    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "address the credentials are sent to changed" in str(errors.get("credential_api_key"))
    connection.refresh_from_db()
    assert connection.settings["api_url"] == fake.api_url
