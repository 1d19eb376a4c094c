"""How a run's state reads to people: computed from its status and counts, the same on the flows
list, the run list, the run page, the dashboards and the home page.

The stored status says how the run ended for the machine (``partial`` when records failed); what
people read says what happened: "Completed", "Completed, 3 failed", "Stopped: <code>", and while
the run runs, what it is doing ("Reading invoices from Tryton…, 120 read, 100 processed") rather
than "0 of 0" before the first chunk is done."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from connectors.errors import InvsyncError
from connectors.selectors import connector_class_for
from syncs.models import RunStatus, SyncRun


def run_state_text(run: SyncRun) -> str:
    """The run's state as people read it: "Running", "Completed", "Completed, N failed",
    "Stopped: CODE" (with ", N failed" when records had failed before it stopped)."""
    return state_text(run.status, run.failed_count, run.error_code)


def state_text(status: str, failed_count: int, error_code: str = "") -> str:
    """:func:`run_state_text` from a run's stored status, failed count and error code (as the
    flows list annotates them on each flow's last run)."""
    if status == RunStatus.RUNNING:
        return _("Running")
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
