"""The admin's template filters."""

from syncs.templatetags.invsync import named, vat_code_named


def test_named_puts_the_name_beside_a_known_code():
    names = {"706": "Prestations de services", "12": "TVA collectée 20 %"}
    assert named("706", names) == "706 — Prestations de services"
    assert named(12, names) == "12 — TVA collectée 20 %"


def test_named_leaves_an_unknown_code_alone_and_an_empty_one_empty():
    assert named("707", {"706": "Services"}) == "707"
    assert named("707", None) == "707"
    assert named("", {"": "x"}) == "" and named(None, {}) == ""
    assert named("V0", {"V0": "V0"}) == "V0"  # a name that only repeats the code


def test_a_vat_code_reads_by_its_label_not_by_the_tools_key():
    labels = {"44": "T.V.A. Vente de biens Taux Normal 20% · 44571"}
    assert vat_code_named("44", labels) == "T.V.A. Vente de biens Taux Normal 20% · 44571"
    assert vat_code_named(44, labels) == "T.V.A. Vente de biens Taux Normal 20% · 44571"
    assert vat_code_named("45", labels) == "45"  # unknown: the code, as stored
    assert vat_code_named("", labels) == "" and vat_code_named(None, None) == ""
