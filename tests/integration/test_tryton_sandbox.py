"""The Tryton sandbox itself: a real trytond over raw JSON-RPC, against what the build declares."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.devtools.tryton import sandbox as sandbox_module
from connectors.devtools.tryton.sandbox import (
    DEMO_DATABASES,
    PortTakenError,
    SandboxError,
    TrytonSandbox,
    free_port,
    port_holders,
    server_identity_problem,
)

# Also registered for the whole suite in tests/conftest.py; naming it here keeps this module
# runnable on its own. A plugin is registered once whichever module names it first.
pytest_plugins = ["tests.tryton_fixtures"]

pytestmark = pytest.mark.tryton


def _decimal(value) -> Decimal:
    assert value["__class__"] == "Decimal"
    return Decimal(value["decimal"])


def test_accounting_copy_has_the_french_chart(tryton_accounting):
    accounts = tryton_accounting.call(
        "model.account.account.search_read",
        [
            [["code", "in", ["4111", "4011", "706", "44571"]]],
            0,
            None,
            [["code", "ASC"]],
            ["code", "closed", "party_required", "type.receivable", "type.payable", "type.revenue"],
        ],
        context=True,
    )
    by_code = {account["code"]: account for account in accounts}
    assert set(by_code) == {"4111", "4011", "706", "44571"}
    assert by_code["4111"]["type."]["receivable"] and by_code["4111"]["party_required"]
    assert by_code["4011"]["type."]["payable"] and by_code["4011"]["party_required"]
    assert by_code["706"]["type."]["revenue"] and not by_code["706"]["closed"]
    manifest = tryton_accounting.manifest
    assert manifest["accounts"]["4111"]["id"] == by_code["4111"]["id"]


def test_accounting_copy_has_company_fiscal_years_and_existing_parties(tryton_accounting):
    manifest = tryton_accounting.manifest
    years = tryton_accounting.call(
        "model.account.fiscalyear.search_read",
        [[], 0, None, [["start_date", "ASC"]], ["name", "state", "periods"]],
        context=True,
    )
    assert [y["name"] for y in years] == [y["name"] for y in manifest["fiscal_years"]]
    assert all(len(y["periods"]) == 12 for y in years)
    companies = tryton_accounting.call(
        "model.company.company.search_read",
        [[], 0, None, None, ["party.name", "currency.code"]],
        context=True,
    )
    assert [(c["party."]["name"], c["currency."]["code"]) for c in companies] == [
        (manifest["company"]["name"], "EUR")
    ]
    for existing in manifest["existing_parties"]:
        found = tryton_accounting.call(
            "model.party.identifier.search_read",
            [
                [
                    ["type", "=", "fr_siren"],
                    ["code_compact", "=", existing["identifiers"]["fr_siren"]],
                ],
                0,
                None,
                None,
                ["party.name"],
            ],
            context=True,
        )
        assert [f["party."]["name"] for f in found] == [existing["name"]]


def test_invoicing_copy_matches_the_manifest(tryton_invoicing):
    manifest = tryton_invoicing.manifest
    invoices = tryton_invoicing.call(
        "model.account.invoice.search_read",
        [
            [],
            0,
            None,
            [["id", "ASC"]],
            [
                "number",
                "type",
                "state",
                "total_amount",
                "untaxed_amount",
                "tax_amount",
                "currency.code",
                "party.name",
            ],
        ],
        context=True,
    )
    counts = manifest["counts"]
    assert len(invoices) == counts["total"] >= 30
    assert Counter(i["type"] for i in invoices) == Counter(counts["by_type"])
    assert Counter(i["state"] for i in invoices) == Counter(counts["by_state"])
    assert Counter(f"{i['type']}/{i['state']}" for i in invoices) == Counter(
        counts["by_type_state"]
    )

    by_id = {i["id"]: i for i in invoices}
    for expected in manifest["invoices"]:
        actual = by_id[expected["id"]]
        assert actual["number"] == expected["number"], expected["key"]
        assert _decimal(actual["total_amount"]) == Decimal(expected["total"]), expected["key"]
        assert actual["currency."]["code"] == expected["currency"]
        assert actual["party."]["name"] == expected["party_name"]

    kinds = Counter(i["canonical_type"] for i in manifest["invoices"])
    assert kinds["customer_refund"] >= 1 and kinds["supplier_refund"] >= 1
    keys = {i["key"]: i for i in manifest["invoices"]}
    assert (
        keys["out_unmapped_tax"]["expected_error"]
        == "ERROR_SYNC_INVOICE_MAPPING_TAX_RATE_NOT_FOUND"
    )
    assert "2.1" in keys["out_unmapped_tax"]["tax_rates"]
    assert keys["out_usd_export"]["currency"] == "USD"
    assert keys["out_draft"]["number"] is None and keys["out_draft"]["expect"] == "skip"
    assert keys["out_cancelled"]["state"] == "cancelled"
    rates = {rate for invoice in manifest["invoices"] for rate in invoice["tax_rates"]}
    assert {"20", "10", "5.5", "0", "2.1"} <= rates


def test_rounding_invoice_total_differs_from_the_sum_of_line_taxes(tryton_invoicing):
    invoice = {i["key"]: i for i in tryton_invoicing.manifest["invoices"]}["out_rounding"]
    assert all(line["tax_rates"] == ["20"] for line in invoice["lines"])
    line_taxes = sum(
        (Decimal(line["untaxed_amount"]) * Decimal("0.20")).quantize(Decimal("0.01"))
        for line in invoice["lines"]
    )
    assert Decimal(invoice["tax_amount"]) == Decimal("0.20")
    assert line_taxes == Decimal("0.21")


def test_party_identifiers_are_stored_as_the_manifest_says(tryton_invoicing):
    parties = {p["key"]: p for p in tryton_invoicing.manifest["parties"]}
    identifiers = tryton_invoicing.call(
        "model.party.identifier.search_read",
        [[], 0, None, None, ["type", "code_compact", "party"]],
        context=True,
    )
    stored = {(i["party"], i["type"], i["code_compact"]) for i in identifiers}
    for party in parties.values():
        for kind, code in party["identifiers"].items():
            assert (party["id"], kind, code) in stored, (party["key"], kind)
    assert parties["mueller_gmbh"]["identifiers"]["eu_vat"].startswith("DE")
    assert "fr_siret" in parties["boulangerie_martin"]["identifiers"]


def test_fresh_accounting_copies_are_isolated(tryton_sandbox, tryton_accounting):
    tryton_accounting.call("model.party.party.create", [[{"name": "Only here"}]], context=True)
    other = tryton_sandbox.fresh_database("accounting")
    from tests.tryton_fixtures import _database

    second = _database(tryton_sandbox, other, "accounting")
    assert (
        second.call("model.party.party.search_count", [[["name", "=", "Only here"]]], context=True)
        == 0
    )
    assert (
        tryton_accounting.call(
            "model.party.party.search_count", [[["name", "=", "Only here"]]], context=True
        )
        == 1
    )


def test_a_session_survives_the_pool_refill_restart(tryton_sandbox, tryton_invoicing):
    before = tryton_invoicing.call("model.account.invoice.search_count", [[]], context=True)
    starts = len(tryton_sandbox.timings.server_starts)
    # Use up the fresh invoicing batch (size 1) twice: the second one refills and restarts.
    tryton_sandbox.fresh_database("invoicing")
    tryton_sandbox.fresh_database("invoicing")
    assert len(tryton_sandbox.timings.server_starts) == starts + 1
    assert tryton_invoicing.call("model.account.invoice.search_count", [[]], context=True) == before


def test_report_timings(tryton_sandbox):
    timings = tryton_sandbox.timings
    print("\nTryton sandbox timings:", timings.summary())
    assert timings.server_starts


# ---------------------------------------------------------------------- the server is ours
# These tests run `up` (and the demo) on a sandbox root of their own, sharing only the Tryton
# virtualenv of var/tryton: its PostgreSQL cluster and templates are built once for the module
# (~2-4 min), and other sessions' var/tryton is never touched.

PROJECT = Path(__file__).resolve().parents[2]


class _FakeTrytonHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, payload.get("method")))
        # Another Tryton with the same database names and the old fixed password would answer
        # like this: any login succeeds, the database list looks like ours.
        answers = {
            "common.server.version": "8.2.1",
            "common.db.list": sorted(DEMO_DATABASES.values()),
            "common.db.login": [1, "foreign-token"],
        }
        body = json.dumps({"id": payload.get("id"), "result": answers.get(payload.get("method"))})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def foreign_tryton(port: int):
    """Another program listening on ``port`` that imitates Tryton's JSON-RPC; ``.requests``
    lists every request it got."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _FakeTrytonHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _link_shared_venv(root: Path) -> None:
    shared = TrytonSandbox(verbose=False)
    shared.ensure_installed()
    root.mkdir(parents=True, exist_ok=True)
    (root / "venv").symlink_to(shared.venv, target_is_directory=True)


def _remove_root(root: Path) -> None:
    sandbox = TrytonSandbox(root, verbose=False)
    with contextlib.suppress(SandboxError):
        sandbox.demo_down()
    for directory in sandbox._pg_dir_candidates():
        shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_root(tmp_path_factory, tryton_sandbox):
    """A sandbox root of this module's own, its templates copied from the session's shared root
    (built once for the session: copying takes seconds, building again minutes), nothing
    running."""
    root = tmp_path_factory.mktemp("tryton-own-root")
    _link_shared_venv(root)
    sandbox = TrytonSandbox(root)
    try:
        sandbox.copy_templates_from(tryton_sandbox)
        assert sandbox.templates_ready()
    except SandboxError as error:
        _remove_root(root)
        pytest.fail(f"Tryton sandbox unavailable: {error}", pytrace=False)
    sandbox.stop()
    yield root
    _remove_root(root)


@pytest.fixture
def stopped_root(own_root, monkeypatch):
    """``own_root`` with its demo stopped, so ``up`` chooses its port afresh; the port it
    prefers is a free one here rather than 8765 (a real demo's)."""
    TrytonSandbox(own_root, verbose=False).demo_down()
    monkeypatch.setattr(sandbox_module, "DEMO_SERVER_PORT", free_port())
    return own_root


def _proven_ours(state: dict) -> None:
    assert state["running"]
    assert server_identity_problem(state["pid"], state["port"], state["config"]) is None


def test_up_on_a_port_another_program_holds_fails_naming_it_and_never_talks_to_it(stopped_root):
    port = free_port()
    with foreign_tryton(port) as foreign:
        sandbox = TrytonSandbox(stopped_root, server_port=port)
        with pytest.raises(PortTakenError) as raised:
            sandbox.demo_up()
        assert foreign.requests == []
    message = str(raised.value)
    assert f"port {port} is taken by another program" in message
    assert f"pid {os.getpid()}" in message  # the foreign listener lives in this test process
    assert not TrytonSandbox(stopped_root).demo_status().get("running")


def test_port_taken_during_the_build_moves_up_to_another_port_and_our_server(
    stopped_root, monkeypatch
):
    wanted = free_port()
    monkeypatch.setattr(sandbox_module, "DEMO_SERVER_PORT", wanted)
    sandbox = TrytonSandbox(stopped_root)
    build = sandbox.ensure_templates
    taken = {}
    with contextlib.ExitStack() as stack:

        def build_then_another_program_takes_the_port(**kwargs):
            names = build(**kwargs)
            taken["foreign"] = stack.enter_context(foreign_tryton(wanted))
            return names

        sandbox.ensure_templates = build_then_another_program_takes_the_port
        state = sandbox.demo_up()
        assert taken["foreign"].requests == []
    assert state["port"] != wanted
    _proven_ours(state)
    sandbox.login(DEMO_DATABASES["accounting"], state["url"], password=sandbox.demo_password)


def test_status_does_not_count_another_program_on_the_recorded_port(stopped_root):
    state = TrytonSandbox(stopped_root).demo_up()
    _proven_ours(state)
    os.killpg(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while port_holders(state["port"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    with foreign_tryton(state["port"]) as foreign:
        status = TrytonSandbox(stopped_root).demo_status()
        assert not status["running"]
        assert status["problem"]
        again = TrytonSandbox(stopped_root).demo_up()
        assert again["port"] != state["port"]
        _proven_ours(again)
        assert foreign.requests == []


def test_demo_databases_take_the_roots_random_password_that_up_prints(stopped_root, capsys):
    assert sandbox_module.main(["up", "--root", str(stopped_root), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    password_file = stopped_root / "demo-password"
    assert printed["password_file"] == str(password_file)
    assert printed["password"] == password_file.read_text().strip()
    assert len(printed["password"]) >= 20 and printed["password"] != "admin"
    assert password_file.stat().st_mode & 0o777 == 0o600
    sandbox = TrytonSandbox(stopped_root)
    for name in DEMO_DATABASES.values():
        sandbox.login(name, printed["url"], password=printed["password"])
        # Neither the old fixed password nor the templates' own opens a demo database.
        for other in ("admin", sandbox.admin_password):
            with pytest.raises((SandboxError, OSError)):
                sandbox.login(name, printed["url"], password=other)


def _demo_environment(var_dir: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "INVSYNC_TRYTON_ROOT", "DJANGO_SETTINGS_MODULE"}
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="invsync.settings",
        INVSYNC_VAR_DIR=str(var_dir),
        INVSYNC_Q_WORKERS="1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return environment


def _start_demo(var_dir: Path, *args: str) -> tuple[subprocess.Popen, list[str], list[str]]:
    """``manage.py demo`` in a session of its own (as from a terminal); its stdout and stderr
    lines are collected as they come."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", *args],
        cwd=PROJECT,
        env=_demo_environment(var_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    for stream, lines in ((process.stdout, out), (process.stderr, err)):
        threading.Thread(target=lines.extend, args=(stream,), daemon=True).start()
    return process, out, err


def _stop_with_ctrl_c(process: subprocess.Popen, timeout: float) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    process.wait(timeout=timeout)
    time.sleep(0.5)  # the reader threads take the last lines


def _wait_for(lines: list[str], text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"no {text!r} in the demo's output:\n{''.join(lines)[-4000:]}")


def _demo_django_processes(var_dir: Path) -> list[int]:
    """The demo's Django processes (itself, runserver, qcluster and its workers) still alive:
    ``manage.py`` processes with the test's var directory. Tryton and PostgreSQL, which the
    demo leaves running on purpose, are not among them."""
    marker = f"INVSYNC_VAR_DIR={var_dir}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                environ = Path(entry.path, "environ").read_bytes().split(b"\0")
                command = Path(entry.path, "cmdline").read_bytes()
                if marker in environ and b"manage.py" in command:
                    found.append(int(entry.name))
    return found


def test_ctrl_c_while_the_demo_serves_stops_web_server_and_workers_without_traceback(
    own_root, tmp_path
):
    var_dir = tmp_path / "var"
    admin_port = free_port()
    process, lines, errors = _start_demo(
        var_dir, "--port", str(admin_port), "--tryton-root", str(own_root)
    )
    try:
        _wait_for(lines, "Press Ctrl-C to stop.", process, timeout=900)
        deadline = time.monotonic() + 120
        while not port_holders(admin_port) and time.monotonic() < deadline:
            time.sleep(0.2)  # the web server takes a few seconds to listen
        assert port_holders(admin_port), "".join(lines)
        time.sleep(1)
        _stop_with_ctrl_c(process, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output, stderr = "".join(lines), "".join(errors)
    assert process.returncode in (0, 130), stderr[-3000:]
    assert "Traceback" not in stderr and "Traceback" not in output, stderr[-3000:]
    assert "Stopped." in output
    password = (own_root / "demo-password").read_text().strip()
    assert password in output and str(own_root / "demo-password") in output
    assert port_holders(admin_port) == []
    assert _demo_django_processes(var_dir) == []  # no web server or worker left behind
    assert TrytonSandbox(own_root).demo_status()["running"]  # Tryton stays up, as it says


def test_ctrl_c_while_the_demo_provisions_tryton_stops_with_a_short_message(tmp_path):
    root = tmp_path / "tryton"
    _link_shared_venv(root)
    var_dir = tmp_path / "var"
    process, lines, errors = _start_demo(var_dir, "--no-serve", "--tryton-root", str(root))
    try:
        _wait_for(lines, "Provisioning the local Tryton", process, timeout=300)
        time.sleep(3)  # inside the cluster's initdb or the base build
        assert process.poll() is None, "".join(lines)
        _stop_with_ctrl_c(process, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        _remove_root(root)
    stderr = "".join(errors)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Interrupted." in stderr
    assert _demo_django_processes(var_dir) == []
