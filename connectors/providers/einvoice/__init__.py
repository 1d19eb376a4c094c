"""E-invoices (Factur-X/ZUGFeRD, UN/CEFACT CII, UBL 2.1) read into the canonical invoice.

:func:`read_einvoice` is the whole interface: a file's bytes and our company's identifiers in, an
:class:`EInvoice` (canonical invoice, attachment, notices) or an :class:`EInvoiceError` out.
"""

from connectors.providers.einvoice.document import EInvoiceError
from connectors.providers.einvoice.mapping import OurCompany
from connectors.providers.einvoice.reader import EInvoice, read_einvoice

__all__ = ["EInvoice", "EInvoiceError", "OurCompany", "read_einvoice"]
