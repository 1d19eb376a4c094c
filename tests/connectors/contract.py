"""The contract every connector passes: base test classes a connector's test module subclasses.

As django-allauth does for its providers, a vendor's tests inherit the shared ones and give only
what builds its connector. A module subclasses :class:`SourceContract` and/or
:class:`TargetContract` (named ``Test...`` so that pytest collects it) and defines the fixtures
each class lists. Nothing in here knows a vendor: the classes come from the registry
(:func:`provider`), never from a module path.

What the contract holds a connector to (issue #12, point 6):

- a refused login gives a failed check (``check_connection``, never an exception), and the calls of
  a refused connection raise :class:`~connectors.errors.InvsyncError` with the catalogue code
  AUTHENTICATION_FAILED (or PERMISSION_DENIED); a planted secret appears in none of their
  messages, ``str`` or ``repr``;
- listings stream: ``iter_invoices`` returns an iterator that reads nothing until consumed, and
  yields its first invoice before it has read its last page;
- ``create_entries`` never writes an external id twice (in two calls, or twice in one batch);
- ``find_entries`` finds what was written, by external id, and nothing else;
- partner search returns a superset of the exact matches and creates nothing;
- errors carry catalogue codes (an unknown invoice, an entry refused on its own merits);
- capability flags are honest: ``supports_attachments`` keeps the file given with an entry,
  ``supports_draft_entries`` writes a draft that is found as one, ``supports_partner_creation``
  creates a partner that is then found, ``supports_batch_writes`` writes a batch, a source's
  ``supports_attachments`` gives files and ``supports_journals`` lists journals.

Keep a live vendor's run fast: share one account/folder per module (fixtures of module or session
scope) and make every test's writes unique with fresh external ids (``new_external_id``).
"""

from __future__ import annotations

import collections.abc
import uuid
from dataclasses import replace

import pytest

from connectors import registry
from connectors.base import (
    ConnectionKind,
    Connector,
    EntryResult,
    EntryToWrite,
    SourceRecordError,
)
from connectors.canonical import (
    Account,
    Attachment,
    ConnectionCheck,
    Direction,
    EntryRef,
    Folder,
    Invoice,
    Journal,
    Partner,
    SourceJournal,
    SourceTaxRate,
    TargetPartner,
    VatCode,
)
from connectors.errors import CATALOGUE, ErrorCode, InvsyncError

# Codes a refused login may carry on the calls of a refused connection.
REFUSED_LOGIN_CODES = frozenset({ErrorCode.AUTHENTICATION_FAILED, ErrorCode.PERMISSION_DENIED})

ATTACHMENT = Attachment("contract.pdf", "application/pdf", b"%PDF-1.4 invsync contract\n%%EOF\n")


def provider(key: str, kind: ConnectionKind) -> type[Connector]:
    """The connector class the registry ships under ``key`` for ``kind``."""
    return registry.get(key, kind)


def planted_secret() -> str:
    """A recognisable secret to plant in the credentials of a refused connection."""
    return f"wrong-contract-S3CRET-{uuid.uuid4().hex}"


def assert_no_secret(secret: str, *things: object) -> None:
    """``secret`` (or its distinctive part) appears in none of ``things``' str or repr, nor, for
    an error, in its message and arguments."""
    marks = {secret, secret.rsplit("-", 1)[-1]}
    for thing in things:
        texts = [str(thing), repr(thing)]
        if isinstance(thing, BaseException):
            texts += [str(getattr(thing, "message", "")), *map(repr, thing.args)]
        if isinstance(thing, ConnectionCheck):
            texts.append(thing.message)
        for text in texts:
            for mark in marks:
                assert mark not in text, f"the secret shows in {type(thing).__name__}: {text!r}"


def assert_catalogued(error: BaseException, *codes: ErrorCode) -> InvsyncError:
    """``error`` is an InvsyncError with a catalogue code (one of ``codes`` when given)."""
    assert isinstance(error, InvsyncError), f"a bare {type(error).__name__}: {error!r}"
    assert error.code in CATALOGUE, error.code
    if codes:
        assert error.code in codes, f"{error.code} is not one of {sorted(codes)}"
    return error


def raised(call: collections.abc.Callable[[], object]) -> BaseException:
    """The exception ``call()`` raises (it must raise one)."""
    try:
        call()
    except Exception as error:
        return error
    pytest.fail("the call did not raise")


class ConnectorContract:
    """What sources and targets share. Fixtures to define:

    - ``connector``: a connector on a working account (the subclasses alias it).
    - ``refused_connector``: a callable ``(secret) -> Connector`` building a connector whose
      login the vendor refuses, with ``secret`` in every credential it sends.
    """

    def test_the_registry_ships_the_connector_under_its_key(self, connector):
        cls = type(connector)
        assert registry.get(cls.key, cls.kind) is cls
        assert registry.problems([cls]) == []

    def test_a_refused_login_is_a_failed_check_without_the_secret(self, refused_connector):
        secret = planted_secret()
        connector = refused_connector(secret)
        try:
            check = connector.check_connection()  # never raises for a refused login
        finally:
            connector.close()
        assert isinstance(check, ConnectionCheck)
        assert check.ok is False
        assert check.message.strip()
        assert check.code in REFUSED_LOGIN_CODES, f"the failed check has no catalogue code: {check}"
        assert_no_secret(secret, check, connector)


class SourceContract(ConnectorContract):
    """The contract of an :class:`~connectors.base.InvoicingSource`. Fixtures to define:

    - ``source``: a source on a working account holding at least two final invoices, one with
      its PDF when ``supports_attachments``.
    - ``refused_source``: ``(secret) -> InvoicingSource`` whose login the vendor refuses.
    - ``paged_source``: ``(source, reads)``: a source whose listing spans at least two pages
      (make its pages small), and a callable giving how many pages (vendor reads of the listing)
      it has read so far.
    - ``unknown_invoice_id``: a source id the account does not hold (default: a fresh one).
    """

    directions = (Direction.SALES, Direction.PURCHASES)

    @pytest.fixture
    def connector(self, source):
        return source

    @pytest.fixture
    def refused_connector(self, refused_source):
        return refused_source

    @pytest.fixture
    def unknown_invoice_id(self):
        return "9" + str(uuid.uuid4().int)[:12]

    @pytest.fixture
    def invoices(self, source) -> list[Invoice]:
        return self.list_invoices(source)

    def list_invoices(self, source) -> list[Invoice]:
        listed = list(source.iter_invoices(since=None, directions=self.directions))
        found = [item for item in listed if isinstance(item, Invoice)]
        assert len(found) >= 2, "the contract needs an account holding two final invoices"
        return found

    def test_a_refused_login_makes_the_listing_raise_a_catalogue_error_without_the_secret(
        self, refused_source
    ):
        secret = planted_secret()
        source = refused_source(secret)
        try:
            listing = source.iter_invoices(since=None, directions=self.directions)
            error = raised(lambda: next(iter(listing)))
        finally:
            source.close()
        assert_catalogued(error, *REFUSED_LOGIN_CODES)
        assert_no_secret(secret, error)

    def test_the_listing_is_an_iterator_that_reads_nothing_before_it_is_consumed(
        self, paged_source
    ):
        source, reads = paged_source
        before = reads()
        listing = source.iter_invoices(since=None, directions=self.directions)
        assert isinstance(listing, collections.abc.Iterator)
        assert not isinstance(listing, list | tuple)
        assert reads() == before, "the listing read pages before it was consumed"

    def test_the_first_invoice_arrives_before_the_last_page_is_read(self, paged_source):
        source, reads = paged_source
        before = reads()
        listing = source.iter_invoices(since=None, directions=self.directions)
        first = next(listing)
        at_first = reads() - before
        rest = list(listing)
        total = reads() - before
        assert isinstance(first, Invoice | SourceRecordError)
        assert rest, "the paged source must hold more than one page of invoices"
        assert at_first < total, f"{at_first} of {total} pages read before the first invoice"

    def test_the_listing_yields_invoices_or_record_errors_with_catalogue_codes(self, source):
        for item in source.iter_invoices(since=None, directions=self.directions):
            assert isinstance(item, Invoice | SourceRecordError), type(item)
            if isinstance(item, SourceRecordError):
                assert_catalogued(item.error)
            else:
                assert item.source_id and item.direction in self.directions

    def test_the_listing_keeps_to_the_directions_asked(self, source, invoices):
        for direction in self.directions:
            listed = source.iter_invoices(since=None, directions=[direction])
            assert all(i.direction == direction for i in listed if isinstance(i, Invoice))

    def test_an_invoice_is_read_again_by_its_source_id(self, source, invoices):
        invoice = invoices[0]
        again = source.get_invoice(invoice.source_id)
        assert isinstance(again, Invoice)
        assert (again.source_id, again.number, again.total) == (
            invoice.source_id,
            invoice.number,
            invoice.total,
        )

    def test_an_unknown_invoice_is_a_catalogue_error(self, source, unknown_invoice_id):
        error = raised(lambda: source.get_invoice(unknown_invoice_id))
        assert_catalogued(error, ErrorCode.INVALID_SOURCE_DATA)

    def test_a_source_that_supports_attachments_gives_the_pdf_of_an_invoice_that_has_one(
        self, source, invoices
    ):
        if not type(source).supports_attachments:
            pytest.skip("the source says it has no attachments")
        with_file = [i for i in invoices if i.has_attachment]
        assert with_file, "a source with attachments must flag the invoices that have one"
        attachment = source.fetch_attachment(with_file[0])
        assert isinstance(attachment, Attachment)
        assert attachment.content and attachment.filename

    def test_the_file_of_an_invoice_flagged_without_one_is_a_file_or_a_pdf_error(
        self, source, invoices
    ):
        # The run fetches files only for invoices flagged with one; a source may still render
        # one for the others (Tryton renders its report), or must say PDF, never fail bare.
        without = [i for i in invoices if not i.has_attachment]
        if not without:
            pytest.skip("every invoice of the account has its file")
        try:
            attachment = source.fetch_attachment(without[0])
        except Exception as error:
            assert_catalogued(error, ErrorCode.PDF)
        else:
            assert isinstance(attachment, Attachment) and attachment.content

    def test_journals_are_listed_when_the_source_says_it_has_them(self, source):
        journals = source.list_journals()
        assert isinstance(journals, list)
        assert all(isinstance(j, SourceJournal) and j.code for j in journals)
        if type(source).supports_journals:
            assert journals, "supports_journals but no journal listed"

    def test_tax_rates_are_listed_per_direction(self, source, invoices):
        rates = source.list_tax_rates()
        assert isinstance(rates, list) and rates
        assert all(isinstance(r, SourceTaxRate) and r.direction in Direction for r in rates)


class TargetContract(ConnectorContract):
    """The contract of an :class:`~connectors.base.AccountingTarget`. Fixtures to define:

    - ``target``: a target on a working account.
    - ``folder``: the folder id the tests write to (shared by the module: writes use fresh
      external ids).
    - ``make_posting``: ``(external_id, *, draft=False) -> Posting``: a balanced posting the folder
      accepts (its journal, accounts, date and partner exist there).
    - ``count_entries``: ``(external_id) -> int``: how many entries the folder holds under that
      external id, counted by the vendor's own means (not through ``find_entries``).
    - ``count_partners``: ``() -> int``: how many partners the folder holds, counted so.
    - ``refused_target``: ``(secret) -> AccountingTarget`` whose login the vendor refuses.
    - ``new_external_id``: ``() -> str``: an external id never used (default: a fresh one).
    - ``exact_partner``: ``(Partner, TargetPartner id)``: a partner of the folder and the partner
      it exactly is. The default creates one (a target without partner creation must define it).
    """

    @pytest.fixture
    def connector(self, target):
        return target

    @pytest.fixture
    def refused_connector(self, refused_target):
        return refused_target

    @pytest.fixture
    def new_external_id(self):
        return lambda: f"invsync:contract:invoice:{uuid.uuid4().hex}"

    @pytest.fixture
    def exact_partner(self, target, folder) -> tuple[Partner, str]:
        return self.create_exact_partner(target, folder)

    def create_exact_partner(self, target, folder) -> tuple[Partner, str]:
        if not type(target).supports_partner_creation:
            pytest.fail("a target that cannot create partners defines exact_partner")
        token = uuid.uuid4().hex[:10]
        partner = Partner(source_id=f"contract-{token}", name=f"Contract partner {token}")
        created = target.create_partner(folder, partner, Direction.SALES)
        return partner, created.id

    def write(self, target, folder, *entries: EntryToWrite) -> list[EntryResult]:
        results = target.create_entries(folder, list(entries))
        assert isinstance(results, list) and len(results) == len(entries)
        for entry, result in zip(entries, results, strict=True):
            assert isinstance(result, EntryResult)
            assert result.external_id == entry.posting.external_id
            assert (result.ref is None) != (result.error is None), result
            if result.error is not None:
                assert_catalogued(result.error)
        return results

    def written(self, results: list[EntryResult]) -> list[EntryRef]:
        refs = [r.ref for r in results]
        assert all(refs), [r.error for r in results if r.error]
        return refs

    # -- refused login, lookups --------------------------------------------------------------

    def test_a_refused_login_makes_lookups_and_writes_raise_catalogue_errors_without_the_secret(
        self, refused_target, folder, make_posting, new_external_id
    ):
        secret = planted_secret()
        target = refused_target(secret)
        entry = EntryToWrite(make_posting(new_external_id()))
        calls = (
            target.list_folders,
            lambda: target.list_accounts(folder),
            lambda: target.find_entries(folder, [entry.posting.external_id]),
            lambda: target.create_entries(folder, [entry]),
        )
        try:
            for call in calls:
                error = raised(call)
                assert_catalogued(error, *REFUSED_LOGIN_CODES)
                assert_no_secret(secret, error)
        finally:
            target.close()

    def test_lookups_give_the_canonical_lists_of_the_folder(self, target, folder):
        folders = target.list_folders()
        assert all(isinstance(f, Folder) for f in folders)
        assert folder in {f.id for f in folders}
        accounts = target.list_accounts(folder)
        assert accounts and all(isinstance(a, Account) and a.number for a in accounts)
        assert all(isinstance(v, VatCode) for v in target.list_vat_codes(folder))
        assert all(isinstance(j, Journal) and j.code for j in target.list_journals(folder))

    # -- entries -----------------------------------------------------------------------------

    def test_a_written_entry_is_found_by_its_external_id(
        self, target, folder, make_posting, new_external_id
    ):
        external_id = new_external_id()
        (ref,) = self.written(self.write(target, folder, EntryToWrite(make_posting(external_id))))
        found = target.find_entries(folder, [external_id])
        assert set(found) == {external_id}
        assert found[external_id].id == ref.id

    def test_find_entries_finds_nothing_else(self, target, folder, make_posting, new_external_id):
        written, other, never = new_external_id(), new_external_id(), new_external_id()
        self.written(self.write(target, folder, EntryToWrite(make_posting(written)),
                                EntryToWrite(make_posting(other))))  # fmt: skip
        assert set(target.find_entries(folder, [written, never])) == {written}
        assert target.find_entries(folder, [never]) == {}
        assert target.find_entries(folder, []) == {}

    def test_writing_an_external_id_again_writes_nothing_more(
        self, target, folder, make_posting, new_external_id, count_entries
    ):
        external_id = new_external_id()
        entry = EntryToWrite(make_posting(external_id))
        (first,) = self.written(self.write(target, folder, entry))
        (again,) = self.write(target, folder, entry)
        if again.ref is not None:
            assert again.ref.id == first.id, "a second entry under the same external id"
        else:
            assert again.error.code == ErrorCode.DUPLICATE_IN_TARGET
        assert count_entries(external_id) == 1

    def test_an_external_id_twice_in_one_batch_is_written_once(
        self, target, folder, make_posting, new_external_id, count_entries
    ):
        external_id, other = new_external_id(), new_external_id()
        entry = EntryToWrite(make_posting(external_id))
        results = self.write(target, folder, entry, EntryToWrite(make_posting(other)), entry)
        refs = {r.ref.id for r in (results[0], results[2]) if r.ref is not None}
        assert len(refs) <= 1, "two entries under one external id"
        assert count_entries(external_id) == 1
        assert count_entries(other) == 1
        assert results[1].ref is not None

    def test_an_entry_refused_on_its_own_merits_gets_a_catalogue_error_and_the_others_are_written(
        self, target, folder, make_posting, new_external_id, count_entries
    ):
        good, bad = new_external_id(), new_external_id()
        balanced = make_posting(bad)
        unbalanced = replace(balanced, lines=balanced.lines[:1])
        results = self.write(target, folder, EntryToWrite(unbalanced),
                             EntryToWrite(make_posting(good)))  # fmt: skip
        assert results[0].error is not None, "an unbalanced entry was written"
        assert results[1].ref is not None
        assert count_entries(bad) == 0
        assert count_entries(good) == 1
        assert set(target.find_entries(folder, [good, bad])) == {good}

    # -- partners ----------------------------------------------------------------------------

    def test_partner_search_returns_a_superset_of_the_exact_match_and_creates_nothing(
        self, target, folder, exact_partner, count_partners
    ):
        partner, exact_id = exact_partner
        before = count_partners()
        candidates = target.find_partner_candidates(folder, partner)
        many = target.find_partner_candidates_many(folder, [partner])
        assert all(isinstance(c, TargetPartner) for c in candidates)
        assert exact_id in {c.id for c in candidates}
        assert exact_id in {c.id for c in many[partner.source_id]}
        assert count_partners() == before, "the partner search created partners"
        assert target.existing_partner_ids(folder, [exact_id]) == {exact_id}

    # -- capability flags --------------------------------------------------------------------

    def test_a_target_that_supports_attachments_keeps_the_file_given_with_an_entry(
        self, target, folder, make_posting, new_external_id
    ):
        if not type(target).supports_attachments:
            pytest.skip("the target says it keeps no attachments")
        external_id = new_external_id()
        entry = EntryToWrite(make_posting(external_id), attachment=ATTACHMENT)
        (ref,) = self.written(self.write(target, folder, entry))
        assert ref.has_attachment
        assert target.find_entries(folder, [external_id])[external_id].has_attachment

    def test_a_target_that_supports_drafts_writes_a_draft_found_as_one(
        self, target, folder, make_posting, new_external_id
    ):
        if not type(target).supports_draft_entries:
            pytest.skip("the target says it writes no drafts")
        draft, posted = new_external_id(), new_external_id()
        entries = (
            EntryToWrite(make_posting(draft, draft=True)),
            EntryToWrite(make_posting(posted)),
        )
        refs = self.written(self.write(target, folder, *entries))
        assert [r.posted for r in refs] == [False, True]
        found = target.find_entries(folder, [draft, posted])
        assert (found[draft].posted, found[posted].posted) == (False, True)

    def test_a_target_that_creates_partners_finds_the_one_it_created(
        self, target, folder, count_partners
    ):
        token = uuid.uuid4().hex[:10]
        partner = Partner(source_id=f"contract-{token}", name=f"Contract partner {token}")
        if not type(target).supports_partner_creation:
            error = raised(lambda: target.create_partner(folder, partner, Direction.SALES))
            assert_catalogued(error)
            return
        before = count_partners()
        created = target.create_partner(folder, partner, Direction.PURCHASES)
        assert isinstance(created, TargetPartner) and created.id
        assert count_partners() == before + 1
        assert target.existing_partner_ids(folder, [created.id]) == {created.id}
        candidates = target.find_partner_candidates(folder, partner)
        assert created.id in {c.id for c in candidates}

    def test_a_target_that_supports_batch_writes_writes_every_entry_of_a_batch(
        self, target, folder, make_posting, new_external_id, count_entries
    ):
        if not type(target).supports_batch_writes:
            pytest.skip("the target writes one entry at a time")
        ids = [new_external_id() for _ in range(3)]
        refs = self.written(
            self.write(target, folder, *(EntryToWrite(make_posting(i)) for i in ids))
        )
        assert len({r.id for r in refs}) == 3
        assert [count_entries(i) for i in ids] == [1, 1, 1]
