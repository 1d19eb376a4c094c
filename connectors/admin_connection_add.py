"""Adding a connection, first step: the client, a name, the tool (a connector of the registry, by
its display name, under its kind) and the authentication, among the ones that connector accepts.
A plain GET form: the page reloads with the chosen tool's authentications, and once the choice is
complete the add form (second step) opens with the tool's own settings and the authentication's
secret fields, everything typed carried over in its address."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors import registry
from connectors.base import ConnectionKind, Connector
from connectors.models import Connection
from connectors.selectors import client_list_for_user

KIND_GROUP_LABELS = {
    ConnectionKind.INVOICING: _("Invoicing tool (the source)"),
    ConnectionKind.ACCOUNTING: _("Accounting tool (the target)"),
}
AUTH_KIND_LABELS = dict(Connection._meta.get_field("auth_kind").choices)
# The second step's address carries the choice in these query parameters.
CHOICE_PARAMETERS = ("kind", "provider", "auth_kind")


def chosen_connector(kind: str | None, provider: str | None) -> type[Connector] | None:
    """The registry's connector of ``kind`` named ``provider`` (None: no such connector)."""
    try:
        return registry.get(str(provider or ""), ConnectionKind(str(kind or "")))
    except (KeyError, ValueError):
        return None


def complete_choice(data) -> tuple[type[Connector], str] | None:
    """(connector, auth kind) when ``data`` (a query) names an installed connector and one of the
    authentications it accepts; None otherwise."""
    connector = chosen_connector(data.get("kind"), data.get("provider"))
    auth_kind = str(data.get("auth_kind") or "")
    if connector is None or auth_kind not in {kind.value for kind in connector.auth_kinds}:
        return None
    return connector, auth_kind


def _tool_choices(kind: str | None) -> list:
    groups = [
        (
            KIND_GROUP_LABELS[connection_kind],
            [
                (f"{connection_kind.value}:{key}", name)
                for key, name in registry.choices(connection_kind)
            ],
        )
        for connection_kind in ConnectionKind
        if registry.choices(connection_kind) and kind in (None, "", connection_kind.value)
    ]
    return [("", "---------"), *groups]


class ConnectionStartForm(forms.Form):
    """The first step's choices. ``tool`` is ``<kind>:<provider key>`` (one key may serve both
    kinds, e.g. Tryton); the authentication is offered once the tool is known."""

    client = forms.ModelChoiceField(
        label=_("Client"), queryset=None, help_text=_("The company whose books this tool holds.")
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=Connection._meta.get_field("name").max_length,
        help_text=_("How this connection is shown, e.g. “Pennylane books”."),
    )
    tool = forms.ChoiceField(label=_("Tool"), help_text=_("The invoicing or accounting tool."))
    auth_kind = forms.ChoiceField(
        label=_("Authentication"),
        widget=forms.RadioSelect,
        help_text=_("How invsync signs in to the tool (only the ones it accepts)."),
    )

    def __init__(self, data, *, user, kind: str | None = None):
        super().__init__(data)
        self.fields["client"].queryset = client_list_for_user(user)
        self.fields["tool"].choices = _tool_choices(kind)
        connector = self.connector_from_data()
        if connector is None:
            # Offered once the tool is chosen: the page reloads with its authentications.
            del self.fields["auth_kind"]
        else:
            self.fields["auth_kind"].choices = [
                (auth.value, AUTH_KIND_LABELS[auth.value]) for auth in connector.auth_kinds
            ]

    def connector_from_data(self) -> type[Connector] | None:
        kind, _sep, provider = str((self.data or {}).get("tool") or "").partition(":")
        return chosen_connector(kind, provider)

    def clean(self):
        cleaned = super().clean()
        connector = self.connector_from_data()
        # The tool chosen, its authentication not yet: the page offers them, no error.
        self.auth_pending = False
        if connector is not None and len(connector.auth_kinds) == 1:
            cleaned["auth_kind"] = connector.auth_kinds[0].value
            self.errors.pop("auth_kind", None)
        elif connector is not None and not self.data.get("auth_kind"):
            self.errors.pop("auth_kind", None)
            self.auth_pending = True
        return cleaned

    def next_query(self) -> str:
        """The second step's query: everything chosen and typed here."""
        kind, _sep, provider = self.cleaned_data["tool"].partition(":")
        return urlencode(
            {
                "client": self.cleaned_data["client"].pk,
                "name": self.cleaned_data["name"],
                "kind": kind,
                "provider": provider,
                "auth_kind": self.cleaned_data["auth_kind"],
            }
        )


def start_query(data) -> dict[str, str]:
    """The first step's query for a second step's address (its "Change" link)."""
    query = {name: str(data.get(name) or "") for name in ("client", "name", "auth_kind")}
    query["tool"] = f"{data.get('kind') or ''}:{data.get('provider') or ''}"
    return query


def connection_start_view(model_admin: admin.ModelAdmin, request):
    """GET: the first step (reloading while the choice is incomplete), then to the second."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    data = request.GET.copy()
    if "tool" not in data and data.get("provider"):
        # A link that names the kind and provider (e.g. from the guided set-up).
        data["tool"] = f"{data.get('kind') or ''}:{data['provider']}"
    # A link may name the client, the name or the kind without submitting the step: no errors yet.
    submitted = bool(data.get("tool")) or "_next" in data
    form = ConnectionStartForm(
        data if submitted else None, user=request.user, kind=request.GET.get("kind")
    )
    changing = "_change" in request.GET  # back from the second step: show the choice
    if submitted and form.is_valid() and not form.auth_pending and not changing:
        add_url = reverse("admin:connectors_connection_add")
        return HttpResponseRedirect(f"{add_url}?{form.next_query()}")
    if not submitted:
        form = ConnectionStartForm(None, user=request.user, kind=request.GET.get("kind"))
        form.initial = {name: request.GET.get(name) for name in ("client", "name")}
    opts = Connection._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Add connection: the tool and how to sign in"),
        "form": form,
        "opts": opts,
        "has_view_permission": model_admin.has_view_permission(request),
        "step_hint": gettext(
            "Next, the tool's own settings and the secrets of the authentication chosen."
        ),
        "auth_pending": getattr(form, "auth_pending", False),
    }
    return TemplateResponse(request, "admin/connectors/connection_add_start.html", context)
