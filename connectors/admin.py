"""Clients and connections in the admin. Credentials are write-only: the form has one empty
password field per secret, the stored values are never rendered (form, list, read-only fields,
history), and saving goes through connectors.services."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.functional import lazy
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import format_lazy
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from connectors import registry
from connectors.admin_connection_add import (
    CHOICE_PARAMETERS,
    KIND_GROUP_LABELS,
    chosen_connector,
    complete_choice,
    connection_start_view,
    start_query,
)
from connectors.admin_filters import ClientScopedRelatedFilter, named_rows, scoped_list_filter
from connectors.admin_inbox import inbox_upload_view, is_inbox
from connectors.base import (
    AUTH_FIELDS,
    SETTING_MAX_LENGTH,
    AuthKind,
    ConnectionKind,
    Connector,
    SettingField,
)
from connectors.canonical import ConnectionCheck
from connectors.errors import error_info, message_text
from connectors.form_fields import BoundedJSONField
from connectors.models import Client, Connection
from connectors.oauth_admin import (
    CHANGE_FORM_REQUEST,
    oauth_callback_view,
    oauth_company_view,
    oauth_connect_view,
    oauth_disconnect_view,
    oauth_status,
    remember_return_after_connect,
)
from connectors.oauth_backends import backend_for
from connectors.selectors import client_list_for_user
from connectors.services import (
    CONNECTION_EDITABLE_FIELDS,
    KEPT_SECRETS,
    WEBHOOK_SECRET,
    client_delete,
    connection_check,
    connection_create,
    connection_update,
    credential_fields,
    credentials_to_reenter,
    reenter_message,
    settings_shape_problem,
)
from connectors.token_store import stored_tokens
from connectors.webhook_address import STRIPE_SYNC_EVENTS, stripe_webhook_path


class ReadOnlyAdminMixin:
    """A log: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CascadeLogsDeleteMixin:
    """Runs, records and configuration changes are read-only logs nobody may delete one by one,
    yet they belong to their flow or client: deleting a flow (or a client) takes them along
    without asking for that permission. (A flow's configuration changes outlive the flow; a
    client's go with the client.)"""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # The upper apps mark their log models (``deleted_with_owner = True``).
        logs = {
            str(model._meta.verbose_name)
            for model in apps.get_models()
            if getattr(model, "deleted_with_owner", False)
        }
        return deleted, counts, {p for p in perms_needed if str(p) not in logs}, protected


class ClientScopedAdminMixin:
    """Staff users see only the rows of the clients they are members of (superusers see all),
    and choose only among those clients' rows in foreign keys.

    Every admin view that takes an object id (change, delete, history, the custom views that call
    ``get_object``) finds it through ``get_queryset``, so another client's object answers as if it
    did not exist; the changelist, its filters, actions and the autocomplete view go through
    ``get_queryset`` too, and every list filter on a relation offers only the user's clients'
    objects (:mod:`connectors.admin_filters`). The object-level permission checks below say the
    same for any view that loads an object some other way."""

    # The path from the admin's model to its Client ("" for Client itself).
    client_lookup = "client"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not queryset.query.order_by and self.model._meta.ordering:
            # Explicit, so that admins adding aggregates (which drop Meta.ordering) still page
            # their changelists and autocomplete results in a stable order.
            queryset = queryset.order_by(*self.model._meta.ordering)
        if request.user.is_superuser:
            return queryset
        members = f"{self.client_lookup}__members" if self.client_lookup else "members"
        return queryset.filter(**{members: request.user})

    def get_list_filter(self, request):
        # A filter on a relation offers only the user's clients' objects (admin_filters).
        return scoped_list_filter(self.model, super().get_list_filter(request))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.is_in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.is_in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.is_in_scope(request, obj)

    def is_in_scope(self, request, obj) -> bool:
        """Whether ``obj`` (None: the model as a whole) belongs to one of the user's clients."""
        if obj is None or request.user.is_superuser:
            return True
        if not isinstance(obj, self.model):
            # An inline is asked about its parent object, which the parent's admin has checked.
            return True
        return self._client_id_of(obj) in _user_client_ids(request)

    def _client_id_of(self, obj) -> int | None:
        if not self.client_lookup:
            return obj.pk
        *path, last = self.client_lookup.split("__")
        for name in path:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return getattr(obj, f"{last}_id", None)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            model = db_field.related_model
            clients = client_list_for_user(request.user)
            field_names = {field.name for field in model._meta.get_fields()}
            if model is Client:
                kwargs["queryset"] = clients
            elif "client" in field_names:
                kwargs["queryset"] = model._default_manager.filter(client__in=clients)
            elif "flow" in field_names:
                kwargs["queryset"] = model._default_manager.filter(flow__client__in=clients)
        # Each option is named "client · name": the clients in the same query, not one per row.
        queryset = kwargs.get("queryset")
        if queryset is None:
            queryset = self.get_field_queryset(kwargs.get("using"), db_field, request)
        if queryset is None:
            queryset = db_field.related_model._default_manager.using(kwargs.get("using")).all()
        kwargs["queryset"] = named_rows(queryset)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _user_client_ids(request) -> frozenset[int]:
    # Asked several times per page (each permission check): read once per request.
    cached = getattr(request, "_invsync_client_ids", None)
    if cached is None:
        cached = frozenset(client_list_for_user(request.user).values_list("pk", flat=True))
        request._invsync_client_ids = cached
    return cached


@admin.register(Client)
class ClientAdmin(CascadeLogsDeleteMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = ""
    list_display = ("name", "connection_count", "flow_count", "created_at")
    search_fields = ("name",)
    filter_horizontal = ("members",)
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                connection_count=Count("connections", distinct=True),
                flow_count=Count("flows", distinct=True),
            )
        )

    @admin.display(description=_("connections"), ordering="connection_count")
    def connection_count(self, obj: Client) -> int:
        return obj.connection_count

    @admin.display(description=_("flows"), ordering="flow_count")
    def flow_count(self, obj: Client) -> int:
        return obj.flow_count

    def delete_model(self, request, obj):
        client_delete(client=obj)

    def delete_queryset(self, request, queryset):
        for client in queryset:
            client_delete(client=client)


# Credentials: one write-only form field per secret name of any auth kind.

SECRET_PREFIX = "credential_"
AUTH_SECRET_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(name for names in AUTH_FIELDS.values() for name in names)
)
# And the secrets a tool takes whatever the authentication (Connector.extra_secrets).
SECRET_NAMES: tuple[str, ...] = (*AUTH_SECRET_NAMES, *KEPT_SECRETS)
SECRET_LABELS = {
    WEBHOOK_SECRET: _("Webhook signing secret"),
    "api_key": _("API key"),
    "username": _("Login"),
    "password": _("Password"),
    "client_id": _("OAuth2 client id"),
    "client_secret": _("OAuth2 client secret"),
    "access_token": _("OAuth2 access token"),
    "refresh_token": _("OAuth2 refresh token"),
}
AUTH_KIND_LABELS = dict(Connection._meta.get_field("auth_kind").choices)
KEEP_HELP = _("Leave blank to keep the stored value.")
# The session key of the page a connection's add form returns to once saved (the guided set-up
# sets it: syncs/admin/setup.py).
RETURN_AFTER_ADD = "invsync_return_after_add"


# Long enough for any OAuth2 token; a secret longer than this is a mistake, not a secret.
SECRET_MAX_LENGTH = 8192
# The settings as typed: a flat JSON object is far smaller than this; deeper than this nesting or
# longer than this text is refused before it is parsed (a deep one would crash the parser).
SETTINGS_MAX_CHARS = 100_000
SETTINGS_MAX_DEPTH = 20


def secret_field_name(name: str) -> str:
    return f"{SECRET_PREFIX}{name}"


# A list of labels joined when shown, each in the reader's language.
_lazy_join = lazy(lambda labels: ", ".join(map(str, labels)), str)


def extra_secrets(connector: type[Connector] | None) -> tuple[str, ...]:
    """The secrets ``connector`` takes whatever the authentication (none for no connector)."""
    return tuple(n for n in (connector.extra_secrets if connector else ()) if n in SECRET_NAMES)


def _secret_form_field(name: str) -> forms.CharField:
    used_by = [AUTH_KIND_LABELS[kind.value] for kind, names in AUTH_FIELDS.items() if name in names]
    help_text = format_lazy("{} {} {}.", KEEP_HELP, _("Used by:"), _lazy_join(used_by))
    if name == WEBHOOK_SECRET:
        help_text = format_lazy(
            "{} {}",
            KEEP_HELP,
            _(
                "The Signing secret (whsec_…) of this connection's endpoint in Stripe's "
                "Dashboard (Developers → Webhooks): deliveries are refused without it."
            ),
        )
    return forms.CharField(
        label=SECRET_LABELS.get(name, name.replace("_", " ")),
        required=False,
        strip=False,
        max_length=SECRET_MAX_LENGTH,
        # Never rendered back, and "new-password" keeps browsers from filling in the admin's own.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


def _provider_choices(current: str | None) -> list:
    groups = [
        (kind.value.title(), registry.choices(kind))
        for kind in ConnectionKind
        if registry.choices(kind)
    ]
    installed = {key for _, choices in groups for key, _ in choices}
    if current and current not in installed:
        # Keep an imported connection's provider visible, flagged, rather than silently changed.
        flagged = gettext_now("%(provider)s (not installed)") % {"provider": current}
        groups.append((gettext_now("Not installed"), [(current, flagged)]))
    return [("", "---------"), *groups]


def _settings_help() -> str:
    lines = []
    for cls in registry.providers():
        fields = ", ".join(
            f"{field.name}{'' if field.required else ' (optional)'}"
            for field in cls.settings_fields
        )
        lines.append(f"{cls.name}: {fields or 'none'}.")
    return (
        "A JSON object of the provider's non-secret settings, e.g. "
        '{"url": "https://…", "database": "…"}. ' + " ".join(lines)
    )


def _shown(value: object, limit: int = 60) -> str:
    """A typed value quoted for a message: control characters escaped, long text cut."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SettingsJSONField(BoundedJSONField):
    """The connection settings as JSON text: a flat object is far shorter and shallower than
    these bounds (NaN and Infinity are refused on the setting that holds them, see
    settings_shape_problem)."""

    max_chars = SETTINGS_MAX_CHARS
    max_depth = SETTINGS_MAX_DEPTH
    default_error_messages = {
        "too_long": _("The settings are too long: at most %(limit)s characters, not %(length)s."),
        "too_deep": _(
            "The settings nest too deeply: enter a flat JSON object of names and values."
        ),
    }


# The connection form shows its provider's declared settings as fields of their own (named
# ``setting__<name>``), on the add form (the provider chosen in the first step) and the change form.
# Superusers also get the settings' JSON, collapsed under "Advanced" (imports and scripted fixes);
# a field typed differently from its initial value wins over the JSON.
SETTING_PREFIX = "setting__"


class SettingFormField(forms.CharField):
    """One declared setting: its label, help, default and own check."""

    def __init__(self, setting: SettingField, **kwargs):
        self.setting = setting
        super().__init__(
            # Declared with N_ (connectors.messages): translated here, when shown.
            label=_(setting.label) if setting.label else setting.name,
            help_text=(
                (_(setting.help_text) % dict(setting.help_params))
                if setting.help_params
                else _(setting.help_text)
            )
            if setting.help_text
            else "",
            max_length=SETTING_MAX_LENGTH,
            **kwargs,
        )

    def validate(self, value):
        super().validate(value)
        if value not in self.empty_values and (problem := self.setting.problem(value)):
            raise forms.ValidationError(f"{problem[0].upper()}{problem[1:]}.", code="setting")


def declared_settings(connection: Connection) -> tuple[SettingField, ...]:
    """The settings ``connection``'s provider declares (none before it is saved or when its
    provider is not installed)."""
    if connection.pk is None:
        return ()
    try:
        return registry.get(connection.provider, ConnectionKind(connection.kind)).settings_fields
    except (KeyError, ValueError):
        return ()


class _ConnectionAdminFormBase(forms.ModelForm):
    # Set by ConnectionAdmin.get_form: the connector chosen (the add form's first step, or the
    # saved connection's), the authentication whose secrets are shown, and whether the first
    # step's choices travel as hidden fields (the add form's second step).
    connector_class: type[Connector] | None = None
    choice_hidden: bool = False
    _typed_names: frozenset[str] | set[str] = frozenset()

    provider = forms.ChoiceField(
        label=_("Provider"), help_text=_("The connector used for this tool (its kind must match).")
    )

    class Meta:
        model = Connection
        # The stored credentials are not a form field at all: only the write-only secret fields.
        fields = CONNECTION_EDITABLE_FIELDS
        widgets = {"settings": forms.Textarea(attrs={"rows": 4, "cols": 80})}
        field_classes = {"settings": SettingsJSONField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.credentials if self.instance.pk else {}
        self.fields["provider"].choices = _provider_choices(
            self.instance.provider or self.initial.get("provider") or None
        )
        if self.choice_hidden:
            for name in CHOICE_PARAMETERS:
                if name in self.fields:
                    self.fields[name].widget = forms.HiddenInput()
        if self.connector_class is not None and "auth_kind" in self.fields:
            # Only the authentications the tool accepts (and the stored one, even if it no longer).
            accepted = {kind.value for kind in self.connector_class.auth_kinds}
            accepted.add(self.instance.auth_kind or "")
            self.fields["auth_kind"].choices = [
                (value, label)
                for value, label in self.fields["auth_kind"].choices
                if value in accepted
            ]
        if "settings" in self.fields:
            self.fields["settings"].help_text = _settings_help()
        stored_settings = self.instance.settings or {} if self.instance.pk else {}
        for setting in self.declared_settings():
            # Required where nothing else can give the value (no JSON); checked either way.
            stored_value = stored_settings.get(setting.name)
            self.fields[SETTING_PREFIX + setting.name] = SettingFormField(
                setting,
                required=setting.required and not setting.default and "settings" not in self.fields,
                initial=str(stored_value if stored_value is not None else "")
                if self.instance.pk
                else setting.default,
            )
        for name in SECRET_NAMES:
            form_field = self.fields.get(secret_field_name(name))
            if form_field is not None and name in (stored or {}):
                form_field.help_text = f"{gettext_now('A value is stored.')} {form_field.help_text}"

    def declared_settings(self) -> tuple[SettingField, ...]:
        if self.connector_class is not None:
            return self.connector_class.settings_fields
        return declared_settings(self.instance)

    def clean(self):
        cleaned = super().clean()
        kind, provider = cleaned.get("kind"), cleaned.get("provider")
        chosen = self.connector_class
        if (
            chosen is not None
            and kind
            and provider
            and (kind, provider) != (chosen.kind.value, chosen.key)
            and not self.instance.pk
        ):
            self.add_error(
                "provider", gettext_now("Choose the tool again: its settings are not these.")
            )
        auth_kind = cleaned.get("auth_kind")
        connector = None
        if kind and provider:
            try:
                connector = registry.get(provider, ConnectionKind(kind))
            except KeyError:
                self.add_error("provider", f"{provider!r} is not an installed {kind} connector.")
        if connector is not None and auth_kind and AuthKind(auth_kind) not in connector.auth_kinds:
            accepted = ", ".join(AUTH_KIND_LABELS[k.value] for k in connector.auth_kinds)
            self.add_error("auth_kind", f"{connector.name} accepts: {accepted}.")
        if "settings" not in self.fields:
            # No JSON (only superusers have it): the declared fields over the stored settings.
            base = dict(self.instance.settings or {}) if self.instance.pk else {}
            cleaned["settings"] = self._typed_settings(base)
        elif isinstance(cleaned.get("settings"), dict):
            cleaned["settings"] = self._typed_settings(cleaned["settings"])
        if connector is not None and "settings" in cleaned:
            self._clean_settings(cleaned["settings"], connector)
        typed_webhook_secret = cleaned.get(secret_field_name(WEBHOOK_SECRET))
        if typed_webhook_secret and not (
            typed_webhook_secret.startswith("whsec_") and " " not in typed_webhook_secret
        ):
            self.add_error(
                secret_field_name(WEBHOOK_SECRET),
                gettext_now(
                    "That is not a webhook signing secret: Stripe's start with whsec_ (the "
                    "endpoint's page, Signing secret)."
                ),
            )
        if auth_kind:
            for name in SECRET_NAMES:
                if name in extra_secrets(connector):
                    continue
                if cleaned.get(secret_field_name(name)) and name not in credential_fields(
                    auth_kind
                ):
                    self.add_error(
                        secret_field_name(name),
                        gettext_now("Not used by the %(kind)s authentication: leave it blank.")
                        % {"kind": AUTH_KIND_LABELS[auth_kind]},
                    )
        if self.instance.pk:
            in_use = (
                self.instance.flows_as_source.exists() or self.instance.flows_as_target.exists()
            )
            stored = Connection.objects.get(pk=self.instance.pk)
            if in_use and kind and kind != stored.kind:
                self.add_error(
                    "kind", gettext_now("Flows use this connection: its kind cannot change.")
                )
            client = cleaned.get("client")
            if in_use and client and client.pk != stored.client_id:
                self.add_error(
                    "client", gettext_now("Flows use this connection: its client cannot change.")
                )
            self._require_secrets_for_a_new_address(stored, cleaned)
        return cleaned

    def _typed_settings(self, settings: dict) -> dict:
        """``settings`` (the JSON) with the values typed in the declared settings' own fields."""
        merged = dict(settings)
        self._typed_names: set[str] = set()
        for name, form_field in self.fields.items():
            if not name.startswith(SETTING_PREFIX) or name in self.errors:
                continue
            value = str(self.cleaned_data.get(name) or "").strip()
            if value == str(form_field.initial or ""):
                continue  # untouched: the JSON says
            setting = name.removeprefix(SETTING_PREFIX)
            self._typed_names.add(setting)
            if value:
                merged[setting] = value
            else:
                merged.pop(setting, None)
        return merged

    def _require_secrets_for_a_new_address(self, stored: Connection, cleaned) -> None:
        """Each stored secret must be typed again when the address it is sent to changes (the
        service refuses the save otherwise): the error goes on each secret field to fill in."""
        settings = cleaned.get("settings", stored.settings)
        if settings_shape_problem(settings):
            return  # refused on its own field
        auth_kind = cleaned.get("auth_kind") or stored.auth_kind
        changed, missing = credentials_to_reenter(
            stored=stored,
            provider=cleaned.get("provider") or stored.provider,
            kind=cleaned.get("kind") or stored.kind,
            auth_kind=auth_kind,
            settings=settings,
            given={
                name: cleaned.get(secret_field_name(name)) for name in credential_fields(auth_kind)
            },
        )
        if missing:
            labels = [str(SECRET_LABELS.get(name, name)) for name in missing]
            message = reenter_message(changed, labels)
            for name in missing:
                if secret_field_name(name) in self.fields:
                    self.add_error(secret_field_name(name), message)

    def _settings_error(self, message: str, name: str | None = None) -> None:
        """A problem of the settings, on the field that shows it: a declared setting's own field
        when it was typed there (or there is no JSON), else the JSON, else the form."""
        field = SETTING_PREFIX + name if name else ""
        if field in self.fields and ("settings" not in self.fields or name in self._typed_names):
            if field not in self.errors:
                self.add_error(field, message)
        elif "settings" in self.fields:
            self.add_error("settings", message)
        else:
            self.add_error(None, message)
        self._settings_refused = True

    def _clean_settings(self, settings, connector) -> None:
        self._settings_refused = False
        if not isinstance(settings, dict):
            self._settings_error('Enter a JSON object, e.g. {"url": "https://…"}.')
            return
        declared = {field.name: field for field in connector.settings_fields}
        unknown = sorted(set(settings) - set(declared), key=str)
        if unknown:
            self._settings_error(
                gettext_now("Unknown setting(s) %(names)s; %(tool)s takes: %(declared)s.")
                % {
                    "names": ", ".join(map(str, unknown)),
                    "tool": connector.name,
                    "declared": ", ".join(declared) or gettext_now("none"),
                }
            )
        missing = [
            name
            for name, field in declared.items()
            if field.required and not field.default and settings.get(name) in (None, "")
        ]
        if missing and "settings" in self.fields:
            self._settings_error(
                gettext_now("Missing required setting(s): %(names)s.")
                % {
                    "names": ", ".join(
                        gettext_now(declared[name].label) if declared[name].label else name
                        for name in missing
                    )
                },
            )
        elif missing:
            for name in missing:
                self._settings_error(gettext_now("This field is required."), name)
        for name, value in settings.items():
            if isinstance(value, dict | list):
                self._settings_error(f"The setting {name!r} must be a plain value.")
            elif name in declared and (problem := declared[name].problem(value)):
                label = gettext_now(declared[name].label) if declared[name].label else name
                self._settings_error(f"{label} ({name}) {problem}, not {_shown(value)}.", name)
        if not self._settings_refused and (problem := settings_shape_problem(settings)):
            self._settings_error(problem)
        if not self._settings_refused and (problem := connector.settings_problem(settings)):
            self._settings_error(problem[0].upper() + problem[1:] + ".")

    def submitted_credentials(self) -> dict[str, str]:
        """The secrets typed in for the chosen auth kind (blank ones left out: they keep the
        stored value)."""
        auth_kind = self.cleaned_data.get("auth_kind", "")
        kind, provider = self.cleaned_data.get("kind"), self.cleaned_data.get("provider")
        return {
            name: self.cleaned_data[secret_field_name(name)]
            for name in (
                *credential_fields(auth_kind),
                *extra_secrets(chosen_connector(kind, provider)),
            )
            if self.cleaned_data.get(secret_field_name(name))
        }


ConnectionAdminForm = type(_ConnectionAdminFormBase)(
    "ConnectionAdminForm",
    (_ConnectionAdminFormBase,),
    {"__module__": __name__, **{secret_field_name(n): _secret_form_field(n) for n in SECRET_NAMES}},
)


def failed_check_message(result: ConnectionCheck) -> str:
    """A failed check for the person who saved: what failed (its catalogue code) and what to
    fix; everything typed is saved."""
    try:
        resolution = error_info(result.code).resolution if result.code else ""
    except ValueError:
        resolution = ""
    message = check_message(result)
    if not result.code:
        return gettext_now("Saved, but the connection check failed: %(message)s") % {
            "message": message
        }
    return (
        gettext_now("Saved, but the connection check failed — %(code)s: %(message)s %(fix)s")
        % {"code": result.code, "message": message, "fix": resolution}
    ).strip()


def check_message(result: ConnectionCheck) -> str:
    """A check's message in the reader's language (as written when it has no key)."""
    return message_text(result.key, result.params, result.message)


@admin.register(Connection)
class ConnectionAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = (
        "name",
        "client",
        "kind",
        "provider_display",
        "auth_kind",
        "last_check_ok",
        "last_checked_at",
    )
    list_filter = (
        "kind",
        "provider",
        "auth_kind",
        "last_check_ok",
        ("client", ClientScopedRelatedFilter),
    )
    search_fields = ("name", "client__name", "provider")
    list_select_related = ("client",)
    readonly_fields = (
        "chosen_tool",
        "inbox_link",
        "credentials_status",
        "oauth_connection",
        "webhook_address",
        "last_checked_at",
        "last_check_ok",
        "last_check_message_display",
        "created_at",
        "updated_at",
    )
    actions = ("test_connection",)

    def get_fieldsets(self, request, obj=None):
        """The fields of the chosen tool and authentication only: the tool's declared settings
        (the JSON of all settings only for superusers, collapsed under Advanced, and for people
        who may only view), the authentication's secrets, its OAuth2 line."""
        connector, auth_kind = self._choice(request, obj)
        can_change = obj is None or self.has_change_permission(request, obj)
        superuser = request.user.is_superuser
        first: tuple[str, ...] = ("client", "name", "kind", "provider", "auth_kind")
        if obj is None and complete_choice(request.GET) is not None:
            first = ("client", "name", "chosen_tool", "kind", "provider", "auth_kind")
        settings_names = [
            SETTING_PREFIX + setting.name
            for setting in (connector.settings_fields if connector and can_change else ())
        ]
        if not can_change:
            settings_names.append("settings")
        if obj is not None:
            settings_names.append("inbox_link")
        secrets = (
            (*credential_fields(auth_kind), *extra_secrets(connector))
            if auth_kind
            else AUTH_SECRET_NAMES
        )
        secret_names = [secret_field_name(name) for name in secrets]
        if obj is not None and secrets:
            secret_names.append("credentials_status")
        fieldsets: list = [(None, {"fields": first})]
        if settings_names:
            fieldsets.append((_("Settings"), {"fields": tuple(settings_names)}))
        if secret_names:
            fieldsets.append(
                (
                    _("Credentials (write-only)"),
                    {
                        "description": _(
                            "Stored encrypted and never shown again. A blank field keeps its "
                            "stored value."
                        ),
                        "fields": tuple(secret_names),
                    },
                )
            )
        if obj is not None and auth_kind == AuthKind.OAUTH2:
            fieldsets.append((_("OAuth2"), {"fields": ("oauth_connection",)}))
        if obj is not None and WEBHOOK_SECRET in extra_secrets(connector):
            fieldsets.append((_("Webhook"), {"fields": ("webhook_address",)}))
        if obj is not None:
            fieldsets += [
                (
                    _("Last check"),
                    {"fields": ("last_checked_at", "last_check_ok", "last_check_message_display")},
                ),
                (_("Dates"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
            ]
        if can_change and superuser:
            fieldsets.append(
                (
                    _("Advanced"),
                    {
                        "description": _(
                            "All the settings as JSON, for superusers (a value typed in a "
                            "field above wins). Settings the tool does not declare are refused."
                        ),
                        "fields": ("settings",),
                        "classes": ("collapse",),
                    },
                )
            )
        return fieldsets

    @staticmethod
    def _choice(request, obj) -> tuple[type[Connector] | None, str]:
        """The connector and authentication the form is for: the saved connection's, or the
        add form's first step's (its address; a form posted without it names them itself)."""
        if obj is not None:
            return chosen_connector(obj.kind, obj.provider), str(obj.auth_kind or "")
        choice = complete_choice(request.GET) or complete_choice(request.POST)
        return choice if choice is not None else (None, "")

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The declared settings' fields are made by the form itself, not by the model.
        fields = kwargs.pop("fields", None) or flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = [f for f in fields if not f.startswith(SETTING_PREFIX)]
        form_class = super().get_form(request, obj, change=change, **kwargs)
        form_class.connector_class = self._choice(request, obj)[0]
        form_class.choice_hidden = obj is None and complete_choice(request.GET) is not None
        return form_class

    def add_view(self, request, form_url="", extra_context=None):
        # First step: the tool and the authentication (a page of its own, reloading as chosen).
        choice = complete_choice(request.GET)
        if request.method == "GET" and choice is None:
            return connection_start_view(self, request)
        if choice is not None:
            title = gettext_now("Step 2 of 2: %(tool)s's settings and sign-in") % {
                "tool": choice[0].name
            }
            extra_context = {**(extra_context or {}), "title": title}
        return super().add_view(request, form_url, extra_context)

    @admin.display(description=_("tool"))
    def chosen_tool(self, obj) -> str:
        request = CHANGE_FORM_REQUEST.get()
        choice = complete_choice(request.GET) if request is not None else None
        if choice is None:
            return "-"
        connector, auth_kind = choice
        back = urlencode({**start_query(request.GET), "_change": "1"})
        return format_html(
            '{} · {} · {} <a class="button" id="change-tool" href="{}?{}">{}</a>',
            connector.name,
            KIND_GROUP_LABELS[connector.kind],
            AUTH_KIND_LABELS[auth_kind],
            reverse("admin:connectors_connection_add"),
            back,
            gettext_now("Change"),
        )

    # A crash page (DEBUG) or an error report never shows the typed secrets.
    @method_decorator(sensitive_post_parameters(*(secret_field_name(n) for n in SECRET_NAMES)))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The OAuth2 line shows its buttons to staff who may change the connection.
        with CHANGE_FORM_REQUEST.bind(request):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):  # a TemplateResponse renders late: render it here
                response.render()
            return response

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/inbox/",
                self.admin_site.admin_view(partial(inbox_upload_view, self)),
                name="connectors_connection_inbox",
            ),
            # OAuth2: one callback address for every connection (the state names it).
            path(
                "oauth/callback/",
                self.admin_site.admin_view(partial(oauth_callback_view, self)),
                name="connectors_connection_oauth_callback",
            ),
            *(
                path(
                    f"<path:object_id>/oauth/{action}/",
                    self.admin_site.admin_view(partial(view, self)),
                    name=f"connectors_connection_oauth_{action}",
                )
                for action, view in (
                    ("connect", oauth_connect_view),
                    ("company", oauth_company_view),
                    ("disconnect", oauth_disconnect_view),
                )
            ),
        ]
        return own + super().get_urls()

    @admin.display(description=_("e-invoice inbox"))
    def inbox_link(self, obj: Connection) -> str:
        if obj.pk is None or not is_inbox(obj):
            return "-"
        url = reverse("admin:connectors_connection_inbox", args=[obj.pk])
        return format_html(
            '<a href="{}">{}</a>', url, gettext_now("Upload e-invoices and see the files received")
        )

    @admin.display(description=_("OAuth2 connection"))
    def oauth_connection(self, obj: Connection) -> str:
        request = CHANGE_FORM_REQUEST.get()
        return oauth_status(
            obj, can_change=request is not None and self.has_change_permission(request, obj)
        )

    @admin.display(description=_("webhook address"))
    def webhook_address(self, obj: Connection) -> str:
        """Where Stripe sends this connection's events, and which to tick (read-only)."""
        if obj.pk is None:
            return "-"
        request = CHANGE_FORM_REQUEST.get()
        path = stripe_webhook_path(obj)
        address = request.build_absolute_uri(path) if request is not None else path
        missing = (
            ""
            if (obj.credentials or {}).get(WEBHOOK_SECRET)
            else gettext_now("No signing secret yet: deliveries are refused until one is typed.")
        )
        return format_html(
            "<code>{}</code><br>{} {}<br>{}",
            address,
            gettext_now(
                "In Stripe's Dashboard (Developers → Webhooks → Add endpoint), give this "
                "address and tick these events:"
            ),
            format_html_join(", ", "<code>{}</code>", ((e,) for e in sorted(STRIPE_SYNC_EVENTS))),
            missing,
        )

    @admin.display(description=_("provider"), ordering="provider")
    def provider_display(self, obj: Connection) -> str:
        try:
            return registry.get(obj.provider, ConnectionKind(obj.kind)).name
        except (KeyError, ValueError):
            return gettext_now("%(provider)s (not installed)") % {"provider": obj.provider}

    @admin.display(description=_("last check message"))
    def last_check_message_display(self, obj: Connection) -> str:
        # In the reader's language (the stored English for a check made before keys existed).
        return message_text(obj.last_check_key, obj.last_check_params, obj.last_check_message)

    @admin.display(description=_("stored credentials"))
    def credentials_status(self, obj: Connection) -> str:
        if obj.pk is None:
            return gettext_now("None yet.")
        stored = obj.credentials or {}
        # Whether each secret is set, never what it is.
        return format_html_join(
            ", ",
            "{}: {}",
            (
                (
                    SECRET_LABELS.get(name, name),
                    gettext_now("stored") if stored.get(name) else gettext_now("not set"),
                )
                for name in (
                    *obj.credential_fields,
                    *extra_secrets(chosen_connector(obj.kind, obj.provider)),
                )
            ),
        ) or gettext_now("None for this authentication.")

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in CONNECTION_EDITABLE_FIELDS}
        credentials = form.submitted_credentials()
        if change:
            stored = Connection.objects.get(pk=obj.pk)
            touched = bool(credentials) or any(
                data[name] != getattr(stored, name)
                for name in ("kind", "provider", "auth_kind", "settings")
            )
            connection_update(connection=obj, data=data, credentials=credentials)
        else:
            saved = connection_create(**data, credentials=credentials)
            # The admin goes on with the instance it built (log entry, redirect).
            obj.__dict__.update(saved.__dict__)
            touched = True
        if touched:
            self._check_on_save(request, obj)

    def _check_on_save(self, request, connection: Connection) -> None:
        """Test on save: the check's outcome as a message; a failure (or an OAuth2 connection
        not yet connected) keeps the person on the connection's page, everything saved."""
        if connection.auth_kind == AuthKind.OAUTH2 and stored_tokens(connection) is None:
            backend = backend_for(connection.provider)
            vendor = backend.title if backend is not None else self.provider_display(connection)
            self.message_user(
                request,
                gettext_now(
                    "Connect to %(vendor)s: press “Connect to %(vendor)s” below, sign in there "
                    "and give invsync access. The connection is checked once connected."
                )
                % {"vendor": vendor},
                messages.WARNING,
            )
            request._invsync_stay_on_connection = True
            return
        result = connection_check(connection=connection)
        if result.ok:
            self.message_user(
                request,
                gettext_now("Connection checked: %(message)s") % {"message": check_message(result)},
                messages.SUCCESS,
            )
            return
        self.message_user(request, failed_check_message(result), messages.ERROR)
        request._invsync_stay_on_connection = True

    def _stay_on_connection(self, request, obj, response):
        if not getattr(request, "_invsync_stay_on_connection", False):
            return response
        if IS_POPUP_VAR in request.POST or response.status_code != 302:
            return response
        return HttpResponseRedirect(reverse("admin:connectors_connection_change", args=[obj.pk]))

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        response = self._stay_on_connection(request, obj, response)
        # Added from a page that asked to come back (the guided set-up): back there with the new
        # connection, or, when the check keeps the person here, a link back.
        back = request.session.pop(RETURN_AFTER_ADD, None)
        if not back or not url_has_allowed_host_and_scheme(back, allowed_hosts=None):
            return response
        if getattr(request, "_invsync_stay_on_connection", False) and (
            obj.auth_kind == AuthKind.OAUTH2
        ):
            # Its Connect, pressed on the connection's page, comes back there too.
            remember_return_after_connect(request, obj.pk, back)
        back = f"{back}?{urlencode({'connection': obj.pk})}"
        if getattr(request, "_invsync_stay_on_connection", False):
            self.message_user(
                request,
                format_html('<a href="{}">{}</a>', back, gettext_now("Back to the set-up")),
                messages.INFO,
            )
            return response
        if IS_POPUP_VAR in request.POST or response.status_code != 302:
            return response
        return HttpResponseRedirect(back)

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        return self._stay_on_connection(request, obj, response)

    def construct_change_message(self, request, form, formsets, add=False):
        # Django names changed fields by label, never by value; still, report the secrets as one
        # "credentials" entry so the history does not even say which secret changed.
        message = super().construct_change_message(request, form, formsets, add)
        secret_labels = {
            str(form.fields[name].label) for name in form.fields if name.startswith(SECRET_PREFIX)
        }
        for entry in message:
            changed = entry.get("changed")
            if changed and "fields" in changed:
                fields = [label for label in changed["fields"] if label not in secret_labels]
                if len(fields) != len(changed["fields"]):
                    fields.append("credentials")
                changed["fields"] = fields
        return message

    @admin.action(description=_("Test connection"), permissions=["change"])
    def test_connection(self, request, queryset):
        for connection in queryset.select_related("client"):
            result = connection_check(connection=connection)
            self.message_user(
                request,
                (
                    gettext_now("%(connection)s: OK — %(message)s")
                    if result.ok
                    else gettext_now("%(connection)s: failed — %(message)s")
                )
                % {"connection": connection, "message": check_message(result)},
                messages.SUCCESS if result.ok else messages.ERROR,
            )
