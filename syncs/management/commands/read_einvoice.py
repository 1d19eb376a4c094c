"""``manage.py read_einvoice FILE --company-id ID [--company-id ID...] [--company-name NAME]
[--format json|table]``

Shows what invsync reads from one e-invoice file (Factur-X/ZUGFeRD PDF, ZUGFeRD 1.0 or CII XML,
UBL 2.1): the canonical invoice as INVOICE.json (docs/posting-preview.md) plus ``taxes`` (the VAT
breakdown, BG-23) and ``payable_amount`` (BT-115). No network, no database.

Exit codes: 0 when the invoice is read; 3 when it is a structured invoice that cannot be accepted
(``{"status": "error", "code": ..., "message": ...}`` on stdout: a rule broken, or our company is
neither party); 2 when the file is no e-invoice we read or cannot be read (message on stderr).

It lives in ``syncs`` because it writes through ``syncs.serialization``: connectors never import
syncs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.errors import ErrorCode
from connectors.providers.einvoice import EInvoice, EInvoiceError, OurCompany, read_einvoice
from connectors.providers.einvoice.detect import MAX_FILE_BYTES
from syncs.serialization import invoice_to_json

EXIT_REFUSED = 3
EXIT_UNREADABLE = 2


def _text(amount) -> str | None:
    return None if amount is None else format(amount, "f")


def einvoice_to_json(result: EInvoice) -> dict:
    """INVOICE.json of the canonical invoice, with the e-invoice's own figures beside it."""
    invoice = result.invoice
    data = invoice_to_json(invoice)
    data.setdefault(
        "taxes",
        [
            {
                "category": row.category,
                "rate": _text(row.rate),
                "base": _text(row.base),
                "amount": _text(row.amount),
                "tax_id": row.tax_id,
                "kind": row.kind.value,
            }
            for row in invoice.taxes
        ],
    )
    data["payable_amount"] = _text(invoice.payable_amount)
    data["prepaid_amount"] = _text(invoice.prepaid_amount)
    data["einvoice"] = {
        "format": result.format,
        "profile": result.document.profile,
        "type_code": result.document.type_code,
        "attachment": result.attachment.filename,
        "notices": list(result.notices),
    }
    return data


def einvoice_to_table(result: EInvoice) -> str:
    invoice, document = result.invoice, result.document
    partner = invoice.partner
    rows = [
        f"{invoice.type.value.replace('_', ' ')} {invoice.number} of {invoice.issue_date}"
        f" ({result.format}, profile {document.profile or '?'}, type code {document.type_code})",
        f"due {invoice.due_date or '-'}   currency {invoice.currency}",
        f"partner: {partner.name} [{partner.source_id}]"
        f" VAT {partner.vat_number or '-'} company number {partner.company_number or '-'}"
        f" {partner.country or ''}"
        if partner
        else "partner: -",
        "",
        f"{'line':<40} {'quantity':>10} {'untaxed':>12} {'VAT':>10} {'tax':>10}",
    ]
    for line in invoice.lines:
        rows.append(
            f"{line.description[:40]:<40} {_text(line.quantity):>10} "
            f"{_text(line.untaxed_amount):>12} {line.tax_id or '-':>10} "
            f"{_text(line.tax_amount):>10}"
        )
    rows += ["", f"{'VAT breakdown':<40} {'base':>12} {'amount':>12}"]
    for row in invoice.taxes:
        rate = "" if row.rate is None else f" {_text(row.rate)} %"
        rows.append(
            f"{(row.category or '?') + rate + ' ' + row.kind.value:<40} "
            f"{_text(row.base):>12} {_text(row.amount):>12}"
        )
    rows += [
        "",
        f"untaxed {_text(invoice.untaxed_amount)}   VAT {_text(invoice.tax_amount)}   "
        f"total {_text(invoice.total)}   due {_text(invoice.payable_amount)}",
    ]
    rows += [f"note: {notice}" for notice in result.notices]
    return "\n".join(rows) + "\n"


class Command(BaseCommand):
    help = (
        "Read one e-invoice (Factur-X/ZUGFeRD PDF, CII or UBL XML) and print the canonical "
        "invoice invsync would sync, seen from our company (--company-id: SIREN, SIRET, VAT "
        "number or legal id). Exits 0 when read, 3 when the invoice cannot be accepted, 2 when "
        "the file is no e-invoice or unreadable."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="The e-invoice: a PDF or an XML file.")
        parser.add_argument(
            "--company-id",
            action="append",
            required=True,
            metavar="ID",
            help="Our company's SIREN, SIRET, VAT number or legal id (repeatable). Where a party "
            "has no identifier at all, an ID equal to its exact name identifies it.",
        )
        parser.add_argument(
            "--company-name",
            metavar="NAME",
            help="Our company's exact name: identifies a party that has no identifier.",
        )
        parser.add_argument(
            "--format",
            choices=("json", "table"),
            default="json",
            help="json (INVOICE.json plus taxes and payable_amount, the default) or table.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            if Path(path).stat().st_size > MAX_FILE_BYTES:
                raise CommandError(
                    f"{path}: larger than the {MAX_FILE_BYTES // (1024 * 1024)} MB an e-invoice "
                    "may be",
                    returncode=EXIT_UNREADABLE,
                )
            content = Path(path).read_bytes()
        except OSError as error:
            raise CommandError(
                f"{path}: cannot be read: {error.strerror or error}", returncode=EXIT_UNREADABLE
            ) from error
        company = OurCompany(
            identifiers=tuple(value for value in options["company_id"] if value.strip()),
            name=options.get("company_name"),
        )
        try:
            result = read_einvoice(content, company=company, filename=Path(path).name)
        except EInvoiceError as error:
            if error.code is ErrorCode.EINVOICE_UNSUPPORTED:
                raise CommandError(
                    f"{path}: {error.code}: {error.message}", returncode=EXIT_UNREADABLE
                ) from error
            refusal = {"status": "error", "code": error.code.value, "message": error.message}
            if error.field:
                refusal["field"] = error.field
            self.stdout.write(json.dumps(refusal, indent=2, ensure_ascii=False))
            self.stdout.flush()
            raise CommandError(
                f"the e-invoice cannot be accepted: {error.code}", returncode=EXIT_REFUSED
            ) from error
        if options["format"] == "table":
            self.stdout.write(einvoice_to_table(result))
        else:
            self.stdout.write(json.dumps(einvoice_to_json(result), indent=2, ensure_ascii=False))
