"""Stripe Connect OAuth (issue #17 point 1) against the local authorization server in Stripe's
mode (connectors/devtools/oauth_server.py) and the fake Stripe: no PKCE but a checked state, the
code exchanged with the platform's secret key, the connected account (``stripe_user_id``) kept as
the connection's company and acted on with ``Stripe-Account``, Disconnect deauthorizing it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection as db
from django.urls import reverse

from connectors import crypto, oauth_backends
from connectors.devtools.oauth_server import OAuthServer
from connectors.devtools.stripe_fake import StripeFake
from connectors.oauth import OAuthTokens
from connectors.oauth_backends import StripeConnectOAuth2
from tests.factories import ConnectionFactory
from tests.oauth_fixtures import callback, connect, consent, start

pytestmark = pytest.mark.django_db

CLIENT_ID = "ca_invsync_test_0001"
PLATFORM_KEY = "sk_test_platform_7c1e5b"  # Stripe Connect: the client secret is this key


class MemoryStripeConnect(StripeConnectOAuth2):
    """Stripe Connect's backend, for the in-memory connectors' connections (provider memory)."""

    connector_keys = ("memory",)


@pytest.fixture
def stripe_world(settings):
    """The authorization server (Stripe mode), the fake Stripe with the platform and the account
    to connect, and the settings pointing Stripe's backend at the server."""
    with (
        OAuthServer(clients={CLIENT_ID: PLATFORM_KEY}, stripe_connect=True) as server,
        StripeFake(rate_limit=False) as fake,
        oauth_backends.override([MemoryStripeConnect]),
    ):
        platform = fake.add_account("invsync platform", country="FR")
        fake.keys.register(PLATFORM_KEY, platform)
        account = fake.add_account("Boulangerie Martin SAS", account_id=server.connect_account)
        server.on_deauthorize = lambda acct_id: fake.disconnect(platform, fake.accounts[acct_id])
        settings.INVSYNC_OAUTH = {
            "stripe": {
                "client_id": CLIENT_ID,
                "client_secret": PLATFORM_KEY,
                "base_url": server.url,
                "scopes": "",
            }
        }
        yield server, fake, platform, account


@pytest.fixture
def connection(memory_connectors):
    return ConnectionFactory(
        name="Stripe of ACME",
        kind="invoicing",
        provider="memory",
        auth_kind="oauth2",
        credentials={},
    )


def as_platform(fake: StripeFake, account_id: str) -> tuple[int, dict]:
    """``GET /v1/account`` with the platform's key acting on ``account_id`` (Stripe-Account)."""
    request = urllib.request.Request(
        fake.api_url + "/v1/account",
        headers={"Authorization": f"Bearer {PLATFORM_KEY}", "Stripe-Account": account_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_connect_sends_to_stripe_without_pkce_with_a_state_and_read_write(
    admin_client, connection, stripe_world
):
    server, *_ = stripe_world
    url = start(admin_client, connection)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(server.url + "/oauth/authorize?")
    assert "code_challenge" not in query and "code_challenge_method" not in query
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["scope"] == ["read_write"] and len(query["state"][0]) >= 16


def test_the_connected_account_becomes_the_company_and_is_acted_on_with_stripe_account(
    admin_client, connection, stripe_world
):
    server, fake, platform, account = stripe_world
    answer = connect(admin_client, connection)
    assert answer["Location"] == reverse("admin:connectors_connection_change", args=[connection.pk])
    # Stripe's exchange: the code alone in the form, the platform's key in the Bearer header.
    assert server.stats.token_requests[-1].keys() == {"grant_type", "code"}
    connection.refresh_from_db()
    assert connection.settings["company_id"] == account.id
    tokens = OAuthTokens.from_dict(connection.oauth_tokens)
    assert tokens.granted == ((account.id, account.id),)
    with db.cursor() as cursor:  # encrypted at rest: the column never holds the key itself
        cursor.execute(
            "SELECT oauth_tokens FROM connectors_connection WHERE id = %s", [connection.pk]
        )
        raw = cursor.fetchone()[0]
    assert tokens.access_token not in raw
    assert crypto.decrypt(raw)["access_token"] == tokens.access_token
    fake.connect(platform, account)  # what Stripe does when the account owner approves
    status, body = as_platform(fake, connection.settings["company_id"])
    assert status == 200 and body["id"] == account.id
    assert fake.violations == []


def test_a_replayed_callback_is_refused_state_used_once(admin_client, connection, stripe_world):
    server, *_ = stripe_world
    back = consent(start(admin_client, connection))
    callback(admin_client, back)
    answer = callback(admin_client, back)
    assert answer["Location"] == reverse("admin:connectors_connection_changelist")
    assert server.stats.exchanges == 1


def test_disconnect_deauthorizes_the_connected_account_at_stripe(
    admin_client, connection, stripe_world
):
    server, fake, platform, account = stripe_world
    connect(admin_client, connection)
    fake.connect(platform, account)
    url = reverse("admin:connectors_connection_oauth_disconnect", args=[connection.pk])
    admin_client.post(url)
    assert server.stats.deauthorizations == 1
    connection.refresh_from_db()
    assert connection.oauth_tokens == {}
    status, body = as_platform(fake, account.id)
    assert status == 403 and body["error"]["code"] == "account_invalid"
