"""A stored secret is never sent to an address it was not entered for (issue #11, point 1).

Changing what decides where a connection's credentials go (the Tryton server URL or database, the
provider, the kind, the auth kind) requires the secrets to be typed again: the admin form shows it
on each secret field, the service refuses it, and "Test connection" can therefore never send a
stored password to a new host. Two tiny HTTP servers on loopback record what they receive: the one
the password was entered for, and the one the URL is changed to.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from connectors.models import Connection
from connectors.services import connection_check, connection_update
from mappings.models import ConfigChange
from tests.factories import ConnectionFactory, SyncFlowFactory
from tests.integration.test_admin import _form_data

pytestmark = pytest.mark.django_db

STORED_PASSWORD = "st0red-Passw0rd-9c2e"
NEW_PASSWORD = "n3w-Passw0rd-41aa"


class Listener:
    """An HTTP server on 127.0.0.1 that records every request body it receives and answers a
    JSON-RPC refusal (so a login fails quickly, without retries)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append(self.rfile.read(length).decode("utf-8", "replace"))
                body = json.dumps({"id": 0, "error": ["403", "refused"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def everything(self) -> str:
        return "\n".join(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners():
    old, new = Listener(), Listener()
    yield old, new
    old.close()
    new.close()


def tryton_connection(url: str, **kwargs) -> Connection:
    return ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings={"url": url, "database": "acme", "retry_attempts": "1"},
        credentials={"username": "accountant", "password": STORED_PASSWORD}, **kwargs,
    )  # fmt: skip


def change_url(connection) -> str:
    return reverse("admin:connectors_connection_change", args=[connection.pk])


def press_test_connection(admin_client, connection) -> None:
    response = admin_client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [connection.pk]},
    )
    assert response.status_code == 302


def test_changing_only_the_url_never_sends_the_stored_password_to_the_new_host(
    admin_client, listeners
):
    old, new = listeners
    connection = tryton_connection(old.url)
    # The listener works: the stored password goes to the address it was entered for.
    press_test_connection(admin_client, connection)
    assert STORED_PASSWORD in old.everything()

    # Only the URL changes; the password field is left blank (it would keep the stored one).
    data = _form_data(admin_client.get(change_url(connection)))
    settings = json.loads(data["settings"])
    data["settings"] = json.dumps({**settings, "url": new.url})
    response = admin_client.post(change_url(connection), data)

    assert response.status_code == 200  # the form again, not a save
    errors = response.context["adminform"].form.errors
    for field in ("credential_password", "credential_username"):
        assert "enter" in " ".join(errors[field]).lower() and "url" in " ".join(errors[field])
    assert STORED_PASSWORD not in response.content.decode()
    connection.refresh_from_db()
    assert connection.settings["url"] == old.url

    press_test_connection(admin_client, connection)
    assert new.received == []  # the new host never heard from us, let alone the password

    # Typed again, the secrets go to the new host: the new password, never the stored one.
    data.update(credential_username="accountant", credential_password=NEW_PASSWORD)
    assert admin_client.post(change_url(connection), data).status_code == 302
    connection.refresh_from_db()
    assert connection.settings["url"] == new.url
    press_test_connection(admin_client, connection)
    assert NEW_PASSWORD in new.everything()
    assert STORED_PASSWORD not in new.everything()


def test_changing_the_database_requires_the_secrets_again_in_the_form(admin_client, listeners):
    old, _ = listeners
    connection = tryton_connection(old.url)
    data = _form_data(admin_client.get(change_url(connection)))
    data["settings"] = json.dumps({**json.loads(data["settings"]), "database": "other"})
    response = admin_client.post(change_url(connection), data)
    assert response.status_code == 200
    message = " ".join(response.context["adminform"].form.errors["credential_password"])
    assert "database" in message and "Password" in message
    connection.refresh_from_db()
    assert connection.settings["database"] == "acme"


def test_a_setting_that_does_not_address_the_credentials_keeps_them(admin_client, listeners):
    old, _ = listeners
    connection = tryton_connection(old.url)
    data = _form_data(admin_client.get(change_url(connection)))
    data["settings"] = json.dumps({**json.loads(data["settings"]), "timeout": "12"})
    assert admin_client.post(change_url(connection), data).status_code == 302
    connection.refresh_from_db()
    assert connection.settings["timeout"] == "12"
    assert connection.credentials["password"] == STORED_PASSWORD


def test_the_service_refuses_a_new_url_with_the_stored_secrets_and_sends_nothing(listeners):
    old, new = listeners
    connection = tryton_connection(old.url)
    with pytest.raises(ValidationError) as refused:
        connection_update(
            connection=connection,
            data={"settings": {**connection.settings, "url": new.url}},
            credentials={"password": ""},  # blank: "keep the stored one"
        )
    message = " ".join(refused.value.message_dict["credentials"])
    assert "url" in message and "password" in message and "username" in message
    assert STORED_PASSWORD not in message

    stored = Connection.objects.get(pk=connection.pk)
    assert stored.settings["url"] == old.url
    connection_check(connection=stored)
    assert new.received == []
    assert STORED_PASSWORD in old.everything()


def test_the_service_refuses_a_half_re_entered_secret_for_a_new_address(listeners):
    old, new = listeners
    connection = tryton_connection(old.url)
    with pytest.raises(ValidationError, match="password"):
        connection_update(
            connection=connection,
            data={"settings": {**connection.settings, "url": new.url}},
            credentials={"username": "accountant"},
        )
    assert Connection.objects.get(pk=connection.pk).settings["url"] == old.url


@pytest.mark.parametrize(
    "change",
    [
        {"provider": "elsewhere"},  # a provider not installed here: every setting addresses
        {"auth_kind": "credentials"},
        {"settings": {"region": "eu"}},  # a setting the provider does not declare
    ],
)
def test_the_service_refuses_other_address_changes_with_stored_secrets(memory_connectors, change):
    connection = ConnectionFactory(
        auth_kind="api_key", settings={"region": "us"}, credentials={"api_key": STORED_PASSWORD}
    )
    if change.get("auth_kind") == "credentials":
        # The stored secrets of the new auth kind would be kept: the login and password.
        connection.credentials = {"api_key": "k", "username": "u", "password": STORED_PASSWORD}
        connection.save()
    with pytest.raises(ValidationError, match="again"):
        connection_update(connection=connection, data=change)
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.provider, stored.auth_kind, stored.settings) == (
        "memory", "api_key", {"region": "us"},
    )  # fmt: skip


def test_a_re_entered_secret_for_a_new_address_is_recorded_in_the_audit(listeners):
    old, new = listeners
    connection = tryton_connection(old.url)
    flow = SyncFlowFactory(
        client=connection.client,
        accounting_connection=connection,
        invoicing_connection__client=connection.client,
    )
    connection_update(
        connection=connection,
        data={"settings": {**connection.settings, "url": new.url}},
        credentials={"username": "accountant", "password": NEW_PASSWORD},
    )
    change = ConfigChange.objects.filter(flow=flow).order_by("-at", "-id").first()
    assert change.changes["accounting connection url"] == {"from": old.url, "to": new.url}
    assert change.changes["accounting connection credentials"]["to"] == (
        "re-entered because the address changed"
    )
    text = json.dumps([c.changes for c in ConfigChange.objects.all()])
    assert NEW_PASSWORD not in text and STORED_PASSWORD not in text


# -- Error pages --------------------------------------------------------------------------------

TYPED_PASSWORD = "typ3d-Passw0rd-'quoted\"-é"


@pytest.mark.parametrize("debug", [True, False])
def test_an_error_page_never_shows_a_typed_password(
    admin_client, listeners, settings, mailoutbox, debug
):
    """A crash while saving a connection (the deep-JSON RecursionError of issue #11 was one)
    answers Django's error page (DEBUG) or mails the same report to the admins: it lists the
    POST data and every frame's variables, and the typed secrets appear in none of them."""
    import logging
    from unittest import mock

    from django.utils.log import AdminEmailHandler

    old, new = listeners
    connection = tryton_connection(old.url)
    data = _form_data(admin_client.get(change_url(connection)))
    data["settings"] = json.dumps({**json.loads(data["settings"]), "url": new.url})
    data.update(credential_username="typed-login-55", credential_password=TYPED_PASSWORD)
    settings.DEBUG = debug
    settings.ADMINS = [("Admin", "admin@example.com")]
    admin_client.raise_request_exception = False
    mail_handler = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(mail_handler)
    try:
        with mock.patch("connectors.admin.connection_update", side_effect=RecursionError("deep")):
            response = admin_client.post(change_url(connection), data)
    finally:
        logger.removeHandler(mail_handler)
    assert response.status_code == 500
    (mail,) = mailoutbox
    pages = [mail.body, mail.alternatives[0][0]] + ([response.content.decode()] if debug else [])
    for page in pages:
        assert "RecursionError" in page and "credential_password" in page  # a full report
        for secret in (TYPED_PASSWORD, "typed-login-55", STORED_PASSWORD):
            for shown in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]):
                assert shown not in page and escape(shown) not in page, (secret, shown)
