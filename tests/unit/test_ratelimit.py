"""The per-connection rate limiter (connectors.ratelimit): deterministic with an injected clock,
plus one check with real threads."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ratelimit import RateLimiter, effective_rate_limit, parse_rate_limit
from connectors.ratelimit_store import forget_shared_limiters, shared_limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("60/60", (60, 60.0)),
        (" 25 / 5s ", (25, 5.0)),
        ("500/1m", (500, 60.0)),
        ("100/h", (100, 3600.0)),
        ("10/0.5", (10, 0.5)),
        ("none", None),
        ("off", None),
        ("0", None),
        ("1000000/86400", (1_000_000, 86400.0)),
    ],
)
def test_parse_rate_limit(text, limit):
    assert parse_rate_limit(text) == limit


@pytest.mark.parametrize(
    "text",
    [
        "fast", "60", "60/", "/60", "60/0", "-1/60", "60/60/60",
        # No request per window, an empty window, or numbers no vendor means.
        "0/0", "0/60", "5/0", "5/0.0", "0/h", "-5/-5", "1000001/60", "9" * 40 + "/60",
        "60/" + "9" * 400, "60/86401", "60/25h", "60/0.0001",
    ],
)  # fmt: skip
def test_malformed_rate_limits_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate_limit(text)


def test_a_connection_setting_overrides_the_connector_default():
    assert effective_rate_limit(None, (60, 60.0)) == (60, 60.0)
    assert effective_rate_limit("", (60, 60.0)) == (60, 60.0)
    assert effective_rate_limit("10/1", (60, 60.0)) == (10, 1.0)
    assert effective_rate_limit("none", (60, 60.0)) is None


def test_a_full_window_makes_the_next_request_wait_for_the_oldest_to_leave_it():
    clock = FakeClock()
    limiter = RateLimiter(3, 10, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        with limiter.slot():
            clock.now += 1  # each request takes a second
    assert clock.slept == [] and clock.now == 3
    with limiter.slot():
        pass
    # The first request ended at t=1: its slot frees at t=11.
    assert clock.slept == [8] and clock.now == 11
    assert limiter.waited == 8


def test_the_window_counts_from_when_a_request_ended():
    """A slow request followed by fast ones: counting from send times would let two requests
    reach the server less than a window apart."""
    clock = FakeClock()
    limiter = RateLimiter(1, 10, clock=clock, sleep=clock.sleep)
    with limiter.slot():
        clock.now += 7  # a slow answer
    with limiter.slot():
        start = clock.now
    assert start == 17


def test_failed_requests_hold_their_slot_too():
    clock = FakeClock()
    limiter = RateLimiter(1, 5, clock=clock, sleep=clock.sleep)
    with pytest.raises(OSError), limiter.slot():
        raise OSError("connection refused")
    with limiter.slot():
        pass
    assert clock.now == 5


@settings(max_examples=150, deadline=None)
@given(
    requests=st.integers(1, 6),
    window=st.floats(0.5, 20),
    traffic=st.lists(st.tuples(st.floats(0, 8), st.floats(0, 3)), min_size=1, max_size=40),
)
def test_no_window_ever_sees_more_than_the_limit(requests, window, traffic):
    """Whenever the server receives each request (any moment between send and answer), at most
    ``requests`` of them fall in any window: checked at both ends of every request."""
    clock = FakeClock()
    limiter = RateLimiter(requests, window, clock=clock, sleep=clock.sleep)
    spans = []
    for gap, duration in traffic:
        clock.now += gap
        with limiter.slot():
            start = clock.now
            clock.now += duration
            spans.append((start, clock.now))
    for pick in (0, 1):
        moments = sorted(span[pick] for span in spans)
        for i in range(len(moments) - requests):
            assert moments[i + requests] - moments[i] >= window - 1e-6
    # Mixed ends: a request's end and the next ones' starts.
    for i, (_, end) in enumerate(spans):
        later = [s for s, _ in spans[i + 1 :]]
        if len(later) >= requests:
            assert later[requests - 1] - end >= window - 1e-6


def test_threads_share_the_window():
    limiter = RateLimiter(4, 0.25)
    stamps: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            with limiter.slot():
                start = time.monotonic()
                time.sleep(0.01)
                end = time.monotonic()
            with lock:
                stamps.append((start, end))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(stamps) == 16
    starts = sorted(start for start, _ in stamps)
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 0.25 - 1e-3
    # 16 requests at 4 per 0.25 s: three full windows to wait, not much more.
    assert 0.75 <= time.monotonic() - started < 3


def test_in_flight_requests_hold_the_window_until_they_end():
    limiter = RateLimiter(1, 0.05)
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow() -> None:
        with limiter.slot():
            entered.set()
            release.wait(5)
            order.append("slow ended")

    thread = threading.Thread(target=slow)
    thread.start()
    entered.wait(5)
    waiter = threading.Thread(target=lambda: (limiter.acquire(), order.append("next sent")))
    waiter.start()
    time.sleep(0.15)  # three windows: still blocked by the request in flight
    assert order == []
    release.set()
    thread.join(5)
    waiter.join(5)
    assert order == ["slow ended", "next sent"]
    limiter.release()


def test_one_shared_limiter_per_connection_and_limit():
    forget_shared_limiters()
    first = shared_limiter("tryton\nhttp://h/\ndb\nadmin", (10, 1.0))
    assert shared_limiter("tryton\nhttp://h/\ndb\nadmin", (10, 1.0)) is first
    assert shared_limiter("tryton\nhttp://h/\nother\nadmin", (10, 1.0)) is not first
    assert shared_limiter("tryton\nhttp://h/\ndb\nadmin", (20, 1.0)) is not first
    assert shared_limiter("tryton\nhttp://h/\ndb\nadmin", None) is None
    forget_shared_limiters()
