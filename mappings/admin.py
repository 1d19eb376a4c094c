"""Sync flows in the admin: the configuration form, the mapping inlines, and the actions that start
runs and retries. Every write goes through mappings.services or syncs.services."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import slugify
from django.utils.timezone import localtime

from connectors.admin import CascadeLogsDeleteMixin, ClientScopedAdminMixin
from connectors.errors import InvsyncError
from mappings.models import JournalMapping, SyncFlow, VatMapping
from mappings.portable import flow_export
from mappings.selectors import (
    FLOW_RELATION_FIELDS,
    flow_configuration_fields,
    flow_list_with_run_stats,
)
from mappings.services import (
    MAX_SCHEDULE_MINUTES,
    flow_config_changed,
    flow_create,
    flow_delete,
    flow_schedule_sync,
    flow_update,
    flow_validate_connections,
    vat_mapping_key,
)
from syncs import services as sync_services
from syncs.models import RecordStatus, RunStatus, SyncedRecord


class VatMappingFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        # The database lets rows without a rate repeat (NULLs are distinct): check here.
        seen = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if form.cleaned_data.get("DELETE"):
                continue
            key = vat_mapping_key(form.cleaned_data)
            if key in seen:
                raise ValidationError("A source rate or tax is mapped twice.")
            seen.add(key)


class VatMappingInline(admin.TabularInline):
    model = VatMapping
    formset = VatMappingFormSet
    fields = ("direction", "source_rate", "source_tax_id", "target_code")
    extra = 1
    verbose_name_plural = "VAT mappings (source rate or tax → accounting VAT code)"


class JournalMappingInline(admin.TabularInline):
    model = JournalMapping
    fields = ("source_journal", "target_journal")
    extra = 1
    verbose_name_plural = "journal mappings (used when journals are mapped one by one)"


class SyncFlowAdminForm(forms.ModelForm):
    class Meta:
        model = SyncFlow
        fields = (*FLOW_RELATION_FIELDS, *flow_configuration_fields())

    def clean(self):
        cleaned = super().clean()
        client = cleaned.get("client")
        if client is not None:
            try:
                flow_validate_connections(
                    client=client,
                    invoicing_connection=cleaned.get("invoicing_connection"),
                    accounting_connection=cleaned.get("accounting_connection"),
                )
            except ValidationError as exc:
                for field_name, errors in exc.message_dict.items():
                    if field_name in self.cleaned_data:
                        self.add_error(field_name, errors)
        minutes = cleaned.get("schedule_minutes")
        if minutes and minutes > MAX_SCHEDULE_MINUTES:
            self.add_error(
                "schedule_minutes", f"Run at least every {MAX_SCHEDULE_MINUTES} minutes."
            )
        return cleaned


BOOKKEEPING_FIELDS = (
    "config_version",
    "source_cursor",
    "lease_owner",
    "lease_until",
    "created_at",
    "updated_at",
)


@admin.register(SyncFlow)
class SyncFlowAdmin(CascadeLogsDeleteMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    form = SyncFlowAdminForm
    inlines = (VatMappingInline, JournalMappingInline)
    list_display = (
        "name",
        "client",
        "invoicing_connection",
        "accounting_connection",
        "enabled",
        "last_run",
        "failed_records",
    )
    list_filter = ("enabled", ("client", admin.RelatedOnlyFieldListFilter), "scope")
    search_fields = ("name", "client__name")
    readonly_fields = BOOKKEEPING_FIELDS
    fieldsets = (
        (None, {"fields": ("client", "name")}),
        (
            "Connections & folder",
            {
                "fields": (
                    "invoicing_connection",
                    "accounting_connection",
                    "folder",
                    "folder_name",
                    "company_currency",
                )
            },
        ),
        (
            "What to sync",
            {
                "fields": (
                    "scope",
                    "start_date",
                    "draft_entries",
                    "sync_without_attachment",
                    "schedule_minutes",
                    "enabled",
                )
            },
        ),
        ("Journals", {"fields": ("sales_journal", "purchases_journal", "journals_by_source")}),
        (
            "Accounts",
            {
                "fields": (
                    "default_sales_account",
                    "default_purchases_account",
                    "customer_collective_account",
                    "supplier_collective_account",
                    "rounding_credit_account",
                    "rounding_debit_account",
                )
            },
        ),
        (
            "Discounts",
            {
                "fields": (
                    "separate_discounts",
                    "sales_discount_account",
                    "purchases_discount_account",
                )
            },
        ),
        (
            "VAT for rounding",
            {"fields": ("sales_rounding_vat_code", "purchases_rounding_vat_code")},
        ),
        ("Labels & tolerance", {"fields": ("label_mode", "rounding_tolerance")}),
        ("Bookkeeping", {"fields": BOOKKEEPING_FIELDS, "classes": ("collapse",)}),
    )
    actions = ("sync_now", "retry_failed_records", "export_configuration")

    def get_queryset(self, request):
        return flow_list_with_run_stats(super().get_queryset(request))

    @admin.display(description="last run", ordering="last_run_started_at")
    def last_run(self, obj: SyncFlow) -> str:
        if not obj.last_run_status:
            return "never"
        label = RunStatus(obj.last_run_status).label
        started = date_format(localtime(obj.last_run_started_at), "SHORT_DATETIME_FORMAT")
        return f"{label} ({started})"

    @admin.display(description="failed records", ordering="failed_record_count")
    def failed_records(self, obj: SyncFlow):
        if not obj.failed_record_count:
            return 0
        url = reverse("admin:syncs_syncedrecord_changelist")
        return format_html(
            '<a href="{}?flow__id__exact={}&amp;status__exact={}">{}</a>',
            url,
            obj.pk,
            RecordStatus.FAILED.value,
            obj.failed_record_count,
        )

    # Saving: the flow through its services, then the inlines, then the version and schedule.

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.cleaned_data}
        if change:
            flow_update(flow=obj, data=data)
        else:
            saved = flow_create(**data)
            # The admin goes on with the instance it built (inlines, log entry, redirect).
            obj.__dict__.update(saved.__dict__)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        flow = form.instance
        # After the mappings are saved, so a run never pairs the new version with old mappings.
        if any(formset.has_changed() for formset in formsets):
            flow_config_changed(flow=flow)
        flow_schedule_sync(flow=flow)

    def delete_model(self, request, obj):
        flow_delete(flow=obj)

    def delete_queryset(self, request, queryset):
        for flow in queryset:
            flow_delete(flow=flow)

    # Actions. Starting a run needs the right to add runs; retrying, the right to change records
    # (the admin itself never edits either).

    def has_sync_permission(self, request) -> bool:
        return request.user.has_perm("syncs.add_syncrun")

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("syncs.change_syncedrecord")

    @admin.action(description="Sync now", permissions=["sync"])
    def sync_now(self, request, queryset):
        queued = 0
        for flow in queryset:
            try:
                sync_services.flow_sync_enqueue(flow=flow, trigger="manual")
            except InvsyncError as exc:
                self.message_user(request, f"{flow}: {exc.message}", messages.ERROR)
            else:
                queued += 1
        if queued:
            self.message_user(
                request,
                f"Queued a sync of {queued} flow{'s' if queued != 1 else ''}.",
                messages.SUCCESS,
            )

    @admin.action(description="Retry all failed records", permissions=["retry"])
    def retry_failed_records(self, request, queryset):
        records = SyncedRecord.objects.filter(flow__in=queryset, status=RecordStatus.FAILED)
        count = sync_services.records_retry_enqueue(records=records)
        self.message_user(
            request,
            f"Queued {count} failed record{'s' if count != 1 else ''} for retry.",
            messages.SUCCESS if count else messages.INFO,
        )

    @admin.action(description="Export configuration (JSON)", permissions=["view"])
    def export_configuration(self, request, queryset):
        flows = list(queryset[:2])
        if len(flows) != 1:
            self.message_user(request, "Select exactly one flow to export.", messages.WARNING)
            return None
        flow = flows[0]
        response = HttpResponse(
            json.dumps(flow_export(flow=flow), indent=2, ensure_ascii=False) + "\n",
            content_type="application/json",
        )
        filename = f"flow-{slugify(flow.client.name)}-{slugify(flow.name)}.json"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
