"""Webhooks: an invoicing tool says something changed, and the flows reading it run now.

Stripe (issue #17 point 3): ``POST /hooks/stripe/<connection id>/<token>/`` (no login, no CSRF
token: the signature is the proof). The token is an HMAC of the connection's id under the
site's secret key, so the address cannot be guessed from the id; the connection keeps the
endpoint's signing secret (``whsec_…``) encrypted in its credentials (``webhook_secret``).

1. ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]``: one ``v1`` must be the HMAC-SHA256
   of ``"<t>.<raw body>"`` under the secret, and ``t`` within :data:`SIGNATURE_TOLERANCE_SECONDS`
   of now. Missing, wrong or stale: 400 with an empty body (nothing said about why).
2. Replay-safe: an event id already received for the connection (:class:`WebhookEvent`) does
   nothing.
3. ``invoice.finalized``, ``invoice.voided``, ``credit_note.created`` queue a run of every enabled
   flow reading the connection, through the "Sync now" service
   (:func:`syncs.services.flow_sync_enqueue`, trigger ``webhook``), coalesced: while a run a
   webhook queued for a flow has not started, later events queue nothing more for it
   (:class:`WebhookQueuedRun`). Other events answer 200 and do nothing, and so do a Connect
   endpoint's events of another connected account than the connection's (``account`` is not
   its ``company_id``).

The scheduled runs still catch whatever a webhook missed (a delivery lost, a queued run that found
the flow busy).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_q.models import Task

from connectors.models import Connection
from connectors.oauth import COMPANY_SETTING
from connectors.services import WEBHOOK_SECRET
from connectors.webhook_address import (  # noqa: F401 (the address is shown on the connection)
    STRIPE_SYNC_EVENTS,
    stripe_webhook_path,
    stripe_webhook_token,
)
from mappings.models import SyncFlow
from syncs import services
from syncs.models import WEBHOOK_EVENTS_KEPT_DAYS, RunTrigger, WebhookEvent, WebhookQueuedRun

logger = logging.getLogger(__name__)

STRIPE_PROVIDER = "stripe"
# Stripe's libraries refuse a signature older than five minutes by default; so do we.
SIGNATURE_TOLERANCE_SECONDS = 300
WEBHOOK_SECRET_FIELD = WEBHOOK_SECRET  # kept by connection_update across edits


# -- the signature (pure) ------------------------------------------------------------------------


def stripe_signature_valid(
    *,
    payload: bytes,
    header: str,
    secret: str,
    now: float,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` (a ``Stripe-Signature``) signs ``payload`` with ``secret`` at a time
    within ``tolerance`` seconds of ``now``. Any ``v1`` may match (Stripe signs with each active
    secret while one is rolled); other schemes (``v0``) are ignored."""
    if not header or not secret:
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance:
        return False
    signed = str(timestamp).encode() + b"." + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


# -- addresses and secrets ---------------------------------------------------------------------


def stripe_webhook_secret_set(*, connection: Connection, secret: str) -> Connection:
    """Keep the endpoint's signing secret (``whsec_…``) with the connection's credentials
    (encrypted at rest, never shown back)."""
    connection.credentials = {**(connection.credentials or {}), WEBHOOK_SECRET_FIELD: secret}
    connection.save(update_fields=["credentials", "updated_at"])
    return connection


# -- services ------------------------------------------------------------------------------------


def _run_still_queued(marker: WebhookQueuedRun, now) -> bool:
    """The run ``marker`` names has neither started nor ended (and is not so old it was lost)."""
    if marker.queued_at is None:
        return False
    if now - marker.queued_at > timedelta(seconds=settings.Q_CLUSTER.get("retry", 3600)):
        return False
    if marker.task_id and Task.objects.filter(id=marker.task_id).exists():
        return False  # the task ended (a busy or disabled flow ends it without a run)
    return not marker.flow.runs.filter(started_at__gte=marker.queued_at).exists()


def flow_sync_enqueue_coalesced(*, flow: SyncFlow) -> bool:
    """Queue a run of ``flow`` (trigger ``webhook``) unless one a webhook queued is still waiting;
    returns whether one was queued. Safe against concurrent deliveries: the flow's marker row is
    locked while deciding."""
    now = timezone.now()
    # get_or_create retries the get when a concurrent delivery created the row in between.
    WebhookQueuedRun.objects.get_or_create(flow=flow)
    with transaction.atomic():
        marker = WebhookQueuedRun.objects.select_for_update().select_related("flow").get(flow=flow)
        if _run_still_queued(marker, now):
            return False
        marker.queued_at, marker.task_id = now, ""
        marker.save(update_fields=["queued_at", "task_id"])
    # Queued after the commit: the task may run in this very call (django-q2 in sync mode), and a
    # run takes its own transactions.
    try:
        task_id = services.flow_sync_enqueue(flow=flow, trigger=RunTrigger.WEBHOOK)
    except BaseException:
        WebhookQueuedRun.objects.filter(pk=marker.pk, queued_at=now).update(queued_at=None)
        raise
    WebhookQueuedRun.objects.filter(pk=marker.pk, queued_at=now).update(task_id=task_id or "")
    return True


def webhook_event_receive(*, connection: Connection, event_id: str, event_type: str) -> int | None:
    """Act on a verified event: None when this event id was received already (nothing done),
    else the number of runs queued (0 for an event that asks for none)."""
    if event_type not in STRIPE_SYNC_EVENTS:
        return 0
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                connection=connection, event_id=event_id, event_type=event_type
            )
    except IntegrityError:
        return None
    try:
        flows = SyncFlow.objects.filter(invoicing_connection=connection, enabled=True)
        queued = sum(flow_sync_enqueue_coalesced(flow=flow) for flow in flows.order_by("pk"))
    except BaseException:
        event.delete()  # not acted on: a retry of this delivery must act
        raise
    WebhookEvent.objects.filter(pk=event.pk).update(queued_flows=queued)
    cutoff = timezone.now() - timedelta(days=WEBHOOK_EVENTS_KEPT_DAYS)
    WebhookEvent.objects.filter(connection=connection, received_at__lt=cutoff).delete()
    return queued


# -- the view ------------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest, connection_id: int, token: str) -> HttpResponse:
    connection = Connection.objects.filter(
        pk=connection_id, provider=STRIPE_PROVIDER, kind="invoicing"
    ).first()
    if connection is None or not constant_time_compare(token, stripe_webhook_token(connection)):
        return HttpResponseNotFound()
    secret = str((connection.credentials or {}).get(WEBHOOK_SECRET_FIELD) or "")
    if not secret:
        logger.warning("Stripe webhook for connection %s: no signing secret set", connection.pk)
        return HttpResponseBadRequest()
    payload = request.body
    header = request.headers.get("Stripe-Signature", "")
    if not stripe_signature_valid(payload=payload, header=header, secret=secret, now=time.time()):
        logger.info("Stripe webhook for connection %s: signature refused", connection.pk)
        return HttpResponseBadRequest()
    try:
        event = json.loads(payload)
    except ValueError:
        return HttpResponseBadRequest()
    event_id = event.get("id") if isinstance(event, dict) else None
    event_type = event.get("type") if isinstance(event, dict) else None
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id:
        return HttpResponseBadRequest()
    account = event.get("account")
    company = str((connection.settings or {}).get(COMPANY_SETTING) or "")
    if account and company and account != company:
        # A Connect endpoint receives every connected account's events: not this connection's.
        logger.info("Stripe webhook for connection %s: another account's event", connection.pk)
        return HttpResponse(status=200)
    queued = webhook_event_receive(
        connection=connection, event_id=event_id[:255], event_type=event_type[:100]
    )
    logger.info(
        "Stripe webhook for connection %s: %s %s, %s",
        connection.pk,
        event_type[:100],
        event_id[:255],
        "seen before" if queued is None else f"{queued} run(s) queued",
    )
    return HttpResponse(status=200)
