"""How django-allauth behaves here: staff are added by the firm, nobody signs up on their own;
two-factor secrets are encrypted at rest like the connections' credentials."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter

from connectors import crypto


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # An accounting firm adds its own staff in the admin; an open sign-up page would let anyone
        # create an account (with no client and no role, but an account all the same).
        return False


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are Fernet tokens under INVSYNC_CREDENTIALS_KEYS
    (connectors.crypto), rotated with the credentials by ``rotate_credentials_key``; a secret
    stored in clear before this adapter is still read."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt_text(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt_text(encrypted_text)
