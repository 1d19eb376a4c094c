"""An accountant connects an OAuth2 connection in Chromium: signs in with email, password and a
TOTP code (two-factor required for staff), presses "Connect to Pennylane" on the connection, gives
consent on the vendor's page (the local authorization server, connectors/devtools/oauth_server.py,
showing its consent page), picks one of the two companies the grant gives, and lands back on the
connection, connected to that company."""

from __future__ import annotations

import time

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from playwright.sync_api import expect

from connectors import oauth_backends, registry
from connectors.devtools.oauth_server import OAuthServer
from connectors.models import Connection
from connectors.oauth import OAuthTokens
from tests.browser.pages import follow
from tests.doubles import MemorySource, MemoryTarget
from tests.factories import ClientFactory, UserFactory
from tests.factories.models import PASSWORD
from tests.oauth_fixtures import MemoryPennylaneOAuth2, oauth_settings

pytestmark = pytest.mark.browser


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def test_an_accountant_connects_in_the_browser_consents_picks_a_company_and_lands_connected(
    server, page, settings, artifacts
):
    settings.INVSYNC_REQUIRE_2FA_FOR_STAFF = True
    MemoryTarget.reset()
    with (
        OAuthServer(auto_approve=False) as vendor,
        oauth_backends.override([MemoryPennylaneOAuth2]),
        registry.override([MemorySource, MemoryTarget]),
    ):
        settings.INVSYNC_OAUTH = oauth_settings(vendor.url)
        client = ClientFactory(name="ACME")
        connection = Connection.objects.create(
            client=client,
            name="Pennylane ACME",
            kind="accounting",
            provider="memory",
            auth_kind="oauth2",
        )
        user = UserFactory(
            username="claire", email="claire@firm.example", roles=["Accountant"], clients=[client]
        )
        secret = generate_totp_secret()
        TOTP.activate(user, secret)

        # Email and password, then the authenticator's code.
        page.goto(f"{server}/accounts/login/")
        page.locator('input[name="login"]').fill("claire@firm.example")
        page.locator('input[name="password"]').fill(PASSWORD)
        follow(page, page.locator('form button[type="submit"]'))
        page.locator('input[name="code"]').fill(totp_code(secret))
        follow(page, page.get_by_role("button", name="Sign In"))
        expect(page.locator("#site-name")).to_contain_text("invsync")

        page.goto(f"{server}/admin/connectors/connection/{connection.pk}/change/")
        expect(page.locator(".field-oauth_connection")).to_contain_text("Not connected.")
        follow(page, page.locator("#oauth-connect", has_text="Connect to Pennylane"))

        # The vendor's consent page, on the vendor's own address.
        assert page.url.startswith(vendor.url + "/oauth/authorize?")
        expect(page.locator("h1")).to_contain_text("Authorize invsync")
        artifacts(page, "oauth-consent")
        follow(page, page.get_by_role("button", name="Allow"))

        # Two companies granted: the person picks one.
        assert page.url.endswith(f"/admin/connectors/connection/{connection.pk}/oauth/company/")
        page.get_by_label("Atelier Dubois SARL").check()
        artifacts(page, "oauth-company-pick")
        follow(page, page.get_by_role("button", name="Use this company"))

        assert page.url.endswith(f"/admin/connectors/connection/{connection.pk}/change/")
        expect(page.locator(".messagelist")).to_contain_text("Pennylane ACME is connected.")
        expect(page.locator(".field-oauth_connection")).to_contain_text(
            "Connected (Atelier Dubois SARL)."
        )
        expect(page.locator("#oauth-connect")).to_contain_text("Reconnect to Pennylane")
        artifacts(page, "oauth-connected")

        connection.refresh_from_db()
        assert connection.settings["company_id"] == "202"
        tokens = OAuthTokens.from_dict(connection.oauth_tokens)
        assert tokens is not None and vendor.is_live(tokens.access_token)
        assert vendor.stats.exchanges == 1
