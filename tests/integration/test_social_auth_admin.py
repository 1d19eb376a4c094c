"""social-auth's three admin pages (associations, nonces, user social auths) are for superusers
only until OAuth2 connections use them (invsync/admin.py): a staff user holding every permission
sees them neither in the index nor at their URLs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SOCIAL_MODELS = ("association", "nonce", "usersocialauth")


def _changelists() -> list[str]:
    return [reverse(f"admin:social_django_{model}_changelist") for model in SOCIAL_MODELS]


def _add_pages() -> list[str]:
    return [reverse(f"admin:social_django_{model}_add") for model in SOCIAL_MODELS]


@pytest.fixture
def staff_with_every_permission():
    user = UserFactory(username="all-perms")
    user.user_permissions.set(Permission.objects.all())
    assert user.has_perm("social_django.view_usersocialauth")  # granted, yet refused below
    return user


def test_a_staff_user_with_every_permission_does_not_see_social_auth_in_the_admin_index(
    client, staff_with_every_permission
):
    client.force_login(staff_with_every_permission)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    labels = {app["app_label"] for app in page.context["app_list"]}
    assert "social_django" not in labels
    assert "syncs" in labels  # the rest of the admin is there
    for url in _changelists():
        assert url not in page.content.decode()
    assert client.get(reverse("admin:app_list", args=["social_django"])).status_code == 404


def test_a_staff_user_with_every_permission_cannot_reach_social_auth_pages(
    client, staff_with_every_permission
):
    client.force_login(staff_with_every_permission)
    for url in _changelists() + _add_pages():
        assert client.get(url).status_code == 403, url


def test_a_superuser_sees_and_reaches_social_auth_pages(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    page = client.get(reverse("admin:index"))
    assert "social_django" in {app["app_label"] for app in page.context["app_list"]}
    for url in _changelists() + _add_pages():
        assert client.get(url).status_code == 200, url
