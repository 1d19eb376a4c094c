"""A throw-away Tryton 8.2 installation: the live peer of the integration tests and the local demo.

Importable from invsync's own virtualenv, which has no trytond: Tryton lives in a virtualenv of
its own (default ``<root>/venv``) so that its dependencies never mix with Django's. Everything
runs as child processes of that venv, a private PostgreSQL 15 cluster and ``trytond``.

    sb = TrytonSandbox(root=Path("var/tryton"))
    sb.ensure_installed()              # venv + trytond & modules (skipped when already there)
    sb.start_postgres()                # private cluster (reused when already running)
    sb.ensure_templates()              # template databases (cached by a build key)
    db = sb.new_database("accounting")  # createdb -T <template>: a fresh copy
    url = sb.start_server([db])        # trytond -c CONF -d db ...  -> "http://127.0.0.1:PORT/"
    sb.manifest("invoicing")           # what the invoicing template holds (invoice numbers, ...)
    sb.stop()                          # server, drop copies, then PostgreSQL if started here

    # A test session (see tests/tryton_fixtures.py): one server over a pool of copies.
    url = sb.serve(shared=["invoicing"], fresh={"accounting": 6})
    sb.shared_database("invoicing")    # one copy for the session, read-only by convention
    sb.fresh_database("accounting")    # an unused, already served copy (refills the pool)

CLI (the one-command demo): ``python -m connectors.devtools.tryton.sandbox up --root var/tryton``
(``--json`` prints url/databases/login/password as JSON; ``--reset`` recreates the demo databases;
the server port is the previous one, else 8765, else a free one, or ``--port``), ``... down``,
``... status [--json]``, ``... build`` (install and build the templates only), ``... clean`` (drop
leftover test copies).

The server is ours before anything talks to it: the trytond we started (its own session, so its
pid is its process group) must hold every socket listening on its port (``/proc/net/tcp{,6}``
inodes against ``/proc/<pid>/fd``). A port another program holds, found before the start or
while trytond starts, raises ``PortTakenError`` naming that program, or moves to a free port where
no port was asked for; no request is ever sent to it. ``demo_status`` and the test fixtures
(``verify_server``) check the same before each use, and the demo databases must accept the root's
random demo password (another Tryton with the same database names does not).

Layout of ``root``: ``venv/`` (marker ``venv/invsync-installed.json``), ``pg/`` (cluster: ``data/``,
``run/`` socket dir, ``postgres.log``; moved under the system temp dir when the PostgreSQL user
cannot reach ``root``), ``templates/<key>/{accounting,invoicing}.json`` (manifests) and build logs,
``etc/`` (trytond configuration files), ``log/``, ``admin-password`` (TRYTONPASSFILE: the admin
password of the templates and test copies, random per root; ``admin`` in roots built before, kept
so their templates stay valid), ``demo-password`` (the demo databases' admin password, random per
root, set on them by ``up``), ``demo.json`` (what ``up`` started).

PostgreSQL refuses to run as root: when root, the cluster runs as the system user ``invsync-pg``
(created with ``useradd --system`` if missing, else the distribution's ``postgres`` user) through
``runuser``; otherwise as the current user. Trust authentication, listening on 127.0.0.1 only,
``fsync=off`` and friends (the data is disposable). The database role is ``invsync``.

Templates. A base database gets the modules (``trytond-admin --all``: ~51 s on a 2-core machine),
then two templates are copied from it and built in parallel by ``sandbox_build.py`` run with the
Tryton venv's Python (proteus directly on the database): ``accounting`` (~16 s) and ``invoicing``
(~55 s: the 37 invoices of ``sample_invoices.json`` created and posted one by one). Template
names carry a key hashing the installed versions, the admin password, the build script and the
sample invoices it reads (``sample_invoices.py``, ``sample_invoices.json``), this module's
``BUILD_FORMAT`` and the current year (fiscal years are derived from today), so a later session
on the same root reuses them (0.3 s) and a change rebuilds them. Stale templates are dropped.
From nothing (no venv, no cluster) to a served pool: about 2 min 20 s (install 18 s, initdb +
start 1 s, base 51 s, roles 55 s, copies and server start 5 s).

Per-test databases — what was measured (Tryton 8.2.1, PostgreSQL 15, 2 cores):

- ``createdb --strategy=file_copy -T template`` takes 0.04-0.25 s (38 MB); ``dropdb`` 0.02 s.
- A database created after ``trytond`` started cannot be logged into: the first request's
  ``Cache.sync`` instantiates ``Pool(db)``, which registers an empty pool, so the lazy
  initialisation in ``security._get_pool`` is skipped and login answers ``KeyError: 'res.user'``
  until a restart (a trytond 8.2 bug, not a configuration matter). Its database list is also
  cached for ``[session] timeout`` (300 s). So every database must be named with ``-d``.
- ``trytond -d`` initialises each database's pool before it listens: ready after about
  0.3 s + 0.53 s per database (1: 0.8 s, 2: 1.3 s, 4: 2.5 s, 8: 4.7 s, 16: 8.9 s); RSS about
  65 MB + 12 MB per database; stopping takes 0.05 s; a first login 0.12-0.16 s.
- Restarting the server for each test with its databases would cost ~1.4 s a test and cut
  any connection in flight. Chosen approach: a pool. ``serve()`` copies the templates (shared,
  read-only roles once; a batch of fresh copies per writable role) and starts one server naming
  them all; ``fresh_database(role)`` hands out an unused copy. When a role's batch is used up, a
  new batch is copied and the server restarted on the same port with the shared and unused
  databases plus the new batch (used ones are then dropped). Cost per fresh database: ~0.6 s
  amortised, paid in batches, with no patch to trytond. Sessions (``ir.session``) live in the
  databases, so a client's login survives a restart.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

TRYTON_SERIES = ">=8.2,<8.3"
TRYTON_DISTRIBUTIONS = [
    "trytond",
    "trytond-account",
    "trytond-account-invoice",
    "trytond-account-fr",
    "trytond-account-eu",
    "trytond-party-siret",
    "proteus",
]
# trytond's PostgreSQL backend imports psycopg_pool: the "pool" extra is required.
# No SOAP library (zeep): with one installed, every eu_vat identifier triggers an online VIES check.
REQUIREMENTS = [f"{name}{TRYTON_SERIES}" for name in TRYTON_DISTRIBUTIONS] + [
    "psycopg[binary,pool]>=3.2",
]
MODULES = ["account_fr", "account_invoice", "party_siret", "account_eu"]
ROLES = ("accounting", "invoicing")
# Bump to invalidate every cached template (e.g. after changing how they are made here).
BUILD_FORMAT = 1

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin"]
PG_SYSTEM_USER = "invsync-pg"
PG_ROLE = "invsync"
ADMIN_LOGIN = "admin"
DEMO_DATABASES = {"accounting": "invsync_accounting", "invoicing": "invsync_invoicing"}
# The demo's connections store the URL: keep the port stable (the previous one, else this one).
DEMO_SERVER_PORT = 8765
TEST_DB_PREFIX = "invsync_t_"
TEMPLATE_PREFIX = "invsync_tpl_"
BUILD_SCRIPT = Path(__file__).with_name("sandbox_build.py")
# What the build reads besides itself: a change to any of them rebuilds the templates.
BUILD_INPUTS = [
    BUILD_SCRIPT,
    Path(__file__).with_name("sample_invoices.py"),
    Path(__file__).with_name("sample_invoices.json"),
]
PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ROOT = PROJECT_ROOT / "var" / "tryton"


class SandboxError(RuntimeError):
    """The sandbox could not be installed, started or built; the message says what to look at."""


class PortTakenError(SandboxError):
    """Another program listens on the port our trytond was to serve: we never talk to it."""

    def __init__(self, port: int, holders: Sequence[tuple[int | None, str]]) -> None:
        self.port = port
        self.holders = list(holders)
        described = ", ".join(
            f"pid {pid} ({command[:160]})" if pid else command for pid, command in self.holders
        )
        super().__init__(
            f"port {port} is taken by another program: {described or 'unknown process'}; "
            "stop it or choose another port (--port)"
        )


@dataclass
class Timings:
    """Seconds spent per step, for reports (``None`` when the step did not run)."""

    install: float | None = None
    postgres_start: float | None = None
    template_base: float | None = None
    template_roles: float | None = None
    copies: list[float] = field(default_factory=list)
    server_starts: list[tuple[int, float]] = field(default_factory=list)  # (databases, seconds)
    templates_cached: bool | None = None

    def summary(self) -> str:
        def fmt(value):
            return "-" if value is None else f"{value:.1f}s"

        parts = [f"install {fmt(self.install)}", f"postgres {fmt(self.postgres_start)}"]
        if self.templates_cached:
            parts.append("templates cached")
        else:
            parts.append(f"template base {fmt(self.template_base)}")
            parts.append(f"template roles {fmt(self.template_roles)}")
        if self.copies:
            parts.append(
                f"{len(self.copies)} copies avg {sum(self.copies) / len(self.copies):.3f}s"
            )
        if self.server_starts:
            starts = ", ".join(f"{n} dbs {s:.1f}s" for n, s in self.server_starts)
            parts.append(f"server starts [{starts}]")
        return "; ".join(parts)


@dataclass
class _Server:
    process: subprocess.Popen | None
    pid: int
    port: int
    databases: list[str]
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listening_inodes(port: int) -> set[int] | None:
    """Inodes of the TCP sockets listening on ``port`` (any address, IPv4 and IPv6).

    Read from ``/proc/net/tcp{,6}`` (Linux); ``None`` where those tables do not exist.
    """
    inodes: set[int] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ... inode (0A: LISTEN)
            if len(fields) < 10 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes if readable else None


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds (empty when it is gone or unreadable)."""
    inodes = set()
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def port_holders(port: int) -> list[tuple[int | None, str]] | None:
    """The processes listening on ``port``: [(pid, command line)]; ``None`` without /proc.

    A listening socket whose process cannot be read (another user's) is ``(None, "...")``.
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    holders: list[tuple[int | None, str]] = []
    left = set(inodes)
    for entry in os.scandir("/proc"):
        if not left:
            break
        if not entry.name.isdigit():
            continue
        held = _socket_inodes(int(entry.name)) & left
        if held:
            holders.append((int(entry.name), _command_line(int(entry.name))))
            left -= held
    if left:
        holders.append((None, "a process this user cannot inspect"))
    return holders


def port_binding(pid: int, port: int) -> tuple[str, list[tuple[int | None, str]]]:
    """Who listens on ``port``, seen from the server process ``pid`` (a session leader).

    ``("ours", [])``: ``pid`` or its process group holds every listening socket; ``("nobody",
    [])``: nothing listens; ``("foreign", holders)``: another program does; ``("unknown", [])``:
    no ``/proc`` to tell. Cheap in the usual case: only ``pid``'s own fds are read.
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return "unknown", []
    if not inodes:
        return "nobody", []
    if inodes <= _socket_inodes(pid):
        return "ours", []
    foreign = []
    for holder, command in port_holders(port) or []:
        if holder == pid:
            continue
        with contextlib.suppress(OSError):
            if holder is not None and os.getpgid(holder) == pid:
                continue
        foreign.append((holder, command))
    return ("foreign", foreign) if foreign else ("ours", [])


def server_identity_problem(pid: int, port: int, config: Path | str | None = None) -> str | None:
    """Why the trytond we started as ``pid`` (with ``config``) is not what serves ``port``;
    ``None`` when it is."""
    if not _pid_alive(pid):
        return f"its process {pid} is gone"
    command = _command_line(pid)
    if "trytond" not in command or (config and str(config) not in command):
        return f"process {pid} is no longer our trytond ({command})"
    binding, foreign = port_binding(pid, port)
    if binding == "foreign":
        return str(PortTakenError(port, foreign))
    if binding == "nobody":
        return f"process {pid} does not listen on port {port}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def rpc_call(
    url: str,
    database: str | None,
    method: str,
    params: list,
    *,
    session: str | None = None,
    timeout: float = 60,
) -> object:
    """One raw JSON-RPC call (stdlib only). Raises ``SandboxError`` on a Tryton error."""
    endpoint = url.rstrip("/") + (f"/{database}/rpc/" if database else "/rpc/")
    headers = {"Content-Type": "application/json"}
    if session:
        headers["Authorization"] = f"Session {session}"
    body = json.dumps({"id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        payload = json.loads(response.read())
    if "error" in payload:
        raise SandboxError(f"{method} on {database}: {str(payload['error'])[:500]}")
    return payload["result"]


class TrytonSandbox:
    """One sandbox root: its Tryton venv, its PostgreSQL cluster, templates and servers.

    Not thread-safe; one object per process. Several processes may share a root: installs
    and template builds take a file lock, a running cluster is reused (and then not stopped
    by the process that merely reused it).
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        venv: Path | str | None = None,
        pg_bin: Path | str | None = None,
        pg_port: int | None = None,
        server_port: int | None = None,
        admin_password: str | None = None,
        python: str | None = None,
        verbose: bool = True,
    ) -> None:
        self.root = Path(root or os.environ.get("INVSYNC_TRYTON_ROOT") or DEFAULT_ROOT).resolve()
        self.venv = Path(venv).resolve() if venv else self.root / "venv"
        self.pg_bin = Path(pg_bin) if pg_bin else self._find_pg_bin()
        self.requested_pg_port = pg_port
        self.requested_server_port = server_port
        # None: the root's own (random, made on first use), read lazily from ``admin-password``.
        self._admin_password = admin_password
        self.python = python or os.environ.get("INVSYNC_TRYTON_PYTHON") or sys.executable
        self.verbose = verbose
        self.timings = Timings()
        self.pg_port: int | None = None
        self.pg_socket_dir: Path | None = None
        self._pg_started_here = False
        self._pg_dir: Path | None = None
        self._server: _Server | None = None
        self._counter = 0
        self._shared: dict[str, str] = {}
        self._fresh: dict[str, deque[str]] = {}
        self._batch: dict[str, int] = {}
        self._used: list[str] = []
        self._created: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def _log(self, message: str) -> None:
        if self.verbose:
            print(f"[tryton-sandbox] {message}", file=sys.stderr, flush=True)

    @staticmethod
    def _find_pg_bin() -> Path:
        override = os.environ.get("INVSYNC_PG_BIN")
        candidates = [override] if override else PG_BIN_CANDIDATES
        for candidate in candidates:
            if candidate and (Path(candidate) / "pg_ctl").exists():
                return Path(candidate)
        found = shutil.which("pg_ctl")
        if found:
            return Path(found).parent
        return Path(candidates[0] or PG_BIN_CANDIDATES[0])

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _secret(self, name: str) -> str:
        """The secret stored in ``root/name``, made (random, mode 0600) on first use."""
        path = self.root / name
        with contextlib.suppress(FileNotFoundError):
            value = path.read_text().strip()
            if value:
                return value
        with self._lock("secrets"):
            with contextlib.suppress(FileNotFoundError):
                value = path.read_text().strip()
                if value:
                    return value
            value = secrets.token_urlsafe(18)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(value + "\n")
            return value

    @property
    def admin_password(self) -> str:
        """The admin password of the templates and of every copy the tests use.

        Random per root (``root/admin-password``, made with the root). A root built when it was
        the fixed ``admin`` keeps that password: its templates are keyed by it, and the demo
        databases get their own random one anyway (``demo_password``).
        """
        if self._admin_password is None:
            self._admin_password = self._secret("admin-password")
        return self._admin_password

    @property
    def password_file(self) -> Path:
        """``root/admin-password`` holding ``admin_password`` (TRYTONPASSFILE of the builds)."""
        path = self.root / "admin-password"
        password = self.admin_password
        if not path.exists() or path.read_text().strip() != password:
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(password + "\n")
            path.chmod(0o600)
        return path

    @property
    def demo_password_file(self) -> Path:
        return self.root / "demo-password"

    @property
    def demo_password(self) -> str:
        """The admin password of the demo databases: random per root, in ``root/demo-password``.

        Logging in with it is how a client tells our demo server from another Tryton holding
        databases of the same names: only ours accepts it.
        """
        return self._secret("demo-password")

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    def _run(
        self,
        args: Sequence[str | os.PathLike],
        *,
        env: dict | None = None,
        log: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        args = [str(a) for a in args]
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                result = subprocess.run(  # noqa: S603
                    args,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
        else:
            result = subprocess.run(  # noqa: S603
                args,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        if check and result.returncode != 0:
            detail = f"see {log}" if log else (result.stderr or result.stdout or "")[-2000:]
            raise SandboxError(f"command failed ({result.returncode}): {' '.join(args)}\n{detail}")
        return result

    # ------------------------------------------------------------------ 1. install

    def _installed_marker(self) -> Path:
        return self.venv / "invsync-installed.json"

    def installed_versions(self) -> dict[str, str]:
        """Versions recorded by ``ensure_installed`` (empty when not installed)."""
        try:
            data = json.loads(self._installed_marker().read_text())
        except (OSError, ValueError):
            return {}
        return data.get("versions", {}) if data.get("requirements") == REQUIREMENTS else {}

    def ensure_installed(self) -> dict[str, str]:
        """Create the Tryton venv and install ``REQUIREMENTS`` unless the marker says done.

        Returns the installed versions. About 20 s on a fresh machine with PyPI reachable.
        """
        versions = self.installed_versions()
        if versions and (self.venv / "bin" / "trytond").exists():
            return versions
        with self._lock("install"):
            versions = self.installed_versions()
            if versions and (self.venv / "bin" / "trytond").exists():
                return versions
            started = time.monotonic()
            log = self.root / "log" / "install.log"
            if not self.venv_python.exists():
                self._log(f"creating the Tryton virtualenv {self.venv}")
                self._run([self.python, "-m", "venv", self.venv], log=log)
            self._log("installing trytond and modules (pip)")
            self._run(
                [
                    self.venv_python,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    *REQUIREMENTS,
                ],
                log=log,
                timeout=1800,
            )
            probe = (
                "import importlib.metadata as m, importlib.util as u, json;"
                f"names={[*TRYTON_DISTRIBUTIONS, 'psycopg', 'psycopg-pool']!r};"
                "print(json.dumps({'versions': {n: m.version(n) for n in names},"
                " 'zeep': u.find_spec('zeep') is not None}))"
            )
            result = self._run([self.venv_python, "-c", probe])
            probed = json.loads(result.stdout)
            if probed["zeep"]:
                # Present from an earlier hand-made install: it would make eu_vat identifiers
                # query VIES online. Remove it rather than let tests depend on the network.
                self._run([self.venv_python, "-m", "pip", "uninstall", "-y", "zeep"], log=log)
            versions = probed["versions"]
            self._installed_marker().write_text(
                json.dumps({"requirements": REQUIREMENTS, "versions": versions}, indent=2) + "\n"
            )
            self.timings.install = time.monotonic() - started
            self._log(f"installed in {self.timings.install:.1f}s: trytond {versions['trytond']}")
            return versions

    # ------------------------------------------------------------------ 2. PostgreSQL

    def _pg_user(self) -> str | None:
        """The system user to run PostgreSQL as (``None``: the current user)."""
        if os.geteuid() != 0:
            return None
        for user in (PG_SYSTEM_USER,):
            if self._user_exists(user):
                return user
        result = self._run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=False,
        )
        if result.returncode == 0 or self._user_exists(PG_SYSTEM_USER):
            return PG_SYSTEM_USER
        if self._user_exists("postgres"):
            return "postgres"
        raise SandboxError(f"cannot create the system user {PG_SYSTEM_USER}: {result.stderr}")

    @staticmethod
    def _user_exists(user: str) -> bool:
        import pwd

        try:
            pwd.getpwnam(user)
        except KeyError:
            return False
        return True

    def _as_pg_user(self, args: Sequence[str | os.PathLike]) -> list[str]:
        user = self._pg_user()
        args = [str(a) for a in args]
        return ["runuser", "-u", user, "--", *args] if user else args

    def _pg_dir_candidates(self) -> list[Path]:
        digest = _sha(str(self.root))[:10]
        return [self.root / "pg", Path(tempfile.gettempdir()) / f"invsync-tryton-pg-{digest}"]

    def _prepare_pg_dir(self) -> Path:
        """A directory the PostgreSQL user owns and can reach (``root/pg`` when possible)."""
        user = self._pg_user()
        for candidate in self._pg_dir_candidates():
            if (candidate / "data" / "PG_VERSION").exists():
                return candidate
        for candidate in self._pg_dir_candidates():
            candidate.mkdir(parents=True, exist_ok=True)
            (candidate / "run").mkdir(exist_ok=True)
            if user is None:
                return candidate
            import pwd

            entry = pwd.getpwnam(user)
            for path in (candidate, candidate / "run"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
                path.chmod(0o700)
            probe = self._run(
                ["runuser", "-u", user, "--", "test", "-w", candidate / "run"], check=False
            )
            # The unix socket path (dir + "/.s.PGSQL.NNNNN") must stay under 107 bytes.
            if probe.returncode == 0 and len(str(candidate / "run")) < 90:
                return candidate
            self._log(f"{user} cannot use {candidate}; trying the next location")
        raise SandboxError(f"no directory usable by {user} for the PostgreSQL cluster")

    def _running_cluster(self, pg_dir: Path) -> tuple[int, Path] | None:
        """(port, socket dir) of a cluster already running on ``pg_dir/data``, if any."""
        pid_file = pg_dir / "data" / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (OSError, PermissionError):
            return None
        if len(lines) < 5 or not lines[0].strip().isdigit() or not _pid_alive(int(lines[0])):
            return None
        status = self._run(
            self._as_pg_user([self.pg_bin / "pg_ctl", "status", "-D", pg_dir / "data"]), check=False
        )
        if status.returncode != 0:
            return None
        return int(lines[3]), Path(lines[4])

    def start_postgres(self) -> int:
        """Start (or reuse) the private cluster; returns its port. About 1 s, 3 s with initdb."""
        if self.pg_port:
            return self.pg_port
        if not (self.pg_bin / "pg_ctl").exists():
            raise SandboxError(
                f"PostgreSQL server binaries not found in {self.pg_bin} (install the Debian "
                "package postgresql-15, or set INVSYNC_PG_BIN)"
            )
        started = time.monotonic()
        with self._lock("postgres"):
            pg_dir = self._prepare_pg_dir()
            self._pg_dir = pg_dir
            running = self._running_cluster(pg_dir)
            if running:
                self.pg_port, self.pg_socket_dir = running
                self._log(f"reusing PostgreSQL on port {self.pg_port}")
                return self.pg_port
            data = pg_dir / "data"
            if not (data / "PG_VERSION").exists():
                self._log(f"initdb {data}")
                self._run(
                    self._as_pg_user(
                        [
                            self.pg_bin / "initdb",
                            "-D",
                            data,
                            "-U",
                            PG_ROLE,
                            "--auth=trust",
                            "--encoding=UTF8",
                            "--locale=C",
                            "--no-sync",
                        ]
                    )
                )
            port = self.requested_pg_port or free_port()
            socket_dir = pg_dir / "run"
            options = " ".join(
                [
                    f"-p {port}",
                    f"-k {socket_dir}",
                    "-c listen_addresses=127.0.0.1",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=300",
                    "-c shared_buffers=128MB",
                ]
            )
            self._run(
                self._as_pg_user(
                    [
                        self.pg_bin / "pg_ctl",
                        "start",
                        "-w",
                        "-t",
                        "60",
                        "-D",
                        data,
                        "-l",
                        pg_dir / "postgres.log",
                        "-o",
                        options,
                    ]
                )
            )
            self.pg_port, self.pg_socket_dir = port, socket_dir
            self._pg_started_here = True
        self.timings.postgres_start = time.monotonic() - started
        self._log(f"PostgreSQL started on port {self.pg_port} ({self.timings.postgres_start:.1f}s)")
        return self.pg_port

    def stop_postgres(self, *, force: bool = False) -> None:
        """Stop the cluster if this object started it (or always with ``force``)."""
        if not (self._pg_started_here or force):
            return
        pg_dir = self._pg_dir or next(
            (c for c in self._pg_dir_candidates() if (c / "data" / "PG_VERSION").exists()), None
        )
        if pg_dir and self._running_cluster(pg_dir):
            self._run(
                self._as_pg_user(
                    [self.pg_bin / "pg_ctl", "stop", "-w", "-m", "fast", "-D", pg_dir / "data"]
                ),
                check=False,
            )
        self.pg_port = None
        self._pg_started_here = False

    def _pg_cli(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        if not self.pg_port:
            raise SandboxError("PostgreSQL is not started (call start_postgres first)")
        return self._run(
            [
                self.pg_bin / tool,
                "-h",
                str(self.pg_socket_dir),
                "-p",
                str(self.pg_port),
                "-U",
                PG_ROLE,
                *args,
            ],
            check=check,
        )

    def sql(self, query: str, database: str = "postgres") -> list[str]:
        """Run one SQL statement through psql; returns the output rows (unaligned)."""
        result = self._pg_cli(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", query
        )
        return [line for line in result.stdout.splitlines() if line]

    def list_databases(self, prefix: str = "") -> list[str]:
        return [
            name
            for name in self.sql("SELECT datname FROM pg_database ORDER BY datname")
            if name.startswith(prefix)
        ]

    def database_exists(self, name: str) -> bool:
        return name in self.list_databases(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection left to it (PostgreSQL 13+ ``--force``)."""
        self._pg_cli("dropdb", "--if-exists", "--force", name)
        self._created.discard(name)

    def copy_database(self, source: str, name: str) -> str:
        started = time.monotonic()
        self._pg_cli("createdb", "--strategy=file_copy", "-T", source, name)
        self.timings.copies.append(time.monotonic() - started)
        return name

    # ------------------------------------------------------------------ 3. templates

    def _config_text(self, web_port: int | None = None) -> str:
        lines = [
            "[database]",
            f"uri = postgresql://{PG_ROLE}@127.0.0.1:{self.pg_port}/",
            # Several databases per server: keep each pool small.
            "maxconn = 16",
            "[session]",
            # The tests log in often from one address; keep the rate limit out of their way.
            "max_attempt = 1000",
        ]
        if web_port:
            lines += ["[web]", f"listen = 127.0.0.1:{web_port}"]
        return "\n".join(lines) + "\n"

    def write_config(self, name: str = "build", web_port: int | None = None) -> Path:
        path = self.root / "etc" / f"trytond-{name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self._config_text(web_port))
        return path

    def base_key(self) -> str:
        versions = self.installed_versions() or self.ensure_installed()
        return _sha(
            json.dumps(versions, sort_keys=True),
            " ".join(MODULES),
            str(BUILD_FORMAT),
            self.admin_password,
        )[:10]

    def template_key(self) -> str:
        inputs = [path.read_bytes() for path in BUILD_INPUTS]
        return _sha(self.base_key(), *inputs, str(date.today().year))[:10]

    def template_name(self, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        return f"{TEMPLATE_PREFIX}{role}_{self.template_key()}"

    def _template_dir(self) -> Path:
        return self.root / "templates" / self.template_key()

    def templates_ready(self) -> bool:
        directory = self._template_dir()
        existing = set(self.list_databases(TEMPLATE_PREFIX))
        return all(
            self.template_name(role) in existing and (directory / f"{role}.json").exists()
            for role in ROLES
        )

    def ensure_templates(self, *, force: bool = False) -> dict[str, str]:
        """Build the base, accounting and invoicing templates unless cached; {role: name}."""
        self.ensure_installed()
        self.start_postgres()
        names = {role: self.template_name(role) for role in ROLES}
        if not force and self.templates_ready():
            if self.timings.templates_cached is None:
                self.timings.templates_cached = True
            return names
        with self._lock("templates"):
            if not force and self.templates_ready():
                if self.timings.templates_cached is None:
                    self.timings.templates_cached = True
                return names
            self.timings.templates_cached = False
            self._drop_stale_templates()
            base = self._ensure_base()
            self._build_roles(base, force=force)
        return names

    def copy_templates_from(self, other: TrytonSandbox) -> dict[str, str]:
        """Take ``other`` root's built templates instead of building them (for a second root
        in one session: a few seconds against minutes): its admin password (so the same
        template key), each role's template database (``pg_dump | pg_restore`` between the two
        clusters) and the manifests. Both roots must use the same Tryton installation."""
        names = other.ensure_templates()
        self._admin_password = other.admin_password
        self.password_file  # noqa: B018 - writes root/admin-password (mode 600)
        self.start_postgres()
        if self.template_key() != other.template_key():
            raise SandboxError("the two roots' Tryton installations differ: build instead")
        for name in names.values():
            self.drop_database(name)
            self._pg_cli("createdb", "--encoding=UTF8", "--template=template0", name)
            dump = subprocess.Popen(  # noqa: S603
                [
                    other.pg_bin / "pg_dump", "-h", str(other.pg_socket_dir), "-p",
                    str(other.pg_port), "-U", PG_ROLE, "--format=custom", name,
                ],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            restored = subprocess.run(  # noqa: S603
                [
                    self.pg_bin / "pg_restore", "-h", str(self.pg_socket_dir), "-p",
                    str(self.pg_port), "-U", PG_ROLE, "--no-owner", "-d", name,
                ],
                stdin=dump.stdout, capture_output=True, text=True, check=False,
            )  # fmt: skip
            dump.stdout.close()
            if dump.wait() != 0 or restored.returncode != 0:
                raise SandboxError(f"copying template {name} failed: {restored.stderr[-2000:]}")
        directory = self._template_dir()
        directory.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            shutil.copy2(other._template_dir() / f"{role}.json", directory / f"{role}.json")
        return names

    def _drop_stale_templates(self) -> None:
        keep = {self.template_name(role) for role in ROLES}
        keep.add(f"{TEMPLATE_PREFIX}base_{self.base_key()}")
        for name in self.list_databases(TEMPLATE_PREFIX):
            if name not in keep:
                self._log(f"dropping stale template {name}")
                self.drop_database(name)
        templates = self.root / "templates"
        if templates.exists():
            for directory in templates.iterdir():
                if directory.name != self.template_key():
                    shutil.rmtree(directory, ignore_errors=True)

    def _ensure_base(self) -> str:
        base = f"{TEMPLATE_PREFIX}base_{self.base_key()}"
        if self.database_exists(base):
            return base
        building = f"{base}_building"
        self.drop_database(building)
        self._pg_cli("createdb", "--encoding=UTF8", "--template=template0", building)
        config = self.write_config("build")
        log = self._template_dir() / "base.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log(f"initialising the base database (trytond-admin, ~1 min): log {log}")
        started = time.monotonic()
        env = {**os.environ, "TRYTONPASSFILE": str(self.password_file)}
        self._run(
            [
                self.venv / "bin" / "trytond-admin",
                "-c",
                config,
                "-d",
                building,
                "--all",
                "-u",
                *MODULES,
                "--activate-dependencies",
                "--email",
                "admin@example.com",
            ],
            env=env,
            log=log,
            timeout=1800,
        )
        self.sql(f'ALTER DATABASE "{building}" RENAME TO "{base}"')
        self.timings.template_base = time.monotonic() - started
        self._log(f"base database ready in {self.timings.template_base:.1f}s")
        return base

    def _build_roles(self, base: str, *, force: bool) -> None:
        config = self.write_config("build")
        directory = self._template_dir()
        directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        processes = []
        for role in ROLES:
            final = self.template_name(role)
            manifest = directory / f"{role}.json"
            if not force and self.database_exists(final) and manifest.exists():
                continue
            building = f"{final}_building"
            self.drop_database(building)
            self.drop_database(final)
            self.copy_database(base, building)
            log = directory / f"{role}.log"
            log.write_text("")
            self._log(f"building the {role} template: log {log}")
            with open(log, "ab") as out:
                process = subprocess.Popen(  # noqa: S603
                    [
                        str(self.venv_python),
                        str(BUILD_SCRIPT),
                        "--config",
                        str(config),
                        "--database",
                        building,
                        "--role",
                        role,
                        "--manifest",
                        str(manifest.with_suffix(".json.tmp")),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append((role, process, building, final, manifest, log))
        failures = []
        for role, process, building, final, manifest, log in processes:
            if process.wait(timeout=1800) != 0:
                failures.append(f"{role} (see {log})")
                continue
            self.sql(f'ALTER DATABASE "{building}" RENAME TO "{final}"')
            os.replace(manifest.with_suffix(".json.tmp"), manifest)
        if failures:
            raise SandboxError("template build failed: " + ", ".join(failures))
        self.timings.template_roles = time.monotonic() - started
        self._log(f"templates built in {self.timings.template_roles:.1f}s")

    def manifest(self, role: str) -> dict:
        """The JSON manifest written by the build of ``role``'s template (see sandbox_build)."""
        path = self._template_dir() / f"{role}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SandboxError(f"no manifest for {role}: call ensure_templates() first") from None
        data["template"] = self.template_name(role)
        return data

    # ------------------------------------------------------------------ 4. copies

    def new_database(self, role: str, name: str | None = None) -> str:
        """A fresh copy of ``role``'s template (``createdb -T``, ~0.05 s); returns its name.

        A running server does not see it until restarted with it in its list (see module doc).
        """
        if name is None:
            self._counter += 1
            name = f"{TEST_DB_PREFIX}{role}_{os.getpid()}_{self._counter}"
        self.copy_database(self.template_name(role), name)
        self._created.add(name)
        return name

    def drop_stale_test_databases(self) -> list[str]:
        """Drop test copies left by processes that are gone (crashed sessions)."""
        dropped = []
        for name in self.list_databases(TEST_DB_PREFIX):
            parts = name[len(TEST_DB_PREFIX) :].split("_")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
            if pid is None or (pid != os.getpid() and not _pid_alive(pid)):
                self.drop_database(name)
                dropped.append(name)
        return dropped

    # ------------------------------------------------------------------ 5. server

    def start_server(
        self,
        databases: Iterable[str],
        *,
        port: int | None = None,
        verify: bool = True,
        timeout: float | None = None,
        other_port_if_taken: bool | None = None,
    ) -> str:
        """Start ``trytond -d <databases>``; wait until it answers; return its URL.

        The server is ours before anything talks to it: the process we started must be the
        one listening on the port (``/proc``), so a program that took the port first (or
        during the build) is never sent a request. Then ``PortTakenError`` names it, unless
        ``other_port_if_taken`` (default: when no port was asked for, by ``port`` or the
        constructor) lets us start on a free port instead.

        ``verify`` logs into every database once (~0.2 s each) so a database the server
        failed to load shows up here rather than in a test.
        """
        databases = list(dict.fromkeys(databases))
        if not databases:
            raise ValueError("trytond needs at least one database (-d)")
        if self._server:
            raise SandboxError("a server is already running; use restart_server()")
        port = port or self.requested_server_port
        if other_port_if_taken is None:
            other_port_if_taken = port is None
        port = port or free_port()
        for attempt in range(4):
            try:
                url = self._start_server_on(databases, port, timeout)
                break
            except PortTakenError as error:
                if not other_port_if_taken or attempt == 3:
                    raise
                port = free_port()
                self._log(f"{error}; using port {port} instead")
        if verify:
            for database in databases:
                self.login(database)
        return url

    def _start_server_on(self, databases: list[str], port: int, timeout: float | None) -> str:
        holders = port_holders(port)
        if holders:
            raise PortTakenError(port, holders)
        config = self.write_config(f"server-{port}", web_port=port)
        log = self.root / "log" / f"trytond-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(log, "ab") as out:
            process = subprocess.Popen(  # noqa: S603
                [str(self.venv / "bin" / "trytond"), "-c", str(config), "-d", *databases],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = _Server(process, process.pid, port, databases, config, log)
        self._server = server
        limit = timeout or 60 + 5 * len(databases)
        self._wait_ready(server, limit)
        elapsed = time.monotonic() - started
        self.timings.server_starts.append((len(databases), elapsed))
        self._log(f"trytond ready on {server.url} with {len(databases)} databases ({elapsed:.1f}s)")
        return server.url

    def _wait_ready(self, server: _Server, limit: float) -> None:
        """Wait until our process listens on the port and answers; never ask anyone else."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            binding, foreign = port_binding(server.pid, server.port)
            if binding == "foreign":
                self.stop_server()
                raise PortTakenError(server.port, foreign)
            if server.process is not None and server.process.poll() is not None:
                self._server = None
                holders = port_holders(server.port)
                if holders:  # another program bound the port between our check and trytond
                    raise PortTakenError(server.port, holders)
                tail = server.log.read_text(errors="replace")[-3000:]
                raise SandboxError(f"trytond exited ({server.process.returncode}):\n{tail}")
            # Without /proc ("unknown") the pid cannot be matched to the port: the login with
            # our password (``verify``, the demo's own password) is then the only proof.
            if binding in ("ours", "unknown"):
                try:
                    rpc_call(server.url, None, "common.server.version", [], timeout=2)
                    return
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.1)
        self.stop_server()
        raise SandboxError(f"trytond did not answer within {limit:.0f}s (see {server.log})")

    def verify_server(self) -> None:
        """Raise ``SandboxError`` unless the server this object started is alive and is the
        process listening on its port (checked before the tests use it)."""
        server = self._server
        if server is None:
            raise SandboxError("no server running")
        problem = server_identity_problem(server.pid, server.port, server.config)
        if problem:
            raise SandboxError(f"the Tryton server at {server.url} is not ours: {problem}")

    @property
    def server_url(self) -> str | None:
        return self._server.url if self._server else None

    @property
    def served_databases(self) -> list[str]:
        return list(self._server.databases) if self._server else []

    def stop_server(self) -> None:
        server, self._server = self._server, None
        if not server:
            return
        _terminate(server.pid, server.process)

    def restart_server(self, databases: Iterable[str]) -> str:
        """Stop and start the server on the same port with another database list.

        The clients hold the URL: if another program took the port meanwhile, this fails
        (``PortTakenError``) rather than move.
        """
        port = self._server.port if self._server else None
        self.stop_server()
        return self.start_server(databases, port=port, other_port_if_taken=False)

    def login(
        self, database: str, url: str | None = None, *, password: str | None = None
    ) -> tuple[int, str]:
        """Log in as admin over JSON-RPC; returns (uid, token)."""
        url = url or self.server_url
        if not url:
            raise SandboxError("no server running")
        password = self.admin_password if password is None else password
        uid, token, *_ = rpc_call(
            url, database, "common.db.login", [ADMIN_LOGIN, {"password": password}, "en"]
        )
        return uid, token

    # ------------------------------------------------------------------ 6. pooled databases

    def serve(
        self, *, shared: Iterable[str] = ("invoicing",), fresh: dict[str, int] | None = None
    ) -> str:
        """Copy the templates and start one server for a test session; returns its URL.

        ``shared``: roles with one copy for the whole session (``shared_database(role)``),
        to be treated as read-only. ``fresh``: {role: batch size} of single-use copies handed
        out by ``fresh_database(role)``. Default: a shared invoicing copy, batches of 6
        accounting and 2 invoicing copies.
        """
        fresh = {"accounting": 6, "invoicing": 2} if fresh is None else dict(fresh)
        self.ensure_templates()
        for role in shared:
            self._shared[role] = self.new_database(role)
        for role, size in fresh.items():
            self._batch[role] = max(1, size)
            self._fresh[role] = deque(self.new_database(role) for _ in range(self._batch[role]))
        return self.start_server(self._pool_list())

    def _pool_list(self) -> list[str]:
        names = list(self._shared.values())
        for queue in self._fresh.values():
            names.extend(queue)
        return names

    def shared_database(self, role: str) -> str:
        try:
            return self._shared[role]
        except KeyError:
            raise SandboxError(f"no shared {role} database: pass it to serve(shared=...)") from None

    def fresh_database(self, role: str) -> str:
        """An unused copy of ``role``'s template, already served. Refills when empty."""
        if role not in self._fresh:
            self._fresh[role] = deque()
            self._batch[role] = 2
        if not self._fresh[role]:
            self._refill(role)
        name = self._fresh[role].popleft()
        self._used.append(name)
        return name

    def _refill(self, role: str) -> None:
        self._fresh[role].extend(self.new_database(role) for _ in range(self._batch[role]))
        used, self._used = self._used, []
        self.restart_server(self._pool_list())
        for name in used:
            self.drop_database(name)

    # ------------------------------------------------------------------ lifecycle

    def stop(self, *, drop_databases: bool = True) -> None:
        """Stop the server, drop the copies this object made, stop PostgreSQL if started here."""
        self.stop_server()
        if drop_databases and self.pg_port:
            for name in sorted(self._created):
                with contextlib.suppress(SandboxError):
                    self.drop_database(name)
        self._shared.clear()
        self._fresh.clear()
        self._used.clear()
        self.stop_postgres()

    def __enter__(self) -> TrytonSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ demo (CLI)

    @property
    def demo_state_file(self) -> Path:
        return self.root / "demo.json"

    def demo_up(self, *, reset: bool = False) -> dict:
        """Everything for the local demo, left running in the background; returns its state.

        The demo databases persist across ``down``/``up`` (so does what the demo wrote into
        them); ``reset`` recreates them from the current templates. Success means the server is
        proven ours: the trytond we started listens on the port (``/proc``) and accepts the
        demo password. The port is the previous one, else 8765, else a free one; a port another
        program holds is never used (with ``--port``: ``PortTakenError`` names it).
        """
        state = self.demo_status()
        if state.get("running") and not reset:
            self._secure_demo_databases(state["url"])
            state.pop("running")
            state.update(login=ADMIN_LOGIN, password_file=str(self.demo_password_file))
            self.demo_state_file.write_text(json.dumps(state, indent=2) + "\n")
            return {**state, "running": True}
        if state.get("pid") and _is_our_trytond(state["pid"], state.get("config")):
            _terminate(state["pid"], None)
        port = self.requested_server_port or next(
            (p for p in (state.get("port"), DEMO_SERVER_PORT) if p and port_is_free(p)), None
        )
        self.ensure_installed()
        self.start_postgres()
        self.ensure_templates()
        for role, name in DEMO_DATABASES.items():
            if reset:
                self.drop_database(name)
            if not self.database_exists(name):
                self.copy_database(self.template_name(role), name)
                self._log(f"created {name} from {self.template_name(role)}")
        # The port was free before the build (minutes): whoever took it since is not asked
        # anything; start_server moves to a free port unless one was asked for.
        try:
            url = self.start_server(
                DEMO_DATABASES.values(),
                port=port,
                verify=False,
                other_port_if_taken=not self.requested_server_port,
            )
            self._secure_demo_databases(url)
        except BaseException:  # an error or Ctrl-C: no trytond left running unrecorded
            self.stop_server()
            raise
        server = self._server
        assert server is not None
        state = {
            "url": url,
            "pid": server.pid,
            "port": server.port,
            "log": str(server.log),
            "config": str(server.config),
            "postgres_port": self.pg_port,
            "postgres_dir": str(self._pg_dir),
            "databases": DEMO_DATABASES,
            "login": ADMIN_LOGIN,
            "password_file": str(self.demo_password_file),
            "templates": {role: self.template_name(role) for role in ROLES},
        }
        self.demo_state_file.write_text(json.dumps(state, indent=2) + "\n")
        (self.root / "trytond.pid").write_text(f"{server.pid}\n")
        # Leave both running: this process is only the launcher.
        self._server = None
        self._pg_started_here = False
        state["running"] = True
        return state

    def _secure_demo_databases(self, url: str) -> None:
        """Log into each demo database with the demo password; a copy still holding the
        template's password (new, or from a root made before) gets the demo password first."""
        password = self.demo_password
        for name in DEMO_DATABASES.values():
            with contextlib.suppress(SandboxError, OSError):
                self.login(name, url, password=password)
                continue
            try:
                uid, token = self.login(name, url)
            except (SandboxError, OSError):
                raise SandboxError(
                    f"the demo database {name} at {url} accepts neither the demo password "
                    f"({self.demo_password_file}) nor the template's; `up --reset` recreates it"
                ) from None
            session = base64.b64encode(f"{ADMIN_LOGIN}:{uid}:{token}".encode()).decode()
            rpc_call(
                url,
                name,
                "model.res.user.write",
                [[uid], {"password": password}, {}],
                session=session,
            )
            self.login(name, url, password=password)
            self._log(
                f"{name}: admin password set to the demo password ({self.demo_password_file})"
            )

    def demo_status(self) -> dict:
        """The state ``up`` recorded, with ``running`` true only when the server is proven ours
        (the recorded trytond is alive, listens on the port alone and answers); otherwise
        ``problem`` says why. Nothing is sent to a port another program holds."""
        try:
            state = json.loads(self.demo_state_file.read_text())
        except (OSError, ValueError):
            return {}
        if not state.get("pid") or not state.get("port"):
            problem = "no server recorded"
        else:
            problem = server_identity_problem(state["pid"], state["port"], state.get("config"))
        if problem is None and not _answers(state.get("url", "")):
            problem = "the server does not answer"
        state["running"] = problem is None
        if problem:
            state["problem"] = problem
        return state

    def demo_down(self) -> None:
        state = self.demo_status()
        if state.get("pid") and _is_our_trytond(state["pid"], state.get("config")):
            _terminate(state["pid"], None)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "trytond.pid").unlink()
        with contextlib.suppress(FileNotFoundError):
            self.demo_state_file.unlink()
        self.stop_postgres(force=True)


def _is_our_trytond(pid: int, config: str | None) -> bool:
    """``pid`` runs trytond with our configuration file (not a recycled pid)."""
    command = _command_line(pid)
    return "trytond" in command and (not config or str(config) in command)


def _answers(url: str) -> bool:
    try:
        rpc_call(url, None, "common.server.version", [], timeout=2)
    except (OSError, urllib.error.URLError, SandboxError, ValueError):
        return False
    return True


def _terminate(pid: int, process: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM the server's process group, then SIGKILL after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=5)


# ---------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.devtools.tryton.sandbox",
        description="Local Tryton 8.2 sandbox: private PostgreSQL, template databases, trytond.",
    )
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "build", "clean"],
        help="up: install, build, create the demo databases and start trytond "
        "in the background; down: stop trytond and PostgreSQL; status; "
        "build: only install and build the templates; clean: drop "
        "leftover test databases",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"sandbox directory (default $INVSYNC_TRYTON_ROOT or {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"up: trytond port (default: the previous one, else {DEMO_SERVER_PORT}, else a free "
        "one; a port another program holds is never used)",
    )
    parser.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (default: free)")
    parser.add_argument(
        "--password",
        default=None,
        help="admin password of the templates and test copies (default: the root's own, "
        "random, in <root>/admin-password; the demo databases use <root>/demo-password)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="up: recreate the demo databases from the templates"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="up/status: print the state as JSON (url, databases, login, ...)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    sandbox = TrytonSandbox(
        args.root,
        pg_port=args.pg_port,
        server_port=args.port,
        admin_password=args.password,
        verbose=not args.quiet,
    )
    try:
        if args.command == "up":
            state = sandbox.demo_up(reset=args.reset)
            if args.json:
                print(json.dumps({**state, "password": sandbox.demo_password}, indent=2))
                return 0
            print(f"Tryton is running at {state['url']}  (pid {state['pid']}, log {state['log']})")
            for role, name in state["databases"].items():
                print(f"  {role:<10} database: {name}")
            print(
                f"  login: {state['login']}  password: {sandbox.demo_password} "
                f"(stored in {state['password_file']})"
            )
            print(
                f"  PostgreSQL on 127.0.0.1:{state['postgres_port']}  "
                f"(stop all with: python -m connectors.devtools.tryton.sandbox down)"
            )
        elif args.command == "down":
            sandbox.demo_down()
            print("Tryton sandbox stopped")
        elif args.command == "status":
            state = sandbox.demo_status()
            if args.json or state.get("running"):
                print(json.dumps(state, indent=2) if state else "{}")
            else:
                print(f"not running: {state.get('problem', 'never started')}")
            return 0 if state.get("running") else 3
        elif args.command == "build":
            sandbox.ensure_templates()
            for role in ROLES:
                print(f"{role}: {sandbox.template_name(role)}")
            sandbox.stop()
        elif args.command == "clean":
            sandbox.start_postgres()
            dropped = sandbox.drop_stale_test_databases()
            print(f"dropped {len(dropped)} leftover test databases")
            sandbox.stop()
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
