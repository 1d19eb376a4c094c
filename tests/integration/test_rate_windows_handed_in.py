"""Connectors take no ORM (issue #12): the shared rate-limit window is an object handed to the
connector by the service that builds it (connectors.selectors.connector_for), and the Tryton
client waits on whatever window it is given, for every request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from connectors.base import AuthKind, ConnectionConfig
from connectors.outbound import OutboundPolicy
from connectors.providers.tryton.client import client_from_config
from connectors.ratelimit import PROCESS_WINDOWS, RateLimiter
from connectors.ratelimit_store import SHARED_WINDOWS, DatabaseRateLimiter, forget_shared_limiters
from connectors.selectors import connector_for
from tests.factories import ConnectionFactory
from tests.unit.test_tryton_client import PASSWORD, FakeTryton, result

SETTINGS = {"url": "http://127.0.0.1:9/", "database": "demo", "rate_limit": "5/1"}
CREDENTIALS = {"username": "alice", "password": PASSWORD}


class NotedWindow:
    """A RateWindow that counts the slots taken."""

    requests, window = 5, 1.0

    def __init__(self) -> None:
        self.taken = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self.taken += 1
        yield


class NotedWindows:
    """RateWindows that note what they were asked and hand out one NotedWindow."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[int, float] | None, float]] = []
        self.noted = NotedWindow()

    def window(self, key: str, limit: tuple[int, float] | None, *, hold: float) -> NotedWindow:
        self.asked.append((key, limit, hold))
        return self.noted


@pytest.fixture
def server() -> Iterator[FakeTryton]:
    fake = FakeTryton()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def _fresh():
    forget_shared_limiters()
    yield
    forget_shared_limiters()


def test_the_client_waits_on_the_windows_handed_in_with_its_config(server):
    windows = NotedWindows()
    config = ConnectionConfig(
        AuthKind.CREDENTIALS, {**SETTINGS, "url": server.url}, CREDENTIALS,
        outbound=OutboundPolicy.from_allow_list(["127.0.0.0/8"]), rate_windows=windows,
    )  # fmt: skip
    client = client_from_config(config)
    assert client.rate_limiter is windows.noted
    ((key, limit, hold),) = windows.asked
    assert limit == (5, 1.0) and hold > 0 and PASSWORD not in key
    server.script["model.a.search"] = [result([1])]
    client.search("a", [])
    assert windows.noted.taken == len(server.requests) == 3  # login, preferences, the call
    client.close()


def test_without_windows_a_client_counts_in_this_process():
    config = ConnectionConfig(AuthKind.CREDENTIALS, SETTINGS, CREDENTIALS)
    limiter = client_from_config(config).rate_limiter
    assert isinstance(limiter, RateLimiter)
    assert PROCESS_WINDOWS.window("x", None) is None


@pytest.mark.django_db(transaction=True)
def test_connector_for_hands_in_the_deployments_shared_windows(settings):
    settings.INVSYNC_RATE_LIMIT_STORE = "database"
    connection = ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings=SETTINGS, credentials=CREDENTIALS,
    )  # fmt: skip
    connector = connector_for(connection)
    assert connector.config.rate_windows is SHARED_WINDOWS
    assert isinstance(connector.client.rate_limiter, DatabaseRateLimiter)
