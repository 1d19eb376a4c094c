"""Property-based tests of the posting engine: whatever invoice comes in, the answer is a balanced
posting or a catalogue code (or a skip/wait), never an exception and never an unbalanced entry."""

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.canonical import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    Partner,
    TaxBreakdown,
    TaxKind,
    TaxRole,
)
from connectors.errors import CATALOGUE, ErrorCode
from syncs.config import VatRule
from syncs.engine import Posted, Rejected, Skipped, Waiting, build_posting
from tests.unit.test_engine import make_config

amounts = st.one_of(
    st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False),
    st.sampled_from([Decimal("0"), Decimal("-0.00"), Decimal("NaN"), Decimal("Infinity"),
                     Decimal("1E+20"), Decimal("0.005")]),
)  # fmt: skip
rates = st.one_of(
    st.none(),
    st.sampled_from([Decimal(x) for x in ("20", "20.0", "10", "5.5", "0", "2.1", "-5", "100")]),
    st.decimals(min_value=-100, max_value=1000, places=3, allow_nan=False),
)
text = st.text(max_size=40)
account_numbers = st.one_of(
    st.none(), st.sampled_from(["706", "707", "411", "607", "999", ""]), text
)


@st.composite
def lines(draw):
    untaxed = draw(amounts)
    rate = draw(rates)
    consistent = draw(st.booleans())
    tax = (
        (untaxed * (rate or 0) / 100).quantize(Decimal("0.01"))
        if consistent and untaxed.is_finite() and abs(untaxed) < 10**12
        else draw(amounts)
    )
    return InvoiceLine(
        description=draw(text),
        quantity=draw(amounts),
        unit_price=draw(amounts),
        untaxed_amount=untaxed,
        tax_amount=tax,
        total=draw(amounts),
        discount_amount=draw(st.one_of(st.just(Decimal(0)), amounts)),
        tax_rate=rate,
        tax_id=draw(st.one_of(st.none(), st.sampled_from(["t1", "t-intra"]), text)),
        account_number=draw(account_numbers),
    )


@st.composite
def invoices(draw):
    items = tuple(draw(st.lists(lines(), max_size=8)))
    consistent = draw(st.booleans())
    if consistent and all(x.untaxed_amount.is_finite() and x.tax_amount.is_finite() for x in items):
        untaxed = sum((x.untaxed_amount for x in items), Decimal(0))
        tax = sum((x.tax_amount for x in items), Decimal(0))
        total = (
            untaxed + tax + draw(st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("-0.03")]))
        )
        untaxed = untaxed + (total - untaxed - tax)
    else:
        untaxed, tax, total = draw(amounts), draw(amounts), draw(amounts)
    partner = draw(
        st.one_of(
            st.none(),
            st.builds(Partner, source_id=text, name=text),
        )
    )
    return Invoice(
        source_id=draw(text),
        number=draw(text),
        type=draw(st.sampled_from(list(InvoiceType))),
        issue_date=draw(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 1, 1))),
        currency=draw(st.sampled_from(["EUR", "USD", "JPY", "KWD", "", "eur", "E1"])),
        exchange_rate=draw(st.one_of(st.none(), amounts)),
        untaxed_amount=untaxed,
        tax_amount=tax,
        total=total,
        partner=partner,
        lines=items,
        journal_code=draw(st.one_of(st.none(), st.sampled_from(["VT", "HA", "ZZ"]))),
        has_attachment=draw(st.booleans()),
        status=draw(st.sampled_from(list(InvoiceStatus))),
    )


@st.composite
def plausible_invoices(draw):
    """Invoices a real tool could send: amounts in the currency's own unit, mapped rates, a
    rounding gap within tolerance at most, so that they post and the balance property is
    exercised for real."""
    currency = draw(st.sampled_from(["EUR", "EUR", "USD", "JPY"]))
    unit = Decimal(1) if currency == "JPY" else Decimal("0.01")
    items = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        untaxed = draw(st.decimals(min_value=-500, max_value=5000, places=3)).quantize(unit)
        rate = draw(st.sampled_from([Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("0")]))
        tax = (untaxed * rate / 100).quantize(unit)
        discount = draw(st.sampled_from([Decimal(0), Decimal("12")]))
        items.append(
            InvoiceLine(
                description=draw(text), quantity=Decimal(1), unit_price=untaxed,
                untaxed_amount=untaxed, tax_amount=tax, total=untaxed + tax,
                discount_amount=discount, tax_rate=rate, account_number=draw(account_numbers),
            )
        )  # fmt: skip
    untaxed = sum((x.untaxed_amount for x in items), Decimal(0))
    gaps = [Decimal(0)] if unit == 1 else [Decimal(0), Decimal("0.01"), Decimal("-0.01")]
    tax = sum((x.tax_amount for x in items), Decimal(0)) + draw(st.sampled_from(gaps))
    return Invoice(
        source_id="s", number=draw(text) or "N", type=draw(st.sampled_from(list(InvoiceType))),
        issue_date=dt.date(2026, 3, 1), currency=currency,
        exchange_rate=None if currency == "EUR" else draw(
            st.decimals(min_value=Decimal("0.001"), max_value=1000, places=4)
        ),
        untaxed_amount=untaxed, tax_amount=tax, total=untaxed + tax,
        partner=Partner(source_id="p", name=draw(text).strip() or "P"), lines=tuple(items),
        has_attachment=True,
    )  # fmt: skip


configs = st.builds(
    lambda **changes: replace(make_config(), **changes),
    separate_discounts=st.booleans(),
    sync_without_attachment=st.booleans(),
    label_mode=st.sampled_from(
        ["partner_then_description", "partner", "partner_and_description", "partner_and_number"]
    ),
    journals_by_source=st.one_of(st.none(), st.just({"VT": "REV", "HA": "EXP"})),
    rounding_tolerance=st.sampled_from([Decimal("0"), Decimal("0.05"), Decimal("10")]),
    scope=st.sampled_from(["both", "sales", "purchases"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoice=st.one_of(invoices(), plausible_invoices()), config=configs)
def test_any_invoice_gives_a_balanced_posting_or_a_catalogue_code(invoice, config):
    result = build_posting(invoice, config, external_id="x")
    assert isinstance(result, Posted | Rejected | Skipped | Waiting)
    if isinstance(result, Rejected):
        assert result.code in CATALOGUE and result.message
        return
    if isinstance(result, Posted):
        posting = result.posting
        assert posting.lines
        assert posting.total_debit == posting.total_credit
        for line in posting.lines:
            assert line.debit >= 0 and line.credit >= 0 and not (line.debit and line.credit)
            assert line.debit.is_finite() and line.credit.is_finite()
            exponent = line.debit.as_tuple().exponent
            assert exponent >= -3  # quantized to the company currency (EUR: 2 decimals)
        collective = [x for x in posting.lines if x.partner]
        assert len(collective) <= 1


@settings(max_examples=300, deadline=None)
@given(invoice=plausible_invoices())
def test_plausible_invoices_post_balanced_with_the_stated_total(invoice):
    result = build_posting(invoice, make_config(separate_discounts=True), external_id="x")
    if (
        invoice.type.is_refund
        and min(invoice.untaxed_amount, invoice.tax_amount, invoice.total) < 0
    ):
        # Refunds are stated positive; one stated negative is refused, never booked reversed.
        assert isinstance(result, Rejected) and result.code == ErrorCode.AMOUNT_VALIDATION
        return
    assert isinstance(result, Posted | Skipped), result
    if isinstance(result, Posted):
        assert result.posting.total_debit == result.posting.total_credit


@settings(max_examples=200, deadline=None)
@given(invoice=plausible_invoices())
def test_a_refund_is_never_posted_on_the_invoice_side(invoice):
    """Whatever the signs it is given with, a refund posted credits a customer collective and
    debits a supplier collective (or is refused)."""
    result = build_posting(invoice, make_config(), external_id="x")
    if isinstance(result, Posted) and invoice.type.is_refund:
        collective = next((x for x in result.posting.lines if x.partner), None)
        if collective is None:  # a zero total: no third-party line
            return
        if invoice.type is InvoiceType.CUSTOMER_REFUND:
            assert not collective.debit
        else:
            assert not collective.credit


@settings(max_examples=200, deadline=None)
@given(invoice=invoices())
def test_posted_entry_total_matches_the_stated_total(invoice):
    result = build_posting(invoice, make_config(rounding_tolerance=Decimal("10")))
    if isinstance(result, Posted) and invoice.currency.upper() == "EUR":
        collective = next((x for x in result.posting.lines if x.partner), None)
        if collective is not None:
            stated = abs(invoice.total.quantize(Decimal("0.01")))
            assert collective.debit + collective.credit == stated


@st.composite
def invoices_with_breakdown(draw):
    """Invoices stating their VAT per rate (rounded per invoice and tax, as Tryton and e-invoices
    do), whose lines' own VAT is rounded line by line and may differ by cents."""
    items = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        untaxed = draw(st.decimals(min_value=0, max_value=5000, places=2))
        rate = draw(st.sampled_from([Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("0")]))
        tax = (untaxed * rate / 100).quantize(Decimal("0.01"))
        items.append(
            InvoiceLine(
                description="x", quantity=Decimal(1), unit_price=untaxed, untaxed_amount=untaxed,
                tax_amount=tax, total=untaxed + tax, tax_rate=rate,
            )
        )  # fmt: skip
    bases: dict[Decimal, Decimal] = {}
    for item in items:
        bases[item.tax_rate] = bases.get(item.tax_rate, Decimal(0)) + item.untaxed_amount
    taxes = tuple(
        TaxBreakdown(base, (base * rate / 100).quantize(Decimal("0.01")), rate)
        for rate, base in bases.items()
    )
    untaxed = sum(bases.values(), Decimal(0))
    tax = sum((t.amount for t in taxes), Decimal(0))
    return Invoice(
        source_id="s", number="N", type=draw(st.sampled_from(list(InvoiceType))),
        issue_date=dt.date(2026, 3, 1), currency="EUR", untaxed_amount=untaxed, tax_amount=tax,
        total=untaxed + tax, partner=Partner(source_id="p", name="P"), lines=tuple(items),
        has_attachment=True, taxes=taxes,
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(invoice=invoices_with_breakdown(), config=configs)
def test_vat_lines_equal_the_stated_breakdown_per_code(invoice, config):
    config = replace(config, rounding_tolerance=Decimal("1"), journals_by_source=None)
    result = build_posting(invoice, config, external_id="x")
    if isinstance(result, Skipped | Waiting):
        return
    assert isinstance(result, Posted), result
    posting = result.posting
    assert posting.total_debit == posting.total_credit
    codes = {rule.rate: rule.code for rule in config.vat_rules(invoice.direction)}
    stated: dict[str, Decimal] = {}
    for row in invoice.taxes:
        stated[codes[row.rate]] = stated.get(codes[row.rate], Decimal(0)) + row.amount
    # VAT is on the opposite side of the collective line: credit for a sale, debit for a purchase.
    collective_debit = invoice.type in (InvoiceType.CUSTOMER_INVOICE, InvoiceType.SUPPLIER_REFUND)
    booked = {
        line.vat_code: (line.credit - line.debit)
        if collective_debit
        else (line.debit - line.credit)
        for line in posting.lines
        if line.tax_role is TaxRole.TAX
    }
    assert booked == {code: amount for code, amount in stated.items() if amount}


@st.composite
def invoices_with_any_breakdown(draw):
    """Any invoice, with a breakdown of arbitrary rows (odd amounts, rates, kinds, tax ids)."""
    invoice = draw(st.one_of(invoices(), plausible_invoices()))
    rows = draw(
        st.lists(
            st.builds(
                TaxBreakdown,
                base=amounts,
                amount=amounts,
                rate=rates,
                tax_id=st.one_of(st.none(), st.sampled_from(["t1", "t-intra"])),
                kind=st.sampled_from(list(TaxKind)),
            ),
            max_size=4,
        )
    )
    return replace(invoice, taxes=tuple(rows))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoice=invoices_with_any_breakdown(), config=configs)
def test_any_breakdown_gives_a_balanced_posting_or_a_catalogue_code(invoice, config):
    purchases = (
        VatRule(None, "t-intra", "A20", "A10"),  # a self-assessed tax's pair
        *config.purchases_vat,
    )
    result = build_posting(invoice, replace(config, purchases_vat=purchases), external_id="x")
    assert isinstance(result, Posted | Rejected | Skipped | Waiting)
    if isinstance(result, Rejected):
        assert result.code in CATALOGUE and result.message
    elif isinstance(result, Posted):
        assert result.posting.total_debit == result.posting.total_credit
        for line in result.posting.lines:
            assert line.debit.is_finite() and line.credit.is_finite()
