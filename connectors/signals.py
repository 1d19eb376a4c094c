"""What a change to clients and connections tells the layers above (mappings, syncs): connectors
never import them, so they listen here (their AppConfig.ready connects the receivers).

Both are sent inside the service's transaction, so a receiver that fails undoes the change."""

from __future__ import annotations

from django.dispatch import Signal

# connection_update changed a connection: ``connection`` (saved) and ``address_note``: None, or
# when its address changed and the credentials were entered again, what the audit records of it
# ({name: {"from": ..., "to": ...}}, never a secret).
connection_changed = Signal()

# client_delete is about to delete ``client``: what hangs on it above connectors (its flows, their
# schedules) goes first.
client_deleting = Signal()
