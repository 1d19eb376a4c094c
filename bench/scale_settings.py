"""Settings for scale-out runs (bench/scale.py, tests/integration/test_scale_out.py): invsync's own
settings, plus the ``bench`` app, whose ``ready()`` adds the shared benchmark connectors
(``SharedSource``/``SharedTarget``, provider ``shared``) to the connector registry of every process
started with ``DJANGO_SETTINGS_MODULE=bench.scale_settings`` — the ``manage.py qcluster`` workers
among them. The shipped registry (``connectors.registry.SHIPPED``) is left as it is.
"""

from django.apps import AppConfig

from invsync.settings import *  # noqa: F403
from invsync.settings import INSTALLED_APPS


class BenchConnectorsConfig(AppConfig):
    name = "bench"
    label = "invsync_bench"
    verbose_name = "Benchmark connectors"

    def ready(self) -> None:
        from bench.connectors import register_shared

        register_shared()


INSTALLED_APPS = [*INSTALLED_APPS, "bench.scale_settings.BenchConnectorsConfig"]
