"""The XML inside a Factur-X / ZUGFeRD 2.x (or XRechnung-in-PDF) PDF.

Extraction is the ``factur-x`` library's (Akretion's, the reference Python implementation used by
Odoo and others; it walks the PDF's embedded files with pypdf). Its XSD check is not asked for
here: the reader checks the XML it gets like any other, so a PDF and a bare XML are treated alike.
"""

from __future__ import annotations

import logging

from connectors.providers.einvoice.document import unsupported

# The library logs the XML it extracts at debug level and each skipped attachment as a warning:
# invoice content has no place in our logs.
logging.getLogger("factur-x").setLevel(logging.ERROR)
# pypdf warns on stderr about every oddity of a damaged PDF ("EOF marker not found"); the reader
# turns a PDF it cannot read into one typed error instead.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def extract_xml(pdf: bytes) -> tuple[str, bytes]:
    """(embedded file name, XML bytes). A PDF without an e-invoice inside is UNSUPPORTED (a
    plain PDF), and so is one pypdf cannot read: nothing shows it is an e-invoice at all."""
    # Imported on first use: factur-x loads pypdf and costs ~30 MB, which every worker would
    # carry from start-up (the inbox is in the registry) even when no e-invoice is ever read.
    from facturx import get_xml_from_pdf

    try:
        filename, xml = get_xml_from_pdf(pdf, check_xsd=False)
    except Exception as error:  # pypdf raises many kinds of errors on damaged PDFs
        raise unsupported(
            f"the PDF cannot be read, it is damaged or truncated ({type(error).__name__}: "
            f"{str(error)[:120]})"
        ) from error
    if not filename or not xml:
        raise unsupported(
            "the PDF holds no embedded Factur-X/ZUGFeRD/XRechnung XML (a plain PDF, or a scan): "
            "it is not an e-invoice"
        )
    return filename, xml
