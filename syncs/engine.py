"""The posting engine: a canonical invoice and a flow's configuration in, a balanced posting or a
catalogue error out. Pure Python: no ORM, no HTTP, so that a real sync, the admin's preview and the
offline ``preview_posting`` command all give the same answer.

Sign convention inside the engine: one signed amount per line, debit positive. A sales invoice (and
a purchase refund) debits the collective account with the total; a purchase invoice (and a sales
refund) credits it. Every other line takes the opposite sign of the collective, except discounts
posted apart, which reduce the product/expense line's side. Whatever remains between the lines and
the stated total (within the flow's tolerance) goes to the rounding accounts.

VAT: one tax line per VAT code. Where the invoice states its VAT breakdown (``Invoice.taxes``, per
tax, rounded as the invoice rounds it), the tax lines carry the breakdown's amounts and the lines'
own VAT is not booked, so the VAT accounts hold what the invoices say; base lines keep each line's
net amount and code. Self-assessed VAT (reverse charge, intra-EU acquisitions, on purchases) is a
pair of tax lines of equal amount, deductible on the expense side and collected on the supplier's
side, which leaves the collective total untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from connectors.canonical import (
    Account,
    Direction,
    EntryLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Posting,
    TaxBreakdown,
    TaxRole,
    VatCode,
    currency_exponent,
    quantize_money,
)
from connectors.errors import ErrorCode, InvsyncError
from connectors.messages import Msg, json_params
from mappings.flow_settings import LABEL_MODES, SETTINGS_BY_ENGINE, vat_row_matching
from syncs.config import FlowConfig, VatRule

ZERO = Decimal("0")


def _setting_field(key: str) -> str:
    """The field an error names for the flow setting the engine reads as ``key``
    (``accounts.rounding_credit``): its place in CONFIG.json, as declared."""
    return SETTINGS_BY_ENGINE[key].engine_field


@dataclass(frozen=True)
class Posted:
    posting: Posting
    status = "ok"


@dataclass(frozen=True)
class Skipped:
    reason: str  # English, for logs and the command line
    key: str = ""  # the message key (connectors.messages): the admin shows it translated
    params: Mapping[str, object] = field(default_factory=dict)
    status = "skipped"

    @classmethod
    def of(cls, message: Msg) -> Skipped:
        return cls(message.english(), message.key, json_params(message.params))


@dataclass(frozen=True)
class Waiting:
    reason: str = "attachment"
    status = "waiting"


@dataclass(frozen=True)
class Rejected:
    code: ErrorCode
    message: str
    field: str | None = None
    # The message as a key of connectors.messages.MESSAGES and its JSON-safe parameters.
    key: str = ""
    params: dict = dataclasses.field(default_factory=dict)
    status = "error"

    def error(self) -> InvsyncError:
        return InvsyncError(
            self.code, self.message, field=self.field, key=self.key, params=self.params
        )


EngineResult = Posted | Skipped | Waiting | Rejected


@dataclass(frozen=True)
class LineOverride:
    """A person's correction of one invoice line, kept on the record and applied on retry."""

    account: str | None = None
    vat_code: str | None = None


def build_posting(
    invoice: Invoice,
    config: FlowConfig,
    *,
    external_id: str = "",
    overrides: Mapping[int, LineOverride] | None = None,
) -> EngineResult:
    """Turn ``invoice`` into a posting under ``config``. Never raises for bad data or a bad
    configuration: those come back as :class:`Rejected` with a catalogue code."""
    skip = _skip_reason(invoice, config)
    if skip is not None:
        return Skipped.of(skip)
    try:
        posting = _Builder(invoice, config, overrides or {}).build(external_id)
    except InvsyncError as error:
        return Rejected(error.code, error.message, error.field, error.key, error.params)
    except (InvalidOperation, ArithmeticError) as error:
        failure = InvsyncError.of(
            ErrorCode.AMOUNT_VALIDATION, "engine.amount_not_computable", error=repr(error)
        )
        return Rejected(failure.code, failure.message, None, failure.key, failure.params)
    if posting is None:
        return Skipped.of(Msg("engine.skip.all_zero"))
    if not invoice.has_attachment and not config.sync_without_attachment:
        return Waiting("attachment")
    return Posted(posting)


def _skip_reason(invoice: Invoice, config: FlowConfig) -> Msg | None:
    if invoice.status is InvoiceStatus.DRAFT:
        return Msg("engine.skip.draft")
    if invoice.status is InvoiceStatus.CANCELLED:
        return Msg("engine.skip.cancelled")
    if not config.in_scope(invoice.direction):
        if invoice.direction is Direction.SALES:
            return Msg("engine.skip.out_of_scope_sales")
        return Msg("engine.skip.out_of_scope_purchases")
    if config.start_date and invoice.issue_date < config.start_date:
        return Msg("engine.skip.before_start", issued=invoice.issue_date, start=config.start_date)
    return None


def _collective_sign(invoice_type: InvoiceType) -> int:
    """+1 when the collective (third-party) line is a debit."""
    debit = invoice_type in (InvoiceType.CUSTOMER_INVOICE, InvoiceType.SUPPLIER_REFUND)
    return 1 if debit else -1


def _rate(rate: Decimal) -> Decimal:
    """A rate as a message states it: 20, 5.5 (no trailing zeros, no exponent)."""
    text = format(rate.normalize(), "f")
    return Decimal(text)


def _rate_text(rate: Decimal | None) -> str:
    if rate is None:
        return "?"
    return format(rate.normalize(), "f")


@dataclass
class _Draft:
    """A line being built: signed amount in the invoice currency (debit positive)."""

    account: str | None  # None only for a tax line whose VAT code names no account
    amount: Decimal
    description: str
    vat_code: str | None = None
    tax_role: TaxRole | None = None
    collective: bool = False


@dataclass
class _TaxBook:
    """The VAT an entry books: charged VAT per target code (signed as the invoice states it) and
    self-assessed VAT per (deductible, collected) pair of codes."""

    charged: dict[str, Decimal] = field(default_factory=dict)
    self_assessed: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    # Each invoice line with the VAT code it was posted with (for breakdown rows no rule maps).
    line_codes: list[tuple[InvoiceLine, str]] = field(default_factory=list)

    def add_charged(self, code: str, amount: Decimal) -> None:
        self.charged[code] = self.charged.get(code, ZERO) + amount

    def add_self_assessed(self, deductible: str, collected: str, amount: Decimal) -> None:
        key = (deductible, collected)
        self.self_assessed[key] = self.self_assessed.get(key, ZERO) + amount


class _Builder:
    def __init__(
        self, invoice: Invoice, config: FlowConfig, overrides: Mapping[int, LineOverride]
    ) -> None:
        self.invoice = invoice
        self.config = config
        self.overrides = overrides
        self.direction = invoice.direction
        self.sales = self.direction is Direction.SALES
        self.accounts: dict[str, Account] = {a.number: a for a in config.target.accounts}
        self.vat_codes: dict[str, VatCode] = {v.code: v for v in config.target.vat_codes}
        self.currency = (invoice.currency or "").upper()

    # -- entry point -------------------------------------------------------------------------

    def build(self, external_id: str) -> Posting | None:
        invoice, config = self.invoice, self.config
        if config.label_mode not in LABEL_MODES:
            raise InvsyncError.of(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                "engine.unknown_label_mode",
                field="label_mode",
                mode=repr(config.label_mode),
            )
        partner_name = self._partner_name()
        journal = self._journal()
        rate = self._exchange_rate()
        if not invoice.lines:
            raise InvsyncError.of(
                ErrorCode.LINE_VALIDATION, "engine.no_lines", field="lines", invoice=invoice.number
            )
        total = self._validated_total()
        sign = _collective_sign(invoice.type)

        drafts: list[_Draft] = [
            _Draft(
                self._checked_account(
                    self._collective_account(),
                    self._collective_field(),
                    subject=Msg(
                        "account.customer_collective"
                        if self.sales
                        else "account.supplier_collective"
                    ),
                ),
                sign * total,
                invoice.number,
                collective=True,
            )
        ]
        book = _TaxBook()
        for index, line in enumerate(invoice.lines):
            drafts.extend(self._line_drafts(index, line, sign, book))
        if invoice.taxes:
            book = self._stated_taxes(book)
        drafts.extend(self._tax_drafts(book, sign))
        imbalance = sum((d.amount for d in drafts), ZERO)
        if imbalance:
            drafts.append(self._rounding_draft(-imbalance))

        drafts = [d for d in drafts if d.amount]
        if not drafts:
            return None
        lines = self._entry_lines(drafts, partner_name, rate)
        posting = Posting(
            journal=journal,
            date=invoice.issue_date,
            due_date=invoice.due_date,
            reference=invoice.number,
            external_id=external_id,
            currency=self.currency,
            company_currency=config.company_currency.upper(),
            draft=config.draft,
            lines=tuple(lines),
            partner_name=partner_name,
            invoice_type=invoice.type,
        )
        if posting.total_debit != posting.total_credit:  # by construction never; a last guard
            raise InvsyncError.of(
                ErrorCode.UNEXPECTED,
                "engine.unbalanced",
                invoice=invoice.number,
                debit=posting.total_debit,
                credit=posting.total_credit,
            )
        return posting

    # -- header ------------------------------------------------------------------------------

    def _partner_name(self) -> str:
        partner = self.invoice.partner
        if partner is None or not (partner.source_id or partner.name):
            raise InvsyncError.of(
                ErrorCode.PARTNER_VALIDATION,
                "engine.no_partner",
                field="partner",
                invoice=self.invoice.number,
            )
        name = (partner.name or "").strip()
        if not (partner.source_id or "").strip():
            # The source id is how the partner is matched and linked in the ledger, run after
            # run: without one, every invoice would look like a new partner.
            raise InvsyncError.of(
                ErrorCode.PARTNER_VALIDATION,
                "engine.partner_without_id",
                field="partner.source_id",
                partner=name or "—",
                invoice=self.invoice.number,
            )
        if not name:
            raise InvsyncError.of(
                ErrorCode.PARTNER_VALIDATION,
                "engine.partner_without_name",
                field="partner.name",
                invoice=self.invoice.number,
            )
        return name

    def _journal(self) -> str:
        config, invoice = self.config, self.invoice
        if config.journals_by_source is not None:
            source_code = (invoice.journal_code or "").strip()
            if not source_code:
                raise InvsyncError.of(
                    ErrorCode.JOURNAL_NOT_LINKED,
                    "engine.journal_not_linked",
                    field="journal_code",
                    invoice=invoice.number,
                )
            journal = config.journals_by_source.get(source_code)
            if not journal:
                raise InvsyncError.of(
                    ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
                    "engine.source_journal_not_mapped",
                    field="journals.by_source_journal",
                    journal=repr(source_code),
                )
        else:
            journal = config.sales_journal if self.sales else config.purchases_journal
            if not journal:
                raise InvsyncError.of(
                    ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
                    f"engine.no_{self.direction.value}_journal",
                    field=f"journals.{self.direction.value}",
                )
        known = config.target.journals
        if known and journal not in known:
            raise InvsyncError.of(
                ErrorCode.MAPPING_JOURNAL_NOT_FOUND,
                "engine.journal_missing",
                field="journals",
                journal=repr(journal),
            )
        return journal

    def _exchange_rate(self) -> Decimal | None:
        invoice, company = self.invoice, self.config.company_currency.upper()
        if len(company) != 3 or not company.isascii() or not company.isalpha():
            # The ledger's currency: every debit and credit is in it. Never assumed.
            raise InvsyncError.of(
                ErrorCode.CONFIGURATION_INCOMPLETE,
                "engine.company_currency_invalid",
                field="company_currency",
                currency=repr(self.config.company_currency),
            )
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise InvsyncError.of(
                ErrorCode.INVALID_SOURCE_DATA,
                "engine.currency_invalid",
                field="currency",
                invoice=invoice.number,
                currency=repr(invoice.currency),
            )
        if self.currency == company:
            return None
        rate = invoice.exchange_rate
        if rate is None or not rate.is_finite() or rate <= 0:
            raise InvsyncError.of(
                ErrorCode.AMOUNT_VALIDATION,
                "engine.exchange_rate_missing",
                field="exchange_rate",
                invoice=invoice.number,
                currency=self.currency,
                company=company,
            )
        return rate

    def _money(self, amount: Decimal) -> Decimal:
        return quantize_money(amount, self.currency)

    def _validated_total(self) -> Decimal:
        invoice = self.invoice
        for name in ("untaxed_amount", "tax_amount", "total"):
            value = getattr(invoice, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise InvsyncError.of(
                    ErrorCode.AMOUNT_VALIDATION,
                    "engine.header_amount_invalid",
                    field=name,
                    invoice=invoice.number,
                    what=Msg(f"word.{name}"),
                )
        untaxed, tax, total = (
            self._money(invoice.untaxed_amount),
            self._money(invoice.tax_amount),
            self._money(invoice.total),
        )
        if untaxed + tax != total:
            raise InvsyncError.of(
                ErrorCode.AMOUNT_VALIDATION,
                "engine.total_mismatch",
                field="total",
                invoice=invoice.number,
                untaxed=untaxed,
                tax=tax,
                sum=untaxed + tax,
                total=total,
            )
        self._check_refund_signs(untaxed, tax, total)
        for index, line in enumerate(invoice.lines):
            for name in ("untaxed_amount", "tax_amount", "discount_amount"):
                value = getattr(line, name)
                if not isinstance(value, Decimal) or not value.is_finite():
                    raise InvsyncError.of(
                        ErrorCode.LINE_VALIDATION,
                        "engine.line_amount_invalid",
                        field=f"lines[{index}].{name}",
                        line=index + 1,
                        invoice=invoice.number,
                        what=Msg(f"word.{name}"),
                    )
        lines_total = sum(
            (
                self._money(line.untaxed_amount) + self._money(line.tax_amount)
                for line in invoice.lines
            ),
            ZERO,
        )
        difference = total - lines_total
        if abs(difference) > self.config.rounding_tolerance:
            raise InvsyncError.of(
                ErrorCode.AMOUNT_VALIDATION,
                "engine.lines_total_mismatch",
                field="lines",
                invoice=invoice.number,
                lines=lines_total,
                total=total,
                difference=difference,
                tolerance=self.config.rounding_tolerance,
            )
        self._check_header_split(untaxed, tax)
        for index, line in enumerate(invoice.lines):
            self._check_line_vat(index, line)
        return total

    def _check_refund_signs(self, untaxed: Decimal, tax: Decimal, total: Decimal) -> None:
        """Canonical refunds carry positive amounts and their type gives the direction (sources
        flip the signs of credit notes stated negative). A refund stated negative would be booked
        as an invoice, the wrong way round: it is refused, never guessed at."""
        invoice = self.invoice
        if not invoice.type.is_refund or min(untaxed, tax, total) >= 0:
            return
        raise InvsyncError.of(
            ErrorCode.AMOUNT_VALIDATION,
            "engine.refund_negative",
            field="total" if total < 0 else ("untaxed_amount" if untaxed < 0 else "tax_amount"),
            invoice=invoice.number,
            kind=Msg(f"word.{invoice.type.value}"),
            untaxed=untaxed,
            tax=tax,
            total=total,
        )

    def _check_header_split(self, untaxed: Decimal, tax: Decimal) -> None:
        """The header's untaxed/VAT split must agree with its lines (within the tolerance) even
        when the total does: a VAT return made from the books reads the split."""
        invoice, tolerance = self.invoice, self.config.rounding_tolerance
        lines_untaxed = sum((self._money(line.untaxed_amount) for line in invoice.lines), ZERO)
        lines_tax = sum((self._money(line.tax_amount) for line in invoice.lines), ZERO)
        for name, word, stated, summed in (
            ("untaxed_amount", "word.untaxed_amount", untaxed, lines_untaxed),
            ("tax_amount", "word.vat", tax, lines_tax),
        ):
            difference = stated - summed
            if abs(difference) > tolerance:
                raise InvsyncError.of(
                    ErrorCode.AMOUNT_VALIDATION,
                    "engine.header_split_mismatch",
                    field=name,
                    invoice=invoice.number,
                    what=Msg(word),
                    stated=stated,
                    summed=summed,
                    difference=difference,
                    tolerance=tolerance,
                    untaxed=untaxed,
                    tax=tax,
                    lines_untaxed=lines_untaxed,
                    lines_tax=lines_tax,
                )

    def _check_line_vat(self, index: int, line: InvoiceLine) -> None:
        """A line's VAT must be its base × rate, within the line's own rounding (one minor unit
        of the currency, whatever the tool's rounding mode) plus the flow's tolerance. Lines whose
        tax charges no VAT by law (reverse charge, exempt, zero-rated, ...) and lines without a
        rate are not checked."""
        if line.tax_rate is None or line.tax_kind.charges_no_vat:
            return
        if not line.tax_rate.is_finite():
            raise InvsyncError.of(
                ErrorCode.LINE_VALIDATION,
                "engine.line_rate_invalid",
                field=f"lines[{index}].tax_rate",
                line=index + 1,
                invoice=self.invoice.number,
            )
        base, stated = self._money(line.untaxed_amount), self._money(line.tax_amount)
        expected = base * line.tax_rate / 100
        unit = Decimal(1).scaleb(-currency_exponent(self.currency))
        tolerance = self.config.rounding_tolerance
        if abs(stated - expected) > tolerance + unit:
            difference = self._money(stated - expected)
            raise InvsyncError.of(
                ErrorCode.LINE_VALIDATION,
                "engine.line_vat_mismatch",
                field=f"lines[{index}].tax_amount",
                line=index + 1,
                invoice=self.invoice.number,
                stated=stated,
                base=base,
                rate=_rate(line.tax_rate),
                expected=self._money(expected),
                difference=difference,
                tolerance=tolerance,
            )

    # -- lines -------------------------------------------------------------------------------

    def _line_drafts(
        self, index: int, line: InvoiceLine, sign: int, book: _TaxBook
    ) -> list[_Draft]:
        override = self.overrides.get(index) or LineOverride()
        code = self._vat_code(index, line, override)
        account = self._line_account(index, line, override)
        description = (line.description or "").strip() or line.product_code or self.invoice.number
        net = self._money(line.untaxed_amount)
        discount = self._money(line.discount_amount) if self.config.separate_discounts else ZERO
        drafts = [
            _Draft(account, -sign * (net + discount), description, code, TaxRole.BASE),
        ]
        if discount:
            drafts.append(
                _Draft(
                    self._discount_account(index),
                    sign * discount,
                    f"Discount: {description}",
                    code,
                    TaxRole.BASE,
                )
            )
        book.line_codes.append((line, code))
        book.add_charged(code, self._money(line.tax_amount))
        if line.tax_kind.self_assessed and not self.sales:
            collected = self._collected_code(
                _find_vat_rule(self.config.vat_rules(self.direction), line),
                code,
                where=Msg("where.line", line=index + 1),
                field=f"lines[{index}].tax_id",
            )
            rate = line.tax_rate if line.tax_rate else self._code_rate(code)
            book.add_self_assessed(
                code, collected, self._self_assessed_amount(net, rate, f"lines[{index}]")
            )
        return drafts

    # -- VAT -------------------------------------------------------------------------------

    def _stated_taxes(self, from_lines: _TaxBook) -> _TaxBook:
        """The VAT as the invoice's breakdown states it (one row per source tax): each row goes
        to the code its rule names (by tax id, then rate, like lines), or else to the code the
        invoice's lines of that tax were posted with (a person's override). The lines' own VAT
        is not booked; whatever the lines and the breakdown leave against the total goes to the
        rounding line."""
        invoice = self.invoice
        book = _TaxBook(line_codes=from_lines.line_codes)
        rules = self.config.vat_rules(self.direction)
        stated = ZERO
        for index, row in enumerate(invoice.taxes):
            path = f"taxes[{index}]"
            for name in ("base", "amount"):
                value = getattr(row, name)
                if not isinstance(value, Decimal) or not value.is_finite():
                    raise InvsyncError.of(
                        ErrorCode.AMOUNT_VALIDATION,
                        "engine.breakdown_amount_invalid",
                        field=f"{path}.{name}",
                        row=index + 1,
                        invoice=invoice.number,
                        what=Msg(f"word.{name}"),
                    )
            rule = _find_rule(rules, row.tax_id, row.rate)
            code = (
                rule.code
                if rule is not None
                else self._breakdown_line_code(index, row, from_lines.line_codes)
            )
            where = Msg("where.breakdown_row", row=index + 1)
            self._check_vat_code(code, where)
            amount = self._money(row.amount)
            if row.kind.self_assessed and not self.sales:
                collected = self._collected_code(rule, code, where=where, field=path)
                rate = row.rate if row.rate else self._code_rate(code)
                if not amount:
                    amount = self._self_assessed_amount(self._money(row.base), rate, path)
                book.add_self_assessed(code, collected, amount)
            else:
                book.add_charged(code, amount)
                stated += amount
        tax = self._money(invoice.tax_amount)
        if stated != tax:
            raise InvsyncError.of(
                ErrorCode.AMOUNT_VALIDATION,
                "engine.breakdown_total_mismatch",
                field="taxes",
                invoice=invoice.number,
                stated=stated,
                tax=tax,
            )
        return book

    def _breakdown_line_code(
        self, index: int, row: TaxBreakdown, line_codes: list[tuple[InvoiceLine, str]]
    ) -> str:
        codes = {
            code
            for line, code in line_codes
            if (row.tax_id and line.tax_id == row.tax_id)
            or (not row.tax_id and row.rate is not None and line.tax_rate == row.rate)
        }
        if len(codes) == 1:
            return codes.pop()
        field = f"taxes[{index}].tax_id" if row.tax_id else f"taxes[{index}].rate"
        raise self._tax_not_mapped(
            row.tax_id, row.rate, Msg("where.breakdown_row", row=index + 1), field
        )

    def _tax_not_mapped(
        self, tax_id: str | None, rate: Decimal | None, where: Msg, field: str
    ) -> InvsyncError:
        """A source tax no VAT mapping covers, named as the invoicing tool names it (its name
        and rate, from the tool's list of taxes as last read), never by its internal id."""
        source = self.config.source_tax(self.direction, tax_id)
        name = (source.name or "").strip() if source is not None else ""
        if rate is None and source is not None:
            rate = source.rate
        direction = self.direction.value
        if name and rate is not None:
            key, params = f"engine.{direction}_tax_not_mapped", {"name": name, "rate": _rate(rate)}
        elif name:
            key, params = f"engine.{direction}_named_tax_not_mapped", {"name": name}
        elif rate is not None:
            key, params = f"engine.{direction}_rate_not_mapped", {"rate": _rate(rate)}
        else:
            key, params = f"engine.{direction}_unnamed_tax_not_mapped", {"where": where}
        return InvsyncError.of(ErrorCode.MAPPING_TAX_RATE_NOT_FOUND, key, field=field, **params)

    def _vat_code_text(self, code: str) -> str:
        """A VAT code as people read it: its name and account (44566) where the tool gives
        them, else the code."""
        vat = self.vat_codes.get(code)
        if vat is None or not vat.name:
            return repr(code)
        return f"'{vat.name}' ({vat.account})" if vat.account else f"'{vat.name}'"

    def _collected_code(self, rule: VatRule | None, code: str, *, where: Msg, field: str) -> str:
        """The collected VAT code of a self-assessed tax (reverse charge, intra-EU acquisition):
        the buyer books the VAT on the deductible ``code`` and on this one."""
        collected = (rule.collected_code or "").strip() if rule is not None else ""
        if not collected:
            raise InvsyncError.of(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                "engine.collected_code_missing",
                field=field,
                where=where,
                invoice=self.invoice.number,
                code=self._vat_code_text(code),
            )
        self._check_vat_code(collected, where)
        return collected

    def _check_vat_code(self, code: str, where: Msg, field: str | None = None) -> None:
        if self.vat_codes and code not in self.vat_codes:
            raise InvsyncError.of(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                "engine.vat_code_missing",
                field=field or f"vat.{self.direction.value}",
                code=repr(code),
                where=where,
            )

    def _code_rate(self, code: str) -> Decimal | None:
        vat = self.vat_codes.get(code)
        return vat.rate if vat is not None else None

    def _self_assessed_amount(self, base: Decimal, rate: Decimal | None, field: str) -> Decimal:
        if rate is None:
            raise InvsyncError.of(
                ErrorCode.AMOUNT_VALIDATION,
                "engine.self_assessed_without_rate",
                field=f"{field}.rate",
                invoice=self.invoice.number,
            )
        return base * rate / 100

    def _tax_drafts(self, book: _TaxBook, sign: int) -> list[_Draft]:
        drafts = []
        for code, amount in book.charged.items():
            vat = self.vat_codes.get(code)
            drafts.append(
                _Draft(
                    self._tax_account(code),
                    -sign * self._money(amount),
                    f"VAT {_rate_text(vat.rate)} %"
                    if vat and vat.rate is not None
                    else f"VAT {code}",
                    vat_code=code,
                    tax_role=TaxRole.TAX,
                )
            )
        # Self-assessed VAT: deductible on the side of the expense, collected on the side of
        # the supplier; equal amounts, so the collective total is untouched.
        for (deductible, collected), amount in book.self_assessed.items():
            amount = self._money(amount)
            rate = self._code_rate(deductible)
            label = f"Self-assessed VAT {_rate_text(rate)} %" if rate else "Self-assessed VAT"
            drafts.append(
                _Draft(
                    self._tax_account(deductible),
                    -sign * amount,
                    label,
                    vat_code=deductible,
                    tax_role=TaxRole.TAX,
                )
            )
            drafts.append(
                _Draft(
                    self._tax_account(collected),
                    sign * amount,
                    f"{label} (due)",
                    vat_code=collected,
                    tax_role=TaxRole.TAX,
                )
            )
        return drafts

    def _vat_code(self, index: int, line: InvoiceLine, override: LineOverride) -> str:
        where = Msg("where.line", line=index + 1)
        if override.vat_code:
            code = override.vat_code
        else:
            if line.tax_rate is None and not line.tax_id:
                raise InvsyncError.of(
                    ErrorCode.LINE_VALIDATION,
                    "engine.line_without_tax",
                    field=f"lines[{index}].tax_rate",
                    line=index + 1,
                    invoice=self.invoice.number,
                )
            rule = _find_vat_rule(self.config.vat_rules(self.direction), line)
            if rule is None:
                field = (
                    f"lines[{index}].tax_rate"
                    if line.tax_rate is not None
                    else f"lines[{index}].tax_id"
                )
                raise self._tax_not_mapped(line.tax_id, line.tax_rate, where, field)
            code = rule.code
        self._check_vat_code(code, where)
        return code

    def _line_account(self, index: int, line: InvoiceLine, override: LineOverride) -> str:
        given = (override.account or line.account_number or "").strip()
        if given:
            account = self.accounts.get(given)
            if account is not None and account.active:
                return given
        key = "sales_default" if self.sales else "purchases_default"
        default, field = getattr(self.config, key), _setting_field(key)
        why: Msg | str = ""
        if given:
            state = "inactive" if given in self.accounts else "missing"
            why = Msg(f"why.account_{state}", account=given)
        direction = self.direction.value
        if not default:
            raise InvsyncError.of(
                ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                f"engine.line_no_default_{direction}_account",
                field=field,
                line=index + 1,
                invoice=self.invoice.number,
                why=why,
            )
        return self._checked_account(
            default,
            field,
            subject=Msg(
                f"account.line_default_{direction}",
                line=index + 1,
                invoice=self.invoice.number,
                why=why,
            ),
        )

    def _setting_account(self, key: str) -> str:
        """The account a flow setting names (``key``: its FlowConfig attribute), checked."""
        return self._checked_account(
            getattr(self.config, key), _setting_field(key), subject=Msg(f"account.{key}")
        )

    def _checked_account(self, number: str | None, field: str, *, subject: Msg) -> str:
        if not number:
            raise InvsyncError.of(
                ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                "engine.account_not_set",
                field=field,
                subject=subject,
            )
        account = self.accounts.get(number)
        if account is None:
            raise InvsyncError.of(
                ErrorCode.ACCOUNT_NUMBER_NOT_FOUND,
                "engine.account_missing",
                field=field,
                subject=subject,
                account=number,
            )
        if not account.active:
            raise InvsyncError.of(
                ErrorCode.ACCOUNT_NUMBER_NOT_ACTIVE,
                "engine.account_inactive",
                field=field,
                subject=subject,
                account=number,
            )
        return number

    def _collective_account(self) -> str | None:
        return self.config.customer_collective if self.sales else self.config.supplier_collective

    def _collective_field(self) -> str:
        return _setting_field("customer_collective" if self.sales else "supplier_collective")

    def _discount_account(self, index: int) -> str:
        return self._setting_account("sales_discount" if self.sales else "purchases_discount")

    def _tax_account(self, code: str) -> str | None:
        if not self.config.vat_codes_name_accounts:
            return None  # the target books VAT from the code itself
        vat = self.vat_codes.get(code)
        account = vat.account if vat else None
        if account and self.accounts:
            return self._checked_account(
                account,
                f"vat.{self.direction.value}",
                subject=Msg("account.vat", code=self._vat_code_text(code)),
            )
        return account

    def _rounding_draft(self, amount: Decimal) -> _Draft:
        account = self._setting_account("rounding_credit" if amount < 0 else "rounding_debit")
        code = self.config.sales_rounding_vat if self.sales else self.config.purchases_rounding_vat
        if code and self.vat_codes and code not in self.vat_codes:
            raise InvsyncError.of(
                ErrorCode.MAPPING_TAX_RATE_NOT_FOUND,
                "engine.rounding_vat_code_missing",
                field="vat.rounding",
                code=repr(code),
            )
        return _Draft(
            account,
            amount,
            "Rounding difference",
            code or None,
            TaxRole.BASE if code else None,
        )

    # -- output ------------------------------------------------------------------------------

    def _label(self, draft: _Draft, partner_name: str) -> str:
        mode, number = self.config.label_mode, self.invoice.number
        if mode == "partner":
            return partner_name
        if mode == "partner_and_number":
            return f"{partner_name} - {number}"
        if mode == "partner_and_description":
            return f"{partner_name} - {draft.description}"
        return partner_name if draft.collective else draft.description

    def _entry_lines(
        self, drafts: list[_Draft], partner_name: str, rate: Decimal | None
    ) -> list[EntryLine]:
        company = self.config.company_currency.upper()
        if rate is None:
            amounts = [d.amount for d in drafts]
        else:
            # Convert every line but the collective one, which takes the sum, so the entry
            # balances in the company currency whatever the conversion rounding.
            amounts = [
                ZERO if d.collective else quantize_money(d.amount * rate, company) for d in drafts
            ]
            absorbing = next((i for i, d in enumerate(drafts) if d.collective), 0)
            amounts[absorbing] = ZERO
            amounts[absorbing] = -sum(amounts, ZERO)
        maturity = self.invoice.due_date or self.invoice.issue_date
        lines = []
        for draft, amount in zip(drafts, amounts, strict=True):
            lines.append(
                EntryLine(
                    account=draft.account,
                    debit=amount if amount > 0 else quantize_money(ZERO, company),
                    credit=-amount if amount < 0 else quantize_money(ZERO, company),
                    label=self._label(draft, partner_name),
                    partner=partner_name if draft.collective else None,
                    vat_code=draft.vat_code,
                    tax_role=draft.tax_role,
                    amount_currency=draft.amount if rate is not None else None,
                    maturity_date=maturity if draft.collective else None,
                )
            )
        return lines


def _find_vat_rule(rules: tuple[VatRule, ...], line: InvoiceLine) -> VatRule | None:
    """A rule naming the line's source tax wins; otherwise a rule for its rate (20 == 20.0)."""
    return _find_rule(rules, line.tax_id, line.tax_rate)


def _find_rule(
    rules: tuple[VatRule, ...], tax_id: str | None, rate: Decimal | None
) -> VatRule | None:
    return vat_row_matching(rules, tax_id=tax_id, rate=rate)
