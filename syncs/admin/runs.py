"""Sync runs in the admin: a read-only log, with why a run stopped and its progress while it runs
(``admin:syncs_syncrun_progress``, JSON, polled by the run page)."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404, JsonResponse
from django.urls import path, reverse

from connectors.admin import ClientScopedAdminMixin, ReadOnlyAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from syncs import selectors as sync_selectors
from syncs.admin.common import error_panel_html, progress_html
from syncs.admin.dashboards import DashboardViewsMixin
from syncs.models import RunStatus, SyncRun


@admin.register(SyncRun)
class SyncRunAdmin(
    DashboardViewsMixin, ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin
):
    client_lookup = "flow__client"
    list_display = (
        "id",
        "flow",
        "trigger",
        "status",
        "started_at",
        "duration_display",
        "progress_display",
        "synced_count",
        "waiting_count",
        "failed_count",
        "skipped_count",
        "unchanged_count",
    )
    list_display_links = ("id", "flow")
    list_filter = (("flow", ClientScopedRelatedFilter), "status", "trigger")
    list_select_related = ("flow", "flow__client")
    date_hierarchy = "started_at"
    fieldsets = (
        (None, {"fields": ("flow", "trigger", "status", "started_at", "finished_at")}),
        ("Failure", {"fields": ("error_panel",)}),
        (
            "Counts",
            {
                "fields": (
                    "duration_display",
                    "progress_display",
                    "total",
                    "processed",
                    "synced_count",
                    "waiting_count",
                    "failed_count",
                    "skipped_count",
                    "unchanged_count",
                )
            },
        ),
    )
    readonly_fields = (
        "flow",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "error_panel",
        "duration_display",
        "progress_display",
        "total",
        "processed",
        "synced_count",
        "waiting_count",
        "failed_count",
        "skipped_count",
        "unchanged_count",
    )

    @admin.display(description="duration")
    def duration_display(self, obj: SyncRun) -> str:
        duration = obj.duration
        if duration is None:
            return "running" if obj.status == "running" else "—"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    @admin.display(description="why the run stopped")
    def error_panel(self, obj: SyncRun):
        return error_panel_html(obj.error_code, obj.error_message)

    @admin.display(description="progress", ordering="processed")
    def progress_display(self, obj: SyncRun):
        return progress_html(obj)

    # -- Progress and dashboards -----------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            *self.dashboard_urls(),
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
            raise Http404("No such run.")
        # admin_view marks the response never-cached: each poll reads the run again.
        return JsonResponse(sync_selectors.run_progress(run))
