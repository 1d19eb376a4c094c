"""Safe XML parsing and the small typed readers both syntaxes share.

Files come from outside (mailboxes, uploads): the parser loads no DTD, expands no entity,
touches no network and keeps libxml2's limits on deep or huge trees. A document type declaration
is refused outright: no e-invoice standard uses one.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from lxml import etree

from connectors.providers.einvoice.document import invalid

MAX_XML_BYTES = 20 * 1024 * 1024  # XRechnung with attachments in the XML runs to a few MB

_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_xml(content: bytes) -> etree._Element:
    """Parse ``content``; raise :func:`invalid` (not well-formed) with lxml's line number."""
    if len(content) > MAX_XML_BYTES:
        raise invalid(
            f"the XML is {len(content) // (1024 * 1024)} MB, more than the "
            f"{MAX_XML_BYTES // (1024 * 1024)} MB invsync reads"
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError as error:
        raise invalid(f"the XML is not well-formed ({_syntax_message(error)})") from error
    if root is None:
        raise invalid("the XML has no root element")
    if root.getroottree().docinfo.internalDTD is not None:
        raise invalid("the XML declares a document type (DTD), which no e-invoice standard uses")
    return root


def _syntax_message(error: etree.XMLSyntaxError) -> str:
    message = (error.msg or str(error)).strip()
    line = error.lineno
    return f"{message[:160]}, line {line}" if line else message[:160]


def text(node: etree._Element | None) -> str | None:
    """The element's stripped text, or None when absent or empty."""
    if node is None or node.text is None:
        return None
    value = " ".join(node.text.split())
    return value or None


def decimal_of(node: etree._Element | None, field: str) -> Decimal | None:
    value = text(node)
    if value is None:
        return None
    if not _DECIMAL_RE.fullmatch(value):
        raise invalid(f"{field} must be a decimal number, got {value[:40]!r}", field=field)
    try:
        return Decimal(value)
    except InvalidOperation as error:  # pragma: no cover - the pattern rules these out
        raise invalid(
            f"{field} must be a decimal number, got {value[:40]!r}", field=field
        ) from error


def required(value, field: str, what: str):
    if value is None:
        raise invalid(f"{field} ({what}) is missing", field=field)
    return value


def date_of(value: str | None, field: str, *, fmt: str | None = None) -> dt.date | None:
    """A date as CII (format 102: YYYYMMDD) or UBL (YYYY-MM-DD) writes it."""
    if value is None:
        return None
    value = value.strip()
    try:
        if fmt == "102" or (fmt is None and re.fullmatch(r"\d{8}", value)):
            return dt.datetime.strptime(value, "%Y%m%d").date()
        return dt.date.fromisoformat(value[:10])
    except ValueError as error:
        raise invalid(f"{field} is not a valid date: {value[:40]!r}", field=field) from error
