"""Several windows and a concurrency cap (connectors.ratelimit.Limits, issue #16): each window
honoured, per account or over the app, the cap, the pause instead of a long sleep, the 429 past
the bound. Deterministic: an injected clock and sleep (no real waiting), threads only where
requests in flight are the point, synchronised by events."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import ErrorCode, RateLimitPause
from connectors.http import Action, ErrorRow, ErrorTable, HttpClient, HttpError
from connectors.ratelimit import (
    APP,
    Limits,
    ProcessWindows,
    Window,
    effective_limits,
)
from connectors.retry import RetryPolicy

DAY = 86_400.0
XERO_LIKE = Limits((Window(60, 60), Window(5_000, DAY), Window(10_000, 60, per=APP)), concurrency=5)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= 900, seconds  # never a long sleep: that is a pause
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def windows(clock) -> ProcessWindows:
    return ProcessWindows(clock=clock, sleep=clock.sleep)


def send(limiter, clock: FakeClock, times: int, duration: float = 0.0) -> list[float]:
    """Send ``times`` pretend requests one after the other; returns when each was sent."""
    sent = []
    for _ in range(times):
        with limiter.slot():
            sent.append(clock.now)
            clock.now += duration
    return sent


def busiest(sent: list[float], seconds: float) -> int:
    return max(sum(1 for t in sent if start <= t < start + seconds) for start in sent)


def test_every_declared_window_is_honoured(windows, clock):
    limits = Limits((Window(3, 10), Window(5, 100)))
    limiter = windows.limiter("tenant-a", limits)
    sent = send(limiter, clock, 12)
    assert busiest(sent, 10) == 3  # the short window binds, and is never exceeded
    assert busiest(sent, 100) == 5  # so does the long one
    # 12 requests at 5 per 100 s: the last one waited two long windows.
    assert sent[-1] - sent[0] >= 200


@settings(max_examples=40, deadline=None)
@given(
    short=st.integers(1, 6),
    long=st.integers(1, 12),
    durations=st.lists(st.floats(0, 3), min_size=1, max_size=30),
)
def test_no_window_ever_sees_more_than_its_limit(short, long, durations):
    clock = FakeClock()
    limiter = ProcessWindows(clock=clock, sleep=clock.sleep).limiter(
        "k", Limits((Window(short, 5), Window(long, 50)))
    )
    spans = []
    for duration in durations:
        with limiter.slot():
            began = clock.now
            clock.now += duration
            spans.append((began, clock.now))
    # The server receives a request between its send and its end: count every request whose
    # span meets a window, at the worst start (some request's end).
    for requests_allowed, seconds in ((short, 5), (long, 50)):
        worst = max(sum(1 for s, e in spans if s < t + seconds and e >= t) for _, t in spans)
        assert worst <= requests_allowed


def test_account_windows_are_per_tenant_and_app_windows_shared(windows, clock):
    limits = Limits((Window(2, 60), Window(3, 60, per=APP)))
    first = windows.limiter("xero\ntenant-1", limits, app_key="xero\nclient-id")
    second = windows.limiter("xero\ntenant-2", limits, app_key="xero\nclient-id")
    send(first, clock, 2)
    assert not clock.slept
    send(second, clock, 1)  # tenant 2's own window is empty; the app has one left
    assert not clock.slept
    send(second, clock, 1)  # the app's window is full: waits although tenant 2 sent one
    assert clock.slept == [pytest.approx(60, abs=0.01)]
    # Another app (another OAuth client) counts on its own.
    other_app = windows.limiter("xero\ntenant-3", limits, app_key="xero\nother-client")
    clock.slept.clear()
    send(other_app, clock, 2)
    assert not clock.slept


def test_limiters_of_one_account_share_its_windows(windows, clock):
    limits = Limits((Window(2, 30),))
    send(windows.limiter("acct", limits), clock, 2)
    send(windows.limiter("acct", limits), clock, 1)  # a second client of the same account
    assert clock.slept == [pytest.approx(30, abs=0.01)]


def test_a_full_day_window_pauses_instead_of_sleeping_and_takes_nothing(windows, clock):
    limits = Limits((Window(100, 60), Window(4, DAY)))
    limiter = windows.limiter("tenant", limits)
    started = clock.now
    send(limiter, clock, 4, duration=1.0)
    with pytest.raises(RateLimitPause) as caught:
        limiter.acquire()
    pause = caught.value
    assert pause.code == ErrorCode.DAILY_LIMIT_REACHED and pause.is_transient
    # The first request (ended at started + 1 s) leaves the day window a day later.
    assert pause.resume_at == dt.datetime.fromtimestamp(started + 1 + DAY, dt.UTC)
    assert not clock.slept  # nothing slept
    # Nothing was taken: the minute window still has its room once the day frees.
    clock.now = started + 1 + DAY + 1
    send(limiter, clock, 1)
    assert not clock.slept


def test_a_wait_within_the_bound_is_slept(windows, clock):
    limiter = windows.limiter("t", Limits((Window(1, 600),), pause_after=900))
    send(limiter, clock, 2)
    assert clock.slept == [pytest.approx(600, abs=0.01)]
    strict = windows.limiter("u", Limits((Window(1, 600),), pause_after=300))
    send(strict, clock, 1)
    with pytest.raises(RateLimitPause):
        strict.acquire()


def test_the_concurrency_cap_holds_requests_in_flight_at_most():
    windows = ProcessWindows()
    limiter = windows.limiter("tenant", Limits(concurrency=2))
    first, second = limiter.acquire(), limiter.acquire()  # noqa: F841 - held in flight
    taken = threading.Event()
    thread = threading.Thread(target=lambda: (limiter.acquire(), taken.set()), daemon=True)
    thread.start()
    assert not taken.wait(0.2)  # two in flight: the third waits
    limiter.release()
    assert taken.wait(5)  # one ended: the third goes at once (no window to wait for)
    thread.join(5)
    # Another tenant has its own cap.
    other = windows.limiter("tenant-2", Limits(concurrency=2))
    other.acquire()
    other.acquire()


def test_xero_like_limits_take_a_slot_everywhere_and_free_the_lease(windows, clock):
    limiter = windows.limiter("xero\ntenant", XERO_LIKE, app_key="xero\napp")
    send(limiter, clock, 60)
    assert not clock.slept
    send(limiter, clock, 1)  # the 61st of the minute waits for the minute to pass
    assert clock.slept == [pytest.approx(60, abs=0.01)]
    assert limiter._flights == [0]  # every lease released


def test_the_connection_setting_replaces_the_window_of_its_length():
    limits = effective_limits("30/60", XERO_LIKE)
    assert Window(30, 60) in limits.windows and Window(60, 60) not in limits.windows
    assert Window(5_000, DAY) in limits.windows and limits.concurrency == 5
    # The app's window of the same length stays: the setting is about the account.
    assert Window(10_000, 60, per=APP) in limits.windows
    assert effective_limits("100/h", XERO_LIKE).windows[0] == Window(100, 3600)
    assert effective_limits("none", XERO_LIKE) is None
    assert effective_limits("", XERO_LIKE) is XERO_LIKE
    assert effective_limits("10/1", None) == Limits((Window(10, 1),))
    with pytest.raises(ValueError):
        effective_limits("fast", XERO_LIKE)


def test_limits_are_checked_when_declared():
    with pytest.raises(ValueError):
        Window(0, 60)
    with pytest.raises(ValueError):
        Window(5, 60, per="tenant")
    with pytest.raises(ValueError):
        Limits(concurrency=0)
    assert Limits.single((60, 60)) == Limits((Window(60, 60),))
    assert ProcessWindows().limiter("k", None) is None


# -- a vendor's 429 past the bound ----------------------------------------------------------


class Answering:
    """An HttpSession stand-in answering every request with one status and headers."""

    timeout = 5.0

    def __init__(self, status: int, **headers: str) -> None:
        self.status, self.headers, self.sent = status, headers, 0

    def send(self, method, url, **kwargs):
        self.sent += 1
        response = requests.Response()
        response.status_code = self.status
        response.headers.update(self.headers)
        response._content = b"{}"
        return response

    def close(self):
        pass


TABLE = ErrorTable(
    rows=(ErrorRow(ErrorCode.RATE_LIMITED, "{vendor} limits.", Action.RATE_LIMITED, status=429),),
    default=ErrorRow(ErrorCode.UNEXPECTED, "{vendor} answered HTTP {status}."),
)


def client_answering(status: int, **headers: str) -> tuple[HttpClient, Answering]:
    http = Answering(status, **headers)
    client = HttpClient(
        "https://api.example/", "Acme", TABLE, http=http, sleep=lambda s: None,
        retry=RetryPolicy(max_attempts=3, max_retry_after=60),
    )  # fmt: skip
    return client, http


def test_a_429_asking_for_hours_pauses_the_flow_without_retrying():
    client, http = client_answering(429, **{"Retry-After": "7200"})
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(RateLimitPause) as caught:
        client.request("POST", "Invoices", json={})
    assert http.sent == 1
    waited = (caught.value.resume_at - before).total_seconds()
    assert 7200 <= waited < 7200 + 60


def test_a_429_within_the_bound_stays_a_rate_limit_error():
    client, http = client_answering(429, **{"Retry-After": "600"})
    with pytest.raises(HttpError) as caught:
        client.request("GET", "Invoices")
    assert caught.value.code == ErrorCode.RATE_LIMITED and http.sent == 1
