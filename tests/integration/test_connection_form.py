"""The connection form a person fills without JSON (issue #14 point 4, #15 point 2's connection
step): adding takes two steps (the tool and its authentication, then the tool's own settings and
the authentication's secrets), undeclared settings are refused, and saving tests the connection,
showing the check's outcome (a failure's catalogue code and its resolution)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from connectors import registry, roles
from connectors.base import AUTH_FIELDS, AuthKind
from connectors.errors import ErrorCode, error_info
from connectors.models import Connection
from tests.factories import ClientFactory, ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = "admin:connectors_connection_add"


@pytest.fixture
def firm_client():
    return ClientFactory(name="Atelier")


@pytest.fixture
def accountant(client, firm_client):
    """A staff member (not a superuser) of the firm's client, with the Accountant role."""
    client.force_login(UserFactory(roles=[roles.ACCOUNTANT], clients=[firm_client]))
    return client


@pytest.fixture
def superuser(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    return client


def _second_step(http, firm_client, tool: str, auth_kind: str) -> str:
    """The add form's address for ``tool`` and ``auth_kind``, through the first step."""
    answer = http.get(
        reverse(ADD_URL),
        {"client": firm_client.pk, "name": "Books", "tool": tool, "auth_kind": auth_kind},
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    return answer["Location"]


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _fields(html: str) -> set[str]:
    return set(re.findall(r'name="([^"]+)"', html))


def _all_choices():
    return [
        (connector, auth.value)
        for connector in registry.providers()
        for auth in connector.auth_kinds
    ]


@pytest.mark.parametrize(
    ("connector", "auth_kind"),
    _all_choices(),
    ids=[f"{c.kind}-{c.key}-{a}" for c, a in _all_choices()],
)
def test_the_add_form_shows_the_tools_settings_and_the_auth_kinds_secrets_and_no_json(
    accountant, firm_client, connector, auth_kind
):
    url = _second_step(
        accountant, firm_client, f"{connector.kind.value}:{connector.key}", auth_kind
    )
    page = accountant.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    shown = _fields(html)
    declared = {f"setting__{setting.name}" for setting in connector.settings_fields}
    assert declared and declared <= shown
    secrets = {f"credential_{name}" for name in AUTH_FIELDS[AuthKind(auth_kind)]}
    other_secrets = {
        f"credential_{name}" for names in AUTH_FIELDS.values() for name in names
    } - secrets
    assert secrets <= shown
    assert not (other_secrets & shown)
    assert "settings" not in shown  # no JSON for people
    for setting in connector.settings_fields:  # each with its label and help
        assert str(setting.label) in html
        if setting.default:
            assert f'value="{setting.default}"' in html
    assert connector.name in html  # the chosen tool, named


def test_the_auth_kinds_offered_follow_the_tool(accountant, firm_client):
    def offered(tool: str) -> set[str]:
        page = accountant.get(
            reverse(ADD_URL), {"client": firm_client.pk, "name": "Books", "tool": tool}
        )
        assert page.status_code == 200
        return set(re.findall(r'name="auth_kind" value="([^"]+)"', page.content.decode()))

    assert offered("accounting:pennylane") == {"api_key", "oauth2"}
    assert offered("invoicing:einvoice_inbox") == {"none", "credentials"}
    # Tryton takes one authentication: the first step goes straight on to the second.
    answer = accountant.get(
        reverse(ADD_URL), {"client": firm_client.pk, "name": "Books", "tool": "invoicing:tryton"}
    )
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer["Location"]).query)["auth_kind"] == ["credentials"]
    # An authentication the tool does not accept is not taken.
    refused = accountant.get(
        reverse(ADD_URL),
        {"client": firm_client.pk, "name": "Books", "tool": "accounting:pennylane",
         "auth_kind": "credentials"},
    )  # fmt: skip
    assert refused.status_code == 200
    assert "auth_kind" in refused.context["form"].errors
    # The first page alone offers every tool, under its kind, by its display name.
    first = accountant.get(reverse(ADD_URL)).content.decode()
    assert "Pennylane" in first and "E-invoice inbox" in first
    assert 'name="auth_kind"' not in first
    # A link naming the kind (e.g. "add the accounting connection") offers that kind's tools.
    linked = accountant.get(reverse(ADD_URL), {"kind": "accounting", "client": firm_client.pk})
    accounting = linked.content.decode()
    assert "Pennylane" in accounting and "E-invoice inbox" not in accounting
    assert not linked.context["form"].errors  # not submitted yet
    assert linked.context["form"]["client"].value() == str(firm_client.pk)
    # A saved connection's page offers the authentications of its tool only.
    saved = ConnectionFactory(
        client=firm_client, kind="accounting", provider="pennylane", auth_kind="api_key"
    )
    page = accountant.get(reverse("admin:connectors_connection_change", args=[saved.pk]))
    offered_there = {
        value for value, _label in page.context["adminform"].form.fields["auth_kind"].choices
    }
    assert offered_there == {"api_key", "oauth2"}


def test_an_einvoice_inbox_saved_is_checked_and_says_so(accountant, firm_client):
    url = _second_step(accountant, firm_client, "invoicing:einvoice_inbox", "none")
    form = {
        "client": firm_client.pk,
        "name": "Books",
        "kind": "invoicing",
        "provider": "einvoice_inbox",
        "auth_kind": "none",
        "setting__siren": "732829320",
        "setting__uploads": "yes",
        "setting__imap_tls": "implicit",
        "setting__imap_folder": "INBOX",
    }
    answer = accountant.post(url, form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    connection = Connection.objects.get(name="Books")
    assert connection.settings == {"siren": "732829320"}
    assert connection.last_check_ok is True
    shown = _messages(answer)
    assert any(message.startswith("Connection checked:") for message in shown), shown


def test_a_typed_value_its_check_refuses_stays_on_the_form_with_the_reason(accountant, firm_client):
    url = _second_step(accountant, firm_client, "invoicing:einvoice_inbox", "none")
    answer = accountant.post(
        url,
        {"client": firm_client.pk, "name": "Books", "kind": "invoicing",
         "provider": "einvoice_inbox", "auth_kind": "none", "setting__siren": "123",
         "setting__folder": "relative/path"},
    )  # fmt: skip
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert "setting__siren" in errors and "setting__folder" in errors
    assert not Connection.objects.filter(name="Books").exists()
    html = answer.content.decode()
    assert 'value="relative/path"' in html  # nothing typed is lost


def test_a_required_setting_left_blank_is_asked_for_on_its_field(accountant, firm_client):
    url = _second_step(accountant, firm_client, "invoicing:tryton", "credentials")
    answer = accountant.post(
        url,
        {"client": firm_client.pk, "name": "Books", "kind": "invoicing", "provider": "tryton",
         "auth_kind": "credentials", "setting__database": "acme"},
    )  # fmt: skip
    assert answer.status_code == 200
    assert "setting__url" in answer.context["adminform"].form.errors


def test_an_undeclared_setting_is_refused(accountant, superuser, firm_client):
    # A superuser's JSON (under Advanced) may not name a setting the tool does not declare.
    url = _second_step(superuser, firm_client, "invoicing:einvoice_inbox", "none")
    page = superuser.get(url).content.decode()
    assert 'name="settings"' in page and "Advanced" in page
    answer = superuser.post(
        url,
        {"client": firm_client.pk, "name": "Books", "kind": "invoicing",
         "provider": "einvoice_inbox", "auth_kind": "none",
         "settings": json.dumps({"colour": "red"})},
    )  # fmt: skip
    assert answer.status_code == 200
    assert "colour" in " ".join(answer.context["adminform"].form.errors["settings"])
    assert not Connection.objects.filter(name="Books").exists()


def test_a_person_cannot_send_settings_as_json(client, firm_client):
    """The JSON is not a field of a non-superuser's form: posting it changes nothing."""
    user = UserFactory(roles=[roles.ACCOUNTANT], clients=[firm_client])
    client.force_login(user)
    connection = ConnectionFactory(
        client=firm_client, provider="einvoice_inbox", auth_kind="none", settings={}
    )
    url = reverse("admin:connectors_connection_change", args=[connection.pk])
    page = client.get(url)
    assert 'name="settings"' not in page.content.decode()
    form = {
        "client": firm_client.pk,
        "name": connection.name,
        "kind": "invoicing",
        "provider": "einvoice_inbox",
        "auth_kind": "none",
        "setting__siren": "732829320",
        "settings": json.dumps({"colour": "red"}),
    }
    answer = client.post(url, form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    connection.refresh_from_db()
    assert "colour" not in connection.settings


def test_an_oauth2_connection_saved_asks_to_connect_instead_of_checking(accountant, firm_client):
    url = _second_step(accountant, firm_client, "accounting:pennylane", "oauth2")
    html = accountant.get(url).content.decode()
    assert "credential_api_key" not in _fields(html)
    answer = accountant.post(
        url,
        {"client": firm_client.pk, "name": "Books", "kind": "accounting",
         "provider": "pennylane", "auth_kind": "oauth2",
         "setting__api_url": "https://app.pennylane.com/api/external/v2"},
    )  # fmt: skip
    connection = Connection.objects.get(name="Books")
    change_url = reverse("admin:connectors_connection_change", args=[connection.pk])
    assert answer.status_code == 302 and answer["Location"] == change_url
    assert any("Connect to Pennylane" in message for message in _messages(answer))
    assert connection.last_checked_at is None  # no check that must fail
    page = accountant.get(change_url).content.decode()
    assert 'id="oauth-connect"' in page


@pytest.mark.tryton
def test_a_tryton_connection_saved_with_a_wrong_password_shows_the_failed_checks_code(
    accountant, firm_client, tryton_invoicing
):
    url = _second_step(accountant, firm_client, "invoicing:tryton", "credentials")
    form = {
        "client": firm_client.pk,
        "name": "Books",
        "kind": "invoicing",
        "provider": "tryton",
        "auth_kind": "credentials",
        "setting__url": tryton_invoicing.url,
        "setting__database": tryton_invoicing.name,
        "credential_username": tryton_invoicing.login,
        "credential_password": "not-the-password",
    }
    answer = accountant.post(url, form)
    connection = Connection.objects.get(name="Books")  # saved: nothing typed is lost
    change_url = reverse("admin:connectors_connection_change", args=[connection.pk])
    assert answer.status_code == 302 and answer["Location"] == change_url
    failed = [m for m in _messages(answer) if "connection check failed" in m]
    code = ErrorCode.AUTHENTICATION_FAILED
    assert failed and code.value in failed[0], _messages(answer)
    assert error_info(code).resolution in failed[0]
    assert "not-the-password" not in failed[0]
    assert connection.last_check_ok is False
    assert connection.settings["database"] == tryton_invoicing.name

    # The right password typed on the change form: checked again, and it succeeds.
    answer = accountant.post(
        change_url,
        {**form, "credential_username": "", "credential_password": tryton_invoicing.password},
    )
    assert answer.status_code == 302
    assert any(m.startswith("Connection checked:") for m in _messages(answer)), _messages(answer)
    connection.refresh_from_db()
    assert connection.last_check_ok is True


def test_change_on_the_second_step_goes_back_to_the_first_with_everything_chosen(
    accountant, firm_client
):
    url = _second_step(accountant, firm_client, "accounting:pennylane", "api_key")
    html = accountant.get(url).content.decode()
    back = re.search(r'id="change-tool" href="([^"]+)"', html)
    assert back, html[:2000]
    page = accountant.get(back.group(1).replace("&amp;", "&"))
    assert page.status_code == 200  # the first step again, not straight back
    form = page.context["form"]
    assert form["client"].value() == str(firm_client.pk)
    assert form["name"].value() == "Books"
    assert form["tool"].value() == "accounting:pennylane"
    assert form["auth_kind"].value() == "api_key"
