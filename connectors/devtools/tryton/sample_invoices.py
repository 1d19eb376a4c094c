"""The invoicing sandbox's sample invoices, read from ``sample_invoices.json`` beside this file.

Standard library only: ``sandbox_build.py`` (run by the Tryton virtualenv's Python) imports it as
a sibling module, the tests as ``connectors.devtools.tryton.sample_invoices``. The file states, for
each invoice, the figures Tryton must compute (``untaxed``, ``tax``, ``total``, in the invoice's
currency); :func:`problems` checks the file against its own lines (every tax known, every total
the sum of its parts) before anything is built, and the build checks Tryton's figures against it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

DATA = Path(__file__).with_name("sample_invoices.json")
CENT = Decimal("0.01")

# Tax key of a sample line -> (account_fr tax template XML id, the rates it applies, in %).
# Dated rates (20 %, 10 %) have a parent tax with dated children: invoice lines take the parent,
# which picks the child valid at the invoice date.
TAXES: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("sale", "20"): ("tva_vente_services_taux_normal", ("20",)),
    ("sale_goods", "20"): ("tva_vente_biens_taux_normal", ("20",)),
    ("sale", "10"): ("tva_vente_services_taux_intermediaire", ("10",)),
    ("sale_goods", "5.5"): ("tva_vente_biens_5_5", ("5.5",)),
    ("sale_goods", "2.1"): ("tva_vente_biens_2_1", ("2.1",)),
    ("sale_goods", "0 intra"): ("tva_vente_intracommunautaire_biens_0", ("0",)),
    ("sale_goods", "0 export"): ("tva_vente_biens_hors_communaute", ("0",)),
    ("purchase", "20"): ("tva_achat_services_taux_normal", ("20",)),
    ("purchase_goods", "20"): ("tva_achat_biens_taux_normal", ("20",)),
    ("purchase_goods", "10"): ("tva_achat_biens_taux_intermediaire", ("10",)),
    ("purchase_goods", "5.5"): ("tva_achat_biens_5_5", ("5.5",)),
    # Reverse charge: a parent whose dated 20 % child has two children, +20 % on 44566
    # (deductible) and -20 % on 4452 (due); the invoice states no VAT.
    ("purchase_goods", "20 intra"): (
        "tva_achat_intracommunautaire_biens_taux_normal",
        ("20", "-20"),
    ),
}
TYPES = {"out": ("sale", "7"), "in": ("purchase", "6")}  # type -> (tax kind prefix, account class)
STATES = {"draft", "validated", "posted", "paid", "cancelled"}
EXPECTS = {"sync", "fail", "skip"}
CURRENCIES = {"EUR", "USD"}
TERMS = {"30 jours", "direct"}
PREVIOUS_YEAR = "previous-year-"


def load(path: Path = DATA) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def invoice_date(invoice: dict, today: dt.date) -> dt.date:
    """``days`` before ``today``, or ``date`` ``previous-year-MM-DD``."""
    if invoice.get("date") is not None:
        month, day = invoice["date"].removeprefix(PREVIOUS_YEAR).split("-")
        return dt.date(today.year - 1, int(month), int(day))
    return today - dt.timedelta(days=invoice["days"])


def invoice_specs(today: dt.date, data: dict | None = None) -> list[dict]:
    """The sample invoices as the builder creates them, in date order (Tryton numbers invoices
    chronologically: an earlier date cannot follow a later number in the same sequence).

    ``lines``: (description, quantity, unit_price, tax key or None, account code) tuples, or none
    for a credit note made from ``credit_of``. Refuses a file :func:`problems` finds fault with.
    """
    data = load() if data is None else data
    found = problems(data)
    if found:
        raise ValueError(f"{DATA.name}: " + "; ".join(found))
    specs = []
    for invoice in data["invoices"]:
        spec = {**data["defaults"], **invoice, "days": invoice.get("days")}
        spec["date"] = invoice_date(invoice, today)
        spec["credit_of"] = invoice.get("credit_of")
        spec["lines"] = [
            (
                line["description"],
                line["quantity"],
                line["unit_price"],
                tuple(line["tax"]) if line["tax"] else None,
                line["account"],
            )
            for line in invoice.get("lines", ())
        ]
        specs.append(spec)
    specs.sort(key=lambda spec: spec["date"])
    return specs


def figures(invoice: dict, earlier: dict[str, dict]) -> tuple[Decimal, Decimal, Decimal]:
    """(untaxed, tax, total) its lines make: tax rounded to the cent once per tax and sign of
    base (Tryton's document rounding); a credit note made from an invoice is its negation."""
    if invoice.get("credit_of"):
        untaxed, tax, total = figures(earlier[invoice["credit_of"]], earlier)
        return -untaxed, -tax, -total
    bases: dict[tuple, Decimal] = {}
    untaxed = Decimal(0)
    for line in invoice["lines"]:
        amount = (Decimal(str(line["quantity"])) * Decimal(line["unit_price"])).quantize(CENT)
        untaxed += amount
        if line["tax"]:
            group = (tuple(line["tax"]), amount >= 0)
            bases[group] = bases.get(group, Decimal(0)) + amount
    tax = Decimal(0)
    for (key, _sign), base in bases.items():
        for rate in TAXES[key][1]:
            tax += (base * Decimal(rate) / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return untaxed, tax, untaxed + tax


def _decimal(value) -> Decimal | None:
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None


def _line_problems(key: str, kind: str, account_class: str, lines: Iterable) -> list[str]:
    found = []
    for n, line in enumerate(lines, 1):
        where = f"{key} line {n}"
        if set(line) != {"description", "quantity", "unit_price", "tax", "account"}:
            found.append(f"{where}: fields {sorted(line)}")
            continue
        if not isinstance(line["quantity"], int | float) or isinstance(line["quantity"], bool):
            found.append(f"{where}: quantity {line['quantity']!r} is not a number")
        price = _decimal(line["unit_price"])
        if price is None or price != price.quantize(CENT):
            found.append(f"{where}: unit_price {line['unit_price']!r} is not an amount in cents")
        tax = line["tax"]
        if tax is not None and (not isinstance(tax, list) or tuple(tax) not in TAXES):
            found.append(f"{where}: unknown tax {tax!r}")
        elif tax is not None and not tax[0].startswith(kind):
            found.append(f"{where}: tax {tax!r} on a {kind} invoice")
        if not str(line["account"]).startswith(account_class):
            found.append(f"{where}: account {line['account']!r} is not a class {account_class}")
    return found


def problems(data: dict) -> list[str]:
    """What is wrong with a sample-invoices document (empty: nothing): unknown keys, taxes,
    states or accounts, lines whose figures are not the stated untaxed/tax/total."""
    found = []
    defaults = data.get("defaults", {})
    earlier: dict[str, dict] = {}
    for invoice in data.get("invoices", []):
        key = invoice.get("key", "?")
        spec = {**defaults, **invoice}
        if key in earlier:
            found.append(f"{key}: key used twice")
        if spec.get("type") not in TYPES:
            found.append(f"{key}: unknown type {spec.get('type')!r}")
            continue
        kind, account_class = TYPES[spec["type"]]
        for field, allowed in (
            ("state", STATES),
            ("expect", EXPECTS),
            ("currency", CURRENCIES),
            ("term", TERMS),
        ):
            if spec.get(field) not in allowed:
                found.append(f"{key}: unknown {field} {spec.get(field)!r}")
        if (spec["expect"] == "fail") != bool(spec.get("expected_error")):
            found.append(f"{key}: expected_error goes with expect fail, and only with it")
        if ("days" in invoice) == ("date" in invoice):
            found.append(f"{key}: give days or date, one of them")
        elif "date" in invoice and not str(invoice["date"]).startswith(PREVIOUS_YEAR):
            found.append(f"{key}: date {invoice['date']!r} is not {PREVIOUS_YEAR}MM-DD")
        if ("lines" in invoice) == ("credit_of" in invoice):
            found.append(f"{key}: give lines or credit_of, one of them")
            continue
        origin = earlier.get(invoice.get("credit_of") or "")
        if "credit_of" in invoice and (origin is None or origin["type"] != spec["type"]):
            found.append(f"{key}: credit_of names no earlier {spec['type']} invoice")
            continue
        line_problems = _line_problems(key, kind, account_class, invoice.get("lines", ()))
        found.extend(line_problems)
        stated = [_decimal(invoice.get(name)) for name in ("untaxed", "tax", "total")]
        if None in stated:
            found.append(f"{key}: untaxed, tax and total must be amounts (text)")
        elif stated[0] + stated[1] != stated[2]:
            found.append(f"{key}: untaxed + tax is not total: the entry would not balance")
        elif not line_problems and tuple(stated) != (made := figures(invoice, earlier)):
            found.append(
                f"{key}: states untaxed/tax/total {'/'.join(map(str, stated))}, its lines "
                f"make {'/'.join(map(str, made))}"
            )
        earlier[key] = {**invoice, "type": spec["type"]}
    if not earlier:
        found.append("no invoices")
    return found
