"""The guided set-up (admin/setup/): one path from nothing to an enabled flow.

client → invoicing connection → accounting connection → folder → mappings (pre-filled by
mappings.services.flow_mappings_suggest, the service of the flow form's "suggest") → checklist →
preview → enable. Back and next on every step.

Where the state lives: what is chosen before the flow exists (client, connections, folder and
name) is kept in the session under ``SESSION_KEY``; from the folder step on, the flow itself
(created disabled) holds it, and the session keeps its id. A refused step shows its page again
with everything typed. Every write goes through the services (connectors.services,
mappings.services); the existing flow form stays for edits."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from connectors.admin import RETURN_AFTER_ADD
from connectors.base import AuthKind, ConnectionKind
from connectors.errors import InvsyncError, error_info
from connectors.models import Client, Connection
from connectors.oauth_admin import JUST_CONNECTED, connect_url
from connectors.selectors import client_list_for_user, connector_for
from connectors.services import client_create
from connectors.token_store import stored_tokens
from mappings.checklist import StepState, flow_setup_checklist
from mappings.lookups import lookup_names
from mappings.models import SyncFlow
from mappings.overlaps import describe_flow, flows_sharing_ledger
from mappings.services import flow_create, flow_lookups_load, flow_mappings_suggest, flow_update
from syncs.preview import flow_preview

SESSION_KEY = "invsync_setup"
# How many invoices the enable step reads ahead to count the first run's entries.
COUNT_LIMIT = 1000

STEPS = (
    ("client", gettext_lazy("Client")),
    ("invoicing", gettext_lazy("Invoicing connection")),
    ("accounting", gettext_lazy("Accounting connection")),
    ("folder", gettext_lazy("Folder")),
    ("mappings", gettext_lazy("Mappings")),
    ("checklist", gettext_lazy("Checklist")),
    ("preview", gettext_lazy("Preview")),
    ("enable", gettext_lazy("Enable")),
)
STEP_KEYS = tuple(key for key, _label in STEPS)
CONNECTION_STEPS = {"invoicing": ConnectionKind.INVOICING, "accounting": ConnectionKind.ACCOUNTING}


def may_set_up(user) -> bool:
    """Staff who may add flows."""
    return bool(user.is_active and user.is_staff and user.has_perm("mappings.add_syncflow"))


class ClientStepForm(forms.Form):
    client = forms.ModelChoiceField(label=gettext_lazy("Client"), queryset=None, required=False)
    new_client = forms.CharField(
        label=gettext_lazy("Or a new client"),
        max_length=Client._meta.get_field("name").max_length,
        required=False,
        help_text=gettext_lazy("The company whose books are synced."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["client"].queryset = client_list_for_user(user).order_by("name")
        if not user.has_perm("connectors.add_client"):
            del self.fields["new_client"]

    def clean(self):
        cleaned = super().clean()
        chosen, typed = cleaned.get("client"), (cleaned.get("new_client") or "").strip()
        if chosen and typed:
            raise ValidationError(_("Pick a client or type a new one, not both."))
        if not chosen and not typed:
            raise ValidationError(_("Pick a client or type the name of a new one."))
        return cleaned


class ConnectionStepForm(forms.Form):
    connection = forms.ModelChoiceField(
        label=gettext_lazy("Connection"), queryset=None, widget=forms.RadioSelect, empty_label=None
    )

    def __init__(self, *args, client: Client, kind: ConnectionKind, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = Connection.objects.filter(
            client=client, kind=kind
        ).order_by("name")


class FolderStepForm(forms.Form):
    folder = forms.ChoiceField(label=gettext_lazy("Folder"), widget=forms.RadioSelect)
    name = forms.CharField(
        label=gettext_lazy("Flow name"),
        max_length=SyncFlow._meta.get_field("name").max_length,
        help_text=gettext_lazy("How this flow is shown, e.g. “Sales to the books”."),
    )

    def __init__(self, *args, folders, **kwargs):
        super().__init__(*args, **kwargs)
        # What to sync and from when: the flow's own fields, with their checks.
        self.fields["scope"] = SyncFlow._meta.get_field("scope").formfield()
        self.fields["start_date"] = SyncFlow._meta.get_field("start_date").formfield(
            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        )
        self.folders = {folder.id: folder for folder in folders}
        self.fields["folder"].choices = [(folder.id, folder.name) for folder in folders]


class EnableStepForm(forms.Form):
    confirm = forms.BooleanField(
        label=gettext_lazy("I have read the above: enable the flow"), required=True
    )


class GuidedSetup:
    """The views of the guided set-up, mounted on the admin site (see :func:`setup_urls`)."""

    def __init__(self, site: admin.AdminSite):
        self.site = site

    # -- state ------------------------------------------------------------------------------

    def state(self, request) -> dict:
        return request.session.setdefault(SESSION_KEY, {})

    def save_state(self, request, **values) -> None:
        state = self.state(request)
        state.update(values)
        request.session[SESSION_KEY] = state
        request.session.modified = True

    def client(self, request) -> Client | None:
        client_id = self.state(request).get("client")
        if not client_id:
            return None
        return client_list_for_user(request.user).filter(pk=client_id).first()

    def connection(self, request, kind: ConnectionKind) -> Connection | None:
        client = self.client(request)
        connection_id = self.state(request).get(kind.value)
        if client is None or not connection_id:
            return None
        return Connection.objects.filter(pk=connection_id, client=client, kind=kind).first()

    def flow(self, request) -> SyncFlow | None:
        flow_id = self.state(request).get("flow")
        client = self.client(request)
        if not flow_id or client is None:
            return None
        return (
            SyncFlow.objects.select_related(
                "client", "invoicing_connection", "accounting_connection"
            )
            .filter(pk=flow_id, client=client)
            .first()
        )

    def first_open_step(self, request) -> str:
        """The first step whose prerequisites are missing (the steps after it cannot be shown)."""
        if self.client(request) is None:
            return "client"
        for step, kind in CONNECTION_STEPS.items():
            if self.connection(request, kind) is None:
                return step
        if self.flow(request) is None:
            return "folder"
        return ""

    # -- views ------------------------------------------------------------------------------

    def start_view(self, request):
        if not may_set_up(request.user):
            raise PermissionDenied
        if "restart" in request.GET:
            request.session.pop(SESSION_KEY, None)
        return HttpResponseRedirect(self.url(self.first_open_step(request) or "mappings"))

    def step_view(self, request, step: str):
        if not may_set_up(request.user):
            raise PermissionDenied
        if step not in STEP_KEYS:
            raise Http404(_("No such step."))
        open_step = self.first_open_step(request)
        if open_step and STEP_KEYS.index(step) > STEP_KEYS.index(open_step):
            return HttpResponseRedirect(self.url(open_step))
        handler = getattr(self, f"step_{step}")
        context = handler(request)
        if not isinstance(context, dict):
            return context  # a redirect
        index = STEP_KEYS.index(step)
        context = {
            **self.site.each_context(request),
            "title": _("Set up a new flow: %(step)s") % {"step": dict(STEPS)[step]},
            "step": step,
            "steps": [
                {"key": key, "label": label, "number": number, "current": key == step}
                for number, (key, label) in enumerate(STEPS, start=1)
            ],
            "step_number": index + 1,
            "step_count": len(STEPS),
            "back_url": self.url(STEP_KEYS[index - 1]) if index else "",
            "restart_url": reverse("invsync_setup") + "?restart=1",
            "setup_client": self.client(request),
            **context,
        }
        return TemplateResponse(request, "admin/syncs/setup/step.html", context)

    def url(self, step: str) -> str:
        return reverse("invsync_setup_step", args=[step])

    def next_step(self, step: str):
        return HttpResponseRedirect(self.url(STEP_KEYS[STEP_KEYS.index(step) + 1]))

    # -- steps ------------------------------------------------------------------------------

    def step_client(self, request):
        client = self.client(request)
        if request.method == "POST":
            form = ClientStepForm(request.POST, user=request.user)
            if form.is_valid():
                chosen = form.cleaned_data.get("client")
                if chosen is None:
                    try:
                        chosen = client_create(name=form.cleaned_data["new_client"].strip())
                    except ValidationError as exc:
                        for message in exc.messages:
                            form.add_error("new_client", message)
                    else:
                        if not request.user.is_superuser:
                            chosen.members.add(request.user)  # or they could not see it
                if chosen is not None and not form.errors:
                    if client is None or chosen.pk != client.pk:
                        # Another client: its connections and flow are chosen anew.
                        request.session[SESSION_KEY] = {}
                    self.save_state(request, client=chosen.pk)
                    return self.next_step("client")
        else:
            form = ClientStepForm(initial={"client": client}, user=request.user)
        return {"form": form}

    def _connection_step(self, request, step: str):
        kind = CONNECTION_STEPS[step]
        client = self.client(request)
        chosen = self.connection(request, kind)
        if request.method == "POST":
            form = ConnectionStepForm(request.POST, client=client, kind=kind)
            if form.is_valid():
                connection = form.cleaned_data["connection"]
                flow = self.flow(request)
                if flow is not None and getattr(flow, f"{step}_connection_id") != connection.pk:
                    try:
                        flow_update(flow=flow, data={f"{step}_connection": connection})
                    except ValidationError as exc:
                        form.add_error(None, exc)
                if not form.errors:
                    self.save_state(request, **{kind.value: connection.pk})
                    return self.next_step(step)
        else:
            # Back from a Connect started here: the connection just connected is chosen.
            connected = self._just_connected(request, step)
            if connected is not None:
                return self.next_step(step)
            # Back from the connection's add form: the new one; else the only one there is.
            added = str(request.GET.get("connection", ""))
            only = (
                Connection.objects.filter(pk=added, client=client, kind=kind).first()
                if added.isdigit()
                else form_queryset_single(client, kind)
            )
            form = ConnectionStepForm(
                initial={"connection": only or chosen}, client=client, kind=kind
            )
        add_url = reverse("invsync_setup_add_connection", args=[step])
        connections = list(form.fields["connection"].queryset)
        return {
            "form": form,
            "kind": kind,
            "add_url": add_url if request.user.has_perm("connectors.add_connection") else "",
            "connections": connections,
            "return_url": self.url(step),
            "to_connect": self._to_connect(request, step, connections),
        }

    def _just_connected(self, request, step: str) -> Connection | None:
        """The connection a Connect started from this step has just connected (the OAuth2
        callback names it in the session, once), taken as chosen: None when there is none, or
        when choosing it would change a flow already created (then the person confirms it)."""
        connection_id = request.session.pop(JUST_CONNECTED, None)
        if connection_id is None or str(connection_id) != request.GET.get("connection", ""):
            return None
        kind = CONNECTION_STEPS[step]
        connection = Connection.objects.filter(
            pk=connection_id, client=self.client(request), kind=kind
        ).first()
        flow = self.flow(request)
        if connection is None or (
            flow is not None and getattr(flow, f"{step}_connection_id") != connection.pk
        ):
            return None
        self.save_state(request, **{kind.value: connection.pk})
        return connection

    def _to_connect(self, request, step: str, connections) -> list[dict]:
        """The OAuth2 connections listed that are not connected yet, each with a Connect that
        comes back to this step (for those who may change connections)."""
        if not request.user.has_perm("connectors.change_connection"):
            return []
        back = urlencode({"next": self.url(step)})
        return [
            {"connection": connection, "url": f"{connect_url(connection)}?{back}"}
            for connection in connections
            if connection.auth_kind == AuthKind.OAUTH2 and stored_tokens(connection) is None
        ]

    def add_connection_view(self, request, step: str):
        """To the connection's add form (client and kind chosen), which comes back here."""
        if not may_set_up(request.user) or not request.user.has_perm("connectors.add_connection"):
            raise PermissionDenied
        client = self.client(request)
        if step not in CONNECTION_STEPS or client is None:
            return HttpResponseRedirect(self.url(self.first_open_step(request) or "client"))
        request.session[RETURN_AFTER_ADD] = self.url(step)
        query = urlencode({"client": client.pk, "kind": CONNECTION_STEPS[step].value})
        return HttpResponseRedirect(f"{reverse('admin:connectors_connection_add')}?{query}")

    def step_invoicing(self, request):
        return self._connection_step(request, "invoicing")

    def step_accounting(self, request):
        return self._connection_step(request, "accounting")

    def step_folder(self, request):
        state = self.state(request)
        accounting = self.connection(request, ConnectionKind.ACCOUNTING)
        flow = self.flow(request)
        error, folders = None, []
        target = None
        try:
            target = connector_for(accounting)
            folders = list(target.list_folders())
        except InvsyncError as exc:
            error = _error(exc)
        finally:
            if target is not None:
                target.close()
        initial = {
            "folder": flow.folder if flow else state.get("folder", ""),
            "name": flow.name if flow else state.get("name", ""),
            "scope": flow.scope if flow else SyncFlow._meta.get_field("scope").default,
            "start_date": flow.start_date if flow else None,
        }
        if len(folders) == 1 and not initial["folder"]:
            initial["folder"] = folders[0].id
        if request.method == "POST" and error is None:
            form = FolderStepForm(request.POST, folders=folders)
            if form.is_valid():
                chosen = form.folders[form.cleaned_data["folder"]]
                values = {
                    "folder": chosen.id,
                    "folder_name": chosen.name,
                    "company_currency": chosen.currency or "",
                    "scope": form.cleaned_data["scope"],
                    "start_date": form.cleaned_data["start_date"],
                }
                self.save_state(request, folder=chosen.id, name=form.cleaned_data["name"])
                try:
                    flow = self._flow_save(request, flow, form.cleaned_data["name"], values)
                except ValidationError as exc:
                    _add_errors(form, exc)
                except InvsyncError as exc:
                    error = _error(exc)
                else:
                    return self.next_step("folder")
        else:
            if request.method == "POST":  # the tool did not answer: what was typed stays
                initial.update(
                    {k: v for k, v in request.POST.items() if k in ("name", "scope", "start_date")}
                )
            form = FolderStepForm(initial=initial, folders=folders)
        return {"form": form, "error": error, "accounting": accounting}

    def _flow_save(self, request, flow, name: str, values: dict) -> SyncFlow:
        """Create the flow (disabled) with the folder and the suggestions, or change its folder
        and name; the suggestions fill only what is still blank."""
        if flow is None:
            values = {k: v for k, v in values.items() if v or k != "company_currency"}
            flow = flow_create(
                client=self.client(request),
                name=name,
                invoicing_connection=self.connection(request, ConnectionKind.INVOICING),
                accounting_connection=self.connection(request, ConnectionKind.ACCOUNTING),
                enabled=False,
                **values,
            )
            self.save_state(request, flow=flow.pk)
        else:
            values = {k: v for k, v in values.items() if v or k != "company_currency"}
            flow = flow_update(flow=flow, data={"name": name, **values})
        flow_mappings_suggest(flow=flow)
        return flow

    def step_mappings(self, request):
        flow = self.flow(request)
        error = None
        if request.method == "POST" and "suggest" in request.POST:
            try:
                flow_mappings_suggest(flow=flow)
            except InvsyncError as exc:
                error = _error(exc)
            else:
                messages.success(request, _("Suggestions read again: blank values filled."))
                return HttpResponseRedirect(self.url("mappings"))
        elif request.method == "POST":
            return self.next_step("mappings")
        flow.refresh_from_db()
        lookups = flow_lookups_load(flow=flow)
        names = lookup_names(lookups.target_lookups())
        return {
            "flow": flow,
            "error": error,
            "settings": _filled_settings(flow, names),
            "vat_mappings": _vat_rows(flow, lookups, names["vat_codes"]),
            "flow_url": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        }

    def step_checklist(self, request):
        flow = self.flow(request)
        if request.method == "POST":
            return self.next_step("checklist")
        lookups = flow_lookups_load(flow=flow)
        steps = flow_setup_checklist(flow, lookups=lookups)
        return {
            "flow": flow,
            "checklist": steps,
            "missing": [step for step in steps if step.blocking],
            "to_check": [step for step in steps if step.state is StepState.TO_CHECK],
            "flow_url": reverse("admin:mappings_syncflow_change", args=[flow.pk]),
        }

    def step_preview(self, request):
        flow = self.flow(request)
        if request.method == "POST":
            return self.next_step("preview")
        preview, error = None, None
        try:
            preview = flow_preview(flow, lookups=flow_lookups_load(flow=flow))
        except InvsyncError as exc:
            error = _error(exc)
        return {"flow": flow, "preview": preview, "error": error}

    def step_enable(self, request):
        flow = self.flow(request)
        lookups = flow_lookups_load(flow=flow)
        missing = [step for step in flow_setup_checklist(flow, lookups=lookups) if step.blocking]
        first_run = first_run_count(flow, lookups)
        others = flows_sharing_ledger(flow, enabled_only=True)
        if request.method == "POST":
            form = EnableStepForm(request.POST)
            if form.is_valid():
                try:
                    flow_update(
                        flow=flow,
                        data={"enabled": True},
                        shared_ledger_confirmed=[other.pk for other in others],
                    )
                except ValidationError as exc:
                    flow.enabled = False
                    _add_errors(form, exc)
                else:
                    request.session.pop(SESSION_KEY, None)
                    messages.success(request, _("The flow “%(flow)s” is enabled.") % {"flow": flow})
                    return HttpResponseRedirect(
                        reverse("admin:mappings_syncflow_change", args=[flow.pk])
                    )
        else:
            form = EnableStepForm()
        return {
            "flow": flow,
            "form": form,
            "missing": missing,
            "first_run": first_run,
            "error": first_run.error,
            "others": [describe_flow(other) for other in others],
            "count_text": first_run_text(first_run.posted, first_run.more),
        }


def form_queryset_single(client: Client, kind: ConnectionKind) -> Connection | None:
    """The client's only connection of ``kind`` (pre-selected), or None."""
    connections = list(Connection.objects.filter(client=client, kind=kind)[:2])
    return connections[0] if len(connections) == 1 else None


@dataclass(frozen=True)
class FirstRun:
    """What the first run would do with the invoices waiting (up to COUNT_LIMIT of them)."""

    posted: int = 0
    failing: int = 0  # rejected by the engine: each would fail with its code
    more: bool = False  # more invoices wait than were counted
    error: dict | None = None  # the invoicing tool could not list them


def first_run_count(flow: SyncFlow, lookups) -> FirstRun:
    """Count, with the preview's engine, the entries the first run would post and the invoices
    that would fail. Writes nothing."""
    try:
        preview = flow_preview(flow, lookups=lookups, limit=COUNT_LIMIT)
    except InvsyncError as exc:
        return FirstRun(error=_error(exc))
    statuses = [item.result.get("status") for item in preview.items]
    return FirstRun(statuses.count("ok"), statuses.count("error"), preview.more)


def first_run_text(count: int, more: bool) -> str:
    if more:
        return ngettext(
            "The first run will post at least %(count)d invoice (more are waiting).",
            "The first run will post at least %(count)d invoices (more are waiting).",
            count,
        ) % {"count": count}
    return ngettext(
        "The first run will post %(count)d invoice.",
        "The first run will post %(count)d invoices.",
        count,
    ) % {"count": count}


# What the mappings step shows, as the suggestions filled it.
FILLED_SETTINGS = (
    "folder_name",
    "customer_collective_account",
    "supplier_collective_account",
    "default_sales_account",
    "default_purchases_account",
    "rounding_credit_account",
    "rounding_debit_account",
    "sales_discount_account",
    "purchases_discount_account",
    "sales_journal",
    "purchases_journal",
    "sales_rounding_vat_code",
    "purchases_rounding_vat_code",
)


def _filled_settings(flow: SyncFlow, names: dict) -> list[tuple[str, str]]:
    """The settings the suggestions fill, as people read them (an account with its name, a VAT
    code by its label)."""
    rows = []
    for name in FILLED_SETTINGS:
        value = getattr(flow, name) or ""
        if name.endswith("_account") and value in names["accounts"]:
            value = f"{value} – {names['accounts'][value]}"
        elif name.endswith("_vat_code"):
            value = names["vat_codes"].get(value, value)
        rows.append((str(SyncFlow._meta.get_field(name).verbose_name).capitalize(), value or "—"))
    return rows


def _vat_rows(flow: SyncFlow, lookups, vat_labels: dict[str, str]) -> list[dict]:
    """The flow's VAT mappings: the source tax by name and rate, the codes by their labels."""
    sources = {rate.tax_id: rate for rate in lookups.source_rates or () if rate.tax_id}
    rows = []
    for mapping in flow.vat_mappings.order_by("direction", "source_rate", "pk"):
        source = sources.get(mapping.source_tax_id)
        rate = mapping.source_rate if source is None else source.rate
        rows.append(
            {
                "direction": mapping.get_direction_display(),
                "source_name": source.name if source is not None else "",
                "rate": rate,
                "target": vat_labels.get(mapping.target_code, mapping.target_code),
                "collected": vat_labels.get(mapping.collected_code, mapping.collected_code),
            }
        )
    return rows


def _error(exc: InvsyncError) -> dict:
    info = error_info(exc.code)
    return {"code": exc.code.value, "message": exc.message, "resolution": info.resolution}


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def setup_urls(site: admin.AdminSite) -> list:
    """The guided set-up's addresses (``invsync_setup``, ``invsync_setup_step``), to mount under
    the admin's prefix: the admin's login, header and sidebar."""
    setup = GuidedSetup(site)
    return [
        path("", site.admin_view(setup.start_view), name="invsync_setup"),
        path("<slug:step>/", site.admin_view(setup.step_view), name="invsync_setup_step"),
        path(
            "<slug:step>/add-connection/",
            site.admin_view(setup.add_connection_view),
            name="invsync_setup_add_connection",
        ),
    ]
