import os

import pytest

from connectors import registry
from connectors.devtools import local_servers
from tests.doubles import MemorySource, MemoryTarget
from tests.factories import UserFactory

# The live Tryton fixtures (installed and started only when a test asks for them).
pytest_plugins = ["tests.tryton_fixtures"]


@pytest.fixture
def admin_client(client):
    """The test client signed in as a superuser named root (pytest-django's own is replaced)."""
    client.force_login(UserFactory(username="root", is_superuser=True))
    return client


@pytest.fixture
def memory_connectors():
    """Register the in-memory source and target (provider key ``memory``) with empty state."""
    MemorySource.reset()
    MemoryTarget.reset()
    with registry.override([MemorySource, MemoryTarget]):
        yield MemorySource, MemoryTarget


@pytest.fixture
def q_sync(settings):
    """Run django-q2 tasks synchronously, in the test's process and transaction."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    from django_q.conf import Conf

    previous = Conf.SYNC
    Conf.SYNC = True
    yield
    Conf.SYNC = previous


@pytest.fixture
def file_db(transactional_db, django_db_blocker, tmp_path):
    """Opt-in: this test's database is a SQLite file, so that another process sees what the test
    commits (and the test what it commits). Yields the file's path; give it to the other process
    as ``DATABASE_URL=sqlite:///<path>``.

    pytest-django creates the test database once per session, in memory for SQLite (its
    ``django_db_modify_db_settings`` hooks are session-wide), so this copies the migrated, empty
    in-memory database into a file (SQLite's backup, as Django's own parallel runner does) and
    points the default connection at it for the test. The in-memory connection is kept open
    aside (closing it would destroy that database) and restored afterwards. Rows are committed
    (``transactional_db``), so the file is simply deleted with ``tmp_path``."""
    import sqlite3

    from django.db import connections

    connection = connections["default"]
    if connection.vendor != "sqlite":
        pytest.skip("file_db is for SQLite test databases")
    path = tmp_path / "db.sqlite3"
    with django_db_blocker.unblock():
        connection.ensure_connection()
        in_memory = connection.connection
        name = connection.settings_dict["NAME"]
        disk = sqlite3.connect(path)
        try:
            in_memory.backup(disk)
        finally:
            disk.close()
        connection.connection = None  # set aside, open: the next query connects to the file
        connection.settings_dict["NAME"] = str(path)
        try:
            yield path
        finally:
            connection.close()
            connection.settings_dict["NAME"] = name
            connection.connection = in_memory


@pytest.fixture(scope="session")
def scale_services():
    """A private PostgreSQL cluster (with a migrated template database: ``fresh_database()``)
    and a private ``redis-server`` (connectors/devtools/local_servers.py), started once for the
    session's tests that need them. Fails when the binaries are missing, unless
    ``INVSYNC_SCALE_UNAVAILABLE=skip``."""
    lacking = local_servers.missing()
    if lacking:
        message = "this test needs: " + "; ".join(lacking)
        if os.environ.get("INVSYNC_SCALE_UNAVAILABLE") == "skip":
            pytest.skip(message)
        pytest.fail(message + " (or set INVSYNC_SCALE_UNAVAILABLE=skip)")
    with local_servers.Services() as running:
        yield running
