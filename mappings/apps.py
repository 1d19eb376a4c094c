from django.apps import AppConfig


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = "Sync flows and mappings"

    def ready(self) -> None:
        from mappings import receivers  # noqa: F401 - connects to connectors.signals
