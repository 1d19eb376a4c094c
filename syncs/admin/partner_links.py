"""Partner links in the admin: made by runs, viewed and deleted by staff."""

from __future__ import annotations

from django.contrib import admin

from connectors.admin import ClientScopedAdminMixin
from connectors.admin_filters import ClientScopedRelatedFilter
from syncs.models import PartnerLink


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
