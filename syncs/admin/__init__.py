"""Runs, records and partner links in the admin: read-only logs (as django-q2 shows its tasks),
with the catalogue's resolution beside every failure, and the pages staff work from:

- runs.py: the run log and a run's progress (``admin:syncs_syncrun_progress``);
- records.py: the record log, a record's page (retry, line overrides), the entry preview;
- failures.py: the failure review (``admin:syncs_failures``, per flow
  ``admin:syncs_flow_failures``);
- dashboards.py: the dashboards (``admin:syncs_dashboards``, ``admin:syncs_flow_dashboard``) and the
  reconciliation; widgets.py: the daily chart;
- partner_links.py: the partner links; common.py: what these pages share;
- flows.py: the flow's page (``admin:mappings_syncflow_*``: configuration, mapping inlines,
  checklist, preview, Sync now / retry actions).

Every write goes through syncs.services; every view is scoped to the user's clients (a flow or a
record of another client is a 404) and needs the view permission (retrying: change records).
Importing the package registers the ModelAdmins."""

from syncs.admin import flows, partner_links, records, runs

__all__ = ["flows", "partner_links", "records", "runs"]
