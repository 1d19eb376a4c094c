"""Matching a source partner to the accounting folder's partners (DESIGN.md, "Third parties").

Pure Python: no ORM, no HTTP. The criteria are applied in a fixed order (auxiliary account, VAT
number, company number, name) and the first step with exactly one hit wins. Two or more hits at
one step raise ``PARTNER_AMBIGUOUS``: posting an invoice on the wrong customer is worse than
stopping, so a later, weaker criterion is never used to break the tie.

Identifiers are normalised with python-stdnum so that the same number typed differently in the
two tools ("fr 40 303.265.045" and "FR40303265045") is the same key.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stdnum import vatin
from stdnum.exceptions import ValidationError
from stdnum.fr import siren, siret
from stdnum.util import clean

from connectors.canonical import Partner, TargetPartner
from connectors.errors import ErrorCode, InvsyncError
from connectors.messages import Msg

# The values of ``syncs.models.MatchedBy``, repeated here to keep this module free of the ORM.
MATCHED_BY_AUXILIARY_ACCOUNT = "auxiliary_account"
MATCHED_BY_VAT_NUMBER = "vat_number"
MATCHED_BY_COMPANY_NUMBER = "company_number"
MATCHED_BY_NAME = "name"

# Legal forms (casefolded, without dots) dropped from the edges of a name: "ACME S.A.S.", "SARL
# Acme" and "Acme" are the same company to a person. Only leading and trailing runs are dropped,
# so a word inside a name ("Le Spa des Alpes") is kept.
LEGAL_FORMS: frozenset[str] = frozenset(
    {
        # France
        "sa", "sas", "sasu", "sarl", "eurl", "snc", "sci", "sca", "scs", "scop", "scp", "sel",
        "selarl", "selas", "gie", "ei", "eirl", "cie",
        # Germany, Austria, Switzerland
        "gmbh", "ag", "kg", "ohg", "ug", "gbr", "ev",
        # English-speaking
        "ltd", "limited", "plc", "llp", "lp", "inc", "incorporated", "llc", "corp",
        "corporation", "co", "company", "pty",
        # Benelux, Italy, Spain, Portugal, Scandinavia
        "bv", "nv", "bvba", "sprl", "srl", "spa", "sapa", "sl", "slu", "lda", "ab", "as",
        "asa", "aps", "oy", "oyj",
    }
)  # fmt: skip

# Words joining legal forms ("Dupont & Cie", "Smith and Co"): dropped only just before a legal form
# at the end of a name.
LEGAL_FORM_JOINERS: frozenset[str] = frozenset({"&", "et", "and", "und", "y", "e"})

# Letters that NFKD does not decompose into a base letter plus an accent.
_TRANSLITERATIONS = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d"})
# Dotted abbreviations: "s.a.s." -> "sas", "g.m.b.h" -> "gmbh".
_DOTTED_ABBREVIATION = re.compile(r"\b[^\W\d_](?:\.[^\W\d_])+\b\.?")
_NAME_TOKEN = re.compile(r"[^\W_]+|&")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")

# Greece is "GR" in ISO 3166 but "EL" in VAT numbers; both spellings mean the same prefix.
_GREECE = frozenset({"GR", "EL"})


def _compact(value: str) -> str:
    """Upper-case and keep only letters and digits (stdnum's ``clean`` also unifies odd dashes)."""
    return _NOT_ALNUM.sub("", clean(value).upper())


def _vat_prefix(country: str | None) -> str | None:
    code = (country or "").strip().upper()
    if len(code) != 2 or not code.isalpha():
        return None
    return "EL" if code in _GREECE else code


def _vatin_is_valid(number: str) -> bool:
    try:
        return vatin.is_valid(number)
    except (ValidationError, ValueError, KeyError, AttributeError):
        return False


def normalize_vat(value: str | None, country: str | None = None) -> str | None:
    """The VAT number compacted ("FR40303265045"), or None when empty.

    A number without its two-letter country prefix gets the ``country``'s ("40303265045" with
    FR). Letters at the start are taken as a prefix unless the number only reads as a valid number
    of ``country`` (French VAT keys may be letters). Greek "GR" becomes "EL". Invalid numbers are
    still compacted, so they can match an identical typo on the other side; ``vat_is_valid`` tells.
    """
    if not value:
        return None
    number = _compact(value)
    if not number:
        return None
    prefix = _vat_prefix(country)
    if prefix and not number.startswith(prefix):
        has_prefix = number[:2].isalpha() and (
            _vatin_is_valid(number) or not _vatin_is_valid(prefix + number)
        )
        if not has_prefix:
            number = prefix + number
    if number.startswith("GR"):
        number = "EL" + number[2:]
    try:
        # The country's own compact form, where stdnum knows the country.
        return _compact(vatin.compact(number))
    except (ValidationError, ValueError, KeyError, AttributeError):
        return number


def vat_is_valid(value: str | None, country: str | None = None) -> bool:
    """Whether the (normalised) VAT number passes its country's check digits."""
    number = normalize_vat(value, country)
    return bool(number) and _vatin_is_valid(number)


def _is_french(country: str | None) -> bool:
    return country is None or country.strip().upper() in ("", "FR")


def normalize_company_number(value: str | None, country: str | None = None) -> str | None:
    """The company number compacted, or None when empty.

    French SIREN/SIRET (country FR, or unknown country) go through stdnum's compact first; every
    number then keeps only its letters and digits, upper-cased.
    """
    if not value:
        return None
    if _is_french(country):
        compact = siret.compact if len(_compact(value)) > 9 else siren.compact
        value = compact(value)
    return _compact(value) or None


def company_number_keys(value: str | None, country: str | None = None) -> frozenset[str]:
    """The keys under which a company number matches another one.

    A French SIRET (14 digits) identifies one establishment; its first nine digits are the
    company's SIREN. So a SIRET is keyed under itself and its SIREN: it matches its SIREN, the
    SIREN matches it, and two establishments of one company meet on the SIREN. Accounting
    partners carry no country, so an unknown country is read as French.
    """
    number = normalize_company_number(value, country)
    if not number:
        return frozenset()
    if _is_french(country) and number.isdigit() and len(number) == 14:
        return frozenset({number, number[:9]})
    return frozenset({number})


def normalize_name(value: str | None) -> str | None:
    """The name as a person compares it: no case, accents, punctuation or legal form.

    "ACME S.A.S.", "Acme SAS" and "acme" all give "acme". A name made only of a legal form
    ("SAS") keeps it rather than becoming empty, so it cannot match every other such name.
    """
    if not value:
        return None
    text = unicodedata.normalize("NFKD", value)
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = text.casefold().translate(_TRANSLITERATIONS)
    text = _DOTTED_ABBREVIATION.sub(lambda match: match.group().replace(".", ""), text)
    tokens = _NAME_TOKEN.findall(text)
    if not tokens:
        return None
    start, end = 0, len(tokens)
    while start < end and tokens[start] in LEGAL_FORMS:
        start += 1
    while start < end and (
        tokens[end - 1] in LEGAL_FORMS
        or (tokens[end - 1] in LEGAL_FORM_JOINERS and end < len(tokens))
    ):
        end -= 1
    kept = tokens[start:end] or tokens
    return " ".join(kept)


@dataclass(frozen=True)
class PartnerMatch:
    """The accounting partner found, and the criterion (a ``MatchedBy`` value) that found it."""

    partner: TargetPartner
    matched_by: str


@dataclass(frozen=True)
class _Criterion:
    matched_by: str
    field: str  # the source Partner field, for the error
    label: str  # how the message names the criterion
    source_keys: Callable[[Partner], frozenset[str]]
    candidate_keys: Callable[[TargetPartner], frozenset[str]]
    shown: Callable[[Partner], str | None]  # the source value as the message quotes it


def _keys(
    values: Sequence[str | None], normalise: Callable[[str | None], str | None]
) -> frozenset[str]:
    return frozenset(key for key in map(normalise, values) if key)


def _account(value: str | None) -> str | None:
    return (value or "").strip().upper() or None


def _company_keys(values: Sequence[str | None], country: str | None = None) -> frozenset[str]:
    return frozenset().union(*(company_number_keys(value, country) for value in values))


_CRITERIA: tuple[_Criterion, ...] = (
    _Criterion(
        MATCHED_BY_AUXILIARY_ACCOUNT,
        "auxiliary_account",
        "the auxiliary account",
        lambda p: _keys([p.auxiliary_account], _account),
        lambda c: _keys(c.auxiliary_accounts, _account),
        lambda p: _account(p.auxiliary_account),
    ),
    _Criterion(
        MATCHED_BY_VAT_NUMBER,
        "vat_number",
        "the VAT number",
        lambda p: _keys([p.vat_number], lambda v: normalize_vat(v, p.country)),
        lambda c: _keys(c.vat_numbers, normalize_vat),
        lambda p: normalize_vat(p.vat_number, p.country),
    ),
    _Criterion(
        MATCHED_BY_COMPANY_NUMBER,
        "company_number",
        "the company number",
        lambda p: _company_keys([p.company_number], p.country),
        lambda c: _company_keys(c.company_numbers),
        lambda p: normalize_company_number(p.company_number, p.country),
    ),
    _Criterion(
        MATCHED_BY_NAME,
        "name",
        "the name",
        lambda p: _keys([p.name], normalize_name),
        lambda c: _keys([c.name], normalize_name),
        lambda p: f'"{p.name.strip()}"',
    ),
)

_COUNT_WORDS = {2: "Two", 3: "Three", 4: "Four", 5: "Five"}
_LISTED_AT_MOST = 5


def _ambiguous(criterion: _Criterion, partner: Partner, hits: list[TargetPartner]) -> InvsyncError:
    listed = ", ".join(f'"{hit.name}" ({hit.id})' for hit in hits[:_LISTED_AT_MOST])
    if len(hits) > _LISTED_AT_MOST:
        listed += f" and {len(hits) - _LISTED_AT_MOST} more"
    count = _COUNT_WORDS.get(len(hits), str(len(hits)))
    message = (
        f"{count} customers/suppliers in accounting have {criterion.label} "
        f"{criterion.shown(partner)}: {listed}."
    )
    # For the admin, in the reader's language: the same facts by key (connectors.messages).
    more = len(hits) - _LISTED_AT_MOST
    names = ", ".join(f'"{hit.name}" ({hit.id})' for hit in hits[:_LISTED_AT_MOST])
    params = {
        "count": len(hits),
        "criterion": Msg(f"criterion.{criterion.field}"),
        "value": criterion.shown(partner),
        "listed": names,
        "more": more,
    }
    return InvsyncError(
        ErrorCode.PARTNER_AMBIGUOUS,
        message,
        field=criterion.field,
        key="run.partners_ambiguous_more" if more > 0 else "run.partners_ambiguous",
        params=params,
    )


def match_partner(partner: Partner, candidates: Sequence[TargetPartner]) -> PartnerMatch | None:
    """The one accounting partner that is ``partner``, or None when no criterion finds any.

    Steps run in order; a step whose source value is empty is skipped, the first step with one
    hit wins, and a step with hits on several distinct candidates (by id) raises
    ``PARTNER_AMBIGUOUS`` rather than letting a later step pick one: never guess.
    """
    for criterion in _CRITERIA:
        wanted = criterion.source_keys(partner)
        if not wanted:
            continue
        # Keyed by id: a partner listed twice (e.g. once per VAT number) is one hit.
        by_id: dict[str, TargetPartner] = {}
        for candidate in candidates:
            if wanted & criterion.candidate_keys(candidate):
                by_id.setdefault(candidate.id, candidate)
        hits = list(by_id.values())
        if len(hits) == 1:
            return PartnerMatch(partner=hits[0], matched_by=criterion.matched_by)
        if hits:
            raise _ambiguous(criterion, partner, hits)
    return None
