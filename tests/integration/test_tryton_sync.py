"""Syncs into a live Tryton, asserted in Tryton itself.

The invoicing database holds the sample invoices described by its manifest (what each should
become); the accounting database is a fresh copy of the French-chart template for every test.
Precise partner and account cases use the in-memory source against the live Tryton target.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal as D

import pytest

from connectors import registry
from connectors.canonical import InvoiceType, Partner
from connectors.errors import ErrorCode
from connectors.models import Connection
from connectors.providers.tryton.source import TrytonSource
from connectors.providers.tryton.target import TrytonTarget
from mappings.models import SyncFlow
from mappings.services import flow_config_changed, flow_mappings_suggest
from syncs.models import PartnerLink, RecordStatus, RunStatus, SyncedRecord
from syncs.services import flow_sync
from tests.doubles import MemorySource, MemoryTarget
from tests.factories import ClientFactory, InvoiceFactory, InvoiceLineFactory

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]

STANDARD_RATES = ("20", "10", "5.5", "0")


@pytest.fixture(autouse=True)
def connectors_registered():
    MemorySource.reset()
    with registry.override([TrytonSource, TrytonTarget, MemorySource, MemoryTarget]):
        yield


def _decode(value):
    if isinstance(value, dict) and value.get("__class__") == "Decimal":
        return D(value["decimal"])
    if isinstance(value, dict) and value.get("__class__") == "date":
        return dt.date(value["year"], value["month"], value["day"])
    return value


def _rows(db, model, domain, fields):
    """search_read, with dotted fields flattened ("account." {"code"} -> "account.code")."""
    rows = db.call(f"model.{model}.search_read", [domain, 0, None, None, fields], context=True)
    flat = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if key.endswith(".") and isinstance(value, dict):
                out.update({key + k: _decode(v) for k, v in value.items()})
            else:
                out[key] = _decode(value)
        flat.append(out)
    return flat


def tryton_moves(db) -> dict[str, dict]:
    """The moves invsync wrote, by the source invoice number, with their lines and attachments."""
    moves = _rows(db, "account.move", [("description", "like", "%[invsync:%")],
                  ["description", "state", "journal.code"])  # fmt: skip
    by_id = {m["id"]: {**m, "lines": [], "attachments": 0} for m in moves}
    for line in _rows(
        db, "account.move.line", [("move", "in", list(by_id))],
        ["move", "account.code", "debit", "credit", "party", "party.name", "description",
         "amount_second_currency", "second_currency"],
    ):  # fmt: skip
        by_id[line["move"]]["lines"].append(line)
    for attachment in _rows(
        db, "ir.attachment", [("resource", "in", [f"account.move,{i}" for i in by_id])],
        ["resource"],
    ):  # fmt: skip
        by_id[int(attachment["resource"].split(",")[1])]["attachments"] += 1
    return {m["description"].split(" [")[0]: m for m in by_id.values()}


def account_totals(move) -> dict[str, tuple[D, D]]:
    totals: dict[str, list[D]] = defaultdict(lambda: [D(0), D(0)])
    for line in move["lines"]:
        totals[line["account.code"]][0] += line["debit"]
        totals[line["account.code"]][1] += line["credit"]
    return {k: (v[0], v[1]) for k, v in totals.items()}


def make_flow(invoicing, accounting, *, source="tryton", **settings) -> SyncFlow:
    client = ClientFactory()
    source_connection = Connection.objects.create(
        client=client, name="Invoicing", kind="invoicing", provider=source,
        auth_kind="credentials" if source == "tryton" else "api_key",
        settings=invoicing.settings if invoicing else {},
        credentials=invoicing.credentials if invoicing else {"api_key": "k"},
    )  # fmt: skip
    target_connection = Connection.objects.create(
        client=client, name="Accounting", kind="accounting", provider="tryton",
        auth_kind="credentials", settings=accounting.settings, credentials=accounting.credentials,
    )  # fmt: skip
    flow = SyncFlow.objects.create(
        client=client, name="Tryton flow", invoicing_connection=source_connection,
        accounting_connection=target_connection, enabled=True, **settings,
    )  # fmt: skip
    flow_mappings_suggest(flow=flow, rates=STANDARD_RATES if source == "tryton" else None)
    return SyncFlow.objects.get(pk=flow.pk)


def run(flow):
    result = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="manual")
    assert result is not None and result.status != RunStatus.FAILED, (
        result.error_code, result.error_message,
    )  # fmt: skip
    return result


# -- The sample invoices, end to end ---------------------------------------------------------


@pytest.fixture
def synced(tryton_invoicing, tryton_accounting):
    flow = make_flow(tryton_invoicing, tryton_accounting)
    first = run(flow)
    return flow, first, tryton_moves(tryton_accounting), tryton_invoicing.manifest


def test_every_sample_invoice_ends_as_its_manifest_says(synced):
    flow, first, moves, manifest = synced
    records = {r.number: r for r in SyncedRecord.objects.filter(flow=flow)}
    for invoice in manifest["invoices"]:
        number, expect = invoice["number"], invoice["expect"]
        if not number:  # drafts have no number and are never listed
            continue
        record = records[number]
        if expect == "sync":
            assert record.status == RecordStatus.SYNCED, (number, record.error_message)
            assert number in moves
        elif expect == "fail":
            assert (
                record.status == RecordStatus.FAILED
                and record.error_code == invoice["expected_error"]
            )
            assert number not in moves
        else:
            assert record.status == RecordStatus.SKIPPED and number not in moves
    assert first.synced_count == manifest["counts"]["by_expect"]["sync"]
    assert first.failed_count == 1 and len(moves) == first.synced_count


def test_every_written_move_is_balanced_posted_with_its_pdf(synced):
    _, _, moves, _ = synced
    for number, move in moves.items():
        assert sum(x["debit"] for x in move["lines"]) == sum(x["credit"] for x in move["lines"])
        assert move["state"] == "posted", number
        assert move["attachments"] == 1, number


def test_moves_use_the_right_accounts_partner_and_vat_amounts(synced):
    flow, _, moves, manifest = synced
    for invoice in manifest["invoices"]:
        move = moves.get(invoice["number"])
        if move is None or invoice["currency"] != "EUR" or "rounding" in invoice["key"]:
            continue
        sales = invoice["type"] == "out"
        collective, vat = (
            (flow.customer_collective_account, "44571")
            if sales
            else (flow.supplier_collective_account, "44566")
        )
        totals = account_totals(move)
        total, tax = abs(D(invoice["total"])), abs(D(invoice["tax_amount"]))
        # The side of the collective line says the direction and whether it is a credit note.
        debit_side = sales != invoice["credit_note"]
        assert totals[collective] == ((total, D(0)) if debit_side else (D(0), total)), invoice[
            "key"
        ]
        if tax:
            vat_amount = (
                totals[vat][1] - totals[vat][0] if sales else totals[vat][0] - totals[vat][1]
            )
            assert abs(vat_amount) == tax, invoice["key"]
        line_accounts = {x["account"] for x in invoice["lines"]}
        assert line_accounts <= set(totals), invoice["key"]
        collective_lines = [x for x in move["lines"] if x["account.code"] == collective]
        assert all(x["party"] for x in collective_lines)
        others = [x for x in move["lines"] if x["account.code"] != collective]
        assert not any(x["party"] for x in others)


def test_credit_note_posts_reversed(synced):
    _, _, moves, manifest = synced
    note = next(i for i in manifest["invoices"] if i["key"] == "out_credit_note")
    totals = account_totals(moves[note["number"]])
    assert totals["4111"] == (D(0), D("110.16"))
    assert totals["44571"] == (D("18.36"), D(0))


@pytest.mark.parametrize("key, vat", [("out_rounding", "0.20"), ("out_rounding_short", "0.19")])
def test_invoice_whose_lines_vat_rounds_differently_books_the_vat_it_states(synced, key, vat):
    # Tryton rounds VAT per invoice and tax; the lines' own VAT, rounded one by one, is a cent
    # off. The entry books the invoice's VAT and needs no rounding line.
    _, _, moves, manifest = synced
    invoice = next(i for i in manifest["invoices"] if i["key"] == key)
    totals = account_totals(moves[invoice["number"]])
    assert D(invoice["tax_amount"]) == D(vat)
    assert totals["44571"] == (D(0), D(vat))
    assert "658" not in totals and "758" not in totals
    assert totals["4111"][0] == D(invoice["total"])


def test_foreign_currency_invoice_is_converted_and_keeps_its_usd_amounts(synced):
    _, _, moves, manifest = synced
    invoice = next(i for i in manifest["invoices"] if i["currency"] == "USD")
    move = moves[invoice["number"]]
    collective = next(x for x in move["lines"] if x["account.code"] == "4111")
    assert collective["debit"] == D(invoice["total_company_currency"])
    assert collective["amount_second_currency"] == D(invoice["total"])


def test_unmapped_vat_rate_fails_only_that_invoice_with_its_code(synced):
    flow, _, _, manifest = synced
    failed = SyncedRecord.objects.get(flow=flow, status=RecordStatus.FAILED)
    expected = next(i for i in manifest["invoices"] if i["expect"] == "fail")
    assert failed.number == expected["number"]
    assert failed.error_code == ErrorCode.MAPPING_TAX_RATE_NOT_FOUND
    assert "2.1 %" in failed.error_message


def test_a_second_run_writes_nothing(synced, tryton_accounting):
    flow, first, moves, _ = synced
    second = run(flow)
    # Only invoices changed since the last read are listed again, and they are unchanged.
    assert second.synced_count == second.failed_count == 0
    assert second.unchanged_count + second.skipped_count == second.processed
    assert len(tryton_moves(tryton_accounting)) == len(moves)
    flow.refresh_from_db()
    # A full re-read (cursor reset) still writes nothing: fingerprints say nothing changed.
    SyncFlow.objects.filter(pk=flow.pk).update(source_cursor=None)
    third = run(flow)
    assert third.synced_count == 0 and third.unchanged_count >= first.synced_count
    assert len(tryton_moves(tryton_accounting)) == len(moves)


def test_fixing_the_mapping_then_retrying_syncs_the_failed_invoice(synced, tryton_accounting):
    flow, _, moves, _ = synced
    suggestions = flow_mappings_suggest(flow=flow)  # now every rate, 2.1 % included
    assert any(v.rate == D("2.1") and v.code for v in suggestions.vat)
    flow_config_changed(flow=flow)
    third = run(flow)
    assert third.synced_count == 1 and third.failed_count == 0
    assert len(tryton_moves(tryton_accounting)) == len(moves) + 1


def test_existing_partners_are_matched_new_ones_created_with_identifiers(synced, tryton_accounting):
    flow, _, _, manifest = synced
    links = {link.source_partner_name: link for link in PartnerLink.objects.filter(flow=flow)}
    existing = {p["matches"]: p for p in tryton_accounting.manifest["existing_parties"]}
    parties = {p["key"]: p for p in manifest["parties"]}
    for key, party in existing.items():
        link = links[parties[key]["name"]]
        assert link.target_partner_id == str(party["id"])
        assert link.matched_by in ("vat_number", "company_number")
    created = [link for link in links.values() if link.matched_by == "created"]
    assert created
    identifiers = _rows(
        tryton_accounting, "party.identifier",
        [("party", "in", [int(link.target_partner_id) for link in created])],
        ["party", "type", "code_compact"],
    )  # fmt: skip
    by_party = defaultdict(set)
    for row in identifiers:
        by_party[row["party"]].add(row["code_compact"])
    for link in created:
        source = next(p for p in parties.values() if p["name"] == link.source_partner_name)
        wanted = {v for k, v in source["identifiers"].items() if k in ("eu_vat", "fr_siren")}
        assert wanted <= by_party[int(link.target_partner_id)], link.source_partner_name


def test_draft_entries_stay_draft(tryton_invoicing, tryton_accounting):
    flow = make_flow(tryton_invoicing, tryton_accounting, draft_entries=True, scope="purchases")
    run(flow)
    moves = tryton_moves(tryton_accounting)
    assert moves and {m["state"] for m in moves.values()} == {"draft"}
    assert all(m["journal.code"] == "EXP" for m in moves.values())


# -- Precise cases with the in-memory source into the live Tryton ------------------------------


def memory_flow(accounting, **settings):
    """A flow from the in-memory source, its 20 % rates mapped to Tryton's services codes."""
    flow = make_flow(None, accounting, source="memory", **settings)
    taxes = accounting.manifest["taxes"]
    for direction, prefix in (("sales", "T.V.A. Vente de services 20%"),
                              ("purchases", "T.V.A. Achat de services 20%")):  # fmt: skip
        tax = next(t for t in taxes if t["name"].startswith(prefix) and t["rate"] == "20")
        flow.vat_mappings.update_or_create(
            direction=direction, source_rate=D("20"), source_tax_id="",
            defaults={"target_code": str(tax["id"])},
        )  # fmt: skip
    flow_config_changed(flow=flow)
    return SyncFlow.objects.get(pk=flow.pk)


def test_partner_matched_by_company_number_siret_to_siren(tryton_accounting):
    party = tryton_accounting.manifest["existing_parties"][0]  # holds a SIREN only
    flow = memory_flow(tryton_accounting)
    partner = Partner(
        "c-1", "Another name", company_number=party["identifiers"]["fr_siren"] + "00126"
    )
    MemorySource.put(InvoiceFactory(partner=partner, issue_date=dt.date.today()))
    run(flow)
    link = PartnerLink.objects.get(flow=flow)
    assert (link.target_partner_id, link.matched_by) == (str(party["id"]), "company_number")


def test_partner_matched_by_vat_number(tryton_accounting):
    party = next(
        p for p in tryton_accounting.manifest["existing_parties"] if "eu_vat" in p["identifiers"]
    )
    flow = memory_flow(tryton_accounting)
    partner = Partner("c-2", "Someone", vat_number=party["identifiers"]["eu_vat"].lower())
    MemorySource.put(InvoiceFactory(partner=partner, issue_date=dt.date.today()))
    run(flow)
    assert PartnerLink.objects.get(flow=flow).matched_by == "vat_number"


def test_partner_matched_by_name(tryton_accounting):
    flow = memory_flow(tryton_accounting)
    MemorySource.put(
        InvoiceFactory(partner=Partner("c-3", "boulangerie martin"), issue_date=dt.date.today())
    )
    run(flow)
    link = PartnerLink.objects.get(flow=flow)
    assert link.matched_by == "name" and link.target_partner_name == "BOULANGERIE MARTIN"


def test_partner_matched_by_auxiliary_account(tryton_accounting):
    # Party codes are typed by people only where no party sequence is configured.
    tryton_accounting.call(
        "model.party.configuration.write", [[1], {"party_sequence": None}], context=True
    )
    [party_id] = tryton_accounting.call(
        "model.party.party.create", [[{"name": "Garage du Centre", "code": "CLI042"}]], context=True
    )
    flow = memory_flow(tryton_accounting)
    partner = Partner("c-4", "Garage Centre SARL", auxiliary_account="CLI042")
    MemorySource.put(InvoiceFactory(partner=partner, issue_date=dt.date.today()))
    run(flow)
    link = PartnerLink.objects.get(flow=flow)
    assert (link.target_partner_id, link.matched_by) == (str(party_id), "auxiliary_account")


def test_a_name_shared_by_many_parties_still_finds_the_one_of_the_same_name(tryton_accounting):
    """A common word (here the longest word of the name) must not push the right party out of a
    truncated candidate list, or a duplicate would be created."""
    tryton_accounting.call(
        "model.party.party.create",
        [[{"name": f"BOULANGERIE AUBERT {n:03d}"} for n in range(150)]],
        context=True,
    )
    [dupont] = tryton_accounting.call(
        "model.party.party.create", [[{"name": "BOULANGERIE DUPONT"}]], context=True
    )
    flow = memory_flow(tryton_accounting)
    partner = Partner("c-5", "Boulangerie Dupont SARL")
    MemorySource.put(InvoiceFactory(partner=partner, issue_date=dt.date.today()))
    run(flow)
    link = PartnerLink.objects.get(flow=flow)
    assert (link.target_partner_id, link.matched_by) == (str(dupont), "name")


def test_a_name_is_found_with_or_without_its_accents(tryton_accounting):
    """Tryton's ilike is accent-sensitive without PostgreSQL's unaccent: "Hotel" must still
    find "HÔTEL", and "Générale" find "GENERALE", or a duplicate would be created."""
    hotel, generale = tryton_accounting.call(
        "model.party.party.create",
        [[{"name": "HÔTEL DU PARC"}, {"name": "GENERALE DE NETTOYAGE"}]],
        context=True,
    )
    flow = memory_flow(tryton_accounting)
    MemorySource.put(
        InvoiceFactory(partner=Partner("c-6", "Hotel du Parc"), issue_date=dt.date.today()),
        InvoiceFactory(
            partner=Partner("c-7", "Générale de Nettoyage SARL"), issue_date=dt.date.today()
        ),
    )
    run(flow)
    links = {link.source_partner_id: link for link in PartnerLink.objects.filter(flow=flow)}
    assert (links["c-6"].target_partner_id, links["c-6"].matched_by) == (str(hotel), "name")
    assert (links["c-7"].target_partner_id, links["c-7"].matched_by) == (str(generale), "name")


def test_new_partners_of_a_batch_are_created_together_and_the_same_one_once(
    tryton_accounting, monkeypatch
):
    """Twelve new customers in one chunk: a handful of calls on parties in all, not a few per
    customer; two source partners with the same VAT number get one party."""
    from connectors.providers.tryton.client import TrytonClient

    calls = []
    real_rpc = TrytonClient._rpc

    def counting_rpc(self, method, *args, **kwargs):
        calls.append(method)
        return real_rpc(self, method, *args, **kwargs)

    flow = memory_flow(tryton_accounting)
    sirets = ["73282932000074", "55208131766522", "40483304800022"]
    partners = [Partner(f"n-{n}", f"Client Nouveau {n:02d}", country="FR") for n in range(9)] + [
        Partner(f"s-{n}", f"Société Siret {n}", company_number=siret, country="FR")
        for n, siret in enumerate(sirets)
    ]
    twin_vat = "FR40303265045"
    twins = [
        Partner("t-1", "Jumeau Un", vat_number=twin_vat),
        Partner("t-2", "Jumeau Deux", vat_number=twin_vat),
    ]
    MemorySource.put(
        *(
            InvoiceFactory(partner=partner, issue_date=dt.date.today())
            for partner in [*partners, *twins]
        )
    )
    monkeypatch.setattr(TrytonClient, "_rpc", counting_rpc)
    run(flow)
    assert SyncedRecord.objects.filter(flow=flow, status=RecordStatus.SYNCED).count() == 14
    party_calls = [m for m in calls if m.startswith(("model.party.", "model.country."))]
    assert len(party_calls) <= 9, party_calls
    links = {link.source_partner_id: link for link in PartnerLink.objects.filter(flow=flow)}
    assert len({links[p.source_id].target_partner_id for p in partners}) == 12
    assert links["t-1"].target_partner_id == links["t-2"].target_partner_id
    assert {links["t-1"].matched_by, links["t-2"].matched_by} == {"created", "vat_number"}
    with_vat = _rows(
        tryton_accounting, "party.identifier", [("code_compact", "=", twin_vat)], ["party"]
    )
    assert len(with_vat) == 1
    found = _rows(
        tryton_accounting, "party.identifier",
        [("party", "in", [int(links[p.source_id].target_partner_id) for p in partners[9:]]),
         ("type", "=", "fr_siret")],
        ["code_compact"],
    )  # fmt: skip
    assert sorted(r["code_compact"] for r in found) == sorted(sirets)


def test_closed_line_account_falls_back_to_the_default_account(tryton_accounting):
    flow = memory_flow(tryton_accounting)
    assert flow.default_purchases_account
    invoice = InvoiceFactory(
        type=InvoiceType.SUPPLIER_INVOICE, partner=Partner("s-1", "Fournisseur Test"),
        issue_date=dt.date.today(),
        lines=(InvoiceLineFactory(account_number="607", untaxed_amount=D("50.00")),),
    )  # fmt: skip
    MemorySource.put(invoice)
    run(flow)
    totals = account_totals(tryton_moves(tryton_accounting)[invoice.number])
    assert "607" not in totals
    assert totals[flow.default_purchases_account] == (D("50.00"), D(0))


# -- The source on its own, and "Test connection" ---------------------------------------------


def test_source_reads_incrementally_by_write_date(tryton_invoicing):
    from connectors.base import ConnectionConfig
    from connectors.canonical import Direction
    from connectors.selectors import outbound_policy

    source = TrytonSource(
        ConnectionConfig(
            "credentials", tryton_invoicing.settings, tryton_invoicing.credentials,
            outbound=outbound_policy(),
        )
    )  # fmt: skip
    everything = list(source.iter_invoices(since=None, directions=list(Direction)))
    listed = {i.number for i in everything if getattr(i, "number", None)}
    expected = {
        i["number"] for i in tryton_invoicing.manifest["invoices"]
        if i["number"] and i["state"] in ("posted", "paid", "cancelled")
    }  # fmt: skip
    assert expected <= listed
    stamps = sorted(i.updated_at for i in everything)
    middle = stamps[len(stamps) // 2]
    later = list(source.iter_invoices(since=middle, directions=list(Direction)))
    assert 0 < len(later) < len(everything)
    assert all(i.updated_at >= middle for i in later)
    sales_only = list(source.iter_invoices(since=None, directions=[Direction.SALES]))
    assert sales_only and all(i.direction is Direction.SALES for i in sales_only)
    cancelled = [i for i in everything if i.status.value == "cancelled"]
    assert len(cancelled) == tryton_invoicing.manifest["counts"]["by_state"]["cancelled"]
    pdf = source.fetch_attachment(next(i for i in everything if i.status.value == "final"))
    assert pdf.content and pdf.filename
    source.close()


@pytest.mark.parametrize("kind", ["invoicing", "accounting"])
def test_test_connection_works_for_both_kinds_and_never_shows_the_password(
    kind, tryton_invoicing, tryton_accounting
):
    from connectors.services import connection_check

    db = tryton_invoicing if kind == "invoicing" else tryton_accounting
    client = ClientFactory()
    good = Connection.objects.create(
        client=client, name="ok", kind=kind, provider="tryton", auth_kind="credentials",
        settings=db.settings, credentials=db.credentials,
    )  # fmt: skip
    assert connection_check(connection=good).ok
    wrong = "Wr0ng-pa55word-xyz"
    bad = Connection.objects.create(
        client=client, name="bad", kind=kind, provider="tryton", auth_kind="credentials",
        settings=db.settings, credentials={"username": "admin", "password": wrong},
    )  # fmt: skip
    check = connection_check(connection=bad)
    assert not check.ok and check.message and wrong not in check.message
    bad.refresh_from_db()
    assert bad.last_check_ok is False and wrong not in bad.last_check_message


def test_reconciliation_after_a_run_on_the_sample_shows_nothing_unexplained(synced):
    from syncs.reconciliation import flow_reconcile

    flow, _, _, manifest = synced
    dates = [dt.date.fromisoformat(i["invoice_date"]) for i in manifest["invoices"] if i["number"]]
    report = flow_reconcile(flow=flow, start=min(dates), end=max(dates))
    assert report.balanced, report.unexplained
    data = report.as_dict()
    listed = sum(row["source"]["count"] for row in data["rows"])
    assert listed >= manifest["counts"]["by_expect"]["sync"]
    assert sum(row["failed"]["count"] for row in data["rows"]) >= 1
