"""A private PostgreSQL 15 cluster and a private ``redis-server`` for one session, on 127.0.0.1,
in a temporary directory: what the scale-out test (tests/integration/test_scale_out.py, through
the ``scale_services`` fixture) and the scale-out benchmark (bench/scale.py) run on.

    with Services() as services:        # cluster + redis + a migrated template database
        url = services.fresh_database()  # postgres://...: a copy of the template
        env = services.env(url)          # DATABASE_URL, REDIS_URL, settings, ... for a child

PostgreSQL is started by :meth:`TrytonSandbox.start_postgres` (as root, through ``runuser`` as a
system user). :func:`missing` says what the machine lacks; :meth:`Services.start` raises
:class:`Unavailable` then. Development tool: not shipped in the wheel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from connectors.devtools.tryton.sandbox import PROJECT_ROOT, TrytonSandbox, free_port

TEMPLATE = "invsync_scale_template"
PG_ROLE = "invsync"


class Unavailable(RuntimeError):
    """PostgreSQL 15, redis-server or a Python package the scale-out runs need is missing."""


def missing() -> list[str]:
    """What this machine lacks to run the scale-out services (empty: nothing)."""
    lacking = []
    if not (TrytonSandbox._find_pg_bin() / "pg_ctl").exists():
        lacking.append("PostgreSQL 15 server binaries (Debian: postgresql-15)")
    if not shutil.which("redis-server"):
        lacking.append("redis-server (Debian: redis-server)")
    for module, package in (("psycopg", "psycopg[binary]"), ("redis", "redis")):
        if importlib.util.find_spec(module) is None:
            lacking.append(f"the Python package {package}")
    return lacking


class Services:
    """A private PostgreSQL cluster and Redis server, and a template database migrated with
    ``settings`` (any settings of this project: the schema is invsync's)."""

    def __init__(self, settings: str = "invsync.settings") -> None:
        self.settings = settings
        self.root: Path | None = None
        self.sandbox: TrytonSandbox | None = None
        self.redis_process: subprocess.Popen | None = None
        self.redis_url = ""
        self.databases = 0

    def __enter__(self) -> Services:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        lacking = missing()
        if lacking:
            raise Unavailable("missing: " + "; ".join(lacking))
        self.root = Path(tempfile.mkdtemp(prefix="invsync-scale-"))
        self.root.chmod(0o755)  # PostgreSQL's system user must reach root/pg
        (self.root / "var").mkdir()
        self.sandbox = TrytonSandbox(root=self.root, verbose=False)
        self.sandbox.start_postgres()
        self._start_redis()
        self.sandbox.sql(f"CREATE DATABASE {TEMPLATE}")
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=PROJECT_ROOT, env=self.env(self.database_url(TEMPLATE)), capture_output=True,
            text=True, timeout=600, check=False,
        )  # fmt: skip
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")

    def _start_redis(self) -> None:
        port = free_port()
        log = open(self.root / "redis.log", "wb")  # noqa: SIM115 - closed with the process
        self.redis_process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [  # noqa: S607 - redis-server from PATH, as missing() looks for it
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.root),
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.redis_process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "redis-server did not start:\n" + (self.root / "redis.log").read_text()
                    ) from None
                time.sleep(0.05)
            finally:
                client.close()

    def database_url(self, name: str) -> str:
        return f"postgres://{PG_ROLE}@127.0.0.1:{self.sandbox.pg_port}/{name}"

    def fresh_database(self) -> str:
        """A new database copied from the migrated template; returns its URL."""
        self.databases += 1
        name = f"invsync_scale_{self.databases}"
        self.sandbox.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.database_url(name)

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """The environment of every process of a run: same database, same Redis, same settings
        (``extra`` last: ``DJANGO_SETTINGS_MODULE=...`` there wins)."""
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings,
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "INVSYNC_VAR_DIR": str(self.root / "var"),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
            ),
            **extra,
        }

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def stop(self) -> None:
        if self.redis_process is not None:
            stop_process(self.redis_process, timeout=10)
            self.redis_process = None
        if self.sandbox is not None:
            self.sandbox.stop_postgres()
            self.sandbox = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def stop_process(process: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM (a qcluster then finishes its tasks and stops), then SIGKILL its process group
    (the process was started in a session of its own: the group is its id)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
