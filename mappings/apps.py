from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = _("Sync flows and mappings")

    def ready(self) -> None:
        from mappings import receivers  # noqa: F401 - connects to connectors.signals
