"""Messages for people as a key and parameters, besides their English text.

An error (``connectors.errors.InvsyncError``), a failed connection check
(``connectors.canonical.ConnectionCheck``) and what the engine rejects carry the English sentence
(for logs and the command line) and a key of :data:`MESSAGES` with JSON-safe parameters. Records
and runs store the key and parameters; the admin renders them in the reader's language
(``connectors.errors.message_text``), and falls back to the stored English for an unknown key or a
row written before keys existed.

This module imports no Django: connectors and the pure engine use it. The templates are marked
with :func:`N_` (``bin/dev messages`` extracts ``N_``) and translated when read. Placeholders are
``%(name)s``; a parameter may be a :class:`Msg` (a nested message, rendered in the same language)
or a ``Decimal`` (an amount or a rate, written as the reader's language writes numbers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def N_(text: str) -> str:
    """Mark ``text`` for the French catalogue without translating it here (gettext_noop without
    Django): connectors declare labels and templates with it; the admin translates them when it
    shows them."""
    return text


@dataclass(frozen=True)
class Msg:
    """A message as a key of :data:`MESSAGES` and its parameters (a parameter may be a Msg)."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, key: str, /, **params: Any) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "params", params)

    def english(self) -> str:
        return english(self.key, json_params(self.params))

    def json(self) -> dict:
        return {"msg": self.key, "params": json_params(self.params)}


def json_value(value: Any) -> Any:
    """A parameter as JSON: a Msg and a Decimal become tagged objects, dates ISO text."""
    if isinstance(value, Msg):
        return value.json()
    if isinstance(value, Decimal):
        return {"decimal": format(value, "f")}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):  # already JSON (a stored nested message or decimal)
        return {str(name): json_value(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)


def json_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(name): json_value(value) for name, value in (params or {}).items()}


def english(key: str, params: Mapping[str, Any], fallback: str = "") -> str:
    """The message in English (no translation): the text logs and the command line show."""
    return render(
        key, params, fallback, translate=lambda text: text, number=_plain_number, date=_iso_date
    )


def _iso_date(text: str) -> str:
    return text


def _plain_number(text: str) -> str:
    return text


def render(key, params, fallback, *, translate, number, date=_iso_date) -> str:
    """``key``'s template, translated by ``translate``, filled with ``params`` (nested messages
    rendered the same way, tagged decimals through ``number``); ``fallback`` when the key is
    unknown or its parameters do not fit its template."""
    template = MESSAGES.get(key or "")
    if template is None:
        return fallback
    try:
        values = {
            name: _param(value, translate=translate, number=number, date=date)
            for name, value in (params or {}).items()
        }
        return translate(template) % values
    except (KeyError, ValueError, TypeError):
        return fallback


def _param(value, *, translate, number, date):
    if isinstance(value, Mapping):
        if "msg" in value:
            return render(
                value["msg"],
                value.get("params") or {},
                "",
                translate=translate,
                number=number,
                date=date,
            )
        if "decimal" in value:
            return number(str(value["decimal"]))
        if "date" in value:
            return date(str(value["date"]))
    return "" if value is None else value


# -- the templates ---------------------------------------------------------------------------
# Keys are stable (stored on records and runs); an English template may be reworded (its French
# too), never change its placeholders without a new key.

MESSAGES: dict[str, str] = {
    # Words and phrases the engine's messages nest.
    "word.untaxed_amount": N_("untaxed amount"),
    "word.tax_amount": N_("VAT amount"),
    "word.total": N_("total"),
    "word.discount_amount": N_("discount amount"),
    "word.base": N_("base"),
    "word.amount": N_("amount"),
    "word.vat": N_("VAT"),
    "word.customer_refund": N_("sales credit note"),
    "word.supplier_refund": N_("purchase credit note"),
    "where.line": N_("line %(line)s"),
    "where.breakdown_row": N_("row %(row)s of the VAT breakdown"),
    "account.sales_default": N_("The default sales account"),
    "account.purchases_default": N_("The default purchase account"),
    "account.customer_collective": N_("The customer collective account"),
    "account.supplier_collective": N_("The supplier collective account"),
    "account.rounding_credit": N_("The rounding account (credit)"),
    "account.rounding_debit": N_("The rounding account (debit)"),
    "account.sales_discount": N_("The sales discount account"),
    "account.purchases_discount": N_("The purchase discount account"),
    "account.vat": N_("The VAT account of the VAT code %(code)s"),
    "account.line_default_sales": N_(
        "Line %(line)s of invoice %(invoice)s: %(why)sthe default sales account"
    ),
    "account.line_default_purchases": N_(
        "Line %(line)s of invoice %(invoice)s: %(why)sthe default purchase account"
    ),
    "why.account_missing": N_(
        "its account %(account)s does not exist in the accounting tool, and "
    ),
    "why.account_inactive": N_(
        "its account %(account)s is not active in the accounting tool, and "
    ),
    # The posting engine (syncs/engine.py).
    "engine.skip.draft": N_("The invoice is still a draft in the invoicing tool."),
    "engine.skip.cancelled": N_("The invoice is cancelled in the invoicing tool."),
    "engine.skip.out_of_scope_sales": N_("Sales invoices are outside the flow's scope."),
    "engine.skip.out_of_scope_purchases": N_("Purchase invoices are outside the flow's scope."),
    "engine.skip.before_start": N_("Issued on %(issued)s, before the flow's start date %(start)s."),
    "engine.skip.all_zero": N_("Nothing to post: every amount of the invoice is zero."),
    "engine.amount_not_computable": N_("An amount cannot be computed: %(error)s."),
    "engine.unknown_label_mode": N_("Unknown label mode %(mode)s."),
    "engine.no_lines": N_("Invoice %(invoice)s has no lines."),
    "engine.unbalanced": N_(
        "The entry for %(invoice)s does not balance (%(debit)s debit, %(credit)s credit)."
    ),
    "engine.no_partner": N_("Invoice %(invoice)s has no customer or supplier."),
    "engine.partner_without_id": N_(
        "The partner %(partner)s of invoice %(invoice)s has no id in the invoicing tool."
    ),
    "engine.partner_without_name": N_("The partner of invoice %(invoice)s has no name."),
    "engine.journal_not_linked": N_(
        "Invoice %(invoice)s has no journal in the invoicing tool, and this flow maps journals "
        "one by one."
    ),
    "engine.source_journal_not_mapped": N_(
        "The invoicing tool's journal %(journal)s is not mapped to an accounting journal."
    ),
    "engine.no_sales_journal": N_("No sales journal is set in the flow."),
    "engine.no_purchases_journal": N_("No purchase journal is set in the flow."),
    "engine.journal_missing": N_("The journal %(journal)s does not exist in the accounting tool."),
    "engine.company_currency_invalid": N_(
        "The flow's company currency %(currency)s is not a currency code: choose the flow's "
        "accounting folder again."
    ),
    "engine.currency_invalid": N_("Invoice %(invoice)s has no valid currency (%(currency)s)."),
    "engine.exchange_rate_missing": N_(
        "Invoice %(invoice)s is in %(currency)s and needs an exchange rate to %(company)s."
    ),
    "engine.header_amount_invalid": N_("Invoice %(invoice)s has no valid %(what)s."),
    "engine.total_mismatch": N_(
        "Invoice %(invoice)s: untaxed %(untaxed)s + VAT %(tax)s = %(sum)s, but the total is "
        "%(total)s."
    ),
    "engine.line_amount_invalid": N_("Line %(line)s of invoice %(invoice)s has no valid %(what)s."),
    "engine.lines_total_mismatch": N_(
        "Invoice %(invoice)s: its lines add up to %(lines)s but its total is %(total)s; the "
        "difference %(difference)s exceeds the rounding tolerance %(tolerance)s."
    ),
    "engine.refund_negative": N_(
        "Invoice %(invoice)s is a %(kind)s stated with negative amounts (untaxed %(untaxed)s, "
        "VAT %(tax)s, total %(total)s). A refund's amounts are positive, its type already says "
        "it is a credit note: give its header and line amounts with the opposite sign."
    ),
    "engine.header_split_mismatch": N_(
        "Invoice %(invoice)s: its header states a %(what)s of %(stated)s but its lines add up to "
        "%(summed)s; the difference %(difference)s exceeds the rounding tolerance %(tolerance)s "
        "(header: untaxed %(untaxed)s, VAT %(tax)s; lines: untaxed %(lines_untaxed)s, VAT "
        "%(lines_tax)s)."
    ),
    "engine.line_rate_invalid": N_("Line %(line)s of invoice %(invoice)s has no valid tax rate."),
    "engine.line_vat_mismatch": N_(
        "Line %(line)s of invoice %(invoice)s: its VAT is %(stated)s but %(base)s × %(rate)s %% = "
        "%(expected)s; the difference %(difference)s exceeds the rounding tolerance "
        "%(tolerance)s."
    ),
    "engine.line_without_tax": N_(
        "Line %(line)s of invoice %(invoice)s has neither a tax rate nor a tax code."
    ),
    "engine.breakdown_amount_invalid": N_(
        "Row %(row)s of the VAT breakdown of invoice %(invoice)s has no valid %(what)s."
    ),
    "engine.breakdown_total_mismatch": N_(
        "Invoice %(invoice)s: its VAT breakdown adds up to %(stated)s but its VAT amount is "
        "%(tax)s."
    ),
    # An unmapped source tax, by its name and rate as the invoicing tool states them.
    "engine.sales_tax_not_mapped": N_(
        "Sales tax '%(name)s' (%(rate)s %%) is not mapped to a VAT code."
    ),
    "engine.purchases_tax_not_mapped": N_(
        "Purchase tax '%(name)s' (%(rate)s %%) is not mapped to a VAT code."
    ),
    "engine.sales_named_tax_not_mapped": N_("Sales tax '%(name)s' is not mapped to a VAT code."),
    "engine.purchases_named_tax_not_mapped": N_(
        "Purchase tax '%(name)s' is not mapped to a VAT code."
    ),
    "engine.sales_rate_not_mapped": N_("Sales VAT rate %(rate)s %% is not mapped to a VAT code."),
    "engine.purchases_rate_not_mapped": N_(
        "Purchase VAT rate %(rate)s %% is not mapped to a VAT code."
    ),
    "engine.sales_unnamed_tax_not_mapped": N_(
        "The sales tax of %(where)s is not mapped to a VAT code (the invoicing tool's list of "
        "taxes, read when the flow's lists were refreshed, does not name it)."
    ),
    "engine.purchases_unnamed_tax_not_mapped": N_(
        "The purchase tax of %(where)s is not mapped to a VAT code (the invoicing tool's list "
        "of taxes, read when the flow's lists were refreshed, does not name it)."
    ),
    "engine.collected_code_missing": N_(
        "The tax of %(where)s of invoice %(invoice)s is self-assessed (reverse charge): its VAT "
        "mapping needs a collected VAT code besides %(code)s."
    ),
    "engine.vat_code_missing": N_(
        "The VAT code %(code)s used for %(where)s does not exist in the accounting tool."
    ),
    "engine.self_assessed_without_rate": N_(
        "Invoice %(invoice)s: the self-assessed VAT cannot be computed, the tax states no rate "
        "and its VAT code has none."
    ),
    "engine.line_no_default_sales_account": N_(
        "Line %(line)s of invoice %(invoice)s: %(why)sno default sales account is set in the flow."
    ),
    "engine.line_no_default_purchases_account": N_(
        "Line %(line)s of invoice %(invoice)s: %(why)sno default purchase account is set in the "
        "flow."
    ),
    "engine.account_not_set": N_("%(subject)s is not set in the flow."),
    "engine.account_missing": N_("%(subject)s %(account)s does not exist in the accounting tool."),
    "engine.account_inactive": N_("%(subject)s %(account)s is not active in the accounting tool."),
    "engine.rounding_vat_code_missing": N_(
        "The rounding VAT code %(code)s does not exist in the accounting tool."
    ),
    # A run and the sync service (syncs/run, syncs/services.py).
    "run.no_folder": N_("The flow has no accounting folder."),
    "run.worker_lost": N_(
        "The worker running this stopped before the run finished (its lease lapsed); the next "
        "run resumed where it stopped."
    ),
    "run.lease_lost": N_(
        "The run lost its lease (it was stalled longer than the lease); another run took over."
    ),
    "run.no_result": N_("The accounting tool returned no result for this entry."),
    "run.partners_ambiguous": N_(
        "%(count)s customers or suppliers in the accounting tool have %(criterion)s %(value)s: "
        "%(listed)s."
    ),
    "run.partners_ambiguous_more": N_(
        "%(count)s customers or suppliers in the accounting tool have %(criterion)s %(value)s: "
        "%(listed)s and %(more)s more."
    ),
    "criterion.auxiliary_account": N_("the auxiliary account"),
    "criterion.vat_number": N_("the VAT number"),
    "criterion.company_number": N_("the company number"),
    "criterion.name": N_("the name"),
    "run.partner_link_gone": N_(
        "%(partner)s was linked to the accounting tool's partner %(target)s, which no longer "
        "exists."
    ),
    "run.partner_not_creatable": N_(
        "No customer or supplier matches %(partner)s in the accounting tool, and %(tool)s does "
        "not let invsync create one: create it there."
    ),
    # What connectors raise most, and their connection checks.
    "connection.authentication_refused": N_(
        "%(vendor)s refused the credentials: enter them again on the connection (or reconnect it)."
    ),
    "connection.permission_denied": N_(
        "%(vendor)s accepted the login but refused the request: the connected user lacks a right "
        "this needs."
    ),
    "connection.rate_limited": N_(
        "%(vendor)s limits how many requests it takes: invsync waits as it asks and resumes."
    ),
    "connection.unreachable": N_("%(vendor)s cannot be reached at %(url)s."),
    "connection.timeout": N_("%(vendor)s did not answer in %(timeout)s s."),
    "connection.dropped": N_("%(vendor)s dropped the connection before answering."),
    "connection.invoice_gone": N_(
        "%(vendor)s no longer has this invoice (deleted, or not visible to the connected user)."
    ),
    "check.pennylane_ok": N_("Connected to Pennylane: company %(company)s."),
    "check.tryton_ok": N_("Connected to Tryton database %(database)s: %(summary)s"),
    "check.tryton_login_method": N_(
        "Tryton at %(url)s, database %(database)s asks for more than a login and a password "
        "(two-factor or another login method): invsync logs in with a login and a password only."
    ),
    "check.tryton_login_refused": N_("Tryton at %(url)s, database %(database)s refused the login."),
    "check.tryton_read_refused": N_(
        "Tryton at %(url)s, database %(database)s accepted the login but refused the check's "
        "read: the user lacks rights."
    ),
    "check.tryton_internal_error": N_(
        "Tryton at %(url)s, database %(database)s failed with an internal error during the "
        "check; its log tells why."
    ),
    "check.tryton_refused": N_(
        "Tryton at %(url)s, database %(database)s refused the check (%(reason)s); the Tryton "
        "server's log tells why."
    ),
    # ``label``: the connection's name quoted after a space (" 'Tryton demo'"), or "".
    "check.tryton_no_url": N_(
        "The Tryton connection%(label)s needs the server's URL (http://host:port/)."
    ),
    "check.tryton_no_database": N_("The Tryton connection%(label)s needs a database name."),
    "check.tryton_no_login": N_("The Tryton connection%(label)s needs a login and a password."),
}
