"""django-q2 entry points. Their dotted paths are stored in schedules and queued tasks: keep them.

Each takes ids, calls a service, and returns a small summary (never a secret). Each is safe to run
twice: a second run of a flow either waits out the first one's lease or finds nothing left to do.
"""

from __future__ import annotations

from mappings.models import SyncFlow
from syncs.models import RunTrigger
from syncs.services import flow_sync


def run_flow(flow_id: int, trigger: str = RunTrigger.SCHEDULE) -> dict:
    flow = SyncFlow.objects.filter(pk=flow_id).first()
    if flow is None:
        return {"flow": flow_id, "status": "missing"}
    if trigger in (RunTrigger.SCHEDULE, RunTrigger.WEBHOOK) and not flow.enabled:
        return {"flow": flow_id, "status": "disabled"}
    run = flow_sync(flow=flow, trigger=trigger)
    if run is None:
        return {"flow": flow_id, "status": "busy"}
    return {"flow": flow_id, "run": run.pk, "status": run.status, **run.counts()}
