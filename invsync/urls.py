from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.db import models
from django.urls import include, path

from connectors.form_fields import BoundedJSONField
from invsync.admin import admin_pages_for_superusers_only
from syncs.admin.setup import setup_urls
from syncs.webhooks import stripe_webhook

# One sign-in: the admin's login page sends to allauth's (email, password, then the TOTP code of
# users who have one), which comes back to the admin.
admin.autodiscover()
admin.site.login = secure_admin_login(admin.site.login)

# social-auth's own admin pages: superusers only until OAuth2 connections use them.
admin_pages_for_superusers_only(admin.site)

# Every admin form's JSON field, third-party admins' included (allauth's authenticators,
# social-auth's extra data), refuses with a message what would crash the page: deep nesting,
# megabytes (see connectors.form_fields).
for _model_admin in admin.site._registry.values():
    _model_admin.formfield_overrides.setdefault(models.JSONField, {"form_class": BoundedJSONField})

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    # The admin header's language switch posts here (Django's set_language: cookie, then back).
    path("i18n/", include("django.conf.urls.i18n")),
    # The guided set-up of a new flow (syncs/admin/setup.py), in the admin's pages.
    path("admin/setup/", include(setup_urls(admin.site))),
    path("admin/", admin.site.urls),
    # Stripe's webhook deliveries (syncs/webhooks.py): no login, the signature is the proof.
    path("hooks/stripe/<int:connection_id>/<str:token>/", stripe_webhook, name="stripe_webhook"),
]

# The site's header, title and home page: invsync/admin_site.py.
