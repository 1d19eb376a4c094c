"""The explicit list of shipped connectors. No registration by import side effects: a provider is
available when its class is named here. Tests swap in their doubles with :func:`override`."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence

from connectors.base import AccountingTarget, ConnectionKind, Connector, InvoicingSource
from connectors.providers.einvoice.inbox import EInvoiceInbox
from connectors.providers.pennylane.target import PennylaneTarget
from connectors.providers.stripe.source import StripeSource
from connectors.providers.tryton.source import TrytonSource
from connectors.providers.tryton.target import TrytonTarget
from connectors.providers.xero.target import XeroTarget

SHIPPED: tuple[type[Connector], ...] = (
    TrytonSource,
    TrytonTarget,
    EInvoiceInbox,
    PennylaneTarget,
    XeroTarget,
    StripeSource,
)

_active: tuple[type[Connector], ...] = SHIPPED


def providers(kind: ConnectionKind | None = None) -> list[type[Connector]]:
    return [cls for cls in _active if kind is None or cls.kind == kind]


def get(key: str, kind: ConnectionKind | None = None) -> type[Connector]:
    for cls in providers(kind):
        if cls.key == key:
            return cls
    raise KeyError(f"no {kind or ''} connector with key {key!r}".replace("  ", " "))


def choices(kind: ConnectionKind | None = None) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for cls in providers(kind):
        seen.setdefault(cls.key, cls.name)
    return sorted(seen.items(), key=lambda item: item[1])


def problems(classes: Sequence[type[Connector]] | None = None) -> list[str]:
    """What is wrong with the registry: abstract classes, missing attributes, duplicate keys."""
    found: list[str] = []
    seen: set[tuple[str, ConnectionKind]] = set()
    for cls in _active if classes is None else classes:
        if not issubclass(cls, InvoicingSource | AccountingTarget):
            found.append(f"{cls.__name__} is neither an InvoicingSource nor an AccountingTarget")
            continue
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            found.append(f"{cls.__name__} does not implement {missing}")
        for attribute in ("key", "name", "auth_kinds"):
            if not getattr(cls, attribute, None):
                found.append(f"{cls.__name__} has no {attribute}")
        identity = (getattr(cls, "key", ""), cls.kind)
        if identity in seen:
            found.append(f"two {cls.kind} connectors share the key {identity[0]!r}")
        seen.add(identity)
    return found


@contextlib.contextmanager
def override(classes: Sequence[type[Connector]]) -> Iterator[None]:
    """Use ``classes`` as the registry inside the block (tests register their doubles so)."""
    global _active
    previous = _active
    _active = tuple(classes)
    try:
        yield
    finally:
        _active = previous
