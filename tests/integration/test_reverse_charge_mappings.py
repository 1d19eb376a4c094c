"""Reverse charge in a flow's configuration: a self-assessed purchase tax is mapped to a pair of
VAT codes (deductible and collected). The VAT row's validation, the admin form, the setup
checklist, the proposals, the engine configuration and export/import all know the pair."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from connectors.canonical import Direction, SourceTaxRate, TargetLookups, TaxKind, VatCode
from mappings.checklist import flow_setup_checklist
from mappings.forms import VatMappingForm
from mappings.lookups import FlowLookups, lookup_rows_decode, lookup_rows_encode
from mappings.models import VatMapping
from mappings.portable import flow_document_read, flow_export
from mappings.proposals import flow_vat_proposals
from mappings.suggestions import suggest
from syncs.config import VatRule
from syncs.selectors import flow_engine_config
from tests.doubles import FRENCH_VAT_CODES
from tests.factories import SyncFlowFactory

pytestmark = pytest.mark.django_db

P = Direction.PURCHASES
# As Tryton's French chart lists them: the intra-EU acquisition tax has a +20 % child on 44566
# and a -20 % child on 4452.
TRYTON_LIKE_CODES = (
    *FRENCH_VAT_CODES,
    VatCode("61", D("20"), "T.V.A. Achat Intracommunautaire de biens 20% (1)", "44566", P),
    VatCode("62", D("-20"), "T.V.A. Achat Intracommunautaire de biens 20% (2)", "4452", P),
)
INTRA = SourceTaxRate(
    P, D("20"), "60", "T.V.A. Achat Intracommunautaire de biens Taux Normal", TaxKind.INTRA_EU
)
PLAIN = SourceTaxRate(P, D("20"), "50", "T.V.A. Achat de biens Taux Normal")


def lookups(**changes) -> FlowLookups:
    values = {
        "folder": "1",
        "vat_codes": TRYTON_LIKE_CODES,
        "source_rates": (INTRA, PLAIN),
        "accounts": (),
        "journals": (),
    }
    return FlowLookups(**(values | changes))


def row_form(data: dict, lookups_: FlowLookups | None = None) -> VatMappingForm:
    form_class = type("Form", (VatMappingForm,), {"lookups": lookups_ or lookups()})
    return form_class(data=data, instance=VatMapping(flow=SyncFlowFactory(vat=False)))


# -- The VAT row and its form --------------------------------------------------------------------


def test_a_sales_row_may_not_name_a_collected_code():
    flow = SyncFlowFactory(vat=False)
    row = VatMapping(flow=flow, direction="sales", source_rate=D("20"), target_code="V20",
                     collected_code="A20")  # fmt: skip
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert "collected_code" in error.value.message_dict


def test_the_collected_code_must_differ_from_the_deductible_one():
    flow = SyncFlowFactory(vat=False)
    row = VatMapping(flow=flow, direction="purchases", source_tax_id="60", target_code="61",
                     collected_code="61")  # fmt: skip
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert "collected_code" in error.value.message_dict


def test_the_form_requires_the_collected_code_of_a_reverse_charge_tax():
    form = row_form({"direction": "purchases", "source_tax_id": "60", "target_code": "61"})
    assert not form.is_valid()
    assert "reverse-charge" in form.errors["collected_code"][0]
    assert "Intracommunautaire" in form.errors["collected_code"][0]


def test_the_form_saves_a_reverse_charge_row_with_both_codes():
    form = row_form({"direction": "purchases", "source_tax_id": "60", "target_code": "61",
                     "collected_code": "62"})  # fmt: skip
    assert form.is_valid(), form.errors
    assert form.save().collected_code == "62"


def test_the_form_offers_the_purchase_codes_for_the_collected_code_and_refuses_a_sales_one():
    form = row_form({"direction": "purchases", "source_tax_id": "60", "target_code": "61",
                     "collected_code": "V20"})  # fmt: skip
    offered = {value for value, _ in form.fields["collected_code"].widget.choices if value}
    assert {"61", "62"} <= offered and "V20" not in offered - {"V20"}
    assert not form.is_valid() and "collected_code" in form.errors


def test_a_plain_purchase_rate_needs_no_collected_code():
    form = row_form({"direction": "purchases", "source_tax_id": "50", "target_code": "A20"})
    assert form.is_valid(), form.errors


# -- Checklist and proposals -----------------------------------------------------------------------


def test_checklist_flags_a_reverse_charge_tax_mapped_to_one_code_only():
    flow = SyncFlowFactory(vat=False, folder="1", scope="purchases")
    VatMapping.objects.create(flow=flow, direction="purchases", source_tax_id="60",
                              target_code="61")  # fmt: skip
    VatMapping.objects.create(flow=flow, direction="purchases", source_rate=D("20"),
                              target_code="A20")  # fmt: skip
    steps = {s.key: s for s in flow_setup_checklist(flow, lookups=lookups())}
    assert not steps["purchases_vat"].done
    assert "without a collected VAT code" in steps["purchases_vat"].detail

    VatMapping.objects.filter(source_tax_id="60").update(collected_code="62")
    steps = {s.key: s for s in flow_setup_checklist(flow, lookups=lookups())}
    assert steps["purchases_vat"].done, steps["purchases_vat"].detail


def test_checklist_flags_a_collected_code_the_tool_does_not_have():
    flow = SyncFlowFactory(vat=False, folder="1", scope="purchases")
    VatMapping.objects.create(flow=flow, direction="purchases", source_tax_id="60",
                              target_code="61", collected_code="999")  # fmt: skip
    steps = {s.key: s for s in flow_setup_checklist(flow, lookups=lookups())}
    assert not steps["purchases_vat"].done and "999" in steps["purchases_vat"].detail


def test_proposals_pair_the_reverse_charge_tax_with_its_collected_code():
    flow = SyncFlowFactory(vat=False, folder="1", scope="purchases")
    proposals = {p.source_tax_id or p.source_rate: p for p in flow_vat_proposals(flow, lookups())}
    intra = proposals["60"]
    assert (intra.target_code, intra.collected_code) == ("61", "62")
    assert intra.as_initial()["collected_code"] == "62"
    plain = proposals[D("20")]  # the plain taxes of the rate are mapped by rate
    assert plain.collected_code == ""


def test_suggestions_leave_the_pair_to_a_person_when_the_tool_has_no_collected_code():
    result = suggest(source_rates=[INTRA], vat_codes=FRENCH_VAT_CODES, accounts=(), journals=())
    (row,) = result.vat
    assert (row.tax_id, row.code, row.collected_code) == ("60", None, None)


# -- Engine configuration, lookups cache, export and import ----------------------------------------


def test_engine_configuration_carries_the_collected_code():
    flow = SyncFlowFactory(vat=False)
    VatMapping.objects.create(flow=flow, direction="purchases", source_tax_id="60",
                              target_code="61", collected_code="62")  # fmt: skip
    config = flow_engine_config(flow, TargetLookups())
    assert config.purchases_vat == (VatRule(None, "60", "61", "62"),)


def test_cached_source_taxes_keep_their_kind_and_old_caches_read_as_standard():
    payload = lookup_rows_encode("tax_rates", "invoicing", [INTRA])
    assert payload[0]["kind"] == "intra_eu"
    assert lookup_rows_decode("tax_rates", "invoicing", payload) == (INTRA,)
    del payload[0]["kind"]
    (old,) = lookup_rows_decode("tax_rates", "invoicing", payload)
    assert old.kind is TaxKind.STANDARD


def test_export_and_import_keep_the_collected_code():
    flow = SyncFlowFactory(vat=False)
    VatMapping.objects.create(flow=flow, direction="purchases", source_tax_id="60",
                              target_code="61", collected_code="62")  # fmt: skip
    document = flow_export(flow=flow)
    assert document["vat_mappings"][0]["collected_code"] == "62"
    assert flow_document_read(document).vat_mappings[0]["collected_code"] == "62"
    del document["vat_mappings"][0]["collected_code"]  # a document exported before
    assert "collected_code" not in flow_document_read(document).vat_mappings[0]
