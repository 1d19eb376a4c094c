"""Failure review in the admin: failed records grouped by error code with the fix and a retry per
group, a retry button per record and per flow, and per-record line overrides (validated, then used
on the retry). Runs go through the in-memory connectors; retries through django-q2 in sync mode."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from connectors.errors import CATALOGUE, ErrorCode
from mappings.models import SyncFlow, VatMapping
from syncs import services as sync_services
from syncs.admin.failures import fix_links
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync, record_overrides_set
from tests.factories import (
    InvoiceFactory,
    InvoiceLineFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TAX = ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
PDF = ErrorCode.PDF
INACTIVE = ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE


def staff_client(client, flow, *codenames):
    """A logged-in staff user, member of ``flow``'s client, with the given permissions."""
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    flow.client.members.add(user)
    client.force_login(user)
    return client


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk))
    assert result is not None
    return result


def failures_url(flow=None):
    if flow is None:
        return reverse("admin:syncs_failures")
    return reverse("admin:syncs_flow_failures", args=[flow.pk])


def record_url(record, view="change"):
    return reverse(f"admin:syncs_syncedrecord_{view}", args=[record.pk])


def groups(response) -> dict[str, dict]:
    return {group["code"]: group for group in response.context["groups"]}


@pytest.fixture
def failed(memory_connectors):
    """Two flows of one client: the first with 3 unmapped-rate failures and 1 PDF failure, the
    second with 2 inactive-account failures; a synced record that must not be counted."""
    flow = SyncFlowFactory(name="Main")
    other = SyncFlowFactory(name="Second", client=flow.client)
    SyncedRecordFactory.create_batch(3, flow=flow, error_code=TAX)
    SyncedRecordFactory(flow=flow, error_code=PDF, error_message="No PDF.")
    SyncedRecordFactory.create_batch(2, flow=other, error_code=INACTIVE)
    SyncedRecordFactory(flow=flow, status=RecordStatus.SYNCED, error_code="")
    return flow, other


# -- Grouped counts and links ----------------------------------------------------------------------


def test_flow_failures_are_grouped_by_code_with_counts_largest_first(admin_client, failed):
    flow, _ = failed
    response = admin_client.get(failures_url(flow))
    assert response.status_code == 200
    assert [(g["code"], g["count"]) for g in response.context["groups"]] == [(TAX, 3), (PDF, 1)]
    assert response.context["failed_total"] == 4


def test_each_group_shows_the_catalogue_text_and_links_to_the_fix_and_the_records(
    admin_client, failed
):
    flow, _ = failed
    response = admin_client.get(failures_url(flow))
    html = response.content.decode()
    flow_page = f"/admin/mappings/syncflow/{flow.pk}/change/"
    tax, pdf = groups(response)[TAX], groups(response)[PDF]
    assert tax["flows"][0]["fix_links"] == [
        ("VAT mappings of the flow", f"{flow_page}#vat_mappings-group")
    ]
    assert pdf["flows"][0]["fix_links"] == [
        (
            "Flow setting: synchronise invoices without PDF",
            f"{flow_page}#id_sync_without_attachment",
        )
    ]
    assert tax["records_url"] == (
        f"/admin/syncs/syncedrecord/?flow__id__exact={flow.pk}&status__exact=failed"
        f"&error_code__exact={TAX}"
    )
    for code in (TAX, PDF):
        info = CATALOGUE[code]
        assert f'id="code-{code}"' in html
        assert escape(info.description) in html
        assert escape(info.resolution) in html
    assert f"{flow_page}#vat_mappings-group" in html
    assert tax["records_url"].replace("&", "&amp;") in html
    assert "Retry all of this code" in html
    assert "Retry all failed records of this flow" in html


def test_the_records_link_lists_exactly_the_groups_records(admin_client, failed):
    flow, _ = failed
    url = groups(admin_client.get(failures_url(flow)))[TAX]["records_url"]
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 3


def test_failures_of_all_flows_are_grouped_by_code_and_split_by_flow(admin_client, failed):
    _, other = failed
    response = admin_client.get(failures_url())
    by_code = groups(response)
    assert {code: g["count"] for code, g in by_code.items()} == {TAX: 3, INACTIVE: 2, PDF: 1}
    assert [(row["flow"], row["count"]) for row in by_code[INACTIVE]["flows"]] == [(other, 2)]
    assert by_code[INACTIVE]["flows"][0]["fix_links"] == [
        (
            "Flow setting: sales account (products)",
            f"/admin/mappings/syncflow/{other.pk}/change/#id_default_sales_account",
        )
    ]
    assert by_code[INACTIVE]["records_url"] == (
        f"/admin/syncs/syncedrecord/?status__exact=failed&error_code__exact={INACTIVE}"
    )


def test_fix_links_follow_the_catalogue_setting(memory_connectors):
    flow = SyncFlowFactory()
    flow_page = f"/admin/mappings/syncflow/{flow.pk}/change/"
    links = {code: fix_links(flow, CATALOGUE[code]) for code in ErrorCode}
    assert links[ErrorCode.MAPPING_JOURNAL_NOT_FOUND] == [
        ("Journal mappings of the flow", f"{flow_page}#journal_mappings-group")
    ]
    assert links[ErrorCode.PARTNER_NOT_FOUND] == [
        ("Partner links of the flow", f"/admin/syncs/partnerlink/?flow__id__exact={flow.pk}")
    ]
    assert links[ErrorCode.AUTHENTICATION_FAILED] == [
        (
            "Invoicing connection",
            f"/admin/connectors/connection/{flow.invoicing_connection_id}/change/",
        ),
        (
            "Accounting connection",
            f"/admin/connectors/connection/{flow.accounting_connection_id}/change/",
        ),
    ]
    assert links[ErrorCode.AMOUNT_VALIDATION] == [
        ("Flow setting: rounding tolerance", f"{flow_page}#id_rounding_tolerance")
    ]
    assert links[ErrorCode.CONFIGURATION_INCOMPLETE] == [("Flow configuration", flow_page)]
    assert links[ErrorCode.LINE_VALIDATION] == []  # fixed in the invoicing tool
    # Every catalogued setting resolves to a link.
    assert all(links[code] for code, info in CATALOGUE.items() if info.setting)


def test_no_failures_says_so(admin_client, memory_connectors):
    flow = SyncFlowFactory()
    response = admin_client.get(failures_url(flow))
    assert response.context["groups"] == [] and 'id="no-failures"' in response.content.decode()


# -- Retries ---------------------------------------------------------------------------------------


@pytest.fixture
def synced_flow(memory_connectors):
    """A flow whose last run failed two invoices on an unmapped 2.1 % rate and one on its PDF."""
    source, target = memory_connectors
    flow = SyncFlowFactory(sync_without_attachment=False)
    unmapped = InvoiceFactory.create_batch(2, lines=(InvoiceLineFactory(tax_rate=D("2.1")),))
    no_pdf = InvoiceFactory()
    source.put(*unmapped, no_pdf, InvoiceFactory())
    source.failing_attachments.add(no_pdf.source_id)
    result = run(flow)
    assert (result.synced_count, result.failed_count) == (1, 3)
    return flow, source, target, [i.source_id for i in unmapped], no_pdf.source_id


def statuses(flow) -> dict[str, str]:
    return dict(SyncedRecord.objects.filter(flow=flow).values_list("source_id", "status"))


def test_retry_all_of_a_code_retries_only_those_and_they_sync_once_fixed(
    admin_client, synced_flow, q_sync
):
    flow, source, target, unmapped, no_pdf = synced_flow
    # Fix both causes, without a configuration change that would retry everything by itself.
    VatMapping.objects.create(flow=flow, direction="sales", source_rate=D("2.1"), target_code="V20")
    source.failing_attachments.clear()
    response = admin_client.post(failures_url(flow), {"action": "retry_code", "code": TAX})
    assert response.status_code == 302
    after = statuses(flow)
    assert [after[i] for i in unmapped] == [RecordStatus.SYNCED, RecordStatus.SYNCED]
    assert after[no_pdf] == RecordStatus.FAILED  # another code: not retried
    assert len(target.entries) == 3
    messages = [str(m) for m in response.wsgi_request._messages]
    assert "Queued 2 failed records for retry." in messages


def test_retry_all_failed_of_a_flow_from_the_review_page(admin_client, synced_flow, q_sync):
    flow, source, *_ = synced_flow
    VatMapping.objects.create(flow=flow, direction="sales", source_rate=D("2.1"), target_code="V20")
    source.failing_attachments.clear()
    admin_client.post(failures_url(flow), {"action": "retry_all"})
    assert set(statuses(flow).values()) == {RecordStatus.SYNCED}


def test_retry_of_a_code_across_flows_is_limited_to_the_flow_given(
    admin_client, failed, monkeypatch
):
    _, other = failed
    SyncedRecordFactory(flow=other, error_code=TAX)
    passed = []

    def fake(*, records):
        passed.extend(records)
        return len(passed)

    monkeypatch.setattr(sync_services, "records_retry_enqueue", fake)
    admin_client.post(failures_url(), {"action": "retry_code", "code": TAX, "flow": other.pk})
    assert [(r.flow_id, r.status) for r in passed] == [(other.pk, RecordStatus.FAILED)]
    passed.clear()
    admin_client.post(failures_url(), {"action": "retry_code", "code": TAX})
    assert len(passed) == 4


def test_retry_button_on_a_record_page_retries_that_record(admin_client, synced_flow, q_sync):
    flow, source, _, _, no_pdf = synced_flow
    record = SyncedRecord.objects.get(flow=flow, source_id=no_pdf)
    page = admin_client.get(record_url(record)).content.decode()
    assert f'action="{record_url(record, "retry")}"' in page
    source.failing_attachments.clear()
    response = admin_client.post(record_url(record, "retry"))
    assert response.status_code == 302 and response["Location"] == record_url(record)
    record.refresh_from_db()
    assert record.status == RecordStatus.SYNCED
    assert statuses(flow)[no_pdf] == RecordStatus.SYNCED
    assert list(statuses(flow).values()).count(RecordStatus.FAILED) == 2


def test_retry_is_a_post(admin_client, failed):
    record = SyncedRecord.objects.filter(status=RecordStatus.FAILED).first()
    assert admin_client.get(record_url(record, "retry")).status_code == 405


def test_viewers_see_the_review_but_cannot_retry(client, failed):
    flow, _ = failed
    viewer = staff_client(client, flow, "view_syncedrecord")
    response = viewer.get(failures_url(flow))
    assert response.status_code == 200 and not response.context["can_retry"]
    assert "Retry all" not in response.content.decode()
    assert viewer.post(failures_url(flow), {"action": "retry_all"}).status_code == 403
    record = SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).first()
    assert viewer.post(record_url(record, "retry")).status_code == 403
    assert SyncedRecord.objects.filter(status=RecordStatus.FAILED).count() == 6


def test_the_review_needs_the_view_permission(client, failed):
    flow, _ = failed
    nobody = staff_client(client, flow)
    assert nobody.get(failures_url(flow)).status_code == 403
    assert nobody.get(failures_url()).status_code == 403


def test_another_clients_flow_and_records_are_out_of_reach(client, failed):
    flow, _ = failed
    mine = SyncFlowFactory(name="Mine")
    SyncedRecordFactory(flow=mine, error_code=PDF)
    staff = staff_client(client, mine, "view_syncedrecord", "change_syncedrecord")
    assert staff.get(failures_url(flow)).status_code == 404
    assert staff.post(failures_url(flow), {"action": "retry_all"}).status_code == 404
    record = SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).first()
    assert staff.post(record_url(record, "retry")).status_code == 404
    assert staff.get(record_url(record, "overrides")).status_code == 404
    # The review of all flows shows (and retries) only the user's own.
    assert set(groups(staff.get(failures_url()))) == {PDF}
    staff.post(failures_url(), {"action": "retry_code", "code": TAX})
    assert SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED).count() == 4


# -- Line overrides --------------------------------------------------------------------------------


@pytest.fixture
def unmapped(memory_connectors):
    return unmapped_failure(memory_connectors)


def unmapped_failure(memory_connectors):
    """A sales invoice of two lines, the second at an unmapped 2.1 %, failed by a real run (which
    also cached the accounting tool's accounts and VAT codes)."""
    source, target = memory_connectors
    flow = SyncFlowFactory()
    invoice = InvoiceFactory(
        lines=(
            InvoiceLineFactory(description="Consulting", account_number="706"),
            InvoiceLineFactory(description="Books", untaxed_amount=D("50.00"), tax_rate=D("2.1")),
        )
    )
    source.put(invoice)
    run(flow)
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    assert record.error_code == TAX
    return flow, record, target


def overrides_post(client, record, data, retry=False):
    action = {"_retry": "Save and retry"} if retry else {"_save": "Save overrides"}
    return client.post(record_url(record, "overrides"), {**data, **action})


def test_a_failed_record_page_lists_its_lines_with_selects_from_the_cached_lookups(
    admin_client, unmapped
):
    _, record, _ = unmapped
    response = admin_client.get(record_url(record))
    html = response.content.decode()
    form = response.context["overrides_form"]
    rows = form.rows()
    assert [(r.line.description, r.line.untaxed_amount, r.line.tax_rate) for r in rows] == [
        ("Consulting", "100.00", "20.0"),
        ("Books", "50.00", "2.1"),
    ]
    assert rows[0].line.account_number == "706"
    accounts = dict(form.fields["line_1_account"].widget.choices)
    vat_codes = dict(form.fields["line_1_vat_code"].widget.choices)
    assert "707" in accounts and "607" not in accounts  # active accounts only
    assert "V20" in vat_codes and "A20" not in vat_codes  # the invoice's direction only
    assert 'id="overrides"' in html and "Save and retry" in html
    assert f'action="{record_url(record, "overrides")}"' in html


def test_without_cached_lookups_the_overrides_are_typed(admin_client, unmapped):
    from connectors.models import LookupCache

    _, record, _ = unmapped
    LookupCache.objects.all().delete()
    response = admin_client.get(record_url(record))
    form = response.context["overrides_form"]
    assert form.fields["line_0_account"].widget.input_type == "text"
    assert "accounts and VAT codes have not been read" in response.content.decode()
    # Kept as typed: the engine checks them on the retry.
    overrides_post(admin_client, record, {"line_1_account": "999", "line_1_vat_code": "X"})
    record.refresh_from_db()
    assert record.overrides == {"lines": {"1": {"account": "999", "vat_code": "X"}}}


def test_an_inactive_account_is_refused_with_a_message(admin_client, unmapped):
    _, record, _ = unmapped
    response = overrides_post(admin_client, record, {"line_1_account": "411"})
    assert response.status_code == 200
    form = response.context["overrides_form"]
    assert form.errors["line_1_account"] == [
        "Line 2: the account 411 is not active in the accounting tool."
    ]
    assert "the account 411 is not active" in response.content.decode()
    record.refresh_from_db()
    assert record.overrides == {}


def test_save_and_retry_uses_the_overrides_in_the_entry(admin_client, unmapped, q_sync):
    _, record, target = unmapped
    response = overrides_post(
        admin_client, record, {"line_1_account": "707", "line_1_vat_code": "V55"}, retry=True
    )
    assert response.status_code == 302 and response["Location"] == record_url(record)
    record.refresh_from_db()
    assert record.overrides == {"lines": {"1": {"account": "707", "vat_code": "V55"}}}
    assert record.status == RecordStatus.SYNCED
    posting = next(iter(target.entries.values()))["posting"]
    books = next(line for line in posting.lines if line.label == "Books")
    assert (books.account, books.vat_code) == ("707", "V55")
    consulting = next(line for line in posting.lines if line.label == "Consulting")
    assert (consulting.account, consulting.vat_code) == ("706", "V20")  # untouched


def test_saving_overrides_alone_keeps_the_record_failed_and_shows_them(admin_client, unmapped):
    flow, record, _ = unmapped
    before = SyncedRecord.objects.get(pk=record.pk)
    version = SyncFlow.objects.get(pk=flow.pk).config_version
    overrides_post(admin_client, record, {"line_1_vat_code": "V55"})
    record.refresh_from_db()
    assert record.overrides == {"lines": {"1": {"vat_code": "V55"}}}
    assert record.status == RecordStatus.FAILED
    assert record.updated_at == before.updated_at  # still dates the failure
    assert SyncFlow.objects.get(pk=flow.pk).config_version == version
    html = admin_client.get(record_url(record)).content.decode()
    assert "Line 2: VAT code <strong>V55</strong>" in html
    # Blank fields remove the override.
    overrides_post(admin_client, record, {"line_1_vat_code": ""})
    record.refresh_from_db()
    assert record.overrides == {}


def test_overrides_need_the_right_to_change_records(client, unmapped):
    flow, record, _ = unmapped
    viewer = staff_client(client, flow, "view_syncedrecord")
    response = viewer.get(record_url(record))
    assert response.status_code == 200 and "overrides_form" not in response.context
    assert overrides_post(viewer, record, {"line_1_vat_code": "V55"}).status_code == 403


@pytest.mark.parametrize(
    ("lines", "key", "message"),
    [
        ({1: {"account": "9999"}}, "lines[1].account", "account 9999 does not exist"),
        ({1: {"account": "607"}}, "lines[1].account", "account 607 is not active"),
        ({1: {"vat_code": "ZZ"}}, "lines[1].vat_code", "VAT code ZZ does not exist"),
        ({1: {"vat_code": "A20"}}, "lines[1].vat_code", "A20 is a purchases code"),
        ({5: {"account": "707"}}, "lines[5]", "no line 6"),
        ({0: {"colour": "red"}}, "lines[0]", "Unknown override"),
    ],
)
def test_record_overrides_set_validates_against_the_cached_lookups(unmapped, lines, key, message):
    _, record, _ = unmapped
    with pytest.raises(ValidationError) as raised:
        record_overrides_set(record=record, lines=lines)
    assert message in " ".join(raised.value.message_dict[key])
    record.refresh_from_db()
    assert record.overrides == {}


def test_overrides_on_a_synced_record_are_refused(memory_connectors):
    record = SyncedRecordFactory(status=RecordStatus.SYNCED, snapshot={"lines": [{}]})
    with pytest.raises(ValidationError, match="already written"):
        record_overrides_set(record=record, lines={0: {"account": "707"}})
