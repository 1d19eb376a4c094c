"""The e-invoice inbox end to end into a live Tryton accounting: the French FNFE Factur-X samples
become balanced entries whose VAT lines are each file's BG-23 breakdown, with their supplier (or
customer) matched or created by VAT number and the PDF attached; the files that cannot be
accepted become failed records with their codes."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from connectors import registry
from connectors.canonical import Direction
from connectors.models import Connection, InboxFile
from connectors.providers.einvoice import OurCompany, read_einvoice
from connectors.providers.einvoice.inbox import EInvoiceInbox
from connectors.providers.tryton.target import TrytonTarget
from connectors.selectors import connector_for
from connectors.services import inbox_upload
from mappings.models import SyncFlow, VatMapping
from mappings.services import flow_mappings_suggest
from syncs.models import RecordStatus, RunStatus, SyncedRecord
from syncs.services import flow_sync
from tests.factories import ClientFactory
from tests.factories.einvoices import MISSING_REASON, SAMPLES
from tests.integration.test_tryton_sync import _rows, tryton_moves

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.tryton,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON),
]

FNFE = SAMPLES / "ZUGFeRDv2/correct/FNFE-factur-x-examples"
FNFE_FAIL = SAMPLES / "ZUGFeRDv2/fail/FNFE-factur-x-examples"
BUYER_VAT = "FR19787878784"  # Ma jolie boutique
SELLER_VAT = "FR11999999998"  # Au bon moulin


@pytest.fixture(autouse=True)
def connectors_registered(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with registry.override([EInvoiceInbox, TrytonTarget]):
        yield


def _date(value: str) -> dict:
    year, month, day = (int(part) for part in value.split("-"))
    return {"__class__": "date", "year": year, "month": month, "day": day}


def open_fiscal_year(db, year: int) -> None:
    """A fiscal year with monthly periods for ``year`` (the FNFE samples are of 2017; the
    sandbox's accounting opens the years around today)."""
    existing = db.call(
        "model.account.fiscalyear.search_read", [[], 0, 1, None, ["company"]], context=True
    )
    company = existing[0]["company"]
    (move_type,) = db.call(
        "model.ir.sequence.type.search", [[("name", "=", "Account Move")], 0, 1, None], context=True
    )
    (sequence,) = db.call(
        "model.ir.sequence.strict.create",
        [[{"name": f"Moves {year}", "sequence_type": move_type, "company": company,
           "prefix": f"{year}-", "padding": 6}]],
        context=True,
    )  # fmt: skip
    (fiscal_year,) = db.call(
        "model.account.fiscalyear.create",
        [[{"name": str(year), "start_date": _date(f"{year}-01-01"),
           "end_date": _date(f"{year}-12-31"), "company": company, "move_sequence": sequence}]],
        context=True,
    )  # fmt: skip
    db.call("model.account.fiscalyear.create_period", [[fiscal_year]], context=True)


def inbox_flow(accounting, **inbox_settings) -> SyncFlow:
    client = ClientFactory()
    inbox = Connection.objects.create(
        client=client, name="Inbox", kind="invoicing", provider="einvoice_inbox",
        auth_kind="none", settings=inbox_settings,
    )  # fmt: skip
    target = Connection.objects.create(
        client=client, name="Accounting", kind="accounting", provider="tryton",
        auth_kind="credentials", settings=accounting.settings, credentials=accounting.credentials,
    )  # fmt: skip
    flow = SyncFlow.objects.create(
        client=client, name="Inbox flow", invoicing_connection=inbox,
        accounting_connection=target, enabled=True,
    )  # fmt: skip
    flow_mappings_suggest(flow=flow)
    flow = SyncFlow.objects.get(pk=flow.pk)
    map_standard_rates(flow)
    return flow


def map_standard_rates(flow: SyncFlow) -> None:
    """The French standard rates the suggestion left open (account_fr has several 20 % purchase
    taxes: goods, services, fixed assets), mapped as a person would: to the goods tax."""
    target = connector_for(flow.accounting_connection)
    try:
        codes = target.list_vat_codes(flow.folder)
    finally:
        target.close()
    for direction in (Direction.SALES, Direction.PURCHASES):
        for rate in ("20", "10", "5.5", "2.1"):
            key = f"S/{rate}"
            if flow.vat_mappings.filter(direction=direction.value, source_tax_id=key).exists():
                continue
            fitting = [
                code
                for code in codes
                if code.rate is not None
                and code.rate == D(rate)
                and code.direction in (None, direction)
                and "immobili" not in code.name.lower()
                and "intra" not in code.name.lower()
            ]
            fitting.sort(key=lambda code: ("bien" not in code.name.lower(), code.code))
            if fitting:
                VatMapping.objects.create(
                    flow=flow,
                    direction=direction.value,
                    source_rate=D(rate),
                    source_tax_id=key,
                    target_code=fitting[0].code,
                )


def upload(flow: SyncFlow, paths) -> None:
    inbox_upload(
        connection=flow.invoicing_connection,
        files=[(path.name, path.read_bytes()) for path in paths],
    )


def run(flow: SyncFlow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None and result.status != RunStatus.FAILED, (
        result.error_code,
        result.error_message,
    )
    return result


def stated(path, vat: str):
    return read_einvoice(path.read_bytes(), company=OurCompany(identifiers=(vat,))).invoice


def vat_total(move) -> D:
    """What the move books on VAT accounts (445...), debit positive."""
    return sum(
        (
            line["debit"] - line["credit"]
            for line in move["lines"]
            if line["account.code"].startswith("445")
        ),
        D(0),
    )


def test_fnfe_purchases_become_balanced_entries_with_their_vat_supplier_and_pdf(tryton_accounting):
    open_fiscal_year(tryton_accounting, 2017)
    flow = inbox_flow(tryton_accounting, vat_number=BUYER_VAT)
    files = sorted(FNFE.glob("*.pdf"))
    upload(flow, files)
    first = run(flow)
    moves = tryton_moves(tryton_accounting)
    # Each invoice is synced from the first file holding it (the FNFE files are renditions of
    # two invoices in several profiles: the later ones are duplicates kept for review).
    read = set(
        InboxFile.objects.filter(connection=flow.invoicing_connection, state="read").values_list(
            "name", flat=True
        )
    )
    ours = {path: stated(path, BUYER_VAT) for path in files if path.name in read}
    numbers = {invoice.number for invoice in ours.values()}
    assert numbers == {"FA-2017-0010", "AV-2017-0005"}
    records = list(
        SyncedRecord.objects.filter(flow=flow).values_list("status", "error_code", "error_message")
    )
    assert set(moves) == numbers, (first.counts(), records)
    for path, invoice in ours.items():
        move = moves[invoice.number]
        debit = sum((line["debit"] for line in move["lines"]), D(0))
        credit = sum((line["credit"] for line in move["lines"]), D(0))
        assert debit == credit == invoice.total, path.name
        # The VAT booked is the file's BG-23 breakdown (a credit note books it the other way).
        breakdown = sum((row.amount for row in invoice.taxes), D(0))
        sign = -1 if invoice.type.is_refund else 1
        assert vat_total(move) == sign * breakdown, path.name
        assert move["attachments"] == 1, path.name
        supplier = {line["party.name"] for line in move["lines"] if line.get("party")}
        assert supplier == {"Au bon moulin"}
    # The supplier was created once, with its VAT number.
    parties = _rows(
        tryton_accounting, "party.party", [("name", "=", "Au bon moulin")], ["identifiers.code"]
    )
    assert len(parties) == 1
    identifiers = _rows(
        tryton_accounting, "party.identifier", [("party", "=", parties[0]["id"])], ["code"]
    )
    assert SELLER_VAT in {row["code"] for row in identifiers}
    # The attachment of the invoice is the Factur-X PDF itself.
    attachment = _rows(
        tryton_accounting,
        "ir.attachment",
        [("resource", "=", f"account.move,{moves['FA-2017-0010']['id']}")],
        ["name", "data"],
    )[0]
    assert attachment["name"].endswith(".pdf")
    # The files of other buyers (DOM, UE) are failed records saying our company is not a party.
    failed = SyncedRecord.objects.filter(flow=flow, status=RecordStatus.FAILED)
    assert {r.error_code for r in failed} == {"ERROR_SYNC_INVOICE_EINVOICE_NOT_OURS"}
    assert failed.count() == 4 and first.failed_count == 4
    # A second run writes nothing.
    second = run(flow)
    assert second.synced_count == 0
    assert set(tryton_moves(tryton_accounting)) == numbers


def test_the_fnfe_fail_folder_gives_failed_records_with_codes_and_never_stops_the_run(
    tryton_accounting,
):
    open_fiscal_year(tryton_accounting, 2017)
    flow = inbox_flow(tryton_accounting, vat_number=BUYER_VAT)
    upload(flow, sorted(FNFE_FAIL.glob("*.pdf")))
    run(flow)
    records = SyncedRecord.objects.filter(flow=flow)
    failed = records.filter(status=RecordStatus.FAILED)
    assert failed.exists()
    for record in failed:
        assert record.error_code.startswith("ERROR_SYNC_INVOICE_"), record.error_message
        assert record.error_message
    # What the reader accepted of them (one invoice per key) is written and balanced.
    for move in tryton_moves(tryton_accounting).values():
        debit = sum((line["debit"] for line in move["lines"]), D(0))
        credit = sum((line["credit"] for line in move["lines"]), D(0))
        assert debit == credit
