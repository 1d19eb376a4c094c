"""INVOICE.json, CONFIG.json and the engine's result as plain JSON values, per the posting-preview
contract (docs: /work/shared/contracts/posting-preview.md).

Pure Python: no ORM, no HTTP. Parsing is strict because these files are written by hand by support
staff and accountants: a value that is not exactly what the contract says raises
:class:`InputError` naming the field (``lines[1].tax_rate``), rather than being guessed at.
Amounts never go through ``float``: JSON numbers are accepted only as what their text says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from connectors.canonical import (
    Account,
    Direction,
    EntryLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Partner,
    Posting,
    SourceTaxRate,
    TargetLookups,
    TaxBreakdown,
    TaxKind,
    VatCode,
    quantize_money,
)
from connectors.errors import CATALOGUE, ErrorCode
from mappings.flow_settings import ENGINE_SETTINGS, FlowSetting, SettingType, config_place
from syncs.config import FlowConfig, VatRule
from syncs.engine import EngineResult, Posted, Rejected, Skipped, Waiting

# What Decimal() would also take but a contract file must not hold: whitespace, "1_000", "NaN",
# "Infinity". An exponent is allowed because str(Decimal) may write one.
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

T = TypeVar("T")
_MISSING: Any = object()


class InputError(ValueError):
    """An INVOICE.json or CONFIG.json value that does not follow the contract.

    ``field`` is the path of the bad value (``lines[1].tax_rate``, ``accounts.sales_default``; empty
    for the document itself); the message starts with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


# Reading helpers. Each takes the containing object, the key and the path of that object.


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _object(value: Any, path: str) -> Mapping:
    if not isinstance(value, Mapping):
        what = "must be an object" if path else "the document must be a JSON object"
        raise InputError(path, f"{what}, got {_type_name(value)}")
    return value


def _list(value: Any, path: str) -> list | tuple:
    if not isinstance(value, list | tuple):
        raise InputError(path, f"must be a list, got {_type_name(value)}")
    return value


def _optional(parse: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    def parse_optional(value: Any, path: str) -> T | None:
        return None if value is None else parse(value, path)

    return parse_optional


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InputError(path, f"must be a string, got {_type_name(value)}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(path, f"must be true or false, got {_show(value)}")
    return value


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool):
        raise InputError(path, f'must be a decimal string such as "120.00", got {_show(value)}')
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InputError(path, f"must be a finite decimal, got {_show(value)}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # str() gives the shortest text that reads back as this float: the number the JSON said,
        # never its binary expansion. NaN and Infinity have no decimal.
        value = str(value)
        if not _DECIMAL_RE.fullmatch(value):
            raise InputError(path, f"must be a finite decimal, got {value}")
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern already rules these out
            pass
    raise InputError(path, f'must be a decimal string such as "120.00", got {_show(value)}')


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InputError(path, f'must be a date "YYYY-MM-DD", got {_show(value)}')


def _datetime(value: Any, path: str) -> dt.datetime:
    if isinstance(value, str) and _DATE_RE.match(value):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InputError(
        path, f'must be an ISO date and time "YYYY-MM-DDTHH:MM:SS+00:00", got {_show(value)}'
    )


def _currency(value: Any, path: str) -> str:
    if isinstance(value, str) and _CURRENCY_RE.fullmatch(value):
        return value
    raise InputError(
        path, f'must be a three-letter currency code such as "EUR", got {_show(value)}'
    )


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse_choice(value: Any, path: str) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise InputError(path, f"must be one of {', '.join(choices)}; got {_show(value)}")

    return parse_choice


def _field(
    data: Mapping,
    key: str,
    path: str,
    parse: Callable[[Any, str], T],
    default: Any = _MISSING,
) -> T:
    """Parse ``data[key]``; a missing key is ``default`` (returned as is) or an error if none."""
    if key not in data:
        if default is _MISSING:
            raise InputError(_path(path, key), "is required but missing")
        return default
    return parse(data[key], _path(path, key))


_opt_string = _optional(_string)
_opt_decimal = _optional(_decimal)
_opt_date = _optional(_date)


def _decimal_text(amount: Decimal) -> str:
    # "f": never an exponent, so the text reads as people expect ("0.00", not "0E-2").
    return format(amount, "f")


def _opt_decimal_text(amount: Decimal | None) -> str | None:
    return None if amount is None else _decimal_text(amount)


def _opt_date_text(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


# INVOICE.json


def invoice_from_json(data: Mapping) -> Invoice:
    """Read an INVOICE.json document; raise :class:`InputError` naming the first bad field."""
    data = _object(data, "")
    return Invoice(
        source_id=_field(data, "source_id", "", _string),
        number=_field(data, "number", "", _string),
        type=InvoiceType(_field(data, "type", "", _choice(tuple(InvoiceType)))),
        issue_date=_field(data, "issue_date", "", _date),
        due_date=_field(data, "due_date", "", _opt_date, None),
        currency=_field(data, "currency", "", _currency),
        exchange_rate=_field(data, "exchange_rate", "", _opt_decimal, None),
        untaxed_amount=_field(data, "untaxed_amount", "", _decimal),
        tax_amount=_field(data, "tax_amount", "", _decimal),
        total=_field(data, "total", "", _decimal),
        journal_code=_field(data, "journal_code", "", _opt_string, None),
        partner=_field(data, "partner", "", _optional(_partner_from_json), None),
        lines=tuple(
            _line_from_json(line, _path("lines", index))
            for index, line in enumerate(_field(data, "lines", "", _list))
        ),
        has_attachment=_field(data, "has_attachment", "", _boolean, False),
        updated_at=_field(data, "updated_at", "", _optional(_datetime), None),
        status=InvoiceStatus(
            _field(data, "status", "", _choice(tuple(InvoiceStatus)), InvoiceStatus.FINAL)
        ),
        taxes=tuple(
            _tax_from_json(row, _path("taxes", index))
            for index, row in enumerate(_field(data, "taxes", "", _list, ()))
        ),
    )


def _tax_from_json(data: Any, path: str) -> TaxBreakdown:
    """One row of the optional VAT breakdown (EN16931 BG-23): base and amount as the invoice
    states them, per tax."""
    data = _object(data, path)
    return TaxBreakdown(
        base=_field(data, "base", path, _decimal),
        amount=_field(data, "amount", path, _decimal),
        rate=_field(data, "rate", path, _opt_decimal, None),
        tax_id=_field(data, "tax_id", path, _opt_string, None),
        kind=TaxKind(_field(data, "kind", path, _choice(tuple(TaxKind)), TaxKind.STANDARD)),
        category=_field(data, "category", path, _opt_string, None),
    )


def _partner_from_json(data: Any, path: str) -> Partner:
    data = _object(data, path)
    return Partner(
        source_id=_field(data, "source_id", path, _string),
        name=_field(data, "name", path, _string),
        vat_number=_field(data, "vat_number", path, _opt_string, None),
        company_number=_field(data, "company_number", path, _opt_string, None),
        auxiliary_account=_field(data, "auxiliary_account", path, _opt_string, None),
        country=_field(data, "country", path, _opt_string, None),
        email=_field(data, "email", path, _opt_string, None),
        address=_field(data, "address", path, _opt_string, None),
    )


def _line_from_json(data: Any, path: str) -> InvoiceLine:
    data = _object(data, path)
    return InvoiceLine(
        description=_field(data, "description", path, _string),
        quantity=_field(data, "quantity", path, _decimal),
        unit_price=_field(data, "unit_price", path, _decimal),
        discount_amount=_field(data, "discount_amount", path, _decimal, Decimal("0")),
        untaxed_amount=_field(data, "untaxed_amount", path, _decimal),
        tax_rate=_field(data, "tax_rate", path, _opt_decimal, None),
        tax_id=_field(data, "tax_id", path, _opt_string, None),
        tax_amount=_field(data, "tax_amount", path, _decimal),
        total=_field(data, "total", path, _decimal),
        account_number=_field(data, "account_number", path, _opt_string, None),
        product_code=_field(data, "product_code", path, _opt_string, None),
        tax_kind=TaxKind(_field(data, "tax_kind", path, _choice(tuple(TaxKind)), TaxKind.STANDARD)),
    )


def invoice_to_json(invoice: Invoice) -> dict:
    """The INVOICE.json document of an invoice (amounts as decimal strings, dates ISO)."""
    partner = invoice.partner
    data = {
        "source_id": invoice.source_id,
        "number": invoice.number,
        "type": invoice.type.value,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": _opt_date_text(invoice.due_date),
        "currency": invoice.currency,
        "exchange_rate": _opt_decimal_text(invoice.exchange_rate),
        "untaxed_amount": _decimal_text(invoice.untaxed_amount),
        "tax_amount": _decimal_text(invoice.tax_amount),
        "total": _decimal_text(invoice.total),
        "journal_code": invoice.journal_code,
        "partner": None
        if partner is None
        else {
            "source_id": partner.source_id,
            "name": partner.name,
            "vat_number": partner.vat_number,
            "company_number": partner.company_number,
            "auxiliary_account": partner.auxiliary_account,
            "country": partner.country,
            "email": partner.email,
            "address": partner.address,
        },
        "lines": [
            {
                "description": line.description,
                "quantity": _decimal_text(line.quantity),
                "unit_price": _decimal_text(line.unit_price),
                "discount_amount": _decimal_text(line.discount_amount),
                "untaxed_amount": _decimal_text(line.untaxed_amount),
                "tax_rate": _opt_decimal_text(line.tax_rate),
                "tax_id": line.tax_id,
                "tax_amount": _decimal_text(line.tax_amount),
                "total": _decimal_text(line.total),
                "account_number": line.account_number,
                "product_code": line.product_code,
                # Written only when it says something: files of invoices without tax kinds and
                # breakdowns stay as they were (and so do their fingerprints).
                **(
                    {"tax_kind": line.tax_kind.value}
                    if line.tax_kind is not TaxKind.STANDARD
                    else {}
                ),
            }
            for line in invoice.lines
        ],
        "has_attachment": invoice.has_attachment,
        "updated_at": None if invoice.updated_at is None else invoice.updated_at.isoformat(),
        "status": invoice.status.value,
    }
    if invoice.taxes:
        data["taxes"] = [
            {
                "category": row.category,
                "rate": _opt_decimal_text(row.rate),
                "base": _decimal_text(row.base),
                "amount": _decimal_text(row.amount),
                "tax_id": row.tax_id,
                "kind": row.kind.value,
            }
            for row in invoice.taxes
        ]
    return data


# CONFIG.json

# The flow settings' parsers by type; each setting's place in the document is its declared
# ``config_path`` (mappings/flow_settings.py).
_SETTING_PARSERS: dict[SettingType, Callable[[Any, str], Any]] = {
    SettingType.BOOL: _boolean,
    SettingType.DATE: _opt_date,
    SettingType.DECIMAL: _decimal,
    SettingType.CURRENCY: _currency,
    SettingType.ACCOUNT: _opt_string,
    SettingType.JOURNAL: _opt_string,
    SettingType.VAT_CODE: _opt_string,
}


def _setting_from_json(data: Mapping, setting: FlowSetting, default: Any) -> Any:
    """A declared setting's value, at its ``config_path``; absent: ``default``."""
    container, path = data, ""
    for key in setting.config_path[:-1]:
        container = _field(container, key, path, _object, {})
        path = _path(path, key)
    if setting.type is SettingType.CHOICE:
        parse = _choice(tuple(value for value, _ in setting.choices))
    else:
        parse = _SETTING_PARSERS[setting.type]
    value = _field(container, setting.config_path[-1], path, parse, default)
    if setting.minimum is not None and value < setting.minimum:
        bound = (
            "must not be negative"
            if setting.minimum == 0
            else f"must be at least {setting.minimum}"
        )
        raise InputError(setting.engine_field, f"{bound}, got {value}")
    return value


def _setting_to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def config_from_json(data: Mapping) -> FlowConfig:
    """Read a CONFIG.json document; absent optional keys take :class:`FlowConfig`'s defaults.

    Raises :class:`InputError` naming the first bad field.
    """
    data = _object(data, "")
    defaults = FlowConfig()
    settings = {
        s.engine: _setting_from_json(data, s, getattr(defaults, s.engine)) for s in ENGINE_SETTINGS
    }

    journals = _field(data, "journals", "", _object, {})
    vat = _field(data, "vat", "", _object, {})
    target = _field(data, "target", "", _object, {})
    source = _field(data, "source", "", _object, {})

    return FlowConfig(
        source_taxes=tuple(
            _source_tax(item, _path("source.taxes", index))
            for index, item in enumerate(_field(source, "taxes", "source", _list, ()))
        ),
        **settings,
        journals_by_source=_field(
            journals, "by_source_journal", "journals", _optional(_journal_map), None
        ),
        sales_vat=_vat_rules(vat, "sales"),
        purchases_vat=_vat_rules(vat, "purchases"),
        target=TargetLookups(
            accounts=tuple(
                _target_account(item, _path("target.accounts", index))
                for index, item in enumerate(_field(target, "accounts", "target", _list, ()))
            ),
            vat_codes=tuple(
                _target_vat_code(item, _path("target.vat_codes", index))
                for index, item in enumerate(_field(target, "vat_codes", "target", _list, ()))
            ),
            journals=tuple(
                _target_journal(item, _path("target.journals", index))
                for index, item in enumerate(_field(target, "journals", "target", _list, ()))
            ),
        ),
    )


def _journal_map(value: Any, path: str) -> dict[str, str]:
    value = _object(value, path)
    return {
        _string(source, path): _string(target, _path(path, str(source)))
        for source, target in value.items()
    }


def _vat_rules(vat: Mapping, direction: str) -> tuple[VatRule, ...]:
    path = _path("vat", direction)
    rules = []
    for index, item in enumerate(_field(vat, direction, "vat", _list, ())):
        item_path = _path(path, index)
        item = _object(item, item_path)
        rules.append(
            VatRule(
                rate=_field(item, "rate", item_path, _opt_decimal, None),
                tax_id=_field(item, "tax_id", item_path, _opt_string, None),
                code=_field(item, "code", item_path, _string),
                collected_code=_field(item, "collected_code", item_path, _opt_string, None),
            )
        )
    return tuple(rules)


def _target_account(item: Any, path: str) -> Account:
    item = _object(item, path)
    return Account(
        number=_field(item, "number", path, _string),
        name=_field(item, "name", path, _string, ""),
        active=_field(item, "active", path, _boolean, True),
    )


def _target_vat_code(item: Any, path: str) -> VatCode:
    item = _object(item, path)
    direction = _field(item, "direction", path, _optional(_choice(tuple(Direction))), None)
    return VatCode(
        code=_field(item, "code", path, _string),
        rate=_field(item, "rate", path, _opt_decimal, None),
        name=_field(item, "name", path, _string, ""),
        account=_field(item, "account", path, _opt_string, None),
        direction=None if direction is None else Direction(direction),
    )


def _source_tax(item: Any, path: str) -> SourceTaxRate:
    item = _object(item, path)
    return SourceTaxRate(
        direction=Direction(_field(item, "direction", path, _choice(tuple(Direction)))),
        rate=_field(item, "rate", path, _opt_decimal, None),
        tax_id=_field(item, "tax_id", path, _opt_string, None),
        name=_field(item, "name", path, _string, ""),
    )


def _target_journal(item: Any, path: str) -> str:
    return _field(_object(item, path), "code", path, _string)


def config_to_json(config: FlowConfig) -> dict:
    """The CONFIG.json document of a flow configuration and its target lookups."""
    document: dict[str, Any] = {}
    for setting in ENGINE_SETTINGS:
        config_place(
            document, setting.config_path, _setting_to_json(getattr(config, setting.engine))
        )
    document["journals"]["by_source_journal"] = (
        None if config.journals_by_source is None else dict(config.journals_by_source)
    )
    document["vat"] |= {
        "sales": [_vat_rule_to_json(rule) for rule in config.sales_vat],
        "purchases": [_vat_rule_to_json(rule) for rule in config.purchases_vat],
    }
    if config.source_taxes:
        # The invoicing tool's taxes by name, for messages only (an unmapped tax is named).
        document["source"] = {
            "taxes": [
                {
                    "direction": tax.direction.value,
                    "tax_id": tax.tax_id,
                    "rate": _opt_decimal_text(tax.rate),
                    "name": tax.name,
                }
                for tax in config.source_taxes
            ]
        }
    return document | {
        "target": {
            "accounts": [
                {"number": account.number, "active": account.active, "name": account.name}
                for account in config.target.accounts
            ],
            "vat_codes": [
                {
                    "code": vat_code.code,
                    "rate": _opt_decimal_text(vat_code.rate),
                    "account": vat_code.account,
                    "name": vat_code.name,
                    "direction": None if vat_code.direction is None else vat_code.direction.value,
                }
                for vat_code in config.target.vat_codes
            ],
            "journals": [{"code": code} for code in config.target.journals],
        },
    }


def _vat_rule_to_json(rule: VatRule) -> dict:
    data = {"rate": _opt_decimal_text(rule.rate), "tax_id": rule.tax_id, "code": rule.code}
    if rule.collected_code:
        data["collected_code"] = rule.collected_code
    return data


# The engine's result


def posting_to_json(posting: Posting) -> dict:
    """The ``entry`` of an ok result: debit/credit with the company currency's decimals.

    ``company_currency`` (on the entry) and ``amount_currency`` (on a line, signed, in the invoice
    currency) appear only when the entry is in a foreign currency.
    """
    entry: dict[str, Any] = {
        "journal": posting.journal,
        "date": posting.date.isoformat(),
        "due_date": _opt_date_text(posting.due_date),
        "reference": posting.reference,
        "currency": posting.currency,
        "draft": posting.draft,
    }
    if posting.company_currency != posting.currency:
        entry["company_currency"] = posting.company_currency
    entry["lines"] = [_entry_line_to_json(line, posting) for line in posting.lines]
    return entry


def _entry_line_to_json(line: EntryLine, posting: Posting) -> dict:
    data: dict[str, Any] = {
        "account": line.account,
        "partner": line.partner,
        "debit": _decimal_text(quantize_money(line.debit, posting.company_currency)),
        "credit": _decimal_text(quantize_money(line.credit, posting.company_currency)),
        "label": line.label,
        "vat_code": line.vat_code,
    }
    if line.amount_currency is not None:
        data["amount_currency"] = _decimal_text(
            quantize_money(line.amount_currency, posting.currency)
        )
    return data


def result_to_json(result: EngineResult) -> dict:
    """The ``--format json`` output of the contract for one engine result."""
    if isinstance(result, Posted):
        return {"status": "ok", "entry": posting_to_json(result.posting)}
    if isinstance(result, Rejected):
        return {
            "status": "error",
            "code": ErrorCode(result.code).value,
            "message": result.message,
            "field": result.field,
        }
    if isinstance(result, Skipped):
        return {"status": "skipped", "reason": result.reason}
    if isinstance(result, Waiting):
        return {"status": "waiting", "reason": result.reason}
    raise TypeError(f"not an engine result: {result!r}")


def result_to_table(result: EngineResult) -> str:
    """The ``--format table`` output: the entry as a plain-text table, or a short message."""
    if isinstance(result, Posted):
        return _posting_to_table(result.posting)
    if isinstance(result, Rejected):
        code = ErrorCode(result.code)
        info = CATALOGUE.get(code)
        text = [f"Error {code.value}: {result.message}"]
        if result.field:
            text.append(f"Field: {result.field}")
        if info is not None:
            text.append(f"How to fix: {info.resolution}")
        return "\n".join(text)
    if isinstance(result, Skipped):
        return f"Skipped: {result.reason}"
    if isinstance(result, Waiting):
        if result.reason == "attachment":
            return (
                "Waiting: the invoice has no attachment and the flow does not sync invoices "
                "without one."
            )
        return f"Waiting: {result.reason}"
    raise TypeError(f"not an engine result: {result!r}")


def _posting_to_table(posting: Posting) -> str:
    entry = posting_to_json(posting)
    foreign = posting.company_currency != posting.currency
    header = (
        f"Journal: {posting.journal}   Date: {entry['date']}   Due: {entry['due_date'] or '-'}   "
        f"Reference: {posting.reference}   Currency: {posting.currency}"
        + (f" (debit and credit in {posting.company_currency})" if foreign else "")
        + f"   Draft: {'yes' if posting.draft else 'no'}"
    )
    # A foreign entry names the currency of every amount column: the ledger's for debit and
    # credit, the invoice's for the amount as invoiced.
    debit, credit = (
        (f"Debit {posting.company_currency}", f"Credit {posting.company_currency}")
        if foreign
        else ("Debit", "Credit")
    )
    columns = ["Account", "Partner", debit, credit, "Label", "VAT code"]
    if foreign:
        columns.append(f"Amount {posting.currency}")
    numeric = {debit, credit, *([columns[-1]] if foreign else [])}
    rows = [
        [
            line["account"] if line["account"] is not None else "(from VAT code)",
            line["partner"] or "",
            line["debit"],
            line["credit"],
            line["label"],
            line["vat_code"] or "",
            *([line.get("amount_currency", "")] if foreign else []),
        ]
        for line in entry["lines"]
    ]
    totals = [
        "Total",
        "",
        _decimal_text(quantize_money(posting.total_debit, posting.company_currency)),
        _decimal_text(quantize_money(posting.total_credit, posting.company_currency)),
        "",
        "",
        *([""] if foreign else []),
    ]
    widths = [
        max(len(str(row[index])) for row in [columns, *rows, totals])
        for index in range(len(columns))
    ]

    def render(row: list[str]) -> str:
        cells = [
            str(cell).rjust(width) if name in numeric else str(cell).ljust(width)
            for cell, width, name in zip(row, widths, columns, strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join(
        [header, "", render(columns), rule, *(render(row) for row in rows), rule, render(totals)]
    )
