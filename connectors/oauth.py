"""OAuth2 tokens as connectors see them: a :class:`TokenSource` handed in through
``ConnectionConfig.tokens``.

A connector whose connection signs in with OAuth2 never reads or stores tokens itself (it takes no
ORM): it asks the token source of its config for the current access token, and the shared HTTP
toolkit does the rest when the client is built with ``bearer=config.tokens``
(:class:`connectors.http.HttpClient`): every request carries ``Authorization: Bearer <token>``,
a token about to expire is refreshed before the request, and a 401 answer (or a row of the
vendor's error table whose action is ``reauthenticate``) refreshes it once and sends the call
again.

The deployment's token source is :class:`connectors.token_store.DatabaseTokenSource` (tokens kept
encrypted on the Connection, refreshed single-flight across processes under a row lock), handed in
by :func:`connectors.selectors.connector_for`. Tests hand in :class:`StaticTokenSource` or their
own.

This module takes no ORM and imports no django (connectors' layers, pyproject.toml).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from connectors.errors import ErrorCode, InvsyncError

# An access token expiring within this many seconds is refreshed before it is sent.
REFRESH_MARGIN = 60.0
# The connection setting holding the company (tenant) picked among those the grant gives; a
# provider that signs in with OAuth2 declares it (SettingField, not required) and reads it.
COMPANY_SETTING = "company_id"


@dataclass(frozen=True)
class OAuthTokens:
    """One grant's tokens. ``expires_at``: Unix time the access token stops working (None: the
    vendor did not say). ``granted``: the companies/tenants the grant gives, as
    ``(id, name)`` pairs (the person picks one; it is saved in the connection's settings)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "Bearer"
    granted: tuple[tuple[str, str], ...] = ()

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    @classmethod
    def from_token_response(
        cls,
        response: Mapping[str, object],
        *,
        previous: OAuthTokens | None = None,
        now: float | None = None,
    ) -> OAuthTokens:
        """The tokens of a token endpoint's answer (RFC 6749 §5.1). A refresh answer without a new
        refresh token keeps the previous one (the vendor does not rotate); without a scope, the
        previous scopes."""
        expires_in = response.get("expires_in")
        try:
            expires_at = (time.time() if now is None else now) + float(expires_in)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            expires_at = None
        scope = response.get("scope")
        scopes = (
            tuple(str(scope).replace(",", " ").split())
            if scope
            else (previous.scopes if previous else ())
        )
        return cls(
            access_token=str(response.get("access_token") or ""),
            refresh_token=str(
                response.get("refresh_token") or (previous.refresh_token if previous else "")
            ),
            expires_at=expires_at,
            scopes=scopes,
            token_type=str(response.get("token_type") or "Bearer"),
            granted=previous.granted if previous else (),
        )

    def as_dict(self) -> dict[str, object]:
        """What is stored (encrypted) on the connection."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "scopes": list(self.scopes),
            "token_type": self.token_type,
            "granted": [list(pair) for pair in self.granted],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> OAuthTokens | None:
        """The stored tokens (None: nothing stored, the connection is not connected)."""
        if not data or not data.get("access_token"):
            return None
        expires_at = data.get("expires_at")
        granted = data.get("granted") or ()
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data.get("refresh_token") or ""),
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            scopes=tuple(str(s) for s in (data.get("scopes") or ())),  # type: ignore[union-attr]
            token_type=str(data.get("token_type") or "Bearer"),
            granted=tuple((str(p[0]), str(p[1])) for p in granted),  # type: ignore[union-attr]
        )


@runtime_checkable
class TokenSource(Protocol):
    """Where a connector gets its OAuth2 access token (``ConnectionConfig.tokens``).

    Both methods may call the vendor's token endpoint; neither ever puts a token in a message.
    Errors: :class:`~connectors.errors.InvsyncError` with ``OAUTH_GRANT_REVOKED`` when the
    vendor refuses the refresh token (revoked, expired, already used: a person must reconnect),
    ``AUTHENTICATION_FAILED`` when the connection was never connected (or was disconnected),
    ``UNAVAILABLE`` when the token endpoint cannot be reached (transient)."""

    def access_token(self) -> str:
        """The access token to send now: the stored one, or a fresh one when it expires within
        :data:`REFRESH_MARGIN` seconds. Never returns an empty text."""
        ...

    def refresh(self, stale_token: str) -> str:
        """The vendor refused ``stale_token`` (a 401): return a token other than it. When another
        process (or thread) has already replaced ``stale_token``, that token is returned and the
        vendor is not called; otherwise the grant is refreshed once, single-flight across every
        process sharing the connection, and the new access token AND the rotated refresh token
        are saved together before this returns."""
        ...


class StaticTokenSource:
    """A token source holding one token that cannot be refreshed (tests; a token pasted by hand).
    ``refresh`` raises ``OAUTH_GRANT_REVOKED``: nothing can renew it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "<StaticTokenSource>"

    def access_token(self) -> str:
        if not self._token:
            raise not_connected_error()
        return self._token

    def refresh(self, stale_token: str) -> str:
        if self._token and self._token != stale_token:
            return self._token
        raise grant_revoked_error("the access token was refused and cannot be renewed")


def grant_revoked_error(reason: str = "", *, connection: str = "") -> InvsyncError:
    """The catalogue error of a refused or revoked grant (resolution: Reconnect)."""
    where = f" of {connection!r}" if connection else ""
    because = f" ({reason})" if reason else ""
    return InvsyncError(
        ErrorCode.OAUTH_GRANT_REVOKED,
        f"The OAuth2 authorisation{where} was refused or revoked by the tool{because}: "
        "reconnect the connection.",
        field="connection",
    )


def not_connected_error(connection: str = "") -> InvsyncError:
    where = f" {connection!r}" if connection else ""
    return InvsyncError(
        ErrorCode.AUTHENTICATION_FAILED,
        f"The OAuth2 connection{where} is not connected: use its Connect button.",
        field="connection",
    )
