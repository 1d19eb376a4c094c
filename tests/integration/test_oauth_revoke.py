"""Revoking an OAuth2 grant sends no secret in a URL: every backend of
``connectors/oauth_backends.py`` posts its revocation parameters in the form body only
(social-core's own ``revoke_token`` also copies them into the query string, which would write
the client secret into access logs), and authenticates the client as the vendor documents
(Xero: HTTP Basic; Pennylane: in the body; Stripe Connect: the platform's secret key as Bearer).
Against the local authorization server (``connectors/devtools/oauth_server.py``), which records
each revocation's target as an access log writes it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from social_django.utils import load_strategy

from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from connectors.oauth_backends import (
    BACKENDS,
    PennylaneOAuth2,
    StripeConnectOAuth2,
    XeroOAuth2,
)

# How each vendor documents the client's authentication on its revocation endpoint.
AUTHENTICATION = {PennylaneOAuth2: "body", XeroOAuth2: "basic", StripeConnectOAuth2: "bearer"}


@pytest.mark.parametrize("backend_class", BACKENDS, ids=lambda cls: cls.vendor)
def test_revoking_a_grant_puts_no_secret_in_the_url(settings, backend_class):
    with OAuthServer(stripe_connect=backend_class is StripeConnectOAuth2) as server:
        settings.INVSYNC_OAUTH = {
            backend_class.vendor: {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "base_url": server.url,
            }
        }
        tokens = server.issue()
        backend = backend_class(load_strategy())
        assert backend.revoke_token(tokens["refresh_token"], server.connect_account) is True
        assert not server.is_live(tokens["access_token"])  # the vendor did revoke the grant

        ((target, how),) = server.stats.revoke_requests
    assert urlsplit(target).query == ""
    for secret in (CLIENT_SECRET, tokens["refresh_token"], tokens["access_token"]):
        assert secret not in target
    assert how == AUTHENTICATION[backend_class]


def test_every_backend_is_covered():
    assert set(BACKENDS) == set(AUTHENTICATION)
