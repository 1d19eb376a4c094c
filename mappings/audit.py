"""The audit of flow configuration: who changed what, when.

Every change of a flow's settings or mappings ends in ``flow_config_changed`` (and a deletion in
``flow_delete``); both record a :class:`ConfigChange` holding the difference between the flow's
configuration snapshot now and the one last recorded. The actor comes from the request (see
:class:`AuditActorMiddleware`) or from :func:`acting_as` in commands; anything else is "system".

One save that writes in several steps (the admin saves the flow, then its VAT and journal rows)
runs inside :func:`one_record_per_save`, so that the audit shows it as the one change it is.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from mappings.models import ConfigChange, JournalMapping, SyncFlow, VatMapping
from mappings.selectors import flow_configuration_fields

_actor: ContextVar[Any] = ContextVar("invsync_audit_actor", default=None)
# Inside one_record_per_save: the flows changed so far, by id, recorded when the save ends.
_pending: ContextVar[dict[int, SyncFlow] | None] = ContextVar("invsync_audit_pending", default=None)


@contextlib.contextmanager
def acting_as(actor):
    """Attribute the configuration changes made inside the block to ``actor`` (a user, or a
    label such as "command import_flow")."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


@contextlib.contextmanager
def one_record_per_save():
    """Record the configuration changes made inside the block as one change per flow, when the
    block ends without an exception (call it inside the save's transaction, so that the record
    commits or rolls back with the save). Nested blocks belong to the outermost one."""
    if _pending.get() is not None:
        yield
        return
    pending: dict[int, SyncFlow] = {}
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    for flow in pending.values():
        config_change_record(flow=flow)


class AuditActorMiddleware:
    """Attributes the configuration changes a request makes to its signed-in user."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            with acting_as(user):
                return self.get_response(request)
        return self.get_response(request)


def _text(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def flow_config_snapshot(flow: SyncFlow) -> dict[str, Any]:
    """The flow's whole configuration as plain values: settings, connections and mappings."""
    data = {name: _text(getattr(flow, name)) for name in flow_configuration_fields()}
    data["invoicing_connection"] = str(flow.invoicing_connection)
    data["accounting_connection"] = str(flow.accounting_connection)
    # Read from the database, not through flow.vat_mappings: a flow fetched with its mappings
    # prefetched (the admin's) would show the rows as they were before the save.
    data["vat_mappings"] = sorted(
        f"{m.direction} {m.source_tax_id or _text(m.source_rate) + ' %'} → {m.target_code}"
        + (f" + {m.collected_code}" if m.collected_code else "")  # reverse charge: both codes
        for m in VatMapping.objects.filter(flow_id=flow.pk)
    )
    data["journal_mappings"] = sorted(
        f"{m.source_journal} → {m.target_journal}"
        for m in JournalMapping.objects.filter(flow_id=flow.pk)
    )
    return data


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, list) or isinstance(new, list):
            old_set, new_set = set(old or []), set(new or [])
            changes[key] = {
                "added": sorted(new_set - old_set),
                "removed": sorted(old_set - new_set),
            }
        else:
            changes[key] = {"from": old, "to": new}
    return changes


def _actor_fields() -> dict[str, Any]:
    actor = _actor.get()
    if actor is None:
        return {"actor": None, "actor_label": "system"}
    if isinstance(actor, str):
        return {"actor": None, "actor_label": actor[:200]}
    label = getattr(actor, "email", "") or actor.get_username()
    return {"actor": actor, "actor_label": label[:200]}


def config_change_record(*, flow: SyncFlow, deleted: bool = False) -> ConfigChange | None:
    """Record what changed in the flow's configuration since the last record (nothing when
    nothing did). Inside :func:`one_record_per_save` a change is recorded when the block ends."""
    pending = _pending.get()
    if pending is not None and not deleted:
        pending[flow.pk] = flow
        return None
    if pending is not None:
        pending.pop(flow.pk, None)
    last = ConfigChange.objects.filter(flow=flow).order_by("-at", "-id").first()
    if deleted:
        return ConfigChange.objects.create(
            client_id=flow.client_id, flow=None, flow_label=str(flow)[:300],
            action=ConfigChange.Action.DELETED, changes={},
            snapshot=last.snapshot if last else {}, **_actor_fields(),
        )  # fmt: skip
    snapshot = flow_config_snapshot(flow)
    if last is not None and last.client_id != flow.client_id:
        # Moved to another client: each client's audit keeps to its own names. The old client's
        # ends with the move (not naming the new client), the new client's starts afresh.
        ConfigChange.objects.create(
            client_id=last.client_id, flow=flow, flow_label=last.flow_label,
            action=ConfigChange.Action.CHANGED,
            changes={"client": {"from": str(last.client), "to": "another client"}},
            snapshot=last.snapshot, **_actor_fields(),
        )  # fmt: skip
        last = None
    if last is None:
        action, changes = ConfigChange.Action.CREATED, _diff({}, snapshot)
    else:
        action, changes = ConfigChange.Action.CHANGED, _diff(last.snapshot, snapshot)
        if not changes:
            return None
    return ConfigChange.objects.create(
        client_id=flow.client_id, flow=flow, flow_label=str(flow)[:300], action=action,
        changes=changes, snapshot=snapshot, **_actor_fields(),
    )  # fmt: skip


def config_change_note(*, flow: SyncFlow, changes: dict[str, Any]) -> ConfigChange:
    """Record a change the flow's configuration snapshot does not show (a connection's address,
    its credentials entered again), with who and when. ``changes`` maps names to
    ``{"from": ..., "to": ...}`` and never holds a secret."""
    last = ConfigChange.objects.filter(flow=flow).order_by("-at", "-id").first()
    return ConfigChange.objects.create(
        client_id=flow.client_id, flow=flow, flow_label=str(flow)[:300],
        action=ConfigChange.Action.CHANGED, changes=changes,
        snapshot=last.snapshot if last else flow_config_snapshot(flow), **_actor_fields(),
    )  # fmt: skip
