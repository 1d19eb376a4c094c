"""The flow's setup checklist: each step done or missing, what is missing and where to fix it;
the VAT rows as the engine matches them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext

from connectors.canonical import Direction, SourceTaxRate
from connectors.errors import InvsyncError
from connectors.models import LookupCache
from connectors.selectors import connector_class_for
from mappings.accounts import account_kind_problem
from mappings.capabilities import target_limits
from mappings.flow_settings import (
    FLOW_SETTINGS,
    SettingType,
    required_settings,
    vat_row_matching,
)
from mappings.lookups import (
    SOURCE_LOOKUPS,
    TARGET_FOLDER_LOOKUPS,
    VAT_CODE_FIELD_DIRECTIONS,
    FlowLookups,
    _cache_rows,
    _decimal_or_none,
    _lookups_from_rows,
    account_problem,
    folder_problem,
    journal_problem,
    vat_code_problem,
)
from mappings.models import SyncFlow
from mappings.selectors import flow_directions
from mappings.suggestions import suggest_vat_code


class StepState(StrEnum):
    """Where a setup step stands. Only ``done`` is shown done (✓); ``to_check`` is usable but
    not complete (e.g. source rates left unmapped: the invoices using them will fail) and does
    not keep the flow from being enabled; ``missing`` does; ``note`` is something to know about
    the flow's tools, not a step to do, and is not counted."""

    DONE = "done"
    TO_CHECK = "to_check"
    MISSING = "missing"
    NOTE = "note"


@dataclass(frozen=True)
class Step:
    """One step of a flow's setup: where it stands, what is missing, and where on the flow's page
    to fix it."""

    name: str
    state: StepState
    detail: str
    fix_url_anchor: str
    key: str = ""

    @property
    def done(self) -> bool:
        return self.state is StepState.DONE

    @property
    def blocking(self) -> bool:
        """Keeps the flow from being enabled."""
        return self.state is StepState.MISSING

    @property
    def counted(self) -> bool:
        """A step to do (a note is not)."""
        return self.state is not StepState.NOTE


@dataclass(frozen=True)
class VatRow:
    direction: str
    rate: Decimal | None
    tax_id: str
    code: str
    collected_code: str = ""  # reverse charge: the collected VAT code beside ``code``


def flow_vat_rows(flow: SyncFlow, rows: Iterable | None) -> list[VatRow]:
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
    return vat_row_matching(rows, tax_id=source.tax_id, rate=source.rate)


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


def listed_text(items: Iterable[str], limit: int = 6) -> str:
    items = list(dict.fromkeys(items))
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return shown + (gettext(" and %(count)d more") % {"count": more} if more > 0 else "")


def _when(moment: dt.datetime) -> str:
    return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def _connection_step(
    connection, cache_rows: list[LookupCache], *, key: str, name: str, tool: str
) -> Step:
    anchor = f"#id_{key.replace('_connected', '_connection')}"
    if connection is None:
        choose = {
            "invoicing": gettext("Choose the invoicing connection."),
            "accounting": gettext("Choose the accounting connection."),
        }
        return Step(name, StepState.MISSING, choose.get(tool, tool), anchor, key)
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
            text = gettext("Last check succeeded%(when)s.") % {"when": when}
            return Step(name, StepState.DONE, text, anchor, key)
        return Step(
            name,
            StepState.MISSING,
            gettext(
                "Last check failed%(when)s: %(message)s Fix the connection “%(name)s”, then test "
                "it again."
            )
            % {"when": when, "message": connection.last_check_message, "name": connection.name},
            anchor,
            key,
        )
    if lookups_at is not None:
        text = gettext("Lists read from the tool (%(when)s).") % {"when": _when(lookups_at)}
        return Step(name, StepState.DONE, text, anchor, key)
    return Step(
        name,
        StepState.MISSING,
        gettext(
            "Never checked: use Test connection on “%(name)s”, or “Refresh from the accounting "
            "tool” on this page."
        )
        % {"name": connection.name},
        anchor,
        key,
    )


def _vat_step(
    direction: Direction, flow: SyncFlow, rows: list[VatRow], lookups: FlowLookups
) -> Step:
    sales = direction is Direction.SALES
    key = f"{direction.value}_vat"
    name = gettext("Sales VAT mapped") if sales else gettext("Purchase VAT mapped")
    anchor = "#vat_mappings-group"
    if direction not in flow_directions(flow):
        text = (
            gettext("Not needed: sales are out of scope.")
            if sales
            else gettext("Not needed: purchases are out of scope.")
        )
        return Step(name, StepState.DONE, text, anchor, key)
    mine = [r for r in rows if r.direction == direction.value]
    if not mine:
        text = (
            gettext("No sales VAT mapping yet.")
            if sales
            else gettext("No purchase VAT mapping yet.")
        )
        return Step(name, StepState.MISSING, text, anchor, key)
    problems = []
    bad_codes = [
        code
        for r in mine
        for code in (r.code, r.collected_code)
        if code and vat_code_problem(code, direction, lookups.vat_codes) is not None
    ]
    if bad_codes:
        problems.append(
            (
                gettext("not sales codes of the accounting tool: %(codes)s")
                if sales
                else gettext("not purchase codes of the accounting tool: %(codes)s")
            )
            % {"codes": listed_text(bad_codes)}
        )
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
                gettext("reverse-charge taxes mapped without a collected VAT code: %(taxes)s")
                % {"taxes": listed_text(unpaired)}
            )
    if problems:
        text = "; ".join(problems)
        # Not str.capitalize(): it would lowercase the codes and tax names that follow.
        return Step(name, StepState.MISSING, text[:1].upper() + text[1:] + ".", anchor, key)
    detail = ngettext("%(count)d mapping.", "%(count)d mappings.", len(mine)) % {"count": len(mine)}
    if lookups.source_rates is not None:
        # Sources list every tax they have, not only those invoices use (Tryton's chart holds
        # overseas and press rates most firms never bill): an unmapped one does not keep the
        # flow from running (an invoice that uses it fails alone with MAPPING_TAX_RATE_NOT_FOUND),
        # but the step is not done either: it is to check, never shown done.
        unmapped = [
            _source_tax_text(s)
            for s in lookups.source_rates
            if s.direction is direction and not vat_rate_covered(s, mine)
        ]
        if unmapped:
            count = len(dict.fromkeys(unmapped))
            detail += " " + ngettext(
                "%(count)d rate of the invoicing tool not mapped (invoices using them will fail "
                "until they are): %(rates)s.",
                "%(count)d rates of the invoicing tool not mapped (invoices using them will fail "
                "until they are): %(rates)s.",
                count,
            ) % {"count": count, "rates": listed_text(unmapped)}
            return Step(name, StepState.TO_CHECK, detail, anchor, key)
        detail += " " + gettext("Every rate of the invoicing tool is mapped.")
    return Step(name, StepState.DONE, detail, anchor, key)


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
        text = gettext("Set.") if required else gettext("Nothing needed.")
        return Step(name, StepState.DONE, text, anchor, key)
    parts = []
    if missing:
        labels = [str(SyncFlow._meta.get_field(f).verbose_name) for f in missing]
        parts.append(gettext("Not set: %(settings)s.") % {"settings": listed_text(labels, 8)})
    parts.extend(p for _, p in invalid)
    return Step(name, StepState.MISSING, " ".join(parts), anchor, key)


def flow_setup_checklist(
    flow: SyncFlow,
    *,
    vat_mappings: Iterable | None = None,
    journal_mappings: Iterable | None = None,
    lookups: FlowLookups | None = None,
    cache_rows: list[LookupCache] | None = None,
) -> list[Step]:
    """The flow's setup steps, done or missing, in the order an accountant goes through them.

    Reads the flow, its mappings (or ``vat_mappings``/``journal_mappings``: rows as model
    instances or mappings of field names, the ones a form is about to save) and the cached
    lookups (or ``lookups``); never calls a tool. Values are checked against the lists last read
    from the tools when there are any: an account the chart no longer has is a missing step."""
    if cache_rows is None:
        cache_rows = _cache_rows(flow, flow.folder)
    if lookups is None or lookups.folder != flow.folder:
        lookups = _lookups_from_rows(flow, flow.folder, cache_rows)
    # Which settings are required follows from their declaration (mappings/flow_settings.py).
    values = {s.name: getattr(flow, s.name) for s in FLOW_SETTINGS}
    source = flow.invoicing_connection if flow.invoicing_connection_id else None
    target = flow.accounting_connection if flow.accounting_connection_id else None
    steps = [
        _connection_step(
            source,
            cache_rows,
            key="invoicing_connected",
            name=gettext("Invoicing tool connected"),
            tool="invoicing",
        ),
        _connection_step(
            target,
            cache_rows,
            key="accounting_connected",
            name=gettext("Accounting tool connected"),
            tool="accounting",
        ),
    ]

    if not flow.folder:
        steps.append(
            Step(
                gettext("Accounting folder chosen"),
                StepState.MISSING,
                gettext("Choose the folder the entries go to."),
                "#id_folder",
                "folder",
            )
        )
    elif problem := folder_problem(flow.folder, lookups.folders):
        steps.append(
            Step(
                gettext("Accounting folder chosen"),
                StepState.MISSING,
                problem,
                "#id_folder",
                "folder",
            )
        )
    else:
        # By its name: the folder's id is the tool's key (Tryton's company id).
        shown = flow.folder_name or flow.folder
        steps.append(
            Step(gettext("Accounting folder chosen"), StepState.DONE, shown, "#id_folder", "folder")
        )

    rows = flow_vat_rows(flow, vat_mappings)
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
            name=gettext("Rounding VAT codes set"),
            required=[
                f
                for f in required_settings(SettingType.VAT_CODE, values)
                if VAT_CODE_FIELD_DIRECTIONS[f] not in without_zero_code or getattr(flow, f)
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
                name=gettext("Journals set"),
                required=required_settings(SettingType.JOURNAL, values),
                problem_of=lambda f, value: journal_problem(value, lookups.journals),
            )
        )

    steps.append(
        _fields_step(
            flow,
            key="accounts",
            name=gettext("Accounts set"),
            required=required_settings(SettingType.ACCOUNT, values),
            problem_of=lambda f, value: (
                account_problem(value, lookups.accounts)
                or account_kind_problem(f, value, lookups.accounts)
            ),
        )
    )

    if flow.start_date:
        steps.append(
            Step(
                gettext("Configuration"),
                StepState.DONE,
                gettext("Invoices from %(date)s.")
                % {"date": date_format(flow.start_date, "SHORT_DATE_FORMAT")},
                "#id_start_date",
                "configuration",
            )
        )
    else:
        steps.append(
            Step(
                gettext("Configuration"),
                StepState.MISSING,
                gettext("Set the synchronisation start date."),
                "#id_start_date",
                "configuration",
            )
        )
    if limits := _target_limits(target):
        steps.append(
            Step(
                gettext("What the accounting tool cannot do"),
                StepState.NOTE,
                " ".join(limits),
                "#id_accounting_connection",
                "target_limits",
            )
        )
    return steps


def flows_setup_checklists(flows: Iterable[SyncFlow]) -> dict[int, list[Step]]:
    """:func:`flow_setup_checklist` of many flows (by id) in one read of the cached lookups, each
    list decoded once per connection pair and folder. The caller prefetches the flows'
    connections and ``vat_mappings``/``journal_mappings``: then the queries do not grow with the
    number of flows."""
    flows = list(flows)
    wanted = Q(pk__in=[])
    for flow in flows:
        if flow.accounting_connection_id:
            wanted |= Q(connection_id=flow.accounting_connection_id, folder="", name="folders")
            if flow.folder:
                wanted |= Q(
                    connection_id=flow.accounting_connection_id,
                    folder=flow.folder,
                    name__in=TARGET_FOLDER_LOOKUPS,
                )
        if flow.invoicing_connection_id:
            wanted |= Q(
                connection_id=flow.invoicing_connection_id, folder="", name__in=SOURCE_LOOKUPS
            )
    rows = list(LookupCache.objects.filter(wanted)) if flows else []
    decoded: dict[tuple, tuple[list[LookupCache], FlowLookups]] = {}
    result = {}
    for flow in flows:
        key = (flow.accounting_connection_id, flow.invoicing_connection_id, flow.folder)
        if key not in decoded:
            mine = [
                row
                for row in rows
                if (
                    row.connection_id == flow.accounting_connection_id
                    and (
                        (row.folder == "" and row.name == "folders")
                        or (row.folder == flow.folder != "" and row.name in TARGET_FOLDER_LOOKUPS)
                    )
                )
                or (
                    row.connection_id == flow.invoicing_connection_id
                    and row.folder == ""
                    and row.name in SOURCE_LOOKUPS
                )
            ]
            decoded[key] = (mine, _lookups_from_rows(flow, flow.folder, mine))
        mine, lookups = decoded[key]
        result[flow.pk] = flow_setup_checklist(flow, lookups=lookups, cache_rows=mine)
    return result


def _target_limits(connection) -> list[str]:
    """What the flow's accounting tool cannot do (nothing said for a provider not installed:
    the connection step says that)."""
    if connection is None:
        return []
    try:
        return target_limits(connector_class_for(connection))
    except InvsyncError:
        return []


def _journal_mappings_step(
    flow: SyncFlow, rows: list[tuple[str, str]], lookups: FlowLookups
) -> Step:
    name, key, anchor = "Journals set", "journals", "#journal_mappings-group"
    if not rows:
        return Step(
            name,
            StepState.MISSING,
            "Journals are mapped one by one, and no journal mapping is set yet.",
            anchor,
            key,
        )
    problems = [p for _, target in rows if (p := journal_problem(target, lookups.journals))]
    if lookups.source_journals is not None:
        mapped = {source for source, _ in rows}
        unmapped = [j.code for j in lookups.source_journals if j.code not in mapped]
        if unmapped:
            problems.append(f"Not mapped: the invoicing tool's journals {listed_text(unmapped)}.")
    if problems:
        return Step(name, StepState.MISSING, " ".join(problems), anchor, key)
    return Step(
        name,
        StepState.DONE,
        f"{len(rows)} journal mapping{'s' if len(rows) != 1 else ''}.",
        anchor,
        key,
    )


def setup_missing(steps: Iterable[Step]) -> list[Step]:
    """The steps that keep the flow from being enabled."""
    return [step for step in steps if step.blocking]
