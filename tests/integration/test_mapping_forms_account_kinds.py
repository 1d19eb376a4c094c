"""The flow page against a target that reports its accounts' kinds with a chart that is not French:
the selects filter by kind, the form and the checklist judge by kind, and the lookups cache keeps
kinds (rows cached before kinds were read are judged by their numbers)."""

from __future__ import annotations

import pytest

from connectors.canonical import Account, AccountKind
from mappings.checklist import flow_setup_checklist
from mappings.lookups import lookup_rows_decode, lookups_from_payload, lookups_to_payload
from mappings.models import SyncFlow
from tests.doubles import MemoryTarget
from tests.integration.test_mapping_forms import (
    change_url,
    choices,
    complete_flow,
    form_data,
)

pytestmark = pytest.mark.django_db

K = AccountKind
UK_CHART = (
    Account("200", "Sales", kind=K.REVENUE),
    Account("260", "Other revenue", kind=K.REVENUE),
    Account("310", "Cost of goods sold", kind=K.EXPENSE),
    Account("610", "Accounts receivable", kind=K.RECEIVABLE),
    Account("800", "Accounts payable", kind=K.PAYABLE),
    Account("820", "VAT", kind=K.TAX),
    Account("860", "Rounding", kind=K.OTHER),
    Account("4111", "Bank charges", kind=K.EXPENSE),  # a French-looking number
)
UK_SETTINGS = {
    "default_sales_account": "200",
    "default_purchases_account": "310",
    "customer_collective_account": "610",
    "supplier_collective_account": "800",
    "rounding_credit_account": "860",
    "rounding_debit_account": "860",
    "sales_discount_account": "310",
    "purchases_discount_account": "260",
}


@pytest.fixture
def uk_target(memory_connectors):
    MemoryTarget.accounts = UK_CHART
    return memory_connectors


def test_selects_offer_the_accounts_of_the_kind_each_setting_takes_whatever_their_numbers(
    admin_client,
    uk_target,
):
    flow = complete_flow(**UK_SETTINGS)
    form = admin_client.get(change_url(flow)).context["adminform"].form
    assert choices(form, "customer_collective_account") == {"610": "610 – Accounts receivable"}
    assert set(choices(form, "supplier_collective_account")) == {"800"}
    assert set(choices(form, "default_sales_account")) == {"200", "260"}
    assert set(choices(form, "default_purchases_account")) == {"310", "4111"}
    assert set(choices(form, "rounding_credit_account")) == {"200", "260", "860"}
    assert "Active receivable accounts" in form.fields["customer_collective_account"].help_text
    assert "class" not in form.fields["customer_collective_account"].help_text
    assert all(step.done for step in flow_setup_checklist(flow) if step.key == "accounts")


def test_an_account_of_another_kind_is_refused_on_save_and_is_a_missing_checklist_step(
    admin_client,
    uk_target,
):
    flow = complete_flow(**UK_SETTINGS)
    response = admin_client.get(change_url(flow))
    data = {**form_data(response), "supplier_collective_account": "610"}
    response = admin_client.post(change_url(flow), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["supplier_collective_account"]
    assert "610 is a receivable account" in errors[0] and "takes a payable account" in errors[0]
    form = response.context["adminform"].form
    assert choices(form, "supplier_collective_account")["610"].endswith("a receivable account)")

    SyncFlow.objects.filter(pk=flow.pk).update(supplier_collective_account="610")
    (step,) = [
        s for s in flow_setup_checklist(SyncFlow.objects.get(pk=flow.pk)) if s.key == "accounts"
    ]
    assert not step.done and "610 is a receivable account" in step.detail


def test_the_lookups_cache_keeps_kinds_and_reads_rows_cached_before_kinds_as_unknown():
    payload = lookups_to_payload(list(UK_CHART), [], [])
    assert payload["accounts"][0] == {
        "number": "200",
        "name": "Sales",
        "active": True,
        "kind": "revenue",
    }
    assert lookups_from_payload({**payload, "vat_codes": [], "journals": []}).accounts == UK_CHART
    assert lookup_rows_decode("accounts", "accounting", payload["accounts"]) == UK_CHART

    old = [{"number": "4111", "name": "Clients", "active": True}, {"number": "7", "kind": "bogus"}]
    decoded = lookup_rows_decode("accounts", "accounting", old)
    assert [a.kind for a in decoded] == [K.UNKNOWN, K.UNKNOWN]
