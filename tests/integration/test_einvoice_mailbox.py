"""The e-invoice inbox's mailbox, against a real IMAP server (a private dovecot started by
tests/imapserver.py): attachments of unseen messages stored once by hash, messages marked seen or
moved only after, messages without an e-invoice counted, bad attachments failed records with
their code, a refused login or an unreachable server failing the check and the run with a code
and never the password.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import socket
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from connectors import registry
from connectors.canonical import Direction, InvoiceType
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import InboxFile
from connectors.outbound import UNRESTRICTED
from connectors.providers.einvoice import mailbox as mailbox_module
from connectors.providers.einvoice.inbox import EInvoiceInbox, FileState
from connectors.selectors import connector_for
from connectors.services import connection_check, connection_create, connection_update
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.connectors import test_einvoice_inbox_contract as inbox_contract
from tests.doubles import MemoryTarget
from tests.factories.einvoices import FATTURAPA, MISSING_REASON, PNG_1PX, SAMPLES
from tests.factories.models import ClientFactory, ConnectionFactory, SyncFlowFactory
from tests.integration.test_admin import _form_data

pytest_plugins = ["tests.imapserver"]

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON),
]

FNFE = SAMPLES / "ZUGFeRDv2/correct/FNFE-factur-x-examples"
UBL = SAMPLES / "XML-Rechnung/UBL/EN16931_Einfach_DueDate.ubl.xml"
# Ma jolie boutique, the FNFE samples' buyer; Kunden AG Mitte, the UBL sample's (no identifier).
BUYER_VAT = "FR19787878784"
UBL_BUYER = "Kunden AG Mitte"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def make_inbox(mailbox, *, password=None, auth_kind="credentials", **settings):
    return connection_create(
        client=ClientFactory(),
        name="Mail inbox",
        kind="invoicing",
        provider="einvoice_inbox",
        auth_kind=auth_kind,
        settings={
            "vat_number": BUYER_VAT,
            "company_name": UBL_BUYER,
            "uploads": "no",
            "imap_host": "127.0.0.1",
            "imap_port": str(mailbox.server.port),
            "imap_tls": "none",
            **settings,
        },
        credentials=(
            {"username": mailbox.user, "password": password or mailbox.password}
            if auth_kind == "credentials"
            else {}
        ),
    )


def mail(*attachments: tuple[str, str, bytes], subject: str = "Invoice") -> bytes:
    message = EmailMessage()
    message["From"] = "billing@supplier.example"
    message["To"] = "invoices@boutique.example"
    message["Subject"] = subject
    message.set_content("Please find our invoice attached.")
    for name, content_type, content in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def pdf_attachment(name="Facture_FR_BASICWL.pdf"):
    return (name, "application/pdf", (FNFE / name).read_bytes())


def ubl_attachment():
    return (UBL.name, "application/xml", UBL.read_bytes())


def items(connection):
    return list(connector_for(connection).iter_invoices(since=None, directions=list(Direction)))


def collect(connection):
    return connector_for(connection).collect_mailbox()


# Reading the mailbox.


def test_a_factur_x_pdf_and_a_ubl_xml_mailed_become_two_invoices_and_the_messages_are_seen(
    mailbox,
):
    mailbox.deliver(mail(pdf_attachment()))
    mailbox.deliver(mail(ubl_attachment()))
    connection = make_inbox(mailbox)
    assert mailbox.flags() == [set(), set()]

    invoices = items(connection)

    assert sorted(invoice.type for invoice in invoices) == [InvoiceType.SUPPLIER_INVOICE] * 2
    rows = InboxFile.objects.filter(connection=connection)
    assert {(row.name, row.origin, row.state) for row in rows} == {
        ("Facture_FR_BASICWL.pdf", "mailbox", FileState.READ),
        (UBL.name, "mailbox", FileState.READ),
    }
    source = connector_for(connection)
    attachments = {source.fetch_attachment(invoice).content_type for invoice in invoices}
    assert attachments == {"application/pdf", "application/xml"}
    assert mailbox.flags() == [{"\\Seen"}, {"\\Seen"}]
    # Nothing unseen is left: the next read stores nothing.
    assert collect(connection).messages == 0


def test_messages_are_moved_to_the_named_folder_once_read(mailbox):
    mailbox.deliver(mail(pdf_attachment()))
    connection = make_inbox(mailbox, imap_move_to="Factures traitées")

    report = collect(connection)

    assert report.messages == 1 and [r.file.state for r in report.receipts] == [FileState.READ]
    assert mailbox.flags() == []
    # The folder's name in IMAP's modified UTF-7, as the server lists it.
    assert mailbox.flags('"Factures trait&AOk-es"') == [{"\\Seen"}]


def test_the_same_attachment_in_two_messages_is_one_record(mailbox):
    mailbox.deliver(mail(pdf_attachment(), subject="Invoice"))
    mailbox.deliver(mail(pdf_attachment(), subject="Fwd: Invoice"))
    connection = make_inbox(mailbox)

    report = collect(connection)

    assert report.messages == 2 and [r.created for r in report.receipts] == [True, False]
    assert InboxFile.objects.filter(connection=connection).count() == 1
    assert len(items(connection)) == 1
    assert mailbox.flags() == [{"\\Seen"}, {"\\Seen"}]


def test_a_message_without_an_einvoice_is_counted_and_marked_not_failed(mailbox):
    mailbox.deliver(mail(subject="Hello"))
    mailbox.deliver(mail(("logo.png", "image/png", PNG_1PX), subject="Our new logo"))
    connection = make_inbox(mailbox)

    report = collect(connection)

    assert (report.messages, report.without_einvoice, report.receipts) == (2, 2, [])
    assert not InboxFile.objects.filter(connection=connection).exists()
    assert items(connection) == []
    assert mailbox.flags() == [{"\\Seen"}, {"\\Seen"}]


@pytest.mark.parametrize(
    ("name", "content_type", "content", "words"),
    [
        ("fattura.xml", "application/xml", FATTURAPA, "FatturaPA"),
        ("invoice.pdf", "application/pdf", b"%PDF-1.4 garbage \x00\xff" * 10, ""),
        ("broken.zip", "application/zip", b"PK\x03\x04 not a zip", "not a zip archive"),
    ],
)
def test_a_malformed_attachment_is_a_failed_record_with_its_code(
    mailbox, name, content_type, content, words
):
    mailbox.deliver(mail((name, content_type, content), pdf_attachment()))
    connection = make_inbox(mailbox)

    listed = items(connection)

    failed = InboxFile.objects.get(connection=connection, name=name)
    assert failed.state == FileState.FAILED and failed.origin == "mailbox"
    assert failed.code == ErrorCode.EINVOICE_UNSUPPORTED.value and words in failed.message
    (failure,) = [item for item in listed if not hasattr(item, "type")]
    assert failure.error.code is ErrorCode.EINVOICE_UNSUPPORTED and name in failure.error.message
    # The good attachment of the same message is read; the message is marked once.
    assert sum(1 for item in listed if hasattr(item, "type")) == 1
    assert mailbox.flags() == [{"\\Seen"}]


def test_a_zip_attachment_gives_each_of_its_files(mailbox):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/Facture_FR_BASICWL.pdf", (FNFE / "Facture_FR_BASICWL.pdf").read_bytes())
        archive.writestr("b/" + UBL.name, UBL.read_bytes())
    mailbox.deliver(mail(("invoices.zip", "application/zip", buffer.getvalue())))
    connection = make_inbox(mailbox)

    assert len(items(connection)) == 2
    names = set(InboxFile.objects.filter(connection=connection).values_list("name", flat=True))
    assert names == {"Facture_FR_BASICWL.pdf", UBL.name}


def test_a_run_interrupted_after_storing_and_before_marking_stores_nothing_twice(
    mailbox, monkeypatch
):
    mailbox.deliver(mail(pdf_attachment()))
    connection = make_inbox(mailbox)

    def crash(self, uid):
        raise RuntimeError("the worker died here")

    with monkeypatch.context() as patch:
        patch.setattr(mailbox_module.MailboxClient, "done", crash)
        with pytest.raises(RuntimeError):
            collect(connection)
    # Stored, but the message is still unseen: nothing is lost.
    assert InboxFile.objects.filter(connection=connection).count() == 1
    assert mailbox.flags() == [set()]

    report = collect(connection)

    assert report.messages == 1 and [r.created for r in report.receipts] == [False]
    assert InboxFile.objects.filter(connection=connection).count() == 1
    assert len(items(connection)) == 1
    assert mailbox.flags() == [{"\\Seen"}]


def test_a_too_large_message_is_a_failed_record_left_in_the_mailbox(mailbox, monkeypatch):
    monkeypatch.setattr(mailbox_module, "MESSAGE_MAX_BYTES", 1000)
    monkeypatch.setattr("connectors.providers.einvoice.inbox.MESSAGE_MAX_BYTES", 1000)
    mailbox.deliver(mail(pdf_attachment()))
    connection = make_inbox(mailbox)

    report = collect(connection)

    assert report.too_large == 1
    (row,) = InboxFile.objects.filter(connection=connection)
    assert row.state == FileState.FAILED and row.code == ErrorCode.EINVOICE_UNSUPPORTED.value
    assert "left in the mailbox" in row.message and row.storage_name == ""
    # Read again (say, after a crash before marking): still one record.
    assert collect(connection).messages == 0
    assert InboxFile.objects.filter(connection=connection).count() == 1


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_the_mailbox_is_read_over_tls_with_a_certificate_the_system_trusts(
    mailbox, monkeypatch, tls
):
    server = mailbox.server
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))  # the system's trust, for the test
    mailbox.deliver(mail(pdf_attachment()))
    port = server.tls_port if tls == "implicit" else server.port
    connection = make_inbox(mailbox, imap_host=server.tls_host, imap_port=str(port), imap_tls=tls)

    assert connector_for(connection).check_connection().ok
    report = collect(connection)

    assert report.messages == 1 and [r.file.state for r in report.receipts] == [FileState.READ]
    assert mailbox.flags() == [{"\\Seen"}]


def test_a_certificate_the_system_does_not_trust_fails_with_unavailable(mailbox):
    server = mailbox.server
    connection = make_inbox(
        mailbox, imap_host=server.tls_host, imap_port=str(server.tls_port), imap_tls="implicit"
    )
    check = connector_for(connection).check_connection()
    assert not check.ok and check.code is ErrorCode.UNAVAILABLE
    assert "certificate is not trusted" in check.message


# The connection check and the run's failures.


def test_the_connection_check_counts_the_unseen_messages(mailbox):
    mailbox.deliver(mail(pdf_attachment()))
    check = connector_for(make_inbox(mailbox)).check_connection()
    assert check.ok and "1 unseen message" in check.message
    assert mailbox.flags() == [set()]  # a check reads nothing


def test_a_wrong_password_fails_the_check_and_the_run_and_is_never_shown(mailbox, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Secret-Pa55word"
    mailbox.deliver(mail(pdf_attachment()))
    connection = make_inbox(mailbox, password=wrong)

    check = connection_check(connection=connection)

    assert not check.ok and check.code is ErrorCode.AUTHENTICATION_FAILED
    assert "refused the login and password" in check.message
    connection.refresh_from_db()
    assert connection.last_check_ok is False

    MemoryTarget.reset()
    with registry.override([EInvoiceInbox, MemoryTarget]):
        flow = SyncFlowFactory(
            client=connection.client,
            invoicing_connection=connection,
            accounting_connection=ConnectionFactory(client=connection.client, kind="accounting"),
        )
        run = flow_sync(flow=flow, trigger="schedule")
    assert run.error_code == ErrorCode.AUTHENTICATION_FAILED.value
    shown = [check.message, connection.last_check_message, run.error_message, caplog.text]
    assert not any(wrong in text or mailbox.user in text for text in shown), shown
    assert mailbox.flags() == [set()]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"imap_port": "closed"}, "connection refused"),
        ({"imap_tls": "implicit"}, "TLS handshake failed"),
    ],
    ids=["closed-port", "tls-to-a-plain-server"],
)
def test_an_unreachable_server_fails_the_check_with_unavailable(mailbox, options, words):
    if options.get("imap_port") == "closed":
        options = {"imap_port": str(mailbox.server.free_port())}
    connection = make_inbox(mailbox, **options)
    check = connector_for(connection).check_connection()
    assert not check.ok and check.code is ErrorCode.UNAVAILABLE and words in check.message
    with pytest.raises(InvsyncError) as raised:
        items(connection)
    assert raised.value.code is ErrorCode.UNAVAILABLE
    assert mailbox.password not in check.message + raised.value.message


def non_loopback_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def test_no_tls_never_sends_the_password_to_another_machine():
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with socket.socket() as listener:
        listener.bind((address, 0))
        listener.listen()
        listener.settimeout(2)
        settings = mailbox_module.MailboxSettings(
            host=address, port=listener.getsockname()[1], tls="none", folder="INBOX", move_to=None
        )
        client = mailbox_module.MailboxClient(
            settings, {"username": "me", "password": "Secret-9"}, policy=UNRESTRICTED
        )
        with pytest.raises(InvsyncError) as raised:
            client.open()
        assert raised.value.code is ErrorCode.CONFIGURATION_INCOMPLETE
        assert "not on this machine" in raised.value.message
        peer, _ = listener.accept()  # connected, then closed before a byte was sent
        with peer:
            peer.settimeout(2)
            assert peer.recv(100) == b""


def test_a_folder_that_does_not_exist_names_the_setting(mailbox):
    check = connector_for(make_inbox(mailbox, imap_folder="Nowhere")).check_connection()
    assert not check.ok and check.code is ErrorCode.CONFIGURATION_INCOMPLETE
    assert "imap_folder" in check.message and "'Nowhere'" in check.message


def test_the_outbound_policy_applies_to_the_mailbox(mailbox, settings):
    settings.INVSYNC_OUTBOUND_ALLOWED_NETWORKS = []
    check = connector_for(make_inbox(mailbox)).check_connection()
    assert not check.ok and check.code is ErrorCode.CONFIGURATION_INCOMPLETE
    assert "loopback address" in check.message and "outbound policy" in check.message


def test_a_mailbox_needs_the_login_and_password_authentication(mailbox):
    connection = make_inbox(mailbox, auth_kind="none")
    check = connector_for(connection).check_connection()
    assert not check.ok and check.code is ErrorCode.CONFIGURATION_INCOMPLETE
    assert "Login and password" in check.message
    with pytest.raises(InvsyncError) as raised:
        items(connection)
    assert raised.value.code is ErrorCode.CONFIGURATION_INCOMPLETE


# The full path: a scheduled run.


def test_a_scheduled_run_books_the_mailed_invoices_with_their_files(mailbox):
    pdf = pdf_attachment()
    mailbox.deliver(mail(pdf, ("scan.pdf", "application/pdf", b"%PDF-1.4 a scan")))
    # The FNFE samples' other invoice: a credit note (the flow's VAT mappings are French).
    refund = pdf_attachment("Avoir_FR_type381_BASIC.pdf")
    mailbox.deliver(mail(refund))
    MemoryTarget.reset()
    with registry.override([EInvoiceInbox, MemoryTarget]):
        inbox = make_inbox(mailbox)
        flow = SyncFlowFactory(
            client=inbox.client,
            invoicing_connection=inbox,
            accounting_connection=ConnectionFactory(client=inbox.client, kind="accounting"),
        )
        run = flow_sync(flow=flow, trigger="schedule")
        assert (run.synced_count, run.failed_count) == (2, 1), [
            (r.error_code, r.error_message) for r in SyncedRecord.objects.filter(flow=flow)
        ]
        failed = SyncedRecord.objects.get(flow=flow, status=RecordStatus.FAILED)
        assert failed.error_code == ErrorCode.EINVOICE_UNSUPPORTED.value
        contents = {entry["attachment"].content for entry in MemoryTarget.entries.values()}
        assert contents == {pdf[2], refund[2]}
        assert mailbox.flags() == [{"\\Seen"}, {"\\Seen"}]
        again = flow_sync(flow=flow, trigger="schedule")
        assert again.synced_count == 0 and len(MemoryTarget.entries) == 2


# The admin.


def test_the_inbox_form_takes_the_mailbox_settings_and_its_login_and_password(
    admin_client, mailbox
):
    connection = connection_create(
        client=ClientFactory(),
        name="Inbox",
        kind="invoicing",
        provider="einvoice_inbox",
        auth_kind="none",
        settings={"vat_number": BUYER_VAT},
    )
    change = reverse("admin:connectors_connection_change", args=[connection.pk])
    response = admin_client.get(change)
    page = response.content.decode()
    for name in ("imap_host", "imap_port", "imap_tls", "imap_folder", "imap_move_to"):
        assert name in page
    data = _form_data(response)
    mailbox_settings = {
        "vat_number": BUYER_VAT,
        "imap_host": "127.0.0.1",
        "imap_port": str(mailbox.server.port),
        "imap_tls": "none",
        "imap_move_to": "Done",
    }

    # Without TLS, only on this machine.
    refused = {**data, "settings": json.dumps({**mailbox_settings, "imap_host": "mail.example"})}
    response = admin_client.post(change, refused)
    assert response.status_code == 200
    assert "only accepted on this machine" in " ".join(
        response.context["adminform"].form.errors["settings"]
    )

    data.update(
        auth_kind="credentials",
        settings=json.dumps(mailbox_settings),
        credential_username=mailbox.user,
        credential_password=mailbox.password,
    )
    assert admin_client.post(change, data).status_code == 302
    connection.refresh_from_db()
    assert connection.credentials == mailbox.credentials
    check = connection_check(connection=connection)
    assert check.ok and "0 unseen message" in check.message, check.message
    inbox_page = admin_client.get(
        reverse("admin:connectors_connection_inbox", args=[connection.pk])
    ).content.decode()
    assert "The mailbox <code>127.0.0.1</code>" in inbox_page and "<code>Done</code>" in inbox_page
    assert mailbox.password not in admin_client.get(change).content.decode()


def test_changing_the_mailbox_server_asks_for_the_password_again(mailbox):
    connection = make_inbox(mailbox)
    with pytest.raises(ValidationError, match="imap_host"):
        connection_update(
            connection=connection,
            data={"settings": {**connection.settings, "imap_host": "localhost"}},
        )
    # What does not address the credentials keeps them.
    connection.refresh_from_db()
    connection_update(
        connection=connection, data={"settings": {**connection.settings, "imap_folder": "Bills"}}
    )
    connection.refresh_from_db()
    assert connection.credentials == mailbox.credentials


# Reading a message (no server needed).


def test_attachments_of_a_forwarded_message_and_encoded_names_are_found():
    inner = EmailMessage()
    inner["Subject"] = "Facture"
    inner.set_content("Voir la pièce jointe.")
    inner.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="Facture n°12 été.pdf"
    )
    outer = EmailMessage()
    outer["Subject"] = "Fwd: Facture"
    outer.set_content("Forwarded.")
    outer.add_attachment(inner)
    outer.add_attachment(PNG_1PX, maintype="image", subtype="png", filename="logo.png")
    outer.add_attachment(
        b"<Invoice/>", maintype="application", subtype="octet-stream", filename="bill.xml"
    )

    found, others = mailbox_module.einvoice_attachments(outer.as_bytes())

    assert [(a.name, a.content) for a in found] == [
        ("Facture n°12 été.pdf", b"%PDF-1.4"),
        ("bill.xml", b"<Invoice/>"),
    ]
    assert others == 1  # the logo: not an e-invoice, not kept


# The source contract, on an inbox whose files all came by mail.


class TestEInvoiceMailboxContract(inbox_contract.TestEInvoiceInboxContract):
    @pytest.fixture
    def inbox(self, settings, tmp_path, mailbox):
        settings.MEDIA_ROOT = str(tmp_path / "media")
        # The FNFE samples' two invoices (the other files are renditions of them).
        for name in ("Facture_FR_BASICWL.pdf", "Avoir_FR_type381_BASIC.pdf"):
            mailbox.deliver(mail(pdf_attachment(name)))
        return make_inbox(mailbox, company_name="")

    @pytest.fixture
    def refused_source(self, mailbox):
        def build(secret):
            connection = make_inbox(mailbox, password=secret)
            connection.credentials = {"username": secret, "password": secret}
            connection.save()
            return connector_for(connection)

        return build

    def test_every_file_came_by_mail(self, source, invoices):
        assert {row.origin for row in InboxFile.objects.all()} == {"mailbox"}
        assert len(invoices) >= 2
