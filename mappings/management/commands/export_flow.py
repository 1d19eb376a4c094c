"""Write a flow's whole configuration (without credentials) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mappings.models import SyncFlow
from mappings.portable import flow_export
from mappings.selectors import flow_get_by_name_or_id


class Command(BaseCommand):
    help = (
        "Write a sync flow's configuration, connections (never their credentials) and mappings "
        "as JSON, for import_flow."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "flow", metavar="NAME_OR_ID", help="The flow's id, name, or 'Client name/Flow name'."
        )
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of standard output."
        )

    def handle(self, *args, **options):
        try:
            flow = flow_get_by_name_or_id(options["flow"])
        except (SyncFlow.DoesNotExist, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(flow_export(flow=flow), indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote the configuration of {flow} to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
