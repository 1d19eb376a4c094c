"""Which accounts each account setting takes: judged by the kind of account the target reports
(receivable, payable, revenue, expense, tax, other), whatever its chart numbers them.

Where a target reports numbers only (kind ``unknown``), :func:`kind_from_number` reads the kind
from the number with the French chart's classes; it is the one place that knows them. Pure
functions over the canonical lookups (no ORM, no HTTP).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext, gettext_noop

from connectors.canonical import Account, AccountKind
from mappings.flow_settings import SettingType, settings_of

# The kinds each account setting takes, the most fitting first (declared in
# mappings/flow_settings.py).
ACCOUNT_FIELD_KINDS: dict[str, tuple[AccountKind, ...]] = {
    setting.name: setting.account_kinds for setting in settings_of(SettingType.ACCOUNT)
}

# The fallback for a target that reports numbers only: the French chart (PCG) classes, most
# specific prefix first.
_FRENCH_CLASSES: tuple[tuple[str, AccountKind], ...] = (
    ("41", AccountKind.RECEIVABLE),
    ("40", AccountKind.PAYABLE),
    ("445", AccountKind.TAX),
    ("6", AccountKind.EXPENSE),
    ("7", AccountKind.REVENUE),
)


def kind_from_number(number: str) -> AccountKind:
    """The kind of an account known by its number only, read as the French chart numbers it;
    still ``unknown`` for the numbers no setting takes (a number alone never says ``other``)."""
    for prefix, kind in _FRENCH_CLASSES:
        if number.startswith(prefix):
            return kind
    return AccountKind.UNKNOWN


def account_kind(account: Account) -> AccountKind:
    """The account's kind as the target reports it, or else as its number says."""
    if account.kind is AccountKind.UNKNOWN:
        return kind_from_number(account.number)
    return account.kind


def account_fits(account: Account, field_name: str) -> bool:
    return account_kind(account) in ACCOUNT_FIELD_KINDS[field_name]


# Each kind as people read it (translated when shown).
_KIND_NAMES = {
    AccountKind.RECEIVABLE: gettext_noop("receivable"),
    AccountKind.PAYABLE: gettext_noop("payable"),
    AccountKind.REVENUE: gettext_noop("revenue"),
    AccountKind.EXPENSE: gettext_noop("expense"),
    AccountKind.TAX: gettext_noop("tax"),
    AccountKind.OTHER: gettext_noop("other"),
    AccountKind.UNKNOWN: gettext_noop("unknown"),
}


def kind_name(kind: AccountKind) -> str:
    """The kind in the reader's language ("receivable", "créances")."""
    return gettext(_KIND_NAMES.get(kind, kind.value))


def kinds_text(kinds: Iterable[AccountKind]) -> str:
    return gettext(" or ").join(kind_name(kind) for kind in kinds)


def field_kinds_text(field_name: str) -> str:
    return kinds_text(ACCOUNT_FIELD_KINDS[field_name])


def account_kind_problem(
    field_name: str, number: str, accounts: Iterable[Account] | None
) -> str | None:
    """Why the existing account ``number`` does not suit the setting ``field_name`` (a
    receivable account as the supplier collective account...), or None."""
    if not number or accounts is None or field_name not in ACCOUNT_FIELD_KINDS:
        return None
    found = next((a for a in accounts if a.number == number), None)
    if found is None or account_fits(found, field_name):
        return None
    return gettext(
        "The account %(number)s is a %(kind)s account in the accounting tool; this setting takes "
        "a %(kinds)s account."
    ) % {
        "number": number,
        "kind": kind_name(account_kind(found)),
        "kinds": field_kinds_text(field_name),
    }
