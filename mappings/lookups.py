"""The target-lookups cache: what the flow's tools offer to the mapping forms, the runs and the
previews, and how a value is checked against it (the forms and the checklist say the same)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q

from connectors.canonical import (
    Account,
    AccountKind,
    Direction,
    Folder,
    Journal,
    SourceJournal,
    SourceTaxRate,
    TargetLookups,
    TaxKind,
    VatCode,
)
from connectors.errors import error_info
from connectors.models import LookupCache
from mappings.flow_settings import SettingType, settings_of
from mappings.models import SyncFlow

# -- Lookups: what the flow's tools offer to the mapping forms ----------------------------------
#
# Kept in connectors.models.LookupCache, one row per (connection, folder, list), in the payload
# format of :func:`lookups_to_payload` so that runs, previews and forms share them:
# the accounting connection's "folders" (folder ""), "accounts", "vat_codes" and "journals" (per
# folder); the invoicing connection's "tax_rates" and "journals" (folder "").

TARGET_FOLDER_LOOKUPS = ("accounts", "vat_codes", "journals")
SOURCE_LOOKUPS = ("tax_rates", "journals")

# The settings checked against the target's lists, from their declaration
# (mappings/flow_settings.py): the direction of each VAT code setting, the journals (the kinds
# of account each account setting takes: mappings.accounts.ACCOUNT_FIELD_KINDS).
VAT_CODE_FIELD_DIRECTIONS: dict[str, Direction] = {
    s.name: s.direction for s in settings_of(SettingType.VAT_CODE) if s.direction
}
JOURNAL_FIELDS = tuple(s.name for s in settings_of(SettingType.JOURNAL))


@dataclass(frozen=True)
class LookupProblem:
    """A tool that could not be read: which one, the catalogue code and the message."""

    tool: str  # "accounting" or "invoicing"
    code: str
    message: str

    @property
    def resolution(self) -> str:
        try:
            return error_info(self.code).resolution
        except ValueError:
            return ""


@dataclass
class FlowLookups:
    """The lists of both tools for one flow and folder. ``None``: never read (nor cached)."""

    folder: str = ""
    folders: tuple[Folder, ...] | None = None
    accounts: tuple[Account, ...] | None = None
    vat_codes: tuple[VatCode, ...] | None = None
    journals: tuple[Journal, ...] | None = None
    source_rates: tuple[SourceTaxRate, ...] | None = None
    source_journals: tuple[SourceJournal, ...] | None = None
    target_fetched_at: dt.datetime | None = None
    source_fetched_at: dt.datetime | None = None
    problems: list[LookupProblem] = field(default_factory=list)

    @property
    def has_folder_lists(self) -> bool:
        return None not in (self.accounts, self.vat_codes, self.journals)

    def target_lookups(self) -> TargetLookups:
        """The engine's view (empty lists when never read)."""
        return TargetLookups(
            accounts=tuple(self.accounts or ()),
            vat_codes=tuple(self.vat_codes or ()),
            journals=tuple(j.code for j in self.journals or ()),
        )


def _decimal_or_none(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _direction_or_none(value) -> Direction | None:
    return Direction(value) if value else None


def _account_kind(value) -> AccountKind:
    """A cached account kind; lists cached before kinds were read (or an unknown one) are
    ``unknown``, and judged by their numbers."""
    try:
        return AccountKind(value or AccountKind.UNKNOWN)
    except ValueError:
        return AccountKind.UNKNOWN


def _account_row(row: dict) -> Account:
    return Account(
        row["number"], row.get("name", ""), row.get("active", True), _account_kind(row.get("kind"))
    )


def _tax_kind(value) -> TaxKind:
    """A cached tax kind; lists cached before kinds were read (or an unknown one) are standard."""
    try:
        return TaxKind(value or TaxKind.STANDARD)
    except ValueError:
        return TaxKind.STANDARD


def lookup_rows_decode(name: str, role: str, payload: list) -> tuple:
    """The canonical dataclasses of one cached list."""
    if role == "accounting":
        if name == "folders":
            return tuple(
                Folder(str(f["id"]), f.get("name", ""), f.get("currency") or "EUR") for f in payload
            )
        if name == "accounts":
            return tuple(_account_row(a) for a in payload)
        if name == "vat_codes":
            return tuple(
                VatCode(
                    v["code"],
                    _decimal_or_none(v.get("rate")),
                    v.get("name", ""),
                    v.get("account"),
                    _direction_or_none(v.get("direction")),
                )
                for v in payload
            )
        if name == "journals":
            return tuple(Journal(j["code"], j.get("name", ""), j.get("kind", "")) for j in payload)
    if name == "tax_rates":
        return tuple(
            SourceTaxRate(
                Direction(t["direction"]),
                _decimal_or_none(t.get("rate")),
                t.get("tax_id") or None,
                t.get("name", ""),
                _tax_kind(t.get("kind")),
            )
            for t in payload
        )
    if name == "journals":
        return tuple(SourceJournal(j["code"], j.get("name", "")) for j in payload)
    raise ValueError(f"unknown lookup {role}/{name}")


def lookup_rows_encode(name: str, role: str, rows: Iterable) -> list[dict]:
    """The cached payload of one list (the inverse of :func:`lookup_rows_decode`; the target's
    folder lists in the format of :func:`lookups_to_payload`)."""
    rows = list(rows)
    if role == "accounting":
        if name == "folders":
            return [{"id": f.id, "name": f.name, "currency": f.currency} for f in rows]
        payload = lookups_to_payload(
            rows if name == "accounts" else [],
            rows if name == "vat_codes" else [],
            rows if name == "journals" else [],
        )
        return payload[name]
    if name == "tax_rates":
        return [
            {
                "direction": r.direction.value,
                "rate": None if r.rate is None else str(r.rate),
                "tax_id": r.tax_id,
                "name": r.name,
                "kind": r.kind.value,
            }
            for r in rows
        ]
    if name == "journals":
        return [{"code": j.code, "name": j.name} for j in rows]
    raise ValueError(f"unknown lookup {role}/{name}")


def _cache_rows(flow: SyncFlow, folder: str) -> list[LookupCache]:
    wanted = Q(pk__in=[])
    if flow.accounting_connection_id:
        wanted |= Q(connection_id=flow.accounting_connection_id, folder="", name="folders")
        if folder:
            wanted |= Q(
                connection_id=flow.accounting_connection_id,
                folder=folder,
                name__in=TARGET_FOLDER_LOOKUPS,
            )
    if flow.invoicing_connection_id:
        wanted |= Q(connection_id=flow.invoicing_connection_id, folder="", name__in=SOURCE_LOOKUPS)
    return list(LookupCache.objects.filter(wanted))


def flow_cached_lookups(flow: SyncFlow, *, folder: str | None = None) -> FlowLookups:
    """The lists last read from the flow's tools for ``folder`` (the flow's by default), without
    calling any tool. ``flow`` may be unsaved: only its connections and folder are read."""
    folder = flow.folder if folder is None else folder
    return _lookups_from_rows(flow, folder, _cache_rows(flow, folder))


def _lookups_from_rows(flow: SyncFlow, folder: str, rows: list[LookupCache]) -> FlowLookups:
    lookups = FlowLookups(folder=folder)
    for row in rows:
        role = "accounting" if row.connection_id == flow.accounting_connection_id else "invoicing"
        attribute = {
            ("accounting", "folders"): "folders",
            ("accounting", "accounts"): "accounts",
            ("accounting", "vat_codes"): "vat_codes",
            ("accounting", "journals"): "journals",
            ("invoicing", "tax_rates"): "source_rates",
            ("invoicing", "journals"): "source_journals",
        }[(role, row.name)]
        setattr(lookups, attribute, lookup_rows_decode(row.name, role, row.payload))
        stamp = "target_fetched_at" if role == "accounting" else "source_fetched_at"
        if row.name != "folders" and (
            getattr(lookups, stamp) is None or row.fetched_at < getattr(lookups, stamp)
        ):
            # The oldest of the lists shown is what the page says it is as fresh as.
            setattr(lookups, stamp, row.fetched_at)
    return lookups


# -- Checking a value against the lookups (the forms and the checklist say the same) -----------


def account_label(account: Account) -> str:
    return f"{account.number} – {account.name}" if account.name else account.number


def vat_code_label(vat: VatCode) -> str:
    """How people read a VAT code: its name and the account its amount is booked on ("TVA
    collectée 20 % · 44571"). The code itself is the tool's key, often an internal id (Tryton's
    tax id): shown only when the tool gives no name."""
    text = vat.name or vat.code
    return f"{text} · {vat.account}" if vat.account else text


def folder_label(folder: Folder) -> str:
    """A folder by its name (its id is the tool's key, e.g. Tryton's company id)."""
    return folder.name or folder.id


def source_tax_label(tax: SourceTaxRate) -> str:
    """An invoicing tool's tax by its name and rate ("T.V.A. Vente 20 % (20 %)")."""
    rate = "" if tax.rate is None else f"{tax.rate.normalize():f} %"
    if tax.name and rate:
        return f"{tax.name} ({rate})"
    return tax.name or rate or str(tax.tax_id or "")


def journal_label(journal: Journal | SourceJournal) -> str:
    return f"{journal.code} – {journal.name}" if journal.name else journal.code


def account_problem(number: str, accounts: Iterable[Account] | None) -> str | None:
    """Why ``number`` cannot take entries, or None (also when the chart is unknown)."""
    if not number or accounts is None:
        return None
    found = next((a for a in accounts if a.number == number), None)
    if found is None:
        return f"The account {number} does not exist in the accounting tool's chart."
    if not found.active:
        return (
            f"The account {number} is inactive (closed or a view account) in the accounting "
            "tool: choose an active account."
        )
    return None


def vat_code_problem(
    code: str, direction: Direction | str | None, vat_codes: Iterable[VatCode] | None
) -> str | None:
    """Why ``code`` cannot be used for ``direction``, or None (also when the codes are unknown)."""
    if not code or vat_codes is None:
        return None
    found = next((v for v in vat_codes if v.code == code), None)
    if found is None:
        return f"The VAT code {code} does not exist in the accounting tool."
    if direction and found.direction is not None and found.direction != Direction(direction):
        kind = "sales" if found.direction is Direction.SALES else "purchase"
        return f"The VAT code {code} is a {kind} code: choose a {Direction(direction).value} one."
    return None


def journal_problem(code: str, journals: Iterable[Journal] | None) -> str | None:
    if not code or journals is None:
        return None
    if not any(j.code == code for j in journals):
        return f"The journal {code} does not exist in the accounting tool."
    return None


def folder_problem(folder: str, folders: Iterable[Folder] | None) -> str | None:
    if not folder or folders is None:
        return None
    if not any(f.id == folder for f in folders):
        return f"The folder {folder} is not one the accounting connection can write to."
    return None


# -- The target lookups as the runs and record pages read them ------------------------------------


def cached_target_lookups(flow: SyncFlow) -> TargetLookups | None:
    """The target lookups the last run (or form) read, without calling the target; None if never."""
    rows = {
        row.name: row.payload
        for row in LookupCache.objects.filter(
            connection=flow.accounting_connection_id,
            folder=flow.folder,
            name__in=["accounts", "vat_codes", "journals"],
        )
    }
    if len(rows) < 3:
        return None
    return lookups_from_payload(rows)


def lookup_names(lookups: TargetLookups | None) -> dict[str, dict[str, str]]:
    """Names of the accounting tool's accounts and VAT codes by code, for pages that show codes
    (the ``named`` and ``vat_code_named`` filters); empty when the lists were never read."""
    if lookups is None:
        return {"accounts": {}, "vat_codes": {}}
    return {
        "accounts": {a.number: a.name for a in lookups.accounts if a.name},
        # A VAT code reads by its label (name and account): its code is often the tool's key.
        "vat_codes": {v.code: vat_code_label(v) for v in lookups.vat_codes if v.name},
    }


def lookups_to_payload(
    accounts: list[Account], vat_codes: list[VatCode], journals: list[Journal]
) -> dict[str, list]:
    return {
        "accounts": [
            {"number": a.number, "name": a.name, "active": a.active, "kind": a.kind.value}
            for a in accounts
        ],
        "vat_codes": [
            {
                "code": v.code,
                "rate": None if v.rate is None else str(v.rate),
                "name": v.name,
                "account": v.account,
                "direction": v.direction.value if v.direction else None,
            }
            for v in vat_codes
        ],
        "journals": [{"code": j.code, "name": j.name, "kind": j.kind} for j in journals],
    }


def lookups_from_payload(payload: dict[str, list]) -> TargetLookups:
    return TargetLookups(
        accounts=tuple(_account_row(a) for a in payload["accounts"]),
        vat_codes=tuple(
            VatCode(
                v["code"],
                None if v.get("rate") is None else Decimal(v["rate"]),
                v.get("name", ""),
                v.get("account"),
                Direction(v["direction"]) if v.get("direction") else None,
            )
            for v in payload["vat_codes"]
        ),
        journals=tuple(j["code"] for j in payload["journals"]),
    )
