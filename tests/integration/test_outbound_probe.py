"""Connections cannot be used to probe the network (issue #11, point 2).

Listeners on 127.0.0.1 play what a connection's URL could point at: a web server answering 400 or
500 with a page, a JSON service answering its own error, a redirect, a Tryton-shaped internal
error, each carrying a distinctive string. Whatever answered, the string is in no stored check
message, no admin page (as a Viewer and in the "Test connection" message), no run or record
error, no column of the database and no log line: failures are told by their class (refused
login, not Tryton's JSON-RPC, HTTP status, redirect). With the production policy (no private
address allowed), a listener on loopback is never even connected to.
"""

from __future__ import annotations

import html
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.apps import apps
from django.db import connection as db
from django.urls import reverse

from connectors import registry, roles
from connectors.errors import ErrorCode
from connectors.models import Connection
from connectors.providers.tryton.target import TrytonTarget
from connectors.services import connection_check
from syncs.models import SyncedRecord
from syncs.services import flow_sync
from tests.doubles import MemorySource
from tests.factories import ConnectionFactory, InvoiceFactory, SyncFlowFactory, UserFactory

pytestmark = pytest.mark.django_db

MARK = "Zq7-internal-probe-answer"  # in every answer of the listeners below
PASSWORD = "pr0be-Passw0rd-77"

# What a listener answers to every request: (status, content type, body) and extra headers.
ANSWERS = {
    "html_400": (400, "text/html", f"<html><h1>Bad Request</h1><p>{MARK}</p></html>"),
    "html_500": (500, "text/html", f"<html><title>Oops</title>Internal {MARK} error</html>"),
    "text_503": (503, "text/plain", f"{MARK} is down for maintenance"),
    "json_rpc2_error": (
        200,
        "application/json",
        json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": MARK}}),
    ),
    "json_error_text": (200, "application/json", json.dumps({"id": 1, "error": MARK})),
    "tryton_internal_error": (
        200,
        "application/json",
        json.dumps({"id": 1, "error": [f"{MARK}: boom", f"Traceback ... {MARK}"]}),
    ),
    "html_200": (200, "text/html", f"<html>Welcome to {MARK}</html>"),
    "refused_login": (401, "text/html", f"<p>{MARK}: wrong password</p>"),
    "redirect": (302, "text/html", f"<a href='/elsewhere'>{MARK}</a>"),
}
# How each failure is told instead.
CLASSIFIED = {
    "html_400": "HTTP 400",
    "html_500": "HTTP 500",
    "text_503": "Tryton's database stayed busy",
    "json_rpc2_error": "as Tryton's JSON-RPC does",
    "json_error_text": "as Tryton's JSON-RPC does",
    "tryton_internal_error": "internal error",
    "html_200": "as Tryton's JSON-RPC does",
    "refused_login": "refused the login",
    "redirect": "redirect (HTTP 302)",
}


class Listener:
    """An HTTP server on 127.0.0.1 that answers every request with ``ANSWERS[mode]`` and counts
    the connections it accepts."""

    def __init__(self, mode: str, location: str = "") -> None:
        status, content_type, body = ANSWERS[mode]
        payload = body.encode()
        self.connections = 0
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self):
                listener.connections += 1
                super().setup()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere():
    """Where the redirecting listener sends: must hear nothing."""
    server = Listener("html_200")
    yield server
    server.close()


@pytest.fixture(params=sorted(ANSWERS))
def answering(request, elsewhere):
    mode = request.param
    server = Listener(mode, location=elsewhere.url + "rpc/" if mode == "redirect" else "")
    server.mode = mode
    yield server
    server.close()
    assert elsewhere.connections == 0  # no redirect followed


def tryton_connection(url: str, **kwargs) -> Connection:
    return ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings={"url": url, "database": "acme", "retry_attempts": "1", "timeout": "5"},
        credentials={"username": "accountant", "password": PASSWORD}, **kwargs,
    )  # fmt: skip


def every_text_in_the_database() -> str:
    chunks = []
    with db.cursor() as cursor:
        for model in apps.get_models():
            cursor.execute(f"SELECT * FROM {db.ops.quote_name(model._meta.db_table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def page(http, name: str, *args) -> str:
    response = http.get(reverse(name, args=args))
    assert response.status_code == 200, name
    return response.content.decode()


def test_check_message_classifies_the_failure_and_never_repeats_the_answer(
    answering, client, caplog
):
    caplog.set_level(logging.DEBUG)
    connection = tryton_connection(answering.url)
    accountant = UserFactory(roles=[roles.ACCOUNTANT], clients=[connection.client])
    client.force_login(accountant)
    response = client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [connection.pk]},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1 and "failed" in shown[0], shown
    assert answering.connections >= 1  # the listener did answer: the test proves something

    stored = Connection.objects.get(pk=connection.pk)
    assert stored.last_check_ok is False
    assert CLASSIFIED[answering.mode] in stored.last_check_message, stored.last_check_message
    assert MARK not in stored.last_check_message
    assert MARK not in shown[0] and MARK not in response.content.decode()

    viewer = UserFactory(roles=[roles.VIEWER], clients=[connection.client])
    client.force_login(viewer)
    for name, args in (
        ("admin:connectors_connection_change", [connection.pk]),
        ("admin:connectors_connection_changelist", []),
    ):
        text = page(client, name, *args)
        assert MARK not in text
    assert html.escape(CLASSIFIED[answering.mode]) in page(
        client, "admin:connectors_connection_change", connection.pk
    )
    assert MARK not in caplog.text and PASSWORD not in caplog.text


def test_a_sync_against_such_a_server_stores_and_shows_no_word_of_its_answer(
    answering, client, caplog
):
    caplog.set_level(logging.DEBUG)
    MemorySource.reset()
    with registry.override([MemorySource, TrytonTarget]):
        flow = SyncFlowFactory(accounting_connection=tryton_connection(answering.url))
        flow.accounting_connection.client = flow.client
        flow.accounting_connection.save()
        MemorySource.put(InvoiceFactory(), InvoiceFactory())
        run = flow_sync(flow=flow, trigger="manual")
    assert run is not None and answering.connections >= 1
    errors = [run.error_message] + [
        r.error_message for r in SyncedRecord.objects.filter(flow=flow) if r.error_message
    ]
    assert any(errors), "nothing failed: the test would prove nothing"
    assert all(MARK not in (e or "") for e in errors), errors
    assert MARK not in every_text_in_the_database()
    assert MARK not in caplog.text

    viewer = UserFactory(roles=[roles.VIEWER], clients=[flow.client])
    client.force_login(viewer)
    texts = [
        page(client, "admin:syncs_syncrun_change", run.pk),
        page(client, "admin:syncs_syncrun_changelist"),
        page(client, "admin:syncs_syncedrecord_changelist"),
    ]
    texts += [
        page(client, "admin:syncs_syncedrecord_change", record.pk)
        for record in SyncedRecord.objects.filter(flow=flow)
    ]
    assert all(MARK not in text for text in texts)


# -- The production policy: nothing private is contacted --------------------------------------


class SilentListener:
    """A TCP socket listening on 127.0.0.1 that never accepts by itself: a connection made to it
    waits in its backlog, where :meth:`connected` finds it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def connected(self) -> bool:
        try:
            accepted, _ = self.sock.accept()
        except BlockingIOError:
            return False
        accepted.close()
        return True


@pytest.fixture
def silent_listener():
    listener = SilentListener()
    yield listener
    listener.sock.close()


@pytest.fixture
def production_policy(settings):
    """What a production installation has without INVSYNC_OUTBOUND_ALLOWED_NETWORKS."""
    settings.INVSYNC_OUTBOUND_ALLOWED_NETWORKS = []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
def test_production_policy_never_connects_to_a_loopback_listener(
    silent_listener, production_policy, host
):
    url = silent_listener.url.replace("127.0.0.1", host)
    connection = tryton_connection(url)
    result = connection_check(connection=connection)
    assert not result.ok
    assert "outbound policy does not allow" in result.message
    assert "a loopback address" in result.message
    assert "INVSYNC_OUTBOUND_ALLOWED_NETWORKS" in result.message
    assert PASSWORD not in result.message
    assert not silent_listener.connected()


def test_production_policy_stops_a_sync_before_any_connection(silent_listener, production_policy):
    MemorySource.reset()
    with registry.override([MemorySource, TrytonTarget]):
        flow = SyncFlowFactory(accounting_connection=tryton_connection(silent_listener.url))
        MemorySource.put(InvoiceFactory())
        run = flow_sync(flow=flow, trigger="manual")
    assert run.error_code == ErrorCode.CONFIGURATION_INCOMPLETE, run.error_message
    assert "outbound policy" in run.error_message
    assert not silent_listener.connected()


def test_the_same_listener_is_reached_when_loopback_is_allowed(silent_listener, settings):
    """The control: without the production policy the check does connect (and then times out:
    the listener never answers), so the tests above can fail."""
    settings.INVSYNC_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    connection = tryton_connection(silent_listener.url)
    connection.settings["timeout"] = "0.5"
    connection.save()
    result = connection_check(connection=connection)
    assert not result.ok and "did not answer" in result.message
    assert silent_listener.connected()


def test_production_settings_allow_no_private_address_and_a_laptop_allows_loopback(settings):
    def allowed(debug: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INVSYNC_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="invsync.settings", DJANGO_DEBUG=debug,
            DJANGO_SECRET_KEY="production-secret-key-" + "x" * 40,
        )  # fmt: skip
        code = (
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.INVSYNC_OUTBOUND_ALLOWED_NETWORKS)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True,
            check=True, cwd=settings.BASE_DIR,
        )  # fmt: skip
        return done.stdout.strip()

    assert allowed("false") == "[]"
    assert allowed("true") == "['127.0.0.0/8', '::1/128']"
