"""Tryton reports each account's kind from its account type's flags, read with the chart in one
call; the mapping forms then filter by kind, not by the French chart's numbers."""

from __future__ import annotations

import pytest

from connectors.base import ConnectionConfig
from connectors.canonical import AccountKind
from connectors.providers.tryton.target import TrytonTarget
from connectors.selectors import outbound_policy

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]


def test_trytons_chart_states_each_accounts_kind_in_one_call(tryton_accounting):
    target = TrytonTarget(
        ConnectionConfig(
            "credentials", tryton_accounting.settings, tryton_accounting.credentials,
            outbound=outbound_policy(),
        )
    )  # fmt: skip
    calls = []
    search_read = target.client.search_read
    target.client.search_read = lambda model, *a, **k: (
        calls.append(model) or search_read(model, *a, **k)
    )
    try:
        folder = target.list_folders()[0].id
        calls.clear()
        kinds = {a.number: a.kind for a in target.list_accounts(folder)}
    finally:
        target.close()
    assert calls == ["account.account"]
    assert {n: kinds[n] for n in ("4111", "4011", "706", "6071", "658", "758", "44571")} == {
        "4111": AccountKind.RECEIVABLE,
        "4011": AccountKind.PAYABLE,
        "706": AccountKind.REVENUE,
        "6071": AccountKind.EXPENSE,
        "658": AccountKind.EXPENSE,
        "758": AccountKind.OTHER,  # "Autres produits": a type without flags
        "44571": AccountKind.OTHER,  # typed payable, but takes no party: no supplier account
    }
    assert AccountKind.UNKNOWN not in kinds.values()
