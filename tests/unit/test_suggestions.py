"""Suggested mappings from the tools' lookups."""

from decimal import Decimal as D

from connectors.canonical import Account, Direction, Journal, SourceTaxRate, VatCode
from mappings.suggestions import suggest, suggest_account, suggest_journal, suggest_vat_code
from tests.doubles import FRENCH_ACCOUNTS, FRENCH_JOURNALS, FRENCH_VAT_CODES

S, P = Direction.SALES, Direction.PURCHASES


def test_accounts_prefer_exact_numbers_then_the_shortest_active_one_under_the_prefix():
    accounts = [Account("411", active=False), Account("4111"), Account("41110"), Account("706")]
    assert suggest_account(accounts, ("411",)) == "4111"
    assert suggest_account(accounts, ("706", "70")) == "706"
    assert suggest_account(accounts, ("999",)) is None


def test_journals_by_kind_then_by_usual_code():
    assert (
        suggest_journal([Journal("J1", kind="revenue"), Journal("J2", kind="expense")], S) == "J1"
    )
    assert suggest_journal([Journal("HA"), Journal("VT")], P) == "HA"
    assert suggest_journal([Journal("X")], S) is None


def test_vat_code_with_the_same_rate_and_direction_is_suggested():
    assert suggest_vat_code(FRENCH_VAT_CODES, S, D("20")) == "V20"
    assert suggest_vat_code(FRENCH_VAT_CODES, P, D("5.5")) == "A55"
    assert suggest_vat_code(FRENCH_VAT_CODES, S, D("2.1")) is None


def test_the_plain_domestic_code_wins_over_special_cases_of_the_same_rate():
    codes = [
        VatCode("T1", D("20"), "TVA collectée 20 % intracommunautaire", direction=S),
        VatCode("T2", D("20"), "TVA collectée 20 %", direction=S),
        VatCode("T3", D("20"), "TVA collectée 20 % autoliquidation", direction=S),
    ]
    assert suggest_vat_code(codes, S, D("20")) == "T2"


def test_two_equally_plain_codes_are_left_for_a_person():
    codes = [
        VatCode("T1", D("20"), "TVA A", direction=S),
        VatCode("T2", D("20"), "TVA B", direction=S),
    ]
    assert suggest_vat_code(codes, S, D("20")) is None


def test_suggest_maps_every_source_rate_once_per_direction_and_reports_candidates():
    rates = [SourceTaxRate(S, D("20.0"), "t1"), SourceTaxRate(S, D("20"), "t2"),
             SourceTaxRate(P, D("20")), SourceTaxRate(S, D("2.1"))]  # fmt: skip
    result = suggest(
        source_rates=rates, vat_codes=FRENCH_VAT_CODES, accounts=FRENCH_ACCOUNTS,
        journals=FRENCH_JOURNALS,
    )  # fmt: skip
    assert [(v.direction, v.rate, v.code) for v in result.vat] == [
        (S, D("20.0"), "V20"), (P, D("20"), "A20"), (S, D("2.1"), None),
    ]  # fmt: skip
    assert result.accounts["customer_collective_account"] == "4111"
    assert result.accounts["default_purchases_account"] == "6071"
    assert result.journals == {S: "REV", P: "EXP"}
    assert result.rounding_vat == {S: "V0", P: "A0"}


def test_source_tax_name_breaks_a_tie_between_plain_codes_of_one_rate():
    codes = [
        VatCode("41", D("20"), "T.V.A. Vente de biens 20% (from 2014-01-01)", direction=S),
        VatCode("44", D("20"), "T.V.A. Vente de services 20% (from 2014-01-01)", direction=S),
    ]
    assert suggest_vat_code(codes, S, D("20"), "T.V.A. Vente de services Taux Normal") == "44"
    assert suggest_vat_code(codes, S, D("20"), "T.V.A. Vente de biens Taux Normal") == "41"
    assert suggest_vat_code(codes, S, D("20"), "Something else") is None


def test_source_taxes_of_one_rate_meaning_different_things_are_mapped_by_tax_id():
    codes = [
        VatCode("41", D("20"), "T.V.A. Vente de biens 20%", direction=S),
        VatCode("44", D("20"), "T.V.A. Vente de services 20%", direction=S),
    ]
    rates = [SourceTaxRate(S, D("20"), "1", "T.V.A. Vente de biens Taux Normal"),
             SourceTaxRate(S, D("20"), "2", "T.V.A. Vente de services Taux Normal")]  # fmt: skip
    result = suggest(source_rates=rates, vat_codes=codes, accounts=[], journals=[])
    assert [(v.tax_id, v.code) for v in result.vat] == [("1", "41"), ("2", "44")]
