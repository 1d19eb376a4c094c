"""OAuth2 connections against a real local authorization server
(connectors/devtools/oauth_server.py): the server, a connection to the in-memory target signing in
through Pennylane's backend (pointed at the server by the settings), and the dance driven the way a
browser would, through the admin's views (tests/integration/test_oauth_connections.py,
tests/browser/test_oauth_browser.py, the refresh-race worker)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from connectors import oauth_backends
from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from connectors.oauth_backends import PennylaneOAuth2


class MemoryPennylaneOAuth2(PennylaneOAuth2):
    """Pennylane's backend, for the in-memory target's connections (provider ``memory``)."""

    connector_keys = ("memory",)


def oauth_settings(base_url: str) -> dict[str, dict[str, str]]:
    return {
        "pennylane": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": base_url,
            "scopes": "",
        }
    }


@pytest.fixture
def oauth_server(settings) -> Iterator[OAuthServer]:
    """The local authorization server, the settings pointing Pennylane's backend at it, and that
    backend serving the in-memory connectors."""
    with OAuthServer() as server, oauth_backends.override([MemoryPennylaneOAuth2]):
        settings.INVSYNC_OAUTH = oauth_settings(server.url)
        yield server


def start(client, connection) -> str:
    """Press Connect: the address of the vendor's authorize page the admin sends to."""
    answer = client.get(reverse("admin:connectors_connection_oauth_connect", args=[connection.pk]))
    assert answer.status_code == 302, answer
    return answer["Location"]


def consent(authorize_url: str) -> str:
    """The vendor's side (auto-approved): the callback address it sends the browser back to."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback(client, callback_url: str):
    parts = urlsplit(callback_url)
    return client.get(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})


def connect(client, connection):
    """The whole dance; returns the callback's answer (a redirect)."""
    return callback(client, consent(start(client, connection)))
