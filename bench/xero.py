"""Xero figures (issue #16, point 5): target calls per invoice into Xero, with and without PDFs,
measured with flow runs of generated invoices (sales, bills, five tax rates, fifty partners) into
the fake Xero (``connectors/devtools/xero_fake.py``: every request checked against Xero's spec),
and the time a 20,000-invoice backlog needs under Xero's limits, computed from those calls.

Figures:

- ``xero_target_calls_per_invoice`` / ``..._with_pdf``: every request of the first run (chart,
  tax rates, contacts read and created, look-ups, writes, attachments) divided by the invoices;
- ``xero_document_calls_per_invoice`` / ``..._with_pdf``: the per-invoice part alone (look-ups,
  writes, attachments), what a long backlog tends to. The floor: one attachment call per invoice
  with a PDF plus one write per 50 documents (1.02 with PDFs, 0.02 without); invsync adds one
  look-up per batch of 50 before writing (1.04 and 0.04);
- ``xero_backlog_20000_calls`` / ``..._days`` (and ``_with_pdf``): the calls 20,000 invoices need at
  the measured rate (plus the run's fixed reads), and the days they take under Xero's 5,000 calls
  a day per organisation; at 60 a minute a day's 5,000 calls take ``xero_minutes_per_day_of_calls``
  (83.3 min), so the daily limit binds, not the minute one. The schedule that reaches it: runs
  every few minutes write 50 documents per call, the connector's windows (60/min, 5,000/day) hold
  the pace, and the day's 5,000th call pauses the flow until the day resets (RateLimitPause), the
  next day's runs go on where it stopped;
- ``xero_429``: 429 answers in the measured runs (the connector's limits off here, to count calls
  in seconds rather than minutes; Xero's own limits are enforced in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

Emit = Callable[[str, float, str], None]

BACKLOG = 20_000
DAY_LIMIT = 5_000
MINUTE_LIMIT = 60
PER_INVOICE = (
    "getInvoices", "getCreditNotes", "createInvoices", "createCreditNotes",
    "createInvoiceAttachmentByFileName", "createCreditNoteAttachmentByFileName",
)  # fmt: skip
RATES = (Decimal("20"), Decimal("5"), Decimal("0"))


def _flow(fake, tenant, name: str):
    from bench.connectors import make_flow
    from connectors.models import Connection
    from connectors.oauth import OAuthTokens
    from mappings.models import SyncFlow, VatMapping

    token = fake.tokens.issue(tenant_ids=[tenant.tenant_id], ttl=86_400.0)
    flow = make_flow(name)
    connection = Connection.objects.get(pk=flow.accounting_connection_id)
    connection.provider, connection.auth_kind, connection.credentials = "xero", "oauth2", {}
    connection.settings = {
        "api_url": fake.api_url, "connections_url": fake.connections_url,
        "company_id": tenant.tenant_id, "rate_limit": "none",
    }  # fmt: skip
    connection.oauth_tokens = OAuthTokens(
        access_token=token, granted=((tenant.tenant_id, tenant.name),)
    ).as_dict()
    connection.save()
    SyncFlow.objects.filter(pk=flow.pk).update(
        folder=tenant.tenant_id, sales_journal="SALES", purchases_journal="PURCHASES",
        default_sales_account="200", default_purchases_account="429",
        customer_collective_account="610", supplier_collective_account="800",
        rounding_credit_account="860", rounding_debit_account="860",
        sales_rounding_vat_code="NONE", purchases_rounding_vat_code="NONE",
    )  # fmt: skip
    VatMapping.objects.filter(flow=flow).delete()
    for direction, rate, code in (
        ("sales", "20", "OUTPUT2"), ("sales", "5", "RROUTPUT"), ("sales", "0", "ZERORATEDOUTPUT"),
        ("purchases", "20", "INPUT2"), ("purchases", "5", "RRINPUT"),
        ("purchases", "0", "ZERORATEDINPUT"),
    ):  # fmt: skip
        VatMapping.objects.create(
            flow=flow, direction=direction, source_rate=Decimal(rate), target_code=code
        )
    flow.refresh_from_db()
    return flow


def measure(quick: bool, emit: Emit) -> None:
    from bench.connectors import GeneratedSource, registered
    from connectors.devtools.xero_fake import XeroFake
    from syncs.services import flow_sync

    count = 100 if quick else 500
    with registered(), XeroFake(rate_limit=False) as fake:
        for pdf in (False, True):
            tenant = fake.add_tenant(
                f"Bench {'PDF' if pdf else 'no PDF'} BV", base_currency="EUR", country="NL"
            )
            GeneratedSource.configure(count=count, attachments=pdf, rates=RATES)
            flow = _flow(fake, tenant, f"xero-{'pdf' if pdf else 'plain'}")
            fake.reset_counts()
            run = flow_sync(flow=flow, trigger="command")
            assert run.synced_count == count, (run.status, run.error_message, run.counts())
            assert len(tenant.invoices) + len(tenant.credit_notes) == count
            fake.assert_no_violations()
            suffix = "_with_pdf" if pdf else ""
            total = sum(fake.calls.values())
            per_invoice = sum(fake.calls[op] for op in PER_INVOICE) / count
            fixed = total - per_invoice * count
            emit(f"xero_target_calls_per_invoice{suffix}", total / count, "calls/invoice")
            emit(f"xero_document_calls_per_invoice{suffix}", per_invoice, "calls/invoice")
            calls = math.ceil(BACKLOG * per_invoice + fixed)
            emit(f"xero_backlog_{BACKLOG}_calls{suffix}", calls, "calls")
            emit(f"xero_backlog_{BACKLOG}_days{suffix}", calls / DAY_LIMIT, "days")
            emit(f"xero_backlog_{BACKLOG}_whole_days{suffix}", math.ceil(calls / DAY_LIMIT), "days")
            emit(f"xero_429{suffix}", sum(1 for _, s in fake.answers if s == 429), "answers")
        emit("xero_minutes_per_day_of_calls", DAY_LIMIT / MINUTE_LIMIT, "minutes")
