"""What a target says it cannot do is acted on: the in-memory target switched flag by flag (each
test fails when the flag is ignored, since the in-memory target could still do it)."""

import pytest

from connectors.canonical import Partner, TaxRole
from connectors.errors import ErrorCode
from mappings.checklist import StepState, flow_setup_checklist
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.doubles import MemoryTarget
from tests.factories import InvoiceFactory, SyncFlowFactory
from tests.integration.test_mapping_forms import (
    change_url,
    complete_flow,
    form_data,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(memory_connectors):
    return SyncFlowFactory(accounting_connection__kind="accounting")


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None
    return result


def test_a_target_without_attachments_gets_the_entry_and_no_pdf_is_fetched(
    memory_connectors, flow, monkeypatch
):
    source, target = memory_connectors
    monkeypatch.setattr(MemoryTarget, "supports_attachments", False)
    SyncFlow.objects.filter(pk=flow.pk).update(sync_without_attachment=False)
    source.put(InvoiceFactory(has_attachment=True))
    run(flow)
    (entry,) = target.entries.values()
    assert entry["attachment"] is None
    assert target.calls["attach"] == 0 and source.calls["fetch_attachment"] == 0
    assert SyncedRecord.objects.get(flow=flow).status == RecordStatus.SYNCED


def test_a_target_without_partner_creation_fails_the_invoice_with_partner_not_found(
    memory_connectors, flow, monkeypatch
):
    source, target = memory_connectors
    monkeypatch.setattr(MemoryTarget, "supports_partner_creation", False)
    source.put(InvoiceFactory(partner=Partner(source_id="c-9", name="Nouveau SARL")))
    run(flow)
    record = SyncedRecord.objects.get(flow=flow)
    assert (record.status, record.error_code) == (RecordStatus.FAILED, ErrorCode.PARTNER_NOT_FOUND)
    assert "does not let invsync create one" in record.error_message
    assert target.calls["create_partner"] == 0 and target.entries == {}


def test_a_target_without_drafts_gets_posted_entries_even_if_the_flow_asked_for_drafts(
    memory_connectors, flow, monkeypatch
):
    source, target = memory_connectors
    SyncFlow.objects.filter(pk=flow.pk).update(draft_entries=True)
    source.put(InvoiceFactory())
    run(flow)
    assert [e["posting"].draft for e in target.entries.values()] == [True]  # drafts honoured

    monkeypatch.setattr(MemoryTarget, "supports_draft_entries", False)
    source.put(InvoiceFactory())
    run(flow)
    assert sorted(e["posting"].draft for e in target.entries.values()) == [False, True]


def test_a_target_that_books_vat_from_the_code_gets_tax_lines_without_an_account(
    memory_connectors, flow, monkeypatch
):
    source, target = memory_connectors
    source.put(InvoiceFactory())
    run(flow)
    monkeypatch.setattr(MemoryTarget, "vat_codes_name_accounts", False)
    source.put(InvoiceFactory())
    run(flow)
    tax_accounts = sorted(
        (line.account or "")
        for entry in target.entries.values()
        for line in entry["posting"].lines
        if line.tax_role is TaxRole.TAX
    )
    assert tax_accounts == ["", "44571"]  # the first entry's, named by its VAT code


# -- What the flow page says and refuses ----------------------------------------------------------


def test_the_flow_form_offers_no_drafts_to_a_target_without_them_and_refuses_them_on_save(
    admin_client,
    memory_connectors,
    monkeypatch,
):
    flow = complete_flow()
    form = admin_client.get(change_url(flow)).context["adminform"].form
    assert not form.fields["draft_entries"].disabled  # the in-memory target has drafts

    monkeypatch.setattr(MemoryTarget, "supports_draft_entries", False)
    form = admin_client.get(change_url(flow)).context["adminform"].form
    assert form.fields["draft_entries"].disabled
    assert "has no draft entries" in form.fields["draft_entries"].help_text

    SyncFlow.objects.filter(pk=flow.pk).update(draft_entries=True)  # set before, say
    response = admin_client.get(change_url(flow))
    response = admin_client.post(change_url(flow), form_data(response))
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["draft_entries"]
    assert "has no draft entries" in error and "Untick this box" in error


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("supports_attachments", "PDFs will not be attached"),
        ("supports_partner_creation", f"fail with code {ErrorCode.PARTNER_NOT_FOUND.value}"),
        ("supports_draft_entries", "has no draft entries"),
        ("vat_codes_name_accounts", "tax lines go without an account"),
    ],
)
def test_the_checklist_says_what_the_target_cannot_do(memory_connectors, monkeypatch, flag, said):
    flow = complete_flow()
    assert "target_limits" not in [s.key for s in flow_setup_checklist(flow)]
    monkeypatch.setattr(MemoryTarget, flag, False)
    (step,) = [s for s in flow_setup_checklist(flow) if s.key == "target_limits"]
    # Said as a note, neither done nor missing: the flow may still run.
    assert step.state is StepState.NOTE and not step.blocking and said in step.detail
