"""Where an e-invoice inbox keeps its files: the bytes through Django's storage API, the facts in
:class:`connectors.models.InboxFile`. :func:`connectors.selectors.connector_for` hands a
:class:`DatabaseInboxStore` to the inbox connector, which takes no ORM itself.

Storage: the storage named ``invsync_inbox`` in ``settings.STORAGES`` when there is one (e.g. an
S3-compatible bucket with django-storages' ``storages.backends.s3.S3Storage``), else the default
storage (local files under ``MEDIA_ROOT``, ``var/media`` unless ``INVSYNC_MEDIA_ROOT`` says
otherwise). A file is stored as ``einvoice-inbox/<connection id>/<sha[:2]>/<sha256>``: never
under the name it came with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage, storages
from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.models import InboxFile
from connectors.providers.einvoice.inbox import FileState, Receipt, StoredFile

STORAGE_ALIAS = "invsync_inbox"
# A file listed again although received just before the cursor: an upload committed while a run
# moved its cursor past it is still seen (the run skips what it already has).
CURSOR_OVERLAP = dt.timedelta(minutes=5)
MESSAGE_MAX = 2000


def inbox_storage() -> Storage:
    if STORAGE_ALIAS in getattr(settings, "STORAGES", {}):
        return storages[STORAGE_ALIAS]
    return default_storage


def _stored(row: InboxFile) -> StoredFile:
    return StoredFile(
        sha256=row.sha256,
        name=row.name,
        size=row.size,
        received_at=row.received_at,
        origin=row.origin,
        state=row.state,
        invoice_key=row.invoice_key,
        code=row.code,
        message=row.message,
    )


class DatabaseInboxStore:
    """The files of one inbox connection."""

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id

    def _rows(self):
        return InboxFile.objects.filter(connection_id=self.connection_id)

    def find(self, sha256: str) -> StoredFile | None:
        row = self._rows().filter(sha256=sha256).first()
        return _stored(row) if row else None

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
        storage_name = ""
        if content:
            storage_name = f"einvoice-inbox/{self.connection_id}/{sha256[:2]}/{sha256}"
            storage = inbox_storage()
            if not storage.exists(storage_name):
                storage_name = storage.save(storage_name, ContentFile(content))
        row = InboxFile(
            connection_id=self.connection_id,
            sha256=sha256,
            name=name[:255],
            size=len(content),
            storage_name=storage_name,
            received_at=timezone.now(),
            origin=origin,
            state=state,
            invoice_key=invoice_key[:100],
            seller=seller[:100],
            number=number[:200],
            issue_date=issue_date,
            code=code,
            message=message[:MESSAGE_MAX],
        )
        if state == FileState.READ:
            first = self._rows().filter(invoice_key=row.invoice_key, state=FileState.READ).first()
            if first is not None:
                self._as_duplicate(row, first)
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            known = self._rows().filter(sha256=sha256).first()
            if known is not None:  # the same bytes, received at the same moment elsewhere
                return Receipt(_stored(known), created=False)
            first = self._rows().filter(invoice_key=row.invoice_key, state=FileState.READ).first()
            if first is None:
                raise
            self._as_duplicate(row, first)
            row.save()
        return Receipt(_stored(row), created=True)

    @staticmethod
    def _as_duplicate(row: InboxFile, first: InboxFile) -> None:
        row.state = FileState.DUPLICATE
        row.message = (
            f"invoice {row.number} of {row.issue_date} from this seller was already received in "
            f"{first.name} on {first.received_at:%Y-%m-%d %H:%M} UTC with other content: this "
            "file is kept for review and not synced (check which one is right; to replace the "
            "first, the seller must issue a credit note or a corrective invoice)"
        )[:MESSAGE_MAX]

    def files(self, since: dt.datetime | None) -> Iterator[StoredFile]:
        rows = self._rows().filter(state__in=[FileState.READ, FileState.FAILED])
        if since is not None:
            rows = rows.filter(received_at__gte=since - CURSOR_OVERLAP)
        for row in rows.order_by("received_at", "id").iterator(chunk_size=200):
            yield _stored(row)

    def by_source_id(self, source_id: str) -> StoredFile | None:
        if source_id.startswith("file:"):
            row = self._rows().filter(sha256=source_id[5:]).first()
        else:
            row = self._rows().filter(invoice_key=source_id, state=FileState.READ).first()
        return _stored(row) if row else None

    def content(self, sha256: str) -> bytes:
        row = self._rows().filter(sha256=sha256).first()
        if row is None or not row.storage_name:
            return b""
        with inbox_storage().open(row.storage_name, "rb") as handle:
            return handle.read()
