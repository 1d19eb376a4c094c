"""Xero's daily limit reached mid-run, then the next day (issue #16 points 3 and 4): the fake Xero
(connectors/devtools/xero_fake.py, every request and answer checked against Xero's spec) allows
a few calls a day for the organisation; the run meets its 429 (``X-Rate-Limit-Problem: day``, a
Retry-After of hours), stops paused with nothing failed, and the flow waits. The fake's clock and
invsync's (django.utils.timezone.now) then move to the next day: the queued run writes the rest,
each invoice once, each with its PDF."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from connectors import registry
from connectors.devtools.xero_fake import XeroFake
from connectors.errors import ErrorCode
from connectors.http import HttpClient
from connectors.providers.xero.target import XeroTarget
from connectors.ratelimit_store import forget_shared_limiters
from mappings.models import SyncFlow
from syncs import tasks
from syncs.models import RecordStatus, RunStatus, RunTrigger, SyncedRecord, SyncRun
from tests.doubles import MemorySource
from tests.integration.test_xero_sync import gbp, make_flow

pytestmark = pytest.mark.django_db

# Each invoice costs four calls here (its new contact, the look-up by reference, the document,
# its PDF) after three look-ups a run: 16 calls a day write three invoices on the first day and
# stop at the fourth; the second day has room for the last two.
INVOICES = 5
CALLS_A_DAY = 16


class Clock:
    """The fake Xero's clock, moved by the client's waits (no real sleep)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    post_init = HttpClient.__post_init__

    def with_clock(self):
        self.sleep = clock.sleep
        post_init(self)

    monkeypatch.setattr(HttpClient, "__post_init__", with_clock)
    forget_shared_limiters()
    yield clock
    forget_shared_limiters()


@pytest.fixture
def fake(clock):
    with XeroFake(clock=clock, day_limit=CALLS_A_DAY) as fake:
        yield fake
        fake.assert_no_violations()


@pytest.fixture
def tenant(fake):
    return fake.add_tenant("Atelier Ltd")


@pytest.fixture
def source():
    MemorySource.reset()
    with registry.override([MemorySource, XeroTarget]):
        yield MemorySource


def numbers_in_xero(tenant) -> list[str]:
    return sorted(
        str(d.get("InvoiceNumber") or "").split(" [")[0] for d in tenant.invoices.values()
    )


def test_the_daily_limit_reached_mid_run_pauses_then_the_next_day_writes_the_rest_once(
    fake, tenant, source, clock, settings, monkeypatch
):
    settings.INVSYNC_BATCH_SIZE = 1  # one document per POST: the day runs out mid-run
    invoices = [gbp() for _ in range(INVOICES)]
    source.put(*invoices)
    # An access token valid for days (the fake's clock moves a day ahead below).
    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=7 * 86_400.0)
    flow = make_flow(fake, tenant, token=token)
    SyncFlow.objects.filter(pk=flow.pk).update(enabled=True)

    first = SyncRun.objects.get(pk=tasks.run_flow(flow.pk)["run"])

    assert any(status == 429 for _, status in fake.answers)  # Xero's "day" 429
    assert first.status == RunStatus.PAUSED, (first.status, first.error_message)
    assert first.error_code == ErrorCode.DAILY_LIMIT_REACHED
    assert (first.synced_count, first.failed_count) == (3, 0)
    records = SyncedRecord.objects.filter(flow=flow)
    assert not records.filter(status=RecordStatus.FAILED).exists()
    assert len(tenant.invoices) == 3
    flow.refresh_from_db()
    # Xero's Retry-After: the day's first call leaves the window a day after it was made.
    assert flow.paused_until is not None
    assert flow.paused_until - timezone.now() > dt.timedelta(hours=23)

    # Still the same day: the schedule skips the flow, nothing is sent to Xero.
    sent = len(fake.answers)
    assert tasks.run_flow(flow.pk, trigger=RunTrigger.SCHEDULE)["status"] == "paused"
    assert len(fake.answers) == sent and SyncRun.objects.filter(flow=flow).count() == 1

    # The next day, on both clocks: the run queued at the pause's end writes the rest.
    clock.now += 86_400
    resume = flow.paused_until + dt.timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: resume)
    second = SyncRun.objects.get(pk=tasks.run_flow(flow.pk)["run"])

    assert second.status == RunStatus.SUCCEEDED, (second.status, second.error_message)
    assert second.failed_count == 0
    assert records.filter(status=RecordStatus.SYNCED).count() == INVOICES
    # Each invoice once in Xero, with its PDF.
    assert numbers_in_xero(tenant) == sorted(i.number for i in invoices)
    assert {i: len(files) for i, files in tenant.attachments.items()} == dict.fromkeys(
        tenant.invoices, 1
    )
    # And each customer once among Xero's contacts (the one created before the pause is found).
    names = [c.get("Name") for c in tenant.contacts.values()]
    assert sorted(names) == sorted({i.partner.name for i in invoices})
    flow.refresh_from_db()
    assert flow.paused_until is None
