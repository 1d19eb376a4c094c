"""The failure review (``admin:syncs_failures``, per flow ``admin:syncs_flow_failures``): failed
records grouped by error code, with the setting that fixes each code, the records and a retry of
each group. Served by the SyncedRecord admin (records.py)."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _

from connectors.base import AuthKind
from connectors.errors import CATALOGUE, ErrorCode, ErrorInfo
from connectors.oauth_admin import connect_url
from mappings.models import SyncFlow
from syncs import selectors as sync_selectors
from syncs.admin.common import changelist_url, failed_records_url, records_url
from syncs.models import PartnerLink, RecordStatus


def fix_links(flow: SyncFlow, info: ErrorInfo | None) -> list[tuple[str, str]]:
    """(label, url) of the setting that usually fixes an error (the catalogue's ``setting``): a
    flow field (its change page, anchored at the field), a mapping inline (anchored at it), the
    connections, or the flow's partner links. Empty when the fix is in a tool, not in invsync."""
    setting = info.setting if info else ""
    if not setting:
        return []
    flow_url = reverse("admin:mappings_syncflow_change", args=[flow.pk])
    if setting == "connection":
        links = [
            (
                _("Invoicing connection"),
                reverse("admin:connectors_connection_change", args=[flow.invoicing_connection_id]),
            ),
            (
                _("Accounting connection"),
                reverse("admin:connectors_connection_change", args=[flow.accounting_connection_id]),
            ),
        ]
        if info is CATALOGUE[ErrorCode.OAUTH_GRANT_REVOKED]:
            # Reconnect starts the OAuth2 dance of the flow's OAuth2 connection(s) at once.
            connections = (flow.invoicing_connection, flow.accounting_connection)
            reconnect = [
                (_("Reconnect %(name)s") % {"name": connection.name}, connect_url(connection))
                for connection in connections
                if connection.auth_kind == AuthKind.OAUTH2
            ]
            links = reconnect + links
        return links
    if setting == "partner_links":
        return [
            (_("Partner links of the flow"), changelist_url(PartnerLink, flow__id__exact=flow.pk))
        ]
    if setting in ("vat_mappings", "journal_mappings"):
        # The admin's inline formsets are <div id="<prefix>-group">, the prefix being the
        # relation's name.
        label = (
            _("VAT mappings of the flow")
            if setting == "vat_mappings"
            else _("Journal mappings of the flow")
        )
        return [(label, f"{flow_url}#{setting}-group")]
    try:
        field = SyncFlow._meta.get_field(setting)
    except FieldDoesNotExist:  # a section ("configuration"), not one field
        return [(_("Flow configuration"), flow_url)]
    label = _("Flow setting: %(name)s") % {"name": field.verbose_name}
    return [(label, f"{flow_url}#id_{setting}")]


class FailureReviewMixin:
    """The failure review pages, for the SyncedRecord admin (it gives ``_retry`` and
    ``has_retry_permission``)."""

    def failure_review_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("failures/", wrap(self.failures_view), name="syncs_failures"),
            path(
                "failures/<int:flow_pk>/",
                wrap(self.flow_failures_view),
                name="syncs_flow_failures",
            ),
        ]

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
                "records_url": failed_records_url(flow.pk if flow else None, group.code),
                "flows": [
                    {
                        "flow": per_flow.flow,
                        "count": per_flow.count,
                        "fix_links": fix_links(per_flow.flow, group.info),
                        "records_url": failed_records_url(per_flow.flow.pk, group.code),
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
            "title": _("Failures of %(flow)s") % {"flow": flow}
            if flow
            else _("Failures of all flows"),
            "flow": flow,
            "groups": rows,
            "failed_total": sum(group.count for group in groups),
            "can_retry": self.has_retry_permission(request),
            "all_failures_url": reverse("admin:syncs_failures"),
            "dashboard_url": reverse("admin:syncs_flow_dashboard", args=[flow.pk]) if flow else "",
            "records_url": records_url(
                flow.pk if flow else None, status__exact=RecordStatus.FAILED.value
            ),
        }
        return TemplateResponse(request, "admin/syncs/failures.html", context)
