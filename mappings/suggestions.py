"""Suggested mappings: what an accountant would most likely pick, read from both tools' lookups.

Pure functions over the canonical lookups (no ORM, no HTTP). The admin pre-selects these; the demo
applies them. A suggestion is never a guess between equals that differ in meaning: when two target
VAT codes share a rate and direction, the one whose name marks it as the standard domestic code is
preferred, and otherwise the rate is left for a person to map.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from connectors.canonical import Account, Direction, Journal, SourceTaxRate, VatCode
from mappings.accounts import ACCOUNT_FIELD_KINDS, account_fits
from mappings.flow_settings import SettingType, settings_of

# Preferred numbers where the target's chart is the French one (PCG), most specific first;
# prefixes are tried after exact numbers, so 706 finds 706 or else 7061, 70611... Only accounts of
# the kind the setting takes are proposed, so another chart's same numbers are never picked; in
# another chart, the one active account of the kind is proposed (see :func:`suggest_account`).
FRENCH_CHART_PREFERENCES: dict[str, tuple[str, ...]] = {
    setting.name: setting.french_chart_numbers for setting in settings_of(SettingType.ACCOUNT)
}
JOURNAL_KINDS = {
    Direction.SALES: ("revenue", "sales", "sale"),
    Direction.PURCHASES: ("expense", "purchases", "purchase"),
}
JOURNAL_CODES = {Direction.SALES: ("REV", "VT", "VE"), Direction.PURCHASES: ("EXP", "HA", "AC")}
# Words in a VAT code's name that mark a special case, not the everyday domestic code.
_SPECIAL = re.compile(
    r"intra|import|export|autoliq|reverse|immobilis|fixed asset|non d[eé]duct|"
    r"d[eé]bit|encaissement|dom|corse|btp|sous-trait",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class VatSuggestion:
    direction: Direction
    rate: Decimal | None
    tax_id: str | None
    code: str | None  # None: no unique sensible code; a person must choose
    candidates: tuple[str, ...] = ()
    # A self-assessed (reverse-charge) purchase tax: the collected code beside ``code``, the
    # deductible one (None: a person chooses).
    collected_code: str | None = None


@dataclass
class Suggestions:
    accounts: dict[str, str] = field(default_factory=dict)
    journals: dict[Direction, str] = field(default_factory=dict)
    vat: list[VatSuggestion] = field(default_factory=list)
    rounding_vat: dict[Direction, str] = field(default_factory=dict)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()


def suggest_account(
    accounts: Sequence[Account], preferences: Sequence[str], field_name: str | None = None
) -> str | None:
    """The account to propose for a setting: among the active accounts of the kinds
    ``field_name`` takes (all when None), the first of ``preferences`` (exact numbers, then the
    shortest under a prefix); else, for a setting that takes one kind, the only active account
    of that kind. None when nothing fits or several do alike."""
    active = [
        a for a in accounts if a.active and (field_name is None or account_fits(a, field_name))
    ]
    numbers = {a.number for a in active}
    for wanted in preferences:
        if wanted in numbers:
            return wanted
    for wanted in preferences:
        matches = sorted((a.number for a in active if a.number.startswith(wanted)), key=len)
        if matches:
            return matches[0]
    if field_name is not None and len(ACCOUNT_FIELD_KINDS[field_name]) == 1 and len(active) == 1:
        return active[0].number
    return None


def suggest_journal(journals: Sequence[Journal], direction: Direction) -> str | None:
    for journal in journals:
        if _fold(journal.kind) in JOURNAL_KINDS[direction]:
            return journal.code
    codes = {j.code for j in journals}
    return next((c for c in JOURNAL_CODES[direction] if c in codes), None)


def vat_candidates(vat_codes: Sequence[VatCode], direction: Direction, rate) -> list[VatCode]:
    return [
        v
        for v in vat_codes
        if v.rate is not None
        and rate is not None
        and v.rate == rate
        and (v.direction is None or v.direction is direction)
    ]


_STOPWORDS = frozenset(
    [
        "t",
        "v",
        "a",
        "tva",
        "vat",
        "tax",
        "taxe",
        "de",
        "du",
        "des",
        "la",
        "le",
        "les",
        "l",
        "d",
        "sur",
        "et",
        "en",
        "au",
        "aux",
        "from",
        "until",
        "to",
        "of",
        "on",
        "the",
        "taux",
        "rate",
        "normal",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", _fold(text)) if w not in _STOPWORDS}


def suggest_vat_code(
    vat_codes: Sequence[VatCode], direction: Direction, rate, hint: str = ""
) -> str | None:
    """The target code for a source rate: the only candidate; else the one whose name is closest
    to the source tax's name ``hint`` (word overlap over union: "Achat de biens" picks the plain
    goods code over "Achat intracommunautaire de biens"); else the only plain (not special) one.
    None when still tied: a person chooses."""
    candidates = vat_candidates(vat_codes, direction, rate)
    if len(candidates) <= 1:
        return candidates[0].code if candidates else None
    wanted = _words(hint)
    if wanted:
        scored = sorted(
            (
                (len(wanted & words) / len(wanted | words), v.code)
                for v in candidates
                if (words := _words(v.name))
            ),
            reverse=True,
        )
        if scored and scored[0][0] >= 0.5 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
            return scored[0][1]
    plain = [v for v in candidates if not _SPECIAL.search(_fold(v.name))]
    directed = [v for v in plain if v.direction is direction] or plain
    return directed[0].code if len(directed) == 1 else None


def suggest_collected_code(
    vat_codes: Sequence[VatCode], direction: Direction, rate, hint: str = ""
) -> str | None:
    """The collected VAT code of a self-assessed tax: where the accounting tool models it as a
    negative rate beside the deductible one (Tryton's "T.V.A. Achat intracommunautaire 20% (2)",
    -20 %, on 4452), the code of rate -``rate`` closest to the source tax's name."""
    if rate is None or not rate:
        return None
    return suggest_vat_code(vat_codes, direction, -rate, hint)


def suggest(
    *,
    source_rates: Sequence[SourceTaxRate],
    vat_codes: Sequence[VatCode],
    accounts: Sequence[Account],
    journals: Sequence[Journal],
) -> Suggestions:
    result = Suggestions()
    for name, preferences in FRENCH_CHART_PREFERENCES.items():
        number = suggest_account(accounts, preferences, name)
        if number:
            result.accounts[name] = number
    for direction in Direction:
        journal = suggest_journal(journals, direction)
        if journal:
            result.journals[direction] = journal
        zero = suggest_vat_code(vat_codes, direction, Decimal(0))
        if zero:
            result.rounding_vat[direction] = zero
    groups: dict[tuple, list[SourceTaxRate]] = {}
    for rate in source_rates:
        if rate.rate is None:
            continue
        if rate.kind.self_assessed and rate.direction is Direction.PURCHASES and rate.tax_id:
            # Reverse charge: mapped by its own tax id, never with the plain taxes of its rate,
            # to a deductible and a collected code.
            deductible = suggest_vat_code(vat_codes, rate.direction, rate.rate, rate.name)
            collected = suggest_collected_code(vat_codes, rate.direction, rate.rate, rate.name)
            pair = (deductible, collected) if deductible and collected else (None, None)
            result.vat.append(
                VatSuggestion(
                    rate.direction,
                    rate.rate,
                    rate.tax_id,
                    pair[0],
                    tuple(v.code for v in vat_candidates(vat_codes, rate.direction, rate.rate)),
                    pair[1],
                )
            )
            continue
        groups.setdefault((rate.direction, rate.rate), []).append(rate)
    for (direction, rate), taxes in groups.items():
        candidates = tuple(v.code for v in vat_candidates(vat_codes, direction, rate))
        picks = {t.tax_id: suggest_vat_code(vat_codes, direction, rate, t.name) for t in taxes}
        codes = set(picks.values())
        if len(codes) == 1:
            # Every source tax of this rate goes to the same code (or none): map the rate.
            result.vat.append(VatSuggestion(direction, rate, None, codes.pop(), candidates))
            continue
        # Source taxes of one rate that mean different things (goods, services...): map each
        # by its source tax id.
        for tax_id, code in picks.items():
            result.vat.append(VatSuggestion(direction, rate, tax_id, code, candidates))
    return result
