"""The preview of a flow's next invoices (read from the source, run through the engine, written
nowhere) and of one record's snapshot under the flow's current configuration."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, replace
from decimal import Decimal

from connectors.base import AccountingTarget, SourceRecordError
from connectors.canonical import Invoice, TargetLookups, quantize_money
from connectors.errors import error_info, message_text
from connectors.selectors import connector_for
from mappings.lookups import FlowLookups, cached_target_lookups
from mappings.models import SyncFlow
from mappings.selectors import flow_directions
from syncs.engine import Posted, Rejected, build_posting
from syncs.models import INVOICE_TYPE_CHOICES, PartnerLink, RecordStatus, SyncedRecord
from syncs.selectors import flow_engine_config, record_overrides
from syncs.serialization import config_to_json, invoice_from_json, result_to_json
from syncs.services import record_external_id


@dataclass(frozen=True)
class PreviewItem:
    """One invoice of the preview and what the engine makes of it (``result`` as
    syncs.serialization.result_to_json gives it)."""

    source_id: str
    number: str
    invoice_type: str
    issue_date: dt.date | None
    partner_name: str
    currency: str
    total: Decimal | None
    result: dict
    record_status: str = ""  # the state of the invoice's record, if it has one (failed...)
    partner_link: str = ""  # the accounting partner it is linked to, if it is
    total_debit: Decimal | None = None
    total_credit: Decimal | None = None
    error_description: str = ""
    error_resolution: str = ""

    @property
    def type_label(self) -> str:
        return dict(INVOICE_TYPE_CHOICES).get(
            self.invoice_type, self.invoice_type.replace("_", " ").capitalize()
        )

    @property
    def balanced(self) -> bool:
        return self.total_debit is not None and self.total_debit == self.total_credit


@dataclass(frozen=True)
class FlowPreview:
    items: tuple[PreviewItem, ...]
    more: bool  # the source has more invoices to sync than those shown
    lookups_known: bool  # False: the accounting tool's lists were never read


PREVIEW_LIMIT = 10


def flow_preview(
    flow: SyncFlow, *, lookups: FlowLookups, limit: int = PREVIEW_LIMIT
) -> FlowPreview:
    """What the next run would write: the engine applied to the first ``limit`` invoices the
    source lists since the flow's cursor (in the flow's scope) that are not synced yet.

    Reads the source; writes nothing anywhere (no entry, no partner, no record). Raises
    InvsyncError when the source cannot be listed."""
    config = flow_engine_config(flow, lookups.target_lookups())
    items: list[PreviewItem] = []
    more = False
    source = connector_for(flow.invoicing_connection)
    ledger_rates = _LedgerRates(flow, config.company_currency)
    listing = source.iter_invoices(since=flow.source_cursor, directions=flow_directions(flow))
    try:
        while not more:
            chunk = list(itertools.islice(listing, 50))
            if not chunk:
                break
            records = {
                r.source_id: r
                for r in SyncedRecord.objects.filter(
                    flow=flow, source_id__in=[item.source_id for item in chunk]
                )
            }
            # The chunk's partners' links in one query (the first link of each, as .first()).
            links: dict[str, PartnerLink] = {}
            partner_ids = {
                item.partner.source_id
                for item in chunk
                if not isinstance(item, SourceRecordError) and item.partner is not None
            }
            for each in PartnerLink.objects.filter(
                flow=flow, source_partner_id__in=partner_ids
            ).order_by("pk"):
                links.setdefault(each.source_partner_id, each)
            for item in chunk:
                record = records.get(item.source_id)
                if record is not None and record.status in (
                    RecordStatus.SYNCED,
                    RecordStatus.PUSHING,
                ):
                    continue
                if len(items) == limit:
                    more = True
                    break
                if isinstance(item, SourceRecordError):
                    items.append(_preview_source_error(item, record))
                    continue
                item = ledger_rates.apply(item)
                result = build_posting(
                    item,
                    config,
                    external_id=record_external_id(flow, item.source_id),
                    overrides=record_overrides(record) if record is not None else None,
                )
                link = links.get(item.partner.source_id) if item.partner is not None else None
                info = error_info(result.code) if isinstance(result, Rejected) else None
                posting = result.posting if isinstance(result, Posted) else None
                items.append(
                    PreviewItem(
                        source_id=item.source_id,
                        number=item.number,
                        invoice_type=item.type.value,
                        issue_date=item.issue_date,
                        partner_name=item.partner.name if item.partner else "",
                        currency=item.currency,
                        total=item.total,
                        result=_result_for_people(result),
                        record_status=record.status if record is not None else "",
                        partner_link=(link.target_partner_name or link.target_partner_id)
                        if link
                        else "",
                        total_debit=quantize_money(posting.total_debit, posting.company_currency)
                        if posting
                        else None,
                        total_credit=quantize_money(posting.total_credit, posting.company_currency)
                        if posting
                        else None,
                        error_description=info.description if info else "",
                        error_resolution=info.resolution if info else "",
                    )
                )
    finally:
        close = getattr(listing, "close", None)
        if close is not None:
            close()
        source.close()
        ledger_rates.close()
    return FlowPreview(tuple(items), more, lookups.accounts is not None)


class _LedgerRates:
    """An invoice in another currency than the ledger's whose invoicing tool gives no rate takes
    the accounting tool's rate for its date, as the run does (syncs.run.orchestrate); the target
    is asked only then, once per currency and date."""

    def __init__(self, flow: SyncFlow, company_currency: str) -> None:
        self.flow, self.company = flow, company_currency.upper()
        self.target: AccountingTarget | None = None
        self.rates: dict[tuple[str, dt.date], Decimal | None] = {}

    def apply(self, invoice: Invoice) -> Invoice:
        currency = invoice.currency.upper()
        if (
            invoice.exchange_rate is not None
            or currency == self.company
            or not all(
                len(code) == 3 and code.isascii() and code.isalpha()
                for code in (currency, self.company)
            )
        ):
            return invoice
        key = (currency, invoice.issue_date)
        if key not in self.rates:
            if self.target is None:
                self.target = connector_for(self.flow.accounting_connection)
            self.rates[key] = (
                self.target.exchange_rate(self.flow.folder, currency, self.company, key[1])
                if self.target.supports_exchange_rates
                else None
            )
        rate = self.rates[key]
        if rate is None or not rate.is_finite() or rate <= 0:
            return invoice
        return replace(invoice, exchange_rate=rate)

    def close(self) -> None:
        if self.target is not None:
            self.target.close()


def _result_for_people(result) -> dict:
    """The result as the posting-preview contract states it, its error message in the reader's
    language (the page shows it; the command line and downloads keep the English)."""
    data = result_to_json(result)
    if isinstance(result, Rejected):
        data["message"] = message_text(result.key, result.params, result.message)
    return data


def _preview_source_error(item: SourceRecordError, record) -> PreviewItem:
    info = error_info(item.error.code)
    return PreviewItem(
        source_id=item.source_id,
        number=item.number,
        invoice_type="",
        issue_date=None,
        partner_name="",
        currency="",
        total=None,
        result={
            "status": "error",
            "code": item.error.code.value,
            "message": message_text(item.error.key, item.error.params, item.error.message),
            "field": item.error.field,
        },
        record_status=record.status if record is not None else "",
        error_description=info.description,
        error_resolution=info.resolution,
    )


def record_preview(record: SyncedRecord):
    """What the engine makes of a record's snapshot under the flow's current configuration and the
    target lookups last read: (INVOICE.json, CONFIG.json, result). Offline: no call to any tool."""
    lookups = cached_target_lookups(record.flow) or TargetLookups()
    config = flow_engine_config(record.flow, lookups)
    invoice = invoice_from_json(record.snapshot)
    result = build_posting(
        invoice, config, external_id=record.external_id, overrides=record_overrides(record)
    )
    return record.snapshot, config_to_json(config), result
