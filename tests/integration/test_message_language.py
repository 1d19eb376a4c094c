"""Messages people read in their language, naming things as the tools name them: a failed record's
message (stored as a key and parameters) reads in French and in English from the same row, an
unmapped tax is named by its name and rate, never its id; a row stored before keys existed shows its
text; a failed connection check and the provider's setting labels read in French.

The French assertions need fr_m1.po merged into locale/fr (the lead merges the helpers' files)."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import translation

from connectors.canonical import Direction, InvoiceType, SourceTaxRate
from connectors.errors import ErrorCode
from connectors.models import LookupCache
from mappings.lookups import lookup_rows_encode
from mappings.models import SyncFlow
from syncs.models import RecordStatus, SyncedRecord
from syncs.services import flow_sync
from tests.factories import (
    ConnectionFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
)

pytestmark = pytest.mark.django_db

ENGLISH_MESSAGE = "Purchase tax 'TVA déductible 20 %' (20 %) is not mapped to a VAT code."
FRENCH_MESSAGE = "La taxe d'achat « TVA déductible 20 % » (20 %) ne correspond à aucun code TVA."


def text_of(response) -> str:
    """The page's visible text, entities decoded and spaces collapsed."""
    page = response.content.decode()
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture
def in_french(admin_client):
    def switch(language: str):
        response = admin_client.post(
            reverse("set_language"), {"language": language, "next": "/admin/"}
        )
        assert response.status_code == 302
        return admin_client

    yield switch
    translation.activate("en")


@pytest.fixture
def unmapped_tax_record(memory_connectors):
    """A purchase invoice whose tax (id 60 in the invoicing tool, 'TVA déductible 20 %' in its
    list of taxes as last read) no VAT row maps, failed by a real run."""
    source, _ = memory_connectors
    flow = SyncFlowFactory(vat=[("purchases", "10.0", "A10"), ("sales", "20.0", "V20")])
    taxes = [SourceTaxRate(Direction.PURCHASES, D("20"), "60", "TVA déductible 20 %")]
    LookupCache.objects.create(
        connection=flow.invoicing_connection,
        folder="",
        name="tax_rates",
        payload=lookup_rows_encode("tax_rates", "invoicing", taxes),
    )
    invoice = InvoiceFactory(
        type=InvoiceType.SUPPLIER_INVOICE,
        lines=(InvoiceLineFactory(tax_rate=D("20"), tax_id="60"),),
    )
    source.put(invoice)
    flow_sync(flow=SyncFlow.objects.get(pk=flow.pk))
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    assert record.status == RecordStatus.FAILED
    return record


def test_a_failed_record_stores_its_message_as_a_key_naming_the_tax_without_its_id(
    unmapped_tax_record,
):
    record = unmapped_tax_record
    assert record.error_code == ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
    assert record.error_message == ENGLISH_MESSAGE
    assert record.error_key == "engine.purchases_tax_not_mapped"
    assert record.error_params == {"name": "TVA déductible 20 %", "rate": {"decimal": "20"}}
    assert "60" not in record.error_message


def test_the_same_failed_record_reads_in_english_and_in_french(unmapped_tax_record, in_french):
    url = reverse("admin:syncs_syncedrecord_change", args=[unmapped_tax_record.pk])
    english = text_of(in_french("en").get(url))
    assert ENGLISH_MESSAGE in english
    french = text_of(in_french("fr").get(url))
    assert FRENCH_MESSAGE in french
    assert ENGLISH_MESSAGE not in french


def test_a_row_stored_before_keys_existed_shows_its_text(memory_connectors, in_french):
    old = SyncedRecordFactory(
        status=RecordStatus.FAILED,
        error_code=ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
        error_message="Purchase tax '60' is not mapped to a VAT code.",
    )
    url = reverse("admin:syncs_syncedrecord_change", args=[old.pk])
    assert "Purchase tax '60' is not mapped to a VAT code." in text_of(in_french("fr").get(url))


@pytest.fixture
def tryton_without_database():
    return ConnectionFactory(
        name="Compta Tryton",
        kind="accounting",
        provider="tryton",
        auth_kind="credentials",
        settings={"url": "http://127.0.0.1:9/"},
        credentials={"username": "admin", "password": "secret-pw"},
    )


def test_a_failed_connection_check_reads_in_french(tryton_without_database, in_french):
    client = in_french("fr")
    connection = tryton_without_database
    response = client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [connection.pk]},
        follow=True,
    )
    said = [str(m) for m in response.context["messages"]]
    assert said == [
        f"{connection} : échec — La connexion Tryton 'Compta Tryton' a besoin d'un nom de base "
        "de données."
    ]
    connection.refresh_from_db()
    assert connection.last_check_key == "check.tryton_no_database"
    assert connection.last_check_message == (
        "The Tryton connection 'Compta Tryton' needs a database name."
    )
    page = text_of(client.get(reverse("admin:connectors_connection_change", args=[connection.pk])))
    assert "La connexion Tryton 'Compta Tryton' a besoin d'un nom de base de données." in page


def test_the_providers_setting_labels_read_in_french_on_the_connection_form(
    tryton_without_database, in_french
):
    url = reverse("admin:connectors_connection_change", args=[tryton_without_database.pk])
    french = text_of(in_french("fr").get(url))
    assert "Adresse du serveur" in french and "Délai d'attente (s)" in french
    assert "Secondes d'attente de chaque réponse (par défaut 30)." in french
    assert "Server URL" not in french and "Seconds to wait" not in french
    english = text_of(in_french("en").get(url))
    assert "Server URL" in english and "Seconds to wait for each answer (default 30)." in english


def test_a_skipped_record_gives_its_reason_in_the_readers_language_with_its_dates(
    memory_connectors, in_french
):
    """The engine's skip reasons are keys too: an invoice issued before the flow's start date
    reads in English and in French from the same row, the dates as each language writes them."""
    source, _ = memory_connectors
    flow = SyncFlowFactory(start_date=dt.date(2026, 2, 1))
    invoice = InvoiceFactory(issue_date=dt.date(2026, 1, 15))
    source.put(invoice)
    flow_sync(flow=SyncFlow.objects.get(pk=flow.pk))
    record = SyncedRecord.objects.get(flow=flow, source_id=invoice.source_id)
    assert record.status == RecordStatus.SKIPPED
    assert record.skip_key == "engine.skip.before_start"
    assert record.skip_reason == "Issued on 2026-01-15, before the flow's start date 2026-02-01."
    url = reverse("admin:syncs_syncedrecord_change", args=[record.pk])
    assert "before the flow's start date" in text_of(in_french("en").get(url))
    french = text_of(in_french("fr").get(url))
    assert "Émise le 15/01/2026, avant la date de début du flux (01/02/2026)." in french
    assert "before the flow's start date" not in french
