"""Writes on sync flows, their mappings and their django-q2 schedules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django_q.models import Schedule

from connectors.base import ConnectionKind
from connectors.canonical import Direction
from connectors.errors import InvsyncError
from connectors.models import Client, Connection, LookupCache
from connectors.selectors import connector_class_for, connector_for
from mappings.audit import config_change_record
from mappings.checklist import flow_setup_checklist, setup_missing
from mappings.lookups import (
    TARGET_FOLDER_LOOKUPS,
    FlowLookups,
    LookupProblem,
    flow_cached_lookups,
    lookup_rows_encode,
)
from mappings.models import JournalMapping, SyncFlow, VatMapping
from mappings.overlaps import describe_flow, flow_ledger, flows_sharing_ledger
from mappings.selectors import (
    FLOW_RELATION_FIELDS,
    flow_configuration_fields,
    flow_schedule_name,
)
from mappings.suggestions import Suggestions, suggest

# The dotted path django-q2 stores in each schedule: keep it stable.
RUN_FLOW_TASK = "syncs.tasks.run_flow"
# django-q2 stores a schedule's minutes in a small integer.
MAX_SCHEDULE_MINUTES = 32767


def flow_validate_connections(
    *, client: Client, invoicing_connection: Connection, accounting_connection: Connection
) -> None:
    """Raise ValidationError unless both connections belong to ``client`` and are of their kind."""
    errors: dict[str, str] = {}
    for field_name, connection, kind in (
        ("invoicing_connection", invoicing_connection, ConnectionKind.INVOICING),
        ("accounting_connection", accounting_connection, ConnectionKind.ACCOUNTING),
    ):
        if connection is None:
            continue  # the model's own validation says it is required
        if connection.client_id != client.pk:
            errors[field_name] = gettext(
                "The connection “%(name)s” belongs to %(owner)s, not to %(client)s."
            ) % {"name": connection.name, "owner": connection.client, "client": client}
        elif connection.kind != kind:
            errors[field_name] = (
                gettext(
                    "The connection “%(name)s” is an accounting connection; choose an invoicing "
                    "connection."
                )
                if kind == ConnectionKind.INVOICING
                else gettext(
                    "The connection “%(name)s” is an invoicing connection; choose an accounting "
                    "connection."
                )
            ) % {"name": connection.name}
    if errors:
        raise ValidationError(errors)


def _flow_validate(flow: SyncFlow) -> None:
    if flow.client_id:
        source = flow.invoicing_connection if flow.invoicing_connection_id else None
        target = flow.accounting_connection if flow.accounting_connection_id else None
        flow_validate_connections(
            client=flow.client, invoicing_connection=source, accounting_connection=target
        )
    flow.full_clean()
    if flow.schedule_minutes > MAX_SCHEDULE_MINUTES:
        raise ValidationError(
            {
                "schedule_minutes": gettext("Run at least every %(minutes)d minutes.")
                % {"minutes": MAX_SCHEDULE_MINUTES}
            }
        )


def _check_field_names(names: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValidationError(f"{', '.join(unknown)}: not a configuration field of a sync flow.")


def flow_config_changed(*, flow: SyncFlow) -> None:
    """Raise the flow's configuration version (in the database, race-free); its failed records
    are then retried automatically."""
    SyncFlow.objects.filter(pk=flow.pk).update(config_version=F("config_version") + 1)
    flow.refresh_from_db(fields=["config_version"])
    config_change_record(flow=flow)


def flow_schedule_sync(*, flow: SyncFlow) -> Schedule | None:
    """Make the flow's django-q2 schedule match the flow: an enabled flow runs every
    ``schedule_minutes``; a disabled one has no schedule. Safe to call any number of times."""
    name = flow_schedule_name(flow.pk)
    if not flow.enabled:
        Schedule.objects.filter(name=name).delete()
        return None
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": RUN_FLOW_TASK,
            # django-q2 literal_evals both: args "12" is the call run_flow(12, trigger="schedule").
            "args": repr(flow.pk),
            "kwargs": "trigger='schedule'",
            "schedule_type": Schedule.MINUTES,
            "minutes": flow.schedule_minutes,
            "repeats": -1,
        },
    )
    return schedule


@transaction.atomic
def flow_create(
    *,
    client: Client,
    name: str,
    invoicing_connection: Connection,
    accounting_connection: Connection,
    vat_mappings: Iterable[Mapping[str, Any]] | None = None,
    journal_mappings: Iterable[Mapping[str, Any]] | None = None,
    shared_ledger_confirmed: Iterable[int] = (),
    **settings: Any,
) -> SyncFlow:
    """Create a flow; ``settings`` are configuration fields of SyncFlow by name. Schedules it when
    enabled. Raises ValidationError (wrong client or kind of connection, bad value, duplicate
    name, or enabled before its setup is complete: see :func:`flow_enabling_check`).

    ``vat_mappings``/``journal_mappings``: the mapping rows the caller saves right after (as the
    admin does with its inlines), which the completeness check counts; they are not saved here.
    ``shared_ledger_confirmed``: see :func:`flow_shared_ledger_check`."""
    _check_field_names(settings, flow_configuration_fields())
    flow = SyncFlow(
        client=client,
        name=name,
        invoicing_connection=invoicing_connection,
        accounting_connection=accounting_connection,
        **settings,
    )
    _flow_validate(flow)
    flow_enabling_check(
        flow=flow, before=None, vat_mappings=vat_mappings or (), journal_mappings=journal_mappings
    )
    flow_shared_ledger_check(flow=flow, before=None, confirmed=shared_ledger_confirmed)
    flow.save()
    flow_config_changed(flow=flow)
    flow_schedule_sync(flow=flow)
    return flow


@transaction.atomic
def flow_update(
    *,
    flow: SyncFlow,
    data: Mapping[str, Any],
    vat_mappings: Iterable[Mapping[str, Any]] | None = None,
    journal_mappings: Iterable[Mapping[str, Any]] | None = None,
    shared_ledger_confirmed: Iterable[int] = (),
) -> SyncFlow:
    """Change configuration fields (and the client or connections) of a flow. When a value
    changed, the configuration version rises; the schedule follows the flow either way. The
    bookkeeping fields (cursor, run lease, version) are never written from ``flow``'s possibly
    stale copy. Raises ValidationError, also when the flow would be enabled without its setup
    complete (see :func:`flow_enabling_check`).

    ``vat_mappings``/``journal_mappings``: the mapping rows the caller saves right after (as the
    admin does with its inlines), which the completeness check counts instead of the stored ones;
    they are not saved here. ``shared_ledger_confirmed``: see :func:`flow_shared_ledger_check`."""
    editable = (*FLOW_RELATION_FIELDS, *flow_configuration_fields())
    _check_field_names(data, editable)
    stored = SyncFlow.objects.get(pk=flow.pk)
    for field_name, value in data.items():
        setattr(flow, field_name, value)
    _flow_validate(flow)
    flow_enabling_check(
        flow=flow, before=stored, vat_mappings=vat_mappings, journal_mappings=journal_mappings
    )
    flow_shared_ledger_check(flow=flow, before=stored, confirmed=shared_ledger_confirmed)
    attnames = [SyncFlow._meta.get_field(name).attname for name in editable]
    changed = any(getattr(flow, name) != getattr(stored, name) for name in attnames)
    flow.save(update_fields=[*editable, "updated_at"])
    if changed:
        flow_config_changed(flow=flow)
    flow_schedule_sync(flow=flow)
    return flow


def vat_mapping_key(row: Mapping[str, Any]) -> tuple:
    """What identifies a VAT mapping within a flow: direction, rate and source tax id."""
    rate = row.get("source_rate")
    return (
        row.get("direction"),
        None if rate in (None, "") else Decimal(str(rate)).normalize(),
        row.get("source_tax_id") or "",
    )


@transaction.atomic
def flow_mappings_replace(
    *,
    flow: SyncFlow,
    vat_mappings: Iterable[Mapping[str, Any]],
    journal_mappings: Iterable[Mapping[str, Any]],
) -> None:
    """Replace all VAT and journal mappings of the flow with the given rows (model field names
    as keys) and raise its configuration version. Raises ValidationError naming the bad row."""
    vat_mappings, journal_mappings = list(vat_mappings), list(journal_mappings)
    # The database's unique constraint lets rows with no rate repeat (NULLs are distinct), so
    # the same source tax id could be mapped twice; refuse that here.
    seen: set[tuple] = set()
    for index, row in enumerate(vat_mappings):
        key = vat_mapping_key(row)
        if key in seen:
            raise ValidationError(
                {f"vat_mappings[{index}]": gettext("This source rate or tax is mapped twice.")}
            )
        seen.add(key)
    flow.vat_mappings.all().delete()
    flow.journal_mappings.all().delete()
    for model, rows, label in (
        (VatMapping, vat_mappings, "vat_mappings"),
        (JournalMapping, journal_mappings, "journal_mappings"),
    ):
        for index, row in enumerate(rows):
            mapping = model(flow=flow, **row)
            try:
                mapping.full_clean()
            except ValidationError as exc:
                raise ValidationError({f"{label}[{index}]": exc.messages}) from exc
            mapping.save()
    flow_config_changed(flow=flow)


@transaction.atomic
def flow_delete(*, flow: SyncFlow) -> None:
    """Delete a flow with its mappings, runs and records, and its schedule."""
    Schedule.objects.filter(name=flow_schedule_name(flow.pk)).delete()
    config_change_record(flow=flow, deleted=True)
    flow.delete()


def flow_mappings_suggest(*, flow: SyncFlow, rates: Iterable[Decimal] | None = None) -> Suggestions:
    """Read both tools' lookups and fill what a person has not set yet: the folder when the
    connection has only one, journals, default/collective/rounding/discount accounts, rounding VAT
    codes and a VAT mapping for every source rate with one sensible target code. Never overwrites a
    value already set. ``rates`` limits the VAT mappings to those source rates. Raises InvsyncError
    when a tool cannot be reached."""
    source = connector_for(flow.invoicing_connection)
    target = connector_for(flow.accounting_connection)
    try:
        if not flow.folder:
            folders = target.list_folders()
            if len(folders) == 1:
                flow.folder, flow.folder_name = folders[0].id, folders[0].name
                flow.company_currency = folders[0].currency or flow.company_currency
        if not flow.folder:
            return Suggestions()
        suggestions = suggest(
            source_rates=source.list_tax_rates(),
            vat_codes=target.list_vat_codes(flow.folder),
            accounts=target.list_accounts(flow.folder),
            journals=target.list_journals(flow.folder),
        )
    finally:
        source.close()
        target.close()
    with transaction.atomic():
        for name, number in suggestions.accounts.items():
            if not getattr(flow, name):
                setattr(flow, name, number)
        if not flow.sales_journal:
            flow.sales_journal = suggestions.journals.get(Direction.SALES, "")
        if not flow.purchases_journal:
            flow.purchases_journal = suggestions.journals.get(Direction.PURCHASES, "")
        if not flow.sales_rounding_vat_code:
            flow.sales_rounding_vat_code = suggestions.rounding_vat.get(Direction.SALES, "")
        if not flow.purchases_rounding_vat_code:
            flow.purchases_rounding_vat_code = suggestions.rounding_vat.get(Direction.PURCHASES, "")
        flow.save()
        wanted = None if rates is None else {Decimal(r) for r in rates}
        mapped = {(m.direction, m.source_tax_id or m.source_rate) for m in flow.vat_mappings.all()}
        for row in suggestions.vat:
            key = (row.direction.value, row.tax_id or row.rate)
            if not row.code or key in mapped or (wanted is not None and row.rate not in wanted):
                continue
            VatMapping.objects.create(
                flow=flow,
                direction=row.direction.value,
                source_rate=None if row.tax_id else row.rate,
                source_tax_id=row.tax_id or "",
                target_code=row.code,
                collected_code=row.collected_code or "",
            )
        flow_config_changed(flow=flow)
    return suggestions


# -- Setup completeness ----------------------------------------------------------------------


def _steps_text(steps) -> str:
    return "; ".join(f"{step.name} ({step.detail.rstrip('.')})" for step in steps)


def flow_enabling_check(
    *,
    flow: SyncFlow,
    before: SyncFlow | None,
    vat_mappings: Iterable[Any] | None = None,
    journal_mappings: Iterable[Any] | None = None,
) -> None:
    """Raise ValidationError on ``enabled`` when ``flow`` (with its new values, not saved yet) is
    to be saved enabled while its setup checklist has steps missing.

    Turning a flow on (``before``, the stored flow, is None or disabled) needs every step done.
    An enabled flow stays editable while a step is missing that was missing already (a connection
    whose last check failed must not lock the flow's page), but a change that takes away a step
    that was done is refused. ``vat_mappings``/``journal_mappings``: the rows the flow will have
    (None: the stored ones). Used by flow_create, flow_update and the admin's form alike."""
    if not flow.enabled:
        return
    missing = setup_missing(
        flow_setup_checklist(flow, vat_mappings=vat_mappings, journal_mappings=journal_mappings)
    )
    if not missing:
        return
    if before is not None and before.enabled:
        done_before = {step.key for step in flow_setup_checklist(before) if not step.blocking}
        lost = [step for step in missing if step.key in done_before]
        if lost:
            raise ValidationError(
                {
                    "enabled": gettext(
                        "This change would leave the enabled flow incomplete: %(steps)s. "
                        "Complete these steps, or disable the flow."
                    )
                    % {"steps": _steps_text(lost)}
                }
            )
        return
    raise ValidationError(
        {
            "enabled": gettext(
                "A flow can be enabled only once its setup is complete. Missing: %(steps)s."
            )
            % {"steps": _steps_text(missing)}
        }
    )


SHARED_LEDGER = "shared_ledger"  # the ValidationError code of flow_shared_ledger_check


def flow_shared_ledger_check(
    *, flow: SyncFlow, before: SyncFlow | None, confirmed: Iterable[int] = ()
) -> None:
    """Raise ValidationError on ``enabled`` (code ``shared_ledger``, param ``flows``: their ids)
    when ``flow`` is to be saved enabled while other enabled flows read the same invoicing
    account and write to the same accounting folder, unless every one of them is in
    ``confirmed`` (the ids a person confirmed after reading the message naming them).

    Checked when the flow is turned on, or changes its connections, folder or scope while on; a
    flow already on with the same ledger is not asked again (the flow turned on later was)."""
    if not flow.enabled:
        return
    ledger = flow_ledger(flow)
    if ledger is None:
        return
    if (
        before is not None
        and before.enabled
        and flow_ledger(before) == ledger
        and before.scope == flow.scope
    ):
        return
    confirmed = set(confirmed)
    others = [o for o in flows_sharing_ledger(flow, enabled_only=True) if o.pk not in confirmed]
    if not others:
        return
    raise ValidationError(
        {"enabled": ValidationError(shared_ledger_message(others), code=SHARED_LEDGER,
                                    params={"flows": [o.pk for o in others]})}
    )  # fmt: skip


def shared_ledger_message(others: Iterable[SyncFlow]) -> str:
    """What a person confirms before a flow shares its ledger with ``others``."""
    others = list(others)
    names = ", ".join(describe_flow(other) for other in others)
    return ngettext(
        "The enabled flow %(names)s already reads the same invoicing account and writes to the "
        "same accounting folder. If you enable this flow too, no invoice is written twice: "
        "before writing, each flow looks for the entry any other flow wrote, and marks the "
        "invoice synced with that entry instead (its record names the flow that wrote it). It "
        "keeps running unchanged; each invoice is written by whichever flow reaches it first, "
        "with that flow's accounts, journals and VAT codes. Confirm to enable both, or disable "
        "the other flow first.",
        "The enabled flows %(names)s already read the same invoicing account and write to the "
        "same accounting folder. If you enable this flow too, no invoice is written twice: "
        "before writing, each flow looks for the entry any other flow wrote, and marks the "
        "invoice synced with that entry instead (its record names the flow that wrote it). They "
        "keep running unchanged; each invoice is written by whichever flow reaches it first, "
        "with that flow's accounts, journals and VAT codes. Confirm to enable both, or disable "
        "the other flow first.",
        len(others),
    ) % {"names": names}


# -- Lookups for the mapping forms -----------------------------------------------------------


def _lookups_fetch(
    *,
    connection: Connection,
    role: str,
    lookups: FlowLookups,
    reads: list[tuple[str, str, str]],
) -> None:
    """Open ``connection``'s connector once and read each (list, folder, attribute) in
    ``reads``, caching each list as it comes. A failure is added to ``lookups.problems``; the
    lists read before it are kept."""

    try:
        connector = connector_for(connection)
    except InvsyncError as error:
        lookups.problems.append(LookupProblem(role, error.code, error.message))
        return
    try:
        for name, folder, attribute in reads:
            if name == "folders":
                rows = connector.list_folders()
            elif name == "accounts":
                rows = connector.list_accounts(folder)
            elif name == "vat_codes":
                rows = connector.list_vat_codes(folder)
            elif name == "tax_rates":
                rows = connector.list_tax_rates()
            elif role == "accounting":
                rows = connector.list_journals(folder)
            else:
                rows = connector.list_journals()
            LookupCache.objects.update_or_create(
                connection=connection,
                folder=folder,
                name=name,
                defaults={"payload": lookup_rows_encode(name, role, rows)},
            )
            setattr(lookups, attribute, tuple(rows))
            if name != "folders":
                stamp = "target_fetched_at" if role == "accounting" else "source_fetched_at"
                setattr(lookups, stamp, timezone.now())
    except InvsyncError as error:
        lookups.problems.append(LookupProblem(role, error.code, error.message))
    finally:
        connector.close()


def flow_lookups_load(
    *, flow: SyncFlow, folder: str | None = None, refresh: bool = False
) -> FlowLookups:
    """Both tools' lists for the flow's folder (or ``folder``), as the mapping forms need them:
    the accounting tool's folders, accounts (the whole chart: forms filter it by class), VAT codes
    and journals, and the invoicing tool's tax rates (and journals, where it has them).

    What the cache (connectors.models.LookupCache) holds is used as is; what it lacks, or
    everything when ``refresh``, is read from the tools, one connector per tool and one call per
    list, and cached. A tool that cannot be reached never raises here: its error goes to
    ``problems`` and its cached lists, if any, stay. ``flow`` may be unsaved: only its
    connections and folder are used."""
    folder = flow.folder if folder is None else folder
    lookups = flow_cached_lookups(flow, folder=folder)
    if flow.accounting_connection_id:
        reads = []
        if refresh or lookups.folders is None:
            reads.append(("folders", "", "folders"))
        if folder and (refresh or not lookups.has_folder_lists):
            reads += [(name, folder, name) for name in TARGET_FOLDER_LOOKUPS]
        if reads:
            _lookups_fetch(
                connection=flow.accounting_connection,
                role="accounting",
                lookups=lookups,
                reads=reads,
            )
    if flow.invoicing_connection_id and (refresh or lookups.source_rates is None):
        reads = [("tax_rates", "", "source_rates")]
        try:
            with_journals = connector_class_for(flow.invoicing_connection).supports_journals
        except InvsyncError:
            with_journals = False  # _lookups_fetch reports the missing provider
        if with_journals:
            reads.append(("journals", "", "source_journals"))
        _lookups_fetch(
            connection=flow.invoicing_connection,
            role="invoicing",
            lookups=lookups,
            reads=reads,
        )
    return lookups
