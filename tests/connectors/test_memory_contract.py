"""The connector contract against the in-memory doubles (fast, no marker), so that the suite itself
runs in every test run; and against broken doubles, each of which breaks one promise, to show that
every contract test can fail."""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from decimal import Decimal

import pytest

from connectors import registry
from connectors.base import (
    AuthKind,
    ConnectionConfig,
    ConnectionKind,
    EntryResult,
    SourceRecordError,
)
from connectors.canonical import (
    ConnectionCheck,
    Direction,
    EntryLine,
    EntryRef,
    InvoiceType,
    Posting,
    TargetPartner,
)
from connectors.errors import ConnectorError, ErrorCode
from tests.connectors.contract import SourceContract, TargetContract, provider
from tests.doubles import MemorySource, MemoryTarget, refused
from tests.factories import InvoiceFactory

FOLDER = "1"


def memory_posting(external_id: str, *, draft: bool = False) -> Posting:
    return Posting(
        journal="REV", date=dt.date(2026, 3, 10), reference=f"F-{external_id[-6:]}",
        external_id=external_id, currency="EUR", company_currency="EUR", draft=draft,
        invoice_type=InvoiceType.CUSTOMER_INVOICE,
        lines=(
            EntryLine("4111", Decimal("120.00"), Decimal(0), "Acme", partner="Acme"),
            EntryLine("706", Decimal(0), Decimal("100.00"), "Service"),
            EntryLine("44571", Decimal(0), Decimal("20.00"), "VAT 20 %"),
        ),
    )  # fmt: skip


def stock_source() -> None:
    """Six invoices, sales and purchases, two without their file."""
    MemorySource.put(
        *(InvoiceFactory(updated_at=dt.datetime(2026, 3, n, tzinfo=dt.UTC)) for n in range(1, 4)),
        *(
            InvoiceFactory(
                type=InvoiceType.SUPPLIER_INVOICE,
                has_attachment=n != 5,
                updated_at=dt.datetime(2026, 3, n, tzinfo=dt.UTC),
            )
            for n in range(4, 7)
        ),
    )


def source_fixtures(cls=None) -> dict:
    """The source contract's fixtures for ``cls`` (default: the registered double)."""
    cls = cls or provider("memory", ConnectionKind.INVOICING)
    stock_source()
    MemorySource.page_size = 2
    source = cls(ConnectionConfig(AuthKind.API_KEY, credentials={"api_key": "good"}))

    def refused_source(secret):
        return cls(ConnectionConfig(AuthKind.API_KEY, credentials={"api_key": secret}))

    return {
        "refused_source": refused_source,
        "source": source,
        "connector": source,
        "refused_connector": refused_source,
        "paged_source": (source, lambda: MemorySource.calls["invoice_pages"]),
    }


def target_fixtures(cls=None) -> dict:
    cls = cls or provider("memory", ConnectionKind.ACCOUNTING)
    MemoryTarget.strict = False  # answer as a vendor, not as the sync tests' tripwire
    target = cls(ConnectionConfig(AuthKind.API_KEY, credentials={"api_key": "good"}))

    def refused_target(secret):
        credentials = {"username": "u", "password": secret}
        return cls(ConnectionConfig(AuthKind.CREDENTIALS, credentials=credentials))

    return {
        "target": target,
        "connector": target,
        "folder": FOLDER,
        "make_posting": memory_posting,
        "count_entries": lambda external_id: sum(
            1 for e in MemoryTarget.entries.values() if e["posting"].external_id == external_id
        ),
        "count_partners": lambda: len(MemoryTarget.partners),
        "refused_target": refused_target,
        "refused_connector": refused_target,
    }


class TestMemorySourceContract(SourceContract):
    @pytest.fixture(autouse=True)
    def fixtures(self, memory_connectors):
        return source_fixtures()

    @pytest.fixture
    def source(self, fixtures):
        return fixtures["source"]

    @pytest.fixture
    def refused_source(self, fixtures):
        return fixtures["refused_source"]

    @pytest.fixture
    def paged_source(self, fixtures):
        return fixtures["paged_source"]


class TestMemoryTargetContract(TargetContract):
    @pytest.fixture(autouse=True)
    def fixtures(self, memory_connectors):
        return target_fixtures()

    @pytest.fixture
    def target(self, fixtures):
        return fixtures["target"]

    @pytest.fixture
    def folder(self, fixtures):
        return fixtures["folder"]

    @pytest.fixture
    def make_posting(self, fixtures):
        return fixtures["make_posting"]

    @pytest.fixture
    def count_entries(self, fixtures):
        return fixtures["count_entries"]

    @pytest.fixture
    def count_partners(self, fixtures):
        return fixtures["count_partners"]

    @pytest.fixture
    def refused_target(self, fixtures):
        return fixtures["refused_target"]


# -- broken doubles: each breaks one promise, and the contract test named beside it fails ----------


class LeakyCheckSource(MemorySource):
    def check_connection(self):
        if refused(self.config):
            return ConnectionCheck(False, f"Refused the key {self.config.credentials['api_key']}.")
        return super().check_connection()


class RaisingCheckSource(MemorySource):
    def check_connection(self):
        if refused(self.config):
            raise ConnectorError(ErrorCode.AUTHENTICATION_FAILED, "Refused.")
        return super().check_connection()


class CodelessCheckSource(MemorySource):
    def check_connection(self):
        if refused(self.config):
            return ConnectionCheck(False, "Refused.")
        return super().check_connection()


class BareRefusalSource(MemorySource):
    def iter_invoices(self, *, since, directions):
        if refused(self.config):
            raise PermissionError(f"401 for key {self.config.credentials['api_key']}")
        return super().iter_invoices(since=since, directions=directions)


class LeakyRefusalSource(MemorySource):
    def iter_invoices(self, *, since, directions):
        if refused(self.config):
            key = self.config.credentials["api_key"]
            raise ConnectorError(ErrorCode.AUTHENTICATION_FAILED, f"Key {key} refused.")
        return super().iter_invoices(since=since, directions=directions)


class ListingSource(MemorySource):
    """Reads every page, then returns a list."""

    def iter_invoices(self, *, since, directions):
        return list(super().iter_invoices(since=since, directions=directions))


class ReadAheadSource(MemorySource):
    """A generator, but it reads every page before its first invoice."""

    def iter_invoices(self, *, since, directions):
        yield from list(super().iter_invoices(since=since, directions=directions))


class EveryDirectionSource(MemorySource):
    def iter_invoices(self, *, since, directions):
        return super().iter_invoices(since=since, directions=list(Direction))


class KeyErrorSource(MemorySource):
    def get_invoice(self, source_id):
        return self.invoices[source_id]


class NoFileSource(MemorySource):
    def fetch_attachment(self, invoice):
        raise FileNotFoundError(invoice.number)


class RawRecordSource(MemorySource):
    """Yields a record it cannot map as the vendor's raw row with a bare exception."""

    def iter_invoices(self, *, since, directions):
        yield from super().iter_invoices(since=since, directions=directions)
        yield SourceRecordError("raw-1", ValueError("no number"))


class WrongInvoiceSource(MemorySource):
    def get_invoice(self, source_id):
        others = [i for key, i in sorted(self.invoices.items()) if key != source_id]
        return others[0]


class NoTaxRateSource(MemorySource):
    def list_tax_rates(self):
        return []


class NoJournalSource(MemorySource):
    def list_journals(self):
        return []


class LeakyCheckTarget(MemoryTarget):
    def check_connection(self):
        if refused(self.config):
            return ConnectionCheck(False, f"Bad password {self.config.credentials['password']}.")
        return super().check_connection()


class BareRefusalTarget(MemoryTarget):
    def list_folders(self):
        if refused(self.config):
            raise PermissionError("401")
        return super().list_folders()


class RewritingTarget(MemoryTarget):
    """Writes an entry again under an external id the ledger holds (a new ref each time)."""

    def create_entries(self, folder, entries):
        results = []
        for entry in entries:
            if entry.posting.lines and entry.posting.total_debit == entry.posting.total_credit:
                self.entries.pop(entry.posting.external_id, None)
            results += super().create_entries(folder, [entry])
        return results


class BatchTwiceTarget(MemoryTarget):
    """Looks up what exists once per call, then writes the batch: a repeated id is written twice."""

    def create_entries(self, folder, entries):
        held = set(self.entries)
        results = []
        for entry in entries:
            key = entry.posting.external_id
            if key in held:
                results += super().create_entries(folder, [entry])
                continue
            ref = EntryRef(f"b{uuid.uuid4().hex[:6]}", entry.posting.reference)
            self.entries[key] = {"ref": ref, "posting": entry.posting, "attachment": None}
            results.append(EntryResult(key, ref=ref))
        return results


class FindAnythingTarget(MemoryTarget):
    def find_entries(self, folder, external_ids):
        return {i: EntryRef(f"x{n}") for n, i in enumerate(external_ids)}


class UnbalancedWriterTarget(MemoryTarget):
    def create_entries(self, folder, entries):
        results = []
        for entry in entries:
            ref = EntryRef(f"u{uuid.uuid4().hex[:6]}", entry.posting.reference)
            self.entries[entry.posting.external_id] = {"ref": ref, "posting": entry.posting}
            results.append(EntryResult(entry.posting.external_id, ref=ref))
        return results


class CreatingSearchTarget(MemoryTarget):
    def find_partner_candidates(self, folder, partner):
        self.add_partner(partner.name)
        return super().find_partner_candidates(folder, partner)


class NarrowSearchTarget(MemoryTarget):
    def find_partner_candidates(self, folder, partner):
        return [p for p in super().find_partner_candidates(folder, partner) if p.vat_numbers]


class FileDroppingTarget(MemoryTarget):
    def create_entries(self, folder, entries):
        from dataclasses import replace

        return super().create_entries(folder, [replace(e, attachment=None) for e in entries])


class DraftPostingTarget(MemoryTarget):
    def create_entries(self, folder, entries):
        from dataclasses import replace

        posted = [replace(e, posting=replace(e.posting, draft=False)) for e in entries]
        return super().create_entries(folder, posted)


class PhantomPartnerTarget(MemoryTarget):
    def create_partner(self, folder, partner, direction):
        return TargetPartner(id="never-stored", name=partner.name)


class HalfBatchTarget(MemoryTarget):
    def create_entries(self, folder, entries):
        return super().create_entries(folder, entries[:1]) + [
            EntryResult(e.posting.external_id, ref=EntryRef("lost")) for e in entries[1:]
        ]


BROKEN_SOURCES = [
    (LeakyCheckSource, "test_a_refused_login_is_a_failed_check_without_the_secret"),
    (RaisingCheckSource, "test_a_refused_login_is_a_failed_check_without_the_secret"),
    (CodelessCheckSource, "test_a_refused_login_is_a_failed_check_without_the_secret"),
    (BareRefusalSource,
     "test_a_refused_login_makes_the_listing_raise_a_catalogue_error_without_the_secret"),
    (LeakyRefusalSource,
     "test_a_refused_login_makes_the_listing_raise_a_catalogue_error_without_the_secret"),
    (ListingSource, "test_the_listing_is_an_iterator_that_reads_nothing_before_it_is_consumed"),
    (ListingSource, "test_the_first_invoice_arrives_before_the_last_page_is_read"),
    (ReadAheadSource, "test_the_first_invoice_arrives_before_the_last_page_is_read"),
    (EveryDirectionSource, "test_the_listing_keeps_to_the_directions_asked"),
    (KeyErrorSource, "test_an_unknown_invoice_is_a_catalogue_error"),
    (RawRecordSource, "test_the_listing_yields_invoices_or_record_errors_with_catalogue_codes"),
    (WrongInvoiceSource, "test_an_invoice_is_read_again_by_its_source_id"),
    (NoTaxRateSource, "test_tax_rates_are_listed_per_direction"),
    (NoFileSource,
     "test_a_source_that_supports_attachments_gives_the_pdf_of_an_invoice_that_has_one"),
    (NoFileSource,
     "test_the_file_of_an_invoice_flagged_without_one_is_a_file_or_a_pdf_error"),
    (NoJournalSource, "test_journals_are_listed_when_the_source_says_it_has_them"),
]  # fmt: skip

BROKEN_TARGETS = [
    (LeakyCheckTarget, "test_a_refused_login_is_a_failed_check_without_the_secret"),
    (BareRefusalTarget,
     "test_a_refused_login_makes_lookups_and_writes_raise_catalogue_errors_without_the_secret"),
    (RewritingTarget, "test_writing_an_external_id_again_writes_nothing_more"),
    (BatchTwiceTarget, "test_an_external_id_twice_in_one_batch_is_written_once"),
    (FindAnythingTarget, "test_find_entries_finds_nothing_else"),
    (FindAnythingTarget, "test_a_written_entry_is_found_by_its_external_id"),
    (UnbalancedWriterTarget,
     "test_an_entry_refused_on_its_own_merits_gets_a_catalogue_error_and_the_others_are_written"),
    (CreatingSearchTarget,
     "test_partner_search_returns_a_superset_of_the_exact_match_and_creates_nothing"),
    (NarrowSearchTarget,
     "test_partner_search_returns_a_superset_of_the_exact_match_and_creates_nothing"),
    (FileDroppingTarget,
     "test_a_target_that_supports_attachments_keeps_the_file_given_with_an_entry"),
    (DraftPostingTarget, "test_a_target_that_supports_drafts_writes_a_draft_found_as_one"),
    (PhantomPartnerTarget, "test_a_target_that_creates_partners_finds_the_one_it_created"),
    (HalfBatchTarget, "test_a_target_that_supports_batch_writes_writes_every_entry_of_a_batch"),
]  # fmt: skip


def run_contract_test(contract, name: str, fixtures: dict) -> None:
    """Run one contract test with these fixtures, as pytest would (the class's own fixtures that
    the test asks for, e.g. ``invoices`` or ``exact_partner``, are built from them too)."""
    instance = contract()
    method = getattr(instance, name)
    derived = {
        "new_external_id": lambda: lambda: f"invsync:contract:invoice:{uuid.uuid4().hex}",
        "unknown_invoice_id": lambda: "no-such-invoice",
        "invoices": lambda: instance.list_invoices(fixtures["source"]),
        "exact_partner": lambda: instance.create_exact_partner(
            fixtures["target"], fixtures["folder"]
        ),
    }
    arguments = {}
    for parameter in inspect.signature(method).parameters:
        arguments[parameter] = (
            fixtures[parameter] if parameter in fixtures else derived[parameter]()
        )
    method(**arguments)


def assert_contract_fails(run) -> None:
    """``run()`` fails as a test fails (an assertion, pytest.fail, an exception), not a skip."""
    with pytest.raises(BaseException) as failure:
        run()
    assert not isinstance(failure.value, pytest.skip.Exception | KeyboardInterrupt | SystemExit), (
        failure.value
    )


def test_every_source_contract_test_has_a_broken_double_that_fails_it():
    tests = {name for name in dir(SourceContract) if name.startswith("test_")}
    shared = {"test_the_registry_ships_the_connector_under_its_key"}  # needs the registry only
    assert tests - shared <= {name for _, name in BROKEN_SOURCES}


def test_every_target_contract_test_has_a_broken_double_that_fails_it():
    tests = {name for name in dir(TargetContract) if name.startswith("test_")}
    shared = {
        "test_the_registry_ships_the_connector_under_its_key",
        "test_lookups_give_the_canonical_lists_of_the_folder",
    }
    assert tests - shared <= {name for _, name in BROKEN_TARGETS}


@pytest.mark.parametrize(
    ("broken", "name"), BROKEN_SOURCES, ids=[f"{c.__name__}-{n}" for c, n in BROKEN_SOURCES]
)
def test_the_source_contract_catches_a_broken_double(memory_connectors, broken, name):
    # The same test passes on the honest double...
    run_contract_test(SourceContract, name, source_fixtures())
    MemorySource.reset()
    # ...and fails on the broken one.
    with registry.override([broken, MemoryTarget]):
        assert_contract_fails(
            lambda: run_contract_test(SourceContract, name, source_fixtures(broken))
        )


@pytest.mark.parametrize(
    ("broken", "name"), BROKEN_TARGETS, ids=[f"{c.__name__}-{n}" for c, n in BROKEN_TARGETS]
)
def test_the_target_contract_catches_a_broken_double(memory_connectors, broken, name):
    run_contract_test(TargetContract, name, target_fixtures())
    MemoryTarget.reset()
    with registry.override([MemorySource, broken]):
        assert_contract_fails(
            lambda: run_contract_test(TargetContract, name, target_fixtures(broken))
        )


def test_the_registry_test_catches_a_connector_the_registry_does_not_ship(memory_connectors):
    fixtures = source_fixtures(MemorySource)
    with registry.override([MemoryTarget]):
        assert_contract_fails(
            lambda: run_contract_test(
                SourceContract, "test_the_registry_ships_the_connector_under_its_key", fixtures
            )
        )


def test_the_lookup_test_catches_a_target_without_the_flows_folder(memory_connectors):
    class NoFolderTarget(MemoryTarget):
        def list_folders(self):
            return []

    fixtures = target_fixtures(NoFolderTarget)
    assert_contract_fails(
        lambda: run_contract_test(
            TargetContract, "test_lookups_give_the_canonical_lists_of_the_folder", fixtures
        )
    )
