"""The e-invoice inbox: an invoicing source whose invoices are files received by invsync.

Files come in by upload in the admin (one or many, or a zip) or from a watched folder that the
scheduled sync reads; each is kept once, with its SHA-256, by the :class:`InboxStore` the
connection hands in (``connectors.inbox_store``: Django's storage API and a table; this module
takes no ORM). The run gets:

- a canonical :class:`Invoice` per readable file, its direction from our company's identifiers
  (we are the buyer → purchase, the seller → sale), its source id the invoice's key (seller +
  number + issue date, :func:`mapping.invoice_source_id`): the same invoice received twice,
  whatever its bytes, is one record;
- the file itself as the attachment: the Factur-X PDF, or for an XML-only file (CII, UBL) the
  XML file (``application/xml``);
- for a file that cannot be accepted, a :class:`SourceRecordError` with the reader's catalogue
  code (``EINVOICE_INVALID``, ``EINVOICE_UNSUPPORTED``, ``EINVOICE_NOT_OURS``) and message, keyed
  ``file:<sha256>``: one bad file never stops the others.

A second file with the key of an invoice already received but other bytes is refused when it
arrives (state ``duplicate``, with a message naming the first file) and kept for review; it never
reaches a run.

The watched folder: its top-level files are read (hidden files and sub-folders are not), at most
:data:`FOLDER_BATCH` per run; each file, once stored, is **moved** into ``done/`` (read) or
``failed/`` (refused) under the folder, never deleted. Where the folder cannot be written (a
read-only share) the file stays and is recognised by its hash on the next run: the same bytes
are never stored twice.

The mailbox (:mod:`.mailbox`, IMAP): the PDF, XML and zip attachments of the folder's unseen
messages, at most :data:`~.mailbox.MAILBOX_BATCH` messages per run; each message is fetched
without being marked, its attachments stored, and only then marked seen or moved. Its login and
password are the connection's credentials (auth kind ``credentials``; an inbox without a
mailbox has none: auth kind ``none``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Protocol

from stdnum.eu import vat as stdnum_vat
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    InvoicingSource,
    SettingField,
    SourceRecordError,
)
from connectors.canonical import (
    Attachment,
    ConnectionCheck,
    Direction,
    Invoice,
    SourceTaxRate,
    TaxKind,
)
from connectors.errors import ErrorCode, InvsyncError
from connectors.messages import N_
from connectors.providers.einvoice.detect import MAX_FILE_BYTES
from connectors.providers.einvoice.document import EInvoiceError
from connectors.providers.einvoice.mailbox import (
    MAILBOX_BATCH,
    MAILBOX_SETTINGS,
    MESSAGE_MAX_BYTES,
    MailboxClient,
    MailboxSettings,
    einvoice_attachments,
    mailbox_problem,
)
from connectors.providers.einvoice.mapping import OurCompany, partner_of
from connectors.providers.einvoice.reader import EInvoice, read_einvoice

logger = logging.getLogger(__name__)

# Zip uploads: bounded before anything is inflated, and the real inflated size is checked too.
ZIP_MAX_FILES = 500
ZIP_MAX_TOTAL_BYTES = 200 * 1024 * 1024
ZIP_MAX_RATIO = 200  # inflated / compressed, per member (a zip bomb's ratio is in the thousands)
# The watched folder: files read per run (the next run takes the rest).
FOLDER_BATCH = 1000
DONE_DIR = "done"
FAILED_DIR = "failed"
NAME_MAX = 255


class Origin:
    UPLOAD = "upload"
    FOLDER = "folder"
    MAILBOX = "mailbox"


class FileState:
    READ = "read"  # an invoice: offered to runs
    FAILED = "failed"  # refused by the reader: offered to runs as a failed record
    DUPLICATE = "duplicate"  # another file already holds this invoice: kept for review only


@dataclass(frozen=True)
class StoredFile:
    """One received file as the store keeps it."""

    sha256: str
    name: str
    size: int
    received_at: dt.datetime
    origin: str
    state: str
    invoice_key: str = ""  # the invoice's source id (seller + number + date), for READ files
    code: str = ""
    message: str = ""

    @property
    def source_id(self) -> str:
        return self.invoice_key if self.state == FileState.READ else f"file:{self.sha256}"


@dataclass
class MailboxReport:
    """What reading the mailbox did: messages read, the files they brought, the messages without
    an e-invoice attachment and those too large to fetch (each a failed record)."""

    messages: int = 0
    receipts: list[Receipt] = field(default_factory=list)
    without_einvoice: int = 0
    too_large: int = 0


@dataclass(frozen=True)
class Receipt:
    """What receiving one file did: ``created`` False when the same bytes were already there."""

    file: StoredFile
    created: bool

    @property
    def message(self) -> str:
        name = self.file.name
        if not self.created:
            return f"{name}: already received on {self.file.received_at:%Y-%m-%d %H:%M} UTC."
        if self.file.state == FileState.READ:
            return f"{name}: received."
        return f"{name}: kept but refused — {self.file.message}"


class InboxStore(Protocol):
    """Where an inbox keeps its files (``connectors.inbox_store.DatabaseInboxStore``; tests may
    hand a memory one). Every method is per connection."""

    def find(self, sha256: str) -> StoredFile | None: ...

    def add(
        self,
        *,
        name: str,
        content: bytes,
        sha256: str,
        origin: str,
        state: str,
        invoice_key: str = "",
        seller: str = "",
        number: str = "",
        issue_date: dt.date | None = None,
        code: str = "",
        message: str = "",
    ) -> Receipt:
        """Keep the file (state READ is turned into DUPLICATE, with a message, when another
        file holds ``invoice_key``). Returns the existing file's receipt for known bytes."""
        ...

    def files(self, since: dt.datetime | None) -> Iterator[StoredFile]:
        """READ and FAILED files received at or after ``since``, oldest first."""
        ...

    def by_source_id(self, source_id: str) -> StoredFile | None: ...

    def content(self, sha256: str) -> bytes: ...


def _siren(value: str) -> str | None:
    return None if stdnum_siren.is_valid(value) else "is not a valid SIREN (9 digits, checksum)"


def _siret(value: str) -> str | None:
    return None if stdnum_siret.is_valid(value) else "is not a valid SIRET (14 digits, checksum)"


def _vat(value: str) -> str | None:
    if stdnum_vat.is_valid(value):
        return None
    return "is not a valid EU VAT number (country prefix and checksum, e.g. FR40303265045)"


def _folder(value: str) -> str | None:
    if not os.path.isabs(value):
        return "must be an absolute path to a folder, e.g. /srv/einvoices/in"
    return None


def _yes_no(value: str) -> str | None:
    return None if value.lower() in ("yes", "no") else "must be yes or no"


IDENTIFIER_SETTINGS = ("siren", "siret", "vat_number", "legal_id", "company_name")

SETTINGS_FIELDS = (
    SettingField(
        "siren", N_("Our SIREN"), N_("Our company's SIREN."), required=False, check=_siren
    ),
    SettingField(
        "siret", N_("Our SIRET"), N_("Our company's SIRET."), required=False, check=_siret
    ),
    SettingField(
        "vat_number", N_("Our VAT number"), N_("Our EU VAT number."), required=False, check=_vat
    ),
    SettingField(
        "legal_id",
        N_("Our legal id"),
        N_("Another registration id of our company (e.g. a German Handelsregister number)."),
        required=False,
    ),
    SettingField(
        "company_name",
        N_("Our exact name"),
        N_("Used only for a party that carries no identifier at all."),
        required=False,
    ),
    SettingField(
        "uploads",
        N_("Accept uploads"),
        N_("yes: files may be uploaded on the connection's page (one, many, or a zip)."),
        required=False,
        default="yes",
        check=_yes_no,
    ),
    SettingField(
        "folder",
        N_("Watched folder"),
        N_(
            "An absolute path (a local folder or a mounted share) read by the scheduled sync; each "
            "file read is moved into its done/ or failed/ sub-folder. Empty: no folder."
        ),
        required=False,
        check=_folder,
    ),
    *MAILBOX_SETTINGS,
)


class EInvoiceInbox(InvoicingSource):
    key = "einvoice_inbox"
    name = "E-invoice inbox (Factur-X, CII, UBL)"
    # None: uploads and a folder need no sign-in; Login and password: the mailbox's.
    auth_kinds = (AuthKind.NONE, AuthKind.CREDENTIALS)
    settings_fields = SETTINGS_FIELDS
    supports_attachments = True
    # connectors.selectors.connector_for hands such a connector its store.
    uses_inbox_store: ClassVar[bool] = True

    def __init__(self, config: ConnectionConfig, *, store: InboxStore | None = None) -> None:
        super().__init__(config)
        self.store = store
        settings = config.settings
        self.company = OurCompany(
            identifiers=tuple(
                str(settings[name]).strip()
                for name in ("siren", "siret", "vat_number", "legal_id")
                if str(settings.get(name) or "").strip()
            ),
            name=str(settings.get("company_name") or "").strip() or None,
        )
        self.folder = str(settings.get("folder") or "").strip() or None
        self.uploads = str(settings.get("uploads") or "yes").strip().lower() != "no"
        self.mailbox = MailboxSettings.from_settings(settings)

    @classmethod
    def settings_problem(cls, settings: Mapping[str, object]) -> str | None:
        if not any(str(settings.get(name) or "").strip() for name in IDENTIFIER_SETTINGS):
            return (
                "an e-invoice inbox needs at least one of our company's identifiers (SIREN, "
                "SIRET, VAT number, legal id or exact name) to tell purchases from sales"
            )
        if problem := mailbox_problem(settings):
            return problem
        uploads = str(settings.get("uploads") or "yes").strip().lower() != "no"
        if not uploads and not any(
            str(settings.get(name) or "").strip() for name in ("folder", "imap_host")
        ):
            return (
                "an e-invoice inbox needs a way in: accept uploads, a watched folder or a mailbox"
            )
        return None

    # -- the store ------------------------------------------------------------------------------

    def _store(self) -> InboxStore:
        if self.store is None:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The e-invoice inbox {self.config.label!r} has no file store.",
            )
        return self.store

    def _company_or_error(self) -> OurCompany:
        if problem := self.settings_problem(self.config.settings):
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE, problem[0].upper() + problem[1:] + "."
            )
        return self.company

    def receive(self, name: str, content: bytes, origin: str) -> Receipt:
        """Read and keep one file (its name is shown, never used as a path)."""
        store = self._store()
        company = self._company_or_error()
        shown = display_name(name)
        sha256 = hashlib.sha256(content).hexdigest()
        known = store.find(sha256)
        if known is not None:
            return Receipt(known, created=False)
        try:
            result = read_einvoice(content, company=company, filename=shown)
        except EInvoiceError as error:
            return store.add(
                name=shown,
                content=content,
                sha256=sha256,
                origin=origin,
                state=FileState.FAILED,
                code=error.code.value,
                message=error.message,
            )
        document = result.document
        return store.add(
            name=shown,
            content=content,
            sha256=sha256,
            origin=origin,
            state=FileState.READ,
            invoice_key=result.invoice.source_id,
            seller=partner_of(document.seller).source_id,
            number=document.number,
            issue_date=document.issue_date,
        )

    def receive_upload(self, name: str, content: bytes) -> list[Receipt]:
        """One uploaded file, or every file of an uploaded zip (bounded; see :func:`unzip`)."""
        if not self.uploads:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The e-invoice inbox {self.config.label!r} does not accept uploads.",
            )
        if content[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
            return [
                self.receive(member, data, Origin.UPLOAD) for member, data in unzip(name, content)
            ]
        return [self.receive(name, content, Origin.UPLOAD)]

    # -- the watched folder ---------------------------------------------------------------------

    def collect_folder(self) -> list[Receipt]:
        """Store the folder's new files (at most FOLDER_BATCH) and move each into done/ or
        failed/. A file that cannot be read from the folder is left where it is and logged."""
        if not self.folder:
            return []
        root = Path(self.folder)
        if not root.is_dir():
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The watched folder of the e-invoice inbox {self.config.label!r} is not a "
                "folder invsync can read: check the path and that it is mounted.",
                field="folder",
            )
        receipts: list[Receipt] = []
        for path in _folder_files(root, FOLDER_BATCH):
            try:
                size = path.stat().st_size
                # A file too large is refused below without being read.
                content = b"" if size > MAX_FILE_BYTES else path.read_bytes()
            except OSError as error:
                logger.warning("inbox %s: cannot read %s: %s", self.config.label, path.name, error)
                continue
            if size > MAX_FILE_BYTES:
                receipt = self._too_large(path.name, size, Origin.FOLDER, "left in failed/")
            else:
                receipt = self.receive(path.name, content, Origin.FOLDER)
            receipts.append(receipt)
            _move_aside(root, path, receipt.file.state == FileState.READ)
        return receipts

    def _too_large(
        self, name: str, size: int, origin: str, where: str, limit: int = MAX_FILE_BYTES
    ) -> Receipt:
        marker = hashlib.sha256(f"too-large\x1f{name}\x1f{size}".encode()).hexdigest()
        known = self._store().find(marker)
        if known is not None:
            return Receipt(known, created=False)
        return self._store().add(
            name=display_name(name),
            content=b"",
            sha256=marker,
            origin=origin,
            state=FileState.FAILED,
            code=ErrorCode.EINVOICE_UNSUPPORTED.value,
            message=f"the {'file' if origin == Origin.FOLDER else 'message'} is "
            f"{size // (1024 * 1024)} MB, more than the {limit // (1024 * 1024)} MB invsync "
            f"reads ({where}, not stored)",
        )

    # -- the mailbox ----------------------------------------------------------------------------

    def _mailbox_client(self) -> MailboxClient:
        assert self.mailbox is not None
        if self.config.auth_kind != AuthKind.CREDENTIALS:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The mailbox of the e-invoice inbox {self.config.label!r} needs its login and "
                "password: choose the authentication 'Login and password' and enter them.",
                field="auth_kind",
            )
        return MailboxClient(
            self.mailbox,
            self.config.credentials,
            policy=self.config.outbound,
            label=self.config.label,
        )

    def collect_mailbox(self) -> MailboxReport:
        """Store the e-invoice attachments of the mailbox's unseen messages (at most
        MAILBOX_BATCH), each message marked seen or moved once its files are stored: a crash
        before that leaves it unseen, and reading it again stores nothing twice (same hash).
        A refused login or an unreachable server raises (the run fails with its code)."""
        report = MailboxReport()
        if self.mailbox is None:
            return report
        self._store()
        self._company_or_error()
        with self._mailbox_client() as client:
            uids = client.unseen(MAILBOX_BATCH)
            sizes = client.sizes(uids)
            for uid in uids:
                size = sizes.get(uid, 0)
                if size > MESSAGE_MAX_BYTES:
                    receipts = [
                        self._too_large(
                            f"message {uid} of {self.mailbox.folder}",
                            size,
                            Origin.MAILBOX,
                            "left in the mailbox",
                            MESSAGE_MAX_BYTES,
                        )
                    ]
                    report.too_large += 1
                else:
                    raw = client.fetch(uid)
                    if raw is None:  # expunged meanwhile
                        continue
                    receipts = self._receive_message(raw)
                    if not receipts:
                        report.without_einvoice += 1
                client.done(uid)
                report.messages += 1
                report.receipts.extend(receipts)
        logger.info(
            "inbox %s: mailbox %s: %d message(s) read, %d file(s), %d without an e-invoice, "
            "%d too large",
            self.config.label,
            self.mailbox.label,
            report.messages,
            len(report.receipts),
            report.without_einvoice,
            report.too_large,
        )
        return report

    def _receive_message(self, raw: bytes) -> list[Receipt]:
        """Store the message's e-invoice attachments (a zip's files one by one)."""
        attachments, _others = einvoice_attachments(raw)
        receipts: list[Receipt] = []
        for attachment in attachments:
            name, content = attachment.name, attachment.content
            if content[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
                try:
                    members = list(unzip(name, content))
                except ZipRefused as refused:
                    receipts.append(self._refused(name, content, refused))
                    continue
                receipts.extend(self.receive(m, data, Origin.MAILBOX) for m, data in members)
            else:
                receipts.append(self.receive(name, content, Origin.MAILBOX))
        return receipts

    def _refused(self, name: str, content: bytes, error: InvsyncError) -> Receipt:
        """Keep a file refused as a whole (a zip that cannot be opened) as a failed record."""
        sha256 = hashlib.sha256(content).hexdigest()
        known = self._store().find(sha256)
        if known is not None:
            return Receipt(known, created=False)
        return self._store().add(
            name=display_name(name),
            content=content[:MAX_FILE_BYTES],
            sha256=sha256,
            origin=Origin.MAILBOX,
            state=FileState.FAILED,
            code=error.code.value,
            message=error.message,
        )

    # -- the source contract --------------------------------------------------------------------

    def check_connection(self) -> ConnectionCheck:
        if problem := self.settings_problem(self.config.settings):
            return ConnectionCheck(
                False,
                problem[0].upper() + problem[1:] + ".",
                code=ErrorCode.CONFIGURATION_INCOMPLETE,
            )
        ways = ["uploads"] if self.uploads else []
        if self.folder:
            if not os.path.isdir(self.folder) or not os.access(self.folder, os.R_OK | os.X_OK):
                return ConnectionCheck(
                    False,
                    "The watched folder is not a folder invsync can read.",
                    code=ErrorCode.CONFIGURATION_INCOMPLETE,
                )
            writable = os.access(self.folder, os.W_OK)
            ways.append(
                "the watched folder" + ("" if writable else " (read-only: files stay in place)")
            )
        if self.mailbox is not None:
            try:
                with self._mailbox_client() as client:
                    unseen = client.count_unseen()
            except InvsyncError as error:
                return ConnectionCheck(False, error.message, code=error.code)
            ways.append(f"the mailbox {self.mailbox.label}, {unseen} unseen message(s)")
        return ConnectionCheck(True, f"E-invoice inbox ready: {' and '.join(ways)}.")

    def iter_invoices(
        self, *, since: dt.datetime | None, directions: Sequence[Direction]
    ) -> Iterator[Invoice | SourceRecordError]:
        wanted = {Direction(d) for d in directions}
        if not wanted:
            return
        self._company_or_error()
        store = self._store()
        self.collect_folder()
        self.collect_mailbox()
        for stored in store.files(since):
            item = self._item(stored)
            if isinstance(item, Invoice) and item.type.direction not in wanted:
                continue
            yield item

    def get_invoice(self, source_id: str) -> Invoice | SourceRecordError:
        stored = self._store().by_source_id(source_id)
        if stored is None:
            raise InvsyncError(
                ErrorCode.INVALID_SOURCE_DATA,
                f"No file of the e-invoice inbox holds the invoice {source_id}.",
            )
        return self._item(stored)

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        stored = self._store().by_source_id(invoice.source_id)
        if stored is None:
            raise InvsyncError(
                ErrorCode.PDF, f"The file of invoice {invoice.number} is no longer in the inbox."
            )
        return self._read(stored).attachment

    def list_tax_rates(self) -> list[SourceTaxRate]:
        """The VAT categories and rates e-invoices state most (French and German rates), both
        ways: a file's own are named ``<category>/<rate>`` (``S/20``) like these."""
        rows: list[SourceTaxRate] = []
        for direction in Direction:
            for category, rate, kind in COMMON_TAXES:
                rows.append(
                    SourceTaxRate(
                        direction=direction,
                        rate=Decimal(rate),
                        tax_id=f"{category}/{rate}",
                        name=f"{category} {rate} %",
                        kind=kind,
                    )
                )
        return rows

    # -- reading a stored file ------------------------------------------------------------------

    def _read(self, stored: StoredFile) -> EInvoice:
        content = self._store().content(stored.sha256)
        return read_einvoice(content, company=self.company, filename=stored.name)

    def _item(self, stored: StoredFile) -> Invoice | SourceRecordError:
        updated_at = _aware(stored.received_at)
        if stored.state != FileState.READ:
            return SourceRecordError(
                source_id=stored.source_id,
                error=InvsyncError(_code(stored.code), f"{stored.name}: {stored.message}"),
                number=stored.name[:100],
                updated_at=updated_at,
            )
        try:
            invoice = self._read(stored).invoice
        except EInvoiceError as error:
            # Our company's identifiers changed since the file came in, say.
            return SourceRecordError(
                source_id=stored.source_id,
                error=InvsyncError(error.code, f"{stored.name}: {error.message}"),
                number=stored.name[:100],
                updated_at=updated_at,
            )
        return _with_updated_at(invoice, updated_at)


COMMON_TAXES = (
    ("S", "20", TaxKind.STANDARD),
    ("S", "10", TaxKind.STANDARD),
    ("S", "5.5", TaxKind.STANDARD),
    ("S", "2.1", TaxKind.STANDARD),
    ("S", "19", TaxKind.STANDARD),
    ("S", "7", TaxKind.STANDARD),
    ("Z", "0", TaxKind.ZERO),
    ("E", "0", TaxKind.EXEMPT),
    ("AE", "0", TaxKind.REVERSE_CHARGE),
    ("K", "0", TaxKind.INTRA_EU),
    ("G", "0", TaxKind.EXPORT),
    ("O", "0", TaxKind.OUT_OF_SCOPE),
)


def _code(value: str) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.EINVOICE_INVALID


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _with_updated_at(invoice: Invoice, updated_at: dt.datetime) -> Invoice:
    return replace(invoice, updated_at=updated_at)


def display_name(name: str) -> str:
    """A received file's name as shown: its last path part, no control characters, bounded.
    Never used as a path (files are stored under their hash)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(char for char in base if char.isprintable()).strip() or "file"
    return cleaned[-NAME_MAX:]


class ZipRefused(InvsyncError):
    """An uploaded zip refused as a whole (too many files, too large, a bomb, unreadable)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.EINVOICE_UNSUPPORTED, message)


def unzip(name: str, content: bytes) -> Iterator[tuple[str, bytes]]:
    """The files of an uploaded zip, as (shown name, bytes). Checked before anything is inflated:
    at most ZIP_MAX_FILES members, declared sizes within MAX_FILE_BYTES each and
    ZIP_MAX_TOTAL_BYTES together, a bounded compression ratio; each member is then read with a
    bound on its real size (a lying header gains nothing). Folders, hidden files and macOS
    resource forks are skipped; nested zips are passed on as files (and refused as such). Member
    names are only shown, never used as paths."""
    shown = display_name(name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ZipRefused(f"{shown}: not a zip archive invsync can open ({error})") from None
    members = [
        info
        for info in members
        if not display_name(info.filename).startswith(".")
        and not info.filename.startswith("__MACOSX/")
    ]
    if len(members) > ZIP_MAX_FILES:
        raise ZipRefused(
            f"{shown} holds {len(members)} files; upload at most {ZIP_MAX_FILES} per zip"
        )
    total = sum(info.file_size for info in members)
    if total > ZIP_MAX_TOTAL_BYTES:
        raise ZipRefused(
            f"{shown} inflates to {total // (1024 * 1024)} MB; at most "
            f"{ZIP_MAX_TOTAL_BYTES // (1024 * 1024)} MB per zip"
        )
    for info in members:
        if info.file_size > MAX_FILE_BYTES:
            raise ZipRefused(
                f"{shown}: {display_name(info.filename)} is larger than "
                f"{MAX_FILE_BYTES // (1024 * 1024)} MB"
            )
        if info.compress_size and info.file_size / info.compress_size > ZIP_MAX_RATIO:
            raise ZipRefused(
                f"{shown}: {display_name(info.filename)} inflates {ZIP_MAX_RATIO} times or more "
                "(a zip bomb?)"
            )
    read_total = 0
    for info in members:
        try:
            with archive.open(info) as member:
                data = member.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
            raise ZipRefused(
                f"{shown}: {display_name(info.filename)} cannot be read ({error})"
            ) from None
        read_total += len(data)
        if len(data) > info.file_size or read_total > ZIP_MAX_TOTAL_BYTES:
            raise ZipRefused(f"{shown}: a member inflates beyond what its header declares")
        yield display_name(info.filename), data


def _folder_files(root: Path, limit: int) -> list[Path]:
    """The folder's top-level regular files (not hidden, not symlinks), by name, at most
    ``limit``: a streamed scan, never the whole listing held when the folder is huge."""
    found: list[Path] = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            found.append(root / entry.name)
            if len(found) >= limit * 4:
                break
    return sorted(found)[:limit]


def _move_aside(root: Path, path: Path, read: bool) -> None:
    """Move a stored file into done/ or failed/ (a numbered name when one is taken). Where the
    folder is read-only, the file stays: its hash is known, it is not stored twice."""
    target_dir = root / (DONE_DIR if read else FAILED_DIR)
    try:
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        counter = 1
        while target.exists():
            target = target_dir / f"{path.stem}.{counter}{path.suffix}"
            counter += 1
        os.replace(path, target)
    except OSError as error:
        logger.info("inbox folder %s: %s stays in place (%s)", root, path.name, error)
