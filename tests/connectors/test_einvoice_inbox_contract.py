"""The source contract for the e-invoice inbox (registry key ``einvoice_inbox``), on a connection
that received the FNFE Factur-X samples; its pages are the stored files it reads one by one."""

from __future__ import annotations

import pytest

from connectors.base import ConnectionKind
from connectors.selectors import connector_for
from connectors.services import connection_create, inbox_upload
from tests.connectors.contract import SourceContract, provider
from tests.factories.einvoices import MISSING_REASON, SAMPLES
from tests.factories.models import ClientFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=MISSING_REASON),
]

FNFE = SAMPLES / "ZUGFeRDv2/correct/FNFE-factur-x-examples"
BUYER_VAT = "FR19787878784"  # Ma jolie boutique, the buyer of the FNFE samples


class TestEInvoiceInboxContract(SourceContract):
    @pytest.fixture
    def inbox(self, settings, tmp_path):
        settings.MEDIA_ROOT = str(tmp_path / "media")
        key = provider("einvoice_inbox", ConnectionKind.INVOICING).key
        connection = connection_create(
            client=ClientFactory(), name="Inbox", kind="invoicing", provider=key,
            auth_kind="none", settings={"vat_number": BUYER_VAT}, credentials={},
        )  # fmt: skip
        files = [(path.name, path.read_bytes()) for path in sorted(FNFE.glob("*.pdf"))]
        inbox_upload(connection=connection, files=files)
        return connection

    @pytest.fixture
    def source(self, inbox):
        source = connector_for(inbox)
        assert isinstance(source, provider("einvoice_inbox", ConnectionKind.INVOICING))
        return source

    @pytest.fixture
    def refused_source(self):
        pytest.skip("the inbox takes no credentials: there is no login to refuse")

    @pytest.fixture
    def paged_source(self, source, monkeypatch):
        reads = []
        content = source.store.content

        def counting(sha256):
            reads.append(sha256)
            return content(sha256)

        monkeypatch.setattr(source.store, "content", counting)
        return source, lambda: len(reads)
