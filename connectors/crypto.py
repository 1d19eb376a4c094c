"""Credentials at rest: Fernet tokens under keys from the environment.

``INVSYNC_CREDENTIALS_KEYS`` lists Fernet keys, newest first: the first encrypts, all decrypt, so a
key is rotated by putting the new one in front and running ``manage.py rotate_credentials_key``.
Without any key (a laptop), one is derived from SECRET_KEY; the deploy check refuses that.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def derived_key() -> bytes:
    digest = hashlib.sha256(b"invsync-credentials:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "INVSYNC_CREDENTIALS_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def fernet() -> MultiFernet:
    keys = tuple(settings.CREDENTIALS_KEYS) or (derived_key().decode(),)
    return _fernet(keys)


def encrypt(data: dict[str, str]) -> str:
    return fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "Stored credentials cannot be decrypted with the configured keys: "
            "was a key removed from INVSYNC_CREDENTIALS_KEYS before rotating?"
        ) from exc


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()


# Single secrets kept in someone else's columns (allauth's TOTP secrets and recovery-code seeds)
# are stored as this prefix and a Fernet token, so that a value stored in clear before encryption
# was turned on is still told apart (and encrypted by the next rotation).
TEXT_PREFIX = "fernet:"


def encrypt_text(text: str) -> str:
    return TEXT_PREFIX + fernet().encrypt(text.encode()).decode()


def decrypt_text(stored: str) -> str:
    """The clear text of :func:`encrypt_text`'s output; a value without the prefix (stored in
    clear before encryption was turned on) is returned as it is."""
    if not stored.startswith(TEXT_PREFIX):
        return stored
    try:
        return fernet().decrypt(stored[len(TEXT_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with the configured keys: "
            "was a key removed from INVSYNC_CREDENTIALS_KEYS before rotating?"
        ) from exc


def rotate_text(stored: str) -> str:
    """:func:`encrypt_text`'s output under the newest key (a value in clear gets encrypted)."""
    if not stored.startswith(TEXT_PREFIX):
        return encrypt_text(stored)
    return TEXT_PREFIX + rotate(stored[len(TEXT_PREFIX) :])


class Secrets(dict):
    """A dict whose repr never shows values (so a stray log line or traceback reveals nothing)."""

    def __repr__(self) -> str:
        return f"<Secrets {sorted(self)}>"

    __str__ = __repr__


class EncryptedJSONField(models.TextField):
    """A dict of secrets stored as one Fernet token; the database never holds them in clear."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return Secrets()
        return Secrets(decrypt(value))

    def to_python(self, value):
        if isinstance(value, dict):
            return Secrets(value)
        if value in (None, ""):
            return Secrets()
        return Secrets(decrypt(value))

    def get_prep_value(self, value):
        if value is None:
            return ""
        return encrypt(dict(value))

    def value_to_string(self, obj):
        # Serialisation (dumpdata, exports) carries the ciphertext, never the clear value.
        return self.get_prep_value(self.value_from_object(obj))
