import pytest

from connectors import registry
from tests.doubles import MemorySource, MemoryTarget

# The live Tryton fixtures (installed and started only when a test asks for them).
pytest_plugins = ["tests.tryton_fixtures"]


@pytest.fixture
def memory_connectors():
    """Register the in-memory source and target (provider key ``memory``) with empty state."""
    MemorySource.reset()
    MemoryTarget.reset()
    with registry.override([MemorySource, MemoryTarget]):
        yield MemorySource, MemoryTarget


@pytest.fixture
def q_sync(settings):
    """Run django-q2 tasks synchronously, in the test's process and transaction."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    from django_q.conf import Conf

    previous = Conf.SYNC
    Conf.SYNC = True
    yield
    Conf.SYNC = previous
