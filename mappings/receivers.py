"""The flows' side of changes to clients and connections (connectors.signals; connected by
MappingsConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from connectors.signals import client_deleting, connection_changed
from mappings.audit import config_change_note
from mappings.services import flow_config_changed, flow_delete


@receiver(connection_changed, dispatch_uid="mappings.flows_follow_connection")
def flows_follow_connection(sender, *, connection, address_note=None, **kwargs) -> None:
    """Every flow using the connection gets a new configuration version (its failed records are
    retried), and an address change with re-entered credentials is noted in its audit."""
    for flow in {*connection.flows_as_source.all(), *connection.flows_as_target.all()}:
        flow_config_changed(flow=flow)
        if address_note is not None:
            role = "invoicing" if flow.invoicing_connection_id == connection.pk else "accounting"
            config_change_note(
                flow=flow, changes={f"{role} connection {k}": v for k, v in address_note.items()}
            )


@receiver(client_deleting, dispatch_uid="mappings.flows_go_with_client")
def flows_go_with_client(sender, *, client, **kwargs) -> None:
    """The client's flows are deleted through flow_delete (their schedules and audit too)."""
    for flow in client.flows.all():
        flow_delete(flow=flow)
