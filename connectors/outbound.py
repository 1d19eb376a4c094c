"""The outbound policy: where invsync's calls to a vendor's tool may go.

A connection's address is typed by a person (an Accountant), and what answers is shown to others:
left open, a connection would let anyone who may edit one probe the network invsync runs in (its
loopback services, the private network, a cloud's metadata service). So every outbound call
follows a policy (:class:`OutboundPolicy`):

- Only globally reachable addresses, by default. Loopback (127/8, ::1), private (10/8, 172.16/12,
  192.168/16, fc00::/7), shared (100.64/10), link-local (169.254/16, fe80::/10, with the cloud
  metadata services 169.254.169.254 and fd00:ec2::254), unspecified (0.0.0.0, ::), multicast and
  reserved addresses are refused, in every spelling (IPv4-mapped ``::ffff:127.0.0.1``, 6to4,
  NAT64, Teredo: the IPv4 address inside is checked too).
- An allow-list for self-hosted tools on a private network: networks (``10.0.0.0/8``,
  ``127.0.0.1/32``) whose addresses are allowed, and host names (``tryton.internal``) allowed to
  resolve to any address except the metadata services (those only through a network entry).
- The check happens at connect time, on every address the host name resolves to, and the
  connection is made to those very addresses (:class:`OutboundAdapter`): DNS answering a public
  address to a first lookup and a private one to the next (rebinding) cannot get past it.
- Redirects to another host (or from https to http) are never followed (:class:`OutboundSession`).

Pure Python on ``requests``/``urllib3``: no Django. What the policy allows comes from the caller
(``connectors.selectors.outbound_policy`` reads the setting ``INVSYNC_OUTBOUND_ALLOWED_NETWORKS``)
and reaches the connector in its :class:`~connectors.base.ConnectionConfig`.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services: refused even to an allowed host name; only a network entry that
# contains them lets a call through.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def address_kind(address: IPAddress) -> str | None:
    """What makes ``address`` not a public one ("loopback", "private", ...), or None for a
    globally reachable address. An IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64,
    Teredo) is judged on both."""
    for candidate in (*_embedded(address), address):  # named after the IPv4 address inside
        kind = _own_kind(candidate)
        if kind is not None:
            return kind
    return None


def _own_kind(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in _THIS_NETWORK:
        return "reserved"
    if address.version == 4 and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.version == 6 and address.ipv4_mapped is None and int(address) < 2**32:
        return "reserved"  # ::a.b.c.d, the deprecated IPv4-compatible form
    if address.is_private and not address.is_reserved:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    if address.version == 4:
        return []
    assert isinstance(address, ipaddress.IPv6Address)
    found: list[IPAddress] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


class AddressNotAllowed(NewConnectionError):
    """A connection the policy refused before it was made: nothing was sent, not even a SYN.

    A ``NewConnectionError`` so that urllib3 and requests report it as a connection that could not
    be made (``requests.ConnectionError``); :func:`refusal_in` finds it inside."""

    def __init__(self, host: str, address: str, kind: str, conn: Any = None) -> None:
        self.conn = conn
        self.host = host
        self.address = address
        self.kind = kind
        Exception.__init__(
            self, f"{host} is a {kind} address ({address}), which the outbound policy refuses"
        )

    @property
    def reason(self) -> str:
        """For people: what was refused, without the address itself."""
        return f"a {self.kind} address"


@dataclass(frozen=True)
class OutboundPolicy:
    """Where outbound calls may go. The default (no argument) refuses every address that is not
    globally reachable; ``allowed_networks`` and ``allowed_hosts`` open exceptions;
    ``restricted=False`` (:data:`UNRESTRICTED`) checks nothing (tests of the transport only)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    restricted: bool = True

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> OutboundPolicy:
        """A policy allowing ``entries``: networks (``10.0.0.0/8``), addresses (``127.0.0.1``,
        ``::1``) and host names (``tryton.internal``); blanks are ignored. Raises ValueError
        naming the entry that is none of these."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = str(raw).strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _normal_host(entry)
            if not _HOST_NAME.match(name) or name.replace(".", "").isdigit():
                raise ValueError(
                    f"{entry!r} is neither a network (e.g. 10.0.0.0/8), an address nor a host name"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, address: IPAddress | str) -> AddressNotAllowed | None:
        """Why a connection to ``address`` (which ``host`` resolved to) is refused, or None."""
        if not self.restricted:
            return None
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        kind = address_kind(ip)
        if kind is None:
            return None
        forms = (ip, *_embedded(ip))
        if any(form in network for form in forms for network in self.allowed_networks):
            return None
        if _normal_host(host) in self.allowed_hosts and not any(
            form in METADATA_ADDRESSES for form in forms
        ):
            return None
        return AddressNotAllowed(host, str(ip), kind)

    def check(self, host: str, addresses: Sequence[IPAddress | str]) -> None:
        """Raise :class:`AddressNotAllowed` unless every one of ``addresses`` is allowed: one
        refused address is enough (a name answering both a public and a private address is
        refused, whichever the connection would have used)."""
        for address in addresses:
            refused = self.refusal(host, address)
            if refused is not None:
                logger.warning("outbound: refused %s", refused)
                raise refused

    def describe(self) -> str:
        if not self.restricted:
            return "any address"
        allowed = [str(n) for n in self.allowed_networks] + sorted(self.allowed_hosts)
        return "public addresses" + (f" and {', '.join(allowed)}" if allowed else " only")


UNRESTRICTED = OutboundPolicy(restricted=False)
# Loopback only, besides public addresses: a laptop's default (DEBUG on), so that the demo's
# local Tryton can be reached.
LOOPBACK_ALLOWED = OutboundPolicy.from_allow_list(["127.0.0.0/8", "::1/128"])


def _normal_host(host: str) -> str:
    return str(host or "").strip().strip("[]").rstrip(".").lower()


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection, as urllib3 does it (its IPv4/IPv6 preference)."""
    return socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)


def checked_connection(
    policy: OutboundPolicy,
    host: str,
    port: int,
    *,
    timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, int | bytes]] | None = None,
) -> socket.socket:
    """A socket connected to ``host``: resolved once, every address checked against ``policy``,
    then connected to the first of those addresses that answers (never resolved again). Raises
    AddressNotAllowed (nothing sent), socket.gaierror or OSError."""
    host = host.strip("[]")
    infos = resolve(host, port)
    policy.check(host, [info[4][0] for info in infos])
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as failure:
            error = failure
            sock.close()
    raise error or OSError("getaddrinfo returned no address")


class _CheckedConnectionMixin:
    """urllib3 connections that connect through :func:`checked_connection`."""

    outbound_policy: OutboundPolicy = OutboundPolicy()

    def _new_conn(self) -> socket.socket:
        try:
            sock = checked_connection(
                self.outbound_policy,
                self._dns_host,
                self.port,
                timeout=self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except AddressNotAllowed as refused:
            refused.conn = self
            raise
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(
                self,
                f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
            ) from error
        except OSError as error:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {error}"
            ) from error
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


@functools.lru_cache(maxsize=64)
def _pool_classes(policy: OutboundPolicy) -> dict[str, type]:
    attributes = {"outbound_policy": policy}
    http_conn = type("CheckedHTTPConnection", (_CheckedConnectionMixin, HTTPConnection), attributes)
    https_conn = type(
        "CheckedHTTPSConnection", (_CheckedConnectionMixin, HTTPSConnection), attributes
    )
    return {
        "http": type(
            "CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
        ),
        "https": type(
            "CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
        ),
    }


class OutboundAdapter(HTTPAdapter):
    """A ``requests`` transport adapter whose every connection follows ``policy`` (checked at
    connect time, on the addresses actually connected to). Never retries on its own.

    Through a proxy (``HTTPS_PROXY``...), the connection goes to the proxy, which is checked like
    any host; the address the proxy is asked to reach is checked before the request (resolved
    here: the proxy may resolve it otherwise, so a proxy should enforce its own egress rules)."""

    __attrs__ = [*HTTPAdapter.__attrs__, "policy"]

    def __init__(self, policy: OutboundPolicy, **kwargs: Any) -> None:
        self.policy = policy
        kwargs.setdefault("max_retries", 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _pool_classes(self.policy)
        return manager

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.policy.restricted and select_proxy(request.url, kwargs.get("proxies") or {}):
            parts = urlsplit(request.url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = [info[4][0] for info in resolve(host, port)]
            except OSError:
                addresses = []  # the proxy resolves it, or fails to
            try:
                self.policy.check(host, addresses)
            except AddressNotAllowed as refused:
                raise requests.ConnectionError(refused, request=request) from None
        return super().send(request, **kwargs)


class OutboundSession(requests.Session):
    """A ``requests`` session under ``policy``: every connection through
    :class:`OutboundAdapter`, and redirects followed only on the same host and port and never
    from https to http (another one is returned as the 3xx answer itself)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__()
        self.policy = policy
        adapter = OutboundAdapter(policy)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        origin = urlsplit(resp.url)
        # Relative targets stay on the host.
        destination = urlsplit(requests.compat.urljoin(resp.url, target))
        if not _same_origin(origin, destination):
            logger.info("outbound: redirect from %s to another host not followed", origin.hostname)
            return None
        return target


def _same_origin(origin: Any, destination: Any) -> bool:
    def port(parts: Any) -> int | None:
        try:
            return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        except ValueError:
            return None

    before, after = origin.scheme.lower(), destination.scheme.lower()
    if _normal_host(origin.hostname or "") != _normal_host(destination.hostname or ""):
        return False
    if before == after:
        return port(origin) == port(destination)
    return (before, after) == ("http", "https")  # an upgrade; never a downgrade


def refusal_in(error: BaseException) -> AddressNotAllowed | None:
    """The policy's refusal inside a transport error (``requests.ConnectionError`` wraps urllib3's
    ``MaxRetryError`` which wraps it), or None."""
    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, AddressNotAllowed):
            return item
        stack.extend(item.args)
        stack.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return None
