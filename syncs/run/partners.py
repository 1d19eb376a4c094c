"""A chunk's partners in the accounting tool: the flow's partner links (checked to still exist),
then for new partners one search, matching (syncs.partners, pure) and one creation for those
nobody matched; a partner that fails fails its invoices only."""

from __future__ import annotations

from dataclasses import replace

from connectors.canonical import Direction, Partner, TargetPartner
from connectors.errors import ErrorCode, InvsyncError
from syncs.models import MatchedBy, PartnerLink
from syncs.partners import match_partner
from syncs.run.state import RUN_STOPPING_CODES, Chunk, RunState, StopRun


def resolve_partners(state: RunState, chunk: Chunk) -> None:
    """Give every ready posting of the chunk its partner in the accounting tool; fail the records
    whose partner cannot be found, matched or created."""
    partners = {r.invoice.partner.source_id: r.invoice.partner for r in chunk.ready}
    directions = {r.invoice.partner.source_id: r.invoice.direction for r in chunk.ready}
    unknown = [pid for pid in partners if pid not in state.links]
    for link in PartnerLink.objects.filter(flow=state.flow, source_partner_id__in=unknown):
        state.links[link.source_partner_id] = link
    to_verify = {
        link.target_partner_id
        for pid, link in state.links.items()
        if pid in partners and link.target_partner_id not in state.verified_partners
    }
    missing: set[str] = set()
    if to_verify:
        existing = state.call(state.target.existing_partner_ids, state.folder, sorted(to_verify))
        state.verified_partners |= existing
        missing = to_verify - existing

    failures: dict[str, InvsyncError] = {}
    new: list[str] = []  # partners of the chunk without a link yet
    for pid, partner in partners.items():
        link = state.links.get(pid)
        if link is None:
            new.append(pid)
        elif link.target_partner_id in missing:
            target = link.target_partner_name or link.target_partner_id
            failures[pid] = InvsyncError(
                ErrorCode.PARTNER_NOT_FOUND,
                f"{partner.name!r} was linked to the accounting tool's partner "
                f"{target!r} ({link.get_matched_by_display().lower()}), which no longer exists.",
                field="partner",
                key="run.partner_link_gone",
                params={"partner": repr(partner.name), "target": repr(target)},
            )
    if new:
        _link_partners(state, [(pid, partners[pid], directions[pid]) for pid in new], failures)

    still_ready = []
    for ready in chunk.ready:
        pid = ready.invoice.partner.source_id
        if pid in failures:
            state.fail(ready.record, failures[pid])
        else:
            link = state.links[pid]
            ready.posting = replace(ready.posting, partner_ref=link.target_partner_id)
            still_ready.append(ready)
    chunk.ready = still_ready


def _link_partners(
    state: RunState, new: list[tuple[str, Partner, Direction]], failures: dict[str, InvsyncError]
) -> None:
    """Match each new partner in the accounting tool, or create it: one search for all of
    them, one creation for those nobody matched. Partners of the chunk that are the same
    (same VAT number, company number or name) get one created partner, as they would had
    they come one after the other."""
    target = state.target
    candidates = _partner_candidates(state, [partner for _, partner, _ in new], failures)
    queued: list[TargetPartner] = []  # what each partner to create will look like
    to_create: list[tuple[str, Partner, Direction]] = []
    twins: list[tuple[str, Partner, str, str]] = []  # pid, partner, queued id, matched by
    for pid, partner, direction in new:
        if pid in failures:
            continue
        try:
            match = match_partner(partner, candidates.get(partner.source_id, []))
            if match is None and target.supports_partner_creation:
                twin = match_partner(partner, queued)
                if twin is not None:
                    twins.append((pid, partner, twin.partner.id, twin.matched_by))
                    continue
        except InvsyncError as error:
            failures[pid] = error
            continue
        if match is not None:
            _save_link(state, pid, partner, match.partner, match.matched_by)
        elif target.supports_partner_creation:
            queued.append(_as_created(partner, len(queued)))
            to_create.append((pid, partner, direction))
        else:
            failures[pid] = InvsyncError.of(
                ErrorCode.PARTNER_NOT_FOUND,
                "run.partner_not_creatable",
                field="partner",
                partner=repr(partner.name),
                tool=target.name,
            )
    if not to_create:
        return
    try:
        results = target.create_partners(
            state.folder, [(partner, direction) for _, partner, direction in to_create]
        )
    except InvsyncError as error:
        if error.code in RUN_STOPPING_CODES:
            raise StopRun(error) from error
        results = [error] * len(to_create)
    created: dict[str, TargetPartner | InvsyncError] = {}
    for (pid, partner, _), placeholder, result in zip(to_create, queued, results, strict=True):
        created[placeholder.id] = result
        if isinstance(result, InvsyncError):
            if result.code in RUN_STOPPING_CODES:
                raise StopRun(result)
            failures[pid] = result
        else:
            _save_link(state, pid, partner, result, MatchedBy.CREATED)
    for pid, partner, placeholder_id, matched_by in twins:
        result = created[placeholder_id]
        if isinstance(result, InvsyncError):
            failures[pid] = result
        else:
            _save_link(state, pid, partner, result, matched_by)


def _partner_candidates(
    state: RunState, partners: list[Partner], failures: dict[str, InvsyncError]
) -> dict[str, list[TargetPartner]]:
    """The candidates of each partner, in one search. Should the tool refuse that search, each
    partner is looked up alone: a partner the tool refuses fails its own records only."""
    try:
        return state.target.find_partner_candidates_many(state.folder, partners)
    except InvsyncError as error:
        if error.code in RUN_STOPPING_CODES:
            raise StopRun(error) from error
    found: dict[str, list[TargetPartner]] = {}
    for partner in partners:
        try:
            found[partner.source_id] = state.target.find_partner_candidates(state.folder, partner)
        except InvsyncError as error:
            if error.code in RUN_STOPPING_CODES:
                raise StopRun(error) from error
            failures[partner.source_id] = error
    return found


def _save_link(
    state: RunState, pid: str, partner: Partner, target_partner: TargetPartner, matched_by: str
) -> None:
    state.verified_partners.add(target_partner.id)
    state.links[pid], _ = PartnerLink.objects.update_or_create(
        flow=state.flow,
        source_partner_id=partner.source_id,
        defaults={
            "source_partner_name": partner.name[:300],
            "target_partner_id": target_partner.id,
            "target_partner_name": target_partner.name[:300],
            "matched_by": matched_by,
        },
    )


def _as_created(partner: Partner, index: int) -> TargetPartner:
    """How ``partner`` will look in the accounting tool once created (its name and identifiers;
    no account yet), so that a later partner of the same chunk can be matched to it."""
    return TargetPartner(
        f"to-create:{index}",
        partner.name,
        vat_numbers=(partner.vat_number,) if partner.vat_number else (),
        company_numbers=(partner.company_number,) if partner.company_number else (),
    )
