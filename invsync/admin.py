"""Project-wide admin adjustments, applied by invsync/urls.py once every app's admin is registered.

social-auth (social_django) registers three admin pages of its own: associations, nonces and the
users' social accounts. invsync keeps OAuth2 tokens encrypted on the Connection, not in those
tables, so until OAuth2 connections use them only superusers see these pages (in the index and
at their URLs), whatever permissions a staff user holds.
"""

from __future__ import annotations

from django.contrib import admin
from social_django.models import Association, Nonce, UserSocialAuth

SUPERUSER_ONLY_MODELS = (Association, Nonce, UserSocialAuth)


class SuperuserOnlyAdminMixin:
    """Everything refused to users who are not superusers; superusers keep what the admin
    gives them."""

    @staticmethod
    def _superuser(request) -> bool:
        user = request.user
        return user.is_active and user.is_superuser

    def has_module_permission(self, request) -> bool:
        return self._superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._superuser(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args, **kwargs) -> bool:
        return self._superuser(request) and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._superuser(request) and super().has_delete_permission(request, obj)


def admin_pages_for_superusers_only(site: admin.AdminSite, models=SUPERUSER_ONLY_MODELS) -> None:
    """Register again each of ``models``' ModelAdmins on ``site`` with SuperuserOnlyAdminMixin
    in front (a model not registered is left alone)."""
    for model in models:
        model_admin = site._registry.get(model)
        if model_admin is None or isinstance(model_admin, SuperuserOnlyAdminMixin):
            continue
        admin_class = type(model_admin)
        restricted = type(
            f"SuperuserOnly{admin_class.__name__}", (SuperuserOnlyAdminMixin, admin_class), {}
        )
        site.unregister(model)
        site.register(model, restricted)
