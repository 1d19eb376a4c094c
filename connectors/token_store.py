"""The deployment's OAuth2 token source: tokens kept encrypted on the Connection
(``Connection.oauth_tokens``, under the credentials keys, rotation included), refreshed
single-flight across every process and host.

A refresh takes the connection's row lock (``select_for_update`` in a transaction), reads the
tokens again, and calls the vendor only if the stored access token is still the stale one; the
new access token and the rotated refresh token are saved in that transaction. A second process
that wanted to refresh waits on the lock, then finds a new token and uses it: one rotating
refresh token is never spent twice. (SQLite has no row locks; its write lock, taken at BEGIN in
our settings, serialises the same way.)

Handed to connectors as a :class:`connectors.oauth.TokenSource` by
:func:`connectors.selectors.connector_for` (connectors take no ORM).
"""

from __future__ import annotations

import logging
import threading

from django.db import connections, transaction
from social_core.exceptions import (
    AuthCanceled,
    AuthConfigurationError,
    AuthCredentialError,
    SocialAuthBaseException,
)
from social_django.utils import load_strategy

from connectors import crypto
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import Connection
from connectors.oauth import (
    REFRESH_MARGIN,
    OAuthTokens,
    grant_revoked_error,
    not_connected_error,
)
from connectors.oauth_backends import InvsyncOAuth2, backend_for

logger = logging.getLogger(__name__)


def backend_of(connection: Connection, redirect_uri: str | None = None, request=None):
    """The connection's OAuth2 backend instance (its own app's client when it has one).
    Raises InvsyncError(CONFIGURATION_INCOMPLETE) when its provider has no OAuth2 backend or no
    client id and secret are known."""
    cls = backend_for(connection.provider)
    if cls is None:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"The provider {connection.provider!r} of {connection.name!r} has no OAuth2 sign-in: "
            "choose another authentication.",
            field="auth_kind",
        )
    own = own_client(connection)
    if not cls.has_client(own):
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            f"No OAuth2 app is configured for {cls.title}: set "
            f"INVSYNC_OAUTH_{cls.vendor.upper()}_CLIENT_ID and _CLIENT_SECRET, or enter the "
            "connection's own OAuth2 client id and secret.",
            field="credentials",
        )
    return cls(load_strategy(request), redirect_uri, client=own)


def own_client(connection: Connection) -> tuple[str, str] | None:
    credentials = connection.credentials or {}
    client = (credentials.get("client_id", ""), credentials.get("client_secret", ""))
    return client if all(client) else None


def stored_tokens(connection: Connection) -> OAuthTokens | None:
    return OAuthTokens.from_dict(connection.oauth_tokens or {})


def refresh_error(error: SocialAuthBaseException, connection: str) -> InvsyncError:
    """A refused refresh as a catalogue error: a refused or revoked grant (invalid_grant) needs a
    person (Reconnect); the token endpoint out of reach or failing is transient."""
    if isinstance(error, AuthCredentialError | AuthCanceled):
        return grant_revoked_error(
            str(error.provider_code or "invalid_grant"), connection=connection
        )
    if isinstance(error, AuthConfigurationError):
        return InvsyncError(
            ErrorCode.AUTHENTICATION_FAILED,
            f"The tool refused invsync's OAuth2 app while renewing the token of {connection!r} "
            f"({error.provider_code or error.code}): check the client id and secret.",
            field="credentials",
        )
    return InvsyncError(
        ErrorCode.UNAVAILABLE,
        f"The tool's token endpoint failed while renewing the token of {connection!r} "
        f"({error.code}).",
    )


class DatabaseTokenSource:
    """:class:`connectors.oauth.TokenSource` over one stored connection (by id)."""

    def __init__(self, connection_id: int, *, label: str = "", using: str = "default") -> None:
        self.connection_id = connection_id
        self.label = label
        self.using = using
        self._tokens: OAuthTokens | None = None
        self._lock = threading.Lock()  # threads of one process queue here before the row lock

    def __repr__(self) -> str:
        return f"<DatabaseTokenSource connection={self.connection_id}>"

    def _read(self) -> OAuthTokens | None:
        row = Connection.objects.using(self.using).filter(pk=self.connection_id).first()
        return stored_tokens(row) if row is not None else None

    def access_token(self) -> str:
        tokens = self._tokens or self._read()
        if tokens is None:
            raise not_connected_error(self.label)
        if tokens.expires_within(REFRESH_MARGIN):
            return self._refresh(tokens.access_token)
        self._tokens = tokens
        return tokens.access_token

    def refresh(self, stale_token: str) -> str:
        return self._refresh(stale_token)

    def _refresh(self, stale_token: str) -> str:
        caller = connections[self.using]
        with self._lock:
            if caller.in_atomic_block and caller.vendor != "sqlite":
                # The caller's transaction (an admin form's, say) could still roll back and take
                # the rotated refresh token with it, after the vendor killed the old one: the
                # refresh commits on a connection of its own. (SQLite's one writer is the
                # caller's transaction already: there the refresh joins it.)
                fresh = self._on_own_connection(stale_token)
            else:
                with transaction.atomic(using=self.using):
                    fresh = self._locked(stale_token, self._orm_row, self._orm_save)
        self._tokens = fresh
        return fresh.access_token

    def _locked(self, stale_token: str, read, save) -> OAuthTokens:
        """Under the row lock ``read()`` took: the stored tokens if another process already
        replaced ``stale_token``, else the refreshed ones, saved by ``save``."""
        connection = read()
        tokens = stored_tokens(connection) if connection is not None else None
        if tokens is None:
            raise not_connected_error(self.label)
        if tokens.access_token != stale_token and not tokens.expires_within(REFRESH_MARGIN):
            return tokens  # another process (or thread) refreshed while this one waited
        if not tokens.refresh_token:
            raise grant_revoked_error("no refresh token", connection=self.label)
        backend: InvsyncOAuth2 = backend_of(connection)
        try:
            answer = backend.refresh_token(tokens.refresh_token)
        except SocialAuthBaseException as error:
            raise refresh_error(error, self.label or connection.name) from None
        fresh = OAuthTokens.from_token_response(answer, previous=tokens)
        # The access token and the rotated refresh token, saved together (one row, one
        # transaction): the old refresh token is dead at the vendor from now on.
        save(fresh)
        logger.info("connection %s: OAuth2 access token refreshed", self.connection_id)
        return fresh

    def _orm_row(self) -> Connection | None:
        return (
            Connection.objects.using(self.using)
            .select_for_update()
            .filter(pk=self.connection_id)
            .first()
        )

    def _orm_save(self, fresh: OAuthTokens) -> None:
        Connection.objects.using(self.using).filter(pk=self.connection_id).update(
            oauth_tokens=fresh.as_dict()
        )

    def _on_own_connection(self, stale_token: str) -> OAuthTokens:
        base = connections[self.using]
        own = type(base)(dict(base.settings_dict), self.using)
        try:
            with own.cursor() as cursor:
                cursor.execute("BEGIN")
                try:

                    def read() -> Connection | None:
                        cursor.execute(_SQL_LOCK, [self.connection_id])
                        row = cursor.fetchone()
                        if row is None:
                            return None
                        name, provider, credentials, tokens = row
                        return Connection(
                            pk=self.connection_id,
                            name=name,
                            provider=provider,
                            credentials=crypto.decrypt(credentials) if credentials else {},
                            oauth_tokens=crypto.decrypt(tokens) if tokens else {},
                        )

                    def save(fresh: OAuthTokens) -> None:
                        cursor.execute(
                            _SQL_SAVE, [crypto.encrypt(fresh.as_dict()), self.connection_id]
                        )

                    fresh = self._locked(stale_token, read, save)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
                return fresh
        finally:
            own.close()


# The statements of the refresh on its own connection (connectors.models.Connection's table).
_SQL_LOCK = (
    'SELECT "name", "provider", "credentials", "oauth_tokens" FROM connectors_connection '
    'WHERE "id" = %s FOR UPDATE'
)
_SQL_SAVE = 'UPDATE connectors_connection SET "oauth_tokens" = %s WHERE "id" = %s'
