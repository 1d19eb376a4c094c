"""Runs, records and partner links in the admin: read-only logs (as django-q2 shows its tasks), with
the catalogue's resolution beside every failure and a retry action that goes through
syncs.services."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from connectors.admin import ClientScopedAdminMixin
from connectors.errors import CATALOGUE, ErrorCode, InvsyncError
from syncs import selectors as sync_selectors
from syncs import services as sync_services
from syncs.models import PartnerLink, RecordStatus, SyncedRecord, SyncRun
from syncs.serialization import InputError, result_to_json


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
        "processed",
        "synced_count",
        "waiting_count",
        "failed_count",
        "skipped_count",
        "unchanged_count",
    )
    list_display_links = ("id", "flow")
    list_filter = (("flow", admin.RelatedOnlyFieldListFilter), "status", "trigger")
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
        ("flow", admin.RelatedOnlyFieldListFilter),
        "status",
        "error_code",
        "invoice_type",
    )
    list_select_related = ("flow", "flow__client")
    search_fields = ("number", "source_id", "partner_name")
    fieldsets = (
        ("Failure", {"fields": ("error_panel", "skip_reason", "drift", "preview_links")}),
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

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("syncs.change_syncedrecord")

    # -- Preview and downloads (the posting-preview contract, in the admin) -----------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
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
            "lookups_cached": sync_selectors.cached_target_lookups(record.flow) is not None,
        }
        try:
            _, _, result = sync_selectors.record_preview(record)
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
            _, config, _ = sync_selectors.record_preview(record)
        except InputError:
            # The snapshot is unreadable; the configuration alone still helps support.
            from syncs.config import TargetLookups
            from syncs.serialization import config_to_json

            lookups = sync_selectors.cached_target_lookups(record.flow) or TargetLookups()
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
    list_filter = (("flow", admin.RelatedOnlyFieldListFilter), "matched_by")
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
