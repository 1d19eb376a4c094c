"""Reads about sync flows: finding a flow by name or id, the names of its configuration fields,
its schedule's name and the directions in its scope. The lookups cache is in mappings.lookups, the
setup checklist in mappings.checklist, the VAT proposals in mappings.proposals."""

from __future__ import annotations

from connectors.canonical import Direction
from mappings.flow_settings import FLOW_SETTINGS, scope_directions
from mappings.models import SyncFlow

# The flow's links to its client and connections: set through the services, exported by name.
FLOW_RELATION_FIELDS = ("client", "invoicing_connection", "accounting_connection")


def flow_configuration_fields() -> tuple[str, ...]:
    """The names of the flow's own configuration fields: its name, then every declared flow
    setting (mappings/flow_settings.py). Bookkeeping fields (configuration version, cursor, run
    lease, timestamps) are not settings and so never listed."""
    return ("name", *(setting.name for setting in FLOW_SETTINGS))


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


def flow_directions(flow: SyncFlow) -> list[Direction]:
    """The directions in the flow's scope."""
    return list(scope_directions(flow.scope))
