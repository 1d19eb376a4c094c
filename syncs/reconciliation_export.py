"""A reconciliation report as a file an accountant opens in a spreadsheet: CSV or XLSX.

One row per invoice of the period (number, issue date, type, partner, the invoice's currency, its
untaxed amount, tax and total in the company currency, where it is, and what its record says), a
header row and a totals row; the XLSX adds a sheet of totals per status and per invoice type.

CSV as Excel opens it with a double-click, in the reader's language:

- UTF-8 with a byte-order mark, or Excel reads the accents as Latin-1;
- French: ``;`` between fields and a decimal comma without grouping (``1234,50``). French Excel
  splits a CSV on the system's list separator (``;``) and reads numbers with the system's decimal
  mark: ``1234.50`` would stay text (and ``1.5`` becomes the 1st of May), and a grouped
  ``1 234,50`` stays text too, so SUM would ignore it. Dates ``31/03/2026``, the French short date
  French Excel reads as a date;
- English: ``,`` between fields, a decimal point (``1234.50``) and ISO dates (``2026-03-31``),
  which Excel reads as dates whatever the region (``03/31/2026`` would be the wrong day in
  British Excel).

Text from the tools (numbers, partner names) that starts like a formula (``=``, ``+``, ``-``,
``@``) is written with a leading apostrophe in the CSV and as plain text in the XLSX, so a
spreadsheet never runs it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from django.utils import translation
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from openpyxl import Workbook
from openpyxl.styles import Font

from connectors.canonical import currency_exponent, quantize_money
from syncs.reconciliation import BUCKET_LABELS, INVOICE_TYPE_LABELS, Amounts, Report

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def export_filename(report: Report, extension: str) -> str:
    name = slugify(str(report.flow)) or "flow"
    return f"reconciliation-{name}-{report.start.isoformat()}-{report.end.isoformat()}.{extension}"


def _french() -> bool:
    return (translation.get_language() or "").startswith("fr")


def _header(currency: str) -> list[str]:
    return [
        _("Number"),
        _("Issue date"),
        _("Invoice type"),
        _("Partner"),
        _("Invoice currency"),
        _("Untaxed (%(currency)s)") % {"currency": currency},
        _("Tax (%(currency)s)") % {"currency": currency},
        _("Total (%(currency)s)") % {"currency": currency},
        _("Status"),
        _("Detail"),
    ]


def _invoices_text(count: int) -> str:
    return ngettext("%(count)d invoice", "%(count)d invoices", count) % {"count": count}


def _text(value: str) -> str:
    """Text for a CSV cell, never read as a formula."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def report_csv(report: Report) -> bytes:
    """The report as CSV in the active language's conventions (see the module's docstring)."""
    french = _french()
    currency = report.flow.company_currency

    def number(value: Decimal) -> str:
        text = format(quantize_money(value, currency), "f")
        return text.replace(".", ",") if french else text

    def date(value: dt.date) -> str:
        return value.strftime("%d/%m/%Y") if french else value.isoformat()

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if french else ",", lineterminator="\r\n")
    writer.writerow(_header(currency))
    for line in report.lines:
        writer.writerow(
            [
                _text(line.number),
                date(line.issue_date),
                line.type_label,
                _text(line.partner),
                line.currency,
                number(line.untaxed),
                number(line.tax),
                number(line.total),
                line.status_label,
                _text(line.detail),
            ]
        )
    total = report.grand_total
    writer.writerow(
        [
            _("Total"),
            "",
            "",
            "",
            "",
            number(total.untaxed),
            number(total.tax),
            number(total.untaxed + total.tax),
            "",
            _invoices_text(total.count),
        ]
    )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def report_xlsx(report: Report) -> bytes:
    """The report as an XLSX workbook: the invoices (numbers as numbers, dates as dates, a header
    row and a totals row) and a sheet of totals per status and per invoice type."""
    currency = report.flow.company_currency
    decimals = currency_exponent(currency)
    money_format = "#,##0" + ("." + "0" * decimals if decimals else "")
    date_format = "DD/MM/YYYY" if _french() else "YYYY-MM-DD"
    bold = Font(bold=True)

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _("Invoices")[:31]

    def put(row: int, column: int, value, *, text: bool = False, number_format: str = ""):
        cell = sheet.cell(row=row, column=column, value=value)
        if text:
            cell.data_type = "s"  # openpyxl would take "=…" for a formula
        if number_format:
            cell.number_format = number_format
        return cell

    for column, title in enumerate(_header(currency), start=1):
        put(1, column, title, text=True).font = bold
    row = 1
    for line in report.lines:
        row += 1
        put(row, 1, line.number, text=True)
        put(row, 2, line.issue_date, number_format=date_format)
        put(row, 3, line.type_label, text=True)
        put(row, 4, line.partner, text=True)
        put(row, 5, line.currency, text=True)
        put(row, 6, quantize_money(line.untaxed, currency), number_format=money_format)
        put(row, 7, quantize_money(line.tax, currency), number_format=money_format)
        put(row, 8, quantize_money(line.total, currency), number_format=money_format)
        put(row, 9, line.status_label, text=True)
        put(row, 10, line.detail, text=True)
    row += 1
    total = report.grand_total
    put(row, 1, _("Total"), text=True).font = bold
    for column, value in ((6, total.untaxed), (7, total.tax), (8, total.untaxed + total.tax)):
        put(row, column, quantize_money(value, currency), number_format=money_format).font = bold
    put(row, 10, _invoices_text(total.count), text=True).font = bold
    sheet.freeze_panes = "A2"
    for column, width in zip("ABCDEFGHIJ", (18, 12, 20, 32, 10, 16, 16, 16, 18, 40), strict=True):
        sheet.column_dimensions[column].width = width

    totals = workbook.create_sheet(_("Totals")[:31])
    sheet = totals
    put(1, 1, _("Reconciliation of %(flow)s") % {"flow": report.flow}, text=True).font = bold
    put(2, 1, _("From"), text=True)
    put(2, 2, report.start, number_format=date_format)
    put(3, 1, _("to"), text=True)
    put(3, 2, report.end, number_format=date_format)
    row = 5
    amount_titles = [
        _("Invoices"),
        _("Untaxed (%(currency)s)") % {"currency": currency},
        _("Tax (%(currency)s)") % {"currency": currency},
        _("Total (%(currency)s)") % {"currency": currency},
    ]

    def amounts_row(row: int, label: str, amounts: Amounts, *, strong: bool = False) -> None:
        cells = [put(row, 1, label, text=True), put(row, 2, amounts.count)]
        for column, value in (
            (3, amounts.untaxed),
            (4, amounts.tax),
            (5, amounts.untaxed + amounts.tax),
        ):
            cells.append(
                put(row, column, quantize_money(value, currency), number_format=money_format)
            )
        if strong:
            for cell in cells:
                cell.font = bold

    for column, title in enumerate([_("Status"), *amount_titles], start=1):
        put(row, column, title, text=True).font = bold
    for bucket, amounts in report.by_bucket.items():
        row += 1
        amounts_row(row, str(BUCKET_LABELS[bucket]), amounts)
    row += 1
    amounts_row(row, _("Total"), report.grand_total, strong=True)
    row += 2
    for column, title in enumerate([_("Invoice type"), *amount_titles], start=1):
        put(row, column, title, text=True).font = bold
    for kind, by_bucket in report.by_type.items():
        row += 1
        amounts_row(row, str(INVOICE_TYPE_LABELS.get(kind, kind)), by_bucket["source"])
    row += 1
    amounts_row(row, _("Total"), report.grand_total, strong=True)
    for column, width in zip("ABCDE", (28, 12, 16, 16, 16), strict=True):
        sheet.column_dimensions[column].width = width

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
