"""What the syncs admin pages share: read-only logs, the failure panel, a run's progress, links to
filtered changelists, pretty JSON."""

from __future__ import annotations

import json

from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from connectors.errors import CATALOGUE, ErrorCode
from syncs import selectors as sync_selectors
from syncs.models import RecordStatus, SyncedRecord, SyncRun
from syncs.states import run_progress_text


def error_panel_html(code: str, message: str, field: str = ""):
    """The failure as the person fixing it needs it: code, what it means, the message, the fix."""
    if not code:
        return "—"
    try:
        info = CATALOGUE[ErrorCode(code)]
    except ValueError:
        info = None
    return format_html(
        '<div style="border-left:4px solid #ba2121;padding:.5em 1em;background:#fff4f4;'
        'max-width:60em">'
        '<p style="margin:0 0 .5em"><strong>{}</strong>{}</p>'
        '<p style="margin:0 0 .5em">{}</p>'
        '<p style="margin:0 0 .5em"><strong>{}</strong> {}</p>'
        '<p style="margin:0"><strong>{}</strong> {}</p>'
        "</div>",
        code,
        format_html(" ({} {})", _("field:"), field) if field else "",
        info.description if info else "",
        _("Message:"),
        message or "—",
        _("How to fix it:"),
        info.resolution if info else "",
    )


# An indeterminate bar: a run that has found nothing yet.
_BUSY_BAR = mark_safe('<progress style="width:8em"></progress>')


def progress_html(run: SyncRun, tool: str | None = None):
    """The run's progress with a bar: while it runs, what it is doing ("Reading invoices from
    Tryton…, 120 read, 100 processed"; ``total`` grows while the source is read, so the bar is of
    what the run has found so far); once over, "n of m processed"."""
    progress = sync_selectors.run_progress(run)
    processed, total = progress["processed"], progress["total"]
    if total:
        bar = format_html(
            '<progress value="{}" max="{}" style="width:8em">{} %</progress>',
            processed,
            total,
            progress["percent"],
        )
    else:
        # Nothing found yet: an indeterminate bar while running, none after.
        bar = _BUSY_BAR if progress["running"] else ""
    return format_html(
        '<span class="run-progress" data-run="{}">{} <span class="run-progress-text">{}</span>'
        "</span>",
        run.pk,
        bar,
        run_progress_text(run, tool),
    )


def changelist_url(model, **filters) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def records_url(flow_id: int | None = None, **filters) -> str:
    if flow_id is not None:
        filters = {"flow__id__exact": flow_id, **filters}
    return changelist_url(SyncedRecord, **filters)


def run_records_link(run: SyncRun, count: int, status: RecordStatus):
    """A run's count as a link to the records the run left in that state (a record's last run
    is the last that read it: a later run that reads it again takes it along)."""
    return format_html(
        '<a href="{}" class="run-records">{}</a>',
        records_url(run.flow_id, last_run__id__exact=run.pk, status__exact=status.value),
        count,
    )


def failed_records_url(flow_id: int | None, code: str) -> str:
    return records_url(flow_id, status__exact=RecordStatus.FAILED.value, error_code__exact=code)


def pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )


def queued_for_retry_text(count: int) -> str:
    """The message of a retry from the admin, in the reader's language."""
    return ngettext(
        "Queued %(count)d failed record for retry.",
        "Queued %(count)d failed records for retry.",
        count,
    ) % {"count": count}
