"""The connector contract on Stripe: StripeSource (from the registry, key ``stripe``) against the
contract-validated fake Stripe (``connectors/devtools/stripe_fake.py``: a local HTTP server that
checks every request's path and parameters against what Stripe documents, as data in
``tests/contracts/stripe/endpoints.json``). One fake and one account for the module, a few dozen
generated invoices (several currencies, taxes, discounts, credit notes, voided ones); every test
asserts that the fake saw no contract violation. The fake's rate limit is off here (the limit and
429s are shown in tests/unit/test_stripe_source.py)."""

from __future__ import annotations

import pytest

from connectors.base import AuthKind, ConnectionConfig, ConnectionKind
from connectors.devtools.stripe_fake import StripeFake
from connectors.outbound import OutboundPolicy
from tests.connectors.contract import SourceContract, provider

LOOPBACK = OutboundPolicy.from_allow_list(["127.0.0.1"])


@pytest.fixture(scope="module")
def stripe():
    with StripeFake(rate_limit=False) as fake:
        account = fake.add_account("Contract SAS")
        key = fake.keys.issue(account, restricted=True)
        fake.generate(account, count=24)
        yield fake, account, key


@pytest.fixture(autouse=True)
def no_contract_violation(stripe):
    fake = stripe[0]
    seen = len(fake.violations)
    yield
    assert [str(v) for v in fake.violations[seen:]] == []


def stripe_config(fake: StripeFake, api_key: str, **settings: str) -> ConnectionConfig:
    return ConnectionConfig(
        AuthKind.API_KEY,
        {"api_url": fake.api_url, "rate_limit": "10000/1", "retry_attempts": "1", **settings},
        {"api_key": api_key},
        label="contract",
        outbound=LOOPBACK,
    )


class TestStripeSourceContract(SourceContract):
    @pytest.fixture
    def source(self, stripe):
        fake, _account, key = stripe
        source = provider("stripe", ConnectionKind.INVOICING)(stripe_config(fake, key))
        yield source
        source.close()

    @pytest.fixture
    def refused_source(self, stripe):
        cls = provider("stripe", ConnectionKind.INVOICING)
        return lambda secret: cls(stripe_config(stripe[0], "rk_test_" + secret))

    @pytest.fixture
    def paged_source(self, stripe):
        fake, _account, key = stripe
        cls = provider("stripe", ConnectionKind.INVOICING)
        source = cls(stripe_config(fake, key), page_size=5)
        yield source, lambda: source.pages_read
        source.close()

    @pytest.fixture
    def unknown_invoice_id(self):
        return "in_1Fk99999999unknown00000"
