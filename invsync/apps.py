"""Django's admin with invsync's site (invsync/admin_site.py) as ``admin.site``."""

from django.contrib.admin.apps import AdminConfig


class InvsyncAdminConfig(AdminConfig):
    default_site = "invsync.admin_site.InvsyncAdminSite"
