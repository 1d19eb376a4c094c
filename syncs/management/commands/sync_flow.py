from django.core.management.base import BaseCommand, CommandError

from mappings.models import SyncFlow
from mappings.selectors import flow_get_by_name_or_id
from syncs.models import RunStatus, RunTrigger
from syncs.services import flow_sync
from syncs.states import run_outcome_line


class Command(BaseCommand):
    help = "Run one flow now, in the foreground, and print its counts."

    def add_arguments(self, parser):
        parser.add_argument("flow", help="The flow's id or name (or 'Client/Flow').")

    def handle(self, *args, flow: str, **options):
        try:
            sync_flow = flow_get_by_name_or_id(flow)
        except SyncFlow.DoesNotExist:
            raise CommandError(f"No flow is named or numbered {flow!r}.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Syncing {sync_flow} …")

        def progress(run):
            self.stdout.write(
                f"  {run.processed} examined: {run.synced_count} synced, "
                f"{run.waiting_count} waiting, {run.failed_count} failed, "
                f"{run.skipped_count} skipped, {run.unchanged_count} unchanged"
            )

        run = flow_sync(flow=sync_flow, trigger=RunTrigger.COMMAND, progress=progress)
        if run is None:
            raise CommandError(f"{sync_flow} is already running elsewhere; try again later.")
        # The state as the admin shows it: "completed, 1 failed", never "succeeded".
        self.stdout.write(run_outcome_line(run))
        if run.status == RunStatus.FAILED:
            raise CommandError(f"{run.error_code}: {run.error_message}")
