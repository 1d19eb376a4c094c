"""The outbound policy (connectors/outbound.py): which addresses are refused in every spelling,
the allow-list, and the transport that checks every resolved address at connect time (so a DNS
answer changing between a check and the connection gets nowhere), refuses redirects to another
host and checks where a proxy is sent. Listeners on 127.0.0.1 count the connections they get."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from connectors import outbound
from connectors.outbound import (
    LOOPBACK_ALLOWED,
    UNRESTRICTED,
    AddressNotAllowed,
    OutboundPolicy,
    OutboundSession,
    address_kind,
    refusal_in,
)

STRICT = OutboundPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.10", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.1.2.3", "reserved"),
        # IPv6 spellings of IPv4 addresses: the IPv4 address inside counts.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::7f00:1", "reserved"),  # IPv4-compatible ::127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ],
)
def test_address_that_is_not_public_is_refused_by_default(address, kind):
    import ipaddress

    assert address_kind(ipaddress.ip_address(address)) == kind
    refused = STRICT.refusal("tool.example", address)
    assert isinstance(refused, AddressNotAllowed) and refused.kind == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_address_is_allowed(address):
    assert STRICT.refusal("tool.example", address) is None


def test_allowed_network_opens_its_addresses_and_their_ipv6_spellings_only():
    policy = OutboundPolicy.from_allow_list(["10.0.0.0/8", " ", "127.0.0.1"])
    assert policy.refusal("erp", "10.20.30.40") is None
    assert policy.refusal("erp", "::ffff:10.20.30.40") is None
    assert policy.refusal("erp", "127.0.0.1") is None
    assert policy.refusal("erp", "127.0.0.2") is not None
    assert policy.refusal("erp", "192.168.0.1") is not None
    assert policy.refusal("erp", "169.254.169.254") is not None


def test_allowed_host_name_may_resolve_privately_but_never_to_a_metadata_service():
    policy = OutboundPolicy.from_allow_list(["Tryton.Internal."])
    assert policy.refusal("tryton.internal", "10.0.0.5") is None
    assert policy.refusal("TRYTON.internal.", "127.0.0.1") is None
    assert policy.refusal("other.internal", "10.0.0.5") is not None
    assert policy.refusal("tryton.internal", "169.254.169.254").kind == "cloud metadata"
    assert policy.refusal("tryton.internal", "::ffff:169.254.169.254") is not None
    explicit = OutboundPolicy.from_allow_list(["169.254.169.254/32"])
    assert explicit.refusal("metadata", "169.254.169.254") is None


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "http://10.0.0.1/", "1.2.3"])
def test_allow_list_entry_that_is_neither_network_nor_host_is_refused_by_name(entry):
    with pytest.raises(ValueError, match="neither a network"):
        OutboundPolicy.from_allow_list(["127.0.0.1/32", entry])


def test_one_refused_address_among_several_refuses_the_host():
    with pytest.raises(AddressNotAllowed) as refused:
        STRICT.check("mixed.example", ["93.184.216.34", "10.0.0.1"])
    assert refused.value.address == "10.0.0.1"
    assert refused.value.reason == "a private address"  # what people see: no address


def test_unrestricted_policy_refuses_nothing():
    assert UNRESTRICTED.refusal("x", "127.0.0.1") is None
    assert UNRESTRICTED.refusal("x", "169.254.169.254") is None


# -- The transport, against listeners on 127.0.0.1 --------------------------------------------


class Listener:
    """An HTTP server on 127.0.0.1 that counts the TCP connections it accepts and answers every
    request with ``reply`` (status, headers)."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.connections = 0
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                listener.connections += 1
                super().setup()

            def do_GET(self) -> None:
                listener.requests.append(self.path)
                body = b'{"ok": true}'
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def test_strict_session_never_connects_to_a_loopback_listener(listener):
    with OutboundSession(STRICT) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get(listener.url(), timeout=2)
    refused = refusal_in(caught.value)
    assert refused is not None and refused.kind == "loopback"
    assert listener.connections == 0 and listener.requests == []


def test_https_connection_is_checked_before_any_handshake():
    with socket.socket() as raw:
        raw.bind(("127.0.0.1", 0))
        raw.listen(4)
        raw.setblocking(False)
        port = raw.getsockname()[1]
        with OutboundSession(STRICT) as session:
            for url in (f"https://127.0.0.1:{port}/", f"https://[::ffff:127.0.0.1]:{port}/"):
                with pytest.raises(requests.ConnectionError) as caught:
                    session.get(url, timeout=2)
                assert refusal_in(caught.value) is not None
        with pytest.raises(BlockingIOError):
            raw.accept()  # nobody connected


def test_session_allowing_loopback_reaches_the_listener(listener):
    with OutboundSession(LOOPBACK_ALLOWED) as session:
        assert session.get(listener.url(), timeout=2).status_code == 200
    assert listener.connections == 1


def test_host_name_resolving_to_loopback_is_refused_at_connect_time(listener, monkeypatch):
    """localhost, a decimal IP, any name: what counts is the address the name resolves to."""
    with OutboundSession(STRICT) as session:
        for host in ("localhost", "2130706433", "0x7f.1"):
            with pytest.raises(requests.ConnectionError) as caught:
                session.get(listener.url(host), timeout=2)
            assert refusal_in(caught.value) is not None
    assert listener.connections == 0


def test_dns_rebinding_between_a_check_and_the_connection_gets_nowhere(listener, monkeypatch):
    """The name resolves to a public address when looked up first (a check made before the call
    would pass), then to 127.0.0.1: the transport checks what it connects to, at connect time,
    and connects to the very addresses it checked."""
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    lookups: list[str] = []

    def rebinding_resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        address = next(answers)
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(outbound, "resolve", rebinding_resolve)
    host = "rebind.example"
    # A check before the call sees a public address...
    STRICT.check(host, [info[4][0] for info in outbound.resolve(host, listener.port)])
    # ...the connection itself is refused: its own lookup answered loopback.
    with OutboundSession(STRICT) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get(f"http://{host}:{listener.port}/", timeout=2)
    assert refusal_in(caught.value).kind == "loopback"
    assert lookups == ["93.184.216.34", "127.0.0.1"]  # one lookup per connection, no second one
    assert listener.connections == 0


def test_every_resolved_address_is_checked_not_only_the_first(listener, monkeypatch):
    def two_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(outbound, "resolve", two_addresses)
    # The first address is allowed, the second is not: the host is refused as a whole.
    policy = OutboundPolicy.from_allow_list(["127.0.0.1/32"])
    with OutboundSession(policy) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get(f"http://two.example:{listener.port}/", timeout=2)
    assert refusal_in(caught.value).address == "10.0.0.1"
    assert listener.connections == 0


def test_redirect_to_another_host_or_port_is_not_followed(listener):
    elsewhere = Listener(302, {"Location": listener.url() + "inside"})
    try:
        with OutboundSession(LOOPBACK_ALLOWED) as session:
            answer = session.get(elsewhere.url(), timeout=2)
        assert answer.status_code == 302  # returned as it is
        assert listener.connections == 0
    finally:
        elsewhere.close()


def test_redirect_on_the_same_host_and_port_is_followed():
    redirecting = Listener(302, {"Location": "/next"})  # relative: the same host and port
    try:
        with OutboundSession(LOOPBACK_ALLOWED) as session:
            session.max_redirects = 2
            with pytest.raises(requests.TooManyRedirects):
                session.get(redirecting.url(), timeout=2)
        assert redirecting.requests[:2] == ["/", "/next"]
    finally:
        redirecting.close()


def test_proxy_is_not_asked_to_reach_a_refused_address(listener, monkeypatch):
    """Through a proxy the connection goes to the proxy (allowed here); where the proxy is sent
    is checked before the request, so the proxy never hears of a private address."""
    proxy = listener

    def private(host: str, port: int) -> list[tuple[Any, ...]]:
        if host == "127.0.0.1":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", port))]

    monkeypatch.setattr(outbound, "resolve", private)
    policy = OutboundPolicy.from_allow_list(["127.0.0.1/32"])
    with OutboundSession(policy) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get("http://intranet.example/", proxies={"http": proxy.url()}, timeout=2)
    assert refusal_in(caught.value).address == "10.9.9.9"
    assert proxy.connections == 0
