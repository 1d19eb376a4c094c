# ruff: noqa: F811 - the oauth_server fixture is imported from tests/oauth_fixtures.py
"""OAuth2 connections (issue #14, point 1) against a real local authorization server
(connectors/devtools/oauth_server.py), through the admin's views and the token store: the code
exchanged with PKCE and a session-bound state, the tokens encrypted at rest (key rotation
included), refreshed before expiry and after a 401 (the refresh token rotating), a revoked grant
failing with its catalogue code and a Reconnect button, Disconnect revoking at the vendor."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.test import Client as BrowserClient
from django.urls import reverse

from connectors import crypto, oauth_backends, roles
from connectors.errors import CATALOGUE, ConnectorError, ErrorCode, InvsyncError
from connectors.http import HttpClient, HttpSession
from connectors.oauth import OAuthTokens
from connectors.selectors import connector_for
from connectors.services import connection_update
from connectors.token_store import DatabaseTokenSource
from mappings.models import SyncFlow
from syncs.models import RunStatus
from syncs.services import flow_sync
from tests.factories import (
    ClientFactory,
    ConnectionFactory,
    InvoiceFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.oauth_fixtures import (  # noqa: F401
    MemoryPennylaneOAuth2,
    callback,
    connect,
    consent,
    oauth_server,
    start,
)
from tests.unit.test_http_toolkit import TABLE

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(memory_connectors):
    return ConnectionFactory(
        name="Pennylane of ACME",
        kind="accounting",
        provider="memory",
        auth_kind="oauth2",
        credentials={},
    )


def messages_of(client) -> list[str]:
    page = client.get(reverse("admin:connectors_connection_changelist"))
    return [str(m) for m in page.context["messages"]]


def raw_tokens(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT oauth_tokens FROM connectors_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def tokens_of(connection) -> OAuthTokens:
    connection.refresh_from_db()
    tokens = OAuthTokens.from_dict(connection.oauth_tokens)
    assert tokens is not None
    return tokens


def api(source, server) -> HttpClient:
    """A client of the server's API carrying the token source's tokens (as a connector's)."""
    return HttpClient(
        server.url,
        "Pennylane",
        TABLE,
        http=HttpSession(timeout=5.0),
        sleep=lambda _: None,
        bearer=source,
    )


# -- the dance -------------------------------------------------------------------------------


def test_connect_sends_to_the_vendor_with_pkce_s256_and_a_state(
    admin_client, connection, oauth_server
):
    url = start(admin_client, connection)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oauth_server.url + "/oauth/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 16 and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [
        "http://testserver/admin/connectors/connection/oauth/callback/"
    ]
    assert query["scope"] == [
        "ledger_entries:all ledger_accounts:readonly journals:readonly customers:all "
        "suppliers:all file_attachments:all"
    ]


def test_the_code_is_exchanged_and_the_tokens_stored_encrypted_then_the_company_picked(
    admin_client,
    connection,
    oauth_server,
):
    answer = connect(admin_client, connection)
    pick = reverse("admin:connectors_connection_oauth_company", args=[connection.pk])
    assert answer["Location"] == pick  # two companies granted: the person picks one
    assert oauth_server.stats.exchanges == 1
    tokens = tokens_of(connection)
    assert tokens.granted == (("101", "Boulangerie Martin SAS"), ("202", "Atelier Dubois SARL"))
    assert tokens.refresh_token and tokens.expires_at > time.time() + 3000
    raw = raw_tokens(connection.pk)
    assert tokens.access_token not in raw and tokens.refresh_token not in raw
    assert crypto.decrypt(raw)["access_token"] == tokens.access_token
    assert connection.credentials == {}  # never in the typed credentials nor social-auth's rows
    page = admin_client.get(pick)
    assert b"Atelier Dubois SARL" in page.content
    done = admin_client.post(pick, {"company": "202"})
    assert done["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    connection.refresh_from_db()
    assert connection.settings["company_id"] == "202"
    assert "Pennylane of ACME is connected." in messages_of(admin_client)


def test_a_company_the_grant_does_not_give_is_refused(admin_client, connection, oauth_server):
    connect(admin_client, connection)
    pick = reverse("admin:connectors_connection_oauth_company", args=[connection.pk])
    admin_client.post(pick, {"company": "999"})
    connection.refresh_from_db()
    assert "company_id" not in connection.settings
    assert any(ErrorCode.OAUTH_AUTHORIZATION_FAILED in m for m in messages_of(admin_client))


def test_a_grant_for_one_company_saves_it_without_asking(admin_client, connection, oauth_server):
    oauth_server.companies = (("101", "Boulangerie Martin SAS"),)
    answer = connect(admin_client, connection)
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    connection.refresh_from_db()
    assert connection.settings["company_id"] == "101"
    page = admin_client.get(answer["Location"])
    assert b"Connected (Boulangerie Martin SAS)." in page.content
    assert b"Reconnect to Pennylane" in page.content and b"oauth-disconnect" in page.content


def test_a_callback_in_another_session_is_refused_with_a_catalogue_code(
    admin_client,
    connection,
    oauth_server,
):

    back = consent(start(admin_client, connection))
    other = BrowserClient()
    other.force_login(UserFactory(username="root2", is_superuser=True))
    answer = callback(other, back)
    assert answer["Location"] == reverse("admin:connectors_connection_changelist")
    shown = messages_of(other)
    assert any(m.startswith(ErrorCode.OAUTH_AUTHORIZATION_FAILED) for m in shown), shown
    assert oauth_server.stats.exchanges == 0 and tokens_missing(connection)


def tokens_missing(connection) -> bool:
    connection.refresh_from_db()
    return OAuthTokens.from_dict(connection.oauth_tokens) is None


def test_a_state_is_used_once(admin_client, connection, oauth_server):
    back = consent(start(admin_client, connection))
    callback(admin_client, back)
    answer = callback(admin_client, back)  # replayed
    assert answer["Location"] == reverse("admin:connectors_connection_changelist")
    assert oauth_server.stats.exchanges == 1


def test_declined_access_comes_back_as_a_message_with_its_code(
    admin_client, connection, oauth_server
):
    oauth_server.auto_approve = False
    page = requests.get(start(admin_client, connection), timeout=10)
    assert "Allow" in page.text
    page_id = page.text.split('name="page" value="', 1)[1].split('"', 1)[0]
    denied = requests.post(
        oauth_server.url + "/oauth/authorize/decide",
        data={"page": page_id, "decision": "deny"},
        allow_redirects=False,
        timeout=10,
    )
    assert "error=access_denied" in denied.headers["Location"]
    answer = callback(admin_client, denied.headers["Location"])
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    shown = messages_of(admin_client)
    assert any(
        "declined" in m and m.startswith(ErrorCode.OAUTH_AUTHORIZATION_FAILED) for m in shown
    )
    assert tokens_missing(connection)


def test_a_code_the_vendor_refuses_comes_back_as_a_message_with_its_code(
    admin_client,
    connection,
    oauth_server,
):
    back = consent(start(admin_client, connection))
    tampered = back.replace("code=", "code=x", 1)
    callback(admin_client, tampered)
    shown = messages_of(admin_client)
    assert any("refused the authorisation code" in m for m in shown), shown
    assert tokens_missing(connection)


def test_the_server_refuses_a_code_without_the_right_pkce_verifier(oauth_server):
    # The local server really checks PKCE (what the dance above relies on).
    url = (
        f"{oauth_server.url}/oauth/authorize?response_type=code&client_id=invsync-dev-client"
        "&redirect_uri=http://x/cb&state=s&code_challenge=abc&code_challenge_method=S256"
    )
    code = parse_qs(urlsplit(consent(url)).query)["code"][0]
    answer = requests.post(
        oauth_server.url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://x/cb",
            "code_verifier": "not-the-verifier",
            "client_id": "invsync-dev-client",
            "client_secret": "invsync-dev-secret-0b9d",
        },
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_only_staff_who_may_change_the_connection_can_connect(client, connection, oauth_server):
    url = reverse("admin:connectors_connection_oauth_connect", args=[connection.pk])
    viewer = UserFactory(roles=[roles.VIEWER], clients=[connection.client])
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    page = client.get(reverse("admin:connectors_connection_change", args=[connection.pk]))
    assert b"Not connected." in page.content and b"oauth-connect" not in page.content
    outsider = UserFactory(roles=[roles.ACCOUNTANT], clients=[ClientFactory()])
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    accountant = UserFactory(roles=[roles.ACCOUNTANT], clients=[connection.client])
    client.force_login(accountant)
    assert client.get(url)["Location"].startswith(oauth_server.url)
    page = client.get(reverse("admin:connectors_connection_change", args=[connection.pk]))
    assert b"Connect to Pennylane" in page.content


def test_without_an_oauth_app_connect_says_which_settings_to_set(
    admin_client, connection, settings
):

    settings.INVSYNC_OAUTH = {}
    with oauth_backends.override([MemoryPennylaneOAuth2]):
        url = reverse("admin:connectors_connection_oauth_connect", args=[connection.pk])
        answer = admin_client.get(url)
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    shown = messages_of(admin_client)
    assert any("INVSYNC_OAUTH_PENNYLANE_CLIENT_ID" in m for m in shown), shown


def test_a_firms_own_app_from_the_connection_is_used(
    admin_client, connection, oauth_server, settings
):
    oauth_server.clients = {"firm-app": "firm-secret-123"}
    connection.credentials = {"client_id": "firm-app", "client_secret": "firm-secret-123"}
    connection.save()
    url = start(admin_client, connection)
    assert parse_qs(urlsplit(url).query)["client_id"] == ["firm-app"]
    callback(admin_client, consent(url))
    assert oauth_server.stats.exchanges == 1 and tokens_of(connection).access_token


# -- encrypted at rest, key rotation ---------------------------------------------------------


def test_rotating_the_key_re_encrypts_the_tokens(admin_client, connection, oauth_server, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    derived = crypto.derived_key().decode()  # what the fixtures' rows were encrypted with
    settings.CREDENTIALS_KEYS = [old, derived]
    connect(admin_client, connection)
    tokens = tokens_of(connection)
    before = raw_tokens(connection.pk)
    settings.CREDENTIALS_KEYS = [new, old, derived]
    call_command("rotate_credentials_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.CREDENTIALS_KEYS = [new]  # the old key is gone
    after = raw_tokens(connection.pk)
    assert after != before and tokens.access_token not in after
    assert tokens_of(connection) == tokens


# -- tokens used and refreshed ---------------------------------------------------------------


def test_connector_for_hands_in_the_connections_token_source(
    admin_client, connection, oauth_server
):
    connect(admin_client, connection)
    config = connector_for(connection).config
    assert isinstance(config.tokens, DatabaseTokenSource)
    assert config.tokens.access_token() == tokens_of(connection).access_token


def test_a_token_about_to_expire_is_refreshed_before_the_call_and_the_refresh_token_rotates(
    admin_client,
    connection,
    oauth_server,
):
    oauth_server.access_ttl = 30  # within the refresh margin from the start
    connect(admin_client, connection)
    first = tokens_of(connection)
    source = DatabaseTokenSource(connection.pk)
    assert api(source, oauth_server).get_json("api/ping") == {"ok": True}
    second = tokens_of(connection)
    assert oauth_server.stats.refreshes == 1
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated, saved with the access token
    assert second.granted == first.granted


def test_a_401_refreshes_once_and_the_call_goes_through(admin_client, connection, oauth_server):
    connect(admin_client, connection)
    first = tokens_of(connection)
    source = DatabaseTokenSource(connection.pk)
    assert api(source, oauth_server).get_json("api/ping") == {"ok": True}
    oauth_server.expire_access_tokens()  # the vendor drops the token before its stated expiry
    assert api(source, oauth_server).get_json("api/ping") == {"ok": True}
    assert oauth_server.stats.refreshes == 1
    assert tokens_of(connection).access_token != first.access_token


def test_a_revoked_grant_fails_with_grant_revoked_whose_resolution_is_reconnect(
    admin_client,
    connection,
    oauth_server,
):
    connect(admin_client, connection)
    oauth_server.revoke_all()
    source = DatabaseTokenSource(connection.pk, label=connection.name)
    with pytest.raises(InvsyncError) as caught:
        api(source, oauth_server).get_json("api/ping")
    error = caught.value
    assert error.code == ErrorCode.OAUTH_GRANT_REVOKED
    assert "Reconnect" in CATALOGUE[error.code].resolution
    stored = tokens_of(connection)
    assert stored.access_token not in str(error) and stored.refresh_token not in str(error)
    assert oauth_server.stats.refused_refreshes == 1


def test_a_used_refresh_token_is_dead_at_the_server(admin_client, connection, oauth_server):
    connect(admin_client, connection)
    refresh = tokens_of(connection).refresh_token
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": "invsync-dev-client",
        "client_secret": "invsync-dev-secret-0b9d",
    }
    assert requests.post(oauth_server.url + "/oauth/token", data=form, timeout=10).ok
    again = requests.post(oauth_server.url + "/oauth/token", data=form, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_connection_never_connected_fails_with_authentication_failed(connection):
    with pytest.raises(InvsyncError) as caught:
        DatabaseTokenSource(connection.pk).access_token()
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED


# -- disconnect ------------------------------------------------------------------------------


def test_disconnect_revokes_at_the_vendor_and_clears_the_tokens(
    admin_client, connection, oauth_server
):
    connect(admin_client, connection)
    tokens = tokens_of(connection)
    url = reverse("admin:connectors_connection_oauth_disconnect", args=[connection.pk])
    assert admin_client.get(url).status_code == 405  # a button posts it, a link cannot
    answer = admin_client.post(url)
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    assert oauth_server.stats.revocations == 1
    assert oauth_server.grant_revoked(tokens.refresh_token)
    assert not oauth_server.is_live(tokens.access_token)
    assert tokens_missing(connection)
    assert any("revoked at the tool" in m for m in messages_of(admin_client))


# -- Reconnect from the failure review -------------------------------------------------------


def test_the_failure_review_offers_reconnect_for_a_revoked_grant(admin_client, memory_connectors):
    flow = SyncFlowFactory(
        accounting_connection__auth_kind="oauth2", accounting_connection__credentials={}
    )
    SyncedRecordFactory(
        flow=flow, error_code=ErrorCode.OAUTH_GRANT_REVOKED, error_message="revoked"
    )
    page = admin_client.get(reverse("admin:syncs_failures")).content.decode()
    reconnect = reverse(
        "admin:connectors_connection_oauth_connect", args=[flow.accounting_connection_id]
    )
    assert f'href="{reconnect}"' in page
    assert f"Reconnect {flow.accounting_connection.name}" in page


def test_saving_the_connection_form_keeps_tokens_refreshed_since_it_was_loaded(
    admin_client, connection, oauth_server
):

    oauth_server.companies = (("101", "Boulangerie Martin SAS"),)
    connect(admin_client, connection)
    loaded = type(connection).objects.get(pk=connection.pk)  # as the admin's form loads it
    oauth_server.expire_access_tokens()
    DatabaseTokenSource(connection.pk).refresh(tokens_of(connection).access_token)
    refreshed = tokens_of(connection)
    connection_update(connection=loaded, data={"name": "Pennylane (renamed)"})
    assert tokens_of(connection) == refreshed  # not the stale copy: the grant stays alive


def test_a_run_stopped_by_a_revoked_grant_shows_a_reconnect_button(admin_client, memory_connectors):
    flow = SyncFlowFactory(
        accounting_connection__auth_kind="oauth2", accounting_connection__credentials={}
    )
    run = SyncRunFactory(
        flow=flow,
        status="failed",
        error_code=ErrorCode.OAUTH_GRANT_REVOKED,
        error_message="revoked",
    )
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[run.pk])).content.decode()
    reconnect = reverse(
        "admin:connectors_connection_oauth_connect", args=[flow.accounting_connection_id]
    )
    assert f'class="button oauth-reconnect" href="{reconnect}"' in page
    assert f"Reconnect {flow.accounting_connection.name}" in page
    # The invoicing connection signs in with an API key: no button for it.
    assert page.count("oauth-reconnect") == 1


def test_changing_where_the_credentials_go_drops_the_oauth_grant(
    admin_client, connection, oauth_server
):

    connect(admin_client, connection)
    assert not tokens_missing(connection)
    connection_update(
        connection=connection, data={"auth_kind": "api_key"}, credentials={"api_key": "k-123"}
    )
    assert tokens_missing(connection)  # never sent to an address it was not given for


def test_an_expired_grant_fails_with_grant_revoked(admin_client, connection, oauth_server):
    connect(admin_client, connection)
    oauth_server.expire_access_tokens()
    oauth_server.expire_grants()  # the refresh token outlived its lifetime too
    with pytest.raises(InvsyncError) as caught:
        api(DatabaseTokenSource(connection.pk), oauth_server).get_json("api/ping")
    assert caught.value.code == ErrorCode.OAUTH_GRANT_REVOKED
    assert oauth_server.stats.refused_refreshes == 1


def test_a_revoked_grant_stops_the_run_with_its_code_and_blames_no_record(
    admin_client, memory_connectors
):

    source, target = memory_connectors
    flow = SyncFlowFactory(
        accounting_connection__kind="accounting",
        accounting_connection__auth_kind="oauth2",
        accounting_connection__credentials={},
    )
    source.put(InvoiceFactory())
    target.fail_next_write = ConnectorError(ErrorCode.OAUTH_GRANT_REVOKED, "revoked")
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result.status == RunStatus.FAILED
    assert result.error_code == ErrorCode.OAUTH_GRANT_REVOKED and result.failed_count == 0
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[result.pk]))
    assert b"oauth-reconnect" in page.content


def test_the_oauth2_form_asks_for_no_token_only_the_optional_own_app(
    admin_client, connection, oauth_server
):
    page = admin_client.get(
        reverse("admin:connectors_connection_change", args=[connection.pk])
    ).content.decode()
    assert 'name="credential_client_id"' in page and 'name="credential_client_secret"' in page
    assert "credential_access_token" not in page and "credential_refresh_token" not in page
    assert "Connect to Pennylane" in page


# -- Connect started from the guided set-up comes back to it (issue #15, point 2) ---------------

SETUP = "/admin/setup/"


def _setup_at_accounting(client, atelier, invoicing) -> None:
    assert client.post(f"{SETUP}client/", {"client": atelier.pk}).url == f"{SETUP}invoicing/"
    answer = client.post(f"{SETUP}invoicing/", {"connection": invoicing.pk})
    assert answer.url == f"{SETUP}accounting/"


@pytest.fixture
def atelier(memory_connectors):
    atelier = ClientFactory(name="Atelier")
    invoicing = ConnectionFactory(client=atelier, kind="invoicing", name="Invoices")
    return atelier, invoicing


def test_a_connection_added_from_the_set_up_connects_then_lands_on_the_next_step(
    admin_client, atelier, oauth_server
):
    oauth_server.companies = (("101", "Boulangerie Martin SAS"),)
    atelier, invoicing = atelier
    _setup_at_accounting(admin_client, atelier, invoicing)
    admin_client.get(f"{SETUP}accounting/add-connection/")
    added = admin_client.post(
        f"/admin/connectors/connection/add/?client={atelier.pk}&kind=accounting",
        {"client": atelier.pk, "name": "Books", "kind": "accounting", "provider": "memory",
         "auth_kind": "oauth2", "settings": "{}"},
    )  # fmt: skip
    books = atelier.connections.get(name="Books")
    # Not connected yet: the person stays on the connection, where Connect is.
    assert added.url == reverse("admin:connectors_connection_change", args=[books.pk])
    answer = connect(admin_client, books)
    assert answer["Location"] == f"{SETUP}accounting/?connection={books.pk}"
    assert admin_client.get(answer["Location"]).url == f"{SETUP}folder/"
    assert admin_client.session["invsync_setup"]["accounting"] == books.pk
    assert tokens_of(books).granted == (("101", "Boulangerie Martin SAS"),)


def test_connect_from_the_set_up_step_returns_there_after_the_company_is_picked(
    admin_client, atelier, oauth_server
):
    atelier, invoicing = atelier
    books = ConnectionFactory(
        client=atelier, kind="accounting", name="Books", provider="memory",
        auth_kind="oauth2", credentials={},
    )  # fmt: skip
    _setup_at_accounting(admin_client, atelier, invoicing)
    html = admin_client.get(f"{SETUP}accounting/").content.decode()
    link = re.search(r'href="([^"]*/oauth/connect/\?next=[^"]*)"', html).group(1)
    answer = callback(
        admin_client, consent(admin_client.get(link.replace("&amp;", "&"))["Location"])
    )
    pick = reverse("admin:connectors_connection_oauth_company", args=[books.pk])
    assert answer["Location"] == pick  # two companies: picked first, then back to the guide
    done = admin_client.post(pick, {"company": "202"})
    assert done["Location"] == f"{SETUP}accounting/?connection={books.pk}"
    assert admin_client.get(done["Location"]).url == f"{SETUP}folder/"
    # Once connected, the step offers no Connect for it any more.
    assert "/oauth/connect/" not in admin_client.get(f"{SETUP}accounting/").content.decode()


@pytest.mark.parametrize(
    "elsewhere", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_a_return_address_that_is_not_a_local_path_is_ignored(
    admin_client, connection, oauth_server, elsewhere
):
    oauth_server.companies = (("101", "Boulangerie Martin SAS"),)
    url = reverse("admin:connectors_connection_oauth_connect", args=[connection.pk])
    started = admin_client.get(url, {"next": elsewhere})
    answer = callback(admin_client, consent(started["Location"]))
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])


def test_the_set_up_takes_a_connection_as_chosen_only_after_its_connect(
    admin_client, atelier, oauth_server
):
    atelier, invoicing = atelier
    books = ConnectionFactory(client=atelier, kind="accounting", name="Books")
    other = ConnectionFactory(client=atelier, kind="accounting", name="Other books")
    _setup_at_accounting(admin_client, atelier, invoicing)
    # A link naming a connection (as the add form's return does) only pre-selects it.
    page = admin_client.get(f"{SETUP}accounting/", {"connection": books.pk})
    assert page.status_code == 200 and "accounting" not in admin_client.session["invsync_setup"]
    assert other.pk  # two connections: nothing is chosen for the person
