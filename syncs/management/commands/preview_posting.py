"""``manage.py preview_posting INVOICE.json --config CONFIG.json [--format json|table]``

Runs the posting engine on one invoice offline, as the posting-preview contract promises: no
network, no database. Exit codes are part of the contract: 0 when an entry is produced (or the
invoice is skipped or waiting), 3 when the engine rejects it with a catalogue code, 2 on unreadable
or invalid input.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.jsonfiles import JsonFileError, one_line, read_json_file
from syncs.engine import Rejected, build_posting
from syncs.serialization import (
    InputError,
    config_from_json,
    invoice_from_json,
    result_to_json,
    result_to_table,
)

EXIT_REJECTED = 3
EXIT_INVALID_INPUT = 2


def _read_json(path: str, what: str) -> Any:
    try:
        # Amounts as Decimal: one written as 120.10 must not become a float.
        return read_json_file(path, exact_numbers=True)
    except JsonFileError as error:
        problem = {"read": "cannot be read", "json": "invalid JSON"}.get(error.kind)
        detail = f"{problem}: {error.detail}" if problem else error.detail
        raise CommandError(f"{what} file {path}: {detail}", returncode=EXIT_INVALID_INPUT) from None


def _invalid(what: str, path: str, error: InputError) -> CommandError:
    where = f"field {error.field}: " if error.field else ""
    return CommandError(
        f"{what} file {path}: {one_line(where + error.problem)}", returncode=EXIT_INVALID_INPUT
    )


class Command(BaseCommand):
    help = (
        "Show the journal entry the posting engine would produce for one invoice (INVOICE.json) "
        "under one flow configuration (CONFIG.json), without network or database. Exits 0 when an "
        "entry is produced or the invoice is skipped/waiting, 3 when the engine rejects it, 2 on "
        "invalid input."
    )
    # An offline preview must work whatever state the installation is in: no system checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("invoice", metavar="INVOICE.json", help="The canonical invoice.")
        parser.add_argument(
            "--config",
            required=True,
            metavar="CONFIG.json",
            help="The flow configuration and the target lookups it is checked against.",
        )
        parser.add_argument(
            "--format",
            choices=("json", "table"),
            default="json",
            help="json (the contract's output, the default) or table (for people).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        invoice_path, config_path = options["invoice"], options["config"]
        invoice_data = _read_json(invoice_path, "INVOICE")
        config_data = _read_json(config_path, "CONFIG")
        try:
            invoice = invoice_from_json(invoice_data)
        except InputError as error:
            raise _invalid("INVOICE", invoice_path, error) from error
        try:
            config = config_from_json(config_data)
        except InputError as error:
            raise _invalid("CONFIG", config_path, error) from error

        result = build_posting(invoice, config)

        if options["format"] == "table":
            self.stdout.write(result_to_table(result))
        else:
            self.stdout.write(json.dumps(result_to_json(result), indent=2, ensure_ascii=False))
        if isinstance(result, Rejected):
            self.stdout.flush()
            raise CommandError(
                f"the engine rejected the invoice: {result.code}", returncode=EXIT_REJECTED
            )
