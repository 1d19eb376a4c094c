"""A Stripe connection's webhook address: the unguessable token of its path and the events to
send it. The view that receives the deliveries is ``syncs/webhooks.py`` (URL name
``stripe_webhook``); the address lives here so that the connection's page can show it
(``connectors`` does not import ``syncs``)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.crypto import salted_hmac

from connectors.models import Connection

# The events that queue a sync of the connection's flows (to tick in Stripe's Dashboard).
STRIPE_SYNC_EVENTS = frozenset({"invoice.finalized", "invoice.voided", "credit_note.created"})


def stripe_webhook_token(connection: Connection) -> str:
    """The unguessable part of a connection's webhook address (stable while SECRET_KEY is)."""
    return salted_hmac("invsync.webhooks.stripe", str(connection.pk)).hexdigest()[:32]


def stripe_webhook_path(connection: Connection) -> str:
    """The path to give Stripe (Dashboard → Developers → Webhooks → Add endpoint)."""
    return reverse(
        "stripe_webhook",
        kwargs={"connection_id": connection.pk, "token": stripe_webhook_token(connection)},
    )
