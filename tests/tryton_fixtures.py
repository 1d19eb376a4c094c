"""Pytest plugin: a live Tryton 8.2 server for the tests marked ``tryton``.

Register it once, in ``tests/conftest.py``::

    pytest_plugins = ["tests.tryton_fixtures"]

(or ``-p tests.tryton_fixtures`` in ``addopts``). Nothing is installed or started until a test
asks for one of these fixtures, so ``pytest -m "not tryton"`` costs nothing.

Fixtures:

- ``tryton_sandbox`` (session): the ``TrytonSandbox`` — Tryton venv installed, private PostgreSQL
  started, templates built (cached across sessions), one trytond serving a pool of copies.
- ``tryton_invoicing`` (session): a ``TrytonDatabase`` on one copy of the invoicing template,
  shared by the whole session: read it, never write to it.
- ``tryton_accounting`` (function): a fresh copy of the accounting template for each test.
- ``tryton_fresh_invoicing`` (function): a fresh invoicing copy, for tests that modify the source.
- ``tryton_manifests`` (session): ``{"accounting": {...}, "invoicing": {...}}`` as built.

The server is proven ours before use: the trytond the session started must be the process
listening on the port (``TrytonSandbox.verify_server``), at start and for every database fixture.

Environment: ``INVSYNC_TRYTON_ROOT`` (sandbox directory, default ``var/tryton``),
``INVSYNC_TRYTON_POOL`` (fresh accounting copies per server start, default 6),
``INVSYNC_TRYTON_UNAVAILABLE=skip`` (skip instead of failing where PostgreSQL 15 is missing).
Timings are printed in the terminal summary.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from connectors.devtools.tryton.sandbox import ADMIN_LOGIN, SandboxError, TrytonSandbox

_SANDBOX: TrytonSandbox | None = None


@dataclass
class TrytonDatabase:
    """One served Tryton database and how to reach it as admin."""

    url: str  # server root, e.g. "http://127.0.0.1:41234/"
    name: str
    role: str  # "accounting" or "invoicing"
    login: str
    password: str
    manifest: dict = field(repr=False)
    _session: str | None = field(default=None, repr=False)
    _context: dict | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"{self.url}{self.name}/rpc/"

    @property
    def settings(self) -> dict[str, str]:
        """The Tryton connection's settings, as the connectors take them."""
        return {"url": self.url, "database": self.name}

    @property
    def credentials(self) -> dict[str, str]:
        """The Tryton connection's credentials, as the connectors take them."""
        return {"username": self.login, "password": self.password}

    def call(self, method: str, params: list, *, context: bool = False) -> Any:
        """Raw JSON-RPC as admin (logs in once); ``context=True`` appends the user context."""
        if self._session is None:
            uid, token, *_ = self._post(
                "common.db.login", [self.login, {"password": self.password}, "en"]
            )
            self._session = base64.b64encode(f"{self.login}:{uid}:{token}".encode()).decode()
            self._context = self._post("model.res.user.get_preferences", [True, {}])
        return self._post(method, [*params, self._context] if context else params)

    def _post(self, method: str, params: list) -> Any:
        headers = {"Authorization": f"Session {self._session}"} if self._session else {}
        response = requests.post(
            self.rpc_url,
            json={"id": 1, "method": method, "params": params},
            headers=headers,
            timeout=120,
        )
        response.raise_for_status()
        payload = response.json()
        if "error" in payload:
            raise AssertionError(f"{method}: {str(payload['error'])[:2000]}")
        return payload["result"]


def _database(sandbox: TrytonSandbox, name: str, role: str) -> TrytonDatabase:
    # The trytond this session started must still be what listens on the port (a few ms):
    # a test never talks to another program that took it.
    try:
        sandbox.verify_server()
    except SandboxError as error:
        pytest.fail(str(error), pytrace=False)
    assert sandbox.server_url
    return TrytonDatabase(
        url=sandbox.server_url,
        name=name,
        role=role,
        login=ADMIN_LOGIN,
        password=sandbox.admin_password,
        manifest=sandbox.manifest(role),
    )


@pytest.fixture(scope="session")
def tryton_sandbox():
    global _SANDBOX
    sandbox = TrytonSandbox(os.environ.get("INVSYNC_TRYTON_ROOT") or None)
    if (
        not (sandbox.pg_bin / "pg_ctl").exists()
        and os.environ.get("INVSYNC_TRYTON_UNAVAILABLE") == "skip"
    ):
        pytest.skip(f"PostgreSQL server binaries not found in {sandbox.pg_bin}")
    _SANDBOX = sandbox
    try:
        sandbox.ensure_installed()
        sandbox.start_postgres()
        sandbox.drop_stale_test_databases()
        sandbox.ensure_templates()
        pool = int(os.environ.get("INVSYNC_TRYTON_POOL", "6"))
        sandbox.serve(shared=["invoicing"], fresh={"accounting": pool, "invoicing": 1})
        sandbox.verify_server()
    except SandboxError as error:
        sandbox.stop()
        pytest.fail(f"Tryton sandbox unavailable: {error}", pytrace=False)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="session")
def tryton_manifests(tryton_sandbox) -> dict[str, dict]:
    return {role: tryton_sandbox.manifest(role) for role in ("accounting", "invoicing")}


@pytest.fixture(scope="session")
def tryton_invoicing(tryton_sandbox) -> TrytonDatabase:
    return _database(tryton_sandbox, tryton_sandbox.shared_database("invoicing"), "invoicing")


@pytest.fixture
def tryton_accounting(tryton_sandbox) -> TrytonDatabase:
    return _database(tryton_sandbox, tryton_sandbox.fresh_database("accounting"), "accounting")


@pytest.fixture
def tryton_fresh_invoicing(tryton_sandbox) -> TrytonDatabase:
    return _database(tryton_sandbox, tryton_sandbox.fresh_database("invoicing"), "invoicing")


def pytest_terminal_summary(terminalreporter):
    if _SANDBOX is not None:
        terminalreporter.write_sep("-", "Tryton sandbox")
        terminalreporter.write_line(_SANDBOX.timings.summary())
