"""Property-based tests of the Tryton source's mapping of raw records: whatever Tryton returns
(missing fields, wrong types, huge or negative amounts, odd text), each record comes back as an
Invoice or a SourceRecordError with a catalogue code, and a page is never lost to one bad record."""

import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectionConfig, SourceRecordError
from connectors.canonical import Invoice
from connectors.errors import CATALOGUE
from connectors.providers.tryton.source import TrytonSource

odd_text = st.one_of(st.none(), st.text(max_size=30), st.just(""), st.integers(), st.booleans())
odd_number = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=True, allow_infinity=True).map(
        lambda d: {"__class__": "Decimal", "decimal": str(d)}
    ),
    st.builds(
        lambda d: {"__class__": "Decimal", "decimal": str(d)},
        st.decimals(min_value=-(10**12), max_value=10**12, places=2),
    ),
)
odd_date = st.one_of(
    st.none(),
    st.text(max_size=10),
    st.dates(min_value=dt.date(1900, 1, 1)).map(
        lambda d: {"__class__": "date", "year": d.year, "month": d.month, "day": d.day}
    ),
    st.just({"__class__": "date", "year": 2026, "month": 2, "day": 30}),
)
odd_datetime = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda d: {
            "__class__": "datetime",
            "year": d.year,
            "month": d.month,
            "day": d.day,
            "hour": d.hour,
            "minute": d.minute,
            "second": d.second,
            "microsecond": 0,
        }
    ),
    st.text(max_size=5),
)


def _maybe(strategy):
    """A field that may be missing from the record altogether."""
    return st.one_of(st.just(KeyError), strategy)


@st.composite
def raw_invoice(draw, invoice_id):
    fields = {
        "number": _maybe(odd_text),
        "reference": _maybe(odd_text),
        "type": _maybe(st.one_of(st.sampled_from(["out", "in"]), odd_text)),
        "state": _maybe(
            st.one_of(st.sampled_from(["posted", "paid", "cancelled", "validated"]), odd_text)
        ),
        "invoice_date": _maybe(odd_date),
        "accounting_date": _maybe(odd_date),
        "payment_term_date": _maybe(odd_date),
        "company": _maybe(st.one_of(st.just(1), st.none(), st.integers())),
        "currency": _maybe(st.one_of(st.just(1), st.just(2), st.none())),
        "currency.": _maybe(
            st.one_of(
                st.just({"code": "EUR"}),
                st.just({"code": "USD"}),
                st.none(),
                st.just({}),
                st.just({"code": 5}),
            )
        ),
        "journal.": _maybe(st.one_of(st.just({"code": "REV"}), st.none())),
        "party": _maybe(st.one_of(st.just(7), st.just(8), st.none(), st.just("x"))),
        "invoice_address.": _maybe(st.none()),
        "untaxed_amount": _maybe(odd_number),
        "tax_amount": _maybe(odd_number),
        "total_amount": _maybe(odd_number),
        "lines_to_pay.": _maybe(st.one_of(st.just([]), st.none())),
        "write_date": _maybe(odd_datetime),
        "create_date": _maybe(odd_datetime),
    }
    row = {"id": invoice_id}
    for key, strategy in fields.items():
        value = draw(strategy)
        if value is not KeyError:
            row[key] = value
    return row


@st.composite
def raw_line(draw, invoice_id):
    return {
        "id": draw(st.integers(min_value=1, max_value=10**6)),
        "invoice": invoice_id,
        "type": "line",
        "description": draw(odd_text),
        "quantity": draw(odd_number),
        "unit_price": draw(odd_number),
        "amount": draw(odd_number),
        "taxes": draw(st.one_of(st.just([1]), st.just([]), st.none(), st.just([99]), st.just("x"))),
        "account.": draw(st.one_of(st.just({"code": "706"}), st.none(), st.just({}))),
        "product.": draw(st.one_of(st.none(), st.just({"code": "P1"}))),
        "sequence": draw(st.one_of(st.none(), st.integers())),
    }


class FakeClient:
    """Answers the source's reads from generated rows, as Tryton's JSON-RPC would."""

    def __init__(self, lines, parties):
        self.lines = lines
        self.parties = parties

    def search_read(self, model, domain, fields, *args, **kwargs):
        if model == "account.invoice.line":
            return self.lines
        if model == "party.party":
            return self.parties
        if model == "account.tax":
            return [
                {"id": 1, "name": "TVA 20", "type": "percentage",
                 "rate": {"__class__": "Decimal", "decimal": "0.2"}, "amount": None,
                 "parent": None, "childs": [], "start_date": None, "end_date": None,
                 "group.": {"kind": "both"}},
            ]  # fmt: skip
        return []

    def read(self, model, ids, fields, *args, **kwargs):
        if model == "company.company":
            return [{"id": 1, "currency": 1, "currency.": {"code": "EUR"}}]
        if model == "currency.currency":
            return [{"id": 1, "rate": {"__class__": "Decimal", "decimal": "1"}},
                    {"id": 2, "rate": {"__class__": "Decimal", "decimal": "1.08"}}]  # fmt: skip
        return []

    def close(self):
        pass


@st.composite
def pages(draw):
    count = draw(st.integers(min_value=1, max_value=5))
    rows = [draw(raw_invoice(100 + i)) for i in range(count)]
    lines = [line for row in rows for line in draw(st.lists(raw_line(row["id"]), max_size=4))]
    parties = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from([7, 8]),
                    "name": odd_text,
                    "email": odd_text,
                    "identifiers.": st.one_of(
                        st.none(),
                        st.just([{"type": "eu_vat", "code_compact": "FR40303265045"}]),
                        st.just([{"type": "fr_siret", "code_compact": None}]),
                    ),
                }
            ),
            max_size=2,
        )
    )
    return rows, lines, parties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=pages())
def test_every_raw_record_maps_to_an_invoice_or_a_coded_record_error(page):
    rows, lines, parties = page
    config = ConnectionConfig("credentials", {"url": "http://127.0.0.1:1/", "database": "x"}, {})
    source = TrytonSource(config, client=FakeClient(lines, parties))
    mapped = source._map_page(rows)
    assert len(mapped) == len(rows)
    for row, item in zip(rows, mapped, strict=True):
        assert isinstance(item, Invoice | SourceRecordError)
        assert item.source_id == str(row["id"])
        if isinstance(item, SourceRecordError):
            assert item.error.code in CATALOGUE and item.error.message
        else:
            for amount in (item.untaxed_amount, item.tax_amount, item.total):
                assert isinstance(amount, Decimal)
            assert item.total >= 0 or not item.type.is_refund  # refunds come as positive amounts
