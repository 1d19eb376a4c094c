import sys

from django.core.management.base import BaseCommand, CommandError

from connectors.models import Connection
from syncs.webhooks import (
    STRIPE_PROVIDER,
    STRIPE_SYNC_EVENTS,
    stripe_webhook_path,
    stripe_webhook_secret_set,
)


class Command(BaseCommand):
    help = (
        "Print the address of a Stripe connection's webhook (to add in Stripe's Dashboard, "
        "Developers → Webhooks) and, with --set-secret, keep its signing secret (whsec_…, read "
        "from standard input so that it stays out of the shell's history)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("connection", type=int, help="The Stripe connection's id.")
        parser.add_argument(
            "--base-url",
            default="https://<your invsync host>",
            help="This site's public address, e.g. https://invsync.example.com",
        )
        parser.add_argument(
            "--set-secret",
            action="store_true",
            help="Read the endpoint's signing secret (whsec_…) from standard input and keep it.",
        )

    def handle(self, *args, connection, base_url, set_secret, **options):
        found = Connection.objects.filter(
            pk=connection, provider=STRIPE_PROVIDER, kind="invoicing"
        ).first()
        if found is None:
            raise CommandError(f"No Stripe invoicing connection has the id {connection}.")
        if set_secret:
            secret = (options.get("stdin") or sys.stdin).readline().strip()
            if not secret.startswith("whsec_") or len(secret) > 200 or " " in secret:
                raise CommandError(
                    "That is not a webhook signing secret: Stripe's start with whsec_ "
                    "(the endpoint's page, Signing secret). Nothing was changed."
                )
            stripe_webhook_secret_set(connection=found, secret=secret)
            self.stdout.write("Signing secret kept (encrypted with the connection's credentials).")
        elif not (found.credentials or {}).get("webhook_secret"):
            self.stdout.write(
                "No signing secret yet: deliveries are refused until one is set (--set-secret)."
            )
        self.stdout.write(f"Endpoint URL: {base_url.rstrip('/')}{stripe_webhook_path(found)}")
        self.stdout.write("Events to send: " + ", ".join(sorted(STRIPE_SYNC_EVENTS)))
