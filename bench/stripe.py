"""Stripe figures (issue #17, point 5): source calls per invoice, measured with flow runs of the
fake Stripe's generated account (``connectors/devtools/stripe_fake.py``: every request checked
against ``tests/contracts/stripe``) into the counting ledger of ``bench/connectors.py``.

The floor: one list call per page of 100 invoices and of 100 credit notes, and one PDF download
per document pushed. Figures:

- ``stripe_source_calls_per_document``: every request the first run sent to Stripe (lists, line
  pages, tax rates, PDFs) divided by the documents read (invoices and credit notes);
- ``stripe_floor_calls_per_document``: the floor for the same run;
- ``stripe_list_calls``, ``stripe_list_floor``: the list requests alone, and their floor (Stripe
  lists newest first: the created windows halved to yield the oldest first cost the difference);
- ``stripe_pdf_calls_per_pushed``: PDF downloads per document written (1 is the floor);
- ``stripe_second_run_calls``: the requests of a second run when nothing changed (a cursor older
  than Stripe's 30 days of events: everything is listed again, no PDF fetched);
- ``stripe_documents_per_s``: the first run's throughput (fake and counting ledger on loopback).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal

Emit = Callable[[str, float, str], None]

LISTS = ("ListInvoices", "ListCreditNotes", "ListEvents")
PDFS = ("InvoicePdf", "CreditNotePdf")


def measure(quick: bool, emit: Emit) -> None:
    from bench.connectors import CountingTarget, make_flow, registered
    from connectors.devtools.stripe_fake import StripeFake
    from connectors.models import Connection
    from mappings.models import SyncFlow, VatMapping
    from syncs.services import flow_sync

    count = 60 if quick else 300
    with registered(), StripeFake(rate_limit=False) as fake:
        account = fake.add_account("Bench SAS")
        key = fake.keys.issue(account, restricted=True)
        fake.generate(account, count=count)
        documents = len(account.invoices) + len(account.credit_notes)
        CountingTarget.reset()
        flow = make_flow("stripe", target_settings={})
        Connection.objects.filter(pk=flow.invoicing_connection_id).update(
            provider="stripe",
            settings={"api_url": fake.api_url, "rate_limit": "10000/1"},
            credentials={"api_key": key},
        )
        # The generated German 19 % rate, on the sales VAT code (an OSS code in real books).
        VatMapping.objects.create(
            flow=flow, direction="sales", source_rate=Decimal("19"), target_code="V20"
        )
        flow = SyncFlow.objects.get(pk=flow.pk)
        fake.reset_counts()
        start = time.perf_counter()
        run = flow_sync(flow=flow, trigger="command")
        elapsed = time.perf_counter() - start
        fake.assert_no_violations()
        pushed = run.synced_count
        assert pushed, (run.status, run.error_message, run.counts())
        total = sum(fake.calls.values())
        lists = sum(fake.calls[op] for op in LISTS)
        pdfs = sum(fake.calls[op] for op in PDFS)
        list_floor = math.ceil(len(account.invoices) / 100) + math.ceil(
            len(account.credit_notes) / 100
        )
        emit("stripe_source_calls_per_document", total / documents, "calls/document")
        emit("stripe_floor_calls_per_document", (list_floor + pushed) / documents, "calls/document")
        emit("stripe_list_calls", lists, "calls")
        emit("stripe_list_floor", list_floor, "calls")
        emit("stripe_pdf_calls_per_pushed", pdfs / pushed, "calls/document")
        emit("stripe_documents_pushed", pushed, "documents")
        emit("stripe_documents_per_s", documents / elapsed, "documents/s")

        fake.reset_counts()
        flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger="command")
        fake.assert_no_violations()
        emit("stripe_second_run_calls", sum(fake.calls.values()), "calls")
