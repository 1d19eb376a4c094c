"""A flow paused by its accounting tool's daily request limit (issue #16).

A connector raises :class:`~connectors.errors.RateLimitPause` (code ``DAILY_LIMIT_REACHED``) when
the vendor's limit leaves no request before ``resume_at``: its client's day window is full, or the
vendor answered 429 with a Retry-After past the bound. The run stops there like on any connection
error (nothing is blamed on a record: the records not yet written stay pending, those whose write
was under way stay ``pushing`` and the next run asks the target for them before writing), but it
ends *paused*, not failed: :func:`run_pause` marks the run and the flow paused until
``resume_at`` and queues one run of the flow then (a django-q2 schedule of type ONCE). Until
then the flow's own schedule (and webhooks, retries) skip it (:func:`flow_paused_until`), and
"Sync now" says why it waits. A run that ends without a pause clears it (:func:`flow_unpause`).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone
from django_q.models import Schedule

from connectors.errors import ErrorCode, InvsyncError
from mappings.models import SyncFlow
from syncs.models import RunStatus, SyncRun
from syncs.run.state import clip

logger = logging.getLogger(__name__)

# The dotted path django-q2 stores in the resume schedule: keep it stable (syncs.tasks).
RUN_FLOW_TASK = "syncs.tasks.run_flow"
# Without a time from the vendor, a pause lasts this long.
DEFAULT_PAUSE = dt.timedelta(hours=1)


def is_pause(error: InvsyncError) -> bool:
    return error.code == ErrorCode.DAILY_LIMIT_REACHED


def resume_time(error: InvsyncError, now: dt.datetime | None = None) -> dt.datetime:
    """When the limit of ``error`` lets the flow resume: the pause's ``resume_at``, else its
    ``retry_after`` from now, else :data:`DEFAULT_PAUSE` from now."""
    now = now or timezone.now()
    resume_at = getattr(error, "resume_at", None)
    if isinstance(resume_at, dt.datetime):
        return resume_at if timezone.is_aware(resume_at) else timezone.make_aware(resume_at, dt.UTC)
    if error.retry_after:
        return now + dt.timedelta(seconds=float(error.retry_after))
    return now + DEFAULT_PAUSE


def resume_schedule_name(flow_id: int) -> str:
    """The name of the one-off django-q2 schedule that resumes a paused flow."""
    return f"flow {flow_id} resume"


def run_pause(run: SyncRun, flow: SyncFlow, error: InvsyncError) -> dt.datetime:
    """End ``run`` paused by ``error`` (a DAILY_LIMIT_REACHED), pause ``flow`` until the limit
    resets and queue its run then. Returns the time it resumes."""
    until = resume_time(error)
    run.status = RunStatus.PAUSED
    run.paused_until = until
    run.error_code = error.code
    run.error_message = clip(error.message)
    run.error_key = getattr(error, "key", "") or ""
    run.error_params = getattr(error, "params", None) or {}
    run.finished_at = timezone.now()
    run.save()
    SyncFlow.objects.filter(pk=flow.pk).update(paused_until=until)
    flow.paused_until = until
    Schedule.objects.update_or_create(
        name=resume_schedule_name(flow.pk),
        defaults={
            "func": RUN_FLOW_TASK,
            # django-q2 literal_evals both: the call run_flow(12, trigger="schedule").
            "args": repr(flow.pk),
            "kwargs": "trigger='schedule'",
            "schedule_type": Schedule.ONCE,
            "repeats": -1,  # a ONCE schedule with negative repeats is deleted once it ran
            "next_run": until,
        },
    )
    logger.info("flow %s paused by its tool's daily limit until %s", flow.pk, until.isoformat())
    return until


def flow_paused_until(flow: SyncFlow, now: dt.datetime | None = None) -> dt.datetime | None:
    """When a paused flow resumes; None when it is not paused (or the pause is over)."""
    until = flow.paused_until
    if until is None or until <= (now or timezone.now()):
        return None
    return until


def flow_unpause(flow: SyncFlow) -> None:
    """A run ended without meeting the limit: the flow is no longer paused (its resume schedule,
    if one is left, finds nothing to wait for)."""
    if SyncFlow.objects.filter(pk=flow.pk, paused_until__isnull=False).update(paused_until=None):
        Schedule.objects.filter(name=resume_schedule_name(flow.pk)).delete()
    flow.paused_until = None
