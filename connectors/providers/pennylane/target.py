"""Pennylane as an accounting target: each posting becomes one **ledger entry** (``POST
/ledger_entries``) in the mapped journal, on the mapped ledger accounts, its VAT on the mapped VAT
accounts, to the cent, with the invoice's PDF uploaded first (``POST /file_attachments``) and
named by the entry (``file_attachment_id``). Why a ledger entry and not a customer/supplier
invoice import: see ``docs/pennylane.md``.

Choices:

- Folder: a Pennylane company (its numeric id). A company API token reaches one company (``GET
  /me`` names it); a firm token or an OAuth2 grant reaching several acts on the company of the
  ``company_id`` setting, sent as ``X-Company-Id``.
- Accounts: ``GET /ledger_accounts``. Pennylane may hold one number several times (706 for "any"
  VAT rate and 706 for FR_200...): a number is written on its "any" row, else its first enabled
  row. Pennylane reports no account type: kinds stay ``unknown`` (invsync reads them from the
  number, ``mappings.accounts.kind_from_number``).
- VAT codes: Pennylane books VAT on accounts (no tax codes on entry lines): the VAT codes offered
  are the VAT accounts (class 445 of the French chart Pennylane keeps), each its own account;
  4456x deductible (purchases), 4457x collected (sales); the rate is read from the account's
  ``vat_rate`` (FR_200 → 20 %).
- Partners: customers (``GET /customers``) and suppliers (``GET /suppliers``), read once per
  folder and matched here on their ledger account number (auxiliary account), VAT number, SIREN
  or SIRET (a customer's ``reg_no``, a supplier's ``establishment_no``; a SIRET matches its SIREN
  on the first nine digits) and name; created with ``POST /company_customers`` or ``POST
  /suppliers``. A partner's id is ``customer:<id>`` or
  ``supplier:<id>``. The entry's third-party line is booked on the partner's own ledger account
  (its 411.../401... account): that is what Pennylane letters against the bank transaction.
- External id: Pennylane has no idempotency key and filters ledger entries on journal, date,
  created_at and updated_at only. The entry's ``label`` carries ``"<reference> [<external id>]"``
  (the invoice number stays the ``piece_number``). Before any write the entries the batch's
  journals hold on its dates are read once per run (a listing per date for one or two dates, else
  of the dates' range) and compared exactly; :meth:`find_entries` (after a crash, without a date)
  reads the company's entries newest first (journals say no type: sales and purchase journals
  cannot be told apart) and stops once every id asked is found. A write whose answer was lost
  (timeout, dropped connection, 5xx) is looked up before it is sent again.
- Drafts: Pennylane's API writes ledger entries as they are (no draft state to write): no drafts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import (
    AccountingTarget,
    AuthKind,
    ConnectionConfig,
    EntryResult,
    EntryToWrite,
)
from connectors.canonical import (
    Account,
    Attachment,
    ConnectionCheck,
    Direction,
    EntryRef,
    Folder,
    Journal,
    Partner,
    Posting,
    TargetPartner,
    VatCode,
)
from connectors.errors import CONNECTION_CODES, ErrorCode, InvsyncError
from connectors.http import HttpError
from connectors.messages import Msg, json_params
from connectors.providers.pennylane.client import (
    DEFAULT_API_URL,
    RATE_LIMIT,
    SETTINGS_FIELDS,
    PennylaneClient,
    client_from_config,
)

_LABEL_KEY = re.compile(r"\[([^\[\]]+)\]\s*$")
_VAT_RATE = re.compile(r"^[A-Z]{2}_(\d+)$")
# Journal types Pennylane reports, in invsync's words.
_JOURNAL_KINDS = {"sale": "sales", "sales": "sales", "purchase": "purchases",
                  "purchases": "purchases"}  # fmt: skip
CUSTOMER, SUPPLIER = "customer", "supplier"


def entry_label(posting: Posting) -> str:
    return f"{posting.reference} [{posting.external_id}]"


def label_key(label: str | None) -> str | None:
    """The external id an entry's label carries (None: not one invsync wrote)."""
    match = _LABEL_KEY.search(label or "")
    return match.group(1) if match else None


def vat_rate(value: Any) -> Decimal | None:
    """Pennylane's ``vat_rate`` code as a percentage: FR_200 → 20, FR_55 → 5.5 (None: "any",
    "exempt" or unknown)."""
    match = _VAT_RATE.match(str(value or ""))
    return Decimal(match.group(1)) / 10 if match else None


def money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def digits(value: str | None) -> str:
    return re.sub(r"\W", "", value or "").upper()


def ref_id(value: Any) -> str:
    """An id Pennylane gives as a number or as ``{"id": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return "" if value is None else str(value)


class PennylaneTarget(AccountingTarget):
    key = "pennylane"
    name = "Pennylane"
    auth_kinds = (AuthKind.API_KEY, AuthKind.OAUTH2)
    settings_fields = SETTINGS_FIELDS
    rate_limit = RATE_LIMIT
    supports_draft_entries = False
    supports_attachments = True
    supports_partner_creation = True
    # One entry per call, but a batch is taken at once: its journals and dates are read once.
    supports_batch_writes = True
    vat_codes_name_accounts: ClassVar[bool] = True

    def __init__(self, config: ConnectionConfig, *, client: PennylaneClient | None = None) -> None:
        super().__init__(config)
        self._client = client
        self._company: dict[str, Any] | None = None
        self._accounts: dict[str, list[dict[str, Any]]] = {}
        self._journals: dict[str, list[dict[str, Any]]] = {}
        self._partners: dict[str, list[TargetPartner]] = {}
        self._partner_accounts: dict[str, dict[str, str]] = {}  # partner id -> ledger account id
        # (journal id, date) -> the entries invsync wrote there, by external id: read once per
        # connector (one run), kept up to date with what it writes.
        self._days: dict[tuple[str, str], dict[str, EntryRef]] = {}

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        company = str(settings.get("company_id") or "").strip()
        if not company:
            return ""  # a company token names its company only when asked: keyed by connection
        host = str(settings.get("api_url") or DEFAULT_API_URL).strip().lower().rstrip("/")
        return f"pennylane:{host}:company:{company}"

    @property
    def client(self) -> PennylaneClient:
        if self._client is None:
            self._client = client_from_config(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- connection, folders -----------------------------------------------------------------

    def company(self) -> dict[str, Any]:
        if self._company is None:
            self._company = dict(self.client.me().get("company") or {})
        return self._company

    def check_connection(self) -> ConnectionCheck:
        try:
            company = self.company()
        except InvsyncError as error:
            return ConnectionCheck(False, str(error), error.code, error.key, error.params)
        ok = Msg("check.pennylane_ok", company=str(company.get("name") or company.get("id")))
        return ConnectionCheck(True, ok.english(), "", ok.key, json_params(ok.params))

    def list_folders(self) -> list[Folder]:
        company = self.company()
        return [Folder(id=ref_id(company.get("id")), name=str(company.get("name") or ""))]

    def _folder(self, folder: str) -> None:
        acting = ref_id(self.company().get("id"))
        if str(folder) != acting:
            raise InvsyncError(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                f"This Pennylane connection acts on company {acting}, not {folder}: set the "
                "connection's company id, or pick its company as the flow's folder.",
                field="folder",
            )

    # -- lookups -----------------------------------------------------------------------------

    def _ledger_accounts(self, folder: str) -> list[dict[str, Any]]:
        if folder not in self._accounts:
            self._folder(folder)
            self._accounts[folder] = list(self.client.list("ledger_accounts"))
        return self._accounts[folder]

    def _account_rows(self, folder: str) -> dict[str, dict[str, Any]]:
        """Number -> the row an entry line is written on ("any" VAT rate first, enabled first)."""
        rows: dict[str, dict[str, Any]] = {}
        for row in self._ledger_accounts(folder):
            number = str(row.get("number") or "")
            current = rows.get(number)
            rank = (bool(row.get("enabled", True)), row.get("vat_rate") in (None, "any"))
            if current is None or rank > (
                bool(current.get("enabled", True)),
                current.get("vat_rate") in (None, "any"),
            ):
                rows[number] = row
        return rows

    def list_accounts(self, folder: str) -> list[Account]:
        return [
            Account(number=number, name=str(row.get("label") or ""),
                    active=bool(row.get("enabled", True)))
            for number, row in sorted(self._account_rows(folder).items()) if number
        ]  # fmt: skip

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        codes: dict[str, VatCode] = {}
        for row in self._ledger_accounts(folder):
            number = str(row.get("number") or "")
            if not number.startswith("445") or not row.get("enabled", True):
                continue
            direction = (
                Direction.PURCHASES if number.startswith("4456")
                else Direction.SALES if number.startswith("4457") else None
            )  # fmt: skip
            rate = vat_rate(row.get("vat_rate"))
            if number not in codes or (codes[number].rate is None and rate is not None):
                codes[number] = VatCode(
                    code=number, rate=rate, name=str(row.get("label") or ""), account=number,
                    direction=direction,
                )  # fmt: skip
        return list(codes.values())

    def _journal_rows(self, folder: str) -> list[dict[str, Any]]:
        if folder not in self._journals:
            self._folder(folder)
            self._journals[folder] = list(self.client.list("journals"))
        return self._journals[folder]

    def list_journals(self, folder: str) -> list[Journal]:
        return [
            Journal(
                code=str(row.get("code") or ""), name=str(row.get("label") or ""),
                kind=_JOURNAL_KINDS.get(str(row.get("type") or ""), str(row.get("type") or "")),
            )
            for row in self._journal_rows(folder) if row.get("code")
        ]  # fmt: skip

    def _journal_id(self, folder: str, code: str) -> str | None:
        for row in self._journal_rows(folder):
            if str(row.get("code") or "") == code:
                return ref_id(row.get("id"))
        return None

    # -- partners ----------------------------------------------------------------------------

    def _partner_list(self, folder: str) -> list[TargetPartner]:
        if folder not in self._partners:
            numbers = {ref_id(r.get("id")): str(r.get("number") or "")
                       for r in self._ledger_accounts(folder)}  # fmt: skip
            partners: list[TargetPartner] = []
            accounts: dict[str, str] = {}
            for kind, path in ((CUSTOMER, "customers"), (SUPPLIER, "suppliers")):
                for row in self.client.list(path):
                    partner = self._target_partner(kind, row, numbers)
                    partners.append(partner)
                    accounts[partner.id] = ref_id(row.get("ledger_account"))
            self._partners[folder] = partners
            self._partner_accounts[folder] = accounts
        return self._partners[folder]

    @staticmethod
    def _target_partner(
        kind: str, row: Mapping[str, Any], numbers: Mapping[str, str]
    ) -> TargetPartner:
        account = row.get("ledger_account")
        number = ""
        if isinstance(account, Mapping):
            number = str(account.get("number") or "") or numbers.get(ref_id(account), "")
        elif account is not None:
            number = numbers.get(ref_id(account), "")
        name = (
            str(row.get("name") or "").strip()
            or " ".join(str(row.get(k) or "") for k in ("first_name", "last_name")).strip()
        )
        return TargetPartner(
            id=f"{kind}:{ref_id(row.get('id'))}",
            name=name,
            vat_numbers=tuple(v for v in [str(row.get("vat_number") or "")] if v),
            # Customers carry the SIREN (reg_no), suppliers the SIRET (establishment_no).
            company_numbers=tuple(
                v for v in (str(row.get(k) or "") for k in ("reg_no", "establishment_no")) if v
            ),
            auxiliary_accounts=(number,) if number else (),
        )

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        return self._candidates(self._partner_list(folder), partner)

    def find_partner_candidates_many(
        self, folder: str, partners: Sequence[Partner]
    ) -> dict[str, list[TargetPartner]]:
        known = self._partner_list(folder)  # one listing for every partner asked
        return {p.source_id: self._candidates(known, p) for p in partners}

    @staticmethod
    def _candidates(known: Iterable[TargetPartner], partner: Partner) -> list[TargetPartner]:
        aux = digits(partner.auxiliary_account)
        vat = digits(partner.vat_number)
        company = digits(partner.company_number)
        name = (partner.name or "").strip().casefold()
        found = []
        for candidate in known:
            if (
                (aux and aux in {digits(a) for a in candidate.auxiliary_accounts})
                or (vat and vat in {digits(v) for v in candidate.vat_numbers})
                or (company and any(
                    digits(c) and (company.startswith(digits(c)) or digits(c).startswith(company))
                    for c in candidate.company_numbers
                ))
                or (name and candidate.name.strip().casefold() == name)
            ):  # fmt: skip
                found.append(candidate)
        return found

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        self._partners.pop(folder, None)  # read afresh: a partner may have been deleted
        known = {p.id for p in self._partner_list(folder)}
        return {i for i in ids if i in known}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        self._folder(folder)
        body: dict[str, Any] = {"name": partner.name}
        if partner.vat_number:
            body["vat_number"] = partner.vat_number
        number = digits(partner.company_number)
        if partner.email:
            body["emails"] = [partner.email]
        country = (partner.country or "FR").upper()[:2]
        if direction == Direction.SALES:
            # Pennylane requires a billing address: what the invoice gives, the rest left blank.
            body["billing_address"] = {
                "address": partner.address or "", "postal_code": "", "city": "",
                "country_alpha2": country,
            }  # fmt: skip
            if number:
                body["reg_no"] = number[:9]  # the SIREN (a SIRET's first nine digits)
            kind, row = CUSTOMER, self.client.post("company_customers", body)
        else:
            if len(number) == 14:
                body["establishment_no"] = number  # a supplier takes its SIRET
            kind, row = SUPPLIER, self.client.post("suppliers", body)
        # Pennylane opens the partner's own account (411…, 401…) with it; its number is not read
        # back (one call per partner): the next run's listing gives it with the chart.
        numbers = {ref_id(r.get("id")): str(r.get("number") or "")
                   for r in self._accounts.get(folder, [])}  # fmt: skip
        created = self._target_partner(kind, row, numbers)
        if folder in self._partners:
            self._partners[folder].append(created)
            self._partner_accounts[folder][created.id] = ref_id(row.get("ledger_account"))
        return created

    # -- entries -----------------------------------------------------------------------------

    def _entry_ref(self, row: Mapping[str, Any]) -> EntryRef:
        attached = any(
            row.get(k)
            for k in ("file_attachment_id", "ledger_attachment_id", "ledger_attachment_filename")
        )
        return EntryRef(
            id=ref_id(row.get("id")), number=str(row.get("piece_number") or ""),
            has_attachment=bool(attached), posted=True,
        )  # fmt: skip

    def _entries_on(self, folder: str, journal_id: str, date: str) -> dict[str, EntryRef]:
        """The entries of one journal and date invsync wrote, by external id."""
        self._read_days(folder, journal_id, {date}, again=True)
        return self._days[(journal_id, date)]

    def _read_days(
        self, folder: str, journal_id: str, dates: set[str], *, again: bool = False
    ) -> None:
        """Read the entries invsync wrote in one journal on ``dates`` (those not read yet, or
        all of them ``again``) into ``self._days``: one listing per date for one or two dates,
        else one listing of the dates' range (Pennylane filters entries on journal and date, no
        list of dates)."""
        missing = sorted(d for d in dates if again or (journal_id, d) not in self._days)
        if not missing:
            return
        if len(missing) <= 2:
            ranges = [[("date", "eq", d)] for d in missing]
        else:
            ranges = [[("date", "gteq", missing[0]), ("date", "lteq", missing[-1])]]
        found: dict[str, dict[str, EntryRef]] = {d: {} for d in missing}
        for dated in ranges:
            for row in self.client.list(
                "ledger_entries", [("journal_id", "eq", journal_id), *dated]
            ):
                key = label_key(row.get("label"))
                day = found.get(str(row.get("date") or ""))
                if key and day is not None and key not in day:
                    day[key] = self._entry_ref(row)
        for date, entries in found.items():
            self._days[(journal_id, date)] = entries

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        wanted = set(external_ids)
        if not wanted:
            return {}
        journals = [ref_id(j.get("id")) for j in self._journal_rows(folder)
                    if _JOURNAL_KINDS.get(str(j.get("type") or ""))]  # fmt: skip
        filters = [("journal_id", "in", journals)] if journals else []
        found: dict[str, EntryRef] = {}
        for row in self.client.list("ledger_entries", filters, sort="-id"):
            key = label_key(row.get("label"))
            if key in wanted and key not in found:
                found[key] = self._entry_ref(row)
                if len(found) == len(wanted):
                    break  # newest first: stop reading once every id asked is found
        return found

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        self._folder(folder)
        # What the batch's journals hold on its dates, read before anything is written.
        dates: dict[str, set[str]] = {}
        for entry in entries:
            journal_id = self._journal_id(folder, entry.posting.journal)
            if journal_id is not None:
                dates.setdefault(journal_id, set()).add(entry.posting.date.isoformat())
        for journal_id, days in dates.items():
            self._read_days(folder, journal_id, days)
        results: list[EntryResult] = []
        done: dict[str, EntryRef] = {}
        for entry in entries:
            posting = entry.posting
            if posting.external_id in done:
                results.append(EntryResult(posting.external_id, ref=done[posting.external_id]))
                continue
            try:
                ref = self._write(folder, entry)
            except InvsyncError as error:
                if error.code in CONNECTION_CODES:
                    raise
                results.append(EntryResult(posting.external_id, error=error))
                continue
            done[posting.external_id] = ref
            results.append(EntryResult(posting.external_id, ref=ref))
        return results

    def _write(self, folder: str, entry: EntryToWrite) -> EntryRef:
        posting = entry.posting
        journal_id = self._journal_id(folder, posting.journal)
        if journal_id is None:
            raise InvsyncError(
                ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
                f"Pennylane has no journal with the code {posting.journal!r} in this company.",
                field="journal",
            )
        day = (journal_id, posting.date.isoformat())
        self._read_days(folder, journal_id, {day[1]})
        existing = self._days[day].get(posting.external_id)
        if existing is not None:
            return existing  # written before (another run, a crash): never twice
        body = self._entry_body(folder, posting, journal_id)
        if entry.attachment is not None:
            upload = self.client.upload_file(
                entry.attachment.filename, entry.attachment.content, entry.attachment.content_type
            )
            body["file_attachment_id"] = upload.get("id")
        try:
            row = self.client.post("ledger_entries", body)
        except HttpError as error:
            if not error.unknown_outcome:
                raise
            # The answer was lost: Pennylane may hold the entry. Look before writing again.
            again = self._entries_on(folder, *day)
            if posting.external_id in again:
                return again[posting.external_id]
            row = self.client.post("ledger_entries", body)
        ref = self._entry_ref(row)
        if entry.attachment is not None and not ref.has_attachment:
            ref = EntryRef(ref.id, ref.number, has_attachment=True, posted=True)
        self._days[day][posting.external_id] = ref
        return ref

    def _entry_body(self, folder: str, posting: Posting, journal_id: str) -> dict[str, Any]:
        rows = self._account_rows(folder)
        partner_account = ""
        if posting.partner_ref:
            self._partner_list(folder)
            partner_account = self._partner_accounts.get(folder, {}).get(posting.partner_ref, "")
        lines = []
        for line in posting.lines:
            if line.partner and partner_account:
                account_id = partner_account  # the customer's/supplier's own 411.../401...
            else:
                row = rows.get(line.account)
                if row is None:
                    raise InvsyncError(
                        ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                        f"Pennylane has no ledger account {line.account} in this company.",
                        field="accounts",
                    )
                if not row.get("enabled", True):
                    raise InvsyncError(
                        ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
                        f"The ledger account {line.account} is disabled in Pennylane.",
                        field="accounts",
                    )
                account_id = ref_id(row.get("id"))
            lines.append({
                "debit": money(line.debit), "credit": money(line.credit),
                "ledger_account_id": int(account_id) if account_id.isdigit() else account_id,
                "label": (line.label or posting.reference)[:255],
            })  # fmt: skip
        return {
            "date": posting.date.isoformat(),
            "label": entry_label(posting),
            "piece_number": posting.reference,
            "journal_id": int(journal_id) if journal_id.isdigit() else journal_id,
            # Debits and credits are in the company's currency (amount_currency holds the rest).
            "currency": posting.company_currency or posting.currency,
            "ledger_entry_lines": lines,
        }

    def attach(self, folder: str, ref: EntryRef, attachment: Attachment) -> None:
        self._folder(folder)
        upload = self.client.upload_file(
            attachment.filename, attachment.content, attachment.content_type
        )
        self.client.put(f"ledger_entries/{ref.id}", {"file_attachment_id": upload.get("id")})
