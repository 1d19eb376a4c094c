"""Two worker processes refresh one connection's refused access token at the same instant against
an authorization server that rotates refresh tokens (connectors/devtools/oauth_server.py, each
refresh held 0.5 s so that the two overlap): the token store's row lock makes it one refresh at
the server, and both workers proceed with the new token. Without the store (each worker refreshing
on its own, ``--naive``) the second spends a dead refresh token: the check can fail.

On a SQLite file (always) and on PostgreSQL (real row locks; marker ``scale``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.devtools.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    with OAuthServer() as running:
        running.refresh_delay = 0.5
        yield running


def run(database_url: str, server: OAuthServer, *args: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "DATABASE_URL": database_url,
        "INVSYNC_OAUTH_PENNYLANE_CLIENT_ID": CLIENT_ID,
        "INVSYNC_OAUTH_PENNYLANE_CLIENT_SECRET": CLIENT_SECRET,
        "INVSYNC_OAUTH_PENNYLANE_BASE_URL": server.url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.oauth_refresh_worker", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def race(database_url: str, server: OAuthServer, *flags: str) -> list[dict]:
    connection = report(run(database_url, server, "setup"))
    server.expire_access_tokens()  # the vendor refuses the stored access token: both refresh
    start = time.time() + 2.5  # once both have set Django up
    workers = [
        run(
            database_url,
            server,
            "refresh",
            str(connection["id"]),
            connection["access_token"],
            "--start",
            str(start),
            *flags,
        )
        for _ in range(2)
    ]
    return [report(worker) for worker in workers]


def assert_one_refresh_both_proceed(results: list[dict], server: OAuthServer) -> None:
    assert all(result.get("status") == 200 for result in results), results
    assert results[0]["token"] == results[1]["token"]
    assert server.stats.refreshes == 1 and server.stats.refused_refreshes == 0


def test_two_processes_on_sqlite_refresh_once_and_both_proceed(file_db, server):
    assert_one_refresh_both_proceed(race(f"sqlite:///{file_db}", server), server)


def test_two_processes_refreshing_on_their_own_spend_a_dead_refresh_token(file_db, server):
    results = race(f"sqlite:///{file_db}", server, "--naive")
    assert server.stats.refused_refreshes == 1
    # social-core's code for a refresh token the vendor refuses (invalid_grant)
    assert [r.get("error") for r in results].count("reauthentication_required") == 1, results


@pytest.mark.scale
def test_two_processes_on_postgresql_refresh_once_and_both_proceed(scale_services, server):
    assert_one_refresh_both_proceed(race(scale_services.fresh_database(), server), server)


@pytest.mark.scale
def test_a_refresh_inside_a_transaction_that_rolls_back_is_kept_on_postgresql(
    scale_services, server
):
    # The vendor killed the old refresh token: losing the new one with the caller's rollback
    # would leave the connection with a dead grant.
    database = scale_services.fresh_database()
    connection = report(run(database, server, "setup"))
    server.expire_access_tokens()
    refreshed = report(
        run(
            database,
            server,
            "refresh",
            str(connection["id"]),
            connection["access_token"],
            "--rolled-back",
        )
    )
    assert refreshed["status"] == 200 and server.stats.refreshes == 1
    stored = report(run(database, server, "show", str(connection["id"])))
    assert stored["access_token"] == refreshed["token"]
