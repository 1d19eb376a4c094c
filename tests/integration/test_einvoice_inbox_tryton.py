"""The e-invoice inbox end to end into a live Tryton accounting: the French FNFE Factur-X samples
become balanced entries whose VAT lines are each file's BG-23 breakdown, with their supplier (or
customer) matched or created by VAT number and the PDF attached; the files that cannot be
accepted become failed records with their codes. Every German EN16931 sample (XML-Rechnung:
Factur-X, CII, UBL) and every Mustang one goes to an inbox of its buyer (one inbox and one flow per
buyer as the files state it, into one accounting, one run each), into German input-VAT taxes the
test adds to the chart as an accountant would, with the fiscal years of the files' dates; the
intra-EU and reverse-charge supplies are booked with their self-assessed VAT pairs."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import transaction
from django.test import override_settings

from connectors import registry
from connectors.canonical import Direction
from connectors.models import Connection, InboxFile
from connectors.providers.einvoice import OurCompany, detect, facturx, read_einvoice
from connectors.providers.einvoice.cii import read_cii
from connectors.providers.einvoice.document import Party
from connectors.providers.einvoice.inbox import EInvoiceInbox
from connectors.providers.einvoice.ubl import read_ubl
from connectors.providers.einvoice.xmlread import parse_xml
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
from tests.tryton_fixtures import _database

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


# -- Every German EN16931 sample and every Mustang one, each through an inbox of its buyer -------

GERMAN = SAMPLES / "XML-Rechnung"
MUSTANG = SAMPLES / "ZUGFeRDv2/correct/Mustangproject"
# The order a person drops the files in: the Factur-X PDFs, then the CII, then the UBL files. An
# invoice held by several files (the corpus gives each invoice in the three formats, and reuses
# numbers) is read from the first; the others are kept as duplicates for review.
GERMAN_FILES = [
    *sorted((GERMAN / "FX").glob("*.pdf")),
    *sorted((GERMAN / "CII").glob("*.xml")),
    *sorted((GERMAN / "UBL").glob("*.xml")),
    *sorted(path for path in MUSTANG.iterdir() if path.suffix in (".pdf", ".xml")),
] if SAMPLES.is_dir() else []  # fmt: skip
# Kunden AG Mitte, the buyer of most of Lieferant GmbH's invoices, named only (its customer number
# GE2020211 has no scheme: it is the seller's number for it, not an identifier of its own).
GERMAN_BUYER = "Kunden AG Mitte"
# Dropped into Kunden AG Mitte's inbox too: files addressed to others (a company, a person).
FOREIGN_FILES = [GERMAN / "FX/EN16931_Miete.pdf", GERMAN / "FX/EN16931_Physiotherapeut.pdf"]
FOREIGN_BUYERS = {"EN16931_Miete.pdf": "MUSTER-KUNDE GMBH", "EN16931_Physiotherapeut.pdf":
                  "Liselotte Müller"}  # fmt: skip
# What is not booked although its buyer's inbox reads it, by stem (the PDF, CII and UBL of an
# invoice alike): the code of its failed record, and why.
REFUSED = {
    "not_validating_full_invoice_based_onTest_EeISI_300_CENfullmodel.ubl": (
        "ERROR_SYNC_INVOICE_EINVOICE_INVALID",
        "BR-CO-10: its lines add up to 2000, it states 200 (the corpus marks it not validating; "
        "its CII rendering is sound and is booked)",
    ),
    "testout-ZF2PushEdge": (
        "ERROR_SYNC_INVOICE_AMOUNT_VALIDATION",
        "in Swiss francs: read, then refused when posting (the flow has no CHF rate)",
    ),
}
# Distinct documents of the corpus that reuse the seller, number and issue date of another one
# addressed to the same buyer (the invoice key): the inbox keeps them as duplicates for review,
# naming the file read first, and books nothing for them. By stem: the stem read first.
REUSED_KEY = {
    "EN16931_Rabatte": "EN16931_1_Teilrechnung",  # 471102 of 2018-06-05, other figures
    "hate1": "MustangGnuaccountingBeispielRE-20201121_508",  # RE-20201121/508, other figures
    # Mustang's generator numbers every file 123 of 2020-12-22 of Test company.
    "testout-ZF2PushAllowances": "testout-XR-Edge",
    "testout-ZF2PushItemChargesAllowances": "testout-XR-Edge",
    "testout-ZF2PushChargesAllowances": "testout-XR-Edge",  # and in CHF
    "testout-ZF2PushRelativeChargesAllowances": "testout-XR-Edge",  # and in CHF
}
# The German VAT the test adds to the chart, and the accounts whose balance is a BG-23 row of that
# category and rate (a self-assessed pair nets to the row's 0).
VAT_ACCOUNTS = {
    "S/19": ("445661",),
    "S/7": ("445662",),
    "S/5": ("445665",),
    "E/0": ("445667",),
    "Z/0": ("445668",),
    "K/0": ("445663", "44521"),
    "AE/0": ("445664", "44522"),
}
INTRA_EU_FILES = [
    GERMAN / "FX/EN16931_Innergemeinschaftliche_Lieferungen.pdf",
    GERMAN / "CII/EN16931_Innergemeinschaftliche_Lieferungen.cii.xml",
    GERMAN / "UBL/EN16931_Innergemeinschaftliche_Lieferungen.ubl.xml",
]
REVERSE_CHARGE_FILE = MUSTANG / "testout-ZF2PushReverseCharge.xml"
CHF_FILE = MUSTANG / "testout-ZF2PushEdge.xml"
# A buyer whose VAT number the corpus also gives several sellers (Grundbesitz, ELEKTRON,
# MUSTER-Autovermietung, Physiotherapeutin, Bei Spiel GmbH): Kunden AG Mitte in its Gutschrift.
SHARED_VAT = "DE136695976"


def stem(path) -> str:
    name = path.name
    for suffix in (".cii.xml", ".ubl.xml") if not name.startswith("not_validating") else ():
        name = name.removesuffix(suffix)
    return name.rsplit(".", 1)[0]


def buyer_of(path) -> Party:
    """The buyer (BG-7) as the reader reads it, whoever we are."""
    content = path.read_bytes()
    xml = facturx.extract_xml(content)[1] if detect.sniff(content) is detect.Kind.PDF else content
    root = parse_xml(xml)
    syntax = detect.check_root(root)
    return (read_cii(root) if syntax in ("cii", "zugferd1") else read_ubl(root)).buyer


def buyers(paths) -> dict[tuple, list]:
    """The files by buyer: its name, VAT ids and legal ids as the file states them (a buyer named
    only and the same name with a VAT number are two inboxes), in the order of ``paths``."""
    groups: dict[tuple, list] = {}
    for path in paths:
        party = buyer_of(path)
        key = (party.name, party.vat_ids, tuple(i.value for i in party.legal_ids))
        groups.setdefault(key, []).append((path, party))
    return groups


def buyer_settings(parties) -> dict[str, str]:
    """The inbox settings of a buyer: its exact name, its VAT number, its legal id (else the
    first scheme-qualified id or electronic address a file gives it, e.g. a Leitweg-ID)."""
    party = parties[0]
    settings = {"company_name": party.name}
    if party.vat_ids:
        settings["vat_number"] = party.vat_ids[0]
    others = [i.value for p in parties for i in (*p.legal_ids, *p.other_ids)]
    if others:
        settings["legal_id"] = others[0]
    return settings


def company_of(settings: dict[str, str]) -> OurCompany:
    identifiers = tuple(settings[name] for name in ("vat_number", "legal_id") if name in settings)
    return OurCompany(identifiers=identifiers, name=settings["company_name"])


def rpc_decimal(value: str) -> dict:
    return {"__class__": "Decimal", "decimal": value}


def open_fiscal_years(db, years) -> None:
    """The fiscal years the samples fall in that the sandbox's accounting has not opened."""
    existing = {
        row["start_date"].year for row in _rows(db, "account.fiscalyear", [], ["start_date"])
    }
    for year in sorted(set(years) - existing):
        open_fiscal_year(db, year)


def german_taxes(db) -> dict[str, str]:
    """The German purchase VAT an accountant adds to the French chart for German companies'
    invoices: input VAT (Vorsteuer) at 19 %, 7 % and 5 % (the EeISI sample's rate), 0 % for the
    exempt (E: insurance, physiotherapy) and zero-rated (Z) purchases, and the intra-EU
    acquisition's and § 13b's pairs at 19 % (deductible, and due on the supplier's side), each on
    an account of its own under 4456 and 4452. Returns the Tryton tax ids (the flow's VAT codes)
    by key."""
    (deductible,) = _rows(db, "account.account", [("code", "=", "44566")],
                          ["type", "parent", "company"])  # fmt: skip
    (due,) = _rows(db, "account.account", [("code", "=", "4452")], ["type", "company"])
    groups = _rows(db, "account.tax.group", [("kind", "=", "purchase")], ["code"])
    company = deductible["company"]
    specs = {
        "S/19": ("445661", "Vorsteuer 19 %", deductible, "0.19"),
        "S/7": ("445662", "Vorsteuer 7 %", deductible, "0.07"),
        "S/5": ("445665", "Vorsteuer 5 %", deductible, "0.05"),
        "E/0": ("445667", "Steuerfreie Eingangsleistungen 0 %", deductible, "0"),
        "Z/0": ("445668", "Eingangsleistungen zum Nullsatz 0 %", deductible, "0"),
        "K/19": ("445663", "Vorsteuer innergemeinschaftlicher Erwerb 19 %", deductible, "0.19"),
        "K/19 due": ("44521", "Umsatzsteuer innergemeinschaftlicher Erwerb 19 %", due, "-0.19"),
        "AE/19": ("445664", "Vorsteuer nach § 13b UStG 19 %", deductible, "0.19"),
        "AE/19 due": ("44522", "Umsatzsteuer nach § 13b UStG 19 %", due, "-0.19"),
    }
    codes = {}
    for key, (code, name, like, rate) in specs.items():
        (account,) = db.call(
            "model.account.account.create",
            [[{"code": code, "name": name, "type": like["type"], "company": company,
               "parent": like.get("parent") or like["id"]}]],
            context=True,
        )  # fmt: skip
        (tax,) = db.call(
            "model.account.tax.create",
            [[{"name": name, "description": name, "type": "percentage", "rate": rpc_decimal(rate),
               "invoice_account": account, "credit_note_account": account, "company": company,
               "group": groups[0]["id"]}]],
            context=True,
        )  # fmt: skip
        codes[key] = str(tax)
    return codes


def einvoice_flow(accounting, name: str, codes: dict[str, str], **inbox_settings) -> SyncFlow:
    """An inbox flow whose German VAT is mapped to ``codes``: S/19, S/7 and S/5 to the input VAT,
    E/0 and Z/0 to their 0 % taxes, K/0 (intra-EU) and AE/0 (§ 13b; the file states no VAT) to
    the self-assessed pairs at 19 %."""
    flow = inbox_flow(accounting, **inbox_settings)
    SyncFlow.objects.filter(pk=flow.pk).update(name=name)
    purchases = Direction.PURCHASES.value
    rows = {
        "S/19": (D("19"), codes["S/19"], ""),
        "S/7": (D("7"), codes["S/7"], ""),
        "S/5": (D("5"), codes["S/5"], ""),
        "E/0": (D("0"), codes["E/0"], ""),
        "Z/0": (D("0"), codes["Z/0"], ""),
        "K/0": (D("0"), codes["K/19"], codes["K/19 due"]),
        "AE/0": (D("0"), codes["AE/19"], codes["AE/19 due"]),
    }
    for key, (rate, target, collected) in rows.items():
        VatMapping.objects.update_or_create(
            flow=flow, direction=purchases, source_tax_id=key,
            defaults={"source_rate": rate, "target_code": target, "collected_code": collected},
        )  # fmt: skip
    return SyncFlow.objects.get(pk=flow.pk)


def flow_like(template: SyncFlow, name: str, **inbox_settings) -> SyncFlow:
    """Another client's inbox flow into the same accounting, set up as ``template`` is (its
    accounts, journals and VAT mappings copied, as a firm reuses its settings): no round trip to
    Tryton for suggestions each buyer would get the same from."""
    client = ClientFactory()
    inbox = Connection.objects.create(
        client=client, name="Inbox", kind="invoicing", provider="einvoice_inbox",
        auth_kind="none", settings=inbox_settings,
    )  # fmt: skip
    accounting = template.accounting_connection
    target = Connection.objects.create(
        client=client, name="Accounting", kind="accounting", provider="tryton",
        auth_kind="credentials", settings=accounting.settings, credentials=accounting.credentials,
    )  # fmt: skip
    vat_mappings = list(template.vat_mappings.all())
    journal_mappings = list(template.journal_mappings.all())
    flow = SyncFlow.objects.get(pk=template.pk)
    flow.pk, flow._state.adding = None, True
    flow.client, flow.name = client, name
    flow.invoicing_connection, flow.accounting_connection = inbox, target
    flow.save()
    for mapping in (*vat_mappings, *journal_mappings):
        mapping.pk, mapping.flow, mapping._state.adding = None, flow, True
        mapping.save()
    return SyncFlow.objects.get(pk=flow.pk)


def outcome(flow: SyncFlow) -> dict[str, dict]:
    """What became of each file of the flow's inbox, in plain data: its state, the reader's code
    and message, and its record (a read file's is its invoice's, a refused file's its own)."""
    records = {r.source_id: r for r in SyncedRecord.objects.filter(flow=flow)}
    files = {}
    for row in InboxFile.objects.filter(connection=flow.invoicing_connection):
        key = row.invoice_key if row.state == "read" else f"file:{row.sha256}"
        record = records.get(key)
        files[row.name] = {
            "state": row.state,
            "code": row.code,
            "message": row.message,
            "invoice_key": row.invoice_key,
            "record": None
            if record is None
            else {
                "status": record.status,
                "error_code": record.error_code,
                "error_message": record.error_message,
                "target_ref": record.target_ref,
                "target_number": record.target_number,
            },
        }
    return files


def moves_by_id(db) -> dict[str, dict]:
    """Every move invsync wrote, by its Tryton id (the record's target reference)."""
    moves = {}
    for move in tryton_moves_all(db):
        moves[str(move["id"])] = move
    return moves


def tryton_moves_all(db) -> list[dict]:
    moves = _rows(db, "account.move", [("description", "like", "%[invsync:%")],
                  ["description", "state", "number"])  # fmt: skip
    by_id = {m["id"]: {**m, "lines": [], "attachments": []} for m in moves}
    fields = ["move", "account.code", "debit", "credit", "party", "party.name"]
    for line in _rows(db, "account.move.line", [("move", "in", list(by_id))], fields):
        by_id[line["move"]]["lines"].append(line)
    for attachment in _rows(
        db, "ir.attachment", [("resource", "in", [f"account.move,{i}" for i in by_id])],
        ["resource", "name"],
    ):  # fmt: skip
        by_id[int(attachment["resource"].split(",")[1])]["attachments"].append(attachment["name"])
    return list(by_id.values())


@pytest.fixture(scope="module")
def german_run(tryton_sandbox, django_db_setup, django_db_blocker, tmp_path_factory):
    """One accounting; every German and Mustang sample grouped by its buyer, one inbox flow per
    buyer (Kunden AG Mitte's also gets two files addressed to others), each synced once, then
    Kunden AG Mitte's a second time; what became of each file and each move, in plain data. The
    database rows are rolled back at the end."""
    accounting = _database(
        tryton_sandbox, tryton_sandbox.fresh_database("accounting"), "accounting"
    )
    media = tmp_path_factory.mktemp("einvoice-media")
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=str(media)),
        registry.override([EInvoiceInbox, TrytonTarget]),
        transaction.atomic(),
    ):
        open_fiscal_years(accounting, {2018, 2019, 2020, 2024})
        codes = german_taxes(accounting)
        groups = buyers(GERMAN_FILES)
        kunden = (GERMAN_BUYER, (), ())
        template = einvoice_flow(accounting, GERMAN_BUYER, codes, company_name=GERMAN_BUYER)
        files, inboxes, counts = {}, {}, {}
        for key, members in groups.items():
            settings = buyer_settings([party for _path, party in members])
            label = " ".join((key[0], *key[1], *key[2]))
            flow = template if key == kunden else flow_like(template, label, **settings)
            paths = [path for path, _party in members]
            upload(flow, [*paths, *FOREIGN_FILES] if key == kunden else paths)
            result = run(flow)
            counts[label] = (result.synced_count, result.failed_count)
            inboxes[label] = outcome(flow)
            for path in paths:
                files[path.name] = {**inboxes[label][path.name], "inbox": label,
                                    "settings": settings}  # fmt: skip
        after_first = sorted(moves_by_id(accounting))
        second = run(template)
        result = {
            "codes": codes,
            "files": files,
            "inboxes": inboxes,
            "counts": counts,
            "kunden": GERMAN_BUYER,
            "second": (second.synced_count, second.failed_count),
            "moves_after_first": after_first,
            "moves": moves_by_id(accounting),
            "parties": _rows(accounting, "party.party", [], ["name"]),
            "identifiers": _rows(accounting, "party.identifier", [], ["party", "code", "type"]),
        }
        transaction.set_rollback(True)
    return result


def german_file_id(path) -> str:
    return str(path.relative_to(SAMPLES))


def booked_move(run_result: dict, name: str) -> dict:
    row = run_result["files"][name]
    record = row["record"]
    assert record is not None and record["status"] == RecordStatus.SYNCED, (name, row)
    return run_result["moves"][record["target_ref"]]


def account_balance(move: dict, code: str) -> D:
    return sum(
        (line["debit"] - line["credit"] for line in move["lines"] if line["account.code"] == code),
        D(0),
    )


def figures(invoice) -> tuple:
    """What an entry books of an invoice (the amount due, BT-115, is not booked: the
    negativePaymentDue variant of EN16931_Einfach differs only there)."""
    return (
        invoice.type,
        invoice.total,
        sorted((t.tax_id, t.base, t.amount) for t in invoice.taxes),
    )


@pytest.mark.parametrize("path", GERMAN_FILES, ids=german_file_id)
def test_each_german_and_mustang_sample_is_booked_by_its_buyers_inbox_or_refused_with_its_code(
    german_run, path
):
    row = german_run["files"][path.name]
    if stem(path) in REFUSED:
        code, why = REFUSED[stem(path)]
        assert row["record"]["status"] == RecordStatus.FAILED, row
        assert row["record"]["error_code"] == code, (why, row)
        assert not row["record"]["target_ref"]
        return
    invoice = read_einvoice(path.read_bytes(), company=company_of(row["settings"])).invoice
    if row["state"] == "duplicate":
        # The same invoice key (seller + number + date) came first in another file of the same
        # inbox, which is booked; a distinct document reusing the key is listed in REUSED_KEY.
        (first,) = [
            name for name, other in german_run["inboxes"][row["inbox"]].items()
            if other["state"] == "read" and other["invoice_key"] == row["invoice_key"]
        ]  # fmt: skip
        assert first in row["message"], row
        assert [p.name for p in GERMAN_FILES].index(first) < GERMAN_FILES.index(path)
        booked_move(german_run, first)
        first_path = next(p for p in GERMAN_FILES if p.name == first)
        booked = read_einvoice(first_path.read_bytes(), company=company_of(row["settings"]))
        differs = figures(booked.invoice) != figures(invoice)
        assert differs == (stem(path) in REUSED_KEY), (first, figures(invoice))
        if differs:
            assert stem(first_path) == REUSED_KEY[stem(path)]
        return
    assert stem(path) not in REUSED_KEY
    assert row["state"] == "read", row
    assert invoice.currency == "EUR"
    move = booked_move(german_run, path.name)
    assert move["state"] == "posted"
    debit = sum((line["debit"] for line in move["lines"]), D(0))
    credit = sum((line["credit"] for line in move["lines"]), D(0))
    assert debit == credit, move["lines"]
    # A credit note (or a corrective invoice with a negative total) books the other way round.
    sign = -1 if invoice.type.is_refund else 1
    # The supplier's account gets the total the file states (BT-112).
    supplier_lines = [line for line in move["lines"] if line.get("party.name")]
    assert sum((line["credit"] - line["debit"] for line in supplier_lines), D(0)) == (
        sign * invoice.total
    )
    # The VAT of each BG-23 row is on its German account, to the cent (a self-assessed pair
    # nets to the row's 0), and nothing else is on them.
    assert invoice.taxes
    for tax in invoice.taxes:
        accounts = VAT_ACCOUNTS[tax.tax_id]
        assert sum((account_balance(move, a) for a in accounts), D(0)) == sign * tax.amount, tax
    german = {a for accounts in VAT_ACCOUNTS.values() for a in accounts}
    assert sum((account_balance(move, a) for a in german), D(0)) == sign * sum(
        (tax.amount for tax in invoice.taxes), D(0)
    )
    # The supplier: matched by the file's VAT number where Tryton holds it (the corpus gives
    # DE136695976 to five sellers: the first one created keeps it and the others' invoices are
    # booked to it), else created, or matched, by its name.
    (party,) = {line["party"] for line in supplier_lines}
    holders = {
        i["party"] for i in german_run["identifiers"] if i["code"] == invoice.partner.vat_number
    }
    if holders:
        assert holders == {party}, (invoice.partner, holders)
    else:
        assert {line["party.name"] for line in supplier_lines} == {invoice.partner.name}
    # The file itself attached: the PDF, or the XML of an XML-only invoice.
    assert move["attachments"] == [path.name]


def test_each_inbox_books_each_of_its_invoices_once_and_the_next_run_writes_nothing(german_run):
    files = german_run["files"]
    read = [name for name, row in files.items() if row["state"] == "read"]
    booked = [name for name in read if files[name]["record"]["status"] == RecordStatus.SYNCED]
    # One move per invoice booked, in whichever inbox (the Swiss-franc one is read, not booked).
    assert len(german_run["moves_after_first"]) == len(booked) == len(read) - 1
    assert len({(files[n]["inbox"], files[n]["invoice_key"]) for n in read}) == len(read)
    # Kunden AG Mitte's six invoices, and the refused files shown again as failed records.
    inbox = german_run["inboxes"][german_run["kunden"]]
    refused = [name for name, row in inbox.items() if row["state"] == "failed"]
    assert german_run["counts"][german_run["kunden"]] == (6, len(refused))
    assert german_run["second"] == (0, len(refused))
    assert sorted(german_run["moves"]) == german_run["moves_after_first"]


def test_each_supplier_is_created_once_with_its_vat_number_where_tryton_accepts_it(german_run):
    names = [p["name"] for p in german_run["parties"]]
    moves = german_run["moves"].values()
    suppliers = {line["party.name"] for m in moves for line in m["lines"] if line.get("party")}
    assert {"Lieferant GmbH", "Grundbesitz GmbH & Co.", "Test company"} <= suppliers
    for supplier in suppliers:
        assert names.count(supplier) == 1, supplier
    # Matched by VAT number across inboxes: Grundbesitz (DE136695976, a valid number) is kept
    # with it. The corpus's DE123456789 fails its checksum: Tryton refuses it, left out.
    by_name = {p["name"]: p["id"] for p in german_run["parties"]}
    codes = {
        name: {i["code"] for i in german_run["identifiers"] if i["party"] == by_name[name]}
        for name in suppliers
    }
    assert "DE136695976" in codes["Grundbesitz GmbH & Co."]
    assert "DE123456789" not in codes["Lieferant GmbH"]


@pytest.mark.parametrize("path", FOREIGN_FILES, ids=german_file_id)
def test_a_file_addressed_to_another_company_is_not_ours_in_kunden_ag_mittes_inbox(
    german_run, path
):
    row = german_run["inboxes"][german_run["kunden"]][path.name]
    assert row["state"] == "failed", row
    assert row["record"]["status"] == RecordStatus.FAILED, row
    assert row["record"]["error_code"] == "ERROR_SYNC_INVOICE_EINVOICE_NOT_OURS", row
    message = " ".join(row["record"]["error_message"].split())
    assert message.startswith(f"{path.name}: "), message
    assert "is our company" in message, message
    assert f"buyer {FOREIGN_BUYERS[path.name]}" in message, message
    # In its own buyer's inbox the same file is booked, or a duplicate of one booked.
    assert german_run["files"][path.name]["state"] in ("read", "duplicate")


def test_the_intra_eu_supply_is_booked_with_the_self_assessed_vat_pair(german_run):
    # In its three formats, the PDF first: booked from it, the CII and UBL duplicates of it.
    rows = [german_run["files"][path.name] for path in INTRA_EU_FILES]
    assert [row["state"] for row in rows] == ["read", "duplicate", "duplicate"]
    row = rows[0]
    assert row["settings"]["vat_number"] == "DE123456789"  # Metallbau Leipzig, as the file states
    move = german_run["moves"][row["record"]["target_ref"]]
    content = INTRA_EU_FILES[0].read_bytes()
    invoice = read_einvoice(content, company=company_of(row["settings"])).invoice
    (tax,) = invoice.taxes
    assert (tax.tax_id, tax.amount) == ("K/0", D(0))
    # The supplier's account gets the total the file states (no VAT charged): the VAT is
    # self-assessed at 19 %, deductible (445663) and due (44521), equal, so it nets to nothing.
    self_assessed = (tax.base * D("0.19")).quantize(D("0.01"))
    assert account_balance(move, "445663") == self_assessed == D("380.00")
    assert account_balance(move, "44521") == -self_assessed
    assert move["attachments"] == [INTRA_EU_FILES[0].name]
    parties = {line["party.name"] for line in move["lines"] if line.get("party.name")}
    assert parties == {"Global Supplies Ltd."}


def test_the_mustang_reverse_charge_invoice_books_the_section_13b_pair(german_run):
    row = german_run["files"][REVERSE_CHARGE_FILE.name]
    assert row["settings"]["vat_number"] == "DE0816"  # Franz Müller, as this file states
    move = german_run["moves"][row["record"]["target_ref"]]
    invoice = read_einvoice(
        REVERSE_CHARGE_FILE.read_bytes(), company=company_of(row["settings"])
    ).invoice
    (tax,) = invoice.taxes
    assert (tax.tax_id, tax.base, tax.amount) == ("AE/0", D("15.00"), D("0.00"))
    supplier_lines = [line for line in move["lines"] if line.get("party.name")]
    assert sum((line["credit"] - line["debit"] for line in supplier_lines), D(0)) == D("15.00")
    assert account_balance(move, "445664") == D("2.85") == -account_balance(move, "44522")
    assert move["attachments"] == [REVERSE_CHARGE_FILE.name]


def test_the_mustang_invoice_in_swiss_francs_fails_with_its_code(german_run):
    # Read (the file is sound, and Franz Müller's with VAT DE4711), then refused when posting:
    # the flow has no CHF rate.
    row = german_run["files"][CHF_FILE.name]
    assert german_run["counts"][row["inbox"]] == (0, 1)
    assert row["state"] == "read"
    record = row["record"]
    assert record["status"] == RecordStatus.FAILED and not record["target_ref"]
    assert record["error_code"] == "ERROR_SYNC_INVOICE_AMOUNT_VALIDATION"
    assert record["error_message"] == "Invoice 123 is in CHF and needs an exchange rate to EUR."


def test_a_buyer_sharing_its_vat_number_with_sellers_is_booked_in_its_own_inbox(german_run):
    # Kunden AG Mitte states DE136695976 in its Gutschrift (a self-billed invoice): its own
    # inbox (that name and VAT number) books it as a purchase.
    gutschrift = german_run["files"]["EN16931_Gutschrift.pdf"]
    assert gutschrift["settings"] == {"company_name": GERMAN_BUYER, "vat_number": SHARED_VAT}
    booked_move(german_run, "EN16931_Gutschrift.pdf")
    # Given to that inbox, a file whose seller states the same number reads as our sale: the
    # VAT number names the seller, and our name does not settle it (the seller is another).
    miete = read_einvoice(
        (GERMAN / "CII/EN16931_Miete.cii.xml").read_bytes(),
        company=company_of(gutschrift["settings"]),
    ).invoice
    assert miete.type.direction == Direction.SALES
    assert miete.partner.name == "MUSTER-KUNDE GMBH"
