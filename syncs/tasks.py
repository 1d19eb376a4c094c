"""django-q2 entry points. Their dotted paths are stored in schedules and queued tasks: keep them.

Each takes ids, calls a service, and returns a small summary (never a secret). Each is safe to run
twice: a second run of a flow either waits out the first one's lease or finds nothing left to do.
"""

from __future__ import annotations

from mappings.models import SyncFlow
from syncs.models import RunTrigger
from syncs.run.pause import flow_paused_until
from syncs.services import flow_sync

# Triggers that wait while the flow is paused by its tool's daily limit ("Sync now" says why).
PAUSE_SKIPS = (RunTrigger.SCHEDULE, RunTrigger.WEBHOOK, RunTrigger.RETRY)


def run_flow(flow_id: int, trigger: str = RunTrigger.SCHEDULE) -> dict:
    flow = SyncFlow.objects.filter(pk=flow_id).first()
    if flow is None:
        return {"flow": flow_id, "status": "missing"}
    if trigger in (RunTrigger.SCHEDULE, RunTrigger.WEBHOOK) and not flow.enabled:
        return {"flow": flow_id, "status": "disabled"}
    paused_until = flow_paused_until(flow)
    if paused_until is not None and trigger in PAUSE_SKIPS:
        # The tool's daily limit is reached: the run queued at paused_until resumes the flow.
        return {"flow": flow_id, "status": "paused", "until": paused_until.isoformat()}
    run = flow_sync(flow=flow, trigger=trigger)
    if run is None:
        return {"flow": flow_id, "status": "busy"}
    return {"flow": flow_id, "run": run.pk, "status": run.status, **run.counts()}
