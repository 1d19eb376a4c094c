"""The OAuth2 dance of a connection (services: the writes; the admin calls them).

1. :func:`oauth_connect_start`: the vendor's authorize address, with PKCE (S256) and a ``state``
   kept in this browser session by social-core and bound here to the connection.
2. :func:`oauth_connect_complete` (the callback): the state checked (this session, once, in time),
   the code exchanged with the PKCE verifier, the tokens stored encrypted on the Connection
   (``oauth_tokens``, never social-auth's per-user ``extra_data``), the companies the grant gives
   listed; with one company it is saved in the settings, with several the person picks one
   (:func:`oauth_company_pick`).
3. :func:`oauth_disconnect`: the grant revoked at the vendor where it allows it, the tokens cleared.

A Connect may name where the person goes once connected (the guided set-up's step): a local path
only (:func:`local_path`), kept with the dance's state in this session and handed back by the
callback (``Completed.return_to``).

Every failure of the dance is an ``InvsyncError`` with a catalogue code and a sentence for people
(``OAUTH_AUTHORIZATION_FAILED``, or ``CONFIGURATION_INCOMPLETE`` for a missing OAuth app).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.db import transaction
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from social_core.exceptions import (
    AuthCanceled,
    AuthConfigurationError,
    AuthCredentialError,
    AuthInputError,
    AuthSessionError,
    SocialAuthBaseException,
)

from connectors.base import AuthKind
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import Connection
from connectors.oauth import COMPANY_SETTING, OAuthTokens
from connectors.token_store import backend_of, stored_tokens

logger = logging.getLogger(__name__)

# The session key binding each pending dance's state to its connection's id.
SESSION_KEY = "invsync_oauth_pending"


@dataclass(frozen=True)
class Completed:
    connection: Connection
    companies: tuple[tuple[str, str], ...]
    picked: str = ""  # the company saved (the grant gives one), "" when the person must pick
    return_to: str = ""  # where the Connect asked to go once connected (a local path), or ""


def local_path(url: str) -> str:
    """``url`` when it is a path on this site ("/admin/setup/folder/?connection=3"), else "": never
    another host, a scheme, a protocol-relative "//host" or a "/\\host" some browsers follow."""
    url = (url or "").strip()
    if (
        not url.startswith("/")
        or url.startswith(("//", "/\\"))
        or any(ord(char) < 32 for char in url)
        or not url_has_allowed_host_and_scheme(url, allowed_hosts=set())
    ):
        return ""
    return url[:1000]


def _code(error: SocialAuthBaseException) -> str:
    """The vendor's error code (or social-core's), cut: never the vendor's free text."""
    return str(error.provider_code or error.code)[:60]


def _failed(message: str) -> InvsyncError:
    return InvsyncError(ErrorCode.OAUTH_AUTHORIZATION_FAILED, message, field="connection")


def oauth_connect_start(
    *, connection: Connection, request, redirect_uri: str, return_to: str = ""
) -> str:
    """The address to send the person's browser to; ``return_to`` (kept only if a local path)
    comes back with the callback's :class:`Completed`. Raises InvsyncError."""
    if connection.auth_kind != AuthKind.OAUTH2:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            _("%(name)s does not sign in with OAuth2: set its authentication to OAuth2 first.")
            % {"name": repr(connection.name)},
            field="auth_kind",
        )
    backend = backend_of(connection, redirect_uri, request)
    url = backend.auth_url()
    state = parse_qs(urlsplit(url).query).get("state", [""])[0]
    pending = dict(request.session.get(SESSION_KEY) or {})
    pending[state] = [connection.pk, backend.name, local_path(return_to)]
    request.session[SESSION_KEY] = dict(list(pending.items())[-10:])  # a few tabs at most
    return url


def pending_connection_id(request) -> int | None:
    """The connection the callback's state was issued for in this session (None: none)."""
    state = request.GET.get("state", "")
    entry = (request.session.get(SESSION_KEY) or {}).get(state)
    return int(entry[0]) if entry else None


def pending_return_to(request) -> str:
    """Where the Connect the callback's state was issued for asked to go once connected ("":
    nowhere in particular, or no such Connect in this session)."""
    entry = (request.session.get(SESSION_KEY) or {}).get(request.GET.get("state", ""))
    return local_path(entry[2]) if entry and len(entry) > 2 else ""


def oauth_connect_complete(*, connection: Connection, request, redirect_uri: str) -> Completed:
    """The callback: exchange the code and store the tokens. Raises InvsyncError."""
    return_to = pending_return_to(request)
    pending = dict(request.session.get(SESSION_KEY) or {})
    pending.pop(request.GET.get("state", ""), None)
    request.session[SESSION_KEY] = pending
    backend = backend_of(connection, redirect_uri, request)
    backend.data = request.GET.dict()
    try:
        answer = backend.exchange_code()
        tokens = OAuthTokens.from_token_response(answer)
        companies = tuple(backend.granted_companies(tokens.access_token))
    except AuthCanceled:
        raise _failed(
            _("Access was declined at %(vendor)s: %(name)s is not connected.")
            % {"vendor": backend.title, "name": repr(connection.name)}
        ) from None
    except (AuthSessionError, AuthInputError):
        raise _failed(
            _(
                "The answer from the sign-in page does not belong to a Connect started in this "
                "session, or came too late (state missing, unknown, used or expired): use "
                "Connect again."
            )
        ) from None
    except AuthCredentialError as error:
        raise _failed(
            _("%(vendor)s refused the authorisation code (%(code)s): use Connect again.")
            % {"vendor": backend.title, "code": _code(error)}
        ) from None
    except AuthConfigurationError as error:
        raise _failed(
            _("%(vendor)s refused invsync's OAuth2 app (%(code)s): check the client id and secret.")
            % {"vendor": backend.title, "code": _code(error)}
        ) from None
    except SocialAuthBaseException as error:
        raise _failed(
            _("%(vendor)s could not complete the sign-in (%(code)s): try again later.")
            % {"vendor": backend.title, "code": _code(error)}
        ) from None
    tokens = OAuthTokens(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scopes=tokens.scopes or tuple(backend.get_scope()),
        token_type=tokens.token_type,
        granted=companies,
    )
    picked = companies[0][0] if len(companies) == 1 else ""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        locked.oauth_tokens = tokens.as_dict()
        fields = ["oauth_tokens", "updated_at"]
        current = str((locked.settings or {}).get(COMPANY_SETTING, ""))
        if picked or (current and current not in {c for c, _ in companies}):
            locked.settings = {**(locked.settings or {}), COMPANY_SETTING: picked}
            if not picked:
                locked.settings.pop(COMPANY_SETTING)
            fields.append("settings")
        locked.save(update_fields=fields)
    logger.info("connection %s: OAuth2 connected (%d companies)", connection.pk, len(companies))
    connection.refresh_from_db()
    return Completed(connection, companies, picked, return_to)


def oauth_company_pick(*, connection: Connection, company_id: str) -> None:
    """Save the company picked among those the grant gives. Raises InvsyncError."""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        tokens = stored_tokens(locked)
        granted = {c for c, _ in (tokens.granted if tokens else ())}
        if company_id not in granted:
            raise _failed(_("Pick one of the companies the authorisation gives."))
        locked.settings = {**(locked.settings or {}), COMPANY_SETTING: company_id}
        locked.save(update_fields=["settings", "updated_at"])
    connection.refresh_from_db()


def oauth_disconnect(*, connection: Connection) -> bool:
    """Revoke the grant at the vendor where it allows it and clear the stored tokens. Returns
    whether the vendor confirmed the revocation (the tokens are cleared either way)."""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        tokens = stored_tokens(locked)
        revoked = False
        if tokens is not None:
            try:
                backend = backend_of(locked)
                token = tokens.refresh_token or tokens.access_token
                # The company: the account a grant-per-account vendor revokes (Stripe Connect).
                company = str((locked.settings or {}).get(COMPANY_SETTING, ""))
                revoked = bool(backend.revoke_token(token, company))
            except (InvsyncError, SocialAuthBaseException) as error:
                logger.warning(
                    "connection %s: the OAuth2 grant could not be revoked at the vendor (%s)",
                    connection.pk,
                    getattr(error, "code", type(error).__name__),
                )
        locked.oauth_tokens = {}
        locked.save(update_fields=["oauth_tokens", "updated_at"])
    connection.refresh_from_db()
    return revoked
