"""The flow's mapping inlines (VAT and journal rows, their selects filled from the flow's tools),
the lookup helpers the flow's page shares (read once per request), and the configuration audit.
The flow's page itself (its ModelAdmin) is in syncs/admin/flows.py: it also starts runs."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Case, When
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.admin import ClientScopedAdminMixin, ReadOnlyAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from mappings.admin_widgets import sharing_select_options
from mappings.forms import (
    JournalMappingForm,
    JournalMappingFormSet,
    VatMappingForm,
    VatMappingFormSet,
)
from mappings.lookups import FlowLookups, flow_cached_lookups
from mappings.models import ConfigChange, DirectionChoice, JournalMapping, SyncFlow, VatMapping
from mappings.proposals import flow_vat_proposals
from mappings.services import flow_lookups_load

__all__ = [
    "PROPOSE_VAT",
    "ConfigChangeAdmin",
    "JournalMappingInline",
    "VatMappingInline",
    "flow_page_lookups",
    "page_shared_options",
    "proposing_vat",
    "report_lookup_problems",
    "stored_flow_page_lookups",
    "vat_proposals_for_page",
    "without_query_key",
]

PROPOSE_VAT = "propose_vat"


def without_query_key(response, key: str):
    """A redirect response whose target URL no longer carries ``key`` in its query string."""
    location = response.get("Location") if hasattr(response, "get") else None
    if not location or key not in location:
        return response
    parts = urlsplit(location)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != key])
    response["Location"] = urlunsplit(parts._replace(query=query))
    return response


# -- Lookups, read once per request ---------------------------------------------------------------


def _when(moment) -> str:
    return date_format(localtime(moment), "SHORT_DATETIME_FORMAT")


def report_lookup_problems(request, lookups: FlowLookups) -> None:
    """One admin message per tool that could not be read: its error code, what it means for
    this page, and what to do."""
    for problem in lookups.problems:
        if problem.tool == "accounting":
            if lookups.target_fetched_at is not None:
                consequence = gettext("The lists below are those read on %(when)s.") % {
                    "when": _when(lookups.target_fetched_at)
                }
            elif lookups.folders is not None:
                consequence = gettext("The folders below are those read before.")
            else:
                consequence = gettext(
                    "Its lists are not available: type the values in; they are checked against "
                    "the tool when it answers again."
                )
            unreadable = gettext("The accounting tool could not be read (%(code)s):")
        else:
            consequence = (
                gettext(
                    "VAT proposals and the check that every rate is mapped use the rates read "
                    "on %(when)s."
                )
                % {"when": _when(lookups.source_fetched_at)}
                if lookups.source_fetched_at
                else gettext(
                    "VAT proposals and the check that every rate is mapped are not available."
                )
            )
            unreadable = gettext("The invoicing tool could not be read (%(code)s):")
        what_to_do = gettext(
            "What to do: %(resolution)s Then use “Refresh from the accounting tool”."
        ) % {"resolution": problem.resolution}
        messages.warning(
            request,
            f"{unreadable % {'code': problem.code}} {problem.message} {consequence} {what_to_do}",
        )


def _may_read_tools(request) -> bool:
    # Calling the tools (and caching their answers) is for those who configure flows; the
    # others see the lists last read.
    return request.user.has_perm("mappings.change_syncflow")


def flow_page_lookups(request, flow: SyncFlow) -> FlowLookups:
    """The flow's lookups (cache first, else read from the tools once), memoised on the request
    so that the form, both inlines and the checklist share one read."""
    memo = request.__dict__.setdefault("_invsync_flow_lookups", {})
    key = (flow.accounting_connection_id, flow.invoicing_connection_id, flow.folder)
    if key not in memo:
        if _may_read_tools(request):
            lookups = flow_lookups_load(flow=flow)
            report_lookup_problems(request, lookups)
        else:
            lookups = flow_cached_lookups(flow)
        memo[key] = lookups
    return memo[key]


def stored_flow_page_lookups(request, flow: SyncFlow | None) -> FlowLookups | None:
    if flow is None or flow.pk is None:
        return None  # the add page: no connection chosen yet
    return flow_page_lookups(request, flow)


def proposing_vat(request) -> bool:
    return request.method == "GET" and PROPOSE_VAT in request.GET


def vat_proposals_for_page(request, flow: SyncFlow | None) -> list:
    if flow is None or flow.pk is None or not proposing_vat(request):
        return []
    memo = request.__dict__.setdefault("_invsync_vat_proposals", {})
    if flow.pk not in memo:
        memo[flow.pk] = flow_vat_proposals(flow, flow_page_lookups(request, flow))
    return memo[flow.pk]


def page_shared_options(request) -> set:
    """The option lists already written on this request's page (mappings.admin_widgets): the
    flow's form and both inlines write each distinct list once."""
    return request.__dict__.setdefault("_invsync_shared_options", set())


# -- Inlines ------------------------------------------------------------------------------------


class LookupInlineMixin:
    def get_formset(self, request, obj=None, **kwargs):
        lookups = stored_flow_page_lookups(request, obj)
        if lookups is not None:
            form = type(self.form.__name__, (self.form,), {"lookups": lookups})
            kwargs["form"] = sharing_select_options(form, page_shared_options(request))
        return super().get_formset(request, obj, **kwargs)


class VatMappingInline(LookupInlineMixin, admin.TabularInline):
    model = VatMapping
    form = VatMappingForm
    formset = VatMappingFormSet
    # The invoicing tool's names of a row's rate or tax are shown under its source tax
    # (VatMappingForm.source_names), not in a column of their own: the VAT codes get the room.
    fields = ("direction", "source_rate", "source_tax_id", "target_code", "collected_code")
    extra = 1
    verbose_name_plural = _("VAT mappings (source rate or tax → accounting VAT code)")
    # Rows grouped by direction, read by name, reverse charge explained, errors at the row.
    template = "admin/mappings/syncflow/vat_mapping_inline.html"

    def get_queryset(self, request):
        # Sales first, then purchases (the template groups the rows as they come).
        return (
            super()
            .get_queryset(request)
            .order_by(
                Case(When(direction=DirectionChoice.SALES, then=0), default=1),
                "source_rate",
                "source_tax_id",
            )
        )

    def get_extra(self, request, obj=None, **kwargs):
        proposals = vat_proposals_for_page(request, obj)
        return len(proposals) if proposals else self.extra


class JournalMappingInline(LookupInlineMixin, admin.TabularInline):
    model = JournalMapping
    form = JournalMappingForm
    formset = JournalMappingFormSet
    fields = ("source_journal", "target_journal")
    extra = 1
    verbose_name_plural = _("journal mappings (used when journals are mapped one by one)")


def audit_setting_label(name: str) -> str:
    """A changed setting as the flow's form names it ("Default sales account (products)" for
    ``default_sales_account``, the inline's title for ``vat_mappings``); other notes as stored."""
    inlines = {
        "vat_mappings": VatMappingInline.verbose_name_plural,
        "journal_mappings": JournalMappingInline.verbose_name_plural,
    }
    if name in inlines:
        return capfirst(str(inlines[name]))
    try:
        return capfirst(str(SyncFlow._meta.get_field(name).verbose_name))
    except FieldDoesNotExist:
        return name


def _audit_value(value) -> str:
    if value is True or value is False:
        return gettext("yes") if value else gettext("no")
    if value in (None, ""):
        return "—"
    return f"“{value}”" if isinstance(value, str) else str(value)


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    """The audit of flow configuration: read-only, as a log should be."""

    client_lookup = "client"
    list_display = ("at", "flow_label", "action", "actor_label", "changed_settings")
    list_filter = (
        "action",
        ("flow", ClientScopedRelatedFilter),
        ("client", ClientScopedRelatedFilter),
    )
    search_fields = ("flow_label", "actor_label")
    date_hierarchy = "at"
    readonly_fields = (
        "at", "client", "flow_display", "flow_label", "action", "actor", "actor_label",
        "changes_display", "snapshot_display",
    )  # fmt: skip
    fields = readonly_fields

    @admin.display(description=_("flow"))
    def flow_display(self, obj: ConfigChange):
        # A record belongs to the client it was made under: a flow moved to another client since
        # is named as it was then, never as that client's flow.
        flow = obj.flow
        if flow is None:
            return gettext("%(flow)s (deleted)") % {"flow": obj.flow_label}
        if flow.client_id != obj.client_id:
            return gettext("%(flow)s (since moved to another client)") % {"flow": obj.flow_label}
        url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
        return format_html('<a href="{}">{}</a>', url, flow)

    @admin.display(description=_("settings changed"))
    def changed_settings(self, obj: ConfigChange) -> str:
        names = [audit_setting_label(name) for name in obj.changes]
        more = len(names) - 6
        return ", ".join(names[:6]) + (
            gettext(" and %(count)d more") % {"count": more} if more > 0 else ""
        )

    @admin.display(description=_("what changed"))
    def changes_display(self, obj: ConfigChange):
        rows = []
        for name, change in obj.changes.items():
            if "added" in change:
                text = "; ".join(
                    [f"+ {x}" for x in change["added"]] + [f"− {x}" for x in change["removed"]]
                )
            else:
                text = f"{_audit_value(change['from'])} → {_audit_value(change['to'])}"
            rows.append(
                format_html("<tr><th>{}</th><td>{}</td></tr>", audit_setting_label(name), text)
            )
        return format_html("<table>{}</table>", mark_safe("".join(rows)))  # noqa: S308 - escaped rows

    @admin.display(description=_("configuration after"))
    def snapshot_display(self, obj: ConfigChange):
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            json.dumps(obj.snapshot, indent=2, ensure_ascii=False),
        )
