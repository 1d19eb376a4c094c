"""Error reports (the DEBUG error page, the mails to ADMINS) never show a typed secret.

Django's :class:`SafeExceptionReporterFilter` hides the POST parameters a view marks with
``sensitive_post_parameters`` and the variables marked with ``sensitive_variables``, but only when
DEBUG is off; and a typed password also travels in plain variables (a form's cleaned data, the
credentials handed to a service) that nobody marks. This filter is always active, and it hides
every frame variable whose text holds the value of a sensitive POST parameter of the request.
"""

from __future__ import annotations

import json
from typing import Any

from django.template.defaultfilters import pprint
from django.views.debug import SafeExceptionReporterFilter


def typed_secrets(request) -> set[str]:
    """The values of the request's POST parameters its view marked sensitive (and their quoted
    forms, as a repr or JSON would show them)."""
    names = getattr(request, "sensitive_post_parameters", None) if request is not None else None
    if not names:
        return set()
    try:
        post = request.POST
    except Exception:  # noqa: BLE001 - a body Django refused (too big...): nothing was read
        return set()
    keys = list(post) if names == "__ALL__" else [name for name in names if name in post]
    secrets: set[str] = set()
    for key in keys:
        for value in post.getlist(key):
            if value:
                secrets |= {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    return secrets


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        # Also on the DEBUG page: a developer's screen is no place for a customer's password.
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = typed_secrets(request)
        if not secrets:
            return variables
        return [(name, self._hidden_if_secret(value, secrets)) for name, value in variables]

    def _hidden_if_secret(self, value: Any, secrets: set[str]) -> Any:
        if value == self.cleansed_substitute:
            return value
        try:
            text = pprint(value)  # as the report shows it
        except Exception:  # noqa: BLE001 - a value that cannot be shown is not shown
            return self.cleansed_substitute
        return self.cleansed_substitute if any(s in text for s in secrets) else value
