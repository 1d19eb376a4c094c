"""The admin in French and English: the language switch is remembered, the key pages rendered in
French show no English product text, amounts and dates are written as French accountants write
them, and the audit log names settings as the flow's form does."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from mappings.services import flow_update
from syncs.models import RunStatus
from tests.factories import SyncedRecordFactory, SyncFlowFactory, SyncRunFactory

pytestmark = pytest.mark.django_db

NBSP = "\u00a0"

# Product texts that would betray an untranslated page (whole words, case kept).
ENGLISH = [
    "How to fix it", "How to fix", "Failed records", "failed records", "Sync now", "Last run",
    "Next run", "Dashboards", "Dashboard", "Failures of all flows", "Failures", "Retry",
    "accounting tool", "invoicing tool", "Preview", "Waiting for PDF", "Synced", "Setup:",
    "What to sync", "Journals", "Accounts", "collective account", "VAT mappings",
    "journal mappings", "Flow dashboard", "Two-factor authentication",
    "Clients, flows and records", "is not mapped", "error code", "Error code", "never",
    "not scheduled", "Each invoice counts once", "Reconcile", "Records", "Runs", "sync flow",
    "synced record", "configuration change", "settings changed", "Refresh from",
    "Propose VAT mappings", "Invoicing connection", "Accounting connection", "Sales", "Purchases",
    "rounding", "the flow", "Entry", "Download", "Line overrides", "Skipped", "Failed",
    "Succeeded", "Finished with failed records", "What needs attention",
]  # fmt: skip


@pytest.fixture
def french(admin_client):
    response = admin_client.post(reverse("set_language"), {"language": "fr", "next": "/admin/"})
    assert response.status_code == 302
    yield admin_client
    translation.activate("en")


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def english_left(page: str) -> list[str]:
    text = visible_text(page)
    return [phrase for phrase in ENGLISH if re.search(rf"\b{re.escape(phrase)}\b", text)]


def test_switching_to_french_is_remembered_for_the_next_pages(admin_client):
    english = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="en"' in english.content.decode()
    assert 'id="language-switch"' in english.content.decode()
    assert ">Français</button>" in english.content.decode()
    response = admin_client.post(
        reverse("set_language"), {"language": "fr", "next": reverse("admin:index")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert admin_client.cookies["django_language"].value == "fr"
    # Later pages, even with a browser asking for English, stay in French.
    for url in (reverse("admin:index"), reverse("admin:syncs_syncedrecord_changelist")):
        page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert '<html lang="fr"' in page
        assert "Authentification à deux facteurs" in page and "Déconnexion" in page
        assert ">English</button>" in page
    admin_client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert '<html lang="en"' in page and "Two-factor authentication" in page
    translation.activate("en")


@pytest.fixture
def flow_with_work(memory_connectors):
    flow = SyncFlowFactory(name="Cabinet Martin")
    # The record's message is the engine's, stored as it said it (data, not interface text).
    SyncedRecordFactory(
        flow=flow, number="F-1", total=Decimal("125000.0000"), currency="EUR",
        partner_name="ACME SAS", error_message="5.5 % → ?",
    )  # fmt: skip
    SyncedRecordFactory(flow=flow, number="F-2", status="synced", error_code="", error_message="")
    SyncRunFactory(flow=flow, status=RunStatus.PARTIAL, processed=2, synced_count=1, failed_count=1)
    flow_update(flow=flow, data={"label_mode": "partner"})
    return flow


def test_key_admin_pages_in_french_show_no_english_product_text(french, flow_with_work):
    flow = flow_with_work
    record = flow.records.get(number="F-1")
    pages = {
        "home": reverse("admin:index"),
        "flows": reverse("admin:mappings_syncflow_changelist"),
        "flow": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        "preview": reverse("admin:mappings_syncflow_preview", args=[flow.pk]),
        "records": reverse("admin:syncs_syncedrecord_changelist"),
        "record": reverse("admin:syncs_syncedrecord_change", args=[record.pk]),
        "record preview": reverse("admin:syncs_syncedrecord_preview", args=[record.pk]),
        "failures": reverse("admin:syncs_failures"),
        "dashboards": reverse("admin:syncs_dashboards"),
        "flow dashboard": reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
        "runs": reverse("admin:syncs_syncrun_changelist"),
        "reconciliation": reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
        "audit": reverse("admin:mappings_configchange_changelist"),
        "guided set-up": reverse("invsync_setup_step", args=["client"]),
    }
    left = {}
    for name, url in pages.items():
        response = french.get(url)
        assert response.status_code == 200, name
        found = english_left(response.content.decode())
        if found:
            left[name] = found
    assert left == {}


def test_amounts_and_dates_read_as_a_french_accountant_writes_them(french, flow_with_work):
    page = french.get(reverse("admin:syncs_syncedrecord_changelist")).content.decode()
    assert f"125{NBSP}000,00{NBSP}€" in page
    assert "125000.0000" not in page and "125000" not in visible_text(page)


def test_amounts_in_english_have_the_sign_first_and_thousands_separated(
    admin_client, flow_with_work
):
    page = admin_client.get(reverse("admin:syncs_syncedrecord_changelist")).content.decode()
    assert "€125,000.00" in page and "125000.0000" not in page


def test_the_audit_log_names_settings_as_the_flow_form_does(admin_client, flow_with_work):
    change = flow_with_work.config_changes.order_by("-at", "-id").first()
    page = admin_client.get(reverse("admin:mappings_configchange_change", args=[change.pk]))
    text = visible_text(page.content.decode())
    assert "Entry labels" in text  # the form's label of label_mode
    changes_table = text.split("What changed", 1)[-1].split("Configuration after", 1)[0]
    assert "label_mode" not in changes_table
