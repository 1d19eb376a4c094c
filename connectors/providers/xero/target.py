"""Xero as an accounting target: each posting becomes one Xero **document** — a sales invoice
(``ACCREC``), a bill (``ACCPAY``) or a credit note (``ACCRECCREDIT``/``ACCPAYCREDIT``) — on the
contact matched or created, its lines on the mapped accounts and tax types, its total and each
tax equal to the source's to the cent, then the invoice's PDF attached to it. Why documents and
not manual journals: ``docs/xero.md``.

Choices:

- Folder: a Xero organisation (its tenant id), among those the grant reaches (``GET
  /connections``); every call carries ``xero-tenant-id``.
- Accounts: ``GET /Accounts`` with their type, class, status and system role: archived accounts
  are inactive, the receivable and payable control accounts (``DEBTORS``/``CREDITORS``) are
  listed as receivable/payable (the flow's collective accounts) but refused on a line.
- VAT codes: ``GET /TaxRates`` (tax types with their effective rate; revenue-only types for
  sales, expense-only for purchases). Xero books VAT from the tax type: no account per code.
- Journals: Xero has none; two fixed ones stand for its sales documents and bills.
- Partners: contacts (``GET /Contacts``, active, read once per folder), matched on their
  account number (auxiliary account), tax number (VAT), company number and name; created with
  ``PUT /Contacts`` with those.
- Never twice: the external id is on the document (``docs/xero.md``); the batch's documents are
  looked up in one call per endpoint before anything is written, each write carries an
  ``Idempotency-Key`` derived from the batch's external ids, and a write whose answer was lost is
  looked up before the missing documents are sent again. Up to 50 documents per call with
  ``summarizeErrors=false``: a refused document fails alone, with a catalogue code from Xero's
  validation message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import (
    AccountingTarget,
    AuthKind,
    ConnectionConfig,
    EntryResult,
    EntryToWrite,
)
from connectors.canonical import (
    Account,
    AccountKind,
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
from connectors.providers.xero.client import (
    BATCH_SIZE,
    DEFAULT_API_URL,
    RATE_LIMIT,
    RATE_LIMITS,
    SETTINGS_FIELDS,
    XeroClient,
    client_from_config,
    document_error,
    idempotency_key,
    validation_messages,
)
from connectors.providers.xero.documents import (
    CREDIT_NOTES,
    ID_FIELD,
    INVOICES,
    NUMBER_FIELD,
    currency_rate,
    document_body,
    document_type,
    is_sales,
    key_of,
    where_keys,
)

SALES_JOURNAL, PURCHASES_JOURNAL = "SALES", "PURCHASES"
LOOKUP_CHUNK = 50  # external ids per where filter: one look-up per batch of 50 documents
_REVENUE = {"REVENUE", "SALES", "OTHERINCOME"}
_EXPENSE = {"EXPENSE", "DIRECTCOSTS", "OVERHEADS", "DEPRECIATN"}
_CONTROL = {"DEBTORS": AccountKind.RECEIVABLE, "CREDITORS": AccountKind.PAYABLE}


def digits(value: str | None) -> str:
    return re.sub(r"\W", "", value or "").upper()


def entry_id(path: str, document_id: str) -> str:
    return f"{'credit_note' if path == CREDIT_NOTES else 'invoice'}:{document_id}"


def parse_entry_id(value: str) -> tuple[str, str]:
    kind, _, document_id = value.partition(":")
    return (CREDIT_NOTES if kind == "credit_note" else INVOICES), document_id


def rate_of(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


class XeroTarget(AccountingTarget):
    key = "xero"
    name = "Xero"
    auth_kinds = (AuthKind.OAUTH2,)
    settings_fields = SETTINGS_FIELDS
    rate_limit = RATE_LIMIT
    rate_limits = RATE_LIMITS
    supports_draft_entries = True
    supports_attachments = True
    supports_partner_creation = True
    supports_batch_writes = True
    vat_codes_name_accounts = False

    def __init__(self, config: ConnectionConfig, *, client: XeroClient | None = None) -> None:
        super().__init__(config)
        self._clients: dict[str, XeroClient] = {}
        if client is not None:
            self._clients[client.tenant_id] = client
        self._accounts: dict[str, list[dict[str, Any]]] = {}
        self._tax_rates: dict[str, list[dict[str, Any]]] = {}
        self._contacts: dict[str, list[dict[str, Any]]] = {}
        self._folders: list[Folder] | None = None

    @classmethod
    def account_identity(cls, settings: Mapping[str, str]) -> str:
        tenant = str(settings.get("company_id") or "").strip()
        if not tenant:
            return ""
        host = str(settings.get("api_url") or DEFAULT_API_URL).strip().lower().rstrip("/")
        return f"xero:{host}:tenant:{tenant}"

    def client(self, folder: str | None = None) -> XeroClient:
        tenant = str(folder or self.config.settings.get("company_id") or "").strip()
        if tenant not in self._clients:
            self._clients[tenant] = client_from_config(self.config, tenant)
        return self._clients[tenant]

    @property
    def calls(self) -> int:
        """Requests sent by this target's clients (figures)."""
        return sum(c.calls for c in self._clients.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- connection, folders -----------------------------------------------------------------

    def tenants(self) -> list[dict[str, Any]]:
        return [
            c for c in self.client().connections()
            if str(c.get("tenantType") or "ORGANISATION") == "ORGANISATION"
        ]  # fmt: skip

    def check_connection(self) -> ConnectionCheck:
        try:
            tenants = self.tenants()
            chosen = str(self.config.settings.get("company_id") or "")
            names = {str(t.get("tenantId")): str(t.get("tenantName") or "") for t in tenants}
            if chosen and chosen not in names:
                return ConnectionCheck(
                    False,
                    "The grant no longer reaches the organisation this connection acts on: "
                    "reconnect it and pick the organisation.",
                    ErrorCode.PERMISSION_DENIED,
                )
            if chosen:
                self.client(chosen).organisation()
        except InvsyncError as error:
            return ConnectionCheck(False, str(error), error.code)
        if not names:
            return ConnectionCheck(
                False, "The grant reaches no Xero organisation.", ErrorCode.PERMISSION_DENIED
            )
        return ConnectionCheck(
            True, f"Connected to Xero: {names.get(chosen) or ', '.join(names.values())}."
        )

    def list_folders(self) -> list[Folder]:
        if self._folders is None:
            folders = []
            for tenant in self.tenants():
                tenant_id = str(tenant.get("tenantId") or "")
                organisation = self.client(tenant_id).organisation()
                folders.append(
                    Folder(
                        id=tenant_id,
                        name=str(tenant.get("tenantName") or organisation.get("Name") or ""),
                        currency=str(organisation.get("BaseCurrency") or "EUR"),
                    )
                )
            self._folders = folders
        return self._folders

    # -- lookups -----------------------------------------------------------------------------

    def _account_rows(self, folder: str) -> list[dict[str, Any]]:
        if folder not in self._accounts:
            self._accounts[folder] = self.client(folder).accounts()
        return self._accounts[folder]

    def _rate_rows(self, folder: str) -> list[dict[str, Any]]:
        if folder not in self._tax_rates:
            self._tax_rates[folder] = self.client(folder).tax_rates()
        return self._tax_rates[folder]

    @staticmethod
    def _kind(row: Mapping[str, Any]) -> AccountKind:
        system = str(row.get("SystemAccount") or "")
        if system in _CONTROL:
            return _CONTROL[system]
        type_ = str(row.get("Type") or "")
        if type_ in _REVENUE:
            return AccountKind.REVENUE
        if type_ in _EXPENSE:
            return AccountKind.EXPENSE
        if system == "GST" or (type_ == "CURRLIAB" and "tax" in str(row.get("Name", "")).lower()):
            return AccountKind.TAX
        return AccountKind.OTHER

    def list_accounts(self, folder: str) -> list[Account]:
        return [
            Account(
                number=str(row.get("Code")), name=str(row.get("Name") or ""),
                active=str(row.get("Status") or "ACTIVE") == "ACTIVE", kind=self._kind(row),
            )
            for row in self._account_rows(folder) if row.get("Code")
        ]  # fmt: skip

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        codes = []
        for row in self._rate_rows(folder):
            if str(row.get("Status") or "ACTIVE") != "ACTIVE" or not row.get("TaxType"):
                continue
            revenue = row.get("CanApplyToRevenue", True)
            expenses = row.get("CanApplyToExpenses", True)
            direction = (
                Direction.SALES if revenue and not expenses
                else Direction.PURCHASES if expenses and not revenue else None
            )  # fmt: skip
            codes.append(
                VatCode(
                    code=str(row["TaxType"]), name=str(row.get("Name") or ""),
                    rate=rate_of(row.get("EffectiveRate", row.get("DisplayTaxRate"))),
                    direction=direction,
                )
            )  # fmt: skip
        return codes

    def list_journals(self, folder: str) -> list[Journal]:
        return [
            Journal(SALES_JOURNAL, "Sales invoices and credit notes (ACCREC)", "sales"),
            Journal(PURCHASES_JOURNAL, "Bills and supplier credit notes (ACCPAY)", "purchases"),
        ]

    def list_tracking_categories(self, folder: str) -> list[tuple[str, list[str]]]:
        """The organisation's tracking categories and their options (names)."""
        return [
            (str(c.get("Name") or ""), [str(o.get("Name") or "") for o in c.get("Options") or []])
            for c in self.client(folder).tracking_categories()
        ]

    # -- partners ----------------------------------------------------------------------------

    def _contact_rows(self, folder: str) -> list[dict[str, Any]]:
        if folder not in self._contacts:
            self._contacts[folder] = list(self.client(folder).contacts())
        return self._contacts[folder]

    @staticmethod
    def _target_partner(row: Mapping[str, Any]) -> TargetPartner:
        def one(name: str) -> tuple[str, ...]:
            value = str(row.get(name) or "").strip()
            return (value,) if value else ()

        return TargetPartner(
            id=str(row.get("ContactID") or ""),
            name=str(row.get("Name") or ""),
            vat_numbers=one("TaxNumber"),
            company_numbers=one("CompanyNumber"),
            auxiliary_accounts=one("AccountNumber"),
        )

    def _partners(self, folder: str) -> list[TargetPartner]:
        return [self._target_partner(r) for r in self._contact_rows(folder)]

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        return self._candidates(self._partners(folder), partner)

    def find_partner_candidates_many(
        self, folder: str, partners: Sequence[Partner]
    ) -> dict[str, list[TargetPartner]]:
        known = self._partners(folder)  # one listing for every partner asked
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
                or (company and company in {digits(c) for c in candidate.company_numbers})
                or (name and candidate.name.strip().casefold() == name)
            ):
                found.append(candidate)
        return found

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        self._contacts.pop(folder, None)  # read afresh: a contact may have been archived
        known = {p.id for p in self._partners(folder)}
        return {i for i in ids if i in known}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        body: dict[str, Any] = {"Name": partner.name[:255]}
        if partner.auxiliary_account:
            body["AccountNumber"] = partner.auxiliary_account[:50]
        if partner.vat_number:
            body["TaxNumber"] = partner.vat_number[:50]
        if partner.company_number:
            body["CompanyNumber"] = partner.company_number[:50]
        if partner.email:
            body["EmailAddress"] = partner.email
        if partner.address or partner.country:
            address = {"AddressType": "POBOX"}
            if partner.address:
                address["AddressLine1"] = partner.address[:500]
            if partner.country:
                address["Country"] = partner.country
            body["Addresses"] = [address]
        row = self.client(folder).create_contact(body)
        messages = validation_messages(row)
        if row.get("HasValidationErrors") or messages or not row.get("ContactID"):
            error = document_error(messages, f"the contact {partner.name!r}")
            code = ErrorCode.PARTNER_VALIDATION
            raise InvsyncError(code, error.message, field="partner")
        if folder in self._contacts:
            self._contacts[folder].append(row)
        return self._target_partner(row)

    # -- documents ---------------------------------------------------------------------------

    def _ref(self, path: str, row: Mapping[str, Any]) -> EntryRef:
        return EntryRef(
            id=entry_id(path, str(row.get(ID_FIELD[path]) or "")),
            number=str(row.get(NUMBER_FIELD[path]) or ""),
            has_attachment=bool(row.get("HasAttachments")),
            posted=str(row.get("Status") or "") != "DRAFT",
        )

    def _lookup(
        self, folder: str, path: str, keys: Mapping[str, tuple[bool, str] | None]
    ) -> dict[str, EntryRef]:
        """The documents of ``path`` carrying these external ids (with, when known, whether the
        document is a sale and its number: :func:`where_keys`): one call per 50 ids."""
        wanted = list(keys)
        found: dict[str, EntryRef] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            part = wanted[start : start + LOOKUP_CHUNK]
            where = where_keys(path, {k: keys[k] for k in part})
            for row in self.client(folder).find_documents(path, where):
                if str(row.get("Status") or "") in ("DELETED", "VOIDED"):
                    continue
                key = key_of(row, path)
                if key in part and key not in found:
                    found[key] = self._ref(path, row)
        return found

    def find_entries(self, folder: str, external_ids: Sequence[str]) -> dict[str, EntryRef]:
        if not external_ids:
            return {}
        found = self._lookup(folder, INVOICES, dict.fromkeys(external_ids))
        rest = [k for k in external_ids if k not in found]
        if rest:
            found.update(self._lookup(folder, CREDIT_NOTES, dict.fromkeys(rest)))
        return found

    def _rates(self, folder: str) -> dict[str, Decimal | None]:
        return {v.code: v.rate for v in self.list_vat_codes(folder)}

    def _check_lines(self, folder: str, body: Mapping[str, Any]) -> None:
        """The lines' accounts: known, active, and not a control account Xero keeps."""
        rows = {str(r.get("Code")): r for r in self._account_rows(folder) if r.get("Code")}
        for item in body["LineItems"]:
            code = str(item["AccountCode"])
            row = rows.get(code)
            if row is None:
                raise InvsyncError(
                    ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                    f"Xero has no account with the code {code} in this organisation.",
                    field="accounts",
                )
            if str(row.get("Status") or "ACTIVE") != "ACTIVE":
                raise InvsyncError(
                    ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
                    f"The account {code} is archived in Xero.",
                    field="accounts",
                )
            if str(row.get("SystemAccount") or "") in _CONTROL:
                raise InvsyncError(
                    ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                    f"The account {code} is a control account Xero keeps itself: a document "
                    "line cannot use it.",
                    field="accounts",
                )

    def create_entries(self, folder: str, entries: Sequence[EntryToWrite]) -> list[EntryResult]:
        results: dict[int, EntryResult] = {}
        first: dict[str, int] = {}
        todo: list[int] = []
        for n, entry in enumerate(entries):
            key = entry.posting.external_id
            if key in first:
                continue  # the same external id twice in one batch: written once
            first[key] = n
            todo.append(n)
        # What Xero holds already (another run, a crash): one lookup per endpoint.
        by_path: dict[str, dict[str, tuple[bool, str] | None]] = {}
        for n in todo:
            posting = entries[n].posting
            by_path.setdefault(document_type(posting)[1], {})[posting.external_id] = (
                is_sales(posting),
                posting.reference,
            )
        existing: dict[str, EntryRef] = {}
        for path, keys in by_path.items():
            existing.update(self._lookup(folder, path, keys))
        bodies: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for n in todo:
            posting = entries[n].posting
            ref = existing.get(posting.external_id)
            if ref is not None:
                if not ref.posted and not posting.draft:
                    try:
                        ref = self._approve(folder, posting, ref)  # a draft; the flow posts
                    except InvsyncError as error:
                        if error.code in CONNECTION_CODES:
                            raise
                        results[n] = EntryResult(posting.external_id, error=error)
                        continue
                results[n] = EntryResult(posting.external_id, ref=ref)
                continue
            try:
                if not posting.partner_ref:
                    raise InvsyncError(
                        ErrorCode.PARTNER_NOT_FOUND,
                        f"Invoice {posting.reference} has no Xero contact.",
                        field="partner",
                    )
                body = document_body(
                    posting, self._rates(folder), contact_id=posting.partner_ref,
                    currency_rate=currency_rate(posting),
                )  # fmt: skip
                self._check_lines(folder, body)
            except InvsyncError as error:
                if error.code in CONNECTION_CODES:
                    raise
                results[n] = EntryResult(posting.external_id, error=error)
                continue
            bodies.setdefault(document_type(posting)[1], []).append((n, body))
        for path, items in bodies.items():
            for start in range(0, len(items), BATCH_SIZE):
                part = items[start : start + BATCH_SIZE]
                for n, outcome in self._write(folder, path, entries, part).items():
                    results[n] = outcome
        # The PDFs, once each document exists.
        for n in todo:
            result, entry = results[n], entries[n]
            if result.ref is None or entry.attachment is None or result.ref.has_attachment:
                continue
            try:
                self.attach(folder, result.ref, entry.attachment)
            except InvsyncError as error:
                if error.code in CONNECTION_CODES:
                    raise
                continue  # written; the next run's recovery attaches it
            ref = result.ref
            results[n] = EntryResult(
                result.external_id,
                ref=EntryRef(ref.id, ref.number, has_attachment=True, posted=ref.posted),
            )
        # An external id twice in the batch: the second gets the first's outcome.
        return [
            results.get(n) or results[first[e.posting.external_id]] for n, e in enumerate(entries)
        ]

    def _write(
        self,
        folder: str,
        path: str,
        entries: Sequence[EntryToWrite],
        part: list[tuple[int, dict[str, Any]]],
    ) -> dict[int, EntryResult]:
        keys = [entries[n].posting.external_id for n, _ in part]
        client = self.client(folder)
        try:
            rows = client.create_documents(path, [b for _, b in part], idempotency_key(path, keys))
        except HttpError as error:
            if not error.unknown_outcome:
                raise
            # The answer was lost: Xero may hold some. Look, then send the others again.
            found = self._lookup(
                folder, path,
                {entries[n].posting.external_id: (is_sales(entries[n].posting),
                                                   entries[n].posting.reference)
                 for n, _ in part},
            )  # fmt: skip
            results = {
                n: EntryResult(entries[n].posting.external_id, ref=found[k])
                for (n, _), k in zip(part, keys, strict=True) if k in found
            }  # fmt: skip
            rest = [(n, b) for (n, b), k in zip(part, keys, strict=True) if k not in found]
            if rest:
                results.update(self._write(folder, path, entries, rest))
            return results
        by_key = {key_of(r, path): r for r in rows if not r.get("HasErrors")}
        results: dict[int, EntryResult] = {}
        for index, (n, _body) in enumerate(part):
            posting = entries[n].posting
            row = by_key.get(posting.external_id)
            if row is not None and row.get(ID_FIELD[path]):
                results[n] = EntryResult(posting.external_id, ref=self._ref(path, row))
                continue
            refused = rows[index] if index < len(rows) else {}
            error = document_error(validation_messages(refused), f"invoice {posting.reference}")
            results[n] = EntryResult(posting.external_id, error=error)
        return results

    def _approve(self, folder: str, posting: Posting, ref: EntryRef) -> EntryRef:
        path, document_id = parse_entry_id(ref.id)
        row = self.client(folder).approve(path, document_id, ID_FIELD[path])
        messages = validation_messages(row)
        if messages or row.get("HasErrors"):
            raise document_error(messages, f"the approval of invoice {posting.reference}")
        return EntryRef(ref.id, ref.number, has_attachment=ref.has_attachment, posted=True)

    def attach(self, folder: str, ref: EntryRef, attachment: Attachment) -> None:
        path, document_id = parse_entry_id(ref.id)
        self.client(folder).attach(
            path, document_id, attachment.filename, attachment.content, attachment.content_type
        )
