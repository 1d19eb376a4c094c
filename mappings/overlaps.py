"""Reads: which flows feed one ledger from one source account (DESIGN: idempotency is per ledger).

Two flows overlap when they read the same invoicing account and write to the same folder of the
same accounting account, whatever their connections (two clients' connections may reach one
account). Accounts are compared by their connectors' ``account_identity``, computed from the
connections' settings: no call to any tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.errors import InvsyncError
from connectors.selectors import connection_account_identity
from mappings.flow_settings import scope_directions
from mappings.models import SyncFlow


@dataclass(frozen=True)
class Ledger:
    """Where a flow reads and writes: its source account, its target account and folder."""

    source_account: str
    target_account: str
    folder: str


def flow_ledger(flow: SyncFlow) -> Ledger | None:
    """The flow's ledger; None when a connection's settings name no account (not installed,
    incomplete): such a flow cannot run, and overlaps nothing."""
    if not flow.folder or flow.invoicing_connection_id is None:
        return None
    if flow.accounting_connection_id is None:
        return None
    try:
        return Ledger(
            connection_account_identity(flow.invoicing_connection),
            connection_account_identity(flow.accounting_connection),
            str(flow.folder),
        )
    except InvsyncError:
        return None


def scopes_overlap(scope: str, other: str) -> bool:
    """Whether two flows' scopes share invoices: a sales-only and a purchases-only flow never
    read the same invoice."""
    return bool(set(scope_directions(scope)) & set(scope_directions(other)))


def flows_sharing_ledger(flow: SyncFlow, *, enabled_only: bool = False) -> list[SyncFlow]:
    """The other flows (enabled or not, unless ``enabled_only``) that read the same source
    account and write to the same folder of the same accounting account as ``flow``, in a scope
    that shares invoices with its own."""
    ledger = flow_ledger(flow)
    if ledger is None:
        return []
    candidates = SyncFlow.objects.filter(folder=flow.folder).select_related(
        "client", "invoicing_connection", "accounting_connection"
    )
    if flow.pk is not None:
        candidates = candidates.exclude(pk=flow.pk)
    if enabled_only:
        candidates = candidates.filter(enabled=True)
    return [
        other
        for other in candidates.order_by("pk")
        if scopes_overlap(flow.scope, other.scope) and flow_ledger(other) == ledger
    ]


def describe_flow(flow: SyncFlow) -> str:
    """How messages name a flow: ``client/name (id N)``."""
    return f"{flow.client.name}/{flow.name} (id {flow.pk})"
