"""A private dovecot IMAP server for the mailbox tests (Debian's ``dovecot-imapd``).

Started once per test session (``imap_server`` fixture) as a subprocess with a configuration
generated in a temporary folder: it listens on 127.0.0.1 and two free ports (plain IMAP with
STARTTLS, and implicit TLS), reads its users from a passwd-file there and keeps their mail as
maildirs there; no system configuration is read. Its TLS certificate (for ``localhost``) is
signed by a test authority made at start (``ca_file``: a client trusts it through
``SSL_CERT_FILE``). It runs as the current user, without root; as root (CI), its processes run
as the users the package creates (``dovecot``, ``dovenull``). Each test takes a mailbox of its
own (:meth:`ImapServer.new_mailbox`: a user with an empty INBOX), so nothing is cleaned up
between tests; the server is stopped at the end of the session.

Where dovecot is not installed the tests that need it skip, saying how to install it (``bin/dev
setup`` does, as root with apt-get); on CI (``CI`` set) a missing server fails them instead.
"""

from __future__ import annotations

import datetime as dt
import grp
import imaplib
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = os.environ.get("INVSYNC_DOVECOT") or shutil.which("dovecot") or "/usr/sbin/dovecot"
INSTALL_HINT = (
    "dovecot (Debian's dovecot-imapd) is not installed: run bin/dev setup as root, or "
    "apt-get install dovecot-imapd"
)
START_TIMEOUT = 15.0
POOL = 500  # users (mailboxes) created at start

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No growing delay after refused logins (the wrong-password tests would wait seconds).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def missing() -> str | None:
    """Why the IMAP tests cannot run here, or None."""
    if not (os.path.isfile(DOVECOT) and os.access(DOVECOT, os.X_OK)):
        return INSTALL_HINT
    return None


def write_certificates(root: Path) -> None:
    """A test authority (``ca.pem``: trust it with ``SSL_CERT_FILE``) and the server's
    certificate for ``localhost`` and 127.0.0.1 that it signed (``server.pem``, ``server.key``)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject, issuer, key, signer, *, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "invsync test authority")])
    ca = build(ca_name, ca_name, ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    server = build(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        ca_name,
        key,
        ca_key,
        ca=False,
        names=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
    )
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "server.key").chmod(0o600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Mailbox:
    """One user's mailbox on the test server."""

    server: ImapServer
    user: str
    password: str

    @property
    def credentials(self) -> dict[str, str]:
        return {"username": self.user, "password": self.password}

    def session(self, folder: str = "INBOX") -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        imap.login(self.user, self.password)
        imap.select(folder)
        return imap

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in the folder, unseen (IMAP APPEND)."""
        imap = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            status, data = imap.append(folder, None, None, raw)
            assert status == "OK", data
        finally:
            imap.logout()

    def flags(self, folder: str = "INBOX") -> list[set[str]]:
        """The flags of each message in the folder, oldest first ([] for a missing folder)."""
        imap = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            status, data = imap.select(folder, readonly=True)
            if status != "OK" or data[0] == b"0":
                return []
            status, data = imap.fetch("1:*", "(FLAGS)")
            if status != "OK" or data == [None]:
                return []
            # \Recent is the server's (new in this session), not something invsync set.
            return [
                set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split()) - {"\\Recent"}
                for line in data
                if isinstance(line, bytes)
            ]
        finally:
            imap.logout()


class ImapServer:
    host = "127.0.0.1"
    # The certificate's name; TLS clients trust ca_file (SSL_CERT_FILE=...).
    tls_host = "localhost"
    free_port = staticmethod(free_port)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()  # plain IMAP, and STARTTLS
        self.tls_port = free_port()  # implicit TLS
        self.process: subprocess.Popen | None = None
        self._users = itertools.count(1)
        self._secret = os.urandom(6).hex()

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def _identity(self) -> dict[str, object]:
        if os.getuid() == 0:
            # Dovecot runs no login or mail process as root: the package's own users.
            internal = pwd.getpwnam("dovecot")
            return {
                "internal_user": "dovecot",
                "internal_group": grp.getgrgid(internal.pw_gid).gr_name,
                "login_user": "dovenull",
                "uid": internal.pw_uid,
                "gid": internal.pw_gid,
            }
        me = pwd.getpwuid(os.getuid())
        return {
            "internal_user": me.pw_name,
            "internal_group": grp.getgrgid(os.getgid()).gr_name,
            "login_user": me.pw_name,
            "uid": os.getuid(),
            "gid": os.getgid(),
        }

    def start(self) -> None:
        identity = self._identity()
        for name in ("run", "state", "mail"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        # Every user at once: dovecot reads the passwd-file again only when its time stamp
        # changes, a second apart at best.
        write_certificates(self.root)
        (self.root / "passwd").write_text(
            "".join(
                "{}:{{PLAIN}}{}::::::\n".format(*self._user(number))
                for number in range(1, POOL + 1)
            )
        )
        self.config_path.write_text(
            CONFIG.format(root=self.root, port=self.port, tls_port=self.tls_port, **identity)
        )
        if os.getuid() == 0:
            os.chown(self.root / "mail", int(identity["uid"]), int(identity["gid"]))
        log = open(self.root / "dovecot.out", "wb")  # noqa: SIM115 - the process's, closed in stop()
        self._out = log
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot stopped at start-up:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("dovecot.out", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if getattr(self, "_out", None) is not None:
            self._out.close()

    def new_mailbox(self) -> Mailbox:
        """A mailbox no other test used: the next user of the pool, its INBOX empty."""
        number = next(self._users)
        if number > POOL:
            raise RuntimeError(f"more than {POOL} mailboxes asked for: raise POOL")
        return Mailbox(self, *self._user(number))

    def _user(self, number: int) -> tuple[str, str]:
        return f"accounts{number}", f"Pw-{number}-{self._secret}"


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """The session's dovecot (skips where it is not installed, fails on CI)."""
    problem = missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    # Not under pytest's own tmp folder (mode 0700): as root, the mail processes (user dovecot)
    # must reach the maildirs.
    root = Path(tempfile.mkdtemp(prefix="invsync-dovecot-"))
    root.chmod(0o711)
    server = ImapServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(imap_server) -> Mailbox:
    """An empty mailbox of its own for one test."""
    return imap_server.new_mailbox()
