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
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from connectors.base import (
    AccountingTarget,
    AuthKind,
    ConnectionConfig,
    EntryResult,
    EntryToWrite,
    SettingField,
    http_url,
)
from connectors.canonical import (
    Account,
    Attachment,
    Direction,
    EntryLine,
    EntryRef,
    Folder,
    Journal,
    Partner,
    Posting,
    TargetPartner,
    TaxRole,
    VatCode,
)
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.providers.tryton.client import (
    TRANSPORT_SETTINGS_FIELDS,
    TrytonClient,
    TrytonConnection,
    TrytonError,
    TrytonWarning,
    cut,
)
from connectors.providers.tryton.source import tryton_account_identity
from connectors.retry import Delivery, Verdict

logger = logging.getLogger(__name__)

SETTINGS_FIELDS = (
    SettingField(
        "url",
        "Server URL",
        "The Tryton server's address, e.g. http://127.0.0.1:8000/",
        check=http_url,
        addresses_credentials=True,
    ),
    SettingField("database", "Database", "The Tryton database name.", addresses_credentials=True),
    *TRANSPORT_SETTINGS_FIELDS,
)
JOURNAL_KINDS = {"revenue": "sales", "expense": "purchases"}
TAX_GROUP_DIRECTIONS = {"sale": Direction.SALES, "purchase": Direction.PURCHASES}
FIND_CHUNK = 50  # external ids per search
_KEY = re.compile(r"\[([^\[\]]+)\]\s*$")
_LIKE_WILDCARDS = re.compile(r"[%_\\\[\]]")


def move_description(posting: Posting) -> str:
    """The move's description: what people read, then the key invsync finds it again by."""
    reference = (posting.reference or "").strip()
    return f"{reference} [{posting.external_id}]" if reference else f"[{posting.external_id}]"


def external_id_of(description: str | None) -> str | None:
    match = _KEY.search(description or "")
    return match.group(1) if match else None


def _key_pattern(external_id: str) -> str:
    # LIKE escaping differs between backends; widening every special character to the one-char
    # wildcard never misses a match, and the exact comparison happens on our side.
    return f"%[{_LIKE_WILDCARDS.sub('_', external_id)}]"


@dataclass(frozen=True)
class _AccountRow:
    id: int
    code: str
    name: str
    has_type: bool
    closed: bool
    active: bool
    party_required: bool


@dataclass(frozen=True)
class _PeriodRow:
    id: int
    name: str
    start: dt.date
    end: dt.date
    state: str


class _EntryRefused(Exception):
    def __init__(self, error: InvsyncError) -> None:
        super().__init__(error.message)
        self.error = error


class TrytonTarget(TrytonConnection, AccountingTarget):
    key = "tryton"
    name = "Tryton"
    auth_kinds = (AuthKind.CREDENTIALS,)
    settings_fields = SETTINGS_FIELDS
    supports_draft_entries = True
    supports_attachments = True
    supports_partner_creation = True
    supports_batch_writes = True
    vat_codes_name_accounts: ClassVar[bool] = True

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        # The same server and database as a source connection: one Tryton account.
        return tryton_account_identity(settings)

    def __init__(self, config: ConnectionConfig, *, client: TrytonClient | None = None) -> None:
        super().__init__(config)
        self._client = client
        self._accounts: dict[int, dict[str, _AccountRow]] = {}
        self._periods: dict[int, list[_PeriodRow]] = {}
        self._company_currencies: dict[int, str] = {}  # read with the periods
        self._journals: dict[str, int] | None = None
        self._taxes: dict[int, dict[str, dict[str, Any]]] = {}
        self._currencies: dict[str, int] = {}
        self._typed_party_codes: bool | None = None
        self._countries: dict[str, int | None] = {}

    # -- plumbing ----------------------------------------------------------------------------

    def _probe(self, client: TrytonClient) -> str:
        companies = client.search_read("company.company", [], ["rec_name"], limit=10)
        names = ", ".join(c["rec_name"] for c in companies) or "none visible"
        return f"companies: {names}."

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

    def list_accounts(self, folder: str, classes: Sequence[str] = ()) -> list[Account]:
        rows = self._account_rows(self._company(folder)).values()
        prefixes = tuple(str(c) for c in classes if str(c))
        return [
            Account(row.code, row.name, active=row.active and not row.closed)
            for row in sorted(rows, key=lambda r: r.code)
            if row.has_type and (not prefixes or row.code.startswith(prefixes))
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

    def _account_rows(self, company: int) -> dict[str, _AccountRow]:
        if company not in self._accounts:
            rows = self.client.search_read(
                "account.account",
                [("company", "=", company)],
                ["code", "name", "type", "closed", "active", "party_required"],
                context=self._context(company, active_test=False),
            )
            self._accounts[company] = {
                row["code"]: _AccountRow(
                    id=row["id"],
                    code=row["code"],
                    name=row.get("name") or "",
                    has_type=row.get("type") is not None,
                    closed=bool(row.get("closed")),
                    active=bool(row.get("active", True)),
                    party_required=bool(row.get("party_required")),
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

    def _period_rows(self, company: int) -> list[_PeriodRow]:
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
                _PeriodRow(row["id"], row.get("name") or "", row["start_date"], row["end_date"],
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

    # -- partners ----------------------------------------------------------------------------

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        return self.find_partner_candidates_many(folder, [partner])[partner.source_id]

    def find_partner_candidates_many(
        self, folder: str, partners: Sequence[Partner]
    ) -> dict[str, list[TargetPartner]]:
        """Three calls for any number of partners: the parties any partner's identifiers or code
        find, the names of the parties any partner's name word finds (every one, no limit: a
        common word must not push the right party out of a truncated list), and the details of
        the parties kept. Each partner gets the identifier hits and its own name hits (those
        whose name holds all its words first, at most NAME_CANDIDATES others)."""
        if not partners:
            return {}
        context = self._context(self._company(folder))
        codes: set[str] = set()
        sirens: set[str] = set()
        auxes: set[str] = set()
        tokens: dict[str, str] = {}
        for partner in partners:
            partner_codes, partner_sirens = _identifier_keys(partner)
            codes |= partner_codes
            sirens |= partner_sirens
            if (partner.auxiliary_account or "").strip():
                auxes.add(partner.auxiliary_account.strip())
            if token := _name_token(partner.name):
                tokens[partner.source_id] = token
        clauses: list[Any] = []
        if codes:
            clauses.append(("identifiers.code_compact", "in", sorted(codes)))
        clauses += [("identifiers.code_compact", "like", f"{siren}%") for siren in sorted(sirens)]
        if auxes and self._party_codes_are_typed():
            clauses.append(("code", "in", sorted(auxes)))
        shared: set[int] = set()
        if clauses:
            rows = self.client.search_read("party.party", ["OR", *clauses], ["id"], context=context)
            shared = {row["id"] for row in rows}
        named: dict[str, list[int]] = {}
        if tokens:
            patterns = sorted({p for token in tokens.values() for p in _name_patterns(token)})
            name_clauses = [("name", "ilike", f"%{pattern}%") for pattern in patterns]
            rows = self.client.search_read(
                "party.party", ["OR", *name_clauses], ["id", "name"], context=context
            )
            folded = [(row["id"], _fold(row.get("name") or "")) for row in rows]
            for partner in partners:
                token = tokens.get(partner.source_id)
                if token:
                    named[partner.source_id] = _name_hits(partner.name, _fold(token), folded)
        wanted = sorted(shared.union(*named.values()))
        details = {int(p.id): p for p in self._target_partners(wanted, context)}
        common = [details[i] for i in sorted(shared) if i in details]
        return {
            partner.source_id: common
            + [
                details[i]
                for i in named.get(partner.source_id, [])
                if i in details and i not in shared
            ]
            for partner in partners
        }

    def _target_partners(self, ids: Sequence[int], context: dict[str, Any]) -> list[TargetPartner]:
        if not ids:
            return []
        rows = self.client.read(
            "party.party",
            ids,
            ["name", "code", "identifiers.type", "identifiers.code_compact",
             "account_receivable.code", "account_payable.code"],
            context=context,
        )  # fmt: skip
        partners = []
        for row in rows:
            vat, company_numbers = [], []
            for identifier in row.get("identifiers.") or []:
                kind, code = identifier.get("type") or "", identifier.get("code_compact") or ""
                if not code:
                    continue
                if kind.endswith("_vat"):
                    vat.append(code)
                elif kind in ("fr_siren", "fr_siret"):
                    company_numbers.append(code)
            accounts = [row.get("code") if self._party_codes_are_typed() else None] + [
                (row.get(name) or {}).get("code")
                for name in ("account_receivable.", "account_payable.")
            ]
            partners.append(
                TargetPartner(
                    str(row["id"]),
                    row.get("name") or "",
                    vat_numbers=tuple(vat),
                    company_numbers=tuple(company_numbers),
                    auxiliary_accounts=tuple(dict.fromkeys(a for a in accounts if a)),
                )
            )
        return partners

    def _party_codes_are_typed(self) -> bool:
        """Whether people type party codes (no party sequence): only then can a code be an
        auxiliary account rather than Tryton's own running number."""
        if self._typed_party_codes is None:
            rows = self.client.read("party.configuration", [1], ["party_sequence"])
            self._typed_party_codes = not (rows and rows[0].get("party_sequence"))
        return self._typed_party_codes

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        """Active parties only: Tryton deactivates (rather than deletes) a party with moves, and
        an archived party is one the accountant no longer wants used."""
        company = self._company(folder)
        wanted = sorted({int(i) for i in ids if str(i).strip().isdigit()})
        if not wanted:
            return set()
        rows = self.client.search_read(
            "party.party", [("id", "in", wanted)], ["id"], context=self._context(company)
        )
        return {str(row["id"]) for row in rows}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        """Create the party with the identifiers python-stdnum validates; an invalid VAT or
        company number is left out (Tryton would refuse the whole party), never fatal."""
        context = self._context(self._company(folder))
        values, sirets = self._party_values(partner)
        try:
            (party_id,) = self.client.create("party.party", [values], context=context)
        except TrytonError as error:
            raise _rejected(
                error, f"Tryton refused to create the party {values['name']!r}"
            ) from None
        if sirets:
            self._add_siret(party_id, sirets[0], context)
        created = self._target_partners([party_id], context)
        return created[0] if created else TargetPartner(str(party_id), values["name"])

    def create_partners(
        self, folder: str, partners: Sequence[tuple[Partner, Direction]]
    ) -> list[TargetPartner | InvsyncError]:
        """One call creates every party (and one more adds their SIRETs, one reads them back).
        Should Tryton refuse the batch, the parties are created one by one, so that only the
        refused one fails."""
        if len(partners) <= 1:
            return super().create_partners(folder, partners)
        context = self._context(self._company(folder))
        results: list[TargetPartner | InvsyncError | None] = [None] * len(partners)
        batch: list[tuple[int, dict[str, Any], list[str]]] = []
        for index, (partner, _) in enumerate(partners):
            try:
                values, sirets = self._party_values(partner)
            except InvsyncError as error:
                results[index] = error
                continue
            batch.append((index, values, sirets))
        if batch:
            try:
                ids = self.client.create(
                    "party.party", [values for _, values, _ in batch], context=context
                )
            except TrytonError as error:
                if not _is_refusal(error):
                    raise
                return super().create_partners(folder, partners)
            with_siret = [
                (party_id, sirets[0])
                for party_id, (_, _, sirets) in zip(ids, batch, strict=True)
                if sirets
            ]
            if with_siret:
                self._add_sirets(with_siret, context)
            details = {p.id: p for p in self._target_partners(ids, context)}
            for party_id, (index, values, _) in zip(ids, batch, strict=True):
                results[index] = details.get(str(party_id)) or TargetPartner(
                    str(party_id), values["name"]
                )
        return [result for result in results if result is not None]

    def _party_values(self, partner: Partner) -> tuple[dict[str, Any], list[str]]:
        """The values of a new party and the SIRETs to add once it has its address."""
        name = (partner.name or "").strip()
        if not name:
            raise InvsyncError(
                ErrorCode.PARTNER_VALIDATION, "A partner without a name cannot be created."
            )
        identifiers = _valid_identifiers(partner)
        # Tryton ties a SIRET to an address: it is added once the party and its address exist.
        sirets = [code for kind, code in identifiers if kind == "fr_siret"]
        party_identifiers = [(kind, code) for kind, code in identifiers if kind != "fr_siret"]
        address: dict[str, Any] = {}
        country = self._country_id(partner.country) if partner.country else None
        if country is not None:
            address["country"] = country
        values: dict[str, Any] = {"name": name, "addresses": [["create", [address]]]}
        if party_identifiers:
            values["identifiers"] = [
                ["create", [{"type": kind, "code": code} for kind, code in party_identifiers]]
            ]
        if partner.email and "@" in partner.email:
            values["contact_mechanisms"] = [
                ["create", [{"type": "email", "value": partner.email.strip()}]]
            ]
        return values, sirets

    def _add_sirets(self, sirets: list[tuple[int, str]], context: dict[str, Any]) -> None:
        """Each party's SIRET on its first address, in one call (one by one if refused)."""
        rows = self.client.read(
            "party.party", [party_id for party_id, _ in sirets], ["addresses"], context=context
        )
        addresses = {row["id"]: (row.get("addresses") or [None])[0] for row in rows}
        try:
            self.client.create(
                "party.identifier",
                [{"party": party_id, "address": addresses.get(party_id), "type": "fr_siret",
                  "code": siret} for party_id, siret in sirets],
                context=context,
            )  # fmt: skip
        except TrytonError as error:
            if not _is_refusal(error):
                raise
            for party_id, siret in sirets:
                self._add_siret(party_id, siret, context)

    def _add_siret(self, party_id: int, siret: str, context: dict[str, Any]) -> None:
        try:
            (party,) = self.client.read("party.party", [party_id], ["addresses"], context=context)
            self.client.create(
                "party.identifier",
                [{"party": party_id, "address": party["addresses"][0], "type": "fr_siret",
                  "code": siret}],
                context=context,
            )  # fmt: skip
        except TrytonError as error:
            if not _is_refusal(error):
                raise
            # The party stands with its SIREN; the SIRET is a detail a person can add.
            logger.warning("tryton: SIRET not added to party %s: %s", party_id, error)

    def _country_id(self, code: str) -> int | None:
        code = code.strip().upper()
        if len(code) != 2:
            return None
        if code not in self._countries:
            rows = self.client.search_read(
                "country.country", [("code", "=", code)], ["id"], limit=1
            )
            self._countries[code] = rows[0]["id"] if rows else None
        return self._countries[code]

    # -- entries -----------------------------------------------------------------------------

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        """Write the entries, never one whose external id is already in the folder.

        Safe to call again for the same entries, and called again here when a write's outcome
        is unknown (a timeout, or a connection dropped after the request went out: the client
        does not send writes again): each attempt first looks up the moves already written by
        their external ids and completes them (posts a draft that should be posted, attaches a
        missing file) instead of writing them again. The attempts, their waits (at least the
        timed-out wait again, so that a request still running on the server ends before the
        lookup) and their total are bounded by the connection's retry policy; when they run
        out, the error propagates and the caller resolves the entries with find_entries."""
        company = self._company(folder)
        return self.client.retrier.call(
            lambda: self._create_entries_once(company, entries),
            retry_on=TrytonError,
            classify=_write_verdict,
            idempotent=True,  # as a whole: it looks up before it writes
            what=f"tryton: writing {len(entries)} entries",
        )

    def _create_entries_once(
        self, company: int, entries: Sequence[EntryToWrite]
    ) -> list[EntryResult]:
        context = self._context(company)
        results: dict[int, EntryResult] = {}
        existing = self._existing_moves(company, [e.posting.external_id for e in entries])
        existing_states = {row["id"]: row.get("state") for row, _ in existing.values()}
        to_write: list[tuple[int, EntryToWrite, dict[str, Any]]] = []
        # Moves an earlier attempt wrote but did not finish: (index, entry, move id).
        unposted: list[tuple[int, EntryToWrite, int]] = []
        unattached: list[tuple[int, EntryToWrite, int]] = []
        for index, entry in enumerate(entries):
            external_id = entry.posting.external_id
            if not external_id:
                results[index] = EntryResult(
                    external_id,
                    error=InvsyncError(ErrorCode.UNEXPECTED, "The entry has no external id."),
                )
            elif external_id in existing:
                # Written by an earlier attempt: never write it twice; finish it if needed.
                row, attached = existing[external_id]
                if row.get("state") == "draft" and not entry.posting.draft:
                    unposted.append((index, entry, row["id"]))
                elif entry.attachment is not None and not attached:
                    unattached.append((index, entry, row["id"]))
                else:
                    results[index] = EntryResult(external_id, ref=_ref(row, attached))
            else:
                try:
                    to_write.append((index, entry, self._move_values(company, entry.posting)))
                except _EntryRefused as refused:
                    results[index] = EntryResult(external_id, error=refused.error)

        written: list[tuple[int, EntryToWrite, int]] = []
        if to_write:
            try:
                move_ids = self.client.create(
                    "account.move", [values for _, _, values in to_write], context=context
                )
            except TrytonError as error:
                what = (
                    f"the entry for {to_write[0][1].posting.reference}"
                    if len(to_write) == 1
                    else f"a batch of {len(to_write)} entries"
                )
                raise _rejected(error, f"Tryton refused {what}") from None
            written = [
                (index, entry, move_id)
                for (index, entry, _), move_id in zip(to_write, move_ids, strict=True)
            ]
        if unposted:
            logger.info("tryton: posting %d moves an interrupted write left draft", len(unposted))
        written += unposted
        refused = self._post(written, context)
        for index, error in refused.items():
            results[index] = EntryResult(entries[index].posting.external_id, error=error)
        written = [w for w in written if w[0] not in refused]
        posted = {move_id for _, entry, move_id in written if not entry.posting.draft}
        posted |= {move_id for _, _, move_id in unattached
                   if existing_states.get(move_id) == "posted"}  # fmt: skip
        written += unattached
        had_file = {row["id"] for row, attached in existing.values() if attached}
        files = [
            (move_id, entry.attachment)
            for _, entry, move_id in written
            if entry.attachment is not None and move_id not in had_file
        ]
        attached = self._attach_all(files, context) | had_file
        numbers = self._numbers([move_id for _, _, move_id in written], context)
        for index, entry, move_id in written:
            results[index] = EntryResult(
                entry.posting.external_id,
                ref=EntryRef(
                    str(move_id), numbers.get(move_id, ""), move_id in attached, move_id in posted
                ),
            )
        return [results[index] for index in range(len(entries))]

    def _post(
        self, written: list[tuple[int, EntryToWrite, int]], context: dict[str, Any]
    ) -> dict[int, InvsyncError]:
        """Post the moves that are not drafts. When the batch is refused, post one by one; a
        move that cannot be posted is deleted (it is still a draft) and its entry refused. Any
        other failure deletes the new moves (best effort) and raises."""
        to_post = [(i, entry, move_id) for i, entry, move_id in written if not entry.posting.draft]
        if not to_post:
            return {}
        try:
            self._post_moves([move_id for _, _, move_id in to_post], context)
            return {}
        except TrytonError as error:
            if not _is_refusal(error):
                self._discard([move_id for _, _, move_id in written], context)
                raise _rejected(error, "Tryton refused to post the entries") from None
            if len(to_post) == 1:
                index, entry, move_id = to_post[0]
                self._discard([move_id], context)
                return {index: _rejected(error, _post_refused(entry))}
        refused: dict[int, InvsyncError] = {}
        for index, entry, move_id in to_post:
            try:
                self._post_moves([move_id], context)
            except TrytonError as error:
                if not _is_refusal(error):
                    raise _rejected(error, "Tryton refused to post the entries") from None
                self._discard([move_id], context)
                refused[index] = _rejected(error, _post_refused(entry))
        return refused

    def _post_moves(self, move_ids: list[int], context: dict[str, Any]) -> None:
        self.client.execute("account.move", "post", move_ids, context=context, acknowledge=True)

    def _discard(self, move_ids: list[int], context: dict[str, Any]) -> None:
        """Delete draft moves this call created and could not post."""
        try:
            self.client.delete("account.move", move_ids, context=context)
        except ConnectorError as error:
            logger.warning("tryton: draft moves %s left after a failure: %s", move_ids, error)

    def _attach_all(self, items: list[tuple[int, Attachment]], context: dict[str, Any]) -> set[int]:
        """Attach the files; returns the move ids that got theirs. A file Tryton refuses is
        logged and left out (the entry stands and can be re-attached); other failures raise,
        and the caller then resolves what was written with find_entries."""
        if not items:
            return set()
        try:
            self.client.create(
                "ir.attachment", [_attachment_values(m, a) for m, a in items], context=context
            )
            return {move_id for move_id, _ in items}
        except TrytonError as error:
            if not _is_refusal(error):
                raise
            if len(items) == 1:
                logger.warning("tryton: file refused for move %s: %s", items[0][0], error)
                return set()
        attached: set[int] = set()
        for move_id, attachment in items:
            try:
                self.client.create(
                    "ir.attachment", [_attachment_values(move_id, attachment)], context=context
                )
            except TrytonError as error:
                if not _is_refusal(error):
                    raise
                logger.warning("tryton: file refused for move %s: %s", move_id, error)
                continue
            attached.add(move_id)
        return attached

    def _numbers(self, move_ids: Sequence[int], context: dict[str, Any]) -> dict[int, str]:
        if not move_ids:
            return {}
        rows = self.client.read("account.move", move_ids, ["number"], context=context)
        return {row["id"]: row.get("number") or "" for row in rows}

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        found = self._existing_moves(self._company(folder), external_ids)
        return {key: _ref(row, attached) for key, (row, attached) in found.items()}

    def _existing_moves(
        self, company: int, external_ids: Sequence[str]
    ) -> dict[str, tuple[dict[str, Any], bool]]:
        """The moves written for these external ids: their row (id, number, state) and whether
        they have a file."""
        context = self._context(company)
        wanted = list(dict.fromkeys(i for i in external_ids if i))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), FIND_CHUNK):
            chunk = wanted[start : start + FIND_CHUNK]
            likes = [("description", "like", _key_pattern(i)) for i in chunk]
            rows = self.client.search_read(
                "account.move",
                [("company", "=", company), ["OR", *likes]],
                ["number", "description", "state", "origin"],
                order=[("id", "ASC")],
                context=context,
            )
            keys = set(chunk)
            for row in rows:
                key = external_id_of(row.get("description"))
                if key not in keys or str(row.get("origin") or "").startswith("account.move,"):
                    continue
                best = found.get(key)
                # Prefer a posted move over a draft copy, then the oldest.
                if best is None or (best.get("state") != "posted" and row.get("state") == "posted"):
                    found[key] = row
        if not found:
            return {}
        attached = self._attached_moves([row["id"] for row in found.values()], context)
        return {key: (row, row["id"] in attached) for key, row in found.items()}

    def _attached_moves(self, move_ids: Iterable[int], context: dict[str, Any]) -> set[int]:
        resources = [f"account.move,{i}" for i in move_ids]
        rows = self.client.search_read(
            "ir.attachment", [("resource", "in", resources)], ["resource"], context=context
        )
        attached = set()
        for row in rows:
            resource = row.get("resource") or ""
            if isinstance(resource, str) and "," in resource:
                attached.add(int(resource.rsplit(",", 1)[1]))
        return attached

    def attach(self, folder: str, ref: EntryRef, attachment: Attachment) -> None:
        company = self._company(folder)
        try:
            self.client.create(
                "ir.attachment",
                [_attachment_values(int(ref.id), attachment)],
                context=self._context(company),
            )
        except TrytonError as error:
            raise _rejected(error, f"Tryton refused the file {attachment.filename!r}") from None

    # -- building a move ---------------------------------------------------------------------

    def _move_values(self, company: int, posting: Posting) -> dict[str, Any]:
        if not posting.lines or posting.total_debit != posting.total_credit:
            # The engine never produces one; Tryton on SQLite would even post it.
            raise _refuse(
                ErrorCode.TARGET_REJECTED,
                f"The entry for {posting.reference} does not balance ({posting.total_debit} "
                f"debit, {posting.total_credit} credit).",
                "lines",
            )
        journal_id = self._journal_ids().get(posting.journal)
        if journal_id is None:
            raise _refuse(
                ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
                f"Tryton has no journal {posting.journal!r}.",
                "journals",
            )
        period = self._period(company, posting.date)
        ledger_currency = self._company_currencies.get(company)
        if ledger_currency and ledger_currency != posting.company_currency.upper():
            raise _refuse(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"Tryton's company books in {ledger_currency}, but the flow's company currency is "
                f"{posting.company_currency}: the amounts would be read as {ledger_currency}. "
                "Choose the flow's accounting folder again (it takes the company's currency), "
                "then retry.",
                "company_currency",
            )
        foreign = posting.currency and posting.currency.upper() != posting.company_currency.upper()
        currency_id = None
        if foreign:
            currency_id = self._currency_id(posting.currency)
            if currency_id is None:
                raise _refuse(
                    ErrorCode.TARGET_REJECTED,
                    f"Tryton has no currency {posting.currency!r}: add it in Tryton.",
                    "currency",
                )
        sales = posting.invoice_type.direction is Direction.SALES
        lines = [
            self._line_values(company, posting, line, sales, currency_id) for line in posting.lines
        ]
        return {
            "company": company,
            "journal": journal_id,
            "period": period.id,
            "date": posting.date,
            "description": move_description(posting),
            "lines": [["create", lines]],
        }

    def _period(self, company: int, date: dt.date) -> _PeriodRow:
        periods = [p for p in self._period_rows(company) if p.start <= date <= p.end]
        if not periods:
            raise _refuse(
                ErrorCode.TARGET_REJECTED,
                f"Tryton has no period for {date.isoformat()}: create the fiscal year and its "
                "periods in Tryton, then retry.",
                "date",
            )
        period = periods[0]
        if period.state != "open":
            raise _refuse(
                ErrorCode.TARGET_REJECTED,
                f"Tryton's period {period.name} ({date.isoformat()}) is {period.state}: re-open "
                "it in Tryton or change the entry's date, then retry.",
                "date",
            )
        return period

    def _line_values(
        self,
        company: int,
        posting: Posting,
        line: EntryLine,
        sales: bool,
        currency_id: int | None,
    ) -> dict[str, Any]:
        account = self._account_rows(company).get(line.account or "")
        if account is None:
            raise _refuse(
                ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                f"Tryton has no account {line.account!r}.",
                "account",
            )
        if not account.has_type:
            raise _refuse(
                ErrorCode.TARGET_REJECTED,
                f"Tryton's account {account.code} is a view account (no type): it cannot take "
                "entry lines. Use one of its sub-accounts.",
                "account",
            )
        if account.closed or not account.active:
            raise _refuse(
                ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
                f"Tryton's account {account.code} is closed or inactive.",
                "account",
            )
        values: dict[str, Any] = {
            "account": account.id,
            "debit": line.debit,
            "credit": line.credit,
            "description": line.label,
        }
        if account.party_required:
            if not posting.partner_ref or not str(posting.partner_ref).isdigit():
                raise _refuse(
                    ErrorCode.PARTNER_NOT_FOUND,
                    f"Tryton's account {account.code} needs a party and the entry has none.",
                    "partner",
                )
            values["party"] = int(posting.partner_ref)
            values["maturity_date"] = line.maturity_date or posting.due_date or posting.date
        elif line.maturity_date:
            values["maturity_date"] = line.maturity_date
        if currency_id is not None and line.amount_currency is not None:
            values["second_currency"] = currency_id
            values["amount_second_currency"] = line.amount_currency
        if line.vat_code and line.tax_role is not None:
            tax_id = self._tax_id(company, line.vat_code)
            # Tryton signs tax lines like the invoice: positive for an invoice, negative for a
            # credit note, whichever side of the ledger the line is on.
            amount = line.credit - line.debit if sales else line.debit - line.credit
            values["tax_lines"] = [
                ["create", [{
                    "tax": tax_id,
                    "amount": amount,
                    "type": "tax" if line.tax_role is TaxRole.TAX else "base",
                }]],
            ]  # fmt: skip
        return values

    def _tax_id(self, company: int, code: str) -> int:
        taxes = self._tax_rows(company)
        tax_id = int(code) if str(code).isdigit() else None
        tax = taxes.get(tax_id) if tax_id is not None else None
        if tax is None:
            raise _refuse(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                f"Tryton has no tax {code!r} in this company.",
                "vat",
            )
        if tax.get("childs") or tax.get("type") == "none":
            raise _refuse(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                f"Tryton's tax {tax.get('name')!r} groups other taxes: map a dated child tax.",
                "vat",
            )
        return tax["id"]


# -- helpers ---------------------------------------------------------------------------------


def _refuse(code: ErrorCode, message: str, field: str) -> _EntryRefused:
    return _EntryRefused(InvsyncError(code, message, field=field))


def _ref(row: dict[str, Any], attached: bool) -> EntryRef:
    return EntryRef(
        str(row["id"]), row.get("number") or "", attached, posted=row.get("state") == "posted"
    )


def _write_verdict(error: BaseException) -> Verdict:
    """A write of unknown outcome is tried again as a whole (after the timed-out wait again);
    every other failure propagates (reads were already retried by the client)."""
    if isinstance(error, TrytonError) and error.unknown_outcome:
        return Verdict(Delivery.UNKNOWN, min_delay=error.settle)
    return Verdict(Delivery.FINAL)


def _is_refusal(error: TrytonError) -> bool:
    """Tryton refused this request on its merits (not the transport, the login or the rights)."""
    return error.code == ErrorCode.TARGET_REJECTED and not isinstance(error, TrytonWarning)


def _post_refused(entry: EntryToWrite) -> str:
    return f"Tryton refused to post the entry for {entry.posting.reference}"


def _rejected(error: TrytonError, what: str) -> ConnectorError:
    """Keep transport and access codes; say what was refused for the rest."""
    if error.is_transient or error.code != ErrorCode.TARGET_REJECTED:
        return error
    detail = error.detail or error.message
    return TrytonError(
        ErrorCode.TARGET_REJECTED,
        f"{what}: {cut(detail)}",
        status=error.status,
        tryton_error=error.tryton_error,
        detail=error.detail,
    )


def _attachment_values(move_id: int, attachment: Attachment) -> dict[str, Any]:
    return {
        "name": attachment.filename or f"move-{move_id}",
        "resource": f"account.move,{move_id}",
        "type": "data",
        "data": attachment.content,
    }


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


_ALNUM = re.compile(r"[^0-9A-Za-z]")
_NAME_WORDS = re.compile(r"[^\W_]{3,}")
_LEGAL_FORMS = frozenset({"sas", "sasu", "sarl", "eurl", "snc", "sci", "gmbh", "ltd", "inc",
                          "llc", "corp", "cie", "the"})  # fmt: skip


def _name_token(name: str | None) -> str:
    """The longest word of the name that is not a legal form: a broad ilike filter that finds
    "ACME Industries SAS" for "Acme Industries" (the caller applies the real rules)."""
    words = [w for w in _NAME_WORDS.findall(name or "") if w.casefold() not in _LEGAL_FORMS]
    return max(words, key=len) if words else (name or "").strip()


NAME_CANDIDATES = 100  # name hits kept per partner besides those holding all its words


def _fold(text: str) -> str:
    """Text compared without case or accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# Letters that have accented forms in the names we meet (Latin scripts), and the shortest token
# whose pattern blinds them (a shorter one would find nearly every name).
_ACCENTABLE = frozenset("aceiouAEIOUCÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÓÒÔÖÕØÚÙÛÜàâäáãåçéèêëíìîïóòôöõøúùûü")
_BLIND_FROM = 5


def _name_patterns(token: str) -> set[str]:
    """``ilike`` patterns that find ``token`` with or without accents on a server without
    PostgreSQL's unaccent: each letter that has accented forms becomes ``_`` (one character), so
    that "Hotel" finds "Hôtel" and "Générale" finds "GENERALE". They find a few more names than
    the token; :func:`_name_hits` keeps the right ones. A short token is looked up as it is and
    without its accents. (A token is made of word characters: it holds no ``%`` or ``_``.)"""
    if len(token) >= _BLIND_FROM:
        return {"".join("_" if char in _ACCENTABLE else char for char in token)}
    return {token, _fold(token)}


def _name_hits(name: str, token: str, parties: Sequence[tuple[int, str]]) -> list[int]:
    """The parties (id, folded name) whose name holds ``token``: first those holding every word
    of ``name`` that is not a legal form (a party of the same name is one of them), then at
    most NAME_CANDIDATES others."""
    words = {_fold(w) for w in _NAME_WORDS.findall(name or "") if w.casefold() not in _LEGAL_FORMS}
    full, others = [], []
    for party_id, folded in parties:
        if token not in folded:
            continue
        (full if all(word in folded for word in words) else others).append(party_id)
    return full + others[:NAME_CANDIDATES]


def _identifier_keys(partner: Partner) -> tuple[set[str], set[str]]:
    """Compact identifier codes to look up, and SIRENs whose SIRETs should match too."""
    codes: set[str] = set()
    sirens: set[str] = set()
    if partner.vat_number:
        vat = _ALNUM.sub("", partner.vat_number).upper()
        country = (partner.country or "").upper()
        if vat and not vat[:2].isalpha() and len(country) == 2:
            vat = country + vat
        if vat:
            codes.add(vat)
            if vat.startswith("FR") and len(vat) == 13 and vat[4:].isdigit():
                sirens.add(vat[4:])
    if partner.company_number:
        number = _ALNUM.sub("", partner.company_number)
        if number.isdigit() and len(number) in (9, 14):
            codes.add(number)
            sirens.add(number[:9])
    codes |= sirens
    return codes, sirens


def _valid_identifiers(partner: Partner) -> list[tuple[str, str]]:
    identifiers: list[tuple[str, str]] = []
    if partner.vat_number:
        vat = _ALNUM.sub("", partner.vat_number).upper()
        country = (partner.country or "").upper()
        if vat and not vat[:2].isalpha() and len(country) == 2:
            vat = country + vat
        # Tryton checks an eu_vat identifier with stdnum's eu.vat: other countries' numbers
        # (CH, GB, NO...) would make it refuse the whole party.
        try:
            if eu_vat.is_valid(vat):
                identifiers.append(("eu_vat", eu_vat.compact(vat)))
            else:
                logger.info("tryton: VAT number that is no valid EU number left out of a party")
        except (ValidationError, ValueError, KeyError, AttributeError):
            logger.info("tryton: unreadable VAT number left out of a new party")
    if partner.company_number:
        number = _ALNUM.sub("", partner.company_number)
        if len(number) == 14 and stdnum_siret.is_valid(number):
            identifiers.append(("fr_siren", number[:9]))
            identifiers.append(("fr_siret", number))
        elif len(number) == 9 and stdnum_siren.is_valid(number):
            identifiers.append(("fr_siren", number))
        else:
            logger.info("tryton: company number that is no valid SIRET/SIREN left out")
    return identifiers
