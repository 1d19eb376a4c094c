"""Create or update a flow from a document written by export_flow."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connectors.jsonfiles import JsonFileError, one_line, read_json_file
from mappings.audit import acting_as
from mappings.portable import PortableError, flow_import

# Like preview_posting: 2 when the input cannot be used (unreadable, not JSON, not a flow document).
EXIT_INVALID_INPUT = 2


def _unreadable(path: str, error: JsonFileError) -> str:
    where = "standard input" if path == "-" else path
    if error.kind == "read":
        return f"Cannot read {where}: {error.detail}."
    if error.kind == "json":
        return f"{where} is not JSON: {error.detail}."
    return f"{where} is not a flow document we can read: {error.detail}."


class Command(BaseCommand):
    help = (
        "Create or update (by client and name) a sync flow from an export_flow document, "
        "replacing its mappings. Missing connections are created without credentials. A new "
        "flow is created disabled; an existing one keeps its enabled state."
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
        path = options["file"]
        try:
            # Floats, not Decimal: the document's values go to model fields and JSON settings.
            document = read_json_file(path, exact_numbers=False)
        except JsonFileError as exc:
            raise CommandError(_unreadable(path, exc), returncode=EXIT_INVALID_INPUT) from None
        try:
            result = flow_import(
                document=document,
                client_name=options["client"],
                invoicing_connection_name=options["invoicing_connection"],
                accounting_connection_name=options["accounting_connection"],
                flow_name=options["name"],
            )
        except PortableError as exc:
            raise CommandError(
                f"Invalid flow document: {one_line(str(exc))}", returncode=EXIT_INVALID_INPUT
            ) from None
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        verb = "Created" if result.created else "Updated"
        message = f"{verb} the flow {result.flow} (id {result.flow.pk})."
        if not result.flow.enabled:
            message += (
                " It is disabled: review it, then enable it in the admin (an import never "
                "enables a flow)."
            )
        self.stdout.write(self.style.SUCCESS(message))
