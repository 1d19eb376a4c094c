"""Stripe's webhook (issue #17 point 3): signed deliveries from the fake Stripe queue one run per
enabled flow reading the connection through the "Sync now" service, coalesced and replay-safe;
anything unsigned, wrongly signed or stale is refused with nothing said."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Task

from connectors.devtools.stripe_fake import Line, StripeFake
from connectors.services import connection_update
from syncs import services
from syncs.models import RunTrigger, WebhookEvent
from syncs.tasks import run_flow
from syncs.webhooks import (
    SIGNATURE_TOLERANCE_SECONDS,
    stripe_signature_valid,
    stripe_webhook_path,
    stripe_webhook_secret_set,
)
from tests.factories import ConnectionFactory, SyncFlowFactory, SyncRunFactory
from tests.integration.test_admin import _form_data as form_data

SECRET = "whsec_test_5f0c1d2e3a4b"

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def stripe():
    """The fake Stripe's objects and events (its server is not needed to sign deliveries)."""
    with StripeFake(rate_limit=False) as fake:
        acct = fake.add_account("Acme SAS")
        vat = fake.add_tax_rate(acct, "20")
        customer = fake.add_customer(acct, "Client SA", tax_ids=[("eu_vat", "FR40303265045")])
        invoices = [
            fake.add_invoice(acct, customer, [Line(f"Item {n}", 1000, tax_rates=[vat["id"]])])
            for n in range(4)
        ]
        fake.void(acct, invoices[1]["id"])
        fake.add_credit_note(acct, invoices[2]["id"])
        paid = fake.add_invoice(acct, customer, [Line("Paid", 500)], status="paid")
        yield fake, acct, invoices, paid


def event(stripe, kind: str, index: int = 0) -> dict:
    fake, acct, invoices, paid = stripe
    if kind == "credit_note.created":
        note = next(iter(acct.credit_notes.values()))
        return fake.event_for(acct, kind, note["id"])
    if kind == "invoice.paid":
        return fake.event_for(acct, kind, paid["id"])
    return fake.event_for(acct, kind, invoices[index]["id"])


@pytest.fixture
def connection():
    conn = ConnectionFactory(provider="stripe", credentials={"api_key": "sk_test_abc"})
    return stripe_webhook_secret_set(connection=conn, secret=SECRET)


@pytest.fixture
def flows(connection):
    first = SyncFlowFactory(client=connection.client, invoicing_connection=connection)
    second = SyncFlowFactory(client=connection.client, invoicing_connection=connection)
    disabled = SyncFlowFactory(
        client=connection.client, invoicing_connection=connection, enabled=False
    )
    other = SyncFlowFactory()  # reads another connection
    return first, second, disabled, other


@pytest.fixture
def queued(monkeypatch):
    """What reached the "Sync now" service (the real one runs: tasks land in django-q2's queue)."""
    calls: list[tuple[int, str]] = []
    real = services.flow_sync_enqueue

    def spy(*, flow, trigger=RunTrigger.MANUAL):
        calls.append((flow.pk, str(trigger)))
        return real(flow=flow, trigger=trigger)

    monkeypatch.setattr(services, "flow_sync_enqueue", spy)
    return calls


def post(client, connection, delivery, *, secret=SECRET, timestamp=None):
    """POST ``delivery`` (an event, signed here, or a ready ``(body, headers)``) to the hook."""
    body, headers = (
        delivery
        if isinstance(delivery, tuple)
        else StripeFake.signed(delivery, secret, timestamp=timestamp)
    )
    return client.post(
        stripe_webhook_path(connection),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": headers["Stripe-Signature"]},
    )


def test_finalized_invoice_queues_one_run_of_each_enabled_flow_reading_the_connection(
    client, stripe, connection, flows, queued
):
    first, second, _disabled, _other = flows
    answer = post(client, connection, event(stripe, "invoice.finalized"))
    assert answer.status_code == 200
    assert queued == [(first.pk, "webhook"), (second.pk, "webhook")]
    assert OrmQ.objects.count() == 2  # really queued for the workers
    assert WebhookEvent.objects.get().queued_flows == 2


def test_a_burst_of_events_makes_one_queued_run_per_flow_until_it_starts(
    client, stripe, connection, flows, queued
):
    first, second, _disabled, _other = flows
    kinds = [
        ("invoice.finalized", 0),
        ("invoice.finalized", 1),
        ("invoice.voided", 1),
        ("credit_note.created", 0),
        ("invoice.finalized", 3),
    ]
    for kind, index in kinds:
        assert post(client, connection, event(stripe, kind, index)).status_code == 200
    assert sorted(queued) == [(first.pk, "webhook"), (second.pk, "webhook")]
    assert WebhookEvent.objects.count() == 5

    SyncRunFactory(flow=first, trigger="webhook")  # the first flow's queued run started
    post(client, connection, event(stripe, "invoice.finalized", 2))
    assert queued[2:] == [(first.pk, "webhook")]  # the second flow's run still waits


def test_a_queued_task_that_ended_without_a_run_does_not_hold_later_events(
    client, stripe, connection, flows, queued
):
    first, second, _disabled, _other = flows
    post(client, connection, event(stripe, "invoice.finalized", 0))
    for flow in (first, second):  # both tasks ended: the flows were busy, no run started
        task_id = flow.webhook_queued_run.task_id
        Task.objects.create(
            id=task_id,
            name="sync",
            func="syncs.tasks.run_flow",
            started=timezone.now(),
            stopped=timezone.now(),
            success=True,
            result={"flow": flow.pk, "status": "busy"},
        )
    post(client, connection, event(stripe, "invoice.voided", 1))
    assert len(queued) == 4


def test_the_same_event_delivered_again_does_nothing(client, stripe, connection, flows, queued):
    first, second, _disabled, _other = flows
    delivery = event(stripe, "invoice.voided", 1)
    assert post(client, connection, delivery).status_code == 200
    for flow in (first, second):
        SyncRunFactory(flow=flow, trigger="webhook")  # runs started: nothing coalesces now
    again = post(client, connection, delivery, timestamp=int(time.time()) + 1)  # signed anew
    assert again.status_code == 200
    assert len(queued) == 2 and WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "how",
    ["no header", "other secret", "stale", "from the future", "body changed", "no v1", "bad t"],
)
def test_a_delivery_not_signed_by_the_endpoint_secret_is_refused_saying_nothing(
    client, stripe, connection, flows, queued, how
):
    delivery = event(stripe, "invoice.finalized")
    now = int(time.time())
    body, headers = StripeFake.signed(delivery, SECRET, timestamp=now)
    if how == "other secret":
        body, headers = StripeFake.signed(delivery, "whsec_other", timestamp=now)
    elif how == "stale":
        stale = now - SIGNATURE_TOLERANCE_SECONDS - 5
        body, headers = StripeFake.signed(delivery, SECRET, timestamp=stale)
    elif how == "from the future":
        later = now + SIGNATURE_TOLERANCE_SECONDS + 5
        body, headers = StripeFake.signed(delivery, SECRET, timestamp=later)
    elif how == "body changed":
        body = body.replace(b"invoice.finalized", b"invoice.voided")
    elif how == "no v1":
        headers = {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v0=")}
    elif how == "bad t":
        headers = {"Stripe-Signature": "t=abc," + headers["Stripe-Signature"].split(",", 1)[1]}
    if how == "no header":
        answer = client.post(
            stripe_webhook_path(connection), data=body, content_type="application/json"
        )
    else:
        answer = post(client, connection, (body, headers))
    assert answer.status_code == 400 and answer.content == b""
    assert queued == [] and WebhookEvent.objects.count() == 0


def test_one_matching_signature_among_several_is_enough(client, stripe, connection, flows, queued):
    delivery = event(stripe, "invoice.finalized")
    body, headers = StripeFake.signed(
        delivery, "whsec_old_one", timestamp=int(time.time()), extra_secrets=[SECRET]
    )
    assert post(client, connection, (body, headers)).status_code == 200
    assert len(queued) == 2


def test_other_events_answer_200_and_do_nothing(client, stripe, connection, flows, queued):
    assert post(client, connection, event(stripe, "invoice.paid")).status_code == 200
    assert queued == [] and WebhookEvent.objects.count() == 0


def test_wrong_address_or_method_or_kind_of_connection(client, stripe, connection, flows, queued):
    body, headers = StripeFake.signed(event(stripe, "invoice.finalized"), SECRET)
    sig = {"Stripe-Signature": headers["Stripe-Signature"]}
    wrong = f"/hooks/stripe/{connection.pk}/{'0' * 32}/"
    assert (
        client.post(wrong, data=body, content_type="application/json", headers=sig).status_code
        == 404
    )
    assert client.get(stripe_webhook_path(connection)).status_code == 405
    tryton = ConnectionFactory(provider="tryton", credentials={"webhook_secret": SECRET})
    path = stripe_webhook_path(tryton)
    assert (
        client.post(path, data=body, content_type="application/json", headers=sig).status_code
        == 404
    )
    assert queued == []


def test_a_connection_without_signing_secret_refuses_deliveries(client, stripe, flows, queued):
    connection = ConnectionFactory(provider="stripe", credentials={"api_key": "sk_test_abc"})
    SyncFlowFactory(client=connection.client, invoicing_connection=connection)
    assert post(client, connection, event(stripe, "invoice.finalized")).status_code == 400
    assert queued == []


def test_invalid_json_or_event_without_id_is_refused(client, connection, flows, queued):
    for body in (b"not json", json.dumps({"type": "invoice.finalized"}).encode()):
        header = StripeFake.sign(body, SECRET, int(time.time()))
        answer = post(client, connection, (body, {"Stripe-Signature": header}))
        assert answer.status_code == 400 and answer.content == b""
    assert queued == []


def test_a_webhook_run_of_a_flow_disabled_since_does_not_run(flows):
    _first, _second, disabled, _other = flows
    assert run_flow(disabled.pk, trigger=RunTrigger.WEBHOOK) == {
        "flow": disabled.pk,
        "status": "disabled",
    }


@pytest.mark.django_db(transaction=True)
def test_the_fake_stripe_delivers_a_signed_event_to_the_live_endpoint(live_server, stripe, queued):
    fake, acct, invoices, _paid = stripe
    connection = ConnectionFactory(provider="stripe", credentials={"webhook_secret": SECRET})
    flow = SyncFlowFactory(client=connection.client, invoicing_connection=connection)
    url = live_server.url + stripe_webhook_path(connection)
    delivery = fake.event_for(acct, "invoice.voided", invoices[1]["id"])
    assert fake.deliver(url, delivery, SECRET) == 200
    assert fake.deliver(url, delivery, "whsec_wrong") == 400
    assert queued == [(flow.pk, "webhook")]


def test_the_command_prints_the_address_and_keeps_a_secret_read_from_stdin():
    connection = ConnectionFactory(provider="stripe", credentials={"api_key": "sk_test_abc"})
    out = io.StringIO()
    call_command(
        "stripe_webhook",
        str(connection.pk),
        "--base-url=https://invsync.example.com/",
        "--set-secret",
        stdin=io.StringIO("whsec_new_9d8c7b\n"),
        stdout=out,
    )
    text = out.getvalue()
    assert f"https://invsync.example.com{stripe_webhook_path(connection)}" in text
    assert "credit_note.created, invoice.finalized, invoice.voided" in text
    assert "whsec_new_9d8c7b" not in text
    connection.refresh_from_db()
    assert connection.credentials == {
        "api_key": "sk_test_abc",
        "webhook_secret": "whsec_new_9d8c7b",
    }


def test_the_command_refuses_what_is_not_a_signing_secret_and_changes_nothing():
    connection = ConnectionFactory(provider="stripe", credentials={"api_key": "sk_test_abc"})
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command(
            "stripe_webhook", str(connection.pk), "--set-secret", stdin=io.StringIO("sk_live_x\n")
        )
    with pytest.raises(CommandError, match="No Stripe invoicing connection"):
        call_command("stripe_webhook", str(ConnectionFactory(provider="tryton").pk))
    connection.refresh_from_db()
    assert connection.credentials == {"api_key": "sk_test_abc"}


def test_signature_tolerance_is_300_seconds_either_way():
    body = b'{"id": "evt_1", "type": "invoice.finalized"}'
    header = StripeFake.sign(body, SECRET, 1_800_000_000)
    for now, valid in ((1_800_000_300, True), (1_799_999_700, True), (1_800_000_301, False)):
        assert stripe_signature_valid(payload=body, header=header, secret=SECRET, now=now) is valid
    assert not stripe_signature_valid(payload=body, header=header, secret="", now=1_800_000_000)


def test_a_connect_event_of_another_connected_account_does_nothing(
    client, stripe, connection, flows, queued
):
    connection.settings = {"company_id": "acct_1Ours"}
    connection.save()
    theirs = {**event(stripe, "invoice.finalized"), "account": "acct_1Theirs"}
    assert post(client, connection, theirs).status_code == 200
    assert queued == [] and WebhookEvent.objects.count() == 0
    ours = {**event(stripe, "invoice.finalized"), "account": "acct_1Ours"}
    assert post(client, connection, ours).status_code == 200
    assert len(queued) == 2


def test_editing_the_connection_keeps_its_signing_secret(client, stripe, connection, flows, queued):
    connection_update(
        connection=connection, data={"name": "Stripe renamed"}, credentials={"api_key": "sk_new"}
    )
    connection.refresh_from_db()
    assert connection.credentials == {"api_key": "sk_new", "webhook_secret": SECRET}
    assert post(client, connection, event(stripe, "invoice.finalized")).status_code == 200
    assert len(queued) == 2


# -- on the connection's page ------------------------------------------------------------------


@pytest.fixture
def stripe_connection(stripe, settings):
    """A Stripe connection to the fake Stripe (its check on save answered there), no secret yet."""
    fake, acct, _invoices, _paid = stripe
    settings.INVSYNC_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    connection = ConnectionFactory(
        provider="stripe",
        settings={"api_url": fake.api_url},
        credentials={"api_key": fake.keys.issue(acct)},
    )
    SyncFlowFactory(client=connection.client, invoicing_connection=connection)
    return connection


def change_url(connection) -> str:
    return reverse("admin:connectors_connection_change", args=[connection.pk])


def test_the_signing_secret_is_typed_on_the_connection_s_page_and_never_shown_back(
    admin_client, client, stripe, stripe_connection, queued
):
    page = admin_client.get(change_url(stripe_connection))
    assert 'name="credential_webhook_secret"' in page.content.decode()
    assert "Webhook signing secret: not set" in page.content.decode()
    assert post(client, stripe_connection, event(stripe, "invoice.finalized")).status_code == 400

    data = form_data(page)
    assert data["credential_webhook_secret"] == ""
    data["credential_webhook_secret"] = SECRET
    assert admin_client.post(change_url(stripe_connection), data).status_code == 302

    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["webhook_secret"] == SECRET
    assert set(stripe_connection.credentials) == {"api_key", "webhook_secret"}
    again = admin_client.get(change_url(stripe_connection)).content.decode()
    assert SECRET not in again and "Webhook signing secret: stored" in again
    assert post(client, stripe_connection, event(stripe, "invoice.finalized")).status_code == 200
    assert len(queued) == 1
    # A later edit with the field left blank keeps it.
    data = form_data(admin_client.get(change_url(stripe_connection)))
    data["name"] = "Stripe renamed"
    assert admin_client.post(change_url(stripe_connection), data).status_code == 302
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["webhook_secret"] == SECRET


def test_what_is_not_a_signing_secret_is_refused_on_the_page_and_not_echoed(
    admin_client, stripe_connection
):
    data = form_data(admin_client.get(change_url(stripe_connection)))
    data["credential_webhook_secret"] = "sk_live_notasigningsecret"
    answer = admin_client.post(change_url(stripe_connection), data)
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert "whsec_" in str(errors["credential_webhook_secret"])
    assert "sk_live_notasigningsecret" not in answer.content.decode()
    stripe_connection.refresh_from_db()
    assert "webhook_secret" not in stripe_connection.credentials


def test_the_connection_s_page_shows_the_webhook_address_and_the_events_to_tick(
    admin_client, stripe_connection
):
    html = admin_client.get(change_url(stripe_connection)).content.decode()
    assert f"<code>http://testserver{stripe_webhook_path(stripe_connection)}</code>" in html
    for name in ("invoice.finalized", "invoice.voided", "credit_note.created"):
        assert f"<code>{name}</code>" in html
    assert "No signing secret yet" in html
    # Not on another tool's connection, which takes no signing secret.
    other = admin_client.get(change_url(ConnectionFactory())).content.decode()
    assert "credential_webhook_secret" not in other and "Developers → Webhooks" not in other
