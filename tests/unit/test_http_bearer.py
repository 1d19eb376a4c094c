"""The toolkit's OAuth2 bearer hook (connectors.http.HttpClient ``bearer``) against a real local
HTTP server: every request carries the token source's access token, a 401 has the source refresh
the refused token once and the call is sent again, and a grant the source cannot renew fails
with its catalogue code, no token in any message."""

from __future__ import annotations

import pytest

from connectors.errors import ErrorCode, InvsyncError
from connectors.http import HttpClient, HttpError, HttpSession
from connectors.oauth import OAuthTokens, StaticTokenSource, grant_revoked_error
from connectors.retry import RetryPolicy
from tests.unit.test_http_toolkit import TABLE, reply, server, vendor_error  # noqa: F401

OLD, NEW = "access-OLD-5b1f0c2e", "access-NEW-77a3d9e1"


class RotatingSource:
    """A token source that hands out OLD, then NEW once asked to refresh OLD."""

    def __init__(self, *, refusable: bool = True) -> None:
        self.current = OLD
        self.refreshed: list[str] = []
        self.refusable = refusable

    def access_token(self) -> str:
        return self.current

    def refresh(self, stale_token: str) -> str:
        self.refreshed.append(stale_token)
        if not self.refusable:
            raise grant_revoked_error("invalid_grant")
        if self.current == stale_token:
            self.current = NEW
        return self.current


def bearer_client(server, source) -> HttpClient:  # noqa: F811
    return HttpClient(
        server.url, "Acme", TABLE, http=HttpSession(timeout=5.0), vendor_error=vendor_error,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01), sleep=lambda _: None, bearer=source,
    )  # fmt: skip


def test_every_request_carries_the_token_sources_access_token(server):  # noqa: F811
    server.script["/api/a"] = [reply(200, {"ok": True})]
    client = bearer_client(server, RotatingSource())
    assert client.get_json("a") == {"ok": True}
    assert server.requests[-1][2]["Authorization"] == f"Bearer {OLD}"


def test_a_401_refreshes_the_refused_token_once_and_sends_the_call_again(server):  # noqa: F811
    server.script["/api/b"] = [reply(401), reply(200, {"ok": True})]
    source = RotatingSource()
    client = bearer_client(server, source)
    assert client.request("POST", "b", json={}).json() == {"ok": True}
    assert source.refreshed == [OLD]
    assert [r[2]["Authorization"] for r in server.requests] == [f"Bearer {OLD}", f"Bearer {NEW}"]


def test_a_second_401_after_the_refresh_fails_without_refreshing_again(server):  # noqa: F811
    server.script["/api/c"] = [reply(401)]
    source = RotatingSource()
    with pytest.raises(HttpError) as caught:
        bearer_client(server, source).get_json("c")
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED
    assert source.refreshed == [OLD]
    assert OLD not in str(caught.value) and NEW not in str(caught.value)


def test_a_grant_the_source_cannot_renew_fails_with_grant_revoked(server):  # noqa: F811
    server.script["/api/d"] = [reply(401, {"message": f"bad token {OLD}"})]
    with pytest.raises(InvsyncError) as caught:
        bearer_client(server, RotatingSource(refusable=False)).get_json("d")
    assert caught.value.code == ErrorCode.OAUTH_GRANT_REVOKED
    assert len(server.requests) == 1


def test_a_static_token_cannot_be_refreshed():
    source = StaticTokenSource(OLD)
    assert source.access_token() == OLD
    with pytest.raises(InvsyncError) as caught:
        source.refresh(OLD)
    assert caught.value.code == ErrorCode.OAUTH_GRANT_REVOKED


def test_tokens_from_a_refresh_answer_keep_the_refresh_token_the_vendor_did_not_rotate():
    first = OAuthTokens.from_token_response(
        {"access_token": OLD, "refresh_token": "r1", "expires_in": 3600, "scope": "a b"}, now=0
    )
    assert first.expires_at == 3600 and first.scopes == ("a", "b")
    assert first.expires_within(60, now=3550) and not first.expires_within(60, now=3000)
    again = OAuthTokens.from_token_response({"access_token": NEW}, previous=first, now=10)
    assert again.refresh_token == "r1" and again.scopes == ("a", "b") and again.expires_at is None
    assert OAuthTokens.from_dict(again.as_dict()) == again
    assert OLD not in repr(first) and "r1" not in repr(first)
