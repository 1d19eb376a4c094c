import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from connectors.errors import InvsyncError
from mappings.models import SyncFlow
from mappings.selectors import flow_get_by_name_or_id
from syncs.reconciliation import flow_reconcile, report_to_table


class Command(BaseCommand):
    help = (
        "Compare a flow's source invoices of a period with what invsync wrote; exits 1 when "
        "something is unexplained."
    )

    def add_arguments(self, parser):
        parser.add_argument("flow", help="The flow's id or name (or 'Client/Flow').")
        parser.add_argument("--from", dest="start", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(self, *args, flow, start, end, format, **options):
        if end < start:
            raise CommandError(f"The period ends ({end}) before it starts ({start}).")
        try:
            sync_flow = flow_get_by_name_or_id(flow)
        except SyncFlow.DoesNotExist:
            raise CommandError(f"No flow is named or numbered {flow!r}.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            report = flow_reconcile(flow=sync_flow, start=start, end=end)
        except InvsyncError as error:
            raise CommandError(str(error)) from None
        if format == "json":
            self.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        else:
            self.stdout.write(report_to_table(report))
        if not report.balanced:
            raise CommandError("Unexplained differences.", returncode=1)
