"""Tryton target entries: postings become ``account.move`` records, found again by their
external id, posted and given their attachments.

- External id: kept in the move's ``description`` as ``"<reference> [<external id>]"``. A move has
  no other free text field (``origin`` is a reference restricted to models such as
  ``account.move`` and ``account.invoice``; a line's description is the label people read);
  ``description`` is a plain searchable Char, shown in Tryton's move list, and read-only once the
  move is posted. It is searched with LIKE (special characters widened to ``_``) and compared
  exactly here. Tryton's cancel copies the move with its description and ``origin`` set to the
  cancelled move, so moves whose origin is a move are ignored; of a duplicated move, the posted
  (then the oldest) one is reported.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.base import EntryResult, EntryToWrite
from connectors.canonical import Attachment, Direction, EntryLine, EntryRef, Posting, TaxRole
from connectors.errors import ConnectorError, ErrorCode, InvsyncError
from connectors.providers.tryton.lookups import PeriodRow, TrytonLookups
from connectors.providers.tryton.transport import TrytonError, is_refusal, rejected
from connectors.retry import Delivery, Verdict

logger = logging.getLogger(__name__)

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


class _EntryRefused(Exception):
    def __init__(self, error: InvsyncError) -> None:
        super().__init__(error.message)
        self.error = error


class TrytonEntries(TrytonLookups):
    """Writing, finding and completing moves, on the lookups of :class:`TrytonLookups`."""

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
        # An external id given twice in the batch is written once: the repeat gets its result.
        first_of: dict[str, int] = {}
        repeats: dict[int, int] = {}
        for index, entry in enumerate(entries):
            external_id = entry.posting.external_id
            if external_id and external_id in first_of:
                repeats[index] = first_of[external_id]
                continue
            first_of.setdefault(external_id, index)
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
                raise rejected(error, f"Tryton refused {what}") from None
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
        for index, first in repeats.items():
            results[index] = results[first]
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
            if not is_refusal(error):
                self._discard([move_id for _, _, move_id in written], context)
                raise rejected(error, "Tryton refused to post the entries") from None
            if len(to_post) == 1:
                index, entry, move_id = to_post[0]
                self._discard([move_id], context)
                return {index: rejected(error, _post_refused(entry))}
        refused: dict[int, InvsyncError] = {}
        for index, entry, move_id in to_post:
            try:
                self._post_moves([move_id], context)
            except TrytonError as error:
                if not is_refusal(error):
                    raise rejected(error, "Tryton refused to post the entries") from None
                self._discard([move_id], context)
                refused[index] = rejected(error, _post_refused(entry))
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
            if not is_refusal(error):
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
                if not is_refusal(error):
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
            raise rejected(error, f"Tryton refused the file {attachment.filename!r}") from None

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

    def _period(self, company: int, date: dt.date) -> PeriodRow:
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


def _post_refused(entry: EntryToWrite) -> str:
    return f"Tryton refused to post the entry for {entry.posting.reference}"


def _attachment_values(move_id: int, attachment: Attachment) -> dict[str, Any]:
    return {
        "name": attachment.filename or f"move-{move_id}",
        "resource": f"account.move,{move_id}",
        "type": "data",
        "data": attachment.content,
    }
