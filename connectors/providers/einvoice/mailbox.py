"""The e-invoice inbox's mailbox: an IMAP folder whose unseen messages bring e-invoices as
attachments.

This module speaks IMAP (stdlib ``imaplib``) and reads messages (stdlib ``email``); what is kept
of them is the inbox's business (:meth:`connectors.providers.einvoice.inbox.EInvoiceInbox.
collect_mailbox`). The order is what makes it safe: a message is fetched with ``BODY.PEEK[]``
(nothing is marked), its attachments are stored, and only then is it marked seen or moved
(:meth:`MailboxClient.done`). A crash in between leaves it unseen: the next run reads it again and
its attachments are recognised by their hash.

Every connection goes through the outbound policy the connection hands in
(:func:`connectors.outbound.checked_connection`: the address is checked, then connected to), like
every HTTP call. TLS is implicit (port 993) or STARTTLS (port 143), with the system's certificate
authorities and the host name checked; ``none`` is accepted only for a server on this machine.

Every failure is an :class:`~connectors.errors.ConnectorError` with a catalogue code: a refused
login ``AUTHENTICATION_FAILED``; a server that cannot be reached, a TLS failure or a dropped
connection ``UNAVAILABLE``; a folder that does not exist or an address the outbound policy refuses
``CONFIGURATION_INCOMPLETE``. No message ever holds the login or the password.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.header
import email.policy
import imaplib
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, TypeVar

from connectors.base import SettingField
from connectors.errors import ConnectorError, ErrorCode
from connectors.http import Scrubber
from connectors.messages import N_
from connectors.outbound import AddressNotAllowed, OutboundPolicy, checked_connection
from connectors.providers.einvoice.detect import MAX_FILE_BYTES

logger = logging.getLogger(__name__)

TLS_IMPLICIT = "implicit"
TLS_STARTTLS = "starttls"
TLS_NONE = "none"
TLS_MODES = (TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE)
DEFAULT_PORTS = {TLS_IMPLICIT: 993, TLS_STARTTLS: 143, TLS_NONE: 143}
DEFAULT_FOLDER = "INBOX"
TIMEOUT = 30.0  # seconds, for the connection and every answer
# Messages read per run (the next run takes the rest).
MAILBOX_BATCH = 200
# A message above this is not fetched: an attachment of MAX_FILE_BYTES grows by a third in
# base64, plus the message's text.
MESSAGE_MAX_BYTES = MAX_FILE_BYTES * 4 // 3 + 2 * 1024 * 1024
# What an e-invoice attachment looks like: a PDF, an XML file or a zip of them. Other parts (the
# message's text, a logo, a signature image) are not e-invoices and are not kept.
EINVOICE_TYPES = frozenset(
    {
        "application/pdf",
        "application/x-pdf",
        "application/xml",
        "text/xml",
        "application/zip",
        "application/x-zip-compressed",
    }
)
EINVOICE_SUFFIXES = (".pdf", ".xml", ".zip")
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
FOLDER_NAME_MAX = 200

T = TypeVar("T")


def _host(value: str) -> str | None:
    if "://" in value or "/" in value or any(char.isspace() for char in value):
        return "must be a host name or an address, without scheme or path, e.g. imap.example.com"
    if value.startswith("[") or value.count(":") > 1:
        try:
            ipaddress.IPv6Address(value.strip("[]"))
        except ValueError:
            return "is not a valid address"
        return None
    if ":" in value:
        return "must not hold the port: use imap_port"
    return None


def _port(value: str) -> str | None:
    if value.isascii() and value.isdigit() and 1 <= int(value) <= 65535:
        return None
    return "must be a port number from 1 to 65535"


def _tls(value: str) -> str | None:
    return None if value.lower() in TLS_MODES else "must be implicit, starttls or none"


def _folder_name(value: str) -> str | None:
    if len(value) > FOLDER_NAME_MAX or any(not char.isprintable() for char in value):
        return f"must be a folder name of at most {FOLDER_NAME_MAX} printable characters"
    if value.startswith(("/", ".")) or "*" in value or "%" in value:
        return "must be a folder name, e.g. INBOX or Invoices/Done"
    return None


MAILBOX_SETTINGS = (
    SettingField(
        "imap_host",
        N_("Mailbox server (IMAP)"),
        N_(
            "The IMAP server's host name, e.g. imap.example.com. The mailbox's login and password "
            "are the connection's credentials (authentication: Login and password). Empty: no "
            "mailbox."
        ),
        required=False,
        check=_host,
        addresses_credentials=True,
    ),
    SettingField(
        "imap_port",
        N_("Mailbox port"),
        N_("Empty: 993 with implicit TLS, 143 with STARTTLS."),
        required=False,
        check=_port,
        addresses_credentials=True,
    ),
    SettingField(
        "imap_tls",
        N_("Mailbox TLS"),
        N_(
            "implicit (TLS from the start, port 993; the default), starttls (port 143), or none "
            "(only for a server on this machine: localhost, 127.0.0.1, ::1)."
        ),
        required=False,
        default=TLS_IMPLICIT,
        check=_tls,
        addresses_credentials=True,
    ),
    SettingField(
        "imap_folder",
        N_("Mailbox folder"),
        N_("The folder whose unseen messages are read (default INBOX)."),
        required=False,
        default=DEFAULT_FOLDER,
        check=_folder_name,
    ),
    SettingField(
        "imap_move_to",
        N_("Move read messages to"),
        N_(
            "A folder (created when missing) where each message goes once its attachments are "
            "stored. Empty: the message is marked as read and stays where it is."
        ),
        required=False,
        check=_folder_name,
    ),
)


def is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine: a loopback address or localhost."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MailboxSettings:
    """The mailbox part of an inbox connection's settings."""

    host: str
    port: int
    tls: str
    folder: str
    move_to: str | None

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> MailboxSettings | None:
        """The mailbox the settings name, or None (no ``imap_host``). Settings are checked when
        they are saved (:func:`mailbox_problem`); here a bad port falls back to the default."""
        host = str(settings.get("imap_host") or "").strip()
        if not host:
            return None
        tls = str(settings.get("imap_tls") or TLS_IMPLICIT).strip().lower()
        port_text = str(settings.get("imap_port") or "").strip()
        port = int(port_text) if not _port(port_text) else DEFAULT_PORTS.get(tls, 993)
        return cls(
            host=host.strip("[]"),
            port=port,
            tls=tls,
            folder=str(settings.get("imap_folder") or "").strip() or DEFAULT_FOLDER,
            move_to=str(settings.get("imap_move_to") or "").strip() or None,
        )

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port} ({self.folder})"


def mailbox_problem(settings: Mapping[str, object]) -> str | None:
    """What is wrong with the mailbox settings taken together (None: nothing, or no mailbox)."""
    mailbox = MailboxSettings.from_settings(settings)
    if mailbox is None:
        named = [
            name for name in ("imap_port", "imap_folder", "imap_move_to") if settings.get(name)
        ]
        if named:
            return f"the mailbox settings ({', '.join(named)}) need the mailbox server (imap_host)"
        return None
    if mailbox.tls == TLS_NONE and not is_local_host(mailbox.host):
        return (
            "a mailbox without TLS (imap_tls none) is only accepted on this machine (localhost, "
            "127.0.0.1, ::1): the password would cross the network in clear; use implicit or "
            "starttls"
        )
    if mailbox.move_to is not None and mailbox.move_to == mailbox.folder:
        return "the folder read messages are moved to (imap_move_to) must differ from the one read"
    return None


# -- reading messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MailAttachment:
    name: str
    content: bytes


def einvoice_attachments(raw: bytes) -> tuple[list[MailAttachment], int]:
    """The attachments of a message that may be e-invoices (PDF, XML, zip: by type or by name),
    including those of a forwarded message, and how many other attachments it has (images,
    documents; the message's own text is not counted). Never raises on a malformed message: what
    cannot be decoded is given as it is, for the reader to refuse."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: list[MailAttachment] = []
    others = 0
    for number, part in enumerate(message.walk(), start=1):
        if part.is_multipart():
            continue
        content_type = part.get_content_type().lower()
        filename = _filename(part)
        named = filename.lower().endswith(EINVOICE_SUFFIXES)
        if content_type in EINVOICE_TYPES or named:
            found.append(
                MailAttachment(filename or _default_name(content_type, number), _body(part))
            )
        elif filename or (part.get_content_disposition() == "attachment"):
            others += 1
    return found, others


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except (LookupError, ValueError, TypeError):  # an unknown charset, a broken RFC 2231 name
        return ""
    decoded = str(email.header.make_header(email.header.decode_header(name))) if name else ""
    return decoded.strip()


def _default_name(content_type: str, number: int) -> str:
    suffix = {"application/pdf": "pdf", "application/x-pdf": "pdf"}.get(content_type)
    if suffix is None:
        suffix = "zip" if "zip" in content_type else "xml"
    return f"attachment-{number}.{suffix}"


def _body(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


# -- IMAP ---------------------------------------------------------------------------------------


class NotLocal(Exception):
    """``imap_tls`` none, and the host name led to another machine: nothing was sent."""


class _CheckedIMAP4(imaplib.IMAP4):
    """``imaplib.IMAP4`` whose socket is opened by the outbound policy's
    :func:`checked_connection` (and wrapped in TLS from the start when ``implicit_tls``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        policy: OutboundPolicy,
        implicit_tls: ssl.SSLContext | None,
        local_only: bool,
    ) -> None:
        self._policy = policy
        self._implicit_tls = implicit_tls
        self._local_only = local_only
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = checked_connection(self._policy, self.host, self.port, timeout=timeout)
        if self._local_only and not ipaddress.ip_address(sock.getpeername()[0]).is_loopback:
            sock.close()
            raise NotLocal(self.host)
        if self._implicit_tls is not None:
            return self._implicit_tls.wrap_socket(sock, server_hostname=self.host)
        return sock


def imap_utf7(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3): ``Factures traitées`` →
    ``Factures trait&AOk-es``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            encoded = base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",")
            out.append("&" + encoded + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def quoted(name: str) -> str:
    """A folder name as an IMAP quoted string."""
    encoded = imap_utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_CODE = re.compile(r"^\[([A-Z-]+)")


class MailboxClient:
    """One IMAP session on the inbox's mailbox: ``with MailboxClient(...) as client:`` logs in
    and selects the folder; :meth:`unseen`, :meth:`sizes`, :meth:`fetch`, then :meth:`done` per
    message once its attachments are stored."""

    def __init__(
        self,
        settings: MailboxSettings,
        credentials: Mapping[str, str],
        *,
        policy: OutboundPolicy | None = None,
        label: str = "",
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._login = str(credentials.get("username") or "")
        self._password = str(credentials.get("password") or "")
        self._scrubber = Scrubber((self._password, self._login))
        self.policy = policy or OutboundPolicy()
        self.label = label or settings.label
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.imap: _CheckedIMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()

    def __enter__(self) -> MailboxClient:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the session ----------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, log in and select the folder (read-write); make sure the folder messages
        are moved to exists. Raises ConnectorError."""
        mailbox = self.settings
        if not self._login or not self._password:
            raise ConnectorError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The mailbox of {self.label!r} needs its login and password: choose the "
                "authentication 'Login and password' and enter them.",
                field="credentials",
            )
        try:
            self.imap = _CheckedIMAP4(
                mailbox.host,
                mailbox.port,
                timeout=self.timeout,
                policy=self.policy,
                implicit_tls=self.ssl_context if mailbox.tls == TLS_IMPLICIT else None,
                local_only=mailbox.tls == TLS_NONE,
            )
            if mailbox.tls == TLS_STARTTLS:
                self.imap.starttls(self.ssl_context)
        except AddressNotAllowed as refused:
            self._drop()
            raise ConnectorError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The mailbox server of {self.label!r} is {refused.reason}, which invsync's "
                "outbound policy refuses (INVSYNC_OUTBOUND_ALLOWED_NETWORKS).",
                field="imap_host",
            ) from None
        except NotLocal:
            self._drop()
            raise ConnectorError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The mailbox server of {self.label!r} is not on this machine: without TLS "
                "(imap_tls none) invsync sends no password over the network; use implicit or "
                "starttls.",
                field="imap_tls",
            ) from None
        except (OSError, imaplib.IMAP4.error, EOFError) as error:
            self._drop()
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} could not be reached: "
                f"{self._transport_detail(error)}.",
            ) from None
        self.capabilities = frozenset(str(c).upper() for c in self.imap.capabilities)
        self._log_in()
        self._select()
        if mailbox.move_to is not None:
            self._ensure_folder(mailbox.move_to)

    def _log_in(self) -> None:
        assert self.imap is not None
        try:
            if self._login.isascii() and self._password.isascii():
                self.imap.login(self._login, self._password)
            else:  # LOGIN is ASCII only; AUTHENTICATE PLAIN carries UTF-8
                plain = f"\0{self._login}\0{self._password}".encode()
                self.imap.authenticate("PLAIN", lambda _challenge: plain)
        except imaplib.IMAP4.abort as error:
            self._drop()
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} closed the connection at login: "
                f"{self._transport_detail(error)}.",
            ) from None
        except imaplib.IMAP4.error as error:
            self._drop()
            raise ConnectorError(
                ErrorCode.AUTHENTICATION_FAILED,
                f"The mailbox server of {self.label!r} refused the login and password"
                f"{self._server_code(error)}: check them, then use Test connection.",
                field="credentials",
            ) from None
        except OSError as error:
            self._drop()
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} stopped answering at login: "
                f"{self._transport_detail(error)}.",
            ) from None

    def _select(self) -> None:
        folder = self.settings.folder
        status, data = self._call("select the folder", lambda imap: imap.select(quoted(folder)))
        if status != "OK":
            raise ConnectorError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The mailbox of {self.label!r} has no folder {folder!r} invsync can read "
                f"({self._text(data)}): check the folder setting (imap_folder).",
                field="imap_folder",
            )

    def _ensure_folder(self, folder: str) -> None:
        status, data = self._call("list the folders", lambda imap: imap.list('""', quoted(folder)))
        if status == "OK" and any(item for item in data if item):
            return
        status, data = self._call("create the folder", lambda imap: imap.create(quoted(folder)))
        if status != "OK":
            raise ConnectorError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The folder {folder!r} that read messages are moved to cannot be created in the "
                f"mailbox of {self.label!r} ({self._text(data)}): create it, or change "
                "imap_move_to.",
                field="imap_move_to",
            )
        logger.info("mailbox %s: created the folder %r", self.label, folder)

    def close(self) -> None:
        """Log out. Safe to call twice."""
        imap, self.imap = self.imap, None
        if imap is None:
            return
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error, EOFError):
            with contextlib.suppress(OSError):
                imap.shutdown()

    def _drop(self) -> None:
        imap, self.imap = self.imap, None
        if imap is not None and getattr(imap, "sock", None) is not None:
            with contextlib.suppress(OSError):
                imap.shutdown()

    # -- the messages ---------------------------------------------------------------------------

    def unseen(self, limit: int = MAILBOX_BATCH) -> list[int]:
        """The UIDs of the folder's unseen messages, oldest first, at most ``limit``."""
        status, data = self._call("search", lambda imap: imap.uid("SEARCH", "UNSEEN"))
        self._expect(status, data, "search the unseen messages")
        uids = sorted({int(n) for line in data if line for n in line.split()})
        return uids[:limit]

    def count_unseen(self) -> int:
        return len(self.unseen(limit=10**9))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """Each message's size in bytes (RFC822.SIZE), read before anything is fetched."""
        if not uids:
            return {}
        found: dict[int, int] = {}
        for start in range(0, len(uids), 100):
            chunk = ",".join(str(uid) for uid in uids[start : start + 100])
            status, data = self._call(
                "read sizes", lambda imap, chunk=chunk: imap.uid("FETCH", chunk, "(RFC822.SIZE)")
            )
            self._expect(status, data, "read the messages' sizes")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if not isinstance(line, bytes):
                    continue
                uid, size = _UID.search(line), _SIZE.search(line)
                if uid and size:
                    found[int(uid.group(1))] = int(size.group(1))
        return found

    def fetch(self, uid: int) -> bytes | None:
        """The whole message, read with BODY.PEEK[] (it stays unseen); None when it is gone."""
        status, data = self._call(
            "fetch a message", lambda imap: imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        )
        self._expect(status, data, "fetch a message")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def done(self, uid: int) -> None:
        """Mark the message seen, then move it when a folder is named (MOVE where the server
        has it, else COPY, delete and expunge)."""
        target = self.settings.move_to
        status, data = self._call(
            "mark a message",
            lambda imap: imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Seen)"),
        )
        self._expect(status, data, "mark a message as read")
        if target is None:
            return
        if "MOVE" in self.capabilities:
            status, data = self._call(
                "move a message", lambda imap: imap.uid("MOVE", str(uid), quoted(target))
            )
            self._expect(status, data, f"move a message to {target!r}")
            return
        status, data = self._call(
            "copy a message", lambda imap: imap.uid("COPY", str(uid), quoted(target))
        )
        self._expect(status, data, f"copy a message to {target!r}")
        self._call(
            "delete a message",
            lambda imap: imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"),
        )
        if "UIDPLUS" in self.capabilities:
            self._call("expunge", lambda imap: imap.uid("EXPUNGE", str(uid)))
        else:
            self._call("expunge", lambda imap: imap.expunge())

    # -- errors ---------------------------------------------------------------------------------

    def _call(self, what: str, command: Callable[[imaplib.IMAP4], T]) -> T:
        if self.imap is None:
            raise ConnectorError(
                ErrorCode.UNAVAILABLE, f"The mailbox session of {self.label!r} is closed."
            )
        try:
            return command(self.imap)
        except (imaplib.IMAP4.abort, OSError, EOFError) as error:
            self._drop()
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} closed the connection (while trying to "
                f"{what}): {self._transport_detail(error)}. The next run resumes.",
            ) from None
        except imaplib.IMAP4.error as error:
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} refused to {what}: "
                f"{self._text([str(error)])}.",
            ) from None

    def _expect(self, status: str, data: Any, what: str) -> None:
        if status != "OK":
            raise ConnectorError(
                ErrorCode.UNAVAILABLE,
                f"The mailbox server of {self.label!r} refused to {what}: {self._text(data)}.",
            )

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text)

    def _text(self, data: Any) -> str:
        """The server's answer in a message: printable, bounded, never a credential."""
        items = data if isinstance(data, list | tuple) else [data]
        parts = []
        for item in items:
            if isinstance(item, tuple):
                continue
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            parts.append(text)
        text = " ".join(parts).strip() or "no answer"
        text = "".join(char for char in text if char.isprintable())[:200]
        return self._scrub(text)

    def _server_code(self, error: imaplib.IMAP4.error) -> str:
        text = error.args[0] if error.args else ""
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        match = _CODE.match(text.strip())
        return f" ({match.group(1)})" if match else ""

    def _transport_detail(self, error: BaseException) -> str:
        if isinstance(error, ssl.SSLCertVerificationError):
            return "its TLS certificate is not trusted (or does not name the host)"
        if isinstance(error, ssl.SSLError):
            return "the TLS handshake failed (is the TLS mode, imap_tls, the server's?)"
        if isinstance(error, socket.gaierror):
            return "the host name was not found"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (is the port right?)"
        if isinstance(error, TimeoutError | socket.timeout):
            return f"no answer within {self.timeout:g} seconds"
        if isinstance(error, EOFError | imaplib.IMAP4.abort):
            return "the connection was closed"
        if isinstance(error, imaplib.IMAP4.error):
            return self._scrub(self._text([str(error)]))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
        return type(error).__name__
