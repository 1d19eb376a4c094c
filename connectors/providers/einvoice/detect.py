"""Which e-invoice a file holds: sniffing by content, never by file name.

A PDF goes to Factur-X extraction; XML goes by its root element. Anything else (an image, a
plain PDF, another country's standard such as FatturaPA) is ``EINVOICE_UNSUPPORTED`` with a
message saying what it looked like.
"""

from __future__ import annotations

import re
from enum import StrEnum

from lxml import etree

from connectors.providers.einvoice.cii import CII_NS, ZUGFERD1_NS
from connectors.providers.einvoice.document import unsupported
from connectors.providers.einvoice.ubl import CREDIT_NOTE_NS, INVOICE_NS

MAX_FILE_BYTES = 50 * 1024 * 1024


class Kind(StrEnum):
    PDF = "pdf"
    XML = "xml"


_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
)

# Roots we read, by their qualified name.
INVOICE_ROOTS = {
    f"{{{CII_NS}}}CrossIndustryInvoice": "cii",
    f"{{{ZUGFERD1_NS}}}CrossIndustryDocument": "zugferd1",
    f"{{{INVOICE_NS}}}Invoice": "ubl",
    f"{{{CREDIT_NOTE_NS}}}CreditNote": "ubl",
}
# Structured invoices we know of but do not read, by root local name.
_OTHER_STANDARDS = {
    "FatturaElettronica": "a FatturaPA invoice (the Italian standard)",
    "SCRDMCCBDACIOMessageStructure": "an Order-X order, not an invoice",
    "Facturae": "a Facturae invoice (the Spanish standard)",
    "Comprobante": "a CFDI invoice (the Mexican standard)",
}
_ROOT_HINT = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?(CrossIndustryInvoice|CrossIndustryDocument|Invoice|CreditNote)[\s>/]"
)


def sniff(content: bytes) -> Kind:
    """PDF or XML; raise ``EINVOICE_UNSUPPORTED`` for anything else."""
    if not content:
        raise unsupported("the file is empty")
    if len(content) > MAX_FILE_BYTES:
        raise unsupported(
            f"the file is {len(content) // (1024 * 1024)} MB, more than the "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB invsync reads"
        )
    head = content[:1024]
    if b"%PDF-" in head:
        return Kind.PDF
    for magic, what in _IMAGES:
        if content.startswith(magic):
            raise unsupported(f"the file is {what}, not an e-invoice")
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") or stripped[:4] in (b"\xff\xfe<\x00", b"\xfe\xff\x00<"):
        return Kind.XML
    raise unsupported("the file is neither a PDF nor XML")


def check_root(root: etree._Element) -> str:
    """The syntax of a parsed XML root (``cii``, ``zugferd1``, ``ubl``), or UNSUPPORTED."""
    syntax = INVOICE_ROOTS.get(root.tag)
    if syntax:
        return syntax
    local = etree.QName(root).localname if isinstance(root.tag, str) else "?"
    if local in _OTHER_STANDARDS:
        raise unsupported(f"the file is {_OTHER_STANDARDS[local]}")
    namespace = etree.QName(root).namespace if isinstance(root.tag, str) else None
    where = f" in namespace {namespace}" if namespace else ""
    raise unsupported(f"the XML's root element is {local}{where}, not an invoice invsync reads")


def looks_like_einvoice(content: bytes) -> bool:
    """Whether XML that does not parse still shows an invoice's root element: a damaged or
    truncated e-invoice (INVALID) rather than some other text (UNSUPPORTED)."""
    return bool(_ROOT_HINT.search(content))
