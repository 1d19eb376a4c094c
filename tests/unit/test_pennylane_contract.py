"""The fake Pennylane holds Pennylane's contract (tests/contracts/pennylane): a request that breaks
it is refused with the reason and recorded, a good one is served, every response it sends keeps
the contract, and its switches (rate limit, expired/revoked/firm tokens, refused entries, 5xx)
answer as Pennylane does."""

import base64
import hashlib
import json
import re
import secrets
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from connectors.devtools.pennylane_contract import CONTRACT_DIR, Contract, load_contract
from connectors.devtools.pennylane_fake import PennylaneFake, oauth_server_verifier

ADDRESS = {
    "address": "3 rue des Lilas",
    "postal_code": "69001",
    "city": "Lyon",
    "country_alpha2": "FR",
}


class Clock:
    """Time the tests move by hand: the rate limit is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def contract():
    return Contract()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fake(contract, clock):
    with PennylaneFake(contract=contract, clock=clock) as fake:
        yield fake


@pytest.fixture
def acme(fake):
    return fake.add_company("Acme SAS", reg_no="552100554")


@pytest.fixture
def api(fake, acme):
    """A session with Acme's company API token, and the fake's API address."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake.tokens.issue(company_id=acme.id)}"
    yield session, fake.api_url
    session.close()


def _accounts(session, url) -> dict[str, int]:
    answer = session.get(f"{url}/ledger_accounts", params={"limit": 100})
    return {account["number"]: account["id"] for account in answer.json()["items"]}


def _journals(session, url) -> dict[str, int]:
    return {j["code"]: j["id"] for j in session.get(f"{url}/journals").json()["items"]}


def _entry(session, url, **changes) -> dict:
    accounts, journals = _accounts(session, url), _journals(session, url)
    entry = {
        "date": "2026-03-02",
        "label": "Facture F-2026-001",
        "journal_id": journals["VE"],
        "piece_number": "F-2026-001",
        "ledger_entry_lines": [
            {"ledger_account_id": accounts["411"], "debit": "120.00", "credit": "0.00"},
            {"ledger_account_id": accounts["706"], "debit": "0.00", "credit": "100.00"},
            {"ledger_account_id": accounts["44571"], "debit": "0.00", "credit": "20.00"},
        ],
    }
    entry.update(changes)
    return entry


# -- the contract files -----------------------------------------------------------------------


def test_every_operation_file_merges_once_with_its_source_and_sources_md_names_it():
    files = sorted(CONTRACT_DIR.glob("*.json"))
    merged = load_contract()
    operations = [op for methods in merged["paths"].values() for op in methods.values()]
    assert len(operations) == len(files) >= 19
    sources = (CONTRACT_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for file in files:
        document = json.loads(file.read_text(encoding="utf-8"))
        source = document["x-invsync-source"]
        assert source["page"].startswith("https://pennylane.readme.io/"), file.name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source["collected"]), file.name
        assert Path(file).stem in sources, file.name


# -- requests that break the contract are refused and recorded --------------------------------


def test_an_entry_without_its_label_is_refused_with_the_reason_and_recorded(fake, api):
    session, url = api
    entry = _entry(session, url)
    del entry["label"]

    answer = session.post(f"{url}/ledger_entries", json=entry)

    assert answer.status_code == 400
    assert "'label' is a required property" in answer.json()["error"]
    [violation] = fake.violations
    assert (violation.direction, violation.operation_id) == ("request", "postLedgerEntries")
    assert any("label" in reason for reason in violation.reasons)
    assert fake.answers[-1] == ("postLedgerEntries", 400)


def test_a_number_sent_as_a_string_is_refused_though_openapi_core_would_cast_it(fake, api):
    session, url = api
    entry = _entry(session, url)
    entry["journal_id"] = str(entry["journal_id"])

    answer = session.post(f"{url}/ledger_entries", json=entry)

    assert answer.status_code == 400
    assert "journal_id: '" in answer.json()["error"]
    assert "is not of type 'integer'" in answer.json()["error"]
    assert [v.operation_id for v in fake.violations] == ["postLedgerEntries"]


def test_an_amount_sent_as_a_number_is_refused(fake, api):
    session, url = api
    entry = _entry(session, url)
    entry["ledger_entry_lines"][0]["debit"] = 120

    answer = session.post(f"{url}/ledger_entries", json=entry)

    assert answer.status_code == 400
    assert "ledger_entry_lines/0/debit: 120 is not of type 'string'" in answer.json()["error"]
    assert len(fake.violations) == 1


def test_an_unknown_path_is_refused_and_recorded(fake, api):
    session, url = api

    answer = session.get(f"{url}/journal_entries")

    assert answer.status_code == 400
    assert "no such operation" in answer.json()["error"]
    [violation] = fake.violations
    assert violation.operation_id == "unknown"
    assert fake.calls["unknown"] == 1


def test_an_unknown_query_parameter_and_an_unfilterable_field_are_refused(fake, api):
    session, url = api

    paged = session.get(f"{url}/ledger_accounts", params={"page": 2})
    filtered = session.get(
        f"{url}/customers",
        params={"filter": json.dumps([{"field": "colour", "operator": "eq", "value": "red"}])},
    )
    too_many = session.get(f"{url}/suppliers", params={"limit": 500})
    wrong_operator = session.get(
        f"{url}/ledger_accounts",
        params={"filter": json.dumps([{"field": "number", "operator": "eq", "value": "411"}])},
    )
    wrong_sort = session.get(f"{url}/suppliers", params={"sort": "-name"})

    assert [paged.status_code, filtered.status_code, too_many.status_code] == [400, 400, 400]
    assert "'number' does not take 'eq' (start_with)" in wrong_operator.json()["error"]
    assert "cannot sort on '-name' (id)" in wrong_sort.json()["error"]
    assert "unknown query parameter 'page'" in paged.json()["error"]
    assert "field 'colour' not filterable" in filtered.json()["error"]
    assert "500 is greater than the maximum of 100" in too_many.json()["error"]
    assert len(fake.violations) == 5


def test_a_request_without_a_bearer_token_is_answered_401_and_recorded(fake, acme):
    answer = requests.get(f"{fake.api_url}/me")

    assert answer.status_code == 401
    assert answer.json() == {"error": "The access token is invalid", "status": 401}
    [violation] = fake.violations
    assert "Bearer" in violation.reasons[0]


# -- requests that keep it are served, and every response keeps it ----------------------------


def test_an_accounting_target_s_calls_are_served_and_every_response_keeps_the_contract(
    fake, api, acme, contract
):
    session, url = api
    responses = []

    def call(method, path, **kwargs):
        answer = session.request(method, f"{url}{path}", **kwargs)
        responses.append(answer)
        return answer

    me = call("GET", "/me").json()
    assert me["company"] == {"id": acme.id, "name": "Acme SAS", "reg_no": "552100554"}
    first = call("GET", "/ledger_accounts", params={"limit": 5}).json()
    second = call("GET", "/ledger_accounts", params={"limit": 5, "cursor": first["next_cursor"]})
    assert first["has_more"] and len(first["items"]) == 5
    assert {a["id"] for a in first["items"]}.isdisjoint(a["id"] for a in second.json()["items"])
    vat = call(
        "GET",
        "/ledger_accounts",
        params={
            "filter": json.dumps([{"field": "number", "operator": "start_with", "value": "4457"}])
        },
    ).json()["items"]
    assert {(a["number"], a["vat_rate"]) for a in vat} >= {
        ("44571", "FR_200"),
        ("445711", "FR_100"),
    }
    customer = call(
        "POST",
        "/company_customers",
        json={
            "name": "Boulangerie Martin",
            "vat_number": "FR40303265045",
            "reg_no": "303265045",
            "billing_address": ADDRESS,
        },
    ).json()
    supplier = call(
        "POST",
        "/suppliers",
        json={"name": "Papeterie Dubois", "establishment_no": "73282932000074"},
    ).json()
    found = call(
        "GET",
        "/customers",
        params={
            "filter": json.dumps([{"field": "reg_no", "operator": "eq", "value": "303265045"}])
        },
    ).json()["items"]
    assert [c["id"] for c in found] == [customer["id"]]
    pdf = call(
        "POST",
        "/file_attachments",
        files={"file": ("F-2026-001.pdf", b"%PDF-1.7 facture", "application/pdf")},
        data={"filename": "F-2026-001.pdf"},
    ).json()
    assert acme.files[pdf["id"]] == b"%PDF-1.7 facture"
    entry = _entry(session, url)
    entry["ledger_entry_lines"][0]["ledger_account_id"] = customer["ledger_account"]["id"]
    created = call("POST", "/ledger_entries", json=entry)
    assert created.status_code == 201
    attached = call(
        "PUT", f"/ledger_entries/{created.json()['id']}", json={"file_attachment_id": pdf["id"]}
    ).json()
    assert attached["ledger_attachment_filename"] == "F-2026-001.pdf"
    again = call("GET", f"/ledger_entries/{created.json()['id']}").json()
    assert [line["debit"] for line in again["ledger_entry_lines"]] == ["120.00", "0.00", "0.00"]
    ours = call(
        "GET",
        "/ledger_entries",
        params={
            "filter": json.dumps(
                [
                    {"field": "journal_id", "operator": "eq", "value": entry["journal_id"]},
                    {"field": "date", "operator": "eq", "value": "2026-03-02"},
                ]
            ),
            "sort": "-id",
        },
    ).json()["items"]
    assert [(e["id"], e["piece_number"]) for e in ours] == [(created.json()["id"], "F-2026-001")]
    sale = call(
        "POST",
        "/customer_invoices/import",
        json={
            "file_attachment_id": pdf["id"],
            "customer_id": customer["id"],
            "date": "2026-03-02",
            "deadline": "2026-04-01",
            "invoice_number": "F-2026-002",
            "currency_amount": "60.00",
            "currency_amount_before_tax": "50.00",
            "currency_tax": "10.00",
            "invoice_lines": [
                {
                    "label": "Pain",
                    "currency_amount": "60.00",
                    "currency_tax": "10.00",
                    "vat_rate": "FR_200",
                }
            ],
        },
    )
    purchase = call(
        "POST",
        "/supplier_invoices/import",
        json={
            "file_attachment_id": pdf["id"],
            "supplier_id": supplier["id"],
            "date": "2026-03-03",
            "deadline": "2026-04-02",
            "invoice_number": "A-77",
            "currency_amount": "11.00",
            "currency_amount_before_tax": "10.00",
            "currency_tax": "1.00",
            "invoice_lines": [
                {
                    "label": "Papier",
                    "currency_amount": "11.00",
                    "currency_tax": "1.00",
                    "vat_rate": "FR_100",
                }
            ],
        },
    )
    assert (sale.status_code, purchase.status_code) == (201, 201)
    call("GET", f"/customer_invoices/{sale.json()['id']}")
    call("GET", f"/supplier_invoices/{purchase.json()['id']}")
    booked = acme.ledger_entries[purchase.json()["ledger_entry"]["id"]]
    number = {a["id"]: a["number"] for a in acme.ledger_accounts.values()}
    by_number = {number[line["ledger_account_id"]]: line for line in booked["ledger_entry_lines"]}
    assert by_number["606"]["debit"] == "10.00" and by_number["445661"]["debit"] == "1.00"

    assert fake.violations == []
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    for answer in responses:  # checked again here, outside the fake
        request = answer.request
        assert not contract.response_errors(
            method=request.method,
            url=request.url,
            request_headers=request.headers,
            request_body=request.body,
            status=answer.status_code,
            headers=answer.headers,
            body=answer.content,
        ), request.url


def test_a_response_that_breaks_the_contract_is_recorded_and_answered_500(fake, api, acme):
    session, url = api
    next(iter(acme.journals.values()))["code"] = 7  # a journal code Pennylane sends as a string

    answer = session.get(f"{url}/journals")

    assert answer.status_code == 500
    [violation] = fake.violations
    assert (violation.direction, violation.operation_id) == ("response", "getJournals")
    assert "7 is not of type 'string'" in "; ".join(violation.reasons)


def test_an_unbalanced_entry_is_answered_422_in_pennylanes_error_shape(fake, api):
    session, url = api
    entry = _entry(session, url)
    entry["ledger_entry_lines"][2]["credit"] = "19.99"

    answer = session.post(f"{url}/ledger_entries", json=entry)

    assert answer.status_code == 422
    assert answer.json() == {
        "error": "Ledger entry is not balanced: debit 120.00, credit 119.99",
        "status": 422,
    }
    assert fake.violations == []


def test_refused_entries_switch_answers_422_to_the_entries_it_picks_only(fake, api):
    session, url = api
    fake.refuse_entries(lambda body: body.get("piece_number") == "BAD-1", "Fiscal year is closed")

    refused = session.post(f"{url}/ledger_entries", json=_entry(session, url, piece_number="BAD-1"))
    kept = session.post(f"{url}/ledger_entries", json=_entry(session, url, piece_number="OK-1"))

    assert refused.status_code == 422
    assert refused.json()["error"] == "Fiscal year is closed"
    assert kept.status_code == 201
    assert fake.violations == []


# -- switches ---------------------------------------------------------------------------------


def test_the_26th_request_in_5_seconds_is_answered_429_with_retry_after(fake, api, acme, clock):
    session, url = api
    answers = [session.get(f"{url}/me") for _ in range(25)]
    limited = session.get(f"{url}/me")
    other_token = requests.get(
        f"{url}/me", headers={"Authorization": f"Bearer {fake.tokens.issue(company_id=acme.id)}"}
    )

    assert [a.status_code for a in answers] == [200] * 25
    assert answers[-1].headers["ratelimit-remaining"] == "0"
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "5"
    assert limited.headers["ratelimit-limit"] == "25"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.text == "Rate limit exceeded. Please retry in 5 seconds."
    assert other_token.status_code == 200  # the limit is per token
    clock.now += 3.2
    assert session.get(f"{url}/me").headers["retry-after"] == "2"
    clock.now += 1.8
    assert session.get(f"{url}/me").status_code == 200
    assert fake.violations == []


def test_without_the_rate_limit_switch_nothing_is_limited(contract, clock):
    with PennylaneFake(contract=contract, clock=clock, rate_limit=False) as fake:
        company = fake.add_company("Acme SAS")
        headers = {"Authorization": f"Bearer {fake.tokens.issue(company_id=company.id)}"}
        with requests.Session() as session:
            codes = {
                session.get(f"{fake.api_url}/me", headers=headers).status_code for _ in range(30)
            }
    assert codes == {200}


def test_expired_revoked_and_unknown_tokens_are_answered_401_with_the_reason(fake, acme):
    expired, revoked = (fake.tokens.issue(company_id=acme.id, ttl=3600) for _ in range(2))
    fake.tokens.expire(expired)
    fake.tokens.revoke(revoked)

    answers = [
        requests.get(f"{fake.api_url}/me", headers={"Authorization": f"Bearer {token}"})
        for token in (expired, revoked, "never-issued")
    ]

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert [a.json()["error"] for a in answers] == [
        "The access token expired",
        "The access token was revoked",
        "The access token is invalid",
    ]
    assert 'error="invalid_token"' in answers[0].headers["WWW-Authenticate"]
    assert fake.violations == []


def test_a_firm_token_acts_on_the_company_named_by_x_company_id(fake, acme):
    other = fake.add_company("Atelier Dubois SARL", reg_no="732829320")
    outside = fake.add_company("Hors Cabinet SAS")
    firm = fake.tokens.issue(firm=True, company_ids=[acme.id, other.id])
    bearer = {"Authorization": f"Bearer {firm}"}

    missing = requests.get(f"{fake.api_url}/me", headers=bearer)
    chosen = requests.get(f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": str(other.id)})
    refused = requests.get(
        f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": str(outside.id)}
    )

    assert missing.status_code == 400
    assert "X-Company-Id" in missing.json()["error"]
    assert chosen.json()["company"]["name"] == "Atelier Dubois SARL"
    assert refused.status_code == 403
    assert [v.operation_id for v in fake.violations] == ["getMe"]  # the missing header


def test_a_token_without_the_scope_is_answered_403(fake, acme):
    reader = fake.tokens.issue(company_id=acme.id, scopes=["ledger_entries:readonly"])
    headers = {"Authorization": f"Bearer {reader}"}

    listed = requests.get(f"{fake.api_url}/ledger_entries", headers=headers)
    written = requests.post(
        f"{fake.api_url}/journals", headers=headers, json={"code": "AN", "label": "A nouveaux"}
    )

    assert (listed.status_code, written.status_code) == (200, 403)
    assert "journals:all" in written.json()["error"]
    assert fake.violations == []


def test_a_5xx_burst_answers_the_next_requests_then_recovers(fake, api):
    session, url = api
    fake.fail_next(2, status=503)

    codes = [session.get(f"{url}/journals").status_code for _ in range(3)]

    assert codes == [503, 503, 200]
    assert fake.violations == []


def test_calls_are_counted_per_operation(fake, api):
    session, url = api
    session.post(f"{url}/ledger_entries", json=_entry(session, url))
    fake.reset_counts()

    session.post(f"{url}/ledger_entries", json=_entry(session, url))

    assert fake.calls == {"getLedgerAccounts": 1, "getJournals": 1, "postLedgerEntries": 1}
    assert sum(Decimal(1) for _ in fake.answers) == 3


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
            "scope": "ledger_entries:all",
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


def test_access_tokens_of_the_local_oauth_server_are_accepted_until_expired_or_revoked(fake):
    companies = (("101", "Boulangerie Martin SAS"), ("202", "Atelier Dubois SARL"))
    for company_id, name in companies:
        fake.add_company(name, company_id=int(company_id))
    with OAuthServer(companies=companies) as server:
        fake.trust(oauth_server_verifier(server))
        tokens = _oauth_tokens(server)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        granted = requests.get(f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": "202"})
        server.expire_access_tokens()
        expired = requests.get(f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": "202"})
        refreshed = requests.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()
        bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
        again = requests.get(f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": "101"})
        server.revoke_all()
        revoked = requests.get(f"{fake.api_url}/me", headers={**bearer, "X-Company-Id": "101"})

    assert granted.json()["company"]["name"] == "Atelier Dubois SARL"
    assert expired.status_code == 401
    assert again.json()["company"]["name"] == "Boulangerie Martin SAS"
    assert revoked.status_code == 401
    assert revoked.json()["error"] == "The access token was revoked"
    assert fake.violations == []


def test_a_supplier_is_refused_a_reg_no_pennylane_takes_its_siret_as_establishment_no(fake, api):
    session, url = api

    refused = session.post(f"{url}/suppliers", json={"name": "Dubois", "reg_no": "732829320"})
    created = session.post(
        f"{url}/suppliers", json={"name": "Dubois", "establishment_no": "73282932000074"}
    )

    assert refused.status_code == 400
    assert "'reg_no' was unexpected" in refused.json()["error"]
    assert created.status_code == 201
    assert created.json()["establishment_no"] == "73282932000074"
    assert [v.operation_id for v in fake.violations] == ["postSupplier"]


def test_a_411_ledger_account_created_also_creates_its_company_customer(fake, api, acme):
    session, url = api

    account = session.post(
        f"{url}/ledger_accounts", json={"number": "411DURAND", "label": "Durand"}
    )

    assert account.status_code == 201
    [customer] = [c for c in acme.customers.values() if c["name"] == "Durand"]
    assert customer["ledger_account"] == {"id": account.json()["id"]}
    assert fake.violations == []


def test_a_contract_break_is_recorded_even_when_the_token_is_refused(fake, api, acme):
    session, url = api
    expired = fake.tokens.issue(company_id=acme.id)
    fake.tokens.expire(expired)

    answer = session.post(
        f"{url}/journals", json={"code": "X"}, headers={"Authorization": f"Bearer {expired}"}
    )

    assert answer.status_code == 401
    [violation] = fake.violations
    assert any("'label' is a required property" in reason for reason in violation.reasons)
