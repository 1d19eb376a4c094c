"""A process of the OAuth2 refresh race (tests/integration/test_oauth_refresh_race.py).

    python -m tests.oauth_refresh_worker setup SERVER_URL         # prints the connection's id
    python -m tests.oauth_refresh_worker refresh ID STALE --start T [--naive | --rolled-back]
    python -m tests.oauth_refresh_worker show ID                  # prints the stored access token

``setup`` creates a connection (in-memory target, OAuth2) and connects it at the local
authorization server (the dance done at the server directly, PKCE included). ``refresh`` waits
until ``T`` (Unix time), then has the connection's token source (connectors.token_store) refresh
the access token ``STALE`` the vendor refused, calls the server's API with the token it got, and
prints JSON: the token, the API's answer status, or the error's code. ``--naive`` refreshes with
the backend alone, without the token store (no row lock): what two workers would do without it.
``--rolled-back``: the refresh is asked inside a transaction of the caller's that then rolls back
(an admin form's that fails).

Runs against ``DATABASE_URL``; the OAuth app and the server's address come from the environment
(``INVSYNC_OAUTH_PENNYLANE_CLIENT_ID``, ``_CLIENT_SECRET``, ``_BASE_URL``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import time
from urllib.parse import parse_qs, urlencode, urlsplit


def grant_at(server_url: str, client_id: str, client_secret: str) -> dict:
    """A token answer from the server, by the authorization-code dance done directly."""
    import requests

    verifier = secrets.token_urlsafe(40)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1/cb",
        "state": "s",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    back = requests.get(
        f"{server_url}/oauth/authorize?{urlencode(query)}", allow_redirects=False, timeout=10
    ).headers["Location"]
    code = parse_qs(urlsplit(back).query)["code"][0]
    answer = requests.post(
        f"{server_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1/cb",
            "code_verifier": verifier,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["setup", "refresh", "show"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--naive", action="store_true")
    parser.add_argument("--rolled-back", action="store_true")
    options = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invsync.settings")
    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.db import transaction

    from connectors import oauth_backends
    from connectors.errors import InvsyncError
    from connectors.models import Client, Connection
    from connectors.oauth import OAuthTokens
    from connectors.token_store import DatabaseTokenSource, backend_of
    from tests.oauth_fixtures import MemoryPennylaneOAuth2

    app = settings.INVSYNC_OAUTH["pennylane"]
    with oauth_backends.override([MemoryPennylaneOAuth2]):
        if options.mode == "setup":
            tokens = OAuthTokens.from_token_response(
                grant_at(app["base_url"], app["client_id"], app["client_secret"])
            )
            connection = Connection.objects.create(
                client=Client.objects.create(name=f"Race {secrets.token_hex(4)}"),
                name="Pennylane",
                kind="accounting",
                provider="memory",
                auth_kind="oauth2",
                oauth_tokens=tokens.as_dict(),
            )
            print(json.dumps({"id": connection.pk, "access_token": tokens.access_token}))
            return
        if options.mode == "show":
            stored = Connection.objects.get(pk=int(options.args[0])).oauth_tokens
            print(json.dumps({"access_token": stored.get("access_token")}))
            return
        connection_id, stale = int(options.args[0]), options.args[1]
        time.sleep(max(0.0, options.start - time.time()))
        try:
            if options.naive:
                connection = Connection.objects.get(pk=connection_id)
                stored = OAuthTokens.from_dict(connection.oauth_tokens)
                answer = backend_of(connection).refresh_token(stored.refresh_token)
                token = answer["access_token"]
            elif options.rolled_back:

                class RolledBack(Exception):
                    pass

                try:
                    with transaction.atomic():
                        token = DatabaseTokenSource(connection_id).refresh(stale)
                        raise RolledBack
                except RolledBack:
                    pass
            else:
                token = DatabaseTokenSource(connection_id).refresh(stale)
        except (InvsyncError, ValueError) as error:  # social-core's errors are ValueErrors
            print(json.dumps({"error": str(getattr(error, "code", type(error).__name__))}))
            return
        status = requests.get(
            f"{app['base_url']}/api/ping", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code
        print(json.dumps({"token": token, "status": status}))


if __name__ == "__main__":
    main(sys.argv[1:])
