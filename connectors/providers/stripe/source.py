"""Stripe Invoicing as an invoicing source: finalized invoices and credit notes become canonical
invoices (sales only: Stripe bills customers).

Mapping choices (``docs/stripe.md`` says why):

- Statuses: ``open``, ``paid`` and ``uncollectible`` are FINAL (what the entry books does not
  change when the customer pays; reporting PAID would make every invoice paid after its sync look
  changed), ``void`` is CANCELLED (the engine skips it when never posted and flags its entry for
  reversal when already posted, as for Tryton's cancelled invoices); drafts are never listed
  (``get_invoice`` maps one to DRAFT). A credit note is a ``customer_refund`` with positive
  amounts; a voided one is CANCELLED.
- Amounts: Stripe's integers in the currency's minor unit, with Stripe's own exponents
  (:data:`ZERO_DECIMAL`: JPY, KRW… have none; :data:`THREE_DECIMAL`; ISK, HUF and TWD keep two in
  the API). A line's ``amount`` is before discounts and includes inclusive taxes: its untaxed
  amount is ``amount`` − its discounts (per line and its share of the invoice's, which Stripe
  spreads over the lines in ``discount_amounts``) − its inclusive taxes; its tax is the sum of its
  ``taxes``. The header's untaxed amount is ``total_excluding_tax``, its total ``total``.
- Taxes: a line's tax id is its tax rate's id (``txr_…``; ``a+b`` for several), its rate the rate's
  percentage (Stripe Tax's ``effective_percentage`` when it has one); a line without tax has rate 0
  (to be mapped like any rate). ``total_taxes`` (Stripe's breakdown per tax rate, base and amount
  to the cent) becomes ``Invoice.taxes``. Stripe Tax's ``taxability_reason`` gives the kind
  (``reverse_charge``, ``zero_rated``, exempt ones, not collected ones).
- Customer: the details the invoice froze at finalization (``customer_name``, ``customer_email``,
  ``customer_address``, ``customer_tax_ids``), the customer object only when the invoice has no
  name; ``*_vat`` tax ids (``eu_vat``, ``gb_vat``, ``ch_vat``…) give the VAT number, ``fr_siret``,
  ``fr_siren`` and other registration numbers the company number. A credit note's customer is
  its invoice's.
- Listing: see :meth:`StripeSource.iter_invoices` (``created`` windows for a full read, events
  within Stripe's 30 days for what changed since the last run).
- PDF: ``invoice_pdf`` (a credit note's ``pdf``) is only downloaded by :meth:`fetch_attachment`.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import (
    AuthKind,
    ConnectionConfig,
    InvoicingSource,
    SourceRecordError,
)
from connectors.canonical import (
    Attachment,
    ConnectionCheck,
    Direction,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Partner,
    SourceTaxRate,
    TaxBreakdown,
    TaxKind,
)
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.http import HttpError, cut
from connectors.providers.stripe.client import (
    DEFAULT_API_URL,
    LIVE_RATE_LIMIT,
    PAGE_SIZE,
    SETTINGS_FIELDS,
    StripeClient,
    client_from_config,
)

logger = logging.getLogger(__name__)

# Stripe's minor units (docs.stripe.com/currencies): zero-decimal and three-decimal currencies;
# every other one has two in the API (ISK, HUF and TWD too, whatever ISO 4217 says).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())  # noqa: SIM905
# Stripe keeps events 30 days; a cursor older than this (with a day's margin) reads everything.
EVENTS_HORIZON = dt.timedelta(days=29)
EVENT_TYPES = ("invoice.finalized", "invoice.voided", "credit_note.created", "credit_note.voided")
# The first second a Stripe object can have been created (Stripe opened in 2011).
STRIPE_EPOCH = 1_293_840_000  # 2011-01-01T00:00:00Z
FINAL_STATUSES = {"open": InvoiceStatus.FINAL, "paid": InvoiceStatus.FINAL,
                  "uncollectible": InvoiceStatus.FINAL, "void": InvoiceStatus.CANCELLED,
                  "draft": InvoiceStatus.DRAFT}  # fmt: skip
CREDIT_NOTE_STATUSES = {"issued": InvoiceStatus.FINAL, "void": InvoiceStatus.CANCELLED}
COMPANY_ID_TYPES = ("fr_siret", "fr_siren", "es_cif", "ch_uid", "ca_bn", "au_abn", "nz_gst")
TAXABILITY_KINDS = {
    "reverse_charge": TaxKind.REVERSE_CHARGE,
    "zero_rated": TaxKind.ZERO,
    "customer_exempt": TaxKind.EXEMPT,
    "product_exempt": TaxKind.EXEMPT,
    "product_exempt_holiday": TaxKind.EXEMPT,
    "portion_product_exempt": TaxKind.EXEMPT,
    "excluded_territory": TaxKind.OUT_OF_SCOPE,
    "jurisdiction_unsupported": TaxKind.OUT_OF_SCOPE,
    "not_collecting": TaxKind.OUT_OF_SCOPE,
    "not_subject_to_tax": TaxKind.OUT_OF_SCOPE,
    "not_supported": TaxKind.OUT_OF_SCOPE,
    "vat_exempt": TaxKind.EXEMPT,
}


# A Stripe Tax amount without a tax rate object is known by this prefix and its taxability
# reason; the reasons offered for mapping when the account uses Stripe Tax (VAT's usual ones).
STRIPE_TAX_ID = "stripe_tax:"
UNRATED_REASONS = ("standard_rated", "reduced_rated", "zero_rated", "reverse_charge")


def _unrated_tax_id(tax: Mapping[str, Any]) -> str:
    return STRIPE_TAX_ID + (str(tax.get("taxability_reason") or "") or "unknown")


def stripe_exponent(currency: str) -> int:
    code = (currency or "").upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def money(amount: Any, currency: str) -> Decimal:
    """A Stripe integer amount in the currency's minor unit as a Decimal of the currency."""
    if isinstance(amount, bool) or not isinstance(amount, int | str):
        raise ValueError(f"not an amount: {amount!r}")
    return Decimal(int(amount)).scaleb(-stripe_exponent(currency))


class _Unmappable(Exception):
    pass


class StripeSource(InvoicingSource):
    key = "stripe"
    name = "Stripe"
    auth_kinds = (AuthKind.API_KEY, AuthKind.OAUTH2)
    settings_fields = SETTINGS_FIELDS
    # The signing secret (whsec_…) of the connection's webhook endpoint (syncs/webhooks.py).
    extra_secrets = ("webhook_secret",)
    rate_limit = LIVE_RATE_LIMIT
    supports_journals = False
    supports_attachments = True

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        client: StripeClient | None = None,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(config)
        self._client = client
        self.clock = clock
        self.page_size = page_size
        self.pages_read = 0  # list pages read (bench figures, the contract's paged source)
        self._tax_rates: dict[str, dict[str, Any]] = {}
        self._invoices: dict[str, dict[str, Any]] = {}  # invoices of credit notes, by id
        self._customers: dict[str, dict[str, Any]] = {}
        self._pdfs: dict[str, str] = {}  # source id -> PDF link, seen while listing

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        # Stripe's ids are unique per account; an API key names its account only when asked.
        account = str(settings.get("company_id") or "").strip()
        if not account:
            return ""
        host = str(settings.get("api_url") or DEFAULT_API_URL).strip().lower().rstrip("/")
        return f"stripe:{host}:{account}"

    @property
    def client(self) -> StripeClient:
        if self._client is None:
            self._client = client_from_config(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def check_connection(self) -> ConnectionCheck:
        # One invoice read: the permission a restricted key needs anyway (/v1/account may be
        # refused to a restricted key that reads invoices well).
        try:
            self.client.get("v1/invoices", {"limit": 1})
        except InvsyncError as error:
            return ConnectionCheck(False, str(error), error.code)
        api_key = self.config.credentials.get("api_key") or ""
        mode = " (test mode)" if "_test_" in api_key[:8] else ""
        account = self.client.account
        where = f" account {account}" if account else ""
        return ConnectionCheck(True, f"Connected to Stripe{where}{mode}: invoices are readable.")

    # -- listing -----------------------------------------------------------------------------

    def _read(self) -> None:
        self.pages_read += 1

    def iter_invoices(
        self, *, since: dt.datetime | None, directions: Sequence[Direction]
    ) -> Iterator[Invoice | SourceRecordError]:
        """Oldest change first, streamed. Stripe lists newest first and filters on ``created``
        only, while an invoice changes after it is created (a draft is finalized later, a
        finalized one voided any time). Hence two ways:

        - ``since`` within Stripe's 30 days of events (:data:`EVENTS_HORIZON`): the events
          ``invoice.finalized``, ``invoice.voided``, ``credit_note.created`` and
          ``credit_note.voided`` created since then, oldest first; each gives the object as
          it was then (the last of one object's events in a page wins), ``updated_at`` the
          event's time.
        - otherwise (first run, or a cursor older than the events kept): every invoice and
          credit note, by ``created`` windows oldest first (drafts left out), ``updated_at`` their
          creation: the cursor then never passes an object not read yet, and whatever changes
          after the read has an event the next run reads.
        """
        if Direction.SALES not in {Direction(d) for d in directions}:
            return iter(())
        return self._listing(since)

    def _listing(self, since: dt.datetime | None) -> Iterator[Invoice | SourceRecordError]:
        now = self.clock()
        hi = int(now) + 1
        if since is not None:
            since_utc = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
            if dt.datetime.fromtimestamp(now, dt.UTC) - since_utc < EVENTS_HORIZON:
                yield from self._from_events(int(since_utc.timestamp()), hi)
                return
        invoices = self.client.ascending(
            "v1/invoices", {}, STRIPE_EPOCH, hi, page_size=self.page_size, reads=self._read
        )
        notes = self.client.ascending(
            "v1/credit_notes",
            {"expand": ["data.invoice"]},
            STRIPE_EPOCH,
            hi,
            page_size=self.page_size,
            reads=self._read,
        )
        for obj in _merged(invoices, notes):
            if obj.get("object") == "invoice" and obj.get("status") == "draft":
                continue
            yield self._map(obj, _timestamp(obj.get("created")))

    def _from_events(self, lo: int, hi: int) -> Iterator[Invoice | SourceRecordError]:
        events = self.client.ascending(
            "v1/events",
            {"types": list(EVENT_TYPES)},
            lo,
            hi,
            page_size=self.page_size,
            reads=self._read,
        )
        for batch in _batches(events, self.page_size):
            latest: dict[str, dict[str, Any]] = {}
            for event in batch:
                obj = (event.get("data") or {}).get("object") or {}
                if obj.get("id"):
                    latest.pop(obj["id"], None)  # moved to its last event's place
                    latest[obj["id"]] = event
            for event in latest.values():
                obj = event["data"]["object"]
                yield self._map(obj, _timestamp(event.get("created")))

    def get_invoice(self, source_id: str) -> Invoice | SourceRecordError:
        source_id = str(source_id or "").strip()
        if source_id.startswith("in_"):
            path = f"v1/invoices/{source_id}"
            params: dict[str, Any] = {}
        elif source_id.startswith("cn_"):
            path = f"v1/credit_notes/{source_id}"
            params = {"expand": ["invoice"]}
        else:
            path = ""
        try:
            obj = self.client.get(path, params) if path else None
        except HttpError as error:
            if error.status != 404:
                raise
            obj = None
        if not obj:
            raise ConnectorError(
                ErrorCode.INVALID_SOURCE_DATA,
                f"Stripe does not hold the invoice or credit note {cut(source_id, 80)!r} (or the "
                "key cannot read it).",
            )
        return self._map(obj, _last_change(obj))

    # -- mapping -----------------------------------------------------------------------------

    def _map(
        self, obj: dict[str, Any], updated_at: dt.datetime | None
    ) -> Invoice | SourceRecordError:
        number = str(obj.get("number") or obj.get("id") or "")
        try:
            if obj.get("object") == "credit_note":
                return self._credit_note(obj, updated_at)
            return self._invoice(obj, updated_at)
        except HttpError as error:
            if error.code in (ErrorCode.INVALID_SOURCE_DATA, ErrorCode.UNEXPECTED):
                return SourceRecordError(
                    str(obj.get("id")), error, number=number, updated_at=updated_at
                )
            raise  # the connection's trouble stops the listing
        except _Unmappable as error:
            message = str(error)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as error:
            message = f"Stripe {obj.get('object') or 'object'} {number} cannot be read: " + cut(
                repr(error), 200
            )
        return SourceRecordError(
            str(obj.get("id")),
            InvsyncError(ErrorCode.INVALID_SOURCE_DATA, message),
            number=number,
            updated_at=updated_at,
        )

    def _invoice(self, obj: dict[str, Any], updated_at: dt.datetime | None) -> Invoice:
        invoice_id = obj["id"]
        currency = str(obj["currency"]).upper()
        status = FINAL_STATUSES.get(str(obj.get("status")))
        if status is None:
            raise _Unmappable(
                f"Stripe invoice {invoice_id} has the unknown status {obj.get('status')!r}."
            )
        rows = self._all_lines(obj, f"v1/invoices/{invoice_id}/lines")
        lines = [self._line(row, currency) for row in rows]
        shipping = self._shipping(obj, currency)
        if shipping is not None:
            lines.append(shipping)
        total = money(obj["total"], currency)
        untaxed = (
            money(obj["total_excluding_tax"], currency)
            if obj.get("total_excluding_tax") is not None
            else sum((line.untaxed_amount for line in lines), Decimal(0))
        )
        if obj.get("invoice_pdf"):
            self._pdfs[invoice_id] = str(obj["invoice_pdf"])
        transitions = obj.get("status_transitions") or {}
        issued = obj.get("effective_at") or transitions.get("finalized_at") or obj.get("created")
        return Invoice(
            source_id=invoice_id,
            number=str(obj.get("number") or invoice_id),
            type=InvoiceType.CUSTOMER_INVOICE,
            issue_date=_date(issued),
            due_date=_date(obj["due_date"]) if obj.get("due_date") else None,
            currency=currency,
            untaxed_amount=untaxed,
            tax_amount=total - untaxed,
            total=total,
            partner=self._partner(obj),
            lines=tuple(lines),
            has_attachment=bool(obj.get("invoice_pdf")),
            updated_at=updated_at,
            status=status,
            taxes=self._breakdown(obj.get("total_taxes"), currency),
        )

    def _credit_note(self, obj: dict[str, Any], updated_at: dt.datetime | None) -> Invoice:
        note_id = obj["id"]
        currency = str(obj["currency"]).upper()
        status = CREDIT_NOTE_STATUSES.get(str(obj.get("status")))
        if status is None:
            raise _Unmappable(
                f"Stripe credit note {note_id} has the unknown status {obj.get('status')!r}."
            )
        rows = self._all_lines(obj, f"v1/credit_notes/{note_id}/lines")
        lines = [self._line(row, currency) for row in rows]
        shipping = self._shipping(obj, currency)
        if shipping is not None:
            lines.append(shipping)
        total = money(obj["total"], currency)
        untaxed = (
            money(obj["total_excluding_tax"], currency)
            if obj.get("total_excluding_tax") is not None
            else sum((line.untaxed_amount for line in lines), Decimal(0))
        )
        invoice = obj.get("invoice")
        if isinstance(invoice, str) and invoice:
            invoice = self._invoice_of_note(invoice)
        if not isinstance(invoice, dict):
            raise _Unmappable(
                f"Stripe credit note {obj.get('number') or note_id} names no invoice."
            )
        if obj.get("pdf"):
            self._pdfs[note_id] = str(obj["pdf"])
        return Invoice(
            source_id=note_id,
            number=str(obj.get("number") or note_id),
            type=InvoiceType.CUSTOMER_REFUND,
            issue_date=_date(obj.get("effective_at") or obj.get("created")),
            currency=currency,
            untaxed_amount=untaxed,
            tax_amount=total - untaxed,
            total=total,
            partner=self._partner(invoice),
            lines=tuple(lines),
            has_attachment=bool(obj.get("pdf")),
            updated_at=updated_at,
            status=status,
            taxes=self._breakdown(obj.get("total_taxes"), currency),
        )

    def _invoice_of_note(self, invoice_id: str) -> dict[str, Any]:
        if invoice_id not in self._invoices:
            if len(self._invoices) > 1000:
                self._invoices.clear()
            self._invoices[invoice_id] = self.client.get(f"v1/invoices/{invoice_id}")
        return self._invoices[invoice_id]

    def _all_lines(self, obj: dict[str, Any], path: str) -> list[dict[str, Any]]:
        """The object's lines: the embedded list (Stripe embeds the first ones), then the rest
        from the lines endpoint when it says it has more."""
        embedded = obj.get("lines") or {}
        rows = list(embedded.get("data") or [])
        if embedded.get("has_more"):
            rows = list(self.client.pages(path))
        return rows

    def _line(self, row: dict[str, Any], currency: str) -> InvoiceLine:
        amount = money(row["amount"], currency)
        discount = sum(
            (money(d["amount"], currency) for d in row.get("discount_amounts") or []), Decimal(0)
        )
        discount += sum(
            (
                money(c["amount"], currency)
                for c in row.get("pretax_credit_amounts") or []
                if c.get("type") == "credit_balance_transaction"
            ),
            Decimal(0),
        )
        taxes = list(row.get("taxes") or [])
        inclusive = sum(
            (money(t["amount"], currency) for t in taxes if t.get("tax_behavior") == "inclusive"),
            Decimal(0),
        )
        tax_amount = sum((money(t["amount"], currency) for t in taxes), Decimal(0))
        untaxed = amount - discount - inclusive
        quantity = _decimal(row.get("quantity_decimal") or row.get("quantity") or 1)
        gross = untaxed + discount
        unit_price = _plain((gross / quantity).quantize(Decimal("1e-6"))) if quantity else gross
        rate_ids = [self._tax_rate_id(t) for t in taxes]
        rate_ids = [r for r in rate_ids if r]
        rate: Decimal | None = Decimal(0)
        kind = TaxKind.STANDARD
        if rate_ids:
            rate = sum((self._percentage(r) for r in rate_ids), Decimal(0))
        # A Stripe Tax amount without a tax rate object: a tax id of its own, by its taxability
        # reason (``stripe_tax:standard_rated``…), for a person to map; no rate is stated, so the
        # line's VAT is not checked against one (a zero amount keeps the rate it has).
        unrated = [t for t in taxes if not self._tax_rate_id(t)]
        for tax in unrated:
            rate_ids.append(_unrated_tax_id(tax))
            if money(tax["amount"], currency):
                rate = None
        reasons = {str(t.get("taxability_reason") or "") for t in taxes}
        for reason in reasons:
            if reason in TAXABILITY_KINDS:
                kind = TAXABILITY_KINDS[reason]
        return InvoiceLine(
            description=str(row.get("description") or "").strip(),
            quantity=quantity,
            unit_price=unit_price,
            untaxed_amount=untaxed,
            tax_amount=tax_amount,
            total=untaxed + tax_amount,
            discount_amount=discount,
            tax_rate=_plain(rate),
            tax_id="+".join(rate_ids) or None,
            tax_kind=kind,
        )

    def _shipping(self, obj: dict[str, Any], currency: str) -> InvoiceLine | None:
        cost = obj.get("shipping_cost")
        if not obj.get("amount_shipping") or not isinstance(cost, dict):
            return None
        untaxed = money(cost.get("amount_subtotal") or 0, currency)
        tax = money(cost.get("amount_tax") or 0, currency)
        taxes = list(cost.get("taxes") or [])
        rate_ids = [str((t.get("rate") or {}).get("id") or "") for t in taxes]
        rate_ids = [r for r in rate_ids if r]
        rate = sum((self._percentage(r) for r in rate_ids), Decimal(0))
        return InvoiceLine(
            description="Shipping",
            quantity=Decimal(1),
            unit_price=untaxed,
            untaxed_amount=untaxed,
            tax_amount=tax,
            total=untaxed + tax,
            tax_rate=_plain(rate),
            tax_id="+".join(rate_ids) or None,
        )

    def _breakdown(self, rows: Any, currency: str) -> tuple[TaxBreakdown, ...]:
        """``total_taxes``: per tax rate, the base and the VAT as Stripe states them."""
        if not isinstance(rows, list):
            return ()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault(self._tax_rate_id(row) or _unrated_tax_id(row), []).append(row)
        breakdown = []
        for rate_id, group in grouped.items():
            reason = str(group[0].get("taxability_reason") or "")
            rated = not rate_id.startswith(STRIPE_TAX_ID)
            breakdown.append(
                TaxBreakdown(
                    base=sum((money(r.get("taxable_amount") or 0, currency) for r in group),
                             Decimal(0)),
                    amount=sum((money(r["amount"], currency) for r in group), Decimal(0)),
                    rate=_plain(self._percentage(rate_id)) if rated else None,
                    tax_id=rate_id,
                    kind=TAXABILITY_KINDS.get(reason, TaxKind.STANDARD),
                )
            )  # fmt: skip
        return tuple(breakdown)

    @staticmethod
    def _tax_rate_id(tax: dict[str, Any]) -> str:
        details = tax.get("tax_rate_details") or {}
        rate = details.get("tax_rate") if isinstance(details, dict) else None
        if isinstance(rate, dict):
            rate = rate.get("id")
        return str(rate or "")

    def _tax_rate(self, rate_id: str) -> dict[str, Any]:
        if rate_id not in self._tax_rates:
            self._tax_rates[rate_id] = self.client.get(f"v1/tax_rates/{rate_id}")
        return self._tax_rates[rate_id]

    def _percentage(self, rate_id: str) -> Decimal:
        rate = self._tax_rate(rate_id)
        value = rate.get("effective_percentage")
        if value is None:
            value = rate.get("percentage")
        if value is None:
            raise _Unmappable(f"Stripe's tax rate {rate_id} states no percentage.")
        return _decimal(value)

    def _partner(self, invoice: dict[str, Any]) -> Partner | None:
        customer = invoice.get("customer")
        customer_id = customer.get("id") if isinstance(customer, dict) else customer
        if not customer_id:
            return None
        name = invoice.get("customer_name")
        email = invoice.get("customer_email")
        address = invoice.get("customer_address")
        tax_ids = list(invoice.get("customer_tax_ids") or [])
        if not name:
            details = customer if isinstance(customer, dict) else self._customer(customer_id)
            name = details.get("name") or details.get("description") or details.get("email")
            email = email or details.get("email")
            address = address or details.get("address")
            tax_ids = tax_ids or list(((details.get("tax_ids") or {}).get("data")) or [])
        vat = next(
            (_compact(t.get("value")) for t in tax_ids if str(t.get("type", "")).endswith("_vat")),
            None,
        )
        company = None
        for kind in COMPANY_ID_TYPES:
            company = next(
                (_compact(t.get("value")) for t in tax_ids if t.get("type") == kind), None
            )
            if company:
                break
        address = address if isinstance(address, dict) else {}
        text = " ".join(
            str(address.get(k) or "").strip()
            for k in ("line1", "line2", "postal_code", "city", "state")
        )
        return Partner(
            source_id=str(customer_id),
            name=str(name or ""),
            vat_number=vat or None,
            company_number=company or None,
            country=(address.get("country") or None),
            email=email or None,
            address=" ".join(text.split()) or None,
        )

    def _customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self._customers:
            self._customers[customer_id] = self.client.get(
                f"v1/customers/{customer_id}", {"expand": ["tax_ids"]}
            )
        return self._customers[customer_id]

    # -- attachments -------------------------------------------------------------------------

    def fetch_attachment(self, invoice: Invoice) -> Attachment:
        source_id = invoice.source_id
        url = self._pdfs.get(source_id)
        if url is None:
            try:
                obj = self.client.get(
                    f"v1/credit_notes/{source_id}"
                    if source_id.startswith("cn_")
                    else f"v1/invoices/{source_id}"
                )
            except HttpError as error:
                if error.status == 404:
                    raise ConnectorError(
                        ErrorCode.PDF, f"Stripe no longer holds {invoice.number}."
                    ) from None
                raise
            url = obj.get("pdf") if source_id.startswith("cn_") else obj.get("invoice_pdf")
        if not url:
            raise ConnectorError(ErrorCode.PDF, f"Stripe has no PDF for {invoice.number}.")
        response = self.client.download(str(url))
        content = response.content
        if not content:
            raise ConnectorError(ErrorCode.PDF, f"Stripe's PDF of {invoice.number} is empty.")
        content_type = (response.headers.get("Content-Type") or "application/pdf").split(";")[0]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in invoice.number)
        return Attachment(f"{safe or source_id}.pdf", content_type, content)

    # -- lookups -----------------------------------------------------------------------------

    def list_tax_rates(self) -> list[SourceTaxRate]:
        """Every tax rate of the account (Stripe's "List all tax rates", active or archived: old
        invoices use archived ones), and rate 0 for lines without a tax rate.

        Stripe Tax's own rates (``jurisdiction_level`` set: Stripe creates them as it calculates,
        no person picks their ids) are offered by rate, once per percentage: a line whose tax id
        no mapping names falls back to its rate, so one mapping per rate covers them all. When the
        account uses Stripe Tax, the Stripe Tax amounts that come without a tax rate object are
        offered by their ``stripe_tax:<taxability reason>`` tax id (see :meth:`_line`)."""
        rates = [
            SourceTaxRate(
                Direction.SALES, Decimal(0), None, "No tax rate on the line", TaxKind.STANDARD
            )
        ]
        automatic: dict[Decimal, SourceTaxRate] = {}
        for rate in self.client.pages("v1/tax_rates"):
            self._tax_rates[str(rate["id"])] = rate
            percentage = rate.get("effective_percentage")
            if percentage is None:
                percentage = rate.get("percentage")
            if rate.get("jurisdiction_level") is not None:
                if percentage is not None and _decimal(percentage):
                    value = _plain(_decimal(percentage))
                    automatic.setdefault(
                        value, SourceTaxRate(Direction.SALES, value, None, f"Stripe Tax {value} %")
                    )
                continue
            how = "incl." if rate.get("inclusive") else "excl."
            where = rate.get("jurisdiction") or rate.get("country") or ""
            label = rate.get("display_name") or rate.get("description") or rate["id"]
            rates.append(
                SourceTaxRate(
                    Direction.SALES,
                    _plain(_decimal(percentage)) if percentage is not None else None,
                    str(rate["id"]),
                    " ".join(str(p) for p in (label, f"{percentage} %", how, where) if p),
                )
            )
        rates.extend(automatic[value] for value in sorted(automatic))
        if automatic:
            rates.extend(
                SourceTaxRate(
                    Direction.SALES,
                    None,
                    f"{STRIPE_TAX_ID}{reason}",
                    f"Stripe Tax amount without a tax rate ({reason.replace('_', ' ')})",
                    TAXABILITY_KINDS.get(reason, TaxKind.STANDARD),
                )
                for reason in UNRATED_REASONS
            )
        return rates


# -- helpers ---------------------------------------------------------------------------------


def _merged(*streams: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Streams each oldest first, merged oldest first (reads one item ahead of each)."""
    return heapq.merge(*streams, key=lambda obj: int(obj.get("created") or 0))


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _last_change(obj: dict[str, Any]) -> dt.datetime | None:
    times = [obj.get("created"), obj.get("voided_at")]
    times += list((obj.get("status_transitions") or {}).values())
    stamps = [t for t in times if isinstance(t, int) and not isinstance(t, bool)]
    return _timestamp(max(stamps)) if stamps else None


def _date(value: Any) -> dt.date:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a Stripe timestamp: {value!r}")
    return dt.datetime.fromtimestamp(value, dt.UTC).date()


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _plain(value: Decimal | None) -> Decimal | None:
    """19.0 as 19, 5.50 as 5.5 (rates read from Stripe's JSON numbers)."""
    if value is None:
        return None
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def _compact(value: Any) -> str:
    return "".join(str(value or "").split()).upper()
