"""Django's makemessages, also extracting ``N_("…")``: the marker connectors use for the
strings people read (setting labels, message templates) without importing Django
(connectors.messages.N_). ``bin/dev messages`` runs it."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_"]
