"""The flow's page in the admin (admin:mappings_syncflow_*): the configuration form, the mapping
inlines, the setup checklist, the preview of the next invoices, and the actions that start runs
and retries. It is where mappings and runs meet, so it lives in the top layer; the inlines, forms
and lookup helpers it uses are mappings'. Every write goes through mappings.services or
syncs.services."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from connectors.admin import CascadeLogsDeleteMixin, ClientScopedAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from connectors.errors import InvsyncError, error_info
from mappings.admin import (
    PROPOSE_VAT,
    JournalMappingInline,
    VatMappingInline,
    flow_page_lookups,
    page_shared_options,
    proposing_vat,
    report_lookup_problems,
    stored_flow_page_lookups,
    vat_proposals_for_page,
    without_query_key,
)
from mappings.admin_widgets import sharing_select_options
from mappings.audit import one_record_per_save
from mappings.checklist import StepState, flow_setup_checklist, flows_setup_checklists
from mappings.flow_settings import flow_fieldsets
from mappings.forms import SyncFlowAdminForm
from mappings.lookups import FlowLookups, lookup_names
from mappings.models import SyncFlow
from mappings.portable import flow_export
from mappings.services import (
    flow_config_changed,
    flow_create,
    flow_delete,
    flow_lookups_load,
    flow_schedule_sync,
    flow_update,
)
from syncs import selectors as sync_selectors
from syncs import services as sync_services
from syncs.admin.common import queued_for_retry_text
from syncs.models import RecordStatus, SyncedRecord
from syncs.preview import flow_preview
from syncs.run.pause import flow_paused_until
from syncs.selectors import flow_list_with_run_stats
from syncs.states import paused_text, run_state_text, state_text

__all__ = ["SyncFlowAdmin"]


def _dashboard_url(flow: SyncFlow) -> str:
    # The dashboard belongs to the syncs admin; a flow page works without it.
    try:
        return reverse("admin:syncs_flow_dashboard", args=[flow.pk])
    except NoReverseMatch:
        return ""


def _reconciliation_url(flow: SyncFlow) -> str:
    try:
        return reverse("admin:syncs_flow_reconciliation", args=[flow.pk])
    except NoReverseMatch:
        return ""


def _sees_reports(user) -> bool:
    """The dashboard and the reconciliation show runs and records: the right to see both."""
    return (user.has_perm("syncs.view_syncrun") or user.has_perm("syncs.change_syncrun")) and (
        user.has_perm("syncs.view_syncedrecord") or user.has_perm("syncs.change_syncedrecord")
    )


BOOKKEEPING_FIELDS = (
    "config_version",
    "source_cursor",
    "lease_owner",
    "lease_until",
    "paused_until",
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
        "setup_progress",
        "last_run",
        "failed_records",
    )
    list_filter = ("enabled", ("client", ClientScopedRelatedFilter), "scope")
    search_fields = ("name", "client__name")
    readonly_fields = BOOKKEEPING_FIELDS
    # The settings' fieldsets come from their declaration (mappings/flow_settings.py); the
    # shared-ledger confirmation is the form's own field, shown after "enabled".
    fieldsets = (
        # The declaration's group names are English; shown in the reader's language.
        *(
            (gettext_lazy(group) if group else None, options)
            for group, options in flow_fieldsets(extra={"What to sync": ("confirm_shared_ledger",)})
        ),
        (gettext_lazy("Bookkeeping"), {"fields": BOOKKEEPING_FIELDS, "classes": ("collapse",)}),
    )
    actions = ("sync_now", "retry_failed_records", "export_configuration")

    def get_list_display(self, request):
        # The reconciliation link, for those who may open it.
        shown = super().get_list_display(request)
        return (*shown, "reports") if _sees_reports(request.user) else shown

    @admin.display(description=gettext_lazy("reports"))
    def reports(self, obj: SyncFlow):
        url = _reconciliation_url(obj)
        return format_html('<a href="{}">{}</a>', url, _("Reconciliation")) if url else ""

    def get_queryset(self, request):
        queryset = flow_list_with_run_stats(super().get_queryset(request))
        # The checklist reads the mappings of every flow listed; the connections' names say
        # their client.
        return queryset.select_related(
            "invoicing_connection__client", "accounting_connection__client"
        ).prefetch_related("vat_mappings", "journal_mappings")

    def get_changelist_instance(self, request):
        # The setup column of the listed flows, read at once (not one lookups query per row).
        changelist = super().get_changelist_instance(request)
        checklists = flows_setup_checklists(changelist.result_list)
        for flow in changelist.result_list:
            flow.setup_steps = checklists[flow.pk]
        return changelist

    @admin.display(description=gettext_lazy("setup"))
    def setup_progress(self, obj: SyncFlow):
        steps = getattr(obj, "setup_steps", None) or flow_setup_checklist(obj)
        steps = [step for step in steps if step.counted]
        missing = [step.name for step in steps if step.blocking]
        to_check = [step.name for step in steps if step.state is StepState.TO_CHECK]
        title = "; ".join(
            part
            for part in (
                _("Missing: %(steps)s") % {"steps": ", ".join(missing)} if missing else "",
                _("To check: %(steps)s") % {"steps": ", ".join(to_check)} if to_check else "",
            )
            if part
        )
        return format_html(
            '<span title="{}">{}/{}{}</span>',
            title or _("Setup complete"),
            sum(step.done for step in steps),
            len(steps),
            format_html(" ⚠ {}", _("to check")) if to_check and not missing else "",
        )

    @admin.display(description=gettext_lazy("last run"), ordering="last_run_started_at")
    def last_run(self, obj: SyncFlow):
        if not obj.last_run_status:
            return _("never")
        # From the run's counts: a run with failed records reads "Completed, N failed".
        label = state_text(
            obj.last_run_status,
            obj.last_run_failed_count,
            obj.last_run_error_code,
            obj.paused_until,  # a paused last run: when the flow resumes
        )
        started = date_format(localtime(obj.last_run_started_at), "SHORT_DATETIME_FORMAT")
        return format_html(
            '<a href="{}">{}</a> ({})',
            reverse("admin:syncs_syncrun_change", args=[obj.last_run_id]),
            label,
            started,
        )

    @admin.display(description=gettext_lazy("failed records"), ordering="failed_record_count")
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

    # The form and inlines get the flow's lookups: selects, and values checked against them.

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form = type(
            form.__name__,
            (form,),
            {
                "lookups": stored_flow_page_lookups(request, obj),
                "load_lookups": staticmethod(lambda flow: flow_page_lookups(request, flow)),
            },
        )
        # The long selects' options written once on the page (the inlines share the set).
        return sharing_select_options(form, page_shared_options(request))

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, VatMappingInline):
            proposals = vat_proposals_for_page(request, obj)
            if proposals:
                kwargs["initial"] = [
                    {**proposal.as_initial(), "source_name": proposal.source_name}
                    for proposal in proposals
                ]
        return kwargs

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            context.update(self._flow_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _flow_page_context(self, request, obj: SyncFlow) -> dict:
        # The stored flow: after a refused save ``obj`` holds the values typed in.
        flow = SyncFlow.objects.select_related(
            "client", "invoicing_connection", "accounting_connection"
        ).get(pk=obj.pk)
        lookups = flow_page_lookups(request, flow)
        steps = flow_setup_checklist(flow, lookups=lookups)
        if proposing_vat(request):
            self._report_proposals(request, flow, lookups)
        counted = [step for step in steps if step.counted]
        return {
            "flow_setup": {
                "steps": steps,
                "done": sum(step.done for step in counted),
                "total": len(counted),
                "to_check": sum(step.state is StepState.TO_CHECK for step in counted),
                # Nothing keeps the flow from being enabled (steps to check do not).
                "complete": not any(step.blocking for step in counted),
                "lookups": lookups,
                "folder_first": not flow.folder,
                "target_fetched_at": lookups.target_fetched_at,
                "source_fetched_at": lookups.source_fetched_at,
                "invoicing_connection_url": reverse(
                    "admin:connectors_connection_change", args=[flow.invoicing_connection_id]
                ),
                "accounting_connection_url": reverse(
                    "admin:connectors_connection_change", args=[flow.accounting_connection_id]
                ),
            },
            "flow_tools": {
                "preview_url": reverse("admin:mappings_syncflow_preview", args=[flow.pk]),
                "refresh_url": reverse("admin:mappings_syncflow_refresh_lookups", args=[flow.pk]),
                "propose_url": "?" + PROPOSE_VAT + "=1#vat_mappings-group",
                "dashboard_url": _dashboard_url(flow),
                "reconciliation_url": _reconciliation_url(flow)
                if _sees_reports(request.user)
                else "",
                "can_change": self.has_change_permission(request, flow),
            },
        }

    def _report_proposals(self, request, flow: SyncFlow, lookups: FlowLookups) -> None:
        proposals = vat_proposals_for_page(request, flow)
        if lookups.source_rates is None:
            messages.warning(
                request,
                _("The invoicing tool's VAT rates are unknown: there is nothing to propose."),
            )
        elif not proposals:
            messages.info(request, _("Every VAT rate the invoicing tool uses is mapped already."))
        else:
            open_rows = sum(1 for p in proposals if not p.target_code)
            proposed = ngettext(
                "%(count)d VAT mapping proposed below, pre-filled and not saved yet: check its "
                "VAT code",
                "%(count)d VAT mappings proposed below, pre-filled and not saved yet: check each "
                "VAT code",
                len(proposals),
            ) % {"count": len(proposals)}
            if open_rows:
                proposed += ngettext(
                    " and choose one for the %(count)d rate without an obvious code",
                    " and choose one for the %(count)d rates without an obvious code",
                    open_rows,
                ) % {"count": open_rows}
            messages.info(request, proposed + _(", remove the rows you do not want, then save."))

    # Saving: the flow through its services, then the inlines, then the version and schedule.

    def response_change(self, request, obj):
        # Django keeps the query string on "Save and continue editing"; proposals must not come
        # back once saved (rows the accountant removed would be proposed, and saved, again).
        response = super().response_change(request, obj)
        return without_query_key(response, PROPOSE_VAT)

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        return without_query_key(response, PROPOSE_VAT)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        # The flow, then its VAT and journal rows, are saved in steps: the audit records them as
        # the one change they are, by the same person, in the save's own transaction.
        with transaction.atomic(), one_record_per_save():
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.cleaned_data}
        data.pop("confirm_shared_ledger", None)  # a confirmation, not a flow field
        # The rows the inlines save next: the services' completeness check counts them.
        rows = getattr(form, "prospective_mappings", {})
        confirmed = getattr(form, "shared_ledger_confirmed", [])
        if change:
            flow_update(flow=obj, data=data, shared_ledger_confirmed=confirmed, **rows)
        else:
            saved = flow_create(**data, shared_ledger_confirmed=confirmed, **rows)
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

    # Refresh and preview pages.

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/refresh-lookups/",
                wrap(self.refresh_lookups_view),
                name="mappings_syncflow_refresh_lookups",
            ),
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="mappings_syncflow_preview",
            ),
            *super().get_urls(),
        ]

    def _flow_or_404(self, request, object_id: str) -> SyncFlow:
        flow = self.get_object(request, unquote(object_id))
        if flow is None:
            raise Http404(_("No such flow."))
        return flow

    def refresh_lookups_view(self, request, object_id: str):
        """Read the flow's lists from both tools again (POST), then back to the flow."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        flow = self._flow_or_404(request, object_id)
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        lookups = flow_lookups_load(flow=flow, refresh=True)
        report_lookup_problems(request, lookups)
        read = []
        if lookups.folders is not None and not any(
            p.tool == "accounting" for p in lookups.problems
        ):
            count = len(lookups.folders)
            read.append(ngettext("%(count)d folder", "%(count)d folders", count) % {"count": count})
            if flow.folder and lookups.has_folder_lists:
                read.append(
                    _(
                        "%(accounts)d accounts, %(vat_codes)d VAT codes and %(journals)d journals "
                        "from the accounting tool"
                    )
                    % {
                        "accounts": len(lookups.accounts),
                        "vat_codes": len(lookups.vat_codes),
                        "journals": len(lookups.journals),
                    }
                )
        if lookups.source_rates is not None and not any(
            p.tool == "invoicing" for p in lookups.problems
        ):
            read.append(
                _("%(count)d tax rates from the invoicing tool")
                % {"count": len(lookups.source_rates)}
            )
        if read:
            messages.success(request, _("Read %(what)s.") % {"what": "; ".join(read)})
        return HttpResponseRedirect(reverse("admin:mappings_syncflow_change", args=[flow.pk]))

    def preview_view(self, request, object_id: str):
        """What the next run would write for the next invoices of the source. Writes nothing."""
        flow = self._flow_or_404(request, object_id)
        if not self.has_view_or_change_permission(request, flow):
            raise PermissionDenied
        lookups = flow_page_lookups(request, flow)
        preview, error = None, None
        try:
            preview = flow_preview(flow, lookups=lookups)
        except InvsyncError as exc:
            info = error_info(exc.code)
            error = {"code": exc.code.value, "message": exc.message, "resolution": info.resolution}
        steps = flow_setup_checklist(flow, lookups=lookups)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": flow,
            "title": _("Preview of %(flow)s") % {"flow": flow},
            "preview": preview,
            "error": error,
            "missing_steps": [step for step in steps if step.blocking],
            "flow_url": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
            "dashboard_url": _dashboard_url(flow),
            "lookups": lookups,
            "names": lookup_names(lookups.target_lookups()),
        }
        return TemplateResponse(request, "admin/mappings/syncflow/preview.html", context)

    # Actions. Starting a run needs the right to add runs; retrying, the right to change records
    # (the admin itself never edits either).

    def has_sync_permission(self, request) -> bool:
        return request.user.has_perm("syncs.add_syncrun")

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("syncs.change_syncedrecord")

    @admin.action(description=gettext_lazy("Sync now"), permissions=["sync"])
    def sync_now(self, request, queryset):
        for flow in queryset:
            since = timezone.now()
            paused_until = flow_paused_until(flow, since)
            if paused_until is not None:
                # Its tool's daily limit is reached: a run now would stop at once.
                self.message_user(
                    request,
                    format_html(
                        _("“{}” waits: {}. It resumes on its own then; nothing failed."),
                        flow,
                        paused_text(paused_until),
                    ),
                    messages.WARNING,
                )
                continue
            try:
                task_id = sync_services.flow_sync_enqueue(flow=flow, trigger="manual")
            except InvsyncError as exc:
                self.message_user(request, f"{flow}: {exc.message}", messages.ERROR)
                continue
            # The run the task started: there already when a worker was quick (or tasks run in
            # the request); else a page that follows it until it starts.
            queued = sync_selectors.queued_run(flow=flow, task_id=task_id, since=since)
            if queued.run is not None:
                link = format_html(
                    '<a href="{}">{}</a> — {}',
                    reverse("admin:syncs_syncrun_change", args=[queued.run.pk]),
                    _("run %(number)s") % {"number": queued.run.pk},
                    run_state_text(queued.run),
                )
            else:
                url = reverse("admin:syncs_syncrun_queued", args=[flow.pk])
                link = format_html(
                    '<a href="{}?{}">{}</a>',
                    url,
                    urlencode({"task": task_id or "", "since": since.timestamp()}),
                    _("follow its run"),
                )
            self.message_user(
                request,
                format_html(_("Queued a sync of “{}”: {}."), flow, link),
                messages.SUCCESS,
            )

    @admin.action(description=gettext_lazy("Retry all failed records"), permissions=["retry"])
    def retry_failed_records(self, request, queryset):
        records = SyncedRecord.objects.filter(flow__in=queryset, status=RecordStatus.FAILED)
        count = sync_services.records_retry_enqueue(records=records)
        self.message_user(
            request,
            queued_for_retry_text(count),
            messages.SUCCESS if count else messages.INFO,
        )

    @admin.action(description=gettext_lazy("Export configuration (JSON)"), permissions=["view"])
    def export_configuration(self, request, queryset):
        flows = list(queryset[:2])
        if len(flows) != 1:
            self.message_user(request, _("Select exactly one flow to export."), messages.WARNING)
            return None
        flow = flows[0]
        response = HttpResponse(
            json.dumps(flow_export(flow=flow), indent=2, ensure_ascii=False) + "\n",
            content_type="application/json",
        )
        filename = f"flow-{slugify(flow.client.name)}-{slugify(flow.name)}.json"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
