"""The one retry policy (connectors.retry), deterministic: the sleep and the random source are
injected, nothing waits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.retry import NO_RETRY, Delivery, Retrier, RetryPolicy, Verdict


class Boom(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.delivery)
        self.verdict = verdict


class Flaky:
    """Fails with the given verdicts, in order, then returns "ok"."""

    def __init__(self, *verdicts: Verdict) -> None:
        self.verdicts = list(verdicts)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.verdicts:
            raise Boom(self.verdicts.pop(0))
        return "ok"


def run(policy: RetryPolicy, flaky: Flaky, *, idempotent: bool, sleeps: list[float] | None = None):
    sleeps = [] if sleeps is None else sleeps
    retrier = Retrier(policy, sleep=sleeps.append, rng=random.Random(7))
    return retrier.call(
        flaky, retry_on=Boom, classify=lambda e: e.verdict, idempotent=idempotent, what="test"
    )


NOT_APPLIED = Verdict(Delivery.NOT_APPLIED)
UNKNOWN = Verdict(Delivery.UNKNOWN)
FINAL = Verdict(Delivery.FINAL)


def test_backoff_doubles_within_its_jitter_band_up_to_its_cap():
    policy = RetryPolicy(base_delay=0.5, max_delay=4)
    rng = random.Random(1)
    for retry, ceiling in enumerate([0.5, 1, 2, 4, 4, 4]):
        for _ in range(50):
            assert ceiling / 2 <= policy.backoff(retry, rng) <= ceiling


def test_final_errors_are_never_retried():
    flaky = Flaky(FINAL)
    sleeps: list[float] = []
    with pytest.raises(Boom):
        run(RetryPolicy(), flaky, idempotent=True, sleeps=sleeps)
    assert flaky.calls == 1 and sleeps == []


def test_unknown_outcome_is_retried_for_reads_only():
    assert run(RetryPolicy(), Flaky(UNKNOWN, UNKNOWN), idempotent=True) == "ok"
    write = Flaky(UNKNOWN)
    with pytest.raises(Boom):
        run(RetryPolicy(), write, idempotent=False)
    assert write.calls == 1


def test_not_applied_is_retried_for_writes_too():
    flaky = Flaky(NOT_APPLIED, NOT_APPLIED)
    assert run(RetryPolicy(), flaky, idempotent=False) == "ok"
    assert flaky.calls == 3


def test_attempts_are_bounded_and_the_last_error_propagates_unchanged():
    flaky = Flaky(*[NOT_APPLIED] * 10)
    sleeps: list[float] = []
    with pytest.raises(Boom) as caught:
        run(RetryPolicy(max_attempts=3), flaky, idempotent=True, sleeps=sleeps)
    assert flaky.calls == 3 and len(sleeps) == 2
    assert caught.value.verdict is NOT_APPLIED
    assert run(NO_RETRY, Flaky(), idempotent=True) == "ok"
    once = Flaky(NOT_APPLIED)
    with pytest.raises(Boom):
        run(NO_RETRY, once, idempotent=True)
    assert once.calls == 1


def test_total_wait_is_bounded_the_last_backoff_cut_to_what_is_left():
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=20, base_delay=1, max_delay=100, max_total_delay=5)
    with pytest.raises(Boom):
        run(policy, Flaky(*[NOT_APPLIED] * 30), idempotent=True, sleeps=sleeps)
    assert sum(sleeps) == pytest.approx(5)
    assert len(sleeps) < 20


def test_retry_after_is_obeyed_exactly_not_jittered():
    sleeps: list[float] = []
    verdict = Verdict(Delivery.NOT_APPLIED, retry_after=3)
    assert run(RetryPolicy(), Flaky(verdict), idempotent=False, sleeps=sleeps) == "ok"
    assert sleeps == [3]


@pytest.mark.parametrize(
    ("retry_after", "policy"),
    [
        (61, RetryPolicy(max_retry_after=60)),  # beyond the cap
        (20, RetryPolicy(max_retry_after=60, max_total_delay=10)),  # beyond the budget left
    ],
)
def test_retry_after_longer_than_allowed_gives_up_at_once_rather_than_wait_less(
    retry_after, policy
):
    sleeps: list[float] = []
    flaky = Flaky(Verdict(Delivery.NOT_APPLIED, retry_after=retry_after))
    with pytest.raises(Boom):
        run(policy, flaky, idempotent=True, sleeps=sleeps)
    assert flaky.calls == 1 and sleeps == []


def test_min_delay_is_a_floor_on_the_wait():
    sleeps: list[float] = []
    verdict = Verdict(Delivery.UNKNOWN, min_delay=2.5)
    assert run(RetryPolicy(base_delay=0.1), Flaky(verdict), idempotent=True, sleeps=sleeps) == "ok"
    assert sleeps == [2.5]
    with pytest.raises(Boom):  # a floor beyond the budget: give up
        run(RetryPolicy(max_total_delay=1), Flaky(verdict), idempotent=True)


def test_other_exceptions_pass_through_unclassified():
    def broken() -> str:
        raise KeyError("bug")

    retrier = Retrier(RetryPolicy(), sleep=lambda s: pytest.fail("slept"))
    with pytest.raises(KeyError):
        retrier.call(broken, retry_on=Boom, classify=pytest.fail, idempotent=True)


def test_policy_from_connection_settings():
    policy = RetryPolicy.from_settings(
        {
            "retry_attempts": "2",
            "retry_base_delay": "0.05",
            "retry_max_total_delay": "1.5",
            "retry_after_max": "10",
            "url": "ignored",
        }
    )
    assert policy == RetryPolicy(
        max_attempts=2, base_delay=0.05, max_total_delay=1.5, max_retry_after=10
    )
    assert RetryPolicy.from_settings({}) == RetryPolicy()
    assert RetryPolicy.from_settings({"retry_attempts": "0"}).max_attempts == 1
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="retry_max_total_delay"):
            RetryPolicy.from_settings({"retry_max_total_delay": bad})


verdicts = st.builds(
    Verdict,
    st.sampled_from(list(Delivery)),
    st.one_of(st.none(), st.floats(0, 100)),
    st.floats(0, 20),
)


@settings(max_examples=200, deadline=None)
@given(
    failures=st.lists(verdicts, max_size=15),
    attempts=st.integers(1, 8),
    total=st.floats(0, 60),
    idempotent=st.booleans(),
)
def test_any_failure_sequence_stays_within_the_bounds(failures, attempts, total, idempotent):
    policy = RetryPolicy(max_attempts=attempts, max_total_delay=total, max_retry_after=30)
    flaky = Flaky(*failures)
    sleeps: list[float] = []
    try:
        run(policy, flaky, idempotent=idempotent, sleeps=sleeps)
    except Boom as boom:
        last = boom.verdict
        assert last.delivery is not Delivery.FINAL or flaky.calls == len(sleeps) + 1
    assert flaky.calls <= attempts
    assert sum(sleeps) <= total + 1e-9
    for verdict, wait in zip(failures, sleeps, strict=False):
        assert verdict.delivery is not Delivery.FINAL
        assert idempotent or verdict.delivery is Delivery.NOT_APPLIED
        if verdict.retry_after is not None:
            assert wait >= verdict.retry_after  # never less than the server asked
        assert wait >= verdict.min_delay
