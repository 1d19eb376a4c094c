"""The connector contract, live: TrytonSource and TrytonTarget (from the registry, key ``tryton``)
against the session's Tryton on PostgreSQL. The source reads the session's shared invoicing
database; the target writes to one accounting copy shared by this module, every test under fresh
external ids (no database per test)."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal

import pytest

from connectors.base import AuthKind, ConnectionConfig, ConnectionKind
from connectors.canonical import EntryLine, InvoiceType, Posting
from connectors.selectors import outbound_policy
from tests.connectors.contract import SourceContract, TargetContract, provider
from tests.tryton_fixtures import TrytonDatabase, _database

pytestmark = [pytest.mark.django_db, pytest.mark.tryton]

# A login no Tryton database holds: refusing it never counts against the admin's login attempts,
# which other tests of the session use.
NOBODY = "invsync-contract-nobody"
PAGE_SIZE = 5  # the source's pages, made small so that the sample invoices span several


def config(db: TrytonDatabase, **credentials: str) -> ConnectionConfig:
    return ConnectionConfig(
        AuthKind.CREDENTIALS,
        db.settings,
        credentials or db.credentials,
        label="contract",
        outbound=outbound_policy(),
    )


def count(db: TrytonDatabase, model: str, domain: list) -> int:
    return db.call(f"model.{model}.search_count", [domain, 0, None], context=True)


class TestTrytonSourceContract(SourceContract):
    @pytest.fixture
    def source(self, tryton_invoicing):
        source = provider("tryton", ConnectionKind.INVOICING)(config(tryton_invoicing))
        yield source
        source.close()

    @pytest.fixture
    def refused_source(self, tryton_invoicing):
        cls = provider("tryton", ConnectionKind.INVOICING)
        return lambda secret: cls(config(tryton_invoicing, username=NOBODY, password=secret))

    @pytest.fixture
    def paged_source(self, tryton_invoicing, monkeypatch):
        cls = provider("tryton", ConnectionKind.INVOICING)
        monkeypatch.setattr(sys.modules[cls.__module__], "PAGE_SIZE", PAGE_SIZE)
        source = cls(config(tryton_invoicing))
        client = source.client
        pages = []
        search_read = client.search_read

        def counting(model, *args, **kwargs):
            if model == "account.invoice":
                pages.append(model)
            return search_read(model, *args, **kwargs)

        monkeypatch.setattr(client, "search_read", counting)
        yield source, lambda: len(pages)
        source.close()


@pytest.fixture(scope="module")
def contract_ledger(tryton_sandbox) -> TrytonDatabase:
    """One accounting copy for the module's target tests."""
    return _database(tryton_sandbox, tryton_sandbox.fresh_database("accounting"), "accounting")


class TestTrytonTargetContract(TargetContract):
    @pytest.fixture
    def target(self, contract_ledger):
        target = provider("tryton", ConnectionKind.ACCOUNTING)(config(contract_ledger))
        yield target
        target.close()

    @pytest.fixture
    def folder(self, contract_ledger):
        return str(contract_ledger.manifest["company"]["id"])

    @pytest.fixture
    def refused_target(self, contract_ledger):
        cls = provider("tryton", ConnectionKind.ACCOUNTING)
        return lambda secret: cls(config(contract_ledger, username=NOBODY, password=secret))

    @pytest.fixture
    def make_posting(self, contract_ledger):
        manifest = contract_ledger.manifest
        party = manifest["existing_parties"][0]
        date = dt.date.fromisoformat(manifest["today"])

        def posting(external_id: str, *, draft: bool = False) -> Posting:
            amount = Decimal("100.00")
            return Posting(
                journal="REV", date=date, reference=f"CONTRACT-{external_id[-8:]}",
                external_id=external_id, currency="EUR", company_currency="EUR", draft=draft,
                partner_name=party["name"], partner_ref=str(party["id"]),
                invoice_type=InvoiceType.CUSTOMER_INVOICE,
                lines=(
                    EntryLine("4111", amount, Decimal(0), "Contract", partner=party["name"],
                              maturity_date=date),
                    EntryLine("706", Decimal(0), amount, "Contract service"),
                ),
            )  # fmt: skip

        return posting

    @pytest.fixture
    def count_entries(self, contract_ledger):
        return lambda external_id: count(
            contract_ledger, "account.move", [("description", "like", f"%[{external_id}]")]
        )

    @pytest.fixture
    def count_partners(self, contract_ledger):
        return lambda: count(contract_ledger, "party.party", [])
