"""Two-factor authentication for staff when the firm requires it (INVSYNC_REQUIRE_2FA_FOR_STAFF),
and query strings with NUL characters refused before they reach a query."""

from __future__ import annotations

from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse


class RequireStaffTOTPMiddleware:
    """Sends a signed-in staff user without an activated TOTP authenticator to allauth's TOTP
    setup page, wherever they were going, until they have one. allauth's own pages (sign-out,
    re-authentication, the setup itself), the admin's sign-out and static files stay reachable."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if self._must_activate_totp(request):
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    def _must_activate_totp(self, request: HttpRequest) -> bool:
        if not settings.INVSYNC_REQUIRE_2FA_FOR_STAFF:
            return False
        user = request.user
        if not (user.is_authenticated and user.is_staff) or _always_allowed(request.path_info):
            return False
        return not get_mfa_adapter().is_mfa_enabled(user, types=[Authenticator.Type.TOTP])


def _always_allowed(path: str) -> bool:
    static_url = settings.STATIC_URL or ""
    if static_url and path.startswith("/" + static_url.lstrip("/")):
        return True
    try:
        match = resolve(path)
    except Resolver404:
        return True  # a 404 either way
    if match.func.__module__.startswith("allauth."):
        return True
    return match.view_name == "admin:logout"


class RejectNulInQueryMiddleware:
    """Answers 400 to a URL whose query string holds a NUL character (``%00``). Admin searches
    and list filters put query-string values straight into SQL, and PostgreSQL refuses NUL in
    text (psycopg raises, the page would crash). Forms need no such guard: their text and choice
    fields refuse NUL with a message on the field."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest(
                "The address holds a NUL character (%00), which no search or filter accepts.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
