"""Tryton target lookups: folders (companies), journals, accounts, VAT codes (taxes), periods
and currencies, each read once per target and kept.

- Folder: a ``company.company`` (its id as a string). Every call runs with that company in the
  context, so the user's company rules apply.
- VAT code: the ``account.tax`` id as a string (see :mod:`connectors.providers.tryton.target`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connectors.canonical import Account, AccountKind, Direction, Folder, Journal, VatCode
from connectors.errors import ErrorCode, InvsyncError
from connectors.providers.tryton.client import TrytonConnection

JOURNAL_KINDS = {"revenue": "sales", "expense": "purchases"}
TAX_GROUP_DIRECTIONS = {"sale": Direction.SALES, "purchase": Direction.PURCHASES}
# The flags of an account's type (account.account.type) that say its kind, read with the accounts.
ACCOUNT_TYPE_FLAGS = ("receivable", "payable", "revenue", "expense")


@dataclass(frozen=True)
class AccountRow:
    id: int
    code: str
    name: str
    has_type: bool
    closed: bool
    active: bool
    party_required: bool
    kind: AccountKind = AccountKind.UNKNOWN


@dataclass(frozen=True)
class PeriodRow:
    id: int
    name: str
    start: dt.date
    end: dt.date
    state: str


class TrytonLookups(TrytonConnection):
    """What the target reads of the ledger's set-up, cached per target (the caches are set up by
    :class:`~connectors.providers.tryton.target.TrytonTarget`)."""

    _accounts: dict[int, dict[str, AccountRow]]
    _periods: dict[int, list[PeriodRow]]
    _company_currencies: dict[int, str]
    _journals: dict[str, int] | None
    _taxes: dict[int, dict[str, dict[str, Any]]]
    _currencies: dict[str, int]

    @staticmethod
    def _company(folder: str) -> int:
        try:
            company = int(str(folder).strip())
        except (TypeError, ValueError):
            company = 0
        if company <= 0:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"{folder!r} is not a Tryton company id: choose the flow's folder again.",
                field="folder",
            )
        return company

    @staticmethod
    def _context(company: int, **extra: Any) -> dict[str, Any]:
        return {"company": company, "companies": [company], **extra}

    # -- lookups -----------------------------------------------------------------------------

    def list_folders(self) -> list[Folder]:
        rows = self.client.search_read(
            "company.company", [], ["party.name", "currency.code"], order=[("id", "ASC")]
        )
        return [
            Folder(
                str(row["id"]),
                (row.get("party.") or {}).get("name") or f"Company {row['id']}",
                (row.get("currency.") or {}).get("code") or "EUR",
            )
            for row in rows
        ]

    def list_journals(self, folder: str) -> list[Journal]:
        company = self._company(folder)
        rows = self.client.search_read(
            "account.journal",
            [],
            ["code", "name", "type"],
            order=[("code", "ASC")],
            context=self._context(company),
        )
        return [
            Journal(
                row["code"],
                row.get("name") or "",
                JOURNAL_KINDS.get(row.get("type"), row.get("type") or ""),
            )
            for row in rows
            if row.get("code")
        ]

    def list_accounts(self, folder: str) -> list[Account]:
        rows = self._account_rows(self._company(folder)).values()
        return [
            Account(row.code, row.name, active=row.active and not row.closed, kind=row.kind)
            for row in sorted(rows, key=lambda r: r.code)
            if row.has_type
        ]

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        taxes = self._tax_rows(self._company(folder))
        codes = []
        for tax in sorted(taxes.values(), key=lambda t: t["id"]):
            if tax.get("childs") or tax.get("type") == "none":
                continue
            rate = None
            if tax.get("type") == "percentage" and tax.get("rate") is not None:
                rate = (Decimal(tax["rate"]) * 100).normalize()
                rate = rate.quantize(Decimal(1)) if rate == rate.to_integral() else rate
            account = (tax.get("invoice_account.") or {}).get("code")
            codes.append(
                VatCode(
                    str(tax["id"]),
                    rate,
                    _tax_label(tax),
                    account or None,
                    _tax_direction(tax, taxes),
                )
            )
        return codes

    def _account_rows(self, company: int) -> dict[str, AccountRow]:
        if company not in self._accounts:
            rows = self.client.search_read(
                "account.account",
                [("company", "=", company)],
                ["code", "name", "type", "closed", "active", "party_required",
                 *(f"type.{flag}" for flag in ACCOUNT_TYPE_FLAGS)],
                context=self._context(company, active_test=False),
            )  # fmt: skip
            self._accounts[company] = {
                row["code"]: AccountRow(
                    id=row["id"],
                    code=row["code"],
                    name=row.get("name") or "",
                    has_type=row.get("type") is not None,
                    closed=bool(row.get("closed")),
                    active=bool(row.get("active", True)),
                    party_required=bool(row.get("party_required")),
                    kind=_account_kind(row),
                )
                for row in rows
                if row.get("code")
            }
        return self._accounts[company]

    def _tax_rows(self, company: int) -> dict[int, dict[str, Any]]:
        if company not in self._taxes:
            rows = self.client.search_read(
                "account.tax",
                [("company", "=", company)],
                ["name", "type", "rate", "amount", "parent", "childs", "group.kind",
                 "invoice_account.code", "start_date", "end_date"],
                context=self._context(company, active_test=False),
            )  # fmt: skip
            self._taxes[company] = {row["id"]: row for row in rows}
        return self._taxes[company]

    def _journal_ids(self) -> dict[str, int]:
        if self._journals is None:
            rows = self.client.search_read(
                "account.journal", [], ["code"], context={"active_test": False}
            )
            self._journals = {row["code"]: row["id"] for row in rows if row.get("code")}
        return self._journals

    def _period_rows(self, company: int) -> list[PeriodRow]:
        if company not in self._periods:
            rows = self.client.search_read(
                "account.period",
                [("company", "=", company), ("type", "=", "standard")],
                # The company's currency comes along (no call of its own): every debit and
                # credit of a move is in it, whatever the flow believes.
                ["name", "start_date", "end_date", "state", "company.currency.code"],
                context=self._context(company),
            )
            for row in rows:
                code = ((row.get("company.") or {}).get("currency.") or {}).get("code")
                if code:
                    self._company_currencies[company] = str(code).upper()
                    break
            self._periods[company] = [
                PeriodRow(row["id"], row.get("name") or "", row["start_date"], row["end_date"],
                           row.get("state") or "open")
                for row in rows
            ]  # fmt: skip
        return self._periods[company]

    def _currency_id(self, code: str) -> int | None:
        code = code.upper()
        if code not in self._currencies:
            rows = self.client.search_read(
                "currency.currency", [("code", "=", code)], ["code"], limit=1,
                context={"active_test": False},
            )  # fmt: skip
            if not rows:
                return None
            self._currencies[code] = rows[0]["id"]
        return self._currencies[code]


def _account_kind(row: dict[str, Any]) -> AccountKind:
    """An account's kind from its type's flags. A receivable or payable type on an account that
    takes no party (the French chart types its VAT accounts 445 so) is no third-party account."""
    if row.get("type") is None:
        return AccountKind.UNKNOWN
    flags = row.get("type.") or {}
    if flags.get("receivable") and row.get("party_required"):
        return AccountKind.RECEIVABLE
    if flags.get("payable") and row.get("party_required"):
        return AccountKind.PAYABLE
    if flags.get("revenue"):
        return AccountKind.REVENUE
    if flags.get("expense"):
        return AccountKind.EXPENSE
    return AccountKind.OTHER


def _tax_label(tax: dict[str, Any]) -> str:
    name = tax.get("name") or f"Tax {tax['id']}"
    start, end = tax.get("start_date"), tax.get("end_date")
    if start and end:
        return f"{name} ({start.isoformat()} – {end.isoformat()})"
    if end:
        return f"{name} (until {end.isoformat()})"
    if start:
        return f"{name} (from {start.isoformat()})"
    return name


def _tax_direction(tax: dict[str, Any], taxes: dict[int, dict[str, Any]]) -> Direction | None:
    """The tax group's kind, inherited from the nearest ancestor that has a group."""
    seen: set[int] = set()
    current: dict[str, Any] | None = tax
    while current is not None and current["id"] not in seen:
        seen.add(current["id"])
        kind = (current.get("group.") or {}).get("kind")
        if kind:
            return TAX_GROUP_DIRECTIONS.get(kind)
        current = taxes.get(current.get("parent")) if current.get("parent") else None
    return None
