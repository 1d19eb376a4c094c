"""Tryton as an invoicing source: ``account.invoice`` records become canonical invoices.

Mapping choices:

- Listing: customer (``out``) and supplier (``in``) invoices in the states validated, posted, paid
  and cancelled (drafts are never listed; ``get_invoice`` maps one to DRAFT). Validated invoices are
  DRAFT for invsync: they have no move and a customer invoice has no number until Tryton posts it.
  Posted is FINAL, paid PAID, cancelled CANCELLED.
- Order and paging: by ``write_date`` then id, with keyset paging (``(write_date, id) > last``)
  so that records changed while a run pages through are neither skipped nor repeated. Records never
  written (``write_date`` empty: in practice none, every state change is a write) come first,
  ordered by ``create_date``.
- Credit notes: Tryton 8 has no credit-note type or flag; a credit note is an invoice whose total
  is negative (or zero with a negative untaxed amount), which is also how its numbering sequence
  is chosen. Credit notes become ``*_refund`` with every amount and quantity sign flipped, so that
  canonical refunds carry positive amounts.
- Line taxes: Tryton stores taxes per invoice and tax, not per line. Each line's tax is computed
  here as Tryton computes it: the line's taxes (the parents an invoice line takes, e.g. "Taux
  Normal") are expanded to the children valid on the invoice's tax date, percentage rates are
  applied to the line's amount and fixed amounts to its quantity, then rounded with the invoice
  currency's rounding (half even, as Tryton does). The header's untaxed, tax and total amounts
  are kept as Tryton states them. ``tax_id`` is the id of the line's tax (``"1+5"`` for several),
  ``tax_rate`` the effective rate.
- VAT breakdown: the invoice's tax lines (``account.invoice.tax``, read with the invoice through
  dotted fields: no extra call) are the VAT as Tryton states it, rounded per invoice and tax. They
  become ``Invoice.taxes``, one row per tax the lines take (children grouped under their top
  parent, whose id is the lines' ``tax_id``), which the engine books as stated.
- Reverse charge: Tryton models it as a tax whose children have opposite rates (account_fr's
  intra-EU acquisitions: +20 % on 44566, -20 % on 4452), so the invoice charges no VAT. Such a tax
  is flagged ``INTRA_EU`` (``REVERSE_CHARGE`` when its name does not say intra-community); its
  lines get the self-assessed rate (20, not 0) with a zero tax amount, and its breakdown row the
  self-assessed amount (the positive child's). ``list_tax_rates`` reports the same rate and kind.
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    InvoicingSource,
    SettingField,
    SourceRecordError,
    http_url,
    whole_number,
)
from connectors.canonical import (
    Attachment,
    Direction,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Partner,
    SourceJournal,
    SourceTaxRate,
    TaxBreakdown,
    TaxKind,
)
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.http import cut
from connectors.messages import N_
from connectors.providers.tryton.client import (
    TRANSPORT_SETTINGS_FIELDS,
    TrytonClient,
    TrytonConnection,
)
from connectors.providers.tryton.transport import TrytonError

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
LISTED_STATES = ("validated", "posted", "paid", "cancelled")
STATUSES = {
    "draft": InvoiceStatus.DRAFT,
    "validated": InvoiceStatus.DRAFT,
    "posted": InvoiceStatus.FINAL,
    "paid": InvoiceStatus.PAID,
    "cancelled": InvoiceStatus.CANCELLED,
}
TYPES = {
    ("out", False): InvoiceType.CUSTOMER_INVOICE,
    ("out", True): InvoiceType.CUSTOMER_REFUND,
    ("in", False): InvoiceType.SUPPLIER_INVOICE,
    ("in", True): InvoiceType.SUPPLIER_REFUND,
}
DIRECTION_TYPES = {Direction.SALES: "out", Direction.PURCHASES: "in"}
GROUP_DIRECTIONS = {
    "sale": (Direction.SALES,),
    "purchase": (Direction.PURCHASES,),
    "both": (Direction.SALES, Direction.PURCHASES),
}
INVOICE_FIELDS = [
    "number", "reference", "type", "state", "invoice_date", "accounting_date",
    "payment_term_date", "company", "currency", "currency.code", "currency.rounding",
    "journal.code", "party", "invoice_address.country.code", "invoice_address.full_address",
    "untaxed_amount", "tax_amount", "total_amount", "lines_to_pay.maturity_date",
    "taxes.tax", "taxes.base", "taxes.amount",
    "write_date", "create_date",
]  # fmt: skip
LINE_FIELDS = [
    "invoice", "type", "description", "quantity", "unit_price", "amount", "taxes",
    "account.code", "product.code", "sequence",
]  # fmt: skip
SETTINGS_FIELDS = (
    SettingField(
        "url",
        N_("Server URL"),
        N_("The Tryton server's address, e.g. http://127.0.0.1:8000/"),
        check=http_url,
        addresses_credentials=True,
    ),
    SettingField(
        "database", N_("Database"), N_("The Tryton database name."), addresses_credentials=True
    ),
    SettingField(
        "company",
        N_("Company id"),
        N_(
            "Only read this company's invoices (its id in Tryton); empty: every company the "
            "user sees."
        ),
        required=False,
        check=whole_number,
    ),
    *TRANSPORT_SETTINGS_FIELDS,
)


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "::1", "0.0.0.0"}  # noqa: S104


def tryton_account_identity(settings: Mapping[str, str]) -> str:
    """A Tryton account is one database on one server: ``tryton|host:port/path|database``.

    The address is normalised offline, without a DNS lookup (a lookup's answer changes with the
    network and the worker asking, and a key that changes would let entries be written again):
    the scheme and any ``user:password@`` are dropped, the host is lowercased, the scheme's
    default port (80, 443) is written out, trailing slashes are removed, and every loopback
    name (``localhost``, ``127.x.x.x``, ``::1``) is the same host. Two different names of one
    server (an IP address and a DNS name) remain two accounts: give every connection to a server
    the same address. The company setting is not part of it: invoice ids are unique in the
    database, whichever company a connection reads."""
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    url = (settings.get("url") or "").strip()
    database = (settings.get("database") or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.hostname or not database:
        raise InvsyncError(
            ErrorCode.CONFIGURATION_INCOMPLETE,
            "The Tryton connection needs the server's URL and a database name.",
            field="url" if parts is None or not parts.hostname else "database",
        )
    host = parts.hostname.lower().rstrip(".")
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback or host in _LOOPBACK_NAMES:
        host = "localhost"
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    path = parts.path.rstrip("/")
    return f"tryton|{host}:{port}{path}|{database}"


class _Unmappable(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TrytonSource(TrytonConnection, InvoicingSource):
    key = "tryton"
    name = "Tryton"
    auth_kinds = (AuthKind.CREDENTIALS,)
    settings_fields = SETTINGS_FIELDS
    supports_journals = True
    supports_attachments = True

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        return tryton_account_identity(settings)

    def __init__(self, config: ConnectionConfig, *, client: TrytonClient | None = None) -> None:
        super().__init__(config)
        self._client = client
        self._taxes: dict[int, dict[str, Any]] | None = None
        self._company_currencies: dict[int, dict[str, Any]] = {}
        self._rates: dict[tuple[int, dt.date], Decimal | None] = {}

    # -- plumbing ----------------------------------------------------------------------------

    def _probe(self, client: TrytonClient) -> str:
        count = client.model("account.invoice", "search_count", self._base_domain(["out", "in"]))
        return f"{count} final or cancelled invoices visible."

    def _company_filter(self) -> list[Any]:
        company = (self.config.settings.get("company") or "").strip()
        if not company:
            return []
        if not company.isdigit():
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"The Tryton company setting {company!r} is not a company id.",
                field="company",
            )
        return [("company", "=", int(company))]

    def _base_domain(self, types: Sequence[str]) -> list[Any]:
        return [
            ("type", "in", list(types)),
            ("state", "in", list(LISTED_STATES)),
            *self._company_filter(),
        ]

    # -- listing -----------------------------------------------------------------------------

    def iter_invoices(
        self, *, since: dt.datetime | None, directions: Sequence[Direction]
    ) -> Iterator[Invoice | SourceRecordError]:
        types = sorted({DIRECTION_TYPES[Direction(d)] for d in directions})
        if not types:
            return
        base = self._base_domain(types)
        since_utc = _naive_utc(since) if since is not None else None
        never_written = [*base, ("write_date", "=", None)]
        if since_utc is not None:
            never_written.append(("create_date", ">=", since_utc))
        yield from self._pages(never_written, "create_date")
        written = [*base, ("write_date", "!=", None)]
        if since_utc is not None:
            written.append(("write_date", ">=", since_utc))
        yield from self._pages(written, "write_date")

    def _pages(self, domain: list[Any], date_field: str) -> Iterator[Invoice | SourceRecordError]:
        last: tuple[dt.datetime, int] | None = None
        while True:
            page_domain = list(domain)
            if last is not None:
                page_domain.append(
                    ["OR", (date_field, ">", last[0]),
                     [(date_field, "=", last[0]), ("id", ">", last[1])]]
                )  # fmt: skip
            rows = self.client.search_read(
                "account.invoice",
                page_domain,
                INVOICE_FIELDS,
                limit=PAGE_SIZE,
                order=[(date_field, "ASC"), ("id", "ASC")],
            )
            if not rows:
                return
            yield from self._map_page(rows)
            if len(rows) < PAGE_SIZE:
                return
            last = (rows[-1][date_field], rows[-1]["id"])

    def get_invoice(self, source_id: str) -> Invoice | SourceRecordError:
        invoice_id = int(source_id) if str(source_id).strip().isdigit() else None
        rows = []
        if invoice_id is not None:
            rows = self.client.search_read(
                "account.invoice",
                [("id", "=", invoice_id), *self._company_filter()],
                INVOICE_FIELDS,
                limit=1,
            )
        if not rows:
            raise ConnectorError(
                ErrorCode.INVALID_SOURCE_DATA,
                f"Tryton invoice {source_id} no longer exists (or is not visible to the "
                "connected user).",
                key="connection.invoice_gone",
                params={"vendor": "Tryton"},
            )
        return self._map_page(rows)[0]

    # -- mapping -----------------------------------------------------------------------------

    def _map_page(self, rows: list[dict[str, Any]]) -> list[Invoice | SourceRecordError]:
        ids = [row["id"] for row in rows]
        lines: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for line in self.client.search_read(
            "account.invoice.line",
            [("invoice", "in", ids), ("type", "=", "line")],
            LINE_FIELDS,
            order=[("invoice", "ASC"), ("sequence", "ASC"), ("id", "ASC")],
        ):
            lines.setdefault(line["invoice"], []).append(line)
        parties = self._parties(rows)
        attached = self._attached(
            [row["id"] for row in rows if row.get("state") not in ("posted", "paid")]
        )
        mapped: list[Invoice | SourceRecordError] = []
        for row in rows:
            try:
                mapped.append(self._invoice(row, lines.get(row["id"], []), parties, attached))
            except _Unmappable as error:
                mapped.append(self._record_error(row, error.code, error.message))
            except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as error:
                mapped.append(
                    self._record_error(
                        row,
                        ErrorCode.INVALID_SOURCE_DATA,
                        f"Tryton invoice {row.get('number') or row.get('id')} cannot be read: "
                        f"{cut(repr(error), 200)}",
                    )
                )
        return mapped

    @staticmethod
    def _record_error(row: dict[str, Any], code: ErrorCode, message: str) -> SourceRecordError:
        return SourceRecordError(
            str(row.get("id")),
            InvsyncError(code, message),
            number=str(row.get("number") or ""),
            updated_at=_updated_at(row),
        )

    def _parties(self, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        # Only well-formed ids: a malformed one fails its own record later, not the whole page.
        ids = sorted({row["party"] for row in rows if type(row.get("party")) is int})
        if not ids:
            return {}
        found = self.client.search_read(
            "party.party",
            [("id", "in", ids)],
            ["name", "email", "identifiers.type", "identifiers.code_compact",
             "account_receivable.code", "account_payable.code"],
            context={"active_test": False},
        )  # fmt: skip
        return {row["id"]: row for row in found}

    def _attached(self, invoice_ids: list[int]) -> set[int]:
        if not invoice_ids:
            return set()
        rows = self.client.search_read(
            "ir.attachment",
            [("resource", "in", [f"account.invoice,{i}" for i in invoice_ids])],
            ["resource"],
        )
        return {int(str(row["resource"]).rsplit(",", 1)[1]) for row in rows if row.get("resource")}

    def _invoice(
        self,
        row: dict[str, Any],
        line_rows: list[dict[str, Any]],
        parties: dict[int, dict[str, Any]],
        attached: set[int],
    ) -> Invoice:
        invoice_id = row["id"]
        number = row.get("number") or f"({invoice_id})"
        tryton_type = row.get("type")
        if tryton_type not in ("out", "in"):
            raise _Unmappable(
                ErrorCode.INVALID_SOURCE_DATA, f"Invoice {number} has an unknown type."
            )
        untaxed = _decimal(row.get("untaxed_amount"))
        tax = _decimal(row.get("tax_amount"))
        total = _decimal(row.get("total_amount"))
        credit_note = total < 0 or (total == 0 and untaxed < 0)
        sign = -1 if credit_note else 1
        currency = (row.get("currency.") or {}).get("code") or ""
        rounding = _decimal((row.get("currency.") or {}).get("rounding") or "0.01")
        created = row.get("create_date")
        issue_date = row.get("invoice_date") or row.get("accounting_date")
        if issue_date is None:
            if STATUSES.get(row.get("state")) is InvoiceStatus.FINAL or created is None:
                raise _Unmappable(
                    ErrorCode.INVALID_SOURCE_DATA, f"Invoice {number} has no invoice date."
                )
            issue_date = created.date()
        tax_date = row.get("accounting_date") or issue_date
        maturities = [
            line["maturity_date"]
            for line in row.get("lines_to_pay.") or []
            if line.get("maturity_date")
        ]
        due_date = min(maturities) if maturities else row.get("payment_term_date")
        return Invoice(
            source_id=str(invoice_id),
            number=number,
            type=TYPES[(tryton_type, credit_note)],
            issue_date=issue_date,
            due_date=due_date,
            currency=currency,
            exchange_rate=self._exchange_rate(row, tax_date),
            untaxed_amount=_signed(sign, untaxed),
            tax_amount=_signed(sign, tax),
            total=_signed(sign, total),
            partner=self._partner(row, parties),
            lines=tuple(self._line(line, sign, tax_date, rounding) for line in line_rows),
            taxes=self._breakdown(row, sign),
            journal_code=(row.get("journal.") or {}).get("code"),
            has_attachment=row.get("state") in ("posted", "paid") or invoice_id in attached,
            updated_at=_updated_at(row),
            status=STATUSES.get(row.get("state"), InvoiceStatus.DRAFT),
        )

    def _partner(self, row: dict[str, Any], parties: dict[int, dict[str, Any]]) -> Partner | None:
        party_id = row.get("party")
        if not party_id:
            return None
        party = parties.get(party_id)
        if party is None:
            raise _Unmappable(
                ErrorCode.CONTACT_NOT_FOUND,
                f"Tryton does not return the party {party_id} of invoice "
                f"{row.get('number') or row['id']}.",
            )
        vat, siret, siren = None, None, None
        for identifier in party.get("identifiers.") or []:
            kind, code = identifier.get("type") or "", identifier.get("code_compact")
            if not code:
                continue
            if kind.endswith("_vat") and vat is None:
                vat = code
            elif kind == "fr_siret" and siret is None:
                siret = code
            elif kind == "fr_siren" and siren is None:
                siren = code
        account_field = "account_receivable." if row.get("type") == "out" else "account_payable."
        address = row.get("invoice_address.") or {}
        full_address = " ".join((address.get("full_address") or "").split()) or None
        return Partner(
            source_id=str(party_id),
            name=party.get("name") or "",
            vat_number=vat,
            company_number=siret or siren,
            auxiliary_account=(party.get(account_field) or {}).get("code"),
            country=(address.get("country.") or {}).get("code"),
            email=party.get("email") or None,
            address=full_address,
        )

    def _line(
        self, line: dict[str, Any], sign: int, tax_date: dt.date, rounding: Decimal
    ) -> InvoiceLine:
        quantity = _decimal(line.get("quantity") or 0)
        untaxed = _decimal(line.get("amount"))
        tax_ids = sorted(line.get("taxes") or [])
        rate, tax_amount, kind = None, Decimal(0), TaxKind.STANDARD
        if tax_ids:
            rate, tax_amount, kind = self._line_tax(tax_ids, tax_date, untaxed, quantity, rounding)
        return InvoiceLine(
            description=(line.get("description") or "").strip(),
            quantity=_signed(sign, quantity),
            unit_price=_decimal(line.get("unit_price") or 0),
            untaxed_amount=_signed(sign, untaxed),
            tax_amount=_signed(sign, tax_amount),
            total=_signed(sign, untaxed + tax_amount),
            tax_rate=rate,
            tax_id="+".join(str(t) for t in tax_ids) or None,
            account_number=(line.get("account.") or {}).get("code"),
            product_code=(line.get("product.") or {}).get("code"),
            tax_kind=kind,
        )

    def _line_tax(
        self,
        tax_ids: list[int],
        date: dt.date,
        untaxed: Decimal,
        quantity: Decimal,
        rounding: Decimal,
    ) -> tuple[Decimal, Decimal, TaxKind]:
        """The line's effective rate (percent), tax amount and kind, as Tryton's
        ``_unit_compute``. A self-assessed tax (children of opposite rates, e.g. +20 % on 44566
        and -20 % on 4452) charges nothing: its amount is 0 and its rate the one self-assessed."""
        effective = self._effective_taxes(tax_ids, date)
        rate, fixed = Decimal(0), Decimal(0)
        for tax in effective:
            if tax.get("type") == "percentage":
                rate += _decimal(tax.get("rate") or 0)
            elif tax.get("type") == "fixed":
                fixed += _decimal(tax.get("amount") or 0)
        amount = _round(untaxed * rate + fixed * quantity, rounding)
        kind = self._kind(tax_ids, effective)
        if kind.self_assessed:
            rate = _self_assessed_rate(effective)
        return _percent(rate), amount, kind

    def _kind(self, tax_ids: list[int], effective: list[dict[str, Any]]) -> TaxKind:
        """Tryton models reverse charge as a tax whose children have opposite rates (the buyer's
        deductible and collected VAT); account_fr names its intra-EU acquisitions so."""
        rates = [_decimal(t.get("rate") or 0) for t in effective if t.get("type") == "percentage"]
        if not (any(r > 0 for r in rates) and any(r < 0 for r in rates)):
            return TaxKind.STANDARD
        taxes = self._tax_rows()
        names = " ".join(str((taxes.get(t) or {}).get("name") or "") for t in tax_ids).lower()
        return TaxKind.INTRA_EU if "intra" in names else TaxKind.REVERSE_CHARGE

    def _breakdown(self, row: dict[str, Any], sign: int) -> tuple[TaxBreakdown, ...]:
        """The invoice's VAT as Tryton states it (``account.invoice.tax``: rounded per invoice
        and tax), one row per tax an invoice line takes: the dated children Tryton books
        (``T.V.A. ... 20%``) are grouped under their top parent, whose id is the lines'
        ``tax_id``. The two children of a self-assessed tax become one row whose amount is the
        VAT self-assessed (the positive child's), outside the invoice's tax total."""
        stated = row.get("taxes.")
        if not isinstance(stated, list):
            return ()
        taxes = self._tax_rows()
        groups: dict[int | None, list[dict[str, Any]]] = {}
        for tax_row in stated:
            tax_id = tax_row.get("tax")
            groups.setdefault(_root_tax(tax_id, taxes), []).append(tax_row)
        breakdown = []
        for root, rows in groups.items():
            leaves = [taxes.get(r.get("tax")) or {} for r in rows]
            if root is None:
                kind = TaxKind.STANDARD
            else:
                kind = self._kind([root], [t for t in leaves if t])
            if kind.self_assessed:
                chosen = [
                    r for r, t in zip(rows, leaves, strict=True) if _decimal(t.get("rate") or 0) > 0
                ]
            else:
                chosen = rows
            chosen = chosen or rows
            rate = sum(
                (
                    _decimal(t.get("rate") or 0)
                    for r, t in zip(rows, leaves, strict=True)
                    if r in chosen and t.get("type") == "percentage"
                ),
                Decimal(0),
            )
            percentage = any(t.get("type") == "percentage" for t in leaves)
            breakdown.append(
                TaxBreakdown(
                    base=_signed(sign, _decimal(chosen[0].get("base"))),
                    amount=_signed(
                        sign, sum((_decimal(r.get("amount")) for r in chosen), Decimal(0))
                    ),
                    rate=_percent(rate) if percentage else None,
                    tax_id=None if root is None else str(root),
                    kind=kind,
                )
            )
        return tuple(breakdown)

    def _effective_taxes(self, tax_ids: list[int], date: dt.date) -> list[dict[str, Any]]:
        taxes = self._tax_rows()
        found: list[dict[str, Any]] = []

        def walk(ids: list[int], depth: int) -> None:
            for tax_id in ids:
                tax = taxes.get(tax_id)
                if tax is None:
                    raise _Unmappable(
                        ErrorCode.INVALID_SOURCE_DATA, f"Tryton does not return the tax {tax_id}."
                    )
                start, end = tax.get("start_date"), tax.get("end_date")
                if (start and date < start) or (end and date > end) or depth > 10:
                    continue
                if tax.get("type") != "none":
                    found.append(tax)
                walk(sorted(tax.get("childs") or []), depth + 1)

        walk(tax_ids, 0)
        return found

    def _tax_rows(self) -> dict[int, dict[str, Any]]:
        if self._taxes is None:
            rows = self.client.search_read(
                "account.tax",
                self._company_filter(),
                ["name", "type", "rate", "amount", "parent", "childs", "start_date", "end_date",
                 "group.kind"],
                context={"active_test": False},
            )  # fmt: skip
            self._taxes = {row["id"]: row for row in rows}
        return self._taxes

    def _exchange_rate(self, row: dict[str, Any], date: dt.date) -> Decimal | None:
        """Company-currency units per invoice-currency unit on the invoice's currency date, from
        Tryton's rates (both relative to the same base); None in the company currency."""
        company = row.get("company")
        currency = row.get("currency")
        company_currency = self._company_currency(company)
        if not company_currency or currency == company_currency["id"]:
            return None
        key = (currency, date)
        if key not in self._rates:
            rates = {
                r["id"]: r.get("rate")
                for r in self.client.read(
                    "currency.currency",
                    [currency, company_currency["id"]],
                    ["rate"],
                    context={"date": date, "company": company},
                )
            }
            invoice_rate, company_rate = rates.get(currency), rates.get(company_currency["id"])
            value = None
            if invoice_rate and company_rate:
                value = (_decimal(company_rate) / _decimal(invoice_rate)).quantize(Decimal("1e-10"))
            self._rates[key] = value
        return self._rates[key]

    def _company_currency(self, company: int | None) -> dict[str, Any] | None:
        if not company:
            return None
        if company not in self._company_currencies:
            rows = self.client.read("company.company", [company], ["currency", "currency.code"])
            self._company_currencies[company] = (
                {"id": rows[0]["currency"], "code": (rows[0].get("currency.") or {}).get("code")}
                if rows
                else {}
            )
        return self._company_currencies[company] or None

    # -- attachments -------------------------------------------------------------------------

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        """A file attached to the invoice in Tryton (a PDF first), else the invoice report as
        Tryton renders it (PDF where LibreOffice is installed on the server, ODT otherwise)."""
        if not str(invoice.source_id).isdigit():
            raise ConnectorError(ErrorCode.PDF, f"Invoice {invoice.number} has no Tryton id.")
        invoice_id = int(invoice.source_id)
        try:
            files = self.client.search_read(
                "ir.attachment",
                [("resource", "=", f"account.invoice,{invoice_id}"), ("type", "=", "data")],
                ["name", "data"],
                order=[("id", "ASC")],
            )
            files = [f for f in files if f.get("data")]
            if files:
                chosen = next(
                    (f for f in files if str(f.get("name", "")).lower().endswith(".pdf")), files[0]
                )
                name = str(chosen.get("name") or f"{invoice.number}.pdf")
                content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
                return Attachment(name, content_type, bytes(chosen["data"]))
            report = self.client.report("account.invoice", [invoice_id])
        except TrytonError as error:
            if error.code in (ErrorCode.TARGET_REJECTED, ErrorCode.UNEXPECTED):
                raise ConnectorError(
                    ErrorCode.PDF,
                    f"Tryton could not render the document of invoice {invoice.number}: "
                    f"{error.detail or error.message}",
                ) from None
            raise
        if not report.content:
            raise ConnectorError(
                ErrorCode.PDF, f"Tryton rendered an empty document for invoice {invoice.number}."
            )
        return Attachment(report.filename, report.content_type, report.content)

    # -- lookups -----------------------------------------------------------------------------

    def list_tax_rates(self) -> list[SourceTaxRate]:
        """The taxes an invoice line takes (those without a parent), with their rate today."""
        today = dt.date.today()
        rates = []
        for tax in sorted(self._tax_rows().values(), key=lambda t: t["id"]):
            if tax.get("parent"):
                continue
            directions = GROUP_DIRECTIONS.get((tax.get("group.") or {}).get("kind") or "", ())
            effective = self._effective_taxes([tax["id"]], today)
            if not effective and tax.get("childs"):
                # Expired as a whole: the rate it last had.
                effective = self._effective_taxes([tax["id"]], tax.get("end_date") or today)
            kind = self._kind([tax["id"]], effective)
            if kind.self_assessed:
                rate = _self_assessed_rate(effective)
            else:
                rate = sum(
                    (
                        _decimal(t.get("rate") or 0)
                        for t in effective
                        if t.get("type") == "percentage"
                    ),
                    Decimal(0),
                )
            for direction in directions:
                rates.append(
                    SourceTaxRate(
                        direction, _percent(rate), str(tax["id"]), tax.get("name") or "", kind
                    )
                )
        return rates

    def list_journals(self) -> list[SourceJournal]:
        rows = self.client.search_read(
            "account.journal",
            [("type", "in", ["revenue", "expense"])],
            ["code", "name"],
            order=[("code", "ASC")],
        )
        return [
            SourceJournal(row["code"], row.get("name") or "") for row in rows if row.get("code")
        ]


# -- helpers ---------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if value is None:
        raise ValueError("missing amount")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _self_assessed_rate(effective: list[dict[str, Any]]) -> Decimal:
    """The rate a self-assessed tax applies: its positive (deductible) children's."""
    return sum(
        (
            rate
            for t in effective
            if t.get("type") == "percentage" and (rate := _decimal(t.get("rate") or 0)) > 0
        ),
        Decimal(0),
    )


def _root_tax(tax_id: Any, taxes: dict[int, dict[str, Any]]) -> int | None:
    """The top parent of a tax (the one invoice lines take), or None for a row without tax."""
    if type(tax_id) is not int:
        return None
    seen: set[int] = set()
    current = tax_id
    while current in taxes and taxes[current].get("parent") and current not in seen:
        seen.add(current)
        current = taxes[current]["parent"]
    return current


def _signed(sign: int, value: Decimal) -> Decimal:
    """``value`` with the sign flipped for credit notes, never a negative zero."""
    return (value if sign > 0 else -value) + 0


def _round(amount: Decimal, rounding: Decimal) -> Decimal:
    if not rounding:
        return amount
    return (amount / rounding).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * rounding


def _percent(rate: Decimal) -> Decimal:
    """Tryton's 0.2 as 20 (and 0.055 as 5.5)."""
    value = (rate * 100).normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _updated_at(row: dict[str, Any]) -> dt.datetime | None:
    value = row.get("write_date") or row.get("create_date")
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
