"""Partner matching: identifiers normalisation and the ordered, never-guessing match."""

import pytest
from stdnum import vatin
from stdnum.fr import siren, siret

from connectors.canonical import Partner, TargetPartner
from connectors.errors import ErrorCode, InvsyncError
from syncs.partners import (
    MATCHED_BY_AUXILIARY_ACCOUNT,
    MATCHED_BY_COMPANY_NUMBER,
    MATCHED_BY_NAME,
    MATCHED_BY_VAT_NUMBER,
    PartnerMatch,
    company_number_keys,
    match_partner,
    normalize_company_number,
    normalize_name,
    normalize_vat,
    vat_is_valid,
)

# Real, valid numbers (checked below with stdnum).
SIREN = "303265045"
SIRET = "30326504500011"  # an establishment of SIREN
OTHER_SIRET = "30326504500029"  # another establishment of the same company
VAT = "FR40303265045"  # the VAT number of SIREN
OTHER_SIREN = "552100554"
OTHER_VAT = "FR96552100554"
GREEK_VAT = "EL094259216"
GERMAN_VAT = "DE136695976"


def source(name="Acme", **fields):
    return Partner(source_id="S1", name=name, **fields)


def target(id, name="Someone else", **fields):
    return TargetPartner(id=id, name=name, **fields)


def ambiguity(partner, candidates) -> InvsyncError:
    with pytest.raises(InvsyncError) as caught:
        match_partner(partner, candidates)
    assert caught.value.code == ErrorCode.PARTNER_AMBIGUOUS
    return caught.value


def test_fixture_numbers_are_valid():
    assert siren.is_valid(SIREN) and siren.is_valid(OTHER_SIREN)
    assert siret.is_valid(SIRET) and siret.is_valid(OTHER_SIRET)
    assert SIRET[:9] == OTHER_SIRET[:9] == SIREN
    for number in (VAT, OTHER_VAT, GREEK_VAT, GERMAN_VAT):
        assert vatin.is_valid(number)


def test_matched_by_values_are_the_model_choices():
    from syncs.models import MatchedBy

    assert {
        MATCHED_BY_AUXILIARY_ACCOUNT,
        MATCHED_BY_VAT_NUMBER,
        MATCHED_BY_COMPANY_NUMBER,
        MATCHED_BY_NAME,
    } <= set(MatchedBy.values)


# normalize_vat / vat_is_valid


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        ("FR40303265045", None, VAT),
        ("fr 40 303.265.045", None, VAT),
        ("FR-40-303-265-045", "FR", VAT),
        ("40303265045", "FR", VAT),
        ("40303265045", "fr", VAT),
        ("40 303 265 045", "FR", VAT),
        ("DE 136 695 976", "FR", GERMAN_VAT),  # a prefix already there wins over the country
        ("094259216", "GR", GREEK_VAT),
        ("094259216", "EL", GREEK_VAT),
        ("GR094259216", None, GREEK_VAT),
        ("el094259216", "GR", GREEK_VAT),
    ],
)
def test_normalize_vat_compacts_and_prefixes_the_country(value, country, expected):
    assert normalize_vat(value, country) == expected


def test_normalize_vat_prefixes_french_numbers_whose_key_is_letters():
    number = "K7399859412"  # French VAT keys may be letters
    assert vatin.is_valid("FR" + number)
    assert normalize_vat(number, "FR") == "FR" + number


@pytest.mark.parametrize("value", [None, "", "   ", " - . "])
def test_normalize_vat_returns_none_for_empty_input(value):
    assert normalize_vat(value, "FR") is None


def test_normalize_vat_without_country_leaves_a_bare_number_unprefixed():
    assert normalize_vat("40303265045") == "40303265045"


def test_invalid_vat_is_still_normalised_but_reported_invalid():
    assert normalize_vat("fr 12 345 678 901") == "FR12345678901"
    assert not vat_is_valid("fr 12 345 678 901")


def test_vat_is_valid():
    assert vat_is_valid("fr 40 303 265 045")
    assert vat_is_valid("40303265045", "FR")
    assert vat_is_valid("GR094259216")
    assert not vat_is_valid("40303265045")  # no country: cannot be checked
    assert not vat_is_valid(None)
    assert not vat_is_valid("")


# normalize_company_number / company_number_keys


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        ("303 265 045", "FR", SIREN),
        ("303.265.045", None, SIREN),
        ("303 265 045 00011", "FR", SIRET),
        ("303-265-045-00011", None, SIRET),
        ("hrb 12.345", "DE", "HRB12345"),
        (" 0403 170 701 ", "BE", "0403170701"),
        (None, "FR", None),
        ("", None, None),
        (" . ", "FR", None),
    ],
)
def test_normalize_company_number(value, country, expected):
    assert normalize_company_number(value, country) == expected


def test_siret_is_keyed_under_itself_and_its_siren():
    assert company_number_keys("303 265 045 00011", "FR") == {SIRET, SIREN}
    assert company_number_keys(SIRET) == {SIRET, SIREN}


def test_siren_is_keyed_under_itself():
    assert company_number_keys("303 265 045") == {SIREN}


def test_foreign_fourteen_digit_number_is_not_split_as_a_siret():
    assert company_number_keys(SIRET, "DE") == {SIRET}


def test_other_company_numbers_are_keyed_compacted():
    assert company_number_keys("hrb 12.345", "DE") == {"HRB12345"}
    assert company_number_keys(None) == frozenset()
    assert company_number_keys("") == frozenset()


# normalize_name


@pytest.mark.parametrize(
    "value",
    ["ACME S.A.S.", "Acme SAS", "acme", "  ACME  ", "Acme, S.A.", "SARL Acme", "Acme Ltd.", "ACME"],
)
def test_names_differing_by_case_punctuation_and_legal_form_normalise_alike(value):
    assert normalize_name(value) == "acme"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Société Générale", "societe generale"),
        ("SOCIETE   GENERALE S.A.", "societe generale"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Dupont & Cie", "dupont"),
        ("Dupont et Cie", "dupont"),
        ("Dupont & Fils SARL", "dupont & fils"),
        ("L'Atelier-du-Bœuf", "l atelier du boeuf"),
        ("Crème Brûlée EURL", "creme brulee"),
    ],
)
def test_normalize_name_strips_accents_punctuation_and_legal_forms(value, expected):
    assert normalize_name(value) == expected


def test_legal_form_inside_a_name_is_kept():
    assert normalize_name("Le SA Club Paris") == "le sa club paris"


@pytest.mark.parametrize(("value", "expected"), [("SAS", "sas"), ("S.A.R.L.", "sarl")])
def test_name_made_only_of_a_legal_form_is_not_emptied(value, expected):
    assert normalize_name(value) == expected


@pytest.mark.parametrize("value", [None, "", "  ", "--"])
def test_normalize_name_returns_none_for_empty_input(value):
    assert normalize_name(value) is None


# match_partner: each criterion


def test_matches_on_auxiliary_account_stripped_and_upper_cased():
    wanted = target("7", auxiliary_accounts=("411OTHER", "411ACME"))
    match = match_partner(source(auxiliary_account=" 411acme "), [target("1"), wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_AUXILIARY_ACCOUNT)


def test_matches_on_vat_number():
    wanted = target("7", vat_numbers=(VAT,))
    match = match_partner(source(vat_number=VAT), [target("1", vat_numbers=(OTHER_VAT,)), wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_VAT_NUMBER)


def test_vat_with_spaces_and_lowercase_matches():
    wanted = target("7", vat_numbers=("FR 40 303 265 045",))
    match = match_partner(source(vat_number="fr40 303.265-045"), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_VAT_NUMBER)


def test_vat_without_country_prefix_matches_using_the_partner_country():
    wanted = target("7", vat_numbers=(VAT,))
    match = match_partner(source(vat_number="40 303 265 045", country="FR"), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_VAT_NUMBER)


def test_greek_vat_matches_whether_written_gr_or_el():
    wanted = target("7", vat_numbers=("GR094259216",))
    match = match_partner(source(vat_number="094259216", country="GR"), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_VAT_NUMBER)


def test_matches_on_company_number():
    wanted = target("7", company_numbers=(SIREN,))
    match = match_partner(
        source(company_number="303 265 045"),
        [target("1", company_numbers=(OTHER_SIREN,)), wanted],
    )
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_COMPANY_NUMBER)


def test_siret_matches_candidate_holding_its_siren():
    wanted = target("7", company_numbers=(SIREN,))
    match = match_partner(source(company_number=SIRET, country="FR"), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_COMPANY_NUMBER)


def test_siren_matches_candidate_holding_one_of_its_sirets():
    wanted = target("7", company_numbers=("303 265 045 00011",))
    match = match_partner(source(company_number=SIREN), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_COMPANY_NUMBER)


def test_two_sirets_of_one_siren_match():
    wanted = target("7", company_numbers=(OTHER_SIRET,))
    match = match_partner(source(company_number=SIRET), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_COMPANY_NUMBER)


def test_sirets_of_different_companies_do_not_match():
    other = target("7", company_numbers=(OTHER_SIREN + "00013",))
    assert match_partner(source(company_number=SIRET), [other]) is None


def test_matches_on_normalised_name():
    wanted = target("7", name="ACME S.A.S.")
    match = match_partner(source(name="Acme"), [target("1", name="Acme Industries"), wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_NAME)


def test_partner_with_nothing_but_a_name_matches_on_the_name():
    wanted = target("7", name="Société Générale", vat_numbers=(VAT,), company_numbers=(SIREN,))
    partner = Partner(source_id="S1", name="SOCIETE GENERALE SA")
    match = match_partner(partner, [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_NAME)


# match_partner: order


def test_auxiliary_account_wins_over_vat_number():
    by_account = target("1", auxiliary_accounts=("411ACME",))
    by_vat = target("2", vat_numbers=(VAT,))
    partner = source(auxiliary_account="411ACME", vat_number=VAT)
    match = match_partner(partner, [by_vat, by_account])
    assert match == PartnerMatch(partner=by_account, matched_by=MATCHED_BY_AUXILIARY_ACCOUNT)


def test_vat_number_wins_over_company_number():
    by_vat = target("1", vat_numbers=(VAT,))
    by_company = target("2", company_numbers=(SIREN,))
    partner = source(vat_number=VAT, company_number=SIREN)
    match = match_partner(partner, [by_company, by_vat])
    assert match == PartnerMatch(partner=by_vat, matched_by=MATCHED_BY_VAT_NUMBER)


def test_company_number_wins_over_name():
    by_company = target("1", name="Other name", company_numbers=(SIREN,))
    by_name = target("2", name="Acme")
    match = match_partner(source(name="Acme", company_number=SIREN), [by_name, by_company])
    assert match == PartnerMatch(partner=by_company, matched_by=MATCHED_BY_COMPANY_NUMBER)


def test_step_without_hit_falls_through_to_the_next():
    wanted = target("2", name="Acme SAS")
    candidates = [target("1", auxiliary_accounts=("411OTHER",), vat_numbers=(OTHER_VAT,)), wanted]
    partner = source(auxiliary_account="411ACME", vat_number=VAT, company_number=SIREN)
    assert match_partner(partner, candidates) == PartnerMatch(
        partner=wanted, matched_by=MATCHED_BY_NAME
    )


# match_partner: ambiguity, duplicates, no match, empty fields


def test_two_candidates_with_the_auxiliary_account_are_ambiguous():
    error = ambiguity(
        source(auxiliary_account="411ACME"),
        [
            target("12", name="ACME", auxiliary_accounts=("411ACME",)),
            target("31", name="ACME SAS", auxiliary_accounts=("411acme",)),
        ],
    )
    assert error.field == "auxiliary_account"
    assert error.message == (
        "Two customers/suppliers in accounting have the auxiliary account 411ACME: "
        '"ACME" (12), "ACME SAS" (31).'
    )


def test_two_candidates_with_the_vat_number_are_ambiguous():
    error = ambiguity(
        source(vat_number="40303265045", country="FR"),
        [
            target("12", name="ACME", vat_numbers=(VAT,)),
            target("31", name="ACME SAS", vat_numbers=("fr 40 303 265 045",)),
        ],
    )
    assert error.field == "vat_number"
    assert error.message == (
        "Two customers/suppliers in accounting have the VAT number FR40303265045: "
        '"ACME" (12), "ACME SAS" (31).'
    )


def test_two_establishments_matching_a_siren_are_ambiguous():
    error = ambiguity(
        source(company_number=SIREN),
        [
            target("12", name="ACME Lyon", company_numbers=(SIRET,)),
            target("31", name="ACME Paris", company_numbers=(OTHER_SIRET,)),
        ],
    )
    assert error.field == "company_number"
    assert SIREN in error.message
    assert '"ACME Lyon" (12)' in error.message
    assert '"ACME Paris" (31)' in error.message


def test_two_candidates_with_the_name_are_ambiguous():
    error = ambiguity(
        source(name="ACME S.A.S."),
        [target("12", name="Acme"), target("31", name="ACME SARL"), target("40", name="Acme Inc")],
    )
    assert error.field == "name"
    assert error.message.startswith("Three customers/suppliers")
    assert '"ACME S.A.S."' in error.message
    for shown in ('"Acme" (12)', '"ACME SARL" (31)', '"Acme Inc" (40)'):
        assert shown in error.message


def test_ambiguity_is_not_resolved_by_a_later_step():
    candidates = [
        target("12", name="ACME", vat_numbers=(VAT,), company_numbers=(SIREN,)),
        target("31", name="ACME Holding", vat_numbers=(VAT,)),
    ]
    partner = source(name="Acme", vat_number=VAT, company_number=SIREN)
    error = ambiguity(partner, candidates)
    assert error.field == "vat_number"


def test_ambiguous_auxiliary_account_is_not_resolved_by_a_unique_vat_number():
    candidates = [
        target("12", auxiliary_accounts=("411ACME",), vat_numbers=(VAT,)),
        target("31", auxiliary_accounts=("411ACME",)),
    ]
    error = ambiguity(source(auxiliary_account="411ACME", vat_number=VAT), candidates)
    assert error.field == "auxiliary_account"


def test_same_candidate_listed_twice_is_not_ambiguous():
    first = target("7", name="ACME", vat_numbers=(VAT,))
    again = target("7", name="ACME", vat_numbers=(VAT,), company_numbers=(SIREN,))
    match = match_partner(source(vat_number=VAT), [first, again])
    assert match == PartnerMatch(partner=first, matched_by=MATCHED_BY_VAT_NUMBER)


def test_same_candidate_listed_twice_by_name_is_not_ambiguous():
    candidates = [target("7", name="Acme"), target("7", name="ACME SAS")]
    match = match_partner(source(name="Acme"), candidates)
    assert match is not None
    assert match.partner.id == "7"
    assert match.matched_by == MATCHED_BY_NAME


def test_candidate_with_two_matching_vat_numbers_is_one_hit():
    wanted = target("7", vat_numbers=(VAT, "fr40303265045"))
    match = match_partner(source(vat_number=VAT), [wanted])
    assert match == PartnerMatch(partner=wanted, matched_by=MATCHED_BY_VAT_NUMBER)


def test_no_match_returns_none():
    candidates = [
        target("1", name="Globex", vat_numbers=(OTHER_VAT,), company_numbers=(OTHER_SIREN,)),
        target("2", name="Initech", auxiliary_accounts=("411INITECH",)),
    ]
    partner = source(name="Acme", auxiliary_account="411ACME", vat_number=VAT, company_number=SIRET)
    assert match_partner(partner, candidates) is None


def test_no_candidates_returns_none():
    assert match_partner(source(vat_number=VAT), []) is None


def test_empty_source_fields_are_skipped_not_matched_to_empty_candidate_fields():
    blank = target("1", name="Globex", auxiliary_accounts=("",), vat_numbers=("  ",))
    wanted = target("2", name="Acme")
    partner = source(auxiliary_account="  ", vat_number="", company_number=None)
    assert match_partner(partner, [blank, wanted]) == PartnerMatch(
        partner=wanted, matched_by=MATCHED_BY_NAME
    )


def test_empty_candidate_names_do_not_match_each_other():
    candidates = [target("1", name=""), target("2", name="  ")]
    assert match_partner(source(name="Acme"), candidates) is None
