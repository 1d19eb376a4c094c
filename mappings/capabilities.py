"""What an accounting tool cannot do, said to people: the flow form (drafts) and the setup
checklist read a target's capability flags (connectors.base.AccountingTarget) here."""

from __future__ import annotations

from django.utils.translation import gettext

from connectors.base import AccountingTarget
from connectors.errors import ErrorCode


def drafts_refused(target: type[AccountingTarget]) -> str | None:
    """Why the flow cannot ask ``target`` for draft entries, or None when it can."""
    if target.supports_draft_entries:
        return None
    return gettext("%(tool)s has no draft entries: invsync posts every entry it writes there.") % {
        "tool": target.name
    }


def target_limits(target: type[AccountingTarget]) -> list[str]:
    """What ``target`` cannot do, one sentence each, in the order a run meets them."""
    limits = []
    if not target.supports_partner_creation:
        limits.append(
            gettext(
                "%(tool)s does not let invsync create customers or suppliers: the invoices of one "
                "missing there fail with code %(code)s until it is created."
            )
            % {"tool": target.name, "code": ErrorCode.PARTNER_NOT_FOUND.value}
        )
    if not target.supports_draft_entries:
        limits.append(drafts_refused(target))
    if not target.vat_codes_name_accounts:
        limits.append(
            gettext("%(tool)s books VAT from the VAT codes: tax lines go without an account.")
            % {"tool": target.name}
        )
    if not target.supports_attachments:
        limits.append(
            gettext("%(tool)s takes no attachments: PDFs will not be attached.")
            % {"tool": target.name}
        )
    return limits
