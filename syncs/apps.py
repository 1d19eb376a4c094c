from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncsConfig(AppConfig):
    name = "syncs"
    verbose_name = _("Synchronisation")
