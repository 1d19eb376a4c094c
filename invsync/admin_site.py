"""invsync's admin site: a home page for the work instead of Django's list of every app, and the
technical sections out of the way of the staff who are not superusers.

The home page (``admin:index``) shows what needs attention first: failed records by flow and
error code with what to do and a link to the failure review, flows not set up or disabled, runs
in progress, then each flow's last and next run and its records waiting for their PDF
(:func:`syncs.home.home_for_user`, scoped to the user's clients). Below: the work's own sections
(clients and connections, flows, runs and records), and for superusers a "Technical" section
(background tasks, social-auth, two-factor devices, email addresses, groups).

Staff who are not superusers never see the technical sections in the home page nor in the
sidebar (a model page they hold a permission for still answers at its address)."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from syncs.home import home_for_user

# Sections for whoever runs the installation, not for the accountants who use it.
TECHNICAL_APPS = frozenset({"django_q", "social_django", "mfa", "account", "socialaccount"})
# Models of a work section that are technical all the same: (app label, object name).
TECHNICAL_MODELS = frozenset({("auth", "Group")})


def _technical_part(app: dict) -> dict | None:
    """The technical models of ``app`` (the whole app for a technical one), or None."""
    if app["app_label"] in TECHNICAL_APPS:
        return app
    models = [m for m in app["models"] if (app["app_label"], m["object_name"]) in TECHNICAL_MODELS]
    return {**app, "models": models} if models else None


def _work_part(app: dict) -> dict | None:
    """``app`` without its technical models, or None when nothing is left."""
    if app["app_label"] in TECHNICAL_APPS:
        return None
    models = [
        m for m in app["models"] if (app["app_label"], m["object_name"]) not in TECHNICAL_MODELS
    ]
    return {**app, "models": models} if models else None


def split_app_list(app_list: list[dict]) -> tuple[list[dict], list[dict]]:
    """(work sections, technical sections) of an admin app list."""
    work = [part for app in app_list if (part := _work_part(app)) is not None]
    technical = [part for app in app_list if (part := _technical_part(app)) is not None]
    return work, technical


class InvsyncAdminSite(admin.AdminSite):
    site_header = "invsync"
    site_title = "invsync"
    index_title = _("What needs attention")
    index_template = "admin/invsync_home.html"

    def get_app_list(self, request, app_label=None):
        """Every section for a superuser, the work's first; without the technical ones for
        everyone else. The home page and the sidebar read this."""
        apps = super().get_app_list(request, app_label)
        user = request.user
        if user.is_active and user.is_superuser:
            return sorted(apps, key=lambda app: app["app_label"] in TECHNICAL_APPS)
        return split_app_list(apps)[0]

    def index(self, request, extra_context=None):
        app_list = self.get_app_list(request)
        work, technical = split_app_list(app_list)
        context = {
            **self.each_context(request),
            "title": self.index_title,
            "subtitle": None,
            "app_list": app_list,
            "work_apps": work,
            "technical_apps": technical,
            "home": home_for_user(request.user),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.index_template, context)
