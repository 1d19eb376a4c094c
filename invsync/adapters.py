"""How django-allauth behaves here: staff are added by the firm, nobody signs up on their own."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # An accounting firm adds its own staff in the admin; an open sign-up page would let anyone
        # create an account (with no client and no role, but an account all the same).
        return False
