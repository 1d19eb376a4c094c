"""What an accounting tool cannot do, said to people: the flow form (drafts) and the setup
checklist read a target's capability flags (connectors.base.AccountingTarget) here."""

from __future__ import annotations

from connectors.base import AccountingTarget
from connectors.errors import ErrorCode


def drafts_refused(target: type[AccountingTarget]) -> str | None:
    """Why the flow cannot ask ``target`` for draft entries, or None when it can."""
    if target.supports_draft_entries:
        return None
    return f"{target.name} has no draft entries: invsync posts every entry it writes there."


def target_limits(target: type[AccountingTarget]) -> list[str]:
    """What ``target`` cannot do, one sentence each, in the order a run meets them."""
    limits = []
    if not target.supports_partner_creation:
        limits.append(
            f"{target.name} does not let invsync create customers or suppliers: the invoices of "
            f"one missing there fail with code {ErrorCode.PARTNER_NOT_FOUND.value} until it is "
            "created."
        )
    if not target.supports_draft_entries:
        limits.append(drafts_refused(target))
    if not target.vat_codes_name_accounts:
        limits.append(
            f"{target.name} books VAT from the VAT codes: tax lines go without an account."
        )
    if not target.supports_attachments:
        limits.append(f"{target.name} takes no attachments: PDFs will not be attached.")
    return limits
