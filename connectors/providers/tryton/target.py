"""Tryton as an accounting target: postings become ``account.move`` records.

Choices (see the module docstrings of the client for transport and errors):

- Folder: a ``company.company`` (its id as a string). Every call runs with that company in the
  context, so the user's company rules apply.
- VAT code: the ``account.tax`` id as a string. Tryton taxes have no code of their own and the
  chart templates' XML ids are not readable over RPC (``ir.model.data`` refuses ``search_read``);
  an id is short, unique in the database, survives renames and translations, and the mapping
  forms show the tax's name beside it. Only leaf taxes are listed: move tax lines take the dated
  child ("T.V.A. Vente de biens 20%"), not the parent an invoice line takes ("... Taux Normal").
- External id: kept in the move's ``description`` as ``"<reference> [<external id>]"``. A move has
  no other free text field (``origin`` is a reference restricted to models such as
  ``account.move`` and ``account.invoice``; a line's description is the label people read);
  ``description`` is a plain searchable Char, shown in Tryton's move list, and read-only once the
  move is posted. It is searched with LIKE (special characters widened to ``_``) and compared
  exactly here. Tryton's cancel copies the move with its description and ``origin`` set to the
  cancelled move, so moves whose origin is a move are ignored; of a duplicated move, the posted
  (then the oldest) one is reported.
- Party: set on the lines whose account requires one (Tryton refuses it elsewhere).
- Auxiliary accounts: Tryton's concept is a receivable/payable account set on the party itself
  for the company. A candidate's auxiliary accounts are those codes, but parties cannot be
  searched by them over RPC ("Missing search function"), so they only help on candidates found
  by another criterion. The fallback, the party ``code``, is searched and reported only when the
  party configuration has no sequence (people type the codes, e.g. "411ACME"); with a sequence
  (the default) codes are Tryton's running numbers "1", "2"... and a source's auxiliary account
  "12" must not match party 12.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from connectors.base import AccountingTarget, AuthKind, ConnectionConfig, SettingField, http_url
from connectors.messages import N_
from connectors.providers.tryton.client import TRANSPORT_SETTINGS_FIELDS, TrytonClient
from connectors.providers.tryton.entries import TrytonEntries
from connectors.providers.tryton.lookups import AccountRow, PeriodRow
from connectors.providers.tryton.partners import TrytonPartners
from connectors.providers.tryton.source import tryton_account_identity

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
    *TRANSPORT_SETTINGS_FIELDS,
)


class TrytonTarget(TrytonPartners, TrytonEntries, AccountingTarget):
    """The target composed of its parts: :class:`TrytonLookups` (folders, accounts, VAT codes,
    journals, periods), :class:`TrytonPartners` (search, identifiers, creation, name matching)
    and :class:`TrytonEntries` (find, create, attach, post), on one
    :class:`~connectors.providers.tryton.client.TrytonClient`."""

    key = "tryton"
    name = "Tryton"
    auth_kinds = (AuthKind.CREDENTIALS,)
    settings_fields = SETTINGS_FIELDS
    supports_draft_entries = True
    supports_attachments = True
    supports_partner_creation = True
    supports_batch_writes = True
    vat_codes_name_accounts: ClassVar[bool] = True
    supports_exchange_rates = True

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        # The same server and database as a source connection: one Tryton account.
        return tryton_account_identity(settings)

    def __init__(self, config: ConnectionConfig, *, client: TrytonClient | None = None) -> None:
        super().__init__(config)
        self._client = client
        self._accounts: dict[int, dict[str, AccountRow]] = {}
        self._periods: dict[int, list[PeriodRow]] = {}
        self._company_currencies: dict[int, str] = {}  # read with the periods
        self._journals: dict[str, int] | None = None
        self._taxes: dict[int, dict[str, dict[str, Any]]] = {}
        self._currencies: dict[str, int] = {}
        self._typed_party_codes: bool | None = None
        self._countries: dict[str, int | None] = {}
        self._rates: dict[tuple[int, str, str, dt.date], Decimal | None] = {}

    # -- plumbing ----------------------------------------------------------------------------

    def _probe(self, client: TrytonClient) -> str:
        companies = client.search_read("company.company", [], ["rec_name"], limit=10)
        names = ", ".join(c["rec_name"] for c in companies) or "none visible"
        return f"companies: {names}."

    # -- exchange rates ----------------------------------------------------------------------

    def exchange_rate(
        self, folder: str, currency: str, company_currency: str, date: dt.date
    ) -> Decimal | None:
        """Tryton's own rate on ``date`` (``currency.currency`` ``rate`` of both currencies, read
        with the date and the company in the context, as the ledger converts): company-currency
        units per invoice-currency unit; None where either currency or its rate is missing.
        Cached per run by (company, currencies, date)."""
        company = self._company(folder)
        key = (company, currency.upper(), company_currency.upper(), date)
        if key not in self._rates:
            ids = [self._currency_id(currency), self._currency_id(company_currency)]
            value = None
            if None not in ids:
                rows = self.client.read(
                    "currency.currency", ids, ["rate"], context={"date": date, "company": company}
                )
                rates = {row["id"]: _rate(row.get("rate")) for row in rows}
                invoice_rate, company_rate = rates.get(ids[0]), rates.get(ids[1])
                if invoice_rate and company_rate:
                    value = (company_rate / invoice_rate).quantize(Decimal("1e-10"))
            self._rates[key] = value
        return self._rates[key]


def _rate(value: Any) -> Decimal | None:
    """A rate as the client decodes it (a Decimal), None if absent or not positive."""
    try:
        rate = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return rate if rate is not None and rate.is_finite() and rate > 0 else None
