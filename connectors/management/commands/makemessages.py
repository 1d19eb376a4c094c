"""Django's makemessages, also extracting ``N_("…")``, the marker connectors use for the
strings people read (setting labels, message templates) without importing Django
(connectors.messages.N_), and ``gettext_now("…")`` (connectors/admin.py's name for gettext beside
its gettext_lazy ``_``). ``bin/dev messages`` runs it."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [
        *makemessages.Command.xgettext_options,
        "--keyword=N_",
        "--keyword=gettext_now",
    ]
