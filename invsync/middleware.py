"""Two-factor authentication for staff when the firm requires it (INVSYNC_REQUIRE_2FA_FOR_STAFF)."""

from __future__ import annotations

from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect
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
