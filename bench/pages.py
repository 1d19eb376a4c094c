"""Server time of the admin's main pages with the demo's data (``bench/run.py --only pages``).

The data is the demo's (``bin/dev demo``: a client, a Tryton invoicing and a Tryton accounting
connection, a flow with the suggested mappings for France's everyday rates, a first sync of the
sample's invoices with one failure) without Tryton: the two connections are served by in-memory
doubles whose lists are those the demo's Tryton answered (``bench/data/demo_lookups.json``: the
French chart's 1,129 accounts, 77 VAT codes, 6 journals, the invoicing company's 41 taxes), read
and cached by the same services as in the demo; the invoices are generated (37, as the sample,
one with the 2.1 % press rate the demo leaves unmapped). The guided set-up is walked through for
a second flow on the same connections.

Each page is fetched with Django's test client as a signed-in superuser, once to warm up, then
``repeat`` times; printed per page: the median server time (ms, wall clock) and CPU time
(``_cpu_ms``: this process's, steadier on a busy machine), the HTML size (KB) and the number of
SQL queries of one request.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

from bench.connectors import BASE_TIME, CountingTarget, GeneratedSource
from connectors import registry
from connectors.base import AuthKind, SourceRecordError
from connectors.canonical import (
    Account,
    Folder,
    Invoice,
    InvoiceLine,
    InvoiceType,
    Journal,
    Partner,
    SourceJournal,
    SourceTaxRate,
    VatCode,
)

DATA = Path(__file__).resolve().parent / "data" / "demo_lookups.json"
PROVIDER = "bench_demo"
CLIENT_NAME = "Demo company"
FLOW_NAME = "Tryton invoicing to Tryton accounting"
GUIDED_FLOW_NAME = "Sales and purchases (guided set-up)"
ADMIN_EMAIL = "admin@example.com"
# As the demo: France's everyday rates mapped, the 2.1 % press rate left to a person.
DEMO_RATES = (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("0"))
INVOICES = 37
UNMAPPED_RATE = Decimal("2.1")


def _snapshot() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _decoded(role: str, folder: str, name: str) -> tuple:
    from mappings.lookups import lookup_rows_decode

    return lookup_rows_decode(name, role, _snapshot()[role][folder][name])


def _sample_tax(direction, rate: Decimal) -> SourceTaxRate:
    taxes = [t for t in _decoded("invoicing", "", "tax_rates") if t.direction is direction]
    return next(t for t in taxes if t.rate == rate)


class DemoSource(GeneratedSource):
    """The demo's Tryton invoicing company, as the bench sees it: its taxes and journals, and
    generated invoices whose lines carry its taxes (one invoice at the unmapped 2.1 %)."""

    key = PROVIDER
    name = "Tryton (demo's lists, benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)
    supports_journals = True

    def iter_invoices(self, *, since, directions) -> Iterator[Invoice | SourceRecordError]:
        for index in range(self.count):
            yield demo_invoice(index)

    def get_invoice(self, source_id: str) -> Invoice:
        return demo_invoice(int(source_id.split("-")[1]))

    def list_tax_rates(self) -> list[SourceTaxRate]:
        return list(_decoded("invoicing", "", "tax_rates"))

    def list_journals(self) -> list[SourceJournal]:
        return list(_decoded("invoicing", "", "journals"))


class DemoTarget(CountingTarget):
    """The demo's Tryton accounting company: its folder, chart, VAT codes and journals; writes
    are counted, never stored."""

    key = PROVIDER
    name = "Tryton (demo's lists, benchmarks)"
    auth_kinds = (AuthKind.API_KEY,)

    def list_folders(self) -> list[Folder]:
        return list(_decoded("accounting", "", "folders"))

    def list_vat_codes(self, folder: str) -> list[VatCode]:
        return list(_decoded("accounting", folder, "vat_codes"))

    def list_journals(self, folder: str) -> list[Journal]:
        return list(_decoded("accounting", folder, "journals"))

    def list_accounts(self, folder: str) -> list[Account]:
        return list(_decoded("accounting", folder, "accounts"))


def demo_invoice(index: int) -> Invoice:
    from connectors.canonical import Direction

    supplier = index % 4 == 3
    direction = Direction.PURCHASES if supplier else Direction.SALES
    # Purchases have no 0 % tax in the sample company.
    rates = (UNMAPPED_RATE,) if index == 7 else DEMO_RATES[: 1 + index % 3]
    lines = []
    for n, rate in enumerate(rates):
        tax = _sample_tax(direction, rate)
        untaxed = Decimal(100 + (index * 7 + n * 13) % 900) + Decimal("0.45")
        amount = (untaxed * rate / 100).quantize(Decimal("0.01"))
        lines.append(
            InvoiceLine(
                description=f"Prestation {n + 1}", quantity=Decimal(1), unit_price=untaxed,
                untaxed_amount=untaxed, tax_amount=amount, total=untaxed + amount,
                tax_rate=rate, tax_id=tax.tax_id,
            )
        )  # fmt: skip
    untaxed = sum((x.untaxed_amount for x in lines), Decimal(0))
    tax_amount = sum((x.tax_amount for x in lines), Decimal(0))
    who = index % 12
    return Invoice(
        source_id=f"d-{index}",
        number=f"{'FA' if supplier else 'FV'}{dt.date.today().year}-{index + 1:04d}",
        type=InvoiceType.SUPPLIER_INVOICE if supplier else InvoiceType.CUSTOMER_INVOICE,
        issue_date=dt.date(dt.date.today().year, 1, 1) + dt.timedelta(days=index * 3),
        currency="EUR",
        untaxed_amount=untaxed,
        tax_amount=tax_amount,
        total=untaxed + tax_amount,
        partner=Partner(source_id=f"p-{who}", name=f"Client {who} SARL"),
        lines=tuple(lines),
        updated_at=BASE_TIME + dt.timedelta(seconds=index),
    )


def build_demo_data() -> dict:
    """The demo's client, connections, flow (suggested mappings, enabled) and first sync; the
    objects the pages are measured on."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from connectors.models import Connection
    from connectors.services import client_create, connection_create
    from mappings.audit import acting_as
    from mappings.checklist import flow_setup_checklist
    from mappings.models import SyncFlow
    from mappings.services import (
        flow_create,
        flow_lookups_load,
        flow_mappings_suggest,
        flow_update,
    )
    from syncs.models import RunTrigger
    from syncs.services import flow_sync

    DemoSource.configure(count=INVOICES, attachments=False)
    DemoTarget.reset()
    with acting_as("bench pages"):
        client = client_create(name=CLIENT_NAME)
        connections = {
            kind: connection_create(
                client=client,
                name=label,
                kind=kind,
                provider=PROVIDER,
                auth_kind="api_key",
                settings={},
                credentials={"api_key": "bench"},
            )
            for kind, label in (
                ("invoicing", "Tryton invoicing"),
                ("accounting", "Tryton accounting"),
            )
        }
        Connection.objects.filter(pk__in=[c.pk for c in connections.values()]).update(
            last_check_ok=True, last_checked_at=timezone.now(), last_check_message="OK"
        )
        flow = flow_create(
            client=client,
            name=FLOW_NAME,
            invoicing_connection=connections["invoicing"],
            accounting_connection=connections["accounting"],
        )
        flow_mappings_suggest(flow=flow, rates=DEMO_RATES)
        flow = flow_update(
            flow=SyncFlow.objects.get(pk=flow.pk),
            data={"start_date": dt.date(dt.date.today().year - 1, 1, 1)},
        )
        flow_lookups_load(flow=flow)
        missing = [s.name for s in flow_setup_checklist(flow) if s.blocking]
        assert not missing, missing
        flow_update(flow=SyncFlow.objects.get(pk=flow.pk), data={"enabled": True})
        run = flow_sync(flow=SyncFlow.objects.get(pk=flow.pk), trigger=RunTrigger.COMMAND)
    assert run is not None and run.failed_count >= 1, run and run.counts()
    User = get_user_model()
    User.objects.create_superuser("admin", ADMIN_EMAIL, "bench-password-not-secret")
    failed = flow.records.filter(status="failed").order_by("pk").first()
    return {"client": client, "connections": connections, "flow": flow, "run": run,
            "failed": failed}  # fmt: skip


def page_urls(data: dict) -> dict[str, str]:
    from django.urls import reverse

    from mappings.models import ConfigChange

    flow, run, failed = data["flow"], data["run"], data["failed"]
    accounting = data["connections"]["accounting"]
    return {
        "home": reverse("admin:index"),
        "flows list": reverse("admin:mappings_syncflow_changelist"),
        "flow form": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        "flow preview": reverse("admin:mappings_syncflow_preview", args=[flow.pk]),
        "runs list": reverse("admin:syncs_syncrun_changelist"),
        "run": reverse("admin:syncs_syncrun_change", args=[run.pk]),
        "records list": reverse("admin:syncs_syncedrecord_changelist"),
        "failure review": reverse("admin:syncs_flow_failures", args=[flow.pk]),
        "failed record": reverse("admin:syncs_syncedrecord_change", args=[failed.pk]),
        "reconciliation": reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
        "flow dashboard": reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
        "connections list": reverse("admin:connectors_connection_changelist"),
        "connection form": reverse("admin:connectors_connection_change", args=[accounting.pk]),
        "configuration changes": reverse("admin:mappings_configchange_changelist"),
        "configuration change": reverse(
            "admin:mappings_configchange_change",
            args=[ConfigChange.objects.filter(flow=flow).order_by("-pk").first().pk],
        ),
    }


def walk_guided_setup(client, data: dict) -> dict[str, str]:
    """Through the guide's first four steps (POSTs) to a second, disabled flow; the URLs of
    every step."""
    from django.urls import reverse

    def post(step: str, values: dict) -> None:
        response = client.post(reverse("invsync_setup_step", args=[step]), values)
        assert response.status_code == 302, (step, response.status_code)

    post("client", {"client": data["client"].pk})
    post("invoicing", {"connection": data["connections"]["invoicing"].pk})
    post("accounting", {"connection": data["connections"]["accounting"].pk})
    post(
        "folder",
        {
            "folder": data["flow"].folder,
            "name": GUIDED_FLOW_NAME,
            "scope": "both",
            "start_date": dt.date(dt.date.today().year - 1, 1, 1).isoformat(),
        },
    )
    steps = ("client", "invoicing", "accounting", "folder", "mappings", "checklist", "preview",
             "enable")  # fmt: skip
    return {f"set-up: {step}": reverse("invsync_setup_step", args=[step]) for step in steps}


class Measured:
    def __init__(self, name: str, ms: float, cpu_ms: float, size: int, queries: int):
        self.name, self.ms, self.cpu_ms, self.size, self.queries = name, ms, cpu_ms, size, queries


def measure_page(client, name: str, url: str, repeat: int) -> Measured:
    from django.db import connection

    counter = {"n": 0}

    def count(execute, sql, params, many, context):
        counter["n"] += 1
        return execute(sql, params, many, context)

    response = client.get(url)  # warm: templates compiled, caches filled
    assert response.status_code == 200, (name, url, response.status_code)
    times, cpu = [], []
    for _ in range(repeat):
        counter["n"] = 0
        with connection.execute_wrapper(count):
            start, start_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
    return Measured(
        name, statistics.median(times), statistics.median(cpu), len(response.content), counter["n"]
    )


def measure_all(repeat: int) -> list[Measured]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    with registry.override([*registry.SHIPPED, DemoSource, DemoTarget]):
        data = build_demo_data()
        client = Client(HTTP_HOST="localhost")
        client.force_login(get_user_model().objects.get(email=ADMIN_EMAIL))
        urls = page_urls(data)
        urls.update(walk_guided_setup(client, data))
        return [measure_page(client, name, url, repeat) for name, url in urls.items()]


def measure(quick: bool, emit: Callable[[str, float, str], None]) -> None:
    results = measure_all(repeat=3 if quick else 9)
    for result in results:
        key = "page_" + result.name.replace(":", "").replace(" ", "_").replace("-", "_")
        emit(f"{key}_ms", round(result.ms, 1), "ms")
        # CPU time of this process: what the page costs, less swayed by other work on the machine.
        emit(f"{key}_cpu_ms", round(result.cpu_ms, 1), "ms")
        emit(f"{key}_kb", round(result.size / 1024, 1), "KB")
        emit(f"{key}_queries", result.queries, "queries")
    slowest = max(results, key=lambda r: r.ms)
    emit("page_slowest_ms", round(slowest.ms, 1), f"ms ({slowest.name})")
