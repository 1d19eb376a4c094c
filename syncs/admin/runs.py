"""Sync runs in the admin: a read-only log, with why a run stopped and its progress while it runs
(``admin:syncs_syncrun_progress``, JSON, polled by the run page)."""

from __future__ import annotations

import contextlib
import datetime as dt

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from connectors.admin import ClientScopedAdminMixin, ReadOnlyAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from connectors.errors import ErrorCode
from connectors.oauth_admin import reconnect_buttons
from syncs import selectors as sync_selectors
from syncs.admin.common import error_panel_html, progress_html, run_records_link
from syncs.admin.dashboards import DashboardViewsMixin
from syncs.models import RecordStatus, RunStatus, SyncRun
from syncs.states import RUN_STATES, run_progress_text, run_state_text


class RunStateFilter(admin.SimpleListFilter):
    """By state as the list shows it ("Completed, with failures"), from the status and counts
    (syncs.states.RUN_STATES), not by the stored status."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _query) in RUN_STATES.items()]

    def queryset(self, request, queryset):
        state = RUN_STATES.get(self.value() or "")
        return queryset.filter(state[1]) if state else queryset


@admin.register(SyncRun)
class SyncRunAdmin(
    DashboardViewsMixin, ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin
):
    client_lookup = "flow__client"
    list_display = (
        "id",
        "flow",
        "trigger",
        "state_display",
        "started_at",
        "duration_display",
        "progress_display",
        "synced_records",
        "waiting_records",
        "failed_records",
        "skipped_records",
        "unchanged_count",
    )
    list_display_links = ("id", "flow")
    list_filter = (("flow", ClientScopedRelatedFilter), RunStateFilter, "trigger")
    # The flow's invoicing connection names the tool a running run reads from.
    list_select_related = ("flow", "flow__client", "flow__invoicing_connection")
    date_hierarchy = "started_at"
    fieldsets = (
        (None, {"fields": ("flow", "trigger", "state_display", "started_at", "finished_at")}),
        (_("Failure"), {"fields": ("error_panel",)}),
        (
            _("Counts"),
            {
                "fields": (
                    "duration_display",
                    "progress_display",
                    "total",
                    "processed",
                    "synced_records",
                    "waiting_records",
                    "failed_records",
                    "skipped_records",
                    "unchanged_count",
                )
            },
        ),
    )
    readonly_fields = (
        "flow",
        "trigger",
        "state_display",
        "started_at",
        "finished_at",
        "error_panel",
        "duration_display",
        "progress_display",
        "total",
        "processed",
        "synced_records",
        "waiting_records",
        "failed_records",
        "skipped_records",
        "unchanged_count",
    )

    @admin.display(description=_("duration"))
    def duration_display(self, obj: SyncRun) -> str:
        duration = obj.duration
        if duration is None:
            return "running" if obj.status == "running" else "—"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    @admin.display(description=_("state"), ordering="status")
    def state_display(self, obj: SyncRun) -> str:
        # From the run's counts: a run with failed records reads "Completed, N failed".
        return run_state_text(obj)

    @admin.display(description=_("why the run stopped"))
    def error_panel(self, obj: SyncRun):
        panel = error_panel_html(obj.error_code, obj.error_text)
        if obj.error_code == ErrorCode.OAUTH_GRANT_REVOKED:
            flow = obj.flow
            buttons = reconnect_buttons((flow.invoicing_connection, flow.accounting_connection))
            return format_html('{}<p style="margin:.5em 0 0">{}</p>', panel, buttons)
        return panel

    # Each count links to the records this run left in that state.

    @admin.display(description=_("synced"), ordering="synced_count")
    def synced_records(self, obj: SyncRun):
        return run_records_link(obj, obj.synced_count, RecordStatus.SYNCED)

    @admin.display(description=_("waiting for PDF"), ordering="waiting_count")
    def waiting_records(self, obj: SyncRun):
        return run_records_link(obj, obj.waiting_count, RecordStatus.WAITING)

    @admin.display(description=_("failed"), ordering="failed_count")
    def failed_records(self, obj: SyncRun):
        return run_records_link(obj, obj.failed_count, RecordStatus.FAILED)

    @admin.display(description=_("skipped"), ordering="skipped_count")
    def skipped_records(self, obj: SyncRun):
        return run_records_link(obj, obj.skipped_count, RecordStatus.SKIPPED)

    @admin.display(description=_("progress"), ordering="processed")
    def progress_display(self, obj: SyncRun):
        return progress_html(obj)

    # -- Progress and dashboards -----------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            *self.dashboard_urls(),
            path(
                "queued/<int:flow_pk>/",
                wrap(self.queued_view),
                name="syncs_syncrun_queued",
            ),
            path(
                "<int:pk>/progress.json",
                wrap(self.progress_view),
                name="syncs_syncrun_progress",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = {}
        if run is not None:
            extra = {
                "running": run.status == RunStatus.RUNNING,
                "progress_url": reverse("admin:syncs_syncrun_progress", args=[run.pk]),
                "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[run.flow_id]),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def progress_view(self, request, pk: int):
        # get_object goes through get_queryset: a user reaches only their clients' runs.
        run = self.get_object(request, str(pk))
        if run is None or not self.has_view_permission(request, run):
            raise Http404(_("No such run."))
        # admin_view marks the response never-cached: each poll reads the run again.
        return JsonResponse(
            {
                **sync_selectors.run_progress(run),
                "state": run_state_text(run),
                "text": run_progress_text(run),
            }
        )

    def queued_view(self, request, flow_pk: int):
        """Where "Sync now" links: the run the queued task started (a redirect to its page), or
        a page that waits for it (reloading itself), or what the task found instead (the flow
        busy with another run, disabled or gone)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        flow = get_object_or_404(sync_selectors.flow_list_for_user(request.user), pk=flow_pk)
        since = None
        with contextlib.suppress(ValueError, OverflowError):
            since = dt.datetime.fromtimestamp(float(request.GET.get("since", "")), tz=dt.UTC)
        queued = sync_selectors.queued_run(
            flow=flow, task_id=request.GET.get("task", "")[:64], since=since
        )
        if queued.run is not None:
            return redirect("admin:syncs_syncrun_change", queued.run.pk)
        running = sync_selectors.flow_running_run(flow) if queued.outcome == "busy" else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Sync of %(flow)s") % {"flow": flow},
            "flow": flow,
            "outcome": queued.outcome,
            "running": running,
            "runs_url": f"{reverse('admin:syncs_syncrun_changelist')}?flow__id__exact={flow.pk}",
        }
        return TemplateResponse(request, "admin/syncs/syncrun/queued.html", context)
