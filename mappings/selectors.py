"""Reads about sync flows."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from connectors.base import SourceRecordError
from connectors.canonical import (
    Account,
    Direction,
    Folder,
    Journal,
    SourceJournal,
    SourceTaxRate,
    TaxKind,
    VatCode,
    quantize_money,
)
from connectors.errors import error_info
from connectors.models import LookupCache
from mappings.models import SyncFlow
from mappings.suggestions import suggest, suggest_vat_code
from syncs.config import TargetLookups

# The flow's links to its client and connections: set through the services, exported by name.
FLOW_RELATION_FIELDS = ("client", "invoicing_connection", "accounting_connection")


def flow_configuration_fields() -> tuple[str, ...]:
    """The names of the flow's own configuration fields (name included), in model order: every
    editable field except the id and the relations. Bookkeeping fields (configuration version,
    cursor, run lease, timestamps) are not editable and so never listed."""
    return tuple(
        field.name
        for field in SyncFlow._meta.concrete_fields
        if field.editable and not field.primary_key and field.name not in FLOW_RELATION_FIELDS
    )


def flow_schedule_name(flow_id: int) -> str:
    """The name of the flow's django-q2 schedule."""
    return f"invsync-flow-{flow_id}"


def _describe(flows) -> str:
    return ", ".join(f"{flow.client.name}/{flow.name} (id {flow.pk})" for flow in flows)


def _by_name(value: str) -> list[SyncFlow]:
    flows = list(SyncFlow.objects.select_related("client").filter(name=value))
    if flows:
        return flows
    # "Client name/Flow name"; either name may itself hold a slash, so try every split.
    for position, character in enumerate(value):
        if character == "/":
            client_name, flow_name = value[:position], value[position + 1 :]
            flows = list(
                SyncFlow.objects.select_related("client").filter(
                    client__name=client_name, name=flow_name
                )
            )
            if flows:
                return flows
    return []


def flow_get_by_name_or_id(value: str) -> SyncFlow:
    """The flow named by ``value``: its id, its name, or "Client name/Flow name".

    Raises SyncFlow.DoesNotExist when nothing matches, and ValueError (listing the candidates with
    their ids) when a bare name matches flows of several clients."""
    value = str(value).strip()
    if value.isdigit():
        flow = SyncFlow.objects.select_related("client").filter(pk=int(value)).first()
        if flow is not None:
            return flow
    flows = _by_name(value)
    if not flows:
        raise SyncFlow.DoesNotExist(
            f"No flow has the id or name {value!r} "
            "(a name may be given as 'Client name/Flow name')."
        )
    if len(flows) > 1:
        raise ValueError(
            f"Several flows are named {value!r}: {_describe(flows)}. "
            "Give the id or 'Client name/Flow name'."
        )
    return flows[0]


def flow_list_with_run_stats(queryset: QuerySet[SyncFlow] | None = None) -> QuerySet[SyncFlow]:
    """Flows annotated with ``last_run_status``, ``last_run_started_at`` and
    ``failed_record_count``."""
    from syncs.models import RecordStatus, SyncRun  # syncs depends on mappings

    queryset = SyncFlow.objects.all() if queryset is None else queryset
    last_runs = SyncRun.objects.filter(flow=OuterRef("pk")).order_by("-started_at", "-id")
    return queryset.select_related(
        "client", "invoicing_connection", "accounting_connection"
    ).annotate(
        last_run_status=Subquery(last_runs.values("status")[:1]),
        last_run_started_at=Subquery(last_runs.values("started_at")[:1]),
        failed_record_count=Count("records", filter=Q(records__status=RecordStatus.FAILED)),
    )


# -- Lookups: what the flow's tools offer to the mapping forms ----------------------------------
#
# Kept in connectors.models.LookupCache, one row per (connection, folder, list), in the payload
# format of syncs.selectors.lookups_to_payload so that runs, previews and forms share them:
# the accounting connection's "folders" (folder ""), "accounts", "vat_codes" and "journals" (per
# folder); the invoicing connection's "tax_rates" and "journals" (folder "").

TARGET_FOLDER_LOOKUPS = ("accounts", "vat_codes", "journals")
SOURCE_LOOKUPS = ("tax_rates", "journals")

# The account classes each account setting takes (French chart: 4 third parties, 6 expenses,
# 7 revenue).
ACCOUNT_FIELD_CLASSES: dict[str, tuple[str, ...]] = {
    "default_sales_account": ("7",),
    "default_purchases_account": ("6",),
    "customer_collective_account": ("4",),
    "supplier_collective_account": ("4",),
    "rounding_credit_account": ("7",),
    "rounding_debit_account": ("6",),
    "sales_discount_account": ("6", "7"),
    "purchases_discount_account": ("6", "7"),
}
VAT_CODE_FIELD_DIRECTIONS: dict[str, Direction] = {
    "sales_rounding_vat_code": Direction.SALES,
    "purchases_rounding_vat_code": Direction.PURCHASES,
}
JOURNAL_FIELDS = ("sales_journal", "purchases_journal")


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
            return tuple(
                Account(a["number"], a.get("name", ""), a.get("active", True)) for a in payload
            )
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
    folder lists in the format of syncs.selectors.lookups_to_payload)."""
    rows = list(rows)
    if role == "accounting":
        if name == "folders":
            return [{"id": f.id, "name": f.name, "currency": f.currency} for f in rows]
        from syncs.selectors import lookups_to_payload  # syncs depends on mappings

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
    text = f"{vat.code} – {vat.name}" if vat.name else vat.code
    return text


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


# -- The setup checklist -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a flow's setup: done or not, what is missing, and where on the flow's page
    to fix it."""

    name: str
    done: bool
    detail: str
    fix_url_anchor: str
    key: str = ""


@dataclass(frozen=True)
class VatRow:
    direction: str
    rate: Decimal | None
    tax_id: str
    code: str
    collected_code: str = ""  # reverse charge: the collected VAT code beside ``code``


def _vat_rows(flow: SyncFlow, rows: Iterable | None) -> list[VatRow]:
    if rows is None:
        rows = flow.vat_mappings.all() if flow.pk else ()
    result = []
    for row in rows:
        get = row.get if isinstance(row, Mapping) else lambda name, r=row: getattr(r, name, None)
        result.append(
            VatRow(
                str(get("direction") or ""),
                _decimal_or_none(get("source_rate")),
                str(get("source_tax_id") or ""),
                str(get("target_code") or ""),
                str(get("collected_code") or ""),
            )
        )
    return result


def _journal_rows(flow: SyncFlow, rows: Iterable | None) -> list[tuple[str, str]]:
    if rows is None:
        rows = flow.journal_mappings.all() if flow.pk else ()
    result = []
    for row in rows:
        get = row.get if isinstance(row, Mapping) else lambda name, r=row: getattr(r, name, None)
        result.append((str(get("source_journal") or ""), str(get("target_journal") or "")))
    return result


def vat_rate_covered(source: SourceTaxRate, rows: Iterable[VatRow]) -> bool:
    """Whether the engine finds a mapping for a line with this source tax (a row naming the tax
    wins; else a row for its rate)."""
    return vat_row_for(source, rows) is not None


def vat_row_for(source: SourceTaxRate, rows: Iterable[VatRow]) -> VatRow | None:
    """The row the engine maps this source tax with (by tax id first, then by rate), if any."""
    rows = [row for row in rows if row.direction == source.direction.value]
    if source.tax_id:
        for row in rows:
            if row.tax_id and row.tax_id == source.tax_id:
                return row
    if source.rate is not None:
        for row in rows:
            if not row.tax_id and row.rate is not None and row.rate == source.rate:
                return row
    return None


def needs_collected_code(source: SourceTaxRate) -> bool:
    """A purchase tax the buyer self-assesses: its mapping names two VAT codes."""
    return source.kind.self_assessed and source.direction is Direction.PURCHASES


def _rate_text(rate: Decimal | None) -> str:
    if rate is None:
        return "?"
    text = format(rate.normalize(), "f")
    return f"{text} %"


def _source_tax_text(source: SourceTaxRate) -> str:
    return f"{_rate_text(source.rate)} ({source.name})" if source.name else _rate_text(source.rate)


def flow_directions(flow: SyncFlow) -> list[Direction]:
    """The directions in the flow's scope."""
    return [d for d in Direction if flow.scope in ("both", d.value)]


def _listed(items: Iterable[str], limit: int = 6) -> str:
    items = list(dict.fromkeys(items))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _when(moment: dt.datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


def _connection_step(
    connection, cache_rows: list[LookupCache], *, key: str, name: str, tool: str
) -> Step:
    anchor = f"#id_{key.replace('_connected', '_connection')}"
    if connection is None:
        return Step(name, False, f"Choose the {tool} connection.", anchor, key)
    # A list read since the connection was last changed counts as a successful check.
    lookups_at = max(
        (
            row.fetched_at
            for row in cache_rows
            if row.connection_id == connection.pk
            and (connection.updated_at is None or row.fetched_at >= connection.updated_at)
        ),
        default=None,
    )
    checked_at = connection.last_checked_at
    # The newer of the last check and the last successful read tells.
    if connection.last_check_ok is not None and (
        lookups_at is None or checked_at is None or checked_at >= lookups_at
    ):
        when = f" ({_when(checked_at)})" if checked_at else ""
        if connection.last_check_ok:
            return Step(name, True, f"Last check succeeded{when}.", anchor, key)
        return Step(
            name,
            False,
            f"Last check failed{when}: {connection.last_check_message} "
            f"Fix the connection {connection.name!r}, then test it again.",
            anchor,
            key,
        )
    if lookups_at is not None:
        return Step(name, True, f"Lists read from the tool ({_when(lookups_at)}).", anchor, key)
    return Step(
        name,
        False,
        f"Never checked: use Test connection on {connection.name!r}, or “Refresh from the "
        "accounting tool” on this page.",
        anchor,
        key,
    )


def _vat_step(
    direction: Direction, flow: SyncFlow, rows: list[VatRow], lookups: FlowLookups
) -> Step:
    label = "sales" if direction is Direction.SALES else "purchase"
    key, name = f"{direction.value}_vat", f"{label.capitalize()} VAT mapped"
    anchor = "#vat_mappings-group"
    if direction not in flow_directions(flow):
        return Step(name, True, f"Not needed: {direction.value} are out of scope.", anchor, key)
    mine = [r for r in rows if r.direction == direction.value]
    if not mine:
        return Step(name, False, f"No {label} VAT mapping yet.", anchor, key)
    problems = []
    bad_codes = [
        code
        for r in mine
        for code in (r.code, r.collected_code)
        if code and vat_code_problem(code, direction, lookups.vat_codes) is not None
    ]
    if bad_codes:
        problems.append(f"not {label} codes of the accounting tool: {_listed(bad_codes)}")
    if lookups.source_rates is not None:
        # A reverse-charge purchase mapped to one code only would fail every such invoice.
        unpaired = [
            _source_tax_text(s)
            for s in lookups.source_rates
            if s.direction is direction
            and needs_collected_code(s)
            and (row := vat_row_for(s, mine)) is not None
            and not row.collected_code
        ]
        if unpaired:
            problems.append(
                "reverse-charge taxes mapped without a collected VAT code: " + _listed(unpaired)
            )
    if problems:
        text = "; ".join(problems)
        # Not str.capitalize(): it would lowercase the codes and tax names that follow.
        return Step(name, False, text[:1].upper() + text[1:] + ".", anchor, key)
    detail = f"{len(mine)} mapping{'s' if len(mine) != 1 else ''}."
    if lookups.source_rates is not None:
        # Sources list every tax they have, not only those invoices use (Tryton's chart holds
        # overseas and press rates most firms never bill): an unmapped one is a warning, and an
        # invoice that does use it fails alone with MAPPING_TAX_RATE_NOT_FOUND.
        unmapped = [
            _source_tax_text(s)
            for s in lookups.source_rates
            if s.direction is direction and not vat_rate_covered(s, mine)
        ]
        detail += (
            f" Not mapped (invoices using them will fail until they are): {_listed(unmapped)}."
            if unmapped
            else " Every rate of the invoicing tool is mapped."
        )
    return Step(name, True, detail, anchor, key)


def _fields_step(
    flow: SyncFlow,
    *,
    key: str,
    name: str,
    required: list[str],
    problem_of,
) -> Step:
    missing = [f for f in required if not getattr(flow, f)]
    invalid = [(f, p) for f in required if (p := problem_of(f, getattr(flow, f)))]
    first = (missing or [f for f, _ in invalid] or required or [""])[0]
    anchor = f"#id_{first}" if first else ""
    if not missing and not invalid:
        return Step(name, True, "Set." if required else "Nothing needed.", anchor, key)
    parts = []
    if missing:
        labels = [str(SyncFlow._meta.get_field(f).verbose_name) for f in missing]
        parts.append(f"Not set: {_listed(labels, 8)}.")
    parts.extend(p for _, p in invalid)
    return Step(name, False, " ".join(parts), anchor, key)


def flow_setup_checklist(
    flow: SyncFlow,
    *,
    vat_mappings: Iterable | None = None,
    journal_mappings: Iterable | None = None,
    lookups: FlowLookups | None = None,
) -> list[Step]:
    """The flow's setup steps, done or missing, in the order an accountant goes through them.

    Reads the flow, its mappings (or ``vat_mappings``/``journal_mappings``: rows as model
    instances or mappings of field names, the ones a form is about to save) and the cached
    lookups (or ``lookups``); never calls a tool. Values are checked against the lists last read
    from the tools when there are any: an account the chart no longer has is a missing step."""
    cache_rows = _cache_rows(flow, flow.folder)
    if lookups is None or lookups.folder != flow.folder:
        lookups = _lookups_from_rows(flow, flow.folder, cache_rows)
    directions = flow_directions(flow)
    sales, purchases = Direction.SALES in directions, Direction.PURCHASES in directions
    source = flow.invoicing_connection if flow.invoicing_connection_id else None
    target = flow.accounting_connection if flow.accounting_connection_id else None
    steps = [
        _connection_step(
            source,
            cache_rows,
            key="invoicing_connected",
            name="Invoicing tool connected",
            tool="invoicing",
        ),
        _connection_step(
            target,
            cache_rows,
            key="accounting_connected",
            name="Accounting tool connected",
            tool="accounting",
        ),
    ]

    if not flow.folder:
        steps.append(
            Step(
                "Accounting folder chosen",
                False,
                "Choose the folder the entries go to.",
                "#id_folder",
                "folder",
            )
        )
    elif problem := folder_problem(flow.folder, lookups.folders):
        steps.append(Step("Accounting folder chosen", False, problem, "#id_folder", "folder"))
    else:
        shown = f"{flow.folder_name} ({flow.folder})" if flow.folder_name else flow.folder
        steps.append(Step("Accounting folder chosen", True, shown, "#id_folder", "folder"))

    rows = _vat_rows(flow, vat_mappings)
    steps.append(_vat_step(Direction.SALES, flow, rows, lookups))
    steps.append(_vat_step(Direction.PURCHASES, flow, rows, lookups))

    # Rounding lines are outside VAT. Where the accounting tool has no single plain 0 % code for
    # a direction (Tryton's French chart: none for purchases, only intra-EU and export exemptions
    # for sales), they are posted without a VAT code and there is nothing to set.
    without_zero_code = {
        d
        for d in Direction
        if lookups.vat_codes is not None
        and suggest_vat_code(list(lookups.vat_codes), d, Decimal(0)) is None
    }
    steps.append(
        _fields_step(
            flow,
            key="rounding_vat",
            name="Rounding VAT codes set",
            required=[
                f
                for f, direction in VAT_CODE_FIELD_DIRECTIONS.items()
                if direction in directions
                and (direction not in without_zero_code or getattr(flow, f))
            ],
            problem_of=lambda f, value: vat_code_problem(
                value, VAT_CODE_FIELD_DIRECTIONS[f], lookups.vat_codes
            ),
        )
    )

    if flow.journals_by_source:
        steps.append(_journal_mappings_step(flow, _journal_rows(flow, journal_mappings), lookups))
    else:
        steps.append(
            _fields_step(
                flow,
                key="journals",
                name="Journals set",
                required=[
                    f for f, on in zip(JOURNAL_FIELDS, (sales, purchases), strict=True) if on
                ],
                problem_of=lambda f, value: journal_problem(value, lookups.journals),
            )
        )

    accounts = []
    if sales:
        accounts += ["default_sales_account", "customer_collective_account"]
    if purchases:
        accounts += ["default_purchases_account", "supplier_collective_account"]
    accounts += ["rounding_credit_account", "rounding_debit_account"]
    if flow.separate_discounts:
        accounts += ["sales_discount_account"] if sales else []
        accounts += ["purchases_discount_account"] if purchases else []
    steps.append(
        _fields_step(
            flow,
            key="accounts",
            name="Accounts set",
            required=accounts,
            problem_of=lambda f, value: account_problem(value, lookups.accounts),
        )
    )

    if flow.start_date:
        steps.append(
            Step(
                "Configuration",
                True,
                f"Invoices from {flow.start_date:%Y-%m-%d}.",
                "#id_start_date",
                "configuration",
            )
        )
    else:
        steps.append(
            Step(
                "Configuration",
                False,
                "Set the synchronisation start date.",
                "#id_start_date",
                "configuration",
            )
        )
    return steps


def _journal_mappings_step(
    flow: SyncFlow, rows: list[tuple[str, str]], lookups: FlowLookups
) -> Step:
    name, key, anchor = "Journals set", "journals", "#journal_mappings-group"
    if not rows:
        return Step(
            name,
            False,
            "Journals are mapped one by one, and no journal mapping is set yet.",
            anchor,
            key,
        )
    problems = [p for _, target in rows if (p := journal_problem(target, lookups.journals))]
    if lookups.source_journals is not None:
        mapped = {source for source, _ in rows}
        unmapped = [j.code for j in lookups.source_journals if j.code not in mapped]
        if unmapped:
            problems.append(f"Not mapped: the invoicing tool's journals {_listed(unmapped)}.")
    if problems:
        return Step(name, False, " ".join(problems), anchor, key)
    return Step(
        name, True, f"{len(rows)} journal mapping{'s' if len(rows) != 1 else ''}.", anchor, key
    )


def setup_missing(steps: Iterable[Step]) -> list[Step]:
    return [step for step in steps if not step.done]


# -- VAT mapping proposals -------------------------------------------------------------------


@dataclass(frozen=True)
class VatProposal:
    """A VAT mapping row to offer for review: a source rate (or tax) not mapped yet and the target
    code with the same rate, when one stands out ("" when a person must choose)."""

    direction: str
    source_rate: Decimal | None
    source_tax_id: str
    target_code: str
    source_name: str = ""
    candidates: tuple[str, ...] = ()
    collected_code: str = ""  # reverse charge: the collected VAT code proposed beside target_code

    def as_initial(self) -> dict:
        return {
            "direction": self.direction,
            "source_rate": self.source_rate,
            "source_tax_id": self.source_tax_id,
            "target_code": self.target_code,
            "collected_code": self.collected_code,
        }


def flow_vat_proposals(
    flow: SyncFlow, lookups: FlowLookups, *, vat_mappings: Iterable | None = None
) -> list[VatProposal]:
    """A row for every rate (or tax) the invoicing tool uses in the flow's scope that no mapping
    covers yet, with the same-rate target code picked by
    :func:`mappings.suggestions.suggest_vat_code` (the source tax's name as the hint). Empty when
    the source's rates were never read."""
    if lookups.source_rates is None:
        return []
    rows = _vat_rows(flow, vat_mappings)
    directions = flow_directions(flow)
    missing = [
        s
        for s in lookups.source_rates
        if s.direction in directions and s.rate is not None and not vat_rate_covered(s, rows)
    ]
    names = {(s.direction, s.tax_id): s.name for s in missing}
    by_rate: dict[tuple, list[str]] = {}
    for s in missing:
        by_rate.setdefault((s.direction, s.rate), []).append(s.name)
    proposals = []
    for row in suggest(
        source_rates=missing, vat_codes=lookups.vat_codes or (), accounts=(), journals=()
    ).vat:
        name = (
            names.get((row.direction, row.tax_id), "")
            if row.tax_id
            else _listed([n for n in by_rate.get((row.direction, row.rate), []) if n], 3)
        )
        proposals.append(
            VatProposal(
                direction=row.direction.value,
                source_rate=row.rate,
                source_tax_id=row.tax_id or "",
                target_code=row.code or "",
                source_name=name,
                candidates=row.candidates,
                collected_code=row.collected_code or "",
            )
        )
    proposals.sort(key=lambda p: (p.direction != "sales", -(p.source_rate or 0), p.source_tax_id))
    return proposals


# -- Preview of the next invoices ----------------------------------------------------------------


@dataclass(frozen=True)
class PreviewItem:
    """One invoice of the preview and what the engine makes of it (``result`` as
    syncs.serialization.result_to_json gives it)."""

    source_id: str
    number: str
    invoice_type: str
    issue_date: dt.date | None
    partner_name: str
    currency: str
    total: Decimal | None
    result: dict
    record_status: str = ""  # the state of the invoice's record, if it has one (failed...)
    partner_link: str = ""  # the accounting partner it is linked to, if it is
    total_debit: Decimal | None = None
    total_credit: Decimal | None = None
    error_description: str = ""
    error_resolution: str = ""

    @property
    def type_label(self) -> str:
        from syncs.models import INVOICE_TYPE_CHOICES

        return dict(INVOICE_TYPE_CHOICES).get(
            self.invoice_type, self.invoice_type.replace("_", " ").capitalize()
        )

    @property
    def balanced(self) -> bool:
        return self.total_debit is not None and self.total_debit == self.total_credit


@dataclass(frozen=True)
class FlowPreview:
    items: tuple[PreviewItem, ...]
    more: bool  # the source has more invoices to sync than those shown
    lookups_known: bool  # False: the accounting tool's lists were never read


PREVIEW_LIMIT = 10


def flow_preview(
    flow: SyncFlow, *, lookups: FlowLookups, limit: int = PREVIEW_LIMIT
) -> FlowPreview:
    """What the next run would write: the engine applied to the first ``limit`` invoices the
    source lists since the flow's cursor (in the flow's scope) that are not synced yet.

    Reads the source; writes nothing anywhere (no entry, no partner, no record). Raises
    InvsyncError when the source cannot be listed."""
    from connectors.selectors import connector_for  # connectors.selectors needs the registry
    from syncs.engine import Posted, Rejected, build_posting
    from syncs.models import PartnerLink, RecordStatus, SyncedRecord
    from syncs.selectors import flow_engine_config, record_overrides
    from syncs.serialization import result_to_json
    from syncs.services import record_external_id

    config = flow_engine_config(flow, lookups.target_lookups())
    items: list[PreviewItem] = []
    more = False
    source = connector_for(flow.invoicing_connection)
    listing = source.iter_invoices(since=flow.source_cursor, directions=flow_directions(flow))
    try:
        while not more:
            chunk = list(itertools.islice(listing, 50))
            if not chunk:
                break
            records = {
                r.source_id: r
                for r in SyncedRecord.objects.filter(
                    flow=flow, source_id__in=[item.source_id for item in chunk]
                )
            }
            for item in chunk:
                record = records.get(item.source_id)
                if record is not None and record.status in (
                    RecordStatus.SYNCED,
                    RecordStatus.PUSHING,
                ):
                    continue
                if len(items) == limit:
                    more = True
                    break
                if isinstance(item, SourceRecordError):
                    items.append(_preview_source_error(item, record))
                    continue
                result = build_posting(
                    item,
                    config,
                    external_id=record_external_id(flow, item.source_id),
                    overrides=record_overrides(record) if record is not None else None,
                )
                link = None
                if item.partner is not None:
                    link = PartnerLink.objects.filter(
                        flow=flow, source_partner_id=item.partner.source_id
                    ).first()
                info = error_info(result.code) if isinstance(result, Rejected) else None
                posting = result.posting if isinstance(result, Posted) else None
                items.append(
                    PreviewItem(
                        source_id=item.source_id,
                        number=item.number,
                        invoice_type=item.type.value,
                        issue_date=item.issue_date,
                        partner_name=item.partner.name if item.partner else "",
                        currency=item.currency,
                        total=item.total,
                        result=result_to_json(result),
                        record_status=record.status if record is not None else "",
                        partner_link=(link.target_partner_name or link.target_partner_id)
                        if link
                        else "",
                        total_debit=quantize_money(posting.total_debit, posting.company_currency)
                        if posting
                        else None,
                        total_credit=quantize_money(posting.total_credit, posting.company_currency)
                        if posting
                        else None,
                        error_description=info.description if info else "",
                        error_resolution=info.resolution if info else "",
                    )
                )
    finally:
        close = getattr(listing, "close", None)
        if close is not None:
            close()
        source.close()
    return FlowPreview(tuple(items), more, lookups.accounts is not None)


def _preview_source_error(item: SourceRecordError, record) -> PreviewItem:
    info = error_info(item.error.code)
    return PreviewItem(
        source_id=item.source_id,
        number=item.number,
        invoice_type="",
        issue_date=None,
        partner_name="",
        currency="",
        total=None,
        result={
            "status": "error",
            "code": item.error.code.value,
            "message": item.error.message,
            "field": item.error.field,
        },
        record_status=record.status if record is not None else "",
        error_description=info.description,
        error_resolution=info.resolution,
    )
