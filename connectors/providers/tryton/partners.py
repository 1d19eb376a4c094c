"""Tryton target partners: parties searched by identifiers, code and name, and created.

- Party: set on the lines whose account requires one (Tryton refuses it elsewhere).
- Auxiliary accounts: Tryton's concept is a receivable/payable account set on the party itself
  for the company. A candidate's auxiliary accounts are those codes, but parties cannot be
  searched by them over RPC ("Missing search function"), so they only help on candidates found
  by another criterion. The fallback, the party ``code``, is searched and reported only when the
  party configuration has no sequence (people type the codes, e.g. "411ACME"); with a sequence
  (the default) codes are Tryton's running numbers "1", "2"... and a source's auxiliary account
  "12" must not match party 12.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from connectors.canonical import Direction, Partner, TargetPartner
from connectors.errors import ErrorCode, InvsyncError
from connectors.providers.tryton.lookups import TrytonLookups
from connectors.providers.tryton.transport import TrytonError, is_refusal, rejected

logger = logging.getLogger(__name__)


class TrytonPartners(TrytonLookups):
    """Partner search and creation (caches set up by
    :class:`~connectors.providers.tryton.target.TrytonTarget`)."""

    _typed_party_codes: bool | None
    _countries: dict[str, int | None]

    # -- partners ----------------------------------------------------------------------------

    def find_partner_candidates(self, folder: str, partner: Partner) -> list[TargetPartner]:
        return self.find_partner_candidates_many(folder, [partner])[partner.source_id]

    def find_partner_candidates_many(
        self, folder: str, partners: Sequence[Partner]
    ) -> dict[str, list[TargetPartner]]:
        """Three calls for any number of partners: the parties any partner's identifiers or code
        find, the names of the parties any partner's name word finds (every one, no limit: a
        common word must not push the right party out of a truncated list), and the details of
        the parties kept. Each partner gets the identifier hits and its own name hits (those
        whose name holds all its words first, at most NAME_CANDIDATES others)."""
        if not partners:
            return {}
        context = self._context(self._company(folder))
        codes: set[str] = set()
        sirens: set[str] = set()
        auxes: set[str] = set()
        tokens: dict[str, str] = {}
        for partner in partners:
            partner_codes, partner_sirens = _identifier_keys(partner)
            codes |= partner_codes
            sirens |= partner_sirens
            if (partner.auxiliary_account or "").strip():
                auxes.add(partner.auxiliary_account.strip())
            if token := _name_token(partner.name):
                tokens[partner.source_id] = token
        clauses: list[Any] = []
        if codes:
            clauses.append(("identifiers.code_compact", "in", sorted(codes)))
        clauses += [("identifiers.code_compact", "like", f"{siren}%") for siren in sorted(sirens)]
        if auxes and self._party_codes_are_typed():
            clauses.append(("code", "in", sorted(auxes)))
        shared: set[int] = set()
        if clauses:
            rows = self.client.search_read("party.party", ["OR", *clauses], ["id"], context=context)
            shared = {row["id"] for row in rows}
        named: dict[str, list[int]] = {}
        if tokens:
            patterns = sorted({p for token in tokens.values() for p in _name_patterns(token)})
            name_clauses = [("name", "ilike", f"%{pattern}%") for pattern in patterns]
            rows = self.client.search_read(
                "party.party", ["OR", *name_clauses], ["id", "name"], context=context
            )
            folded = [(row["id"], _fold(row.get("name") or "")) for row in rows]
            for partner in partners:
                token = tokens.get(partner.source_id)
                if token:
                    named[partner.source_id] = _name_hits(partner.name, _fold(token), folded)
        wanted = sorted(shared.union(*named.values()))
        details = {int(p.id): p for p in self._target_partners(wanted, context)}
        common = [details[i] for i in sorted(shared) if i in details]
        return {
            partner.source_id: common
            + [
                details[i]
                for i in named.get(partner.source_id, [])
                if i in details and i not in shared
            ]
            for partner in partners
        }

    def _target_partners(self, ids: Sequence[int], context: dict[str, Any]) -> list[TargetPartner]:
        if not ids:
            return []
        rows = self.client.read(
            "party.party",
            ids,
            ["name", "code", "identifiers.type", "identifiers.code_compact",
             "account_receivable.code", "account_payable.code"],
            context=context,
        )  # fmt: skip
        partners = []
        for row in rows:
            vat, company_numbers = [], []
            for identifier in row.get("identifiers.") or []:
                kind, code = identifier.get("type") or "", identifier.get("code_compact") or ""
                if not code:
                    continue
                if kind.endswith("_vat"):
                    vat.append(code)
                elif kind in ("fr_siren", "fr_siret"):
                    company_numbers.append(code)
            accounts = [row.get("code") if self._party_codes_are_typed() else None] + [
                (row.get(name) or {}).get("code")
                for name in ("account_receivable.", "account_payable.")
            ]
            partners.append(
                TargetPartner(
                    str(row["id"]),
                    row.get("name") or "",
                    vat_numbers=tuple(vat),
                    company_numbers=tuple(company_numbers),
                    auxiliary_accounts=tuple(dict.fromkeys(a for a in accounts if a)),
                )
            )
        return partners

    def _party_codes_are_typed(self) -> bool:
        """Whether people type party codes (no party sequence): only then can a code be an
        auxiliary account rather than Tryton's own running number."""
        if self._typed_party_codes is None:
            rows = self.client.read("party.configuration", [1], ["party_sequence"])
            self._typed_party_codes = not (rows and rows[0].get("party_sequence"))
        return self._typed_party_codes

    def existing_partner_ids(self, folder: str, ids: Sequence[str]) -> set[str]:
        """Active parties only: Tryton deactivates (rather than deletes) a party with moves, and
        an archived party is one the accountant no longer wants used."""
        company = self._company(folder)
        wanted = sorted({int(i) for i in ids if str(i).strip().isdigit()})
        if not wanted:
            return set()
        rows = self.client.search_read(
            "party.party", [("id", "in", wanted)], ["id"], context=self._context(company)
        )
        return {str(row["id"]) for row in rows}

    def create_partner(self, folder: str, partner: Partner, direction: Direction) -> TargetPartner:
        """Create the party with the identifiers python-stdnum validates; an invalid VAT or
        company number is left out (Tryton would refuse the whole party), never fatal."""
        context = self._context(self._company(folder))
        values, sirets = self._party_values(partner)
        try:
            (party_id,) = self.client.create("party.party", [values], context=context)
        except TrytonError as error:
            raise rejected(
                error, f"Tryton refused to create the party {values['name']!r}"
            ) from None
        if sirets:
            self._add_siret(party_id, sirets[0], context)
        created = self._target_partners([party_id], context)
        return created[0] if created else TargetPartner(str(party_id), values["name"])

    def create_partners(
        self, folder: str, partners: Sequence[tuple[Partner, Direction]]
    ) -> list[TargetPartner | InvsyncError]:
        """One call creates every party (and one more adds their SIRETs, one reads them back).
        Should Tryton refuse the batch, the parties are created one by one, so that only the
        refused one fails."""
        if len(partners) <= 1:
            return super().create_partners(folder, partners)
        context = self._context(self._company(folder))
        results: list[TargetPartner | InvsyncError | None] = [None] * len(partners)
        batch: list[tuple[int, dict[str, Any], list[str]]] = []
        for index, (partner, _) in enumerate(partners):
            try:
                values, sirets = self._party_values(partner)
            except InvsyncError as error:
                results[index] = error
                continue
            batch.append((index, values, sirets))
        if batch:
            try:
                ids = self.client.create(
                    "party.party", [values for _, values, _ in batch], context=context
                )
            except TrytonError as error:
                if not is_refusal(error):
                    raise
                return super().create_partners(folder, partners)
            with_siret = [
                (party_id, sirets[0])
                for party_id, (_, _, sirets) in zip(ids, batch, strict=True)
                if sirets
            ]
            if with_siret:
                self._add_sirets(with_siret, context)
            details = {p.id: p for p in self._target_partners(ids, context)}
            for party_id, (index, values, _) in zip(ids, batch, strict=True):
                results[index] = details.get(str(party_id)) or TargetPartner(
                    str(party_id), values["name"]
                )
        return [result for result in results if result is not None]

    def _party_values(self, partner: Partner) -> tuple[dict[str, Any], list[str]]:
        """The values of a new party and the SIRETs to add once it has its address."""
        name = (partner.name or "").strip()
        if not name:
            raise InvsyncError(
                ErrorCode.PARTNER_VALIDATION, "A partner without a name cannot be created."
            )
        identifiers = _valid_identifiers(partner)
        # Tryton ties a SIRET to an address: it is added once the party and its address exist.
        sirets = [code for kind, code in identifiers if kind == "fr_siret"]
        party_identifiers = [(kind, code) for kind, code in identifiers if kind != "fr_siret"]
        address: dict[str, Any] = {}
        country = self._country_id(partner.country) if partner.country else None
        if country is not None:
            address["country"] = country
        values: dict[str, Any] = {"name": name, "addresses": [["create", [address]]]}
        if party_identifiers:
            values["identifiers"] = [
                ["create", [{"type": kind, "code": code} for kind, code in party_identifiers]]
            ]
        if partner.email and "@" in partner.email:
            values["contact_mechanisms"] = [
                ["create", [{"type": "email", "value": partner.email.strip()}]]
            ]
        return values, sirets

    def _add_sirets(self, sirets: list[tuple[int, str]], context: dict[str, Any]) -> None:
        """Each party's SIRET on its first address, in one call (one by one if refused)."""
        rows = self.client.read(
            "party.party", [party_id for party_id, _ in sirets], ["addresses"], context=context
        )
        addresses = {row["id"]: (row.get("addresses") or [None])[0] for row in rows}
        try:
            self.client.create(
                "party.identifier",
                [{"party": party_id, "address": addresses.get(party_id), "type": "fr_siret",
                  "code": siret} for party_id, siret in sirets],
                context=context,
            )  # fmt: skip
        except TrytonError as error:
            if not is_refusal(error):
                raise
            for party_id, siret in sirets:
                self._add_siret(party_id, siret, context)

    def _add_siret(self, party_id: int, siret: str, context: dict[str, Any]) -> None:
        try:
            (party,) = self.client.read("party.party", [party_id], ["addresses"], context=context)
            self.client.create(
                "party.identifier",
                [{"party": party_id, "address": party["addresses"][0], "type": "fr_siret",
                  "code": siret}],
                context=context,
            )  # fmt: skip
        except TrytonError as error:
            if not is_refusal(error):
                raise
            # The party stands with its SIREN; the SIRET is a detail a person can add.
            logger.warning("tryton: SIRET not added to party %s: %s", party_id, error)

    def _country_id(self, code: str) -> int | None:
        code = code.strip().upper()
        if len(code) != 2:
            return None
        if code not in self._countries:
            rows = self.client.search_read(
                "country.country", [("code", "=", code)], ["id"], limit=1
            )
            self._countries[code] = rows[0]["id"] if rows else None
        return self._countries[code]


_ALNUM = re.compile(r"[^0-9A-Za-z]")
_NAME_WORDS = re.compile(r"[^\W_]{3,}")
_LEGAL_FORMS = frozenset({"sas", "sasu", "sarl", "eurl", "snc", "sci", "gmbh", "ltd", "inc",
                          "llc", "corp", "cie", "the"})  # fmt: skip


def _name_token(name: str | None) -> str:
    """The longest word of the name that is not a legal form: a broad ilike filter that finds
    "ACME Industries SAS" for "Acme Industries" (the caller applies the real rules)."""
    words = [w for w in _NAME_WORDS.findall(name or "") if w.casefold() not in _LEGAL_FORMS]
    return max(words, key=len) if words else (name or "").strip()


NAME_CANDIDATES = 100  # name hits kept per partner besides those holding all its words


def _fold(text: str) -> str:
    """Text compared without case or accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# Letters that have accented forms in the names we meet (Latin scripts), and the shortest token
# whose pattern blinds them (a shorter one would find nearly every name).
_ACCENTABLE = frozenset("aceiouAEIOUCÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÓÒÔÖÕØÚÙÛÜàâäáãåçéèêëíìîïóòôöõøúùûü")
_BLIND_FROM = 5


def _name_patterns(token: str) -> set[str]:
    """``ilike`` patterns that find ``token`` with or without accents on a server without
    PostgreSQL's unaccent: each letter that has accented forms becomes ``_`` (one character), so
    that "Hotel" finds "Hôtel" and "Générale" finds "GENERALE". They find a few more names than
    the token; :func:`_name_hits` keeps the right ones. A short token is looked up as it is and
    without its accents. (A token is made of word characters: it holds no ``%`` or ``_``.)"""
    if len(token) >= _BLIND_FROM:
        return {"".join("_" if char in _ACCENTABLE else char for char in token)}
    return {token, _fold(token)}


def _name_hits(name: str, token: str, parties: Sequence[tuple[int, str]]) -> list[int]:
    """The parties (id, folded name) whose name holds ``token``: first those holding every word
    of ``name`` that is not a legal form (a party of the same name is one of them), then at
    most NAME_CANDIDATES others."""
    words = {_fold(w) for w in _NAME_WORDS.findall(name or "") if w.casefold() not in _LEGAL_FORMS}
    full, others = [], []
    for party_id, folded in parties:
        if token not in folded:
            continue
        (full if all(word in folded for word in words) else others).append(party_id)
    return full + others[:NAME_CANDIDATES]


def _identifier_keys(partner: Partner) -> tuple[set[str], set[str]]:
    """Compact identifier codes to look up, and SIRENs whose SIRETs should match too."""
    codes: set[str] = set()
    sirens: set[str] = set()
    if partner.vat_number:
        vat = _ALNUM.sub("", partner.vat_number).upper()
        country = (partner.country or "").upper()
        if vat and not vat[:2].isalpha() and len(country) == 2:
            vat = country + vat
        if vat:
            codes.add(vat)
            if vat.startswith("FR") and len(vat) == 13 and vat[4:].isdigit():
                sirens.add(vat[4:])
    if partner.company_number:
        number = _ALNUM.sub("", partner.company_number)
        if number.isdigit() and len(number) in (9, 14):
            codes.add(number)
            sirens.add(number[:9])
    codes |= sirens
    return codes, sirens


def _valid_identifiers(partner: Partner) -> list[tuple[str, str]]:
    identifiers: list[tuple[str, str]] = []
    if partner.vat_number:
        vat = _ALNUM.sub("", partner.vat_number).upper()
        country = (partner.country or "").upper()
        if vat and not vat[:2].isalpha() and len(country) == 2:
            vat = country + vat
        # Tryton checks an eu_vat identifier with stdnum's eu.vat: other countries' numbers
        # (CH, GB, NO...) would make it refuse the whole party.
        try:
            if eu_vat.is_valid(vat):
                identifiers.append(("eu_vat", eu_vat.compact(vat)))
            else:
                logger.info("tryton: VAT number that is no valid EU number left out of a party")
        except (ValidationError, ValueError, KeyError, AttributeError):
            logger.info("tryton: unreadable VAT number left out of a new party")
    if partner.company_number:
        number = _ALNUM.sub("", partner.company_number)
        if len(number) == 14 and stdnum_siret.is_valid(number):
            identifiers.append(("fr_siren", number[:9]))
            identifiers.append(("fr_siret", number))
        elif len(number) == 9 and stdnum_siren.is_valid(number):
            identifiers.append(("fr_siren", number))
        else:
            logger.info("tryton: company number that is no valid SIRET/SIREN left out")
    return identifiers
