"""The e-invoice inbox connection: settings, files kept once by hash and by invoice key, uploads
(one file, many, a zip; zip bombs and path tricks refused), the watched folder (files moved to
done/ or failed/, remembered by hash where the folder is read-only), and what a run gets from it
(invoices with their file attached, failed records with the reader's code)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from connectors.canonical import Direction, InvoiceType
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import InboxFile
from connectors.providers.einvoice import inbox as inbox_module
from connectors.providers.einvoice.inbox import EInvoiceInbox, FileState, unzip
from connectors.selectors import connector_for
from connectors.services import connection_create, inbox_upload
from tests.factories.einvoices import MISSING_REASON, PNG_1PX, SAMPLES, embedded_xml
from tests.factories.models import ClientFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON),
]

FNFE = SAMPLES / "ZUGFeRDv2/correct/FNFE-factur-x-examples"
FNFE_FAIL = SAMPLES / "ZUGFeRDv2/fail/FNFE-factur-x-examples"
# Ma jolie boutique, the buyer of the FNFE samples.
BUYER_VAT = "FR19787878784"
SELLER_VAT = "FR11999999998"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def make_inbox(**settings):
    return connection_create(
        client=ClientFactory(),
        name="Inbox",
        kind="invoicing",
        provider="einvoice_inbox",
        auth_kind="none",
        settings={"vat_number": BUYER_VAT, **settings},
        credentials={},
    )


def items(connection, directions=tuple(Direction)):
    source = connector_for(connection)
    return list(source.iter_invoices(since=None, directions=directions))


# Settings.


def test_inbox_settings_need_one_of_our_identifiers():
    with pytest.raises(ValidationError, match="at least one of our company's identifiers"):
        make_inbox(vat_number="")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("siren", "123456789", "not a valid SIREN"),
        ("siret", "12345678901234", "not a valid SIRET"),
        ("vat_number", "FR00000000000", "not a valid EU VAT number"),
        ("folder", "relative/path", "absolute path"),
        ("uploads", "maybe", "yes or no"),
    ],
)
def test_inbox_settings_refuse_bad_identifiers_and_paths(name, value, words):
    with pytest.raises(ValidationError, match=words):
        make_inbox(**{name: value})


def test_inbox_settings_need_a_way_in():
    with pytest.raises(ValidationError, match="a way in"):
        make_inbox(uploads="no")


def test_inbox_accepts_valid_siren_siret_and_name():
    connection = make_inbox(siren="787878784", siret="73282932000074", company_name="Ma jolie")
    assert isinstance(connector_for(connection), EInvoiceInbox)
    assert connector_for(connection).check_connection().ok


# Storage: one record per file, one per invoice.


def test_the_same_file_twice_is_one_record_stored_under_its_hash(media):
    connection = make_inbox()
    content = (FNFE / "Facture_FR_BASICWL.pdf").read_bytes()
    first, again = inbox_upload(
        connection=connection,
        files=[("Facture_FR_BASICWL.pdf", content), ("copy.pdf", content)],
    )
    assert first.created and not again.created and "already received" in again.message
    row = InboxFile.objects.get(connection=connection)
    assert row.state == FileState.READ and row.size == len(content) and row.origin == "upload"
    assert row.storage_name.endswith(row.sha256)
    assert (media / row.storage_name).read_bytes() == content


def test_the_same_invoice_with_other_bytes_is_refused_and_kept_for_review():
    connection = make_inbox()
    xml = embedded_xml((FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
    (first,) = inbox_upload(connection=connection, files=[("a.xml", xml)])
    (second,) = inbox_upload(connection=connection, files=[("b.xml", xml + b"\n<!-- edited -->")])
    assert first.file.state == FileState.READ
    assert second.created and second.file.state == FileState.DUPLICATE
    assert "already received in a.xml" in second.message
    assert InboxFile.objects.filter(connection=connection).count() == 2
    listed = items(connection)
    assert [item.source_id for item in listed] == [first.file.invoice_key]


# What a run gets.


def test_a_factur_x_file_gives_a_purchase_with_the_pdf_attached():
    connection = make_inbox()
    content = (FNFE / "Facture_FR_BASICWL.pdf").read_bytes()
    inbox_upload(connection=connection, files=[("Facture_FR_BASICWL.pdf", content)])
    source = connector_for(connection)
    (invoice,) = source.iter_invoices(since=None, directions=[Direction.PURCHASES])
    assert invoice.type is InvoiceType.SUPPLIER_INVOICE and invoice.has_attachment
    assert invoice.updated_at is not None and invoice.updated_at.tzinfo is not None
    attachment = source.fetch_attachment(invoice)
    assert attachment.content == content and attachment.content_type == "application/pdf"
    assert source.get_invoice(invoice.source_id) == invoice
    # A sales-only flow gets nothing from a purchase.
    assert list(source.iter_invoices(since=None, directions=[Direction.SALES])) == []


def test_an_xml_only_file_is_its_own_attachment():
    connection = make_inbox()
    xml = embedded_xml((FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
    inbox_upload(connection=connection, files=[("facture.xml", xml)])
    source = connector_for(connection)
    (invoice,) = items(connection)
    attachment = source.fetch_attachment(invoice)
    assert attachment.content == xml and attachment.content_type == "application/xml"


def test_our_company_as_seller_gives_a_sale():
    connection = make_inbox(vat_number=SELLER_VAT)
    inbox_upload(
        connection=connection, files=[("f.pdf", (FNFE / "Facture_FR_BASICWL.pdf").read_bytes())]
    )
    (invoice,) = items(connection)
    assert invoice.type is InvoiceType.CUSTOMER_INVOICE


@pytest.mark.parametrize("path", sorted(FNFE_FAIL.glob("*.pdf")), ids=lambda p: p.name)
def test_failing_samples_become_failed_records_with_their_code(path):
    connection = make_inbox()
    # Another invoice than the failing file's (the FNFE files are renditions of two invoices).
    other = (
        "Facture_FR_BASICWL.pdf" if path.name.startswith("Avoir") else "Avoir_FR_type381_BASIC.pdf"
    )
    good = (FNFE / other).read_bytes()
    inbox_upload(connection=connection, files=[(path.name, path.read_bytes()), ("ok.pdf", good)])
    listed = items(connection)
    row = InboxFile.objects.get(connection=connection, name=path.name)
    if row.state == FileState.READ:
        # The corpus marks it failing; the reader accepted it (its notices say what it accepted).
        assert len(listed) == 2
        return
    failure = next(item for item in listed if item.source_id == f"file:{row.sha256}")
    assert failure.error.code.value == row.code and row.code.startswith("ERROR_SYNC_INVOICE_EINV")
    assert path.name in failure.error.message and row.message in failure.error.message
    # One bad file never stops the others.
    assert any(getattr(item, "has_attachment", False) for item in listed)


def test_a_file_that_is_no_einvoice_is_a_failed_record_not_a_crash():
    connection = make_inbox()
    (receipt,) = inbox_upload(connection=connection, files=[("scan.png", PNG_1PX)])
    assert receipt.file.state == FileState.FAILED
    (failure,) = items(connection)
    assert (
        failure.error.code is ErrorCode.EINVOICE_UNSUPPORTED
        and "PNG image" in failure.error.message
    )


def test_files_received_before_the_cursor_are_not_listed_again():
    connection = make_inbox()
    inbox_upload(
        connection=connection, files=[("f.pdf", (FNFE / "Facture_FR_BASICWL.pdf").read_bytes())]
    )
    (invoice,) = items(connection)
    later = invoice.updated_at + inbox_module.dt.timedelta(hours=1)
    assert (
        list(connector_for(connection).iter_invoices(since=later, directions=list(Direction))) == []
    )


# Uploads: zips.


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_upload_receives_each_file_and_never_uses_names_as_paths(media):
    connection = make_inbox()
    archive = _zip(
        {
            "../../../etc/evil.pdf": (FNFE / "Facture_FR_BASICWL.pdf").read_bytes(),
            "sub/Facture_UE_BASICWL.pdf": (FNFE / "Facture_UE_BASICWL.pdf").read_bytes(),
            "__MACOSX/._junk": b"junk",
        }
    )
    receipts = inbox_upload(connection=connection, files=[("batch.zip", archive)])
    assert sorted(r.file.name for r in receipts) == ["Facture_UE_BASICWL.pdf", "evil.pdf"]
    stored = {row.storage_name for row in InboxFile.objects.filter(connection=connection)}
    assert all(name.startswith(f"einvoice-inbox/{connection.pk}/") for name in stored)
    assert not any(path.name == "evil.pdf" for path in media.parent.rglob("*"))


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    bomb = _zip({"bomb.xml": b"0" * (20 * 1024 * 1024)})
    with pytest.raises(InvsyncError, match="zip bomb"):
        list(unzip("bomb.zip", bomb))


def test_a_zip_with_too_many_files_is_refused(monkeypatch):
    monkeypatch.setattr(inbox_module, "ZIP_MAX_FILES", 3)
    archive = _zip({f"f{i}.xml": b"<x/>" for i in range(4)})
    with pytest.raises(InvsyncError, match="holds 4 files; upload at most 3"):
        list(unzip("many.zip", archive))


def test_a_zip_inflating_beyond_the_total_bound_is_refused(monkeypatch):
    monkeypatch.setattr(inbox_module, "ZIP_MAX_TOTAL_BYTES", 1000)
    archive = _zip({"a.xml": os.urandom(600), "b.xml": os.urandom(600)}, zipfile.ZIP_STORED)
    with pytest.raises(InvsyncError, match="inflates to"):
        list(unzip("big.zip", archive))


def test_an_inbox_without_uploads_refuses_them(tmp_path):
    connection = make_inbox(uploads="no", folder=str(tmp_path))
    with pytest.raises(InvsyncError, match="does not accept uploads"):
        inbox_upload(connection=connection, files=[("f.xml", b"<x/>")])


# The watched folder.


def test_the_watched_folder_is_read_by_the_sync_and_files_moved_aside(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.pdf").write_bytes((FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
    (folder / "bad.pdf").write_bytes((FNFE_FAIL / "Avoir_FR_type380_BASIC.pdf").read_bytes())
    (folder / "photo.png").write_bytes(PNG_1PX)
    (folder / ".hidden.pdf").write_bytes(b"not read")
    connection = make_inbox(folder=str(folder), uploads="no")
    listed = items(connection)
    rows = {row.name: row for row in InboxFile.objects.filter(connection=connection)}
    assert set(rows) == {"good.pdf", "bad.pdf", "photo.png"}
    assert all(row.origin == "folder" for row in rows.values())
    assert (folder / "done" / "good.pdf").exists()
    assert (folder / "failed" / "photo.png").exists()
    moved = "done" if rows["bad.pdf"].state == FileState.READ else "failed"
    assert (folder / moved / "bad.pdf").exists()
    assert sorted(p.name for p in folder.iterdir()) == [".hidden.pdf", "done", "failed"]
    assert len(listed) == 3
    # The same file dropped again is recognised by its hash and moved aside under a new name.
    (folder / "good.pdf").write_bytes((FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
    items(connection)
    assert (folder / "done" / "good.1.pdf").exists()
    assert InboxFile.objects.filter(connection=connection).count() == 3


def test_a_read_only_folder_keeps_its_files_and_stores_each_once(tmp_path, monkeypatch):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "good.pdf").write_bytes((FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
    connection = make_inbox(folder=str(folder))

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(inbox_module.os, "replace", read_only)
    assert len(items(connection)) == 1
    assert len(items(connection)) == 1
    assert (folder / "good.pdf").exists()
    assert InboxFile.objects.filter(connection=connection).count() == 1


def test_a_missing_watched_folder_fails_the_run_with_a_configuration_code(tmp_path):
    connection = make_inbox(folder=str(tmp_path / "gone"))
    with pytest.raises(InvsyncError) as raised:
        items(connection)
    assert raised.value.code is ErrorCode.CONFIGURATION_INCOMPLETE
    check = connector_for(connection).check_connection()
    assert not check.ok
    assert check.code == ErrorCode.CONFIGURATION_INCOMPLETE


# The admin's upload page.


def test_the_admin_uploads_many_files_and_a_zip_on_the_inbox_page(client):
    from connectors import roles
    from tests.factories.models import UserFactory

    connection = make_inbox()
    user = UserFactory(roles=[roles.ACCOUNTANT], clients=[connection.client])
    client.force_login(user)
    url = f"/admin/connectors/connection/{connection.pk}/inbox/"
    change = client.get(f"/admin/connectors/connection/{connection.pk}/change/")
    assert url in change.content.decode()
    files = [
        SimpleUploadedFile(
            "Facture_FR_BASICWL.pdf", (FNFE / "Facture_FR_BASICWL.pdf").read_bytes()
        ),
        SimpleUploadedFile("scan.png", PNG_1PX),
        SimpleUploadedFile(
            "batch.zip",
            _zip({"a/Avoir.pdf": (FNFE / "Avoir_FR_type381_BASIC.pdf").read_bytes()}),
        ),
    ]
    response = client.post(url, {"files": files}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Facture_FR_BASICWL.pdf: received." in page
    assert "scan.png: kept but refused — the file is a png image" in page.lower()
    assert "Avoir.pdf: received." in page
    assert sorted(
        InboxFile.objects.filter(connection=connection).values_list("name", flat=True)
    ) == [
        "Avoir.pdf",
        "Facture_FR_BASICWL.pdf",
        "scan.png",
    ]


def test_the_inbox_page_is_not_shown_to_staff_of_another_client(client):
    from connectors import roles
    from tests.factories.models import UserFactory

    connection = make_inbox()
    stranger = UserFactory(roles=[roles.ACCOUNTANT], clients=[ClientFactory()])
    client.force_login(stranger)
    url = f"/admin/connectors/connection/{connection.pk}/inbox/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"files": [SimpleUploadedFile("x.xml", b"<x/>")]}).status_code == 404
    assert not InboxFile.objects.exists()


def test_the_upload_form_refuses_more_files_than_its_bound(client, monkeypatch):
    from connectors import admin_inbox, roles
    from tests.factories.models import UserFactory

    monkeypatch.setattr(admin_inbox, "UPLOAD_MAX_FILES", 2)
    connection = make_inbox()
    client.force_login(UserFactory(roles=[roles.ACCOUNTANT], clients=[connection.client]))
    files = [SimpleUploadedFile(f"f{i}.xml", b"<x/>") for i in range(3)]
    response = client.post(f"/admin/connectors/connection/{connection.pk}/inbox/", {"files": files})
    assert "3 files chosen; upload at most 2" in response.content.decode()
    assert not InboxFile.objects.exists()


# A flow on the inbox, as the scheduled sync runs it.


def test_a_flow_run_reads_the_watched_folder_and_books_each_invoice_with_its_file(tmp_path):
    from connectors import registry
    from syncs.models import RecordStatus, SyncedRecord
    from syncs.services import flow_sync
    from tests.doubles import MemoryTarget
    from tests.factories.models import ConnectionFactory, SyncFlowFactory

    folder = tmp_path / "in"
    folder.mkdir()
    invoice_pdf = (FNFE / "Facture_FR_BASICWL.pdf").read_bytes()
    (folder / "facture.pdf").write_bytes(invoice_pdf)
    (folder / "scan.png").write_bytes(PNG_1PX)
    MemoryTarget.reset()
    with registry.override([EInvoiceInbox, MemoryTarget]):
        inbox = make_inbox(folder=str(folder), uploads="no")
        flow = SyncFlowFactory(
            client=inbox.client,
            invoicing_connection=inbox,
            accounting_connection=ConnectionFactory(client=inbox.client, kind="accounting"),
        )
        run = flow_sync(flow=flow, trigger="schedule")
        assert run is not None and (run.synced_count, run.failed_count) == (1, 1)
        records = {r.status: r for r in SyncedRecord.objects.filter(flow=flow)}
        assert records[RecordStatus.FAILED].error_code == ErrorCode.EINVOICE_UNSUPPORTED.value
        assert "scan.png" in records[RecordStatus.FAILED].error_message
        (entry,) = MemoryTarget.entries.values()
        assert entry["attachment"].content == invoice_pdf
        assert (folder / "done" / "facture.pdf").exists()
        assert (folder / "failed" / "scan.png").exists()
        # The next scheduled run finds nothing new and writes nothing.
        again = flow_sync(flow=flow, trigger="schedule")
        assert again.synced_count == 0 and len(MemoryTarget.entries) == 1
