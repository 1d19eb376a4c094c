"""Re-encrypt every stored credential under the newest key: the connections' credentials and
OAuth2 tokens, and the staff's two-factor secrets (allauth's TOTP secrets, recovery-code seeds).

To rotate: generate a key, put it first in INVSYNC_CREDENTIALS_KEYS (keeping the old one after it),
restart, run this command, then remove the old key.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection as db
from django.db import transaction

from connectors import crypto
from connectors.models import Connection


class Command(BaseCommand):
    help = (
        "Re-encrypt all connections' credentials and staff two-factor secrets with the first key "
        "of INVSYNC_CREDENTIALS_KEYS."
    )

    def handle(self, *args, **options):
        if not settings.CREDENTIALS_KEYS:
            raise CommandError(
                "INVSYNC_CREDENTIALS_KEYS is not set: put the new key first and the old one after "
                "it (or the key derived from DJANGO_SECRET_KEY is in use and cannot be rotated)."
            )
        table = db.ops.quote_name(Connection._meta.db_table)
        rotated = 0
        with transaction.atomic(), db.cursor() as cursor:
            # Work on the stored tokens themselves: MultiFernet.rotate decrypts with any listed key
            # and encrypts with the first, without the clear values ever reaching Python objects.
            # Both encrypted columns: the credentials and the OAuth2 grant's tokens.
            for field_name in ("credentials", "oauth_tokens"):
                column = db.ops.quote_name(Connection._meta.get_field(field_name).column)
                # Row locks: a token refresh (connectors.token_store) waits, never overwritten.
                lock = " FOR UPDATE" if db.features.has_select_for_update else ""
                cursor.execute(f"SELECT id, {column} FROM {table}{lock}")  # noqa: S608
                for pk, token in cursor.fetchall():
                    if not token:
                        continue
                    new = crypto.rotate(token)
                    cursor.execute(
                        f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
                        [new, pk],
                    )
                    if field_name == "credentials":
                        rotated += 1
            authenticators = _rotate_authenticators()
        self.stdout.write(
            f"Re-encrypted the credentials of {rotated} connection(s) and the two-factor secrets "
            f"of {authenticators} authenticator(s)."
        )


# allauth's Authenticator.data keys holding one encrypted value, or a list of them.
_AUTHENTICATOR_SECRETS = ("secret", "seed")
_AUTHENTICATOR_SECRET_LISTS = ("migrated_codes",)


def _rotate_authenticators() -> int:
    from allauth.mfa.models import Authenticator

    rotated = 0
    for authenticator in Authenticator.objects.select_for_update().order_by("pk"):
        data = dict(authenticator.data or {})
        for key in _AUTHENTICATOR_SECRETS:
            if isinstance(data.get(key), str):
                data[key] = crypto.rotate_text(data[key])
        for key in _AUTHENTICATOR_SECRET_LISTS:
            if isinstance(data.get(key), list):
                data[key] = [crypto.rotate_text(value) for value in data[key]]
        if data != authenticator.data:
            authenticator.data = data
            authenticator.save(update_fields=["data"])
            rotated += 1
    return rotated
