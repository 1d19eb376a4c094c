"""The Tryton sandbox's secrets and its proof that a port is held by our server (no Tryton)."""

import json
import os
import socket
import subprocess
import sys
import time

from connectors.devtools.tryton.sandbox import (
    REQUIREMENTS,
    PortTakenError,
    TrytonSandbox,
    free_port,
    port_binding,
    port_holders,
    server_identity_problem,
)


def _root_with_installed_marker(root):
    venv = root / "venv"
    venv.mkdir(parents=True)
    (venv / "invsync-installed.json").write_text(
        json.dumps({"requirements": REQUIREMENTS, "versions": {"trytond": "8.2.1"}})
    )
    return root


def test_a_new_root_gets_random_passwords_kept_in_files_only_its_user_reads(tmp_path):
    sandbox = TrytonSandbox(tmp_path / "root", verbose=False)
    admin, demo = sandbox.admin_password, sandbox.demo_password
    assert len(admin) >= 20 and len(demo) >= 20 and admin != demo
    assert "admin" not in (admin, demo)
    for name, value in (("admin-password", admin), ("demo-password", demo)):
        path = tmp_path / "root" / name
        assert path.read_text().strip() == value
        assert path.stat().st_mode & 0o777 == 0o600
    again = TrytonSandbox(tmp_path / "root", verbose=False)
    assert (again.admin_password, again.demo_password) == (admin, demo)
    assert TrytonSandbox(tmp_path / "other", verbose=False).demo_password != demo


def test_a_root_built_with_the_fixed_password_keeps_it_and_its_template_key(tmp_path):
    root = _root_with_installed_marker(tmp_path / "root")
    (root / "admin-password").write_text("admin\n")
    legacy = TrytonSandbox(root, verbose=False)
    assert legacy.admin_password == "admin"
    assert legacy.base_key() == TrytonSandbox(root, admin_password="admin").base_key()
    assert legacy.demo_password != "admin"  # its demo databases still get a random one


def test_an_explicit_password_is_the_one_written_for_the_build(tmp_path):
    sandbox = TrytonSandbox(tmp_path / "root", admin_password="chosen", verbose=False)
    assert sandbox.password_file.read_text().strip() == "chosen"


# Another program on the port: it imitates Tryton's JSON-RPC (any login succeeds, the database
# list looks like ours) and prints each request it gets.
FOREIGN_TRYTON = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print("request", payload["method"], flush=True)
        result = {"common.server.version": "8.2.1", "common.db.login": [1, "token"],
                  "common.db.list": ["invsync_accounting", "invsync_invoicing"]}
        body = json.dumps({"id": 1, "result": result.get(payload["method"])}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def _listener(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", FOREIGN_TRYTON, str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def test_port_binding_tells_our_listener_from_another_programs():
    port = free_port()
    process = _listener(port)
    try:
        assert port_holders(port) == [(process.pid, port_holders(port)[0][1])]
        assert "HTTPServer" in port_holders(port)[0][1]
        assert port_binding(process.pid, port) == ("ours", [])
        binding, foreign = port_binding(os.getpid(), port)
        assert binding == "foreign" and [pid for pid, _ in foreign] == [process.pid]
        # Alive and bound, but not a trytond with our configuration: not our server.
        assert "no longer our trytond" in server_identity_problem(process.pid, port, "x.conf")
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 5
    while port_holders(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_binding(os.getpid(), port) == ("nobody", [])


def test_a_listener_in_our_process_group_counts_as_ours():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_binding(os.getpid(), port) == ("ours", [])


def test_start_server_on_a_taken_port_names_the_holder_and_never_talks_to_it(tmp_path):
    port = free_port()
    process = _listener(port)
    root = tmp_path / "root"
    # A stand-in trytond that never binds: only the foreign program could answer.
    trytond = root / "venv" / "bin" / "trytond"
    trytond.parent.mkdir(parents=True)
    trytond.write_text("#!/bin/sh\nexec sleep 30\n")
    trytond.chmod(0o755)
    sandbox = TrytonSandbox(root, server_port=port, verbose=False)
    try:
        try:
            url = sandbox.start_server(["invsync_accounting"], timeout=3)
        except PortTakenError as error:
            message = str(error)
        else:
            sandbox.stop_server()
            raise AssertionError(f"start_server reported {url}, served by another program")
        assert f"port {port} is taken by another program: pid {process.pid}" in message
        assert "FOREIGN_TRYTON" not in message and "HTTPServer" in message  # its command line
    finally:
        process.kill()
        requests = process.stdout.read()
        process.wait()
    assert requests == ""  # not one request reached it
