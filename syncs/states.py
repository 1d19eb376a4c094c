"""How a run's state reads to people: computed from its status and counts, the same on the flows
list, the run list, the run page, the dashboards and the home page.

The stored status says how the run ended for the machine (``partial`` when records failed); what
people read says what happened: "Completed", "Completed, 3 failed", "Stopped: <code>", and while
the run runs, what it is doing ("Reading invoices from Tryton…, 120 read, 100 processed") rather
than "0 of 0" before the first chunk is done."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from connectors.errors import InvsyncError
from connectors.selectors import connector_class_for
from syncs.models import RunStatus, SyncRun

_FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
# The states a run's list filters by, as people read them, each with the runs it selects (by status
# and counts: a run that finished with failed records is "Completed, with failures" whatever
# status it was stored with).
RUN_STATES = {
    "running": (gettext_lazy("Running"), Q(status=RunStatus.RUNNING)),
    "completed": (gettext_lazy("Completed"), Q(status__in=_FINISHED, failed_count=0)),
    "completed_with_failures": (
        gettext_lazy("Completed, with failures"),
        Q(status__in=_FINISHED, failed_count__gt=0),
    ),
    "stopped": (gettext_lazy("Stopped"), Q(status=RunStatus.FAILED)),
    "paused": (gettext_lazy("Paused"), Q(status=RunStatus.PAUSED)),
}


def run_outcome_line(run: SyncRun) -> str:
    """How a command reports a run once over: "Run 12 completed, 1 failed: synced 3, waiting 0,
    failed 1, skipped 0, unchanged 2." (the state as the admin shows it, never "Succeeded" for a
    run with failed records)."""
    state = run_state_text(run)
    return _(
        "Run %(number)s %(state)s: synced %(synced)d, waiting %(waiting)d, failed %(failed)d, "
        "skipped %(skipped)d, unchanged %(unchanged)d."
    ) % {
        "number": run.pk,
        "state": state[:1].lower() + state[1:],
        "synced": run.synced_count,
        "waiting": run.waiting_count,
        "failed": run.failed_count,
        "skipped": run.skipped_count,
        "unchanged": run.unchanged_count,
    }


def run_state_text(run: SyncRun) -> str:
    """The run's state as people read it: "Running", "Completed", "Completed, N failed",
    "Stopped: CODE" (with ", N failed" when records had failed before it stopped)."""
    return state_text(run.status, run.failed_count, run.error_code, run.paused_until)


def state_text(
    status: str, failed_count: int, error_code: str = "", paused_until: dt.datetime | None = None
) -> str:
    """:func:`run_state_text` from a run's stored status, failed count and error code (as the
    flows list annotates them on each flow's last run); a paused run, with when it resumes."""
    if status == RunStatus.RUNNING:
        return _("Running")
    if status == RunStatus.PAUSED:
        return paused_text(paused_until)
    failed = failed_count or 0
    failed_text = (
        ngettext("%(count)d failed", "%(count)d failed", failed) % {"count": failed}
        if failed
        else ""
    )
    if status == RunStatus.FAILED:
        text = _("Stopped: %(code)s") % {"code": error_code} if error_code else _("Stopped")
        return f"{text}, {failed_text}" if failed_text else text
    return _("Completed, %(failed)s") % {"failed": failed_text} if failed else _("Completed")


def paused_text(until: dt.datetime | None) -> str:
    """A run or flow paused by the tool's daily limit: "Paused until <time>: the accounting
    tool's daily limit" (the time in the reader's time zone and format)."""
    if until is None:
        return _("Paused: the accounting tool's daily limit")
    when = formats.date_format(timezone.localtime(until), "SHORT_DATETIME_FORMAT")
    return _("Paused until %(time)s: the accounting tool's daily limit") % {"time": when}


def source_tool_name(run: SyncRun) -> str:
    """The invoicing tool the run reads from, as people know it ("Tryton"): its connector's name,
    else the connection's own name (a provider no longer installed)."""
    connection = run.flow.invoicing_connection
    try:
        return connector_class_for(connection).name
    except InvsyncError:
        return connection.name


def run_progress_text(run: SyncRun, tool: str | None = None) -> str:
    """What a running run is doing, from its counts: invoices are read from the tool chunk by
    chunk and processed as they come, so "N read" grows while it reads and "M processed" follows.
    A finished run: "M of N processed"."""
    if run.status != RunStatus.RUNNING:
        return _("%(processed)d of %(total)d processed") % {
            "processed": run.processed,
            "total": run.total,
        }
    text = _("Reading invoices from %(tool)s…, %(count)d read") % {
        "tool": tool or source_tool_name(run),
        "count": run.total,
    }
    if run.processed:
        text += _(", %(count)d processed") % {"count": run.processed}
    return text
