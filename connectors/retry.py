"""One retry policy for every connector.

A failed request is retried only when sending it again cannot do harm, and never for long:

- What a failure tells about the request is its :class:`Delivery`:

  ``NOT_APPLIED``
      The other side certainly did not apply it: the connection was refused (nothing was sent),
      the server rolled it back (Tryton's 503 lock conflict) or refused it unprocessed (429).
      Any call may be sent again.
  ``UNKNOWN``
      It may or may not have been applied: the answer timed out, the connection was dropped after
      the request went out, a 500/502/504 came back. Only idempotent calls (reads) are sent again.
      A write is *not* retried here: its caller resolves the outcome by looking the result up
      first (e.g. ``create_entries`` finds the entries already written by their external ids and
      writes only what is missing), see :attr:`Verdict.min_delay`.
  ``FINAL``
      The answer is final: refused credentials (after one new login), permission denied, not
      found, a business error (Tryton's UserError). Never retried.

- Waits grow exponentially with jitter (each within ``[ceiling/2, ceiling]``, the ceiling
  doubling from ``base_delay`` up to ``max_delay``), for at most ``max_attempts`` tries and
  ``max_total_delay`` seconds of waiting in all for one call.
- A server's ``Retry-After`` is obeyed: the wait is at least what it asks. When it asks for more
  than ``max_retry_after`` or more than what is left of ``max_total_delay``, the call gives up at
  once (the error keeps ``retry_after``; the run stops with a transient code and the next run
  resumes) rather than waiting less than asked.

The clock, the sleep and the random source are injectable, so the policy is tested without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Delivery(StrEnum):
    NOT_APPLIED = "not_applied"  # certainly not applied: any call may be sent again
    UNKNOWN = "unknown"  # maybe applied: only idempotent calls are sent again
    FINAL = "final"  # a final answer: never sent again


@dataclass(frozen=True)
class Verdict:
    """What a failure says about retrying: its delivery, the server's ``Retry-After`` (seconds,
    obeyed as a minimum or not at all) and ``min_delay``, a floor on the wait (e.g. after a
    timed-out write, time for the server to finish what it may still be doing before its outcome
    is looked up)."""

    delivery: Delivery
    retry_after: float | None = None
    min_delay: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries of one call (see the module docstring)."""

    max_attempts: int = 4  # tries in all, the first included (1: never retry)
    base_delay: float = 0.5  # ceiling of the first wait; it doubles on each retry
    max_delay: float = 8.0  # ceiling of one backoff wait
    max_total_delay: float = 30.0  # waits of one call, Retry-After included, add up to this
    max_retry_after: float = 60.0  # the longest Retry-After obeyed; beyond it, give up

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_attempts", max(1, int(self.max_attempts)))
        for name in ("base_delay", "max_delay", "max_total_delay", "max_retry_after"):
            object.__setattr__(self, name, max(0.0, float(getattr(self, name))))

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(max(0, retry), 62))
        return ceiling * (rng or _RANDOM).uniform(0.5, 1.0)

    def delay(
        self,
        verdict: Verdict,
        *,
        idempotent: bool,
        retry: int,
        waited: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """How long to wait before retry number ``retry`` (0-based) of a call that has already
        waited ``waited`` seconds, or None to give up now."""
        if verdict.delivery is Delivery.FINAL:
            return None
        if verdict.delivery is Delivery.UNKNOWN and not idempotent:
            return None
        if retry + 1 >= self.max_attempts:
            return None
        remaining = self.max_total_delay - waited
        if verdict.retry_after is not None:
            asked = max(0.0, verdict.retry_after, verdict.min_delay)
            if verdict.retry_after > self.max_retry_after or asked > remaining:
                return None
            return asked
        wait = max(self.backoff(retry, rng), verdict.min_delay)
        if verdict.min_delay > remaining or remaining <= 0:
            return None
        return min(wait, remaining)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, str], default: RetryPolicy | None = None
    ) -> RetryPolicy:
        """``default`` (or the class defaults) overridden by a connection's optional settings
        (:data:`SETTINGS`): ``retry_attempts`` (tries in all), ``retry_base_delay``,
        ``retry_max_total_delay`` and ``retry_after_max`` (seconds). Raises ValueError naming
        the setting when one is not a non-negative number."""
        policy = default or cls()
        changes: dict[str, float | int] = {}
        for setting, name in SETTINGS.items():
            raw = str(settings.get(setting) or "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not 0 <= value < float("inf"):  # also refuses NaN
                raise ValueError(f"The setting {setting} must be a number ≥ 0, not {raw!r}.")
            changes[name] = int(value) if name == "max_attempts" else value
        return replace(policy, **changes) if changes else policy


# Connection setting -> RetryPolicy field (the settings a connection may override).
SETTINGS: dict[str, str] = {
    "retry_attempts": "max_attempts",
    "retry_base_delay": "base_delay",
    "retry_max_total_delay": "max_total_delay",
    "retry_after_max": "max_retry_after",
}

NO_RETRY = RetryPolicy(max_attempts=1)
_RANDOM = random.Random()  # noqa: S311 - jitter, not crypto


class Retrier:
    """Runs calls under a :class:`RetryPolicy`. Thread-safe (it keeps no state between calls)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng

    def call(
        self,
        attempt: Callable[[], T],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        classify: Callable[[BaseException], Verdict],
        idempotent: bool,
        what: str = "call",
    ) -> T:
        """Return ``attempt()``, calling it again after the failures (of the ``retry_on`` types)
        that ``classify`` and the policy allow; the last failure propagates unchanged."""
        retry = 0
        waited = 0.0
        while True:
            try:
                return attempt()
            except retry_on as failure:
                verdict = classify(failure)
                wait = self.policy.delay(
                    verdict, idempotent=idempotent, retry=retry, waited=waited, rng=self._rng
                )
                if wait is None:
                    if retry:
                        logger.info("%s: giving up after %d tries", what, retry + 1)
                    raise
                retry += 1
                logger.warning(
                    "%s failed (%s); retry %d/%d in %.2f s",
                    what,
                    verdict.delivery,
                    retry,
                    self.policy.max_attempts - 1,
                    wait,
                )
                if wait > 0:
                    self._sleep(wait)
                waited += wait
