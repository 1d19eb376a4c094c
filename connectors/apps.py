from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Clients and connections"

    def ready(self) -> None:
        from connectors import checks  # noqa: F401 - registers the system checks
