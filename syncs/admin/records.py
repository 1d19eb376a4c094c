"""Synced records in the admin: a read-only log with the catalogue's resolution beside every
failure; a record's page (retry it, or correct a line's account or VAT code and retry); the entry
preview and the INVOICE.json / CONFIG.json downloads; the failure review (failures.py)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from connectors.admin import ClientScopedAdminMixin, ReadOnlyAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from connectors.canonical import TargetLookups
from connectors.errors import ErrorCode, InvsyncError, message_text
from connectors.formatting import format_money
from mappings.lookups import cached_target_lookups, lookup_names
from syncs import selectors as sync_selectors
from syncs import services as sync_services
from syncs.admin.common import error_panel_html, pretty_json, queued_for_retry_text
from syncs.admin.failures import FailureReviewMixin
from syncs.forms import RecordOverridesForm
from syncs.models import RecordStatus, SyncedRecord
from syncs.preview import record_preview
from syncs.serialization import InputError, config_to_json, result_to_json


class ErrorCodeFilter(admin.SimpleListFilter):
    """By error code, each named by its code (the same in every language), as the failure review
    and the catalogue name it; the parameter is the field filter's, so links keep working."""

    title = _("error code")
    parameter_name = "error_code__exact"

    def lookups(self, request, model_admin):
        return [(code, code) for code in ErrorCode.values]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(error_code=value) if value else queryset


@admin.register(SyncedRecord)
class SyncedRecordAdmin(
    FailureReviewMixin, ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin
):
    client_lookup = "flow__client"
    list_display = (
        "number",
        "flow",
        "invoice_type",
        "partner_name",
        "total_display",
        "status",
        "error_code_display",
        "attempts",
        "updated_at",
    )
    list_filter = (
        ("flow", ClientScopedRelatedFilter),
        "status",
        ErrorCodeFilter,
        "invoice_type",
    )
    list_select_related = ("flow", "flow__client")
    search_fields = ("number", "source_id", "partner_name")
    fieldsets = (
        (
            _("Failure"),
            {
                "fields": (
                    "error_panel",
                    "overrides_summary",
                    "skip_reason_display",
                    "drift",
                    "preview_links",
                )
            },
        ),
        (
            _("Invoice"),
            {
                "fields": (
                    "flow",
                    "number",
                    "object_type",
                    "invoice_type",
                    "issue_date",
                    "partner_name",
                    "total_display",
                )
            },
        ),
        (
            _("State"),
            {
                "fields": (
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "last_run",
                    "target_number",
                    "note",
                    "synced_at",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        (
            _("Snapshot"),
            {
                "fields": ("snapshot_display", "overrides_display"),
                "classes": ("collapse",),
            },
        ),
        # The tools' own keys and invsync's bookkeeping: for support, folded away.
        (
            _("For support"),
            {
                "fields": ("source_id", "target_ref", "entry_key", "config_version", "fingerprint"),
                "classes": ("collapse",),
            },
        ),
    )
    readonly_fields = (
        "error_panel",
        "overrides_summary",
        "preview_links",
        "skip_reason_display",
        "drift",
        "flow",
        "number",
        "source_id",
        "object_type",
        "invoice_type",
        "issue_date",
        "partner_name",
        "currency",
        "total_display",
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

    @admin.display(description=_("total"), ordering="total")
    def total_display(self, obj: SyncedRecord) -> str:
        return format_money(obj.total, obj.currency)

    @admin.display(description=_("error code"), ordering="error_code")
    def error_code_display(self, obj: SyncedRecord):
        if not obj.error_code:
            return "—"
        # The resolution on hover; the record's page shows it in full.
        return format_html('<span title="{}">{}</span>', obj.resolution, obj.error_code)

    @admin.display(description=_("skip reason"))
    def skip_reason_display(self, obj: SyncedRecord) -> str:
        return obj.skip_text

    @admin.display(description=_("error and how to fix it"))
    def error_panel(self, obj: SyncedRecord):
        return error_panel_html(obj.error_code, obj.error_text, obj.error_field)

    @admin.display(description=_("invoice snapshot (INVOICE.json)"))
    def snapshot_display(self, obj: SyncedRecord):
        return pretty_json(obj.snapshot)

    @admin.display(description=_("overrides"))
    def overrides_display(self, obj: SyncedRecord):
        return pretty_json(obj.overrides)

    @admin.display(description=_("line overrides"))
    def overrides_summary(self, obj: SyncedRecord):
        overrides = sync_selectors.record_overrides(obj)
        if not overrides:
            return _("None: lines use their own account and the flow's VAT mapping.")
        items = format_html_join(
            "",
            "<li>{} {}: {}</li>",
            (
                (
                    _("Line"),
                    index + 1,
                    format_html_join(
                        ", ",
                        "{} <strong>{}</strong>",
                        [
                            (label, value)
                            for label, value in (
                                (_("account"), override.account),
                                (_("VAT code"), override.vat_code),
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
            '<p class="help">{}</p>',
            items,
            _(
                "Used on the next attempt instead of the line's own account or the flow's VAT "
                "mapping."
            ),
        )

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("syncs.change_syncedrecord")

    # -- Preview and downloads (the posting-preview contract, in the admin) -----------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            *self.failure_review_urls(),
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
            raise Http404(_("No such record."))
        return record

    @admin.display(description=_("preview"))
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
                self.message_user(request, _("Accounts, VAT codes and journals read again."))
            except InvsyncError as error:
                self.message_user(request, f"{error.code}: {error.message}", messages.ERROR)
            return redirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": record,
            "title": _("Preview of %(invoice)s") % {"invoice": record.number or record.source_id},
        }
        lookups = cached_target_lookups(record.flow)
        context["lookups_cached"] = lookups is not None
        context["names"] = lookup_names(lookups)
        try:
            result = record_preview(record)[2]
        except InputError as error:
            context["input_error"] = str(error)
        else:
            context["result"] = result_to_json(result)
            if result.status == "error":
                context["error_panel"] = error_panel_html(
                    result.code,
                    message_text(result.key, result.params, result.message),
                    result.field,
                )
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
            config = record_preview(record)[1]
        except InputError:
            # The snapshot is unreadable; the configuration alone still helps support.
            lookups = cached_target_lookups(record.flow) or TargetLookups()
            config = config_to_json(sync_selectors.flow_engine_config(record.flow, lookups))
        return self._download(config, f"CONFIG-{record.pk}.json")

    @admin.action(description=_("Retry"), permissions=["retry"])
    def retry(self, request, queryset):
        failed = queryset.filter(status=RecordStatus.FAILED)
        ignored = queryset.count() - failed.count()
        count = sync_services.records_retry_enqueue(records=failed)
        self.message_user(
            request,
            queued_for_retry_text(count),
            messages.SUCCESS if count else messages.INFO,
        )
        if ignored:
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected record was not failed and not retried.",
                    "%(count)d selected records were not failed and not retried.",
                    ignored,
                )
                % {"count": ignored},
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
            queued_for_retry_text(count)
            if count
            else _("Nothing to retry: no failed record left there."),
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
                    self.message_user(request, _("Line overrides saved."), messages.SUCCESS)
                    self._retry(request, SyncedRecord.objects.filter(pk=record.pk))
                else:
                    self.message_user(
                        request,
                        _("Line overrides saved; they are used when the record is retried."),
                        messages.SUCCESS,
                    )
                return redirect("admin:syncs_syncedrecord_change", record.pk)
            self.message_user(
                request, _("The overrides were not saved: see below."), messages.ERROR
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": record,
            "title": _("Correct the lines of %(invoice)s")
            % {"invoice": record.number or record.source_id},
            "error_panel": error_panel_html(
                record.error_code, record.error_text, record.error_field
            ),
            **self._overrides_context(record, lookups, form),
        }
        return TemplateResponse(request, "admin/syncs/syncedrecord/overrides.html", context)
