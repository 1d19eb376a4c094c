"""Create or update a flow from a document written by export_flow."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mappings.audit import acting_as
from mappings.portable import PortableError, flow_import


class Command(BaseCommand):
    help = (
        "Create or update (by client and name) a sync flow from an export_flow document, "
        "replacing its mappings. Missing connections are created without credentials."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The JSON document ('-' reads stdin).")
        parser.add_argument("--client", metavar="NAME", help="Import into this client instead.")
        parser.add_argument(
            "--invoicing-connection", metavar="NAME", help="Use this invoicing connection's name."
        )
        parser.add_argument(
            "--accounting-connection", metavar="NAME", help="Use this accounting connection's name."
        )
        parser.add_argument("--name", metavar="NEW_NAME", help="Give the flow this name.")

    def handle(self, *args, **options):
        with acting_as("command import_flow"):
            return self._handle(**options)

    def _handle(self, **options):
        try:
            if options["file"] == "-":
                text = sys.stdin.read()
            else:
                text = Path(options["file"]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}.") from exc
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{options['file']} is not JSON: {exc}.") from exc
        try:
            result = flow_import(
                document=document,
                client_name=options["client"],
                invoicing_connection_name=options["invoicing_connection"],
                accounting_connection_name=options["accounting_connection"],
                flow_name=options["name"],
            )
        except PortableError as exc:
            raise CommandError(f"Invalid flow document: {exc}") from exc
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        verb = "Created" if result.created else "Updated"
        message = f"{verb} the flow {result.flow} (id {result.flow.pk})."
        self.stdout.write(self.style.SUCCESS(message))
