"""The dashboards (``admin:syncs_dashboards``, per flow ``admin:syncs_flow_dashboard``) and a
flow's reconciliation (``admin:syncs_flow_reconciliation``). Served by the SyncRun admin
(runs.py)."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from connectors.errors import InvsyncError
from syncs import selectors as sync_selectors
from syncs.admin.common import (
    changelist_url,
    error_panel_html,
    failed_records_url,
    progress_html,
    records_url,
    run_records_link,
)
from syncs.admin.widgets import daily_chart
from syncs.models import RecordStatus, SyncedRecord, SyncRun
from syncs.reconciliation import BUCKET_LABELS, BUCKETS, INVOICE_TYPE_LABELS, flow_reconcile
from syncs.reconciliation_export import (
    CSV_CONTENT_TYPE,
    XLSX_CONTENT_TYPE,
    export_filename,
    report_csv,
    report_xlsx,
)
from syncs.states import run_state_text, state_text

# The reconciliation's files: how each is written and sent.
EXPORTS = {"csv": (report_csv, CSV_CONTENT_TYPE), "xlsx": (report_xlsx, XLSX_CONTENT_TYPE)}
# The invoices not synced the page lists (the exports hold them all).
OPEN_LINES_SHOWN = 200
# The buckets that are one record status (the others are not a status of any record).
BUCKET_STATUSES = {
    "synced": RecordStatus.SYNCED.value,
    "waiting": RecordStatus.WAITING.value,
    "failed": RecordStatus.FAILED.value,
    "skipped": RecordStatus.SKIPPED.value,
}


def run_count_links(run: SyncRun) -> dict:
    """A run's counts, each a link to the records it left in that state (unchanged ones are not
    the run's: it did not read them again)."""
    counts = {
        "synced": (run.synced_count, RecordStatus.SYNCED),
        "waiting": (run.waiting_count, RecordStatus.WAITING),
        "failed": (run.failed_count, RecordStatus.FAILED),
        "skipped": (run.skipped_count, RecordStatus.SKIPPED),
    }
    return {name: run_records_link(run, count, status) for name, (count, status) in counts.items()}


class DashboardViewsMixin:
    """The dashboard and reconciliation pages, for the SyncRun admin."""

    def dashboard_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("dashboards/", wrap(self.dashboards_view), name="syncs_dashboards"),
            path(
                "dashboards/<int:flow_pk>/",
                wrap(self.flow_dashboard_view),
                name="syncs_flow_dashboard",
            ),
            path(
                "reconciliation/<int:flow_pk>/",
                wrap(self.reconciliation_view),
                name="syncs_flow_reconciliation",
            ),
        ]

    def reconciliation_view(self, request, flow_pk: int):
        """Source against what was written, for a period (default: this year so far); with
        ``export=csv`` or ``export=xlsx``, the same report as a file
        (syncs.reconciliation_export)."""
        self._check_dashboard_permission(request)
        flow = get_object_or_404(sync_selectors.flow_list_for_user(request.user), pk=flow_pk)
        today = timezone.localdate()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Reconciliation of %(flow)s") % {"flow": flow},
            "flow": flow,
            "start": request.GET.get("from") or today.replace(month=1, day=1).isoformat(),
            "end": request.GET.get("to") or today.isoformat(),
        }
        try:
            start = dt.date.fromisoformat(context["start"])
            end = dt.date.fromisoformat(context["end"])
        except ValueError:
            context["input_error"] = _("Dates are written YYYY-MM-DD.")
        else:
            if end < start:
                context["input_error"] = _("The period ends before it starts.")
            elif "run" in request.GET or request.GET.get("export") in EXPORTS:
                try:
                    report = flow_reconcile(flow=flow, start=start, end=end)
                except InvsyncError as error:
                    context["tool_error"] = error_panel_html(error.code, error.message, error.field)
                else:
                    export = request.GET.get("export")
                    if export in EXPORTS:
                        render, content_type = EXPORTS[export]
                        response = HttpResponse(render(report), content_type=content_type)
                        response["Content-Disposition"] = (
                            f'attachment; filename="{export_filename(report, export)}"'
                        )
                        return response
                    context["report"] = report.as_dict()
                    context["buckets"] = BUCKETS
                    context["bucket_totals"] = [
                        {
                            "label": BUCKET_LABELS[bucket],
                            "amounts": amounts,
                            # The buckets a record's status names link to those records.
                            "records_url": records_url(
                                flow.pk,
                                status__exact=status,
                                issue_date__gte=start.isoformat(),
                                issue_date__lte=end.isoformat(),
                            )
                            if (status := BUCKET_STATUSES.get(bucket))
                            else "",
                        }
                        for bucket, amounts in report.by_bucket.items()
                    ]
                    context["type_totals"] = [
                        {
                            "label": INVOICE_TYPE_LABELS.get(kind, kind),
                            "cells": [by_bucket["source"], *(by_bucket[b] for b in BUCKETS)],
                        }
                        for kind, by_bucket in report.by_type.items()
                    ]
                    context["grand_total"] = report.grand_total
                    # What is left to look at: every invoice not synced, its record linked.
                    open_lines = [line for line in report.lines if line.bucket != "synced"]
                    context["open_lines"] = [
                        {
                            "line": line,
                            "record_url": reverse(
                                "admin:syncs_syncedrecord_change", args=[line.record_id]
                            )
                            if line.record_id
                            else "",
                        }
                        for line in open_lines[:OPEN_LINES_SHOWN]
                    ]
                    context["open_lines_more"] = max(0, len(open_lines) - OPEN_LINES_SHOWN)
                    period = {"from": start.isoformat(), "to": end.isoformat()}
                    context["export_urls"] = {
                        kind: f"{request.path}?{urlencode({**period, 'export': kind})}"
                        for kind in EXPORTS
                    }
        return TemplateResponse(request, "admin/syncs/reconciliation.html", context)

    def _check_dashboard_permission(self, request) -> None:
        # A dashboard shows runs and records: it needs the right to see both.
        user = request.user
        if not (
            self.has_view_permission(request)
            and (
                user.has_perm("syncs.view_syncedrecord")
                or user.has_perm("syncs.change_syncedrecord")
            )
        ):
            raise PermissionDenied

    def dashboards_view(self, request):
        self._check_dashboard_permission(request)
        flows = list(
            sync_selectors.flow_list_with_run_stats(sync_selectors.flow_list_for_user(request.user))
        )
        counts = sync_selectors.flows_record_counts(flows)
        next_runs = sync_selectors.flows_next_runs(flows)
        rows = [
            {
                "flow": flow,
                "counts": [
                    (label, counts[flow.pk][status], records_url(flow.pk, status__exact=status))
                    for status, label in RecordStatus.choices
                ],
                "last_run_status": (
                    state_text(
                        flow.last_run_status,
                        flow.last_run_failed_count,
                        flow.last_run_error_code,
                        flow.paused_until,
                    )
                    if flow.last_run_status
                    else ""
                ),
                "last_run_started_at": flow.last_run_started_at,
                "next_run": next_runs[flow.pk],
                "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
                "failures_url": reverse("admin:syncs_flow_failures", args=[flow.pk]),
                "reconciliation_url": reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
            }
            for flow in flows
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Dashboards"),
            "rows": rows,
            "statuses": RecordStatus.choices,
            "failures_url": reverse("admin:syncs_failures"),
        }
        return TemplateResponse(request, "admin/syncs/dashboards.html", context)

    def flow_dashboard_view(self, request, flow_pk: int):
        self._check_dashboard_permission(request)
        flow = get_object_or_404(sync_selectors.flow_list_for_user(request.user), pk=flow_pk)
        counts = sync_selectors.flow_record_counts(flow)
        last_run = sync_selectors.flow_last_run(flow)
        running = sync_selectors.flow_running_run(flow)
        failures_url = reverse("admin:syncs_flow_failures", args=[flow.pk])
        groups = sync_selectors.failures_by_code(SyncedRecord.objects.filter(flow=flow))
        days = sync_selectors.flow_daily_outcomes(flow)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Dashboard of %(flow)s") % {"flow": flow},
            "flow": flow,
            "counts": [
                (status, label, counts[status], records_url(flow.pk, status__exact=status))
                for status, label in RecordStatus.choices
            ],
            "record_total": sum(counts.values()),
            "last_run": last_run,
            "last_run_state": run_state_text(last_run) if last_run else "",
            "last_run_counts": run_count_links(last_run) if last_run else {},
            "last_run_progress": progress_html(last_run) if last_run else "",
            "running": running,
            "running_progress": progress_html(running) if running else "",
            "next_run": sync_selectors.flow_next_run(flow),
            "failures": [
                {
                    "code": group.code,
                    "count": group.count,
                    "info": group.info,
                    "review_url": f"{failures_url}#code-{group.code}",
                    "records_url": failed_records_url(flow.pk, group.code),
                }
                for group in groups
            ],
            "chart": daily_chart(days),
            "days": days,
            "failures_url": failures_url,
            "flow_url": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
            "runs_url": changelist_url(SyncRun, flow__id__exact=flow.pk),
            "records_url": records_url(flow.pk),
            "dashboards_url": reverse("admin:syncs_dashboards"),
            "reconciliation_url": reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
        }
        return TemplateResponse(request, "admin/syncs/flow_dashboard.html", context)
