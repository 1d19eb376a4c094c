"""The fake Xero holds Xero's published spec (tests/contracts/xero): a request that breaks it is
refused with the reason and recorded, a good one is served, every response it sends keeps the
spec, and it answers as Xero does: per-document validation errors, Idempotency-Key replays, the
per-tenant and app rate limits (429 with the problem named), tenants a grant holds, and its
switches (5xx, refused document, answer lost after the write)."""

import base64
import hashlib
import re
import secrets
import threading
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from connectors.devtools.xero_contract import CONTRACT_DIR, SPEC_FILE, XeroContract, documents
from connectors.devtools.xero_fake import XeroFake, oauth_server_verifier


class Clock:
    """Time the tests move by hand: the limits are tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def contract():
    return XeroContract()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fake(contract, clock):
    with XeroFake(contract=contract, clock=clock) as fake:
        yield fake


@pytest.fixture
def acme(fake):
    return fake.add_tenant("Acme Ltd")


@pytest.fixture
def api(fake, acme):
    """A session with a token whose grant holds Acme, and the accounting API's address."""
    session = requests.Session()
    token = fake.tokens.issue(tenant_ids=[acme.tenant_id], ttl=None)  # the tests move the clock
    session.headers["Authorization"] = f"Bearer {token}"
    session.headers["xero-tenant-id"] = acme.tenant_id
    yield session, fake.api_url
    session.close()


def _contact(session, url, name="Bob Ltd", **fields) -> str:
    answer = session.put(f"{url}/Contacts", json={"Contacts": [{"Name": name, **fields}]})
    assert answer.status_code == 200, answer.text
    return answer.json()["Contacts"][0]["ContactID"]


def _invoice(contact_id, reference="EXT-1", **changes) -> dict:
    invoice = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-03-02",
        "DueDate": "2026-04-01",
        "Reference": reference,
        "InvoiceNumber": f"F-{reference}",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Widgets",
                "Quantity": 3,
                "UnitAmount": 10.01,
                "AccountCode": "200",
                "TaxType": "OUTPUT2",
            },
            {
                "Description": "Book",
                "Quantity": 1,
                "UnitAmount": 9.99,
                "AccountCode": "200",
                "TaxType": "RROUTPUT",
            },
        ],
    }
    invoice.update(changes)
    return invoice


def _headers(token: str, tenant_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if tenant_id is not None:
        headers["xero-tenant-id"] = tenant_id
    return headers


def _line(**changes) -> dict:
    line = {"Description": "x", "Quantity": 1, "UnitAmount": 100, "AccountCode": "200"}
    line.update(changes)
    return line


# -- the spec in the repository ---------------------------------------------------------------


def test_the_spec_is_the_file_sources_md_names_and_loads_once_per_process_under_two_seconds():
    sources = (CONTRACT_DIR / "SOURCES.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(SPEC_FILE.read_bytes()).hexdigest()
    assert digest in sources
    assert "version: 16.1.0" in SPEC_FILE.read_text(encoding="utf-8")[:200]
    assert "16.1.0" in sources
    assert (CONTRACT_DIR / "LICENSE").read_text().startswith("MIT License")

    loaded = documents()
    XeroContract()
    started = time.perf_counter()
    XeroContract()  # every later one: nothing loaded again

    assert documents() is loaded  # cached: one load per process
    assert time.perf_counter() - started < 0.05
    assert sum(loaded.seconds.values()) < 2.0
    assert loaded.accounting["info"]["version"] == "16.1.0"


def test_the_spec_fails_spec_validation_on_a_string_default_hence_loaded_with_validation_off():
    with pytest.raises(OpenAPIValidationError, match="'false' is not of type 'boolean'"):
        validate_spec(documents().accounting)


# -- requests that break the spec are refused and recorded ------------------------------------


def test_an_unknown_path_is_refused_and_recorded(fake, api):
    session, url = api

    answer = session.get(f"{url}/Invoicez")

    assert answer.status_code == 400
    assert "no such operation" in answer.json()["Message"]
    [violation] = fake.violations
    assert (violation.direction, violation.operation_id) == ("request", "unknown")


def test_a_call_without_the_tenant_header_is_refused_and_recorded(fake, api):
    session, url = api
    del session.headers["xero-tenant-id"]

    answer = session.get(f"{url}/Organisation")

    assert answer.status_code == 400
    [violation] = fake.violations
    assert violation.operation_id == "getOrganisations"
    assert any("xero-tenant-id" in reason for reason in violation.reasons)


def test_a_number_sent_as_a_string_is_refused_though_openapi_core_would_cast_it(fake, api, acme):
    session, url = api
    invoice = _invoice(_contact(session, url))
    invoice["LineItems"][0]["Quantity"] = "3"

    answer = session.put(f"{url}/Invoices", json={"Invoices": [invoice]})

    assert answer.status_code == 400
    assert "Invoices/0/LineItems/0/Quantity: '3' is not of type 'number'" in answer.text
    [violation] = fake.violations
    assert (violation.direction, violation.operation_id) == ("request", "createInvoices")
    assert acme.invoices == {}


def test_a_status_outside_the_specs_enum_is_refused_and_recorded(fake, api, acme):
    session, url = api
    invoice = _invoice(_contact(session, url), Status="APPROVED")

    answer = session.put(f"{url}/Invoices", json={"Invoices": [invoice]})

    assert answer.status_code == 400
    [violation] = fake.violations
    assert any("'APPROVED' is not one of" in reason for reason in violation.reasons)
    assert acme.invoices == {}


@pytest.mark.parametrize(
    ("query", "headers", "reason"),
    [
        ("?summariseErrors=false", {}, "unknown query parameter 'summariseErrors'"),
        ("?summarizeErrors=perhaps", {}, "summarizeErrors"),
        ("", {"Idempotency-Key": "k" * 129}, "Idempotency-Key is 129 characters"),
    ],
)
def test_parameters_the_spec_does_not_take_are_refused_and_recorded(
    fake, api, acme, query, headers, reason
):
    session, url = api
    invoice = _invoice(_contact(session, url))

    answer = session.put(f"{url}/Invoices{query}", json={"Invoices": [invoice]}, headers=headers)

    assert answer.status_code == 400
    assert reason in answer.json()["Message"]
    assert [v.operation_id for v in fake.violations] == ["createInvoices"]
    assert acme.invoices == {}


def test_an_attachment_in_another_media_type_than_the_spec_declares_is_refused(fake, api, acme):
    session, url = api
    session.put(f"{url}/Invoices", json={"Invoices": [_invoice(_contact(session, url))]})
    [invoice_id] = acme.invoices

    answer = session.put(
        f"{url}/Invoices/{invoice_id}/Attachments/F-1.pdf",
        data=b"%PDF-1.4",
        headers={"Content-Type": "application/pdf"},
    )

    assert answer.status_code == 400
    [violation] = fake.violations
    assert "application/octet-stream" in violation.reasons[0]
    assert acme.attachments.get(invoice_id, []) == []


def test_a_call_without_a_bearer_token_is_recorded_and_answered_401(fake, acme):
    answer = requests.get(
        f"{fake.api_url}/Organisation", headers={"xero-tenant-id": acme.tenant_id}
    )

    assert answer.status_code == 401
    assert answer.json()["Detail"] == "AuthenticationUnsuccessful"
    assert [v.operation_id for v in fake.violations] == ["getOrganisations"]


# -- good requests pass, every response keeps the spec ----------------------------------------


def test_a_first_sync_keeps_the_spec_both_ways_and_is_counted_per_operation(fake, api, acme):
    session, url = api
    bearer = {"Authorization": session.headers["Authorization"]}
    connections = requests.get(fake.connections_url, headers=bearer)
    for path in ("Organisation", "Accounts", "TaxRates", "TrackingCategories", "Currencies"):
        assert session.get(f"{url}/{path}").status_code == 200, path
    contact_id = _contact(session, url, AccountNumber="C001", TaxNumber="GB123456789")
    found = session.get(f"{url}/Contacts", params={"where": 'AccountNumber=="C001"', "page": 1})
    written = session.put(
        f"{url}/Invoices",
        params={"summarizeErrors": "false", "unitdp": 4},
        json={"Invoices": [_invoice(contact_id)]},
        headers={"Idempotency-Key": "invsync-EXT-1"},
    )
    invoice_id = written.json()["Invoices"][0]["InvoiceID"]
    attached = session.put(
        f"{url}/Invoices/{invoice_id}/Attachments/F-EXT-1.pdf",
        data=b"%PDF-1.4 invoice",
        headers={"Content-Type": "application/octet-stream", "Idempotency-Key": "pdf-EXT-1"},
    )
    again = session.get(f"{url}/Invoices", params={"where": 'Reference=="EXT-1"', "page": 1})

    assert fake.violations == []
    assert [c["tenantId"] for c in connections.json()] == [acme.tenant_id]
    assert [c["ContactID"] for c in found.json()["Contacts"]] == [contact_id]
    [invoice] = again.json()["Invoices"]
    assert (invoice["InvoiceID"], invoice["Total"], invoice["TotalTax"]) == (
        invoice_id,
        46.53,
        6.51,
    )
    assert invoice["HasAttachments"] is True
    assert attached.json()["Attachments"][0]["ContentLength"] == len(b"%PDF-1.4 invoice")
    assert fake.calls["createInvoices"] == 1
    assert fake.calls["createInvoiceAttachmentByFileName"] == 1
    assert all(status == 200 for _, status in fake.answers)


def test_a_response_breaking_the_spec_is_recorded_and_answered_500(fake, api, monkeypatch):
    session, url = api
    monkeypatch.setattr(fake, "_organisation", lambda tenant: {"OrganisationID": "not-a-uuid"})

    answer = session.get(f"{url}/Organisation")

    assert answer.status_code == 500
    [violation] = fake.violations
    assert (violation.direction, violation.operation_id) == ("response", "getOrganisations")
    assert "'not-a-uuid' is not a 'uuid'" in violation.reasons[0]


def test_the_contract_checks_a_response_body_as_json_without_casting(contract):
    reasons = contract.response_errors(
        method="GET",
        url="/api.xro/2.0/Invoices",
        request_headers={"xero-tenant-id": "t"},
        request_body=None,
        status=200,
        headers={"Content-Type": "application/json"},
        body=b'{"Invoices": [{"Total": "46.53", "Status": "OPEN"}]}',
    )

    assert any("Total: '46.53' is not of type 'number'" in r for r in reasons)
    assert any("Status: 'OPEN' is not one of" in r for r in reasons)


# -- documents as Xero takes them --------------------------------------------------------------


def test_with_summarize_errors_false_one_refused_invoice_fails_alone(fake, api, acme):
    session, url = api
    contact_id = _contact(session, url)
    batch = [_invoice(contact_id, f"EXT-{n}") for n in range(1, 50)]
    batch.insert(7, _invoice(contact_id, "EXT-BAD", LineItems=[_line(AccountCode="610")]))

    answer = session.post(
        f"{url}/Invoices", params={"summarizeErrors": "false"}, json={"Invoices": batch}
    )

    assert answer.status_code == 200
    documents_ = answer.json()["Invoices"]
    assert len(documents_) == 50
    refused = [d for d in documents_ if d["StatusAttributeString"] == "ERROR"]
    assert [d["Reference"] for d in refused] == ["EXT-BAD"]
    assert refused[0]["HasErrors"] is True
    assert "610" in refused[0]["ValidationErrors"][0]["Message"]
    assert len(acme.invoices) == 49
    assert fake.violations == []


def test_without_summarize_errors_one_refused_invoice_refuses_the_call(fake, api, acme):
    session, url = api
    contact_id = _contact(session, url)
    batch = [_invoice(contact_id, "EXT-1"), _invoice(contact_id, "EXT-2", CurrencyCode="JPY")]

    answer = session.put(f"{url}/Invoices", json={"Invoices": batch})

    assert answer.status_code == 400
    body = answer.json()
    assert (body["ErrorNumber"], body["Type"]) == (10, "ValidationException")
    [element] = body["Elements"]
    assert element["ValidationErrors"] == [
        {"Message": "Organisation is not subscribed to currency JPY"}
    ]
    assert acme.invoices == {}
    assert fake.violations == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_line(AccountCode="999"), "Account code '999' is not a valid code for this document."),
        (_line(AccountCode="499"), "Account code '499' has been archived"),
        (_line(AccountCode="800"), "Account code '800' is a system account"),
        (_line(TaxType="OUTPUT9"), "The TaxType code 'OUTPUT9' does not exist"),
    ],
)
def test_lines_xero_refuses_are_refused_with_its_message(fake, api, acme, line, message):
    session, url = api
    invoice = _invoice(_contact(session, url), LineItems=[line])

    answer = session.put(
        f"{url}/Invoices", params={"summarizeErrors": "false"}, json={"Invoices": [invoice]}
    )

    [document] = answer.json()["Invoices"]
    assert document["StatusAttributeString"] == "ERROR"
    assert document["ValidationErrors"][0]["Message"].startswith(message)
    assert acme.invoices == {}
    assert fake.violations == []


def test_a_sales_invoice_number_is_unique_but_a_supplier_one_is_not(fake, api, acme):
    session, url = api
    contact_id = _contact(session, url)
    sales = _invoice(contact_id, "EXT-1", InvoiceNumber="F-1")
    purchase = _invoice(contact_id, "EXT-2", Type="ACCPAY", InvoiceNumber="S-1")
    session.put(f"{url}/Invoices", json={"Invoices": [sales, purchase]})

    again = session.put(
        f"{url}/Invoices",
        params={"summarizeErrors": "false"},
        json={
            "Invoices": [
                _invoice(contact_id, "EXT-3", InvoiceNumber="F-1"),
                _invoice(contact_id, "EXT-4", Type="ACCPAY", InvoiceNumber="S-1"),
            ]
        },
    )

    first, second = again.json()["Invoices"]
    assert first["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    assert second["StatusAttributeString"] == "OK"
    assert len(acme.invoices) == 3
    assert fake.violations == []


def test_totals_are_computed_from_lines_and_a_given_line_tax_is_kept(fake, api):
    session, url = api
    contact_id = _contact(session, url)
    inclusive = _invoice(
        contact_id,
        "EXT-1",
        LineAmountTypes="Inclusive",
        CurrencyCode="EUR",
        CurrencyRate=1.1687,
        LineItems=[
            _line(UnitAmount=100, TaxType="OUTPUT2"),  # 16.666… → 16.67
            _line(UnitAmount=10, TaxType="OUTPUT2", TaxAmount=1.66),  # ours, not Xero's 1.67
        ],
    )
    credit = {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-03-05",
        "Reference": "EXT-CN",
        "Status": "DRAFT",
        "LineItems": [_line(AccountCode="310", UnitAmount=50, TaxType="INPUT2")],
    }

    invoice = session.put(f"{url}/Invoices", json={"Invoices": [inclusive]}).json()["Invoices"][0]
    note = session.put(f"{url}/CreditNotes", json={"CreditNotes": [credit]}).json()["CreditNotes"][
        0
    ]

    assert [line["TaxAmount"] for line in invoice["LineItems"]] == [16.67, 1.66]
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"]) == (91.67, 18.33, 110.0)
    assert (invoice["CurrencyCode"], invoice["CurrencyRate"]) == ("EUR", 1.1687)
    assert (note["Type"], note["Total"], note["RemainingCredit"]) == ("ACCPAYCREDIT", 60.0, 60.0)
    assert Decimal(str(note["TotalTax"])) == Decimal("10.00")
    assert fake.violations == []


def test_contacts_are_found_by_where_search_term_and_ids_and_paged(fake, api):
    session, url = api
    ids = [
        _contact(session, url, f"Client {n:03d}", AccountNumber=f"C{n:03d}", TaxNumber=f"GB{n}")
        for n in range(1, 4)
    ]

    by_tax = session.get(f"{url}/Contacts", params={"where": 'TaxNumber=="GB2"'}).json()
    by_part = session.get(
        f"{url}/Contacts", params={"where": '(Name.Contains("003")) OR AccountNumber=="C001"'}
    ).json()
    by_term = session.get(f"{url}/Contacts", params={"searchTerm": "client 003"}).json()
    by_ids = session.get(f"{url}/Contacts", params={"IDs": f"{ids[0]},{ids[2]}"}).json()
    page = session.get(f"{url}/Contacts", params={"page": 2, "pageSize": 2}).json()
    future = session.get(
        f"{url}/Contacts", headers={"If-Modified-Since": "2999-01-01T00:00:00Z"}
    ).json()
    clash = session.put(
        f"{url}/Contacts",
        params={"summarizeErrors": "false"},
        json={"Contacts": [{"Name": "Client 001"}, {"Name": "Other", "AccountNumber": "C002"}]},
    ).json()

    assert [c["ContactID"] for c in by_tax["Contacts"]] == [ids[1]]
    assert {c["ContactID"] for c in by_part["Contacts"]} == {ids[0], ids[2]}
    assert [c["ContactID"] for c in by_term["Contacts"]] == [ids[2]]
    assert {c["ContactID"] for c in by_ids["Contacts"]} == {ids[0], ids[2]}
    assert [c["Name"] for c in page["Contacts"]] == ["Client 003"]
    assert page["pagination"] == {"page": 2, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert future["Contacts"] == []
    assert [c["StatusAttributeString"] for c in clash["Contacts"]] == ["ERROR", "ERROR"]
    assert "must be unique" in clash["Contacts"][0]["ValidationErrors"][0]["Message"]
    assert fake.violations == []


def test_a_draft_is_found_by_id_status_or_contact_and_approved_by_a_post(fake, api, acme):
    session, url = api
    contact_id = _contact(session, url)
    other_id = _contact(session, url, "Other Ltd")
    session.put(
        f"{url}/Invoices",
        json={"Invoices": [_invoice(contact_id, "EXT-1", Status="DRAFT"),
                           _invoice(other_id, "EXT-2")]},
    )  # fmt: skip
    draft = acme.invoice_by_reference("EXT-1")

    by_status = session.get(f"{url}/Invoices", params={"Statuses": "DRAFT,SUBMITTED"}).json()
    by_contact = session.get(f"{url}/Invoices", params={"ContactIDs": other_id}).json()
    by_guid = session.get(
        f"{url}/Invoices", params={"where": f'Contact.ContactID==Guid("{contact_id.upper()}")'}
    ).json()
    approved = session.post(
        f"{url}/Invoices/{draft['InvoiceID']}",
        json={"Invoices": [{"InvoiceID": draft["InvoiceID"], "Status": "AUTHORISED"}]},
    ).json()["Invoices"][0]
    back = session.post(
        f"{url}/Invoices",
        params={"summarizeErrors": "false"},
        json={"Invoices": [{"InvoiceID": draft["InvoiceID"], "Status": "DRAFT"}]},
    ).json()["Invoices"][0]

    assert [i["Reference"] for i in by_status["Invoices"]] == ["EXT-1"]
    assert [i["Reference"] for i in by_contact["Invoices"]] == ["EXT-2"]
    assert [i["Reference"] for i in by_guid["Invoices"]] == ["EXT-1"]
    assert (approved["InvoiceID"], approved["Status"]) == (draft["InvoiceID"], "AUTHORISED")
    assert back["ValidationErrors"] == [
        {"Message": "Invoice status cannot be changed from AUTHORISED to DRAFT"}
    ]
    assert approved["Total"] == 46.53
    assert len(acme.invoices) == 2
    assert fake.violations == []


def test_a_credit_notes_attachment_is_stored_listed_and_read_back(fake, api, acme):
    session, url = api
    credit = {
        "Type": "ACCRECCREDIT",
        "Contact": {"Name": "New Customer Ltd"},  # unknown: Xero creates the contact
        "Reference": "EXT-CN1",
        "LineItems": [_line(TaxType="OUTPUT2")],
    }
    note = session.put(f"{url}/CreditNotes", json={"CreditNotes": [credit]}).json()
    note_id = note["CreditNotes"][0]["CreditNoteID"]
    octet = {"Content-Type": "application/octet-stream"}

    session.put(f"{url}/CreditNotes/{note_id}/Attachments/cn.pdf", data=b"old", headers=octet)
    session.post(f"{url}/CreditNotes/{note_id}/Attachments/cn.pdf", data=b"%PDF", headers=octet)
    listed = session.get(f"{url}/CreditNotes/{note_id}/Attachments").json()["Attachments"]
    content = session.get(
        f"{url}/CreditNotes/{note_id}/Attachments/cn.pdf",
        headers={"contentType": "application/pdf"},
    )
    by_id = session.get(
        f"{url}/CreditNotes/{note_id}/Attachments/{listed[0]['AttachmentID']}",
        headers={"contentType": "application/pdf"},
    )
    missing = session.put(
        f"{url}/Invoices/{note_id}/Attachments/x.pdf", data=b"%PDF", headers=octet
    )

    assert note["CreditNotes"][0]["CreditNoteNumber"] == "CN-0001"
    assert [c["Name"] for c in acme.contacts.values()] == ["New Customer Ltd"]
    assert [(a["FileName"], a["ContentLength"], a["MimeType"]) for a in listed] == [
        ("cn.pdf", 4, "application/pdf")
    ]
    assert content.content == by_id.content == b"%PDF"
    assert missing.status_code == 404
    assert fake.violations == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"LineItems": [_line(Tracking=[{"Name": "Region", "Option": "West"}])]},
            "Line 1: the tracking option 'West' is not valid for Region",
        ),
        ({"LineItems": [_line(UnitAmount=-100)]}, "Invoice total cannot be negative (-120.00)"),
        ({"Contact": {"ContactID": "00000000-0000-0000-0000-000000000001"}}, "could not be found"),
        ({"Status": "PAID"}, "Invoice not of valid status for creation"),
    ],
)
def test_documents_xero_refuses_are_refused_with_its_message(fake, api, acme, change, message):
    session, url = api
    invoice = _invoice(_contact(session, url), **change)

    answer = session.put(
        f"{url}/Invoices", params={"summarizeErrors": "false"}, json={"Invoices": [invoice]}
    )

    [document] = answer.json()["Invoices"]
    assert message in document["ValidationErrors"][0]["Message"]
    assert acme.invoices == {}
    assert fake.violations == []


def test_unit_amounts_keep_two_decimals_unless_unitdp_is_four(fake, api):
    session, url = api
    contact_id = _contact(session, url)
    line = _line(Quantity=3, UnitAmount=3.3333, TaxType="NONE")

    two = session.put(
        f"{url}/Invoices", json={"Invoices": [_invoice(contact_id, "EXT-1", LineItems=[line])]}
    ).json()["Invoices"][0]
    four = session.put(
        f"{url}/Invoices",
        params={"unitdp": 4},
        json={"Invoices": [_invoice(contact_id, "EXT-2", LineItems=[line])]},
    ).json()["Invoices"][0]

    assert (two["LineItems"][0]["UnitAmount"], two["Total"]) == (3.33, 9.99)
    assert (four["LineItems"][0]["UnitAmount"], four["Total"]) == (3.3333, 10.0)
    assert fake.violations == []


# -- tokens and tenants -----------------------------------------------------------------------


def test_a_tenant_the_grant_does_not_hold_answers_403_and_connections_list_only_its_own(fake, api):
    session, url = api
    other = fake.add_tenant("Other Ltd", base_currency="EUR", country="NL")

    answer = session.get(f"{url}/Organisation", headers={"xero-tenant-id": other.tenant_id})
    bearer = {"Authorization": session.headers["Authorization"]}
    listed = requests.get(fake.connections_url, headers=bearer)

    assert answer.status_code == 403
    assert (answer.json()["Title"], answer.json()["Detail"]) == (
        "Forbidden",
        "AuthenticationUnsuccessful",
    )
    assert [c["tenantName"] for c in listed.json()] == ["Acme Ltd"]
    assert fake.violations == []


def test_an_expired_or_revoked_token_answers_401_as_xero_does(fake, acme, clock):
    expired, revoked = fake.tokens.issue(), fake.tokens.issue(ttl=None)
    clock.now += 1801  # Xero's access tokens live 30 minutes
    fake.tokens.revoke(revoked)

    late = requests.get(f"{fake.api_url}/Organisation", headers=_headers(expired, acme.tenant_id))
    gone = requests.get(fake.connections_url, headers={"Authorization": f"Bearer {revoked}"})

    assert late.status_code == gone.status_code == 401
    assert late.json()["Detail"].startswith("TokenExpired")
    assert gone.json()["Detail"] == "AuthenticationUnsuccessful"
    assert fake.violations == []


def _oauth_tokens(server: OAuthServer) -> dict:
    """The authorization-code dance with PKCE against the local OAuth server."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = "http://127.0.0.1/callback"
    consent = requests.get(
        f"{server.url}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "state": "s1",
            "scope": "offline_access accounting.transactions",
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
    )
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    return requests.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ).json()


def test_access_tokens_of_the_local_oauth_server_are_accepted_until_revoked(fake, acme):
    with OAuthServer(companies=((acme.tenant_id, acme.name),)) as server:
        fake.trust(oauth_server_verifier(server, tenant_ids=[acme.tenant_id]))
        bearer = {"Authorization": f"Bearer {_oauth_tokens(server)['access_token']}"}

        tenants = requests.get(fake.connections_url, headers=bearer)
        granted = requests.get(
            f"{fake.api_url}/Organisation", headers={**bearer, "xero-tenant-id": acme.tenant_id}
        )
        server.revoke_all()
        refused = requests.get(
            f"{fake.api_url}/Organisation", headers={**bearer, "xero-tenant-id": acme.tenant_id}
        )

    assert [t["tenantId"] for t in tenants.json()] == [acme.tenant_id]
    assert granted.json()["Organisations"][0]["BaseCurrency"] == "GBP"
    assert refused.status_code == 401
    assert fake.violations == []


# -- rate limits ------------------------------------------------------------------------------


def _limited(contract, clock, **limits) -> XeroFake:
    return XeroFake(contract=contract, clock=clock, **limits)


def test_the_sixty_first_call_in_a_minute_answers_429_minute_until_the_window_moves(
    contract, clock
):
    with _limited(contract, clock, minute_limit=3) as fake:
        acme = fake.add_tenant()
        headers = _headers(fake.tokens.issue(), acme.tenant_id)
        url = f"{fake.api_url}/Organisation"
        first = requests.get(url, headers=headers)
        clock.now += 20
        answers = [requests.get(url, headers=headers) for _ in range(3)]
        clock.now += 40  # the first call leaves the window
        later = requests.get(url, headers=headers)

    assert first.headers["X-MinLimit-Remaining"] == "2"
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["X-Rate-Limit-Problem"] == "minute"
    assert answers[2].headers["Retry-After"] == "40"
    assert later.status_code == 200
    assert fake.violations == []


def test_the_daily_limit_answers_429_day_until_the_next_day(contract, clock):
    with _limited(contract, clock, day_limit=2) as fake:
        acme = fake.add_tenant()
        headers = _headers(fake.tokens.issue(ttl=None), acme.tenant_id)
        url = f"{fake.api_url}/Currencies"
        spent = [requests.get(url, headers=headers) for _ in range(2)]
        clock.now += 3600
        over = requests.get(url, headers=headers)
        clock.now += 86_400 - 3600
        next_day = requests.get(url, headers=headers)

    assert spent[1].headers["X-DayLimit-Remaining"] == "0"
    assert over.status_code == 429
    assert over.headers["X-Rate-Limit-Problem"] == "day"
    assert over.headers["Retry-After"] == str(86_400 - 3600)
    assert next_day.status_code == 200
    assert fake.violations == []


def test_the_app_minute_limit_spans_every_tenant(contract, clock):
    with _limited(contract, clock, app_minute_limit=2) as fake:
        first, second = fake.add_tenant("One"), fake.add_tenant("Two")
        token = fake.tokens.issue()
        url = f"{fake.api_url}/Organisation"
        answers = [
            requests.get(url, headers=_headers(token, t.tenant_id)) for t in (first, second, first)
        ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["X-Rate-Limit-Problem"] == "appminute"
    assert answers[1].headers["X-AppMinLimit-Remaining"] == "0"


def test_a_sixth_call_in_progress_answers_429_concurrent(contract, clock):
    with _limited(contract, clock, concurrent_limit=2) as fake:
        acme = fake.add_tenant()
        headers = _headers(fake.tokens.issue(), acme.tenant_id)
        url = f"{fake.api_url}/Organisation"
        statuses: list[int] = []

        def call() -> None:
            statuses.append(requests.get(url, headers=headers).status_code)

        with fake.hold():
            waiting = [threading.Thread(target=call) for _ in range(2)]
            for thread in waiting:
                thread.start()
            deadline = time.monotonic() + 5
            while fake.in_progress(acme.tenant_id) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            third = requests.get(url, headers=headers)
        for thread in waiting:
            thread.join(5)

    assert third.status_code == 429
    assert third.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert int(third.headers["Retry-After"]) >= 1
    assert statuses == [200, 200]


# -- idempotency and the switches -------------------------------------------------------------


def test_the_same_idempotency_key_and_body_answer_the_first_answer_again(fake, api, acme, clock):
    session, url = api
    invoice = _invoice(_contact(session, url))
    key = {"Idempotency-Key": "invsync-EXT-1"}

    first = session.put(f"{url}/Invoices", json={"Invoices": [invoice]}, headers=key)
    replay = session.put(f"{url}/Invoices", json={"Invoices": [invoice]}, headers=key)
    other = session.put(
        f"{url}/Invoices", json={"Invoices": [_invoice(invoice["Contact"]["ContactID"], "EXT-2")]},
        headers=key,
    )  # fmt: skip
    clock.now += 86_401  # the key is forgotten after a day
    later = session.put(f"{url}/Invoices", json={"Invoices": [invoice]}, headers=key)

    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert other.status_code == 400
    assert "Idempotency-Key reused" in other.json()["Message"]
    assert later.status_code == 400  # written anew: the number is taken by the first
    assert later.json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "Invoice # must be unique."}
    ]
    assert len(acme.invoices) == 1
    assert fake.violations == []


def test_an_answer_lost_after_the_write_is_replayed_by_its_idempotency_key(fake, api, acme):
    session, url = api
    invoice = _invoice(_contact(session, url))
    key = {"Idempotency-Key": "invsync-EXT-1"}
    fake.drop_after_write()

    with pytest.raises(requests.ConnectionError):
        session.put(f"{url}/Invoices", json={"Invoices": [invoice]}, headers=key)
    stored = len(acme.invoices)
    retried = session.put(f"{url}/Invoices", json={"Invoices": [invoice]}, headers=key)

    assert stored == 1
    assert retried.status_code == 200
    assert retried.json()["Invoices"][0]["InvoiceID"] in acme.invoices
    assert len(acme.invoices) == 1
    assert fake.violations == []


def test_a_5xx_burst_and_a_refused_reference_answer_as_asked(fake, api, acme):
    session, url = api
    contact_id = _contact(session, url)
    fake.fail_next(2)
    fake.refuse("EXT-2", "Something about EXT-2 is wrong.")

    burst = [session.get(f"{url}/Organisation").status_code for _ in range(3)]
    written = session.put(
        f"{url}/Invoices",
        params={"summarizeErrors": "false"},
        json={"Invoices": [_invoice(contact_id, "EXT-1"), _invoice(contact_id, "EXT-2")]},
    ).json()["Invoices"]

    assert burst == [503, 503, 200]
    assert [d["StatusAttributeString"] for d in written] == ["OK", "ERROR"]
    assert written[1]["ValidationErrors"] == [{"Message": "Something about EXT-2 is wrong."}]
    assert acme.invoice_by_reference("EXT-1") is not None
    assert acme.invoice_by_reference("EXT-2") is None
    assert fake.violations == []


def test_the_readme_names_every_switch_and_address_the_fake_has():
    readme = (CONTRACT_DIR / "README.md").read_text(encoding="utf-8")
    for name in (
        "connections_url", "api_url", "tokens.issue", "oauth_server_verifier", "fail_next",
        "refuse(", "drop_after_write", "hold()", "in_progress", "violations", "calls",
        "minute_limit", "day_limit", "concurrent_limit", "app_minute_limit", "idempotency_ttl",
    ):  # fmt: skip
        assert name in readme, name
        assert re.search(r"\w", name)
