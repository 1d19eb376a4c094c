"""Runs, records and partner links in the admin: read-only logs (as django-q2 shows its tasks), with
the catalogue's resolution beside every failure, and the pages staff work from:

- the failure review (``admin:syncs_failures``, per flow ``admin:syncs_flow_failures``): failed
  records grouped by error code, with the fix, the records and a retry of each group;
- a record's page: retry it, or correct a line's account or VAT code (overrides) and retry;
- a run's progress while it runs (``admin:syncs_syncrun_progress``, JSON, polled by the run page);
- the dashboards (``admin:syncs_dashboards``, per flow ``admin:syncs_flow_dashboard``).

Every write goes through syncs.services; every view is scoped to the user's clients (a flow or a
record of another client is a 404) and needs the view permission (retrying: change records)."""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from connectors.admin import ClientScopedAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from connectors.canonical import TargetLookups
from connectors.errors import CATALOGUE, ErrorCode, ErrorInfo, InvsyncError
from mappings.lookups import cached_target_lookups, lookup_names
from mappings.models import SyncFlow
from syncs import selectors as sync_selectors
from syncs import services as sync_services
from syncs.forms import RecordOverridesForm
from syncs.models import PartnerLink, RecordStatus, RunStatus, SyncedRecord, SyncRun
from syncs.preview import record_preview
from syncs.reconciliation import BUCKETS, flow_reconcile
from syncs.serialization import InputError, config_to_json, result_to_json


class ReadOnlyAdminMixin:
    """A log: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _error_panel(code: str, message: str, field: str = ""):
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
        '<p style="margin:0 0 .5em"><strong>Message:</strong> {}</p>'
        '<p style="margin:0"><strong>How to fix it:</strong> {}</p>'
        "</div>",
        code,
        format_html(" (field: {})", field) if field else "",
        info.description if info else "",
        message or "—",
        info.resolution if info else "",
    )


# An indeterminate bar: a run that has found nothing yet.
_BUSY_BAR = mark_safe('<progress style="width:8em"></progress>')


def _progress(run: SyncRun):
    """The run's progress as "n of m" with a bar. ``total`` grows while the source is read: the bar
    is of what the run has found so far."""
    progress = sync_selectors.run_progress(run)
    processed, total = progress["processed"], progress["total"]
    if total:
        bar = format_html(
            '<progress value="{}" max="{}" style="width:8em">{} %</progress>',
            processed,
            total,
            progress["percent"],
        )
        text = format_html("{} of {} ({} %)", processed, total, progress["percent"])
    else:
        # Nothing found yet: an indeterminate bar while running, none after.
        bar = _BUSY_BAR if progress["running"] else ""
        text = format_html("{} of {}", processed, total)
    return format_html(
        '<span class="run-progress" data-run="{}">{} <span class="run-progress-text">{}</span>'
        "</span>",
        run.pk,
        bar,
        text,
    )


def _changelist_url(model, **filters) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _records_url(flow_id: int | None = None, **filters) -> str:
    if flow_id is not None:
        filters = {"flow__id__exact": flow_id, **filters}
    return _changelist_url(SyncedRecord, **filters)


def _failed_records_url(flow_id: int | None, code: str) -> str:
    return _records_url(flow_id, status__exact=RecordStatus.FAILED.value, error_code__exact=code)


def fix_links(flow: SyncFlow, info: ErrorInfo | None) -> list[tuple[str, str]]:
    """(label, url) of the setting that usually fixes an error (the catalogue's ``setting``): a
    flow field (its change page, anchored at the field), a mapping inline (anchored at it), the
    connections, or the flow's partner links. Empty when the fix is in a tool, not in invsync."""
    setting = info.setting if info else ""
    if not setting:
        return []
    flow_url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
    if setting == "connection":
        return [
            (
                "Invoicing connection",
                reverse("admin:connectors_connection_change", args=[flow.invoicing_connection_id]),
            ),
            (
                "Accounting connection",
                reverse("admin:connectors_connection_change", args=[flow.accounting_connection_id]),
            ),
        ]
    if setting == "partner_links":
        return [
            ("Partner links of the flow", _changelist_url(PartnerLink, flow__id__exact=flow.pk))
        ]
    if setting in ("vat_mappings", "journal_mappings"):
        # The admin's inline formsets are <div id="<prefix>-group">, the prefix being the
        # relation's name.
        label = "VAT mappings" if setting == "vat_mappings" else "Journal mappings"
        return [(f"{label} of the flow", f"{flow_url}#{setting}-group")]
    try:
        field = SyncFlow._meta.get_field(setting)
    except FieldDoesNotExist:  # a section ("configuration"), not one field
        return [("Flow configuration", flow_url)]
    return [(f"Flow setting: {field.verbose_name}", f"{flow_url}#id_{setting}")]


# The daily chart: server-side SVG (no script, no external asset), two bars per day.
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_PLOT, CHART_BOTTOM = 40, 10, 12, 150, 36
CHART_SLOT, CHART_BAR = 24, 9


def _nice_ceiling(peak: int) -> int:
    """The smallest round number (1, 1.5, 2, 3, 4, 5, 6, 8 × 10ⁿ) at or above ``peak``."""
    if peak <= 5:
        return max(peak, 1)
    magnitude = 10 ** (len(str(peak)) - 1)
    for step in (1, 1.5, 2, 3, 4, 5, 6, 8, 10):
        if peak <= step * magnitude:
            return int(step * magnitude)
    return peak  # not reached


def daily_chart(days: list[sync_selectors.DayOutcome]) -> dict:
    """Coordinates for admin/syncs/_daily_chart.html: one group per day, synced and failed bars
    side by side, a labelled y axis, and a date under every fifth day (counted back from today)."""
    top = _nice_ceiling(max([d.synced for d in days] + [d.failed for d in days] + [0]))
    baseline = CHART_TOP + CHART_PLOT

    def height(value: int) -> float:
        return round(value * CHART_PLOT / top, 2)

    bars = []
    for position, day in enumerate(days):
        x = CHART_LEFT + position * CHART_SLOT + 2
        synced_h, failed_h = height(day.synced), height(day.failed)
        labelled = (len(days) - 1 - position) % 5 == 0
        bars.append(
            {
                "day": day,
                "synced_x": x,
                "synced_y": baseline - synced_h,
                "synced_h": synced_h,
                "failed_x": x + CHART_BAR + 1,
                "failed_y": baseline - failed_h,
                "failed_h": failed_h,
                "label": day.day.strftime("%d %b") if labelled else "",
                "label_x": x + CHART_BAR,
            }
        )
    ticks = sorted({0, top // 2, top}) if top >= 2 else [0, top]
    return {
        "width": CHART_LEFT + len(days) * CHART_SLOT + CHART_RIGHT,
        "height": CHART_TOP + CHART_PLOT + CHART_BOTTOM,
        "bar": CHART_BAR,
        "left": CHART_LEFT,
        "right": CHART_LEFT + len(days) * CHART_SLOT,
        "baseline": baseline,
        "label_y": baseline + 16,
        "legend_y": baseline + 32,
        "ticks": [{"value": t, "y": baseline - height(t)} for t in ticks],
        "bars": bars,
        "synced_total": sum(d.synced for d in days),
        "failed_total": sum(d.failed for d in days),
    }


def _pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
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
        return _error_panel(obj.error_code, obj.error_message)

    @admin.display(description="progress", ordering="processed")
    def progress_display(self, obj: SyncRun):
        return _progress(obj)

    # -- Progress and dashboards -----------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboards/", wrap(self.dashboards_view), name="syncs_dashboards"),
            path(
                "dashboards/<int:flow_pk>/",
                wrap(self.flow_dashboard_view),
                name="syncs_flow_dashboard",
            ),
            path(
                "<int:pk>/progress.json",
                wrap(self.progress_view),
                name="syncs_syncrun_progress",
            ),
            path(
                "reconciliation/<int:flow_pk>/",
                wrap(self.reconciliation_view),
                name="syncs_flow_reconciliation",
            ),
            *super().get_urls(),
        ]

    def reconciliation_view(self, request, flow_pk: int):
        """Source against what was written, for a period (default: this year so far)."""
        self._check_dashboard_permission(request)
        flow = get_object_or_404(sync_selectors.flow_list_for_user(request.user), pk=flow_pk)
        today = timezone.localdate()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Reconciliation of {flow}",
            "flow": flow,
            "start": request.GET.get("from") or today.replace(month=1, day=1).isoformat(),
            "end": request.GET.get("to") or today.isoformat(),
        }
        try:
            start = dt.date.fromisoformat(context["start"])
            end = dt.date.fromisoformat(context["end"])
        except ValueError:
            context["input_error"] = "Dates are written YYYY-MM-DD."
        else:
            if end < start:
                context["input_error"] = "The period ends before it starts."
            elif "run" in request.GET:
                try:
                    report = flow_reconcile(flow=flow, start=start, end=end)
                except InvsyncError as error:
                    context["tool_error"] = _error_panel(error.code, error.message, error.field)
                else:
                    context["report"] = report.as_dict()
                    context["buckets"] = BUCKETS
        return TemplateResponse(request, "admin/syncs/reconciliation.html", context)

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
                    (label, counts[flow.pk][status], _records_url(flow.pk, status__exact=status))
                    for status, label in RecordStatus.choices
                ],
                "last_run_status": (
                    RunStatus(flow.last_run_status).label if flow.last_run_status else ""
                ),
                "last_run_started_at": flow.last_run_started_at,
                "next_run": next_runs[flow.pk],
                "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
                "failures_url": reverse("admin:syncs_flow_failures", args=[flow.pk]),
            }
            for flow in flows
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Dashboards",
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
            "title": f"Dashboard of {flow}",
            "flow": flow,
            "counts": [
                (status, label, counts[status], _records_url(flow.pk, status__exact=status))
                for status, label in RecordStatus.choices
            ],
            "record_total": sum(counts.values()),
            "last_run": last_run,
            "last_run_progress": _progress(last_run) if last_run else "",
            "running": running,
            "running_progress": _progress(running) if running else "",
            "next_run": sync_selectors.flow_next_run(flow),
            "failures": [
                {
                    "code": group.code,
                    "count": group.count,
                    "info": group.info,
                    "review_url": f"{failures_url}#code-{group.code}",
                    "records_url": _failed_records_url(flow.pk, group.code),
                }
                for group in groups
            ],
            "chart": daily_chart(days),
            "days": days,
            "failures_url": failures_url,
            "flow_url": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
            "runs_url": _changelist_url(SyncRun, flow__id__exact=flow.pk),
            "records_url": _records_url(flow.pk),
            "dashboards_url": reverse("admin:syncs_dashboards"),
        }
        return TemplateResponse(request, "admin/syncs/flow_dashboard.html", context)


@admin.register(SyncedRecord)
class SyncedRecordAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "flow__client"
    list_display = (
        "number",
        "flow",
        "invoice_type",
        "partner_name",
        "total",
        "status",
        "error_code_display",
        "attempts",
        "updated_at",
    )
    list_filter = (
        ("flow", ClientScopedRelatedFilter),
        "status",
        "error_code",
        "invoice_type",
    )
    list_select_related = ("flow", "flow__client")
    search_fields = ("number", "source_id", "partner_name")
    fieldsets = (
        (
            "Failure",
            {
                "fields": (
                    "error_panel",
                    "overrides_summary",
                    "skip_reason",
                    "drift",
                    "preview_links",
                )
            },
        ),
        (
            "Invoice",
            {
                "fields": (
                    "flow",
                    "number",
                    "source_id",
                    "object_type",
                    "invoice_type",
                    "issue_date",
                    "partner_name",
                    "currency",
                    "total",
                )
            },
        ),
        (
            "State",
            {
                "fields": (
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "config_version",
                    "last_run",
                    "target_ref",
                    "target_number",
                    "entry_key",
                    "note",
                    "synced_at",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        (
            "Snapshot",
            {
                "fields": ("snapshot_display", "overrides_display", "fingerprint"),
                "classes": ("collapse",),
            },
        ),
    )
    readonly_fields = (
        "error_panel",
        "overrides_summary",
        "preview_links",
        "skip_reason",
        "drift",
        "flow",
        "number",
        "source_id",
        "object_type",
        "invoice_type",
        "issue_date",
        "partner_name",
        "currency",
        "total",
        "status",
        "attempts",
        "next_attempt_at",
        "config_version",
        "last_run",
        "target_ref",
        "target_number",
        "entry_key",
        "note",
        "synced_at",
        "created_at",
        "updated_at",
        "snapshot_display",
        "overrides_display",
        "fingerprint",
    )
    actions = ("retry",)

    @admin.display(description="error code", ordering="error_code")
    def error_code_display(self, obj: SyncedRecord):
        if not obj.error_code:
            return "—"
        # The resolution on hover; the record's page shows it in full.
        return format_html('<span title="{}">{}</span>', obj.resolution, obj.error_code)

    @admin.display(description="error and how to fix it")
    def error_panel(self, obj: SyncedRecord):
        return _error_panel(obj.error_code, obj.error_message, obj.error_field)

    @admin.display(description="invoice snapshot (INVOICE.json)")
    def snapshot_display(self, obj: SyncedRecord):
        return _pretty_json(obj.snapshot)

    @admin.display(description="overrides")
    def overrides_display(self, obj: SyncedRecord):
        return _pretty_json(obj.overrides)

    @admin.display(description="line overrides")
    def overrides_summary(self, obj: SyncedRecord):
        overrides = sync_selectors.record_overrides(obj)
        if not overrides:
            return "None: lines use their own account and the flow's VAT mapping."
        items = format_html_join(
            "",
            "<li>Line {}: {}</li>",
            (
                (
                    index + 1,
                    format_html_join(
                        ", ",
                        "{} <strong>{}</strong>",
                        [
                            (label, value)
                            for label, value in (
                                ("account", override.account),
                                ("VAT code", override.vat_code),
                            )
                            if value
                        ],
                    ),
                )
                for index, override in sorted(overrides.items())
            ),
        )
        return format_html(
            '<ul class="record-overrides" style="margin:0;padding-left:1.2em">{}</ul>'
            '<p class="help">Used on the next attempt instead of the line\'s own account or the '
            "flow's VAT mapping.</p>",
            items,
        )

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("syncs.change_syncedrecord")

    # -- Preview and downloads (the posting-preview contract, in the admin) -----------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("failures/", wrap(self.failures_view), name="syncs_failures"),
            path(
                "failures/<int:flow_pk>/",
                wrap(self.flow_failures_view),
                name="syncs_flow_failures",
            ),
            path("<int:pk>/retry/", wrap(self.retry_view), name="syncs_syncedrecord_retry"),
            path(
                "<int:pk>/overrides/",
                wrap(self.overrides_view),
                name="syncs_syncedrecord_overrides",
            ),
            path("<int:pk>/preview/", wrap(self.preview_view), name="syncs_syncedrecord_preview"),
            path(
                "<int:pk>/invoice.json",
                wrap(self.invoice_json_view),
                name="syncs_syncedrecord_invoice_json",
            ),
            path(
                "<int:pk>/config.json",
                wrap(self.config_json_view),
                name="syncs_syncedrecord_config_json",
            ),
            *super().get_urls(),
        ]

    def _record_for(self, request, pk: int) -> SyncedRecord:
        # get_object goes through get_queryset: a user reaches only their clients' records.
        record = self.get_object(request, str(pk))
        if record is None or not self.has_view_permission(request, record):
            raise Http404("No such record.")
        return record

    @admin.display(description="preview")
    def preview_links(self, obj: SyncedRecord):
        if not obj.pk or not obj.snapshot:
            return "—"
        return format_html(
            '<a class="button" href="{}">Preview the entry</a> '
            '<a href="{}">INVOICE.json</a> · <a href="{}">CONFIG.json</a>',
            reverse("admin:syncs_syncedrecord_preview", args=[obj.pk]),
            reverse("admin:syncs_syncedrecord_invoice_json", args=[obj.pk]),
            reverse("admin:syncs_syncedrecord_config_json", args=[obj.pk]),
        )

    def preview_view(self, request, pk: int):
        record = self._record_for(request, pk)
        if request.method == "POST" and "refresh" in request.POST:
            try:
                sync_services.flow_lookups_refresh(flow=record.flow)
                self.message_user(request, "Accounts, VAT codes and journals read again.")
            except InvsyncError as error:
                self.message_user(request, f"{error.code}: {error.message}", messages.ERROR)
            return redirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": record,
            "title": f"Preview of {record.number or record.source_id}",
        }
        lookups = cached_target_lookups(record.flow)
        context["lookups_cached"] = lookups is not None
        context["names"] = lookup_names(lookups)
        try:
            _, _, result = record_preview(record)
        except InputError as error:
            context["input_error"] = str(error)
        else:
            context["result"] = result_to_json(result)
            if result.status == "error":
                context["error_panel"] = _error_panel(result.code, result.message, result.field)
        return TemplateResponse(request, "admin/syncs/syncedrecord/preview.html", context)

    def _download(self, data: dict, filename: str) -> HttpResponse:
        response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def invoice_json_view(self, request, pk: int):
        record = self._record_for(request, pk)
        return self._download(record.snapshot, f"INVOICE-{record.pk}.json")

    def config_json_view(self, request, pk: int):
        record = self._record_for(request, pk)
        try:
            _, config, _ = record_preview(record)
        except InputError:
            # The snapshot is unreadable; the configuration alone still helps support.
            lookups = cached_target_lookups(record.flow) or TargetLookups()
            config = config_to_json(sync_selectors.flow_engine_config(record.flow, lookups))
        return self._download(config, f"CONFIG-{record.pk}.json")

    @admin.action(description="Retry", permissions=["retry"])
    def retry(self, request, queryset):
        failed = queryset.filter(status=RecordStatus.FAILED)
        ignored = queryset.count() - failed.count()
        count = sync_services.records_retry_enqueue(records=failed)
        self.message_user(
            request,
            f"Queued {count} failed record{'s' if count != 1 else ''} for retry.",
            messages.SUCCESS if count else messages.INFO,
        )
        if ignored:
            self.message_user(
                request,
                f"{ignored} selected record{'s were' if ignored != 1 else ' was'} not failed "
                "and not retried.",
                messages.WARNING,
            )

    # -- The record page: retry it, correct its lines ---------------------------------------------

    def _can_correct(self, request, record: SyncedRecord) -> bool:
        return record.status == RecordStatus.FAILED and self.has_retry_permission(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, object_id)
        extra = {}
        if record is not None:
            lookups = cached_target_lookups(record.flow)
            extra = {
                "can_retry": self._can_correct(request, record),
                "retry_url": reverse("admin:syncs_syncedrecord_retry", args=[record.pk]),
                "failures_url": reverse("admin:syncs_flow_failures", args=[record.flow_id]),
                "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[record.flow_id]),
            }
            if self._can_correct(request, record) and record.snapshot:
                extra.update(self._overrides_context(record, lookups))
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def _overrides_context(self, record: SyncedRecord, lookups, form=None) -> dict:
        return {
            "overrides_form": form or RecordOverridesForm(record=record, lookups=lookups),
            "overrides_url": reverse("admin:syncs_syncedrecord_overrides", args=[record.pk]),
            "lookups_cached": lookups is not None,
            "preview_url": reverse("admin:syncs_syncedrecord_preview", args=[record.pk]),
        }

    def _retry(self, request, records) -> int:
        """Every retry from the admin: through the service, and said."""
        count = sync_services.records_retry_enqueue(records=records.only("pk", "status"))
        self.message_user(
            request,
            f"Queued {count} failed record{'s' if count != 1 else ''} for retry."
            if count
            else "Nothing to retry: no failed record left there.",
            messages.SUCCESS if count else messages.INFO,
        )
        return count

    def retry_view(self, request, pk: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record = self._record_for(request, pk)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        self._retry(request, SyncedRecord.objects.filter(pk=record.pk))
        return redirect("admin:syncs_syncedrecord_change", record.pk)

    def overrides_view(self, request, pk: int):
        record = self._record_for(request, pk)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        lookups = cached_target_lookups(record.flow)
        form = RecordOverridesForm(
            request.POST if request.method == "POST" else None, record=record, lookups=lookups
        )
        if form.is_bound and form.is_valid():
            try:
                sync_services.record_overrides_set(record=record, lines=form.lines_data())
            except ValidationError as error:
                form.add_service_errors(error)
            else:
                if "_retry" in request.POST:
                    self.message_user(request, "Line overrides saved.", messages.SUCCESS)
                    self._retry(request, SyncedRecord.objects.filter(pk=record.pk))
                else:
                    self.message_user(
                        request,
                        "Line overrides saved; they are used when the record is retried.",
                        messages.SUCCESS,
                    )
                return redirect("admin:syncs_syncedrecord_change", record.pk)
            self.message_user(request, "The overrides were not saved: see below.", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": record,
            "title": f"Correct the lines of {record.number or record.source_id}",
            "error_panel": _error_panel(
                record.error_code, record.error_message, record.error_field
            ),
            **self._overrides_context(record, lookups, form),
        }
        return TemplateResponse(request, "admin/syncs/syncedrecord/overrides.html", context)

    # -- The failure review ------------------------------------------------------------------------

    def _check_view(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def failures_view(self, request):
        """Failed records of every flow the user may see, grouped by error code."""
        self._check_view(request)
        records = self.get_queryset(request)
        if request.method == "POST":
            return self._failures_post(request, records)
        return self._failures_page(request, records, flow=None)

    def flow_failures_view(self, request, flow_pk: int):
        """One flow's failed records grouped by error code."""
        self._check_view(request)
        flow = get_object_or_404(sync_selectors.flow_list_for_user(request.user), pk=flow_pk)
        records = self.get_queryset(request).filter(flow=flow)
        if request.method == "POST":
            return self._failures_post(request, records)
        return self._failures_page(request, records, flow=flow)

    def _failures_post(self, request, records):
        if not self.has_retry_permission(request):
            raise PermissionDenied
        failed = records.filter(status=RecordStatus.FAILED)
        action = request.POST.get("action")
        if action == "retry_code":
            code = request.POST.get("code", "")
            if code not in ErrorCode.values:
                return HttpResponse("Unknown error code.", status=400)
            failed = failed.filter(error_code=code)
        elif action != "retry_all":
            return HttpResponse("Unknown action.", status=400)
        flow_id = request.POST.get("flow", "")
        if flow_id:
            if not flow_id.isdigit():
                return HttpResponse("Bad flow.", status=400)
            failed = failed.filter(flow_id=int(flow_id))
        self._retry(request, failed)
        return redirect(request.get_full_path())

    def _failures_page(self, request, records, *, flow: SyncFlow | None):
        groups = sync_selectors.failures_by_code(records)
        rows = [
            {
                "code": group.code,
                "count": group.count,
                "info": group.info,
                "records_url": _failed_records_url(flow.pk if flow else None, group.code),
                "flows": [
                    {
                        "flow": per_flow.flow,
                        "count": per_flow.count,
                        "fix_links": fix_links(per_flow.flow, group.info),
                        "records_url": _failed_records_url(per_flow.flow.pk, group.code),
                        "failures_url": reverse(
                            "admin:syncs_flow_failures", args=[per_flow.flow.pk]
                        ),
                    }
                    for per_flow in group.flows
                ],
            }
            for group in groups
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Failures of {flow}" if flow else "Failures of all flows",
            "flow": flow,
            "groups": rows,
            "failed_total": sum(group.count for group in groups),
            "can_retry": self.has_retry_permission(request),
            "all_failures_url": reverse("admin:syncs_failures"),
            "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[flow.pk]) if flow else "",
            "records_url": _records_url(
                flow.pk if flow else None, status__exact=RecordStatus.FAILED.value
            ),
        }
        return TemplateResponse(request, "admin/syncs/failures.html", context)


@admin.register(PartnerLink)
class PartnerLinkAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    """Links are made by runs; deleting one makes the next invoice match or create the partner
    again (the fix for a partner deleted in accounting)."""

    client_lookup = "flow__client"
    list_display = (
        "source_partner_name",
        "source_partner_id",
        "target_partner_name",
        "target_partner_id",
        "matched_by",
        "flow",
        "created_at",
    )
    list_filter = (("flow", ClientScopedRelatedFilter), "matched_by")
    list_select_related = ("flow", "flow__client")
    search_fields = (
        "source_partner_name",
        "source_partner_id",
        "target_partner_name",
        "target_partner_id",
    )
    readonly_fields = (
        "flow",
        "source_partner_id",
        "source_partner_name",
        "target_partner_id",
        "target_partner_name",
        "matched_by",
        "created_at",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
