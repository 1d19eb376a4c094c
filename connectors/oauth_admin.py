"""The OAuth2 dance in the admin: Connect (or Reconnect), the callback, the company pick and
Disconnect of a connection, for staff who may change it. Each view calls
:mod:`connectors.oauth_flow`; every failure comes back to the connection's change page as a message
with its catalogue code, never a traceback.

A Connect started from a page that asked to come back (the guided set-up: ``?next=`` on the
Connect link, or :func:`remember_return_after_connect` for a connection just added from it) ends
there, with ``?connection=<id>``, once connected (after the company pick when the grant gives
several); the session then names the connection just connected (:data:`JUST_CONNECTED`), which
that page may take as chosen. Only local paths are followed."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from connectors.base import AuthKind
from connectors.errors import ErrorCode, InvsyncError
from connectors.models import Connection
from connectors.oauth import COMPANY_SETTING
from connectors.oauth_backends import backend_for
from connectors.oauth_flow import (
    local_path,
    oauth_company_pick,
    oauth_connect_complete,
    oauth_connect_start,
    oauth_disconnect,
    pending_connection_id,
    pending_return_to,
)
from connectors.token_store import stored_tokens


class _RequestVar:
    """The request of the change form being rendered (its read-only fields get only the object)."""

    def __init__(self) -> None:
        self._var: contextvars.ContextVar = contextvars.ContextVar("oauth_change_form_request")

    def get(self):
        return self._var.get(None)

    @contextlib.contextmanager
    def bind(self, request) -> Iterator[None]:
        token = self._var.set(request)
        try:
            yield
        finally:
            self._var.reset(token)


CHANGE_FORM_REQUEST = _RequestVar()

# The session keys of the return after a Connect: the page each connection's next Connect comes
# back to ({connection id: local path}), and the connection a Connect has just connected on its
# way back to such a page (read once by that page).
RETURN_AFTER_CONNECT = "invsync_return_after_connect"
JUST_CONNECTED = "invsync_just_connected"


def remember_return_after_connect(request, connection_id: int, url: str) -> None:
    """The next Connect of this connection comes back to ``url`` (kept only if a local path)."""
    path = local_path(url)
    if path:
        returns = dict(request.session.get(RETURN_AFTER_CONNECT) or {})
        returns[str(connection_id)] = path
        request.session[RETURN_AFTER_CONNECT] = dict(list(returns.items())[-10:])


def _take_return_after_connect(request, connection_id: int) -> str:
    returns = dict(request.session.get(RETURN_AFTER_CONNECT) or {})
    path = returns.pop(str(connection_id), "")
    if path:
        request.session[RETURN_AFTER_CONNECT] = returns
    return local_path(path)


def _back_connected(request, connection: Connection, return_to: str) -> HttpResponseRedirect:
    """To the page the Connect came from, naming the connection just connected."""
    request.session[JUST_CONNECTED] = connection.pk
    separator = "&" if "?" in return_to else "?"
    return HttpResponseRedirect(f"{return_to}{separator}{urlencode({'connection': connection.pk})}")


def callback_uri(request) -> str:
    """The one redirect address registered with every vendor's OAuth app."""
    return request.build_absolute_uri(reverse("admin:connectors_connection_oauth_callback"))


def connect_url(connection: Connection) -> str:
    """Where a Connect (or Reconnect) button sends: starts the dance for ``connection``."""
    return reverse("admin:connectors_connection_oauth_connect", args=[connection.pk])


def _change_url(connection: Connection) -> str:
    return reverse("admin:connectors_connection_change", args=[connection.pk])


def _changeable(model_admin: admin.ModelAdmin, request, object_id) -> Connection:
    connection = get_object_or_404(model_admin.get_queryset(request), pk=object_id)
    if not model_admin.has_change_permission(request, connection):
        raise PermissionDenied
    return connection


def _error(model_admin, request, error: InvsyncError) -> None:
    model_admin.message_user(request, f"{error.code}: {error.message}", messages.ERROR)


def oauth_connect_view(model_admin: admin.ModelAdmin, request, object_id: str):
    """Connect / Reconnect: to the vendor's sign-in page (a link or a button may start it)."""
    connection = _changeable(model_admin, request, object_id)
    return_to = local_path(request.GET.get("next", "")) or _take_return_after_connect(
        request, connection.pk
    )
    try:
        url = oauth_connect_start(
            connection=connection,
            request=request,
            redirect_uri=callback_uri(request),
            return_to=return_to,
        )
    except InvsyncError as error:
        _error(model_admin, request, error)
        remember_return_after_connect(request, connection.pk, return_to)
        return HttpResponseRedirect(_change_url(connection))
    return HttpResponseRedirect(url)


def oauth_callback_view(model_admin: admin.ModelAdmin, request):
    """The vendor sends the browser back here with a code (or an error) and the state."""
    connection_id = pending_connection_id(request)
    if connection_id is None:
        _error(
            model_admin,
            request,
            InvsyncError(
                ErrorCode.OAUTH_AUTHORIZATION_FAILED,
                _(
                    "This answer from the sign-in page does not belong to a Connect started in "
                    "this session (state missing or unknown): open the connection and use "
                    "Connect again."
                ),
            ),
        )
        return HttpResponseRedirect(reverse("admin:connectors_connection_changelist"))
    connection = _changeable(model_admin, request, connection_id)
    return_to = pending_return_to(request)
    try:
        done = oauth_connect_complete(
            connection=connection, request=request, redirect_uri=callback_uri(request)
        )
    except InvsyncError as error:
        _error(model_admin, request, error)
        # Connect again from the connection's page still comes back where it was asked to.
        remember_return_after_connect(request, connection.pk, return_to)
        return HttpResponseRedirect(_change_url(connection))
    if len(done.companies) > 1:
        remember_return_after_connect(request, connection.pk, done.return_to)
        return HttpResponseRedirect(
            reverse("admin:connectors_connection_oauth_company", args=[connection.pk])
        )
    model_admin.message_user(
        request, _("%(name)s is connected.") % {"name": connection.name}, messages.SUCCESS
    )
    if done.return_to:
        return _back_connected(request, connection, done.return_to)
    return HttpResponseRedirect(_change_url(connection))


def oauth_company_view(model_admin: admin.ModelAdmin, request, object_id: str):
    """GET: the companies the grant gives; POST: save the one picked."""
    connection = _changeable(model_admin, request, object_id)
    tokens = stored_tokens(connection)
    if request.method == "POST":
        try:
            oauth_company_pick(connection=connection, company_id=request.POST.get("company", ""))
        except InvsyncError as error:
            _error(model_admin, request, error)
            return HttpResponseRedirect(request.path)
        model_admin.message_user(
            request, _("%(name)s is connected.") % {"name": connection.name}, messages.SUCCESS
        )
        return_to = _take_return_after_connect(request, connection.pk)
        if return_to:
            return _back_connected(request, connection, return_to)
        return HttpResponseRedirect(_change_url(connection))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Pick the company for %(name)s") % {"name": connection.name},
        "connection": connection,
        "companies": tokens.granted if tokens else (),
        "current": str((connection.settings or {}).get(COMPANY_SETTING, "")),
        "opts": Connection._meta,
        "change_url": _change_url(connection),
    }
    return TemplateResponse(request, "admin/connectors/oauth_company.html", context)


def oauth_disconnect_view(model_admin: admin.ModelAdmin, request, object_id: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    connection = _changeable(model_admin, request, object_id)
    revoked = oauth_disconnect(connection=connection)
    model_admin.message_user(
        request,
        _("%(name)s is disconnected; the authorisation was revoked at the tool.")
        % {"name": connection.name}
        if revoked
        else _(
            "%(name)s is disconnected; the tool did not confirm the revocation: revoke invsync's "
            "access in the tool's settings too."
        )
        % {"name": connection.name},
        messages.SUCCESS if revoked else messages.WARNING,
    )
    return HttpResponseRedirect(_change_url(connection))


def oauth_status(connection: Connection, *, can_change: bool) -> str:
    """The change page's OAuth2 line: connected or not, the company, and the buttons."""
    if connection.pk is None or connection.auth_kind != AuthKind.OAUTH2:
        return "-"
    backend = backend_for(connection.provider)
    if backend is None:
        return _("This provider has no OAuth2 sign-in.")
    tokens = stored_tokens(connection)
    company = str((connection.settings or {}).get(COMPANY_SETTING, ""))
    names = dict(tokens.granted) if tokens else {}
    if tokens is None:
        state = _("Not connected.")
    elif len(names) > 1 and not company:
        state = _("Connected; no company picked yet.")
    else:
        state = _("Connected") + (f" ({names.get(company, company)})." if company else ".")
    if not can_change:
        return state
    connect = _("Reconnect to %(vendor)s") if tokens else _("Connect to %(vendor)s")
    buttons = format_html(
        ' <a class="button" id="oauth-connect" href="{}">{}</a>',
        connect_url(connection),
        connect % {"vendor": backend.title},
    )
    if tokens is not None and len(names) > 1:
        buttons += format_html(
            ' <a class="button" id="oauth-company" href="{}">{}</a>',
            reverse("admin:connectors_connection_oauth_company", args=[connection.pk]),
            _("Pick the company"),
        )
    if tokens is not None:
        # Inside the change form: the button posts it (its CSRF token) to the disconnect view.
        buttons += format_html(
            ' <button type="submit" class="button" id="oauth-disconnect" formaction="{}" '
            'formmethod="post" formnovalidate>{}</button>',
            reverse("admin:connectors_connection_oauth_disconnect", args=[connection.pk]),
            _("Disconnect"),
        )
    return format_html("{}{}", state, buttons)


def reconnect_buttons(connections) -> str:
    """The "Reconnect <name>" buttons of the OAuth2 ones among ``connections`` (a run or record that
    failed with OAUTH_GRANT_REVOKED shows them); "" when none signs in with OAuth2."""
    return format_html_join(
        " ",
        '<a class="button oauth-reconnect" href="{}">{}</a>',
        (
            (connect_url(connection), _("Reconnect %(name)s") % {"name": connection.name})
            for connection in connections
            if connection.auth_kind == AuthKind.OAUTH2
        ),
    )
