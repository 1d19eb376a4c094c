"""The one-command local demo: a Tryton with sample invoices, a configured flow, a first sync, and
the admin and the background workers running. Everything invsync stores is in SQLite under var/ and
the django-q2 ORM broker; Tryton runs on its own PostgreSQL cluster under var/tryton."""

from __future__ import annotations

import datetime as dt
import secrets
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

try:
    from connectors.devtools.einvoices import company_party, demo_einvoices
    from connectors.devtools.tryton.sandbox import SandboxError, TrytonSandbox
except ModuleNotFoundError as error:  # an installed wheel: the development tools are not in it
    if not (error.name or "").startswith("connectors.devtools"):
        raise
    SandboxError = TrytonSandbox = company_party = demo_einvoices = None
from connectors.canonical import Direction
from connectors.models import Client, Connection
from connectors.selectors import connector_for
from connectors.services import (
    client_create,
    connection_check,
    connection_create,
    connection_update,
    inbox_upload,
)
from mappings.audit import acting_as
from mappings.checklist import flow_setup_checklist
from mappings.models import SyncFlow
from mappings.services import (
    flow_create,
    flow_lookups_load,
    flow_mappings_replace,
    flow_mappings_suggest,
    flow_update,
)
from syncs.models import RunTrigger
from syncs.services import flow_sync
from syncs.states import run_outcome_line

CLIENT_NAME = "Demo company"
FLOW_NAME = "Tryton invoicing to Tryton accounting"
INBOX_NAME = "E-invoice inbox"
EINVOICE_FLOW_NAME = "E-invoices to Tryton accounting"
ADMIN_USER = "admin"
# Sign-in is by email (allauth), so the banner shows this.
ADMIN_EMAIL = "admin@example.com"
# The demo maps France's everyday rates and leaves the rest (2.1 % press, old rates) to a person,
# so the first sync shows one failed invoice and how to fix it.
DEMO_RATES = ("20", "10", "5.5", "0")
# The French rates the demo's e-invoices state (connectors/devtools/einvoices).
EINVOICE_RATES = ("20", "10", "5.5")


NEEDS_CHECKOUT = (
    "The demo needs a source checkout of invsync (clone the repository, then run `bin/dev demo`): "
    "it builds a local Tryton with the development tools in connectors/devtools, which the "
    "installed package does not include."
)


class Command(BaseCommand):
    help = (
        "Set up a local demo (Tryton with sample invoices, a configured flow), run a first sync, "
        "then serve the admin and run the background workers until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="The admin's port (8000).")
        parser.add_argument("--no-serve", action="store_true", help="Set up and sync, then exit.")
        parser.add_argument(
            "--tryton-root",
            default=str(settings.VAR_DIR / "tryton"),
            help="Where the local Tryton lives (var/tryton).",
        )
        parser.add_argument(
            "--tryton-port",
            type=int,
            default=None,
            help="The local Tryton's port (default: the previous one, else 8765, else a free one).",
        )

    def handle(self, *args, **options):
        if TrytonSandbox is None:
            raise CommandError(NEEDS_CHECKOUT)
        try:
            self.run_demo(**options)
        except KeyboardInterrupt:
            # Ctrl-C while setting up: whatever was done is kept and the next run resumes.
            self.stderr.write("\nInterrupted. Run `bin/dev demo` again to resume.")
            raise SystemExit(130) from None
        except SandboxError as error:
            raise CommandError(f"The local Tryton could not be started: {error}") from None

    def run_demo(
        self,
        *,
        port: int,
        no_serve: bool,
        tryton_root: str,
        tryton_port: int | None = None,
        **options,
    ) -> None:
        self.step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)

        self.step("Provisioning the local Tryton (first time: a few minutes)")
        sandbox = TrytonSandbox(root=Path(tryton_root), server_port=tryton_port)
        # demo_up proves the server ours (our trytond bound to the port, our password accepted)
        # or fails: the demo never writes into another program's Tryton.
        state = sandbox.demo_up()
        tryton_password = Path(state["password_file"]).read_text().strip()
        self.stdout.write(f"  Tryton at {state['url']} (databases {state['databases']})")

        self.step("Creating the demo client, connections and flow")
        with acting_as("command demo"):
            flow = self.ensure_flow(state, tryton_password)
            einvoice_flow = self.ensure_einvoice_flow(flow, sandbox.manifest("accounting"))
        login, password = self.ensure_admin_user()

        self.step("First sync")
        self.first_sync((flow, einvoice_flow))

        url = f"http://127.0.0.1:{port}/admin/"
        banner = (
            f"\ninvsync admin: {url}\nlogin: {login}   password: {password}\n"
            f"Tryton (JSON-RPC): {state['url']}  login {state['login']} / {tryton_password}"
            f"  (random, stored in {state['password_file']})\n"
        )
        if no_serve:
            self.stdout.write(banner)
            return
        self.serve(port, banner, Path(tryton_root))

    def step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {text}"))

    def first_sync(self, flows) -> None:
        """Run each flow once and say how it went, as the admin reads it ("completed, 1
        failed"), never the stored status."""
        for each in flows:
            run = flow_sync(flow=each, trigger=RunTrigger.COMMAND)
            if run is None:
                self.stdout.write(f"  {each.name}: another run is in progress; skipped.")
                continue
            self.stdout.write(f"  {each.name}: {run_outcome_line(run)}")
            if run.error_code:
                self.stdout.write(f"  {run.error_code}: {run.error_message}")

    def ensure_flow(self, state: dict, tryton_password: str) -> SyncFlow:
        client = Client.objects.filter(name=CLIENT_NAME).first() or client_create(name=CLIENT_NAME)
        connections = {}
        for kind, role, label in (
            ("invoicing", "invoicing", "Tryton invoicing"),
            ("accounting", "accounting", "Tryton accounting"),
        ):
            values = {"url": state["url"], "database": state["databases"][role]}
            credentials = {"username": state["login"], "password": tryton_password}
            connection = Connection.objects.filter(client=client, name=label).first()
            if connection is None:
                connection = connection_create(
                    client=client, name=label, kind=kind, provider="tryton",
                    auth_kind="credentials", settings=values, credentials=credentials,
                )  # fmt: skip
            elif connection.settings != values or connection.credentials != credentials:
                # The local Tryton may come back on another port, or with its random password
                # (demo databases made before it existed get it on the next `up`).
                connection_update(
                    connection=connection, data={"settings": values}, credentials=credentials
                )
            connections[kind] = connection
        flow = SyncFlow.objects.filter(client=client, name=FLOW_NAME).first()
        if flow is None:
            flow = flow_create(
                client=client,
                name=FLOW_NAME,
                invoicing_connection=connections["invoicing"],
                accounting_connection=connections["accounting"],
            )
            suggestions = flow_mappings_suggest(flow=flow, rates=DEMO_RATES)
            demo_rates = {Decimal(r) for r in DEMO_RATES}
            left = sorted(
                {
                    f"{v.direction.value} {v.rate} %"
                    for v in suggestions.vat
                    if v.code is None or v.rate not in demo_rates
                }
            )
            if left:
                self.stdout.write(f"  Left for you to map in the admin: {', '.join(left)}.")
            # The sample goes back to last year: start there, check both connections (two steps
            # of the checklist), then enable the flow so its schedule runs.
            flow_update(
                flow=SyncFlow.objects.get(pk=flow.pk),
                data={"start_date": dt.date(dt.date.today().year - 1, 1, 1)},
            )
            for connection in connections.values():
                check = connection_check(connection=connection)
                self.stdout.write(f"  Test connection {connection.name}: {check.message}")
            flow = SyncFlow.objects.get(pk=flow.pk)
            flow_lookups_load(flow=flow)  # the checklist checks values against the tool's lists
            missing = [s.name for s in flow_setup_checklist(flow) if s.blocking]
            if missing:
                self.stdout.write(
                    f"  The flow stays disabled until its setup is complete: {', '.join(missing)}."
                )
            else:
                flow_update(flow=flow, data={"enabled": True})
                self.stdout.write("  Setup complete: the flow is enabled and scheduled hourly.")
            flow.refresh_from_db()
        return flow

    def ensure_einvoice_flow(self, flow: SyncFlow, manifest: dict) -> SyncFlow:
        """An e-invoice inbox of the demo company holding a few suppliers' e-invoices (a
        Factur-X PDF, a CII, a UBL invoice and credit note: connectors/devtools/einvoices), and
        a flow from it to the same Tryton accounting, so the first sync books them too."""
        client = flow.client
        company = manifest["company"]
        inbox = Connection.objects.filter(client=client, name=INBOX_NAME).first()
        if inbox is None:
            inbox = connection_create(
                client=client, name=INBOX_NAME, kind="invoicing", provider="einvoice_inbox",
                auth_kind="none",
                settings={"siren": company["fr_siren"], "vat_number": company["eu_vat"],
                          "company_name": company["name"]},
            )  # fmt: skip
        einvoice_flow = SyncFlow.objects.filter(client=client, name=EINVOICE_FLOW_NAME).first()
        if einvoice_flow is not None:
            return einvoice_flow
        # Dated from the sandbox's day, like its sample invoices: in its open fiscal years.
        today = dt.date.fromisoformat(manifest["today"])
        receipts = inbox_upload(
            connection=inbox, files=demo_einvoices(today, company_party(company))
        )
        self.stdout.write(f"  {INBOX_NAME}: {len(receipts)} e-invoices received.")
        einvoice_flow = flow_create(
            client=client,
            name=EINVOICE_FLOW_NAME,
            invoicing_connection=inbox,
            accounting_connection=flow.accounting_connection,
        )
        flow_mappings_suggest(flow=einvoice_flow, rates=DEMO_RATES)
        # Suppliers' invoices only: the purchase VAT the files state, mapped as a person would.
        flow_update(
            flow=SyncFlow.objects.get(pk=einvoice_flow.pk),
            data={"start_date": dt.date(today.year - 1, 1, 1), "scope": "purchases"},
        )
        einvoice_flow = SyncFlow.objects.get(pk=einvoice_flow.pk)
        self.map_einvoice_vat(einvoice_flow)
        flow_lookups_load(flow=einvoice_flow)
        missing = [s.name for s in flow_setup_checklist(einvoice_flow) if not s.done]
        if missing:
            self.stdout.write(
                f"  {EINVOICE_FLOW_NAME} stays disabled until its setup is complete: "
                f"{', '.join(missing)}."
            )
        else:
            flow_update(flow=einvoice_flow, data={"enabled": True})
        einvoice_flow.refresh_from_db()
        return einvoice_flow

    def map_einvoice_vat(self, flow: SyncFlow) -> None:
        """The French rates of the demo's e-invoices (``S/20``, ``S/10``, ``S/5.5``) mapped to
        the chart's purchase tax on goods: the chart has a goods, a services and a fixed-assets
        tax at each rate, a choice the suggestions leave to a person."""
        target = connector_for(flow.accounting_connection)
        try:
            codes = target.list_vat_codes(flow.folder)
        finally:
            target.close()
        rows = list(
            flow.vat_mappings.values(
                "direction", "source_rate", "source_tax_id", "target_code", "collected_code"
            )
        )
        for rate in EINVOICE_RATES:
            goods = sorted(
                (
                    code
                    for code in codes
                    if code.direction is Direction.PURCHASES
                    and code.rate == Decimal(rate)
                    and "achat de biens" in code.name.lower()
                ),
                key=lambda code: code.code,
            )
            if goods:
                rows.append(
                    {"direction": Direction.PURCHASES.value, "source_rate": Decimal(rate),
                     "source_tax_id": f"S/{rate}", "target_code": goods[0].code}
                )  # fmt: skip
        flow_mappings_replace(
            flow=flow,
            vat_mappings=rows,
            journal_mappings=list(flow.journal_mappings.values("source_journal", "target_journal")),
        )

    def ensure_admin_user(self) -> tuple[str, str]:
        """A superuser for the demo, its password kept in var/ so the banner can show it again."""
        password_file = settings.VAR_DIR / "demo-admin-password"
        User = get_user_model()
        user = User.objects.filter(username=ADMIN_USER).first()
        if user is None or not password_file.exists() or user.email != ADMIN_EMAIL:
            password = secrets.token_urlsafe(12)
            if user is None:
                User.objects.create_superuser(ADMIN_USER, ADMIN_EMAIL, password)
            else:
                user.email = ADMIN_EMAIL
                user.set_password(password)
                user.save()
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        return ADMIN_EMAIL, password_file.read_text().strip()

    def serve(self, port: int, banner: str, tryton_root: Path) -> None:
        """Run the web server and the workers until Ctrl-C (or SIGTERM), then stop both.

        They run in sessions of their own, so a Ctrl-C in the terminal reaches only this
        process, which stops them in order (no half-stopped worker printing a traceback).
        """
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        stop = {"now": False}

        def request_stop(signum, frame):
            stop["now"] = True

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        processes: list[subprocess.Popen] = []
        try:
            for command in (["runserver", f"127.0.0.1:{port}", "--noreload"], ["qcluster"]):
                if stop["now"]:
                    break
                processes.append(
                    subprocess.Popen([*manage, *command], start_new_session=True)  # noqa: S603
                )
            self.stdout.write(banner + "Press Ctrl-C to stop.\n")
            while not stop["now"]:
                if any(p.poll() is not None for p in processes):
                    raise CommandError("The web server or the workers stopped; see above.")
                time.sleep(0.2)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(
            "Stopped. Tryton keeps running in the background; stop it with: "
            f".venv/bin/python -m connectors.devtools.tryton.sandbox down --root {tryton_root}"
        )
