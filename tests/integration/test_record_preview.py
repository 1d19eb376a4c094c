"""The admin's preview of a record and its INVOICE.json / CONFIG.json downloads, which must give
the same answer as the offline preview_posting command."""

import json
import subprocess
import sys
from decimal import Decimal as D

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.urls import reverse

from connectors.errors import ErrorCode
from syncs.models import SyncedRecord
from syncs.services import flow_sync
from tests.factories import InvoiceFactory, InvoiceLineFactory, SyncFlowFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_record(memory_connectors):
    source, _ = memory_connectors
    flow = SyncFlowFactory()
    source.put(InvoiceFactory(lines=(InvoiceLineFactory(tax_rate=D("2.1")),)))
    flow_sync(flow=flow, trigger="manual")
    return SyncedRecord.objects.get(flow=flow)


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def preview_posting(tmp_path, invoice: dict, config: dict) -> tuple[int, dict]:
    (tmp_path / "INVOICE.json").write_text(json.dumps(invoice))
    (tmp_path / "CONFIG.json").write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "manage.py", "preview_posting", str(tmp_path / "INVOICE.json"),
         "--config", str(tmp_path / "CONFIG.json")],
        cwd=settings.BASE_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_preview_page_shows_the_failure_with_its_resolution(admin_client, failed_record):
    url = reverse("admin:syncs_syncedrecord_preview", args=[failed_record.pk])
    page = admin_client.get(url).content.decode()
    assert ErrorCode.MAPPING_TAX_RATE_NOT_FOUND in page and "How to fix it" in page
    change = admin_client.get(reverse("admin:syncs_syncedrecord_change", args=[failed_record.pk]))
    assert url in change.content.decode()


def test_downloads_reproduce_the_failure_offline(admin_client, failed_record, tmp_path):
    invoice = admin_client.get(
        reverse("admin:syncs_syncedrecord_invoice_json", args=[failed_record.pk])
    )
    config = admin_client.get(
        reverse("admin:syncs_syncedrecord_config_json", args=[failed_record.pk])
    )
    assert "attachment" in invoice["Content-Disposition"]
    code, output = preview_posting(tmp_path, invoice.json(), config.json())
    assert code == 3
    assert output["code"] == failed_record.error_code
    assert output["message"] == failed_record.error_message


def test_preview_after_fixing_the_mapping_shows_the_entry_and_matches_the_command(
    admin_client, failed_record, tmp_path
):
    failed_record.flow.vat_mappings.create(
        direction="sales", source_rate=D("2.1"), target_code="V0"
    )
    page = admin_client.get(reverse("admin:syncs_syncedrecord_preview", args=[failed_record.pk]))
    html = page.content.decode()
    assert 'id="preview-entry"' in html and "4111" in html and "706" in html
    invoice = admin_client.get(
        reverse("admin:syncs_syncedrecord_invoice_json", args=[failed_record.pk])
    ).json()
    config = admin_client.get(
        reverse("admin:syncs_syncedrecord_config_json", args=[failed_record.pk])
    ).json()
    code, output = preview_posting(tmp_path, invoice, config)
    assert code == 0 and output == page.context["result"]


def test_refresh_reads_the_lookups_again(admin_client, failed_record, memory_connectors):
    _, target = memory_connectors
    target.calls.clear()
    url = reverse("admin:syncs_syncedrecord_preview", args=[failed_record.pk])
    assert admin_client.post(url, {"refresh": "1"}).status_code == 302
    assert target.calls["list_accounts"] == 1


def test_a_user_cannot_preview_another_clients_record(client, failed_record):
    outsider = UserFactory(is_superuser=False)
    outsider.user_permissions.add(Permission.objects.get(codename="view_syncedrecord"))
    client.force_login(outsider)
    for name in ("preview", "invoice_json", "config_json"):
        url = reverse(f"admin:syncs_syncedrecord_{name}", args=[failed_record.pk])
        assert client.get(url).status_code == 404
