"""Sync services (writes). Being written; signatures fixed."""

from __future__ import annotations

from collections.abc import Iterable

from mappings.models import SyncFlow
from syncs.models import SyncedRecord, SyncRun


def flow_sync_enqueue(*, flow: SyncFlow, trigger: str = "manual") -> str:
    """Queue a run of ``flow`` on django-q2; returns the task id."""
    raise NotImplementedError


def flow_sync(*, flow: SyncFlow, trigger: str, progress=None) -> SyncRun | None:
    """Run ``flow`` now in this process. None when another run of the flow holds the lease."""
    raise NotImplementedError


def records_retry_enqueue(*, records: Iterable[SyncedRecord]) -> int:
    """Mark the given failed records for retry and queue one retry task per flow; returns how many
    records were queued."""
    raise NotImplementedError
