"""Pennylane figures (issue #14, point 5): target calls per invoice into Pennylane, with and
without PDFs, and the rate limit held, measured with flow runs of generated invoices into the
contract-validated fake Pennylane (``connectors/devtools/pennylane_fake.py``: every request checked
against ``tests/contracts/pennylane``, Pennylane's 25 requests / 5 s per token enforced with 429).

Figures:

- ``pennylane_target_calls_per_invoice`` / ``..._with_pdf``: every request of the first run
  (lookups, partners, entry look-ups, uploads, entries) divided by the invoices written;
- ``pennylane_entry_calls_per_invoice`` / ``..._with_pdf``: the per-invoice part alone (entry
  look-ups, uploads, entries), what a long backlog tends to;
- ``pennylane_max_requests_per_5s``: the most requests the fake received in any 5-second window
  (Pennylane allows 25); ``pennylane_429``: how many it refused (0 when the connector's window
  holds);
- ``pennylane_invoices_per_s``: the throughput the limit leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

Emit = Callable[[str, float, str], None]

PER_INVOICE = ("getLedgerEntries", "postFileAttachments", "postLedgerEntries")


def _flow(fake, company, name: str):
    from bench.connectors import make_flow
    from connectors.models import Connection
    from mappings.models import SyncFlow, VatMapping

    token = fake.tokens.issue(company_id=company.id)
    flow = make_flow(name)
    Connection.objects.filter(pk=flow.accounting_connection_id).update(
        provider="pennylane", settings={"api_url": fake.api_url}, credentials={"api_key": token}
    )
    SyncFlow.objects.filter(pk=flow.pk).update(
        folder=str(company.id), sales_journal="VE", purchases_journal="HA",
        default_sales_account="706", default_purchases_account="607",
        customer_collective_account="411", supplier_collective_account="401",
        sales_rounding_vat_code="44571", purchases_rounding_vat_code="44566",
    )  # fmt: skip
    VatMapping.objects.filter(flow=flow).delete()
    for direction, rate, code in (
        ("sales", "20", "44571"), ("sales", "10", "445711"), ("sales", "5.5", "445715"),
        ("purchases", "20", "44566"), ("purchases", "10", "445661"),
        ("purchases", "5.5", "445665"),
    ):  # fmt: skip
        VatMapping.objects.create(
            flow=flow, direction=direction, source_rate=Decimal(rate), target_code=code
        )
    flow.refresh_from_db()
    return flow


def _busiest_window(stamps: list[float], window: float = 5.0) -> int:
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def measure(quick: bool, emit: Emit) -> None:
    from bench.connectors import GeneratedSource, registered
    from connectors.devtools.pennylane_fake import PennylaneFake
    from syncs.services import flow_sync

    count = 40 if quick else 150
    rates = (Decimal("20"), Decimal("10"), Decimal("5.5"))
    with registered(), PennylaneFake() as fake:
        stamps: list[float] = []
        answer = fake.handle

        def stamped(*args, **kwargs):
            stamps.append(time.monotonic())
            return answer(*args, **kwargs)

        fake.handle = stamped
        for pdf in (False, True):
            company = fake.add_company(f"Bench {'PDF' if pdf else 'no PDF'} SAS")
            GeneratedSource.configure(count=count, attachments=pdf, rates=rates)
            flow = _flow(fake, company, f"pennylane-{'pdf' if pdf else 'plain'}")
            fake.reset_counts()
            stamps.clear()
            start = time.perf_counter()
            run = flow_sync(flow=flow, trigger="command")
            elapsed = time.perf_counter() - start
            assert run.synced_count == count, (run.status, run.error_message, run.counts())
            assert len(company.ledger_entries) == count
            fake.assert_no_violations()
            suffix = "_with_pdf" if pdf else ""
            total = sum(fake.calls.values())
            emit(f"pennylane_target_calls_per_invoice{suffix}", total / count, "calls/invoice")
            per_invoice = sum(fake.calls[op] for op in PER_INVOICE)
            emit(f"pennylane_entry_calls_per_invoice{suffix}", per_invoice / count, "calls/invoice")
            emit(f"pennylane_max_requests_per_5s{suffix}", _busiest_window(stamps), "requests")
            refused = sum(1 for _, status in fake.answers if status == 429)
            emit(f"pennylane_429{suffix}", refused, "answers")
            emit(f"pennylane_invoices_per_s{suffix}", count / elapsed, "invoices/s")
