"""The staff roles, as Django groups, and the permissions each one holds.

A role says what a user may do; Client.members says on which clients' objects. The groups are
created by the data migrations connectors/0002_roles and later ones, the latest holding a copy of
these lists (migrations never import app code that may change later): a change here needs a new
migration, and tests/integration/test_access.py fails until it has one.
"""

from __future__ import annotations

ACCOUNTANT = "Accountant"
OPERATOR = "Operator"
VIEWER = "Viewer"

ROLES = (ACCOUNTANT, OPERATOR, VIEWER)

# "app_label.codename", as user.has_perm() takes them.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Configures: connections, flows and their mappings. Reads runs and records; deletes a partner
    # link to have the next invoice match (or create) the partner again.
    ACCOUNTANT: (
        "connectors.view_client",
        "connectors.view_connection",
        "connectors.add_connection",
        "connectors.change_connection",
        "connectors.delete_connection",
        "mappings.view_syncflow",
        "mappings.add_syncflow",
        "mappings.change_syncflow",
        "mappings.delete_syncflow",
        "mappings.view_vatmapping",
        "mappings.add_vatmapping",
        "mappings.change_vatmapping",
        "mappings.delete_vatmapping",
        "mappings.view_journalmapping",
        "mappings.add_journalmapping",
        "mappings.change_journalmapping",
        "mappings.delete_journalmapping",
        "syncs.view_syncrun",
        "syncs.view_syncedrecord",
        "syncs.view_partnerlink",
        "syncs.delete_partnerlink",
        "mappings.view_configchange",
    ),
    # Reviews runs and records: starts runs ("Sync now" adds a run), retries records and sets their
    # overrides (changing a record); reads the configuration.
    OPERATOR: (
        "connectors.view_client",
        "connectors.view_connection",
        "mappings.view_syncflow",
        "mappings.view_vatmapping",
        "mappings.view_journalmapping",
        "syncs.view_syncrun",
        "syncs.add_syncrun",
        "syncs.view_syncedrecord",
        "syncs.change_syncedrecord",
        "mappings.view_configchange",
    ),
    # Reads everything, changes nothing.
    VIEWER: (
        "connectors.view_client",
        "connectors.view_connection",
        "mappings.view_syncflow",
        "mappings.view_vatmapping",
        "mappings.view_journalmapping",
        "syncs.view_syncrun",
        "syncs.view_syncedrecord",
        "syncs.view_partnerlink",
        "mappings.view_configchange",
    ),
}
