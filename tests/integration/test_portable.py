"""export_flow / import_flow: a flow's whole configuration as JSON, never its credentials."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from connectors.models import Client, Connection
from mappings.models import JournalMapping, SyncFlow, VatMapping
from mappings.portable import flow_export
from mappings.selectors import flow_configuration_fields
from tests.factories import ClientFactory, ConnectionFactory, SyncFlowFactory

pytestmark = pytest.mark.django_db

SOURCE_SECRET = "s3cr3t-api-key-XYZ"
TARGET_SECRET = "t0p-s3cr3t-password"

# A value different from the model's default for every configuration field, so a field that does
# not round-trip cannot hide behind its default.
EVERY_FIELD = {
    "name": "Main sync",
    "folder": "42",
    "folder_name": "ACME SAS",
    "company_currency": "USD",
    "enabled": True,
    "scope": "purchases",
    "start_date": dt.date(2026, 1, 1),
    "draft_entries": True,
    "sync_without_attachment": False,
    "label_mode": "partner_and_number",
    "rounding_tolerance": Decimal("0.1234"),
    "schedule_minutes": 15,
    "sales_journal": "VTE",
    "purchases_journal": "ACH",
    "journals_by_source": True,
    "default_sales_account": "7061",
    "default_purchases_account": "6063",
    "customer_collective_account": "411",
    "supplier_collective_account": "401",
    "rounding_credit_account": "7580",
    "rounding_debit_account": "6580",
    "separate_discounts": True,
    "sales_discount_account": "7090",
    "purchases_discount_account": "6090",
    "sales_rounding_vat_code": "V-RND",
    "purchases_rounding_vat_code": "A-RND",
}


@pytest.fixture
def flow():
    client = ClientFactory(name="ACME")
    source = ConnectionFactory(
        client=client,
        name="Invoicing tool",
        kind="invoicing",
        auth_kind="api_key",
        settings={"url": "https://invoicing.example"},
        credentials={"api_key": SOURCE_SECRET},
    )
    target = ConnectionFactory(
        client=client,
        name="Ledger",
        kind="accounting",
        auth_kind="credentials",
        settings={"url": "https://ledger.example", "database": "acme"},
        credentials={"username": "admin", "password": TARGET_SECRET},
    )
    flow = SyncFlowFactory(
        client=client,
        invoicing_connection=source,
        accounting_connection=target,
        vat=[("sales", "20.0", "V20"), ("sales", "5.5", "V55"), ("purchases", "20.0", "A20")],
        **EVERY_FIELD,
    )
    VatMapping.objects.create(
        flow=flow, direction="purchases", source_tax_id="tax-eu-rc", target_code="A-RC"
    )
    JournalMapping.objects.create(flow=flow, source_journal="VT", target_journal="VTE")
    JournalMapping.objects.create(flow=flow, source_journal="HA", target_journal="ACH")
    return flow


def _export(value: str) -> tuple[str, dict]:
    out = StringIO()
    call_command("export_flow", value, stdout=out)
    return out.getvalue(), json.loads(out.getvalue())


def _write(tmp_path, document, name="flow.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def _import(path, *args):
    out, err = StringIO(), StringIO()
    call_command("import_flow", path, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_fixture_sets_every_configuration_field_away_from_its_default():
    assert set(EVERY_FIELD) == set(flow_configuration_fields())
    for name, value in EVERY_FIELD.items():
        assert value != SyncFlow._meta.get_field(name).get_default(), name


def test_export_writes_the_documented_format(flow):
    _, document = _export(str(flow.pk))
    assert document["format"] == "invsync.flow"
    assert document["version"] == 1
    assert document["client"] == "ACME"
    assert set(document["flow"]) == set(flow_configuration_fields())
    for bookkeeping in ("config_version", "source_cursor", "lease_owner", "lease_until", "id"):
        assert bookkeeping not in document["flow"]
    assert document["flow"]["rounding_tolerance"] == "0.1234"
    assert document["flow"]["start_date"] == "2026-01-01"
    assert document["accounting_connection"] == {
        "name": "Ledger",
        "provider": "memory",
        "auth_kind": "credentials",
        "settings": {"url": "https://ledger.example", "database": "acme"},
    }
    assert len(document["vat_mappings"]) == 4
    assert {"source_journal": "VT", "target_journal": "VTE"} in document["journal_mappings"]


def test_export_never_contains_a_credential(flow):
    text, document = _export(str(flow.pk))
    assert SOURCE_SECRET not in text
    assert TARGET_SECRET not in text
    assert "credentials" not in document["invoicing_connection"]
    assert "credentials" not in document["accounting_connection"]


def test_export_to_a_file_by_client_slash_name(flow, tmp_path):
    path = tmp_path / "out.json"
    call_command("export_flow", "ACME/Main sync", "--output", str(path), stderr=StringIO())
    assert json.loads(path.read_text())["flow"]["name"] == "Main sync"


def test_export_of_an_ambiguous_name_lists_the_flows(flow):
    other = SyncFlowFactory(name="Main sync", client__name="Globex")
    with pytest.raises(CommandError) as error:
        _export("Main sync")
    assert f"id {flow.pk}" in str(error.value)
    assert f"id {other.pk}" in str(error.value)


def test_export_of_an_unknown_flow_is_an_error():
    with pytest.raises(CommandError, match="No flow"):
        _export("nothing")


def test_import_into_a_fresh_client_round_trips_every_field_and_mapping(flow, tmp_path):
    _, original = _export(str(flow.pk))
    out, err = _import(_write(tmp_path, original), "--client", "Fresh client")

    fresh = Client.objects.get(name="Fresh client")
    copy = SyncFlow.objects.get(client=fresh, name="Main sync")
    assert "Created the flow" in out
    # The connections were created without credentials, so the copy waits to be enabled.
    assert "without credentials" in err
    assert "stays disabled" in err
    for connection in (copy.invoicing_connection, copy.accounting_connection):
        assert connection.client == fresh
        assert connection.credentials == {}

    exported_copy = flow_export(flow=copy)
    assert exported_copy["client"] == "Fresh client"
    assert exported_copy["flow"]["enabled"] is False
    expected = {**original, "client": "Fresh client"}
    expected["flow"] = {**original["flow"], "enabled": False}
    assert exported_copy == expected
    for name, value in EVERY_FIELD.items():
        if name != "enabled":
            assert getattr(copy, name) == value, name


def test_import_with_existing_connections_round_trips_but_creates_the_flow_disabled(flow, tmp_path):
    _, original = _export(str(flow.pk))
    fresh = ClientFactory(name="Fresh client")
    # Checked connections: the imported flow's setup is complete, yet an import never enables.
    source = ConnectionFactory(client=fresh, name="Shop", kind="invoicing", last_check_ok=True)
    target = ConnectionFactory(client=fresh, name="Books", kind="accounting", last_check_ok=True)
    out, err = _import(
        _write(tmp_path, original),
        "--client",
        "Fresh client",
        "--invoicing-connection",
        "Shop",
        "--accounting-connection",
        "Books",
        "--name",
        "Copy",
    )
    copy = SyncFlow.objects.get(client=fresh, name="Copy")
    assert (copy.invoicing_connection, copy.accounting_connection) == (source, target)
    assert original["flow"]["enabled"] is True and copy.enabled is False
    assert "It is disabled" in out and "an import creates flows disabled" in err
    assert Connection.objects.filter(client=fresh).count() == 2
    exported_copy = flow_export(flow=copy)
    assert exported_copy["flow"] == {**original["flow"], "name": "Copy", "enabled": False}
    assert exported_copy["vat_mappings"] == original["vat_mappings"]
    assert exported_copy["journal_mappings"] == original["journal_mappings"]


def test_import_over_an_existing_flow_updates_it_and_replaces_its_mappings(flow, tmp_path):
    _, document = _export(str(flow.pk))
    document["flow"]["sales_journal"] = "NEW"
    document["vat_mappings"] = document["vat_mappings"][:1]
    version = flow.config_version
    out, _ = _import(_write(tmp_path, document))
    assert "Updated the flow" in out
    flow.refresh_from_db()
    assert flow.sales_journal == "NEW"
    assert flow.vat_mappings.count() == 1
    assert flow.journal_mappings.count() == 2
    assert flow.config_version > version
    # The existing connections kept their credentials.
    assert flow.invoicing_connection.credentials == {"api_key": SOURCE_SECRET}


def test_import_fills_fields_missing_from_an_older_document_with_defaults(flow, tmp_path):
    _, document = _export(str(flow.pk))
    del document["flow"]["label_mode"]
    _import(_write(tmp_path, document), "--client", "Other")
    copy = SyncFlow.objects.get(client__name="Other")
    assert copy.label_mode == SyncFlow._meta.get_field("label_mode").get_default()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["flow"].update(bogus=1), "flow.bogus"),
        (lambda d: d.update(format="something.else"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.pop("journal_mappings"), "journal_mappings"),
        (lambda d: d.update(extra=True), "extra"),
        (lambda d: d["flow"].update(rounding_tolerance="a lot"), "flow.rounding_tolerance"),
        (lambda d: d["flow"].update(start_date="yesterday"), "flow.start_date"),
        (lambda d: d["flow"].update(scope="everything"), "flow.scope"),
        (
            lambda d: d["vat_mappings"][0].update(source_rate="twenty"),
            "vat_mappings[0].source_rate",
        ),
        (lambda d: d["vat_mappings"][1].update(colour="red"), "vat_mappings[1].colour"),
        (
            lambda d: d["journal_mappings"][0].pop("target_journal"),
            "journal_mappings[0].target_journal",
        ),
        (
            lambda d: d["accounting_connection"].update(credentials={}),
            "accounting_connection.credentials",
        ),
        (
            lambda d: d["invoicing_connection"].update(auth_kind="magic"),
            "invoicing_connection.auth_kind",
        ),
        (lambda d: d.update(vat_mappings={}), "vat_mappings"),
    ],
)
def test_a_bad_document_is_refused_naming_the_key_and_writes_nothing(flow, tmp_path, change, key):
    _, document = _export(str(flow.pk))
    change(document)
    clients = Client.objects.count()
    with pytest.raises(CommandError) as error:
        _import(_write(tmp_path, document), "--client", "Fresh client")
    assert key in str(error.value)
    assert Client.objects.count() == clients


@pytest.mark.parametrize("duplicated", ["by rate", "by tax id"])
def test_a_mapping_refused_while_writing_rolls_everything_back(flow, tmp_path, duplicated):
    _, document = _export(str(flow.pk))
    rows = document["vat_mappings"]
    row = next(r for r in rows if (r["source_rate"] is None) == (duplicated == "by tax id"))
    rows.append(dict(row))
    with pytest.raises(CommandError, match=r"vat_mappings\[4\]"):
        _import(_write(tmp_path, document), "--client", "Fresh client")
    assert not Client.objects.filter(name="Fresh client").exists()
    assert not Connection.objects.filter(client__name="Fresh client").exists()


def test_a_connection_name_of_the_wrong_kind_is_refused(flow, tmp_path):
    _, document = _export(str(flow.pk))
    with pytest.raises(CommandError, match=r"invoicing_connection\.name"):
        _import(_write(tmp_path, document), "--invoicing-connection", "Ledger", "--name", "X")


def test_a_file_that_is_not_json_is_refused(tmp_path):
    with pytest.raises(CommandError, match="not JSON"):
        _import(_write(tmp_path, "{not json"))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        _import(str(tmp_path / "absent.json"))
