"""Who gets in, and what they reach once in.

Sign-in is allauth's: email and password, failed attempts rate-limited, a TOTP code for those who
activated one (required of staff when INVSYNC_REQUIRE_2FA_FOR_STAFF is on), no sign-up; the admin's
own login page sends there. The roles (connectors.roles) are groups made by a data migration. A
user reaches only the objects of the clients they are a member of: in every changelist, by typing
another client's object URL, through the custom admin views, actions, inline formsets and the
autocomplete view; superusers reach everything."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client as HttpClient
from django.urls import URLPattern, reverse

from connectors import roles
from connectors.models import Client, Connection, LookupCache
from mappings.models import ConfigChange, JournalMapping, SyncFlow, VatMapping
from syncs.models import PartnerLink, SyncedRecord, SyncRun
from syncs.serialization import invoice_to_json
from tests.factories import (
    ClientFactory,
    InvoiceFactory,
    JournalMappingFactory,
    PartnerLinkFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.factories.models import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    # allauth counts failed sign-ins per IP address in the cache, and every test client is
    # 127.0.0.1: start each test with no count.
    cache.clear()
    yield
    cache.clear()


def _sign_in(client: HttpClient, email: str, password: str = PASSWORD, next_url: str = ""):
    url = reverse("account_login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"login": email, "password": password})


def _signed_in(client: HttpClient) -> bool:
    return "_auth_user_id" in client.session


def _totp_code(secret: str) -> str:
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


# Sign-in


def test_staff_sign_in_with_email_and_password_and_land_in_the_admin(client):
    UserFactory(email="ann@firm.example")
    assert client.get(reverse("account_login")).status_code == 200
    response = _sign_in(client, "ann@firm.example")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_sign_in_takes_an_email_not_a_username(client):
    UserFactory(username="ann", email="ann@firm.example")
    response = _sign_in(client, "ann")
    assert response.status_code == 200
    assert not _signed_in(client)


def test_the_admin_login_page_sends_to_allauths_sign_in_and_back(client):
    UserFactory(email="ann@firm.example")
    flows = reverse("admin:mappings_syncflow_changelist")
    # The admin sends an anonymous visitor to its own login page, which sends on to allauth's.
    to_admin_login = client.get(flows)
    assert to_admin_login.status_code == 302
    assert to_admin_login["Location"].startswith(reverse("admin:login"))
    to_allauth = client.get(to_admin_login["Location"])
    assert to_allauth.status_code == 302
    assert to_allauth["Location"] == f"{reverse('account_login')}?{urlencode({'next': flows})}"
    response = _sign_in(client, "ann@firm.example", next_url=flows)
    assert response["Location"] == flows


def test_the_admin_login_page_shows_no_login_form_of_its_own(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert client.post(reverse("admin:login"), {"username": "x", "password": "y"})[
        "Location"
    ].startswith(reverse("account_login"))


def test_a_signed_in_user_who_is_not_staff_is_refused_by_the_admin(client):
    UserFactory(email="guest@firm.example", is_staff=False)
    _sign_in(client, "guest@firm.example")
    assert _signed_in(client)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403


def test_repeated_wrong_passwords_are_rate_limited(client):
    UserFactory(email="ann@firm.example")
    for _ in range(5):
        response = _sign_in(client, "ann@firm.example", password="wrong password")
        assert response.status_code == 200
        assert "not correct" in response.content.decode()
    # The sixth attempt is refused before the password is even checked, the right one included.
    response = _sign_in(client, "ann@firm.example")
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert not _signed_in(client)


def test_sign_up_is_closed(client):
    url = reverse("account_signup")
    page = client.get(url)
    assert page.status_code == 200
    assert "account/signup_closed.html" in [t.name for t in page.templates]
    client.post(
        url,
        {
            "email": "intruder@example.com",
            "username": "intruder",
            "password1": "A long enough passphrase 42",
            "password2": "A long enough passphrase 42",
        },
    )
    assert not get_user_model().objects.filter(email="intruder@example.com").exists()
    assert not _signed_in(client)


# Two-factor authentication


def test_by_default_staff_reach_the_admin_without_two_factor(client, settings):
    settings.INVSYNC_REQUIRE_2FA_FOR_STAFF = False
    UserFactory(email="ann@firm.example")
    _sign_in(client, "ann@firm.example")
    assert client.get("/admin/").status_code == 200


def test_with_2fa_required_staff_without_totp_must_set_it_up_first(client, settings):
    settings.INVSYNC_REQUIRE_2FA_FOR_STAFF = True
    user = UserFactory(email="ann@firm.example")
    _sign_in(client, "ann@firm.example")
    activate = reverse("mfa_activate_totp")
    for url in ("/admin/", reverse("admin:mappings_syncflow_changelist"), "/admin/nowhere/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == activate, url
    # Their account pages and signing out stay open.
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("account_logout")).status_code == 200

    # allauth asks for the password again before a second factor is set up; then the setup page
    # shows the QR code, and a code from the authenticator app activates it.
    to_password = client.get(activate)
    assert to_password["Location"].startswith(reverse("account_reauthenticate"))
    response = client.post(to_password["Location"], {"password": PASSWORD})
    assert response["Location"] == activate
    page = client.get(activate)
    assert page.status_code == 200
    assert "data:image/svg+xml" in page.content.decode() or "<svg" in page.content.decode()
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post(activate, {"code": _totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert client.get("/admin/").status_code == 200


def test_with_2fa_required_staff_with_totp_sign_in_with_their_code(client, settings):
    settings.INVSYNC_REQUIRE_2FA_FOR_STAFF = True
    user = UserFactory(email="ann@firm.example")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)

    response = _sign_in(client, "ann@firm.example")
    assert response["Location"] == reverse("mfa_authenticate")
    assert not _signed_in(client)  # the password alone is not enough
    wrong = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert wrong.status_code == 200 and not _signed_in(client)
    response = client.post(reverse("mfa_authenticate"), {"code": _totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_2fa_requirement_leaves_users_who_are_not_staff_alone(client, settings):
    settings.INVSYNC_REQUIRE_2FA_FOR_STAFF = True
    UserFactory(email="guest@firm.example", is_staff=False)
    _sign_in(client, "guest@firm.example")
    assert client.get(reverse("account_email")).status_code == 200


# Roles


def _as_sets(role_permissions: dict) -> dict[str, set[str]]:
    return {role: set(names) for role, names in role_permissions.items()}


def test_the_roles_migration_makes_the_groups_of_connectors_roles():
    migration = importlib.import_module("connectors.migrations.0003_roles_config_changes")
    assert _as_sets(migration.ROLE_PERMISSIONS) == _as_sets(roles.ROLE_PERMISSIONS)
    in_database = {
        group.name: {
            f"{permission.content_type.app_label}.{permission.codename}"
            for permission in group.permissions.select_related("content_type")
        }
        for group in Group.objects.filter(name__in=roles.ROLES)
    }
    assert in_database == _as_sets(roles.ROLE_PERMISSIONS)


@pytest.mark.parametrize("role", roles.ROLES)
def test_a_user_holds_the_permissions_of_their_role(role):
    user = UserFactory(roles=[role])
    user = get_user_model().objects.get(pk=user.pk)  # no permission cache
    assert user.get_all_permissions() == set(roles.ROLE_PERMISSIONS[role])


# Scoping: two clients with everything, a user who is a member of the first only

MODELS = (Client, Connection, SyncFlow, SyncRun, SyncedRecord, PartnerLink)
# The path from each model to its client.
CLIENT_PATH = {
    Client: "pk",
    Connection: "client",
    SyncFlow: "client",
    VatMapping: "flow__client",
    JournalMapping: "flow__client",
    SyncRun: "flow__client",
    SyncedRecord: "flow__client",
    PartnerLink: "flow__client",
    LookupCache: "connection__client",
}
MISSING_PK = 987_654
# Every name of client B's objects holds it: no page a member of A sees may show it.
B_MARK = "Bravo"


def _build_client(name: str) -> dict:
    client = ClientFactory(name=f"{name} Client")
    flow = SyncFlowFactory(
        client=client,
        name=f"{name} flow",
        invoicing_connection__name=f"{name} invoicing",
        accounting_connection__name=f"{name} books",
    )
    journal = JournalMappingFactory(flow=flow, source_journal=f"{name}-VT", target_journal="REV")
    run = SyncRunFactory(flow=flow, status="partial", failed_count=1)
    record = SyncedRecordFactory(
        flow=flow,
        last_run=run,
        number=f"{name}-0001",
        partner_name=f"{name} customer",
        snapshot=invoice_to_json(InvoiceFactory(number=f"{name}-0001")),
    )
    link = PartnerLinkFactory(
        flow=flow, source_partner_name=f"{name} customer", target_partner_name=f"{name} customer"
    )
    return {
        Client: client,
        Connection: flow.invoicing_connection,
        SyncFlow: flow,
        JournalMapping: journal,
        SyncRun: run,
        SyncedRecord: record,
        PartnerLink: link,
    }


@pytest.fixture
def world(memory_connectors):
    return {"A": _build_client("Alpha"), "B": _build_client(B_MARK)}


@dataclass
class Member:
    role: str
    user: object
    http: HttpClient

    def may(self, action: str, model) -> bool:
        meta = model._meta
        return f"{meta.app_label}.{action}_{meta.model_name}" in roles.ROLE_PERMISSIONS[self.role]

    def may_view(self, model) -> bool:
        return self.may("view", model) or self.may("change", model)


def _member(role: str, client_a: Client) -> Member:
    user = UserFactory(username=role.lower(), roles=[role], clients=[client_a])
    http = HttpClient()
    http.force_login(user)
    return Member(role, user, http)


@pytest.fixture(params=roles.ROLES)
def member(request, world) -> Member:
    return _member(request.param, world["A"][Client])


@pytest.fixture
def spy(monkeypatch):
    """The services the admin's actions and views call, replaced by recorders of the objects they
    were given (so nothing is queued or called on a tool)."""
    calls: dict[str, list[int]] = {"sync": [], "retry": [], "check": [], "refresh": []}

    def retry(*, records):
        pks = [record.pk for record in records]
        calls["retry"].extend(pks)
        return len(pks)

    def check(*, connection):
        calls["check"].append(connection.pk)
        return SimpleNamespace(ok=True, message="ok")

    monkeypatch.setattr(
        "syncs.services.flow_sync_enqueue",
        lambda *, flow, trigger="manual": calls["sync"].append(flow.pk) or "task",
    )
    monkeypatch.setattr("syncs.services.records_retry_enqueue", retry)
    monkeypatch.setattr(
        "syncs.services.flow_lookups_refresh",
        lambda *, flow, **kwargs: calls["refresh"].append(flow.pk),
    )
    monkeypatch.setattr("connectors.admin.connection_check", check)
    return calls


def _state_of(client: Client) -> dict:
    """Every row of one client, every field: equal before and after means nothing changed."""
    return {
        model.__name__: list(
            model.objects.filter(**{CLIENT_PATH[model]: client.pk}).order_by("pk").values()
        )
        for model in CLIENT_PATH
    }


def _scoped(model, client: Client):
    return model.objects.filter(**{CLIENT_PATH[model]: client.pk})


def _url(model, view: str, *args) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def _text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _assert_b_untouched(world, before: dict, spy: dict) -> None:
    assert _state_of(world["B"][Client]) == before
    b_pks = {
        "sync": {world["B"][SyncFlow].pk},
        "retry": set(_scoped(SyncedRecord, world["B"][Client]).values_list("pk", flat=True)),
        "check": set(_scoped(Connection, world["B"][Client]).values_list("pk", flat=True)),
        "refresh": {world["B"][SyncFlow].pk},
    }
    for service, pks in b_pks.items():
        assert not pks & set(spy[service]), f"{service} was called on client B's objects"


def test_every_changelist_shows_only_the_members_clients_objects(member, world):
    for model in MODELS:
        response = member.http.get(_url(model, "changelist"))
        if not member.may_view(model):
            assert response.status_code == 403, model.__name__
            continue
        assert response.status_code == 200, model.__name__
        shown = {obj.pk for obj in response.context["cl"].result_list}
        expected = set(_scoped(model, world["A"][Client]).values_list("pk", flat=True))
        assert expected and shown == expected, model.__name__
        assert B_MARK not in _text(response), model.__name__


def test_filtering_a_changelist_by_another_client_shows_none_of_its_rows(member, world):
    b_flow, b_client = world["B"][SyncFlow], world["B"][Client]
    queries = {
        SyncRun: {"flow__id__exact": b_flow.pk},
        SyncedRecord: {"flow__id__exact": b_flow.pk},
        PartnerLink: {"flow__id__exact": b_flow.pk},
        Connection: {"client__id__exact": b_client.pk},
        SyncFlow: {"client__id__exact": b_client.pk},
    }
    for model, query in queries.items():
        if not member.may_view(model):
            continue
        response = member.http.get(_url(model, "changelist"), query)
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert not shown & set(_scoped(model, b_client).values_list("pk", flat=True))
        assert B_MARK not in _text(response), model.__name__


def test_another_clients_objects_answer_as_if_they_did_not_exist(member, world, spy):
    before = _state_of(world["B"][Client])
    for model in MODELS:
        theirs = world["B"][model]
        for view in ("change", "history", "delete"):
            for method, data in (("get", {}), ("post", {"name": "Taken", "post": "yes"})):
                send = getattr(member.http, method)
                response = send(_url(model, view, theirs.pk), data)
                missing = send(_url(model, view, MISSING_PK), data)
                where = f"{method.upper()} {model.__name__} {view}"
                assert response.status_code in (302, 403, 404), where
                # Exactly what an id that does not exist gets: nothing tells that it does.
                assert response.status_code == missing.status_code, where
                if response.status_code == 302:
                    assert response["Location"] == reverse("admin:index"), where
                assert B_MARK not in _text(response), where
    _assert_b_untouched(world, before, spy)


def _custom_admin_urls() -> list[tuple[type, URLPattern]]:
    """The URLs invsync's admins add to Django's own (previews, downloads, dashboards...)."""
    found = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in {"connectors", "mappings", "syncs"}:
            continue
        standard = {str(p.pattern) for p in admin.ModelAdmin.get_urls(model_admin)}
        found += [
            (model, pattern)
            for pattern in model_admin.get_urls()
            if isinstance(pattern, URLPattern) and str(pattern.pattern) not in standard
        ]
    return found


# What the id in a custom URL stands for, by the name of its parameter.
URL_PARAMETERS = {
    "flow_pk": SyncFlow,
    "run_pk": SyncRun,
    "record_pk": SyncedRecord,
    "link_pk": PartnerLink,
    "client_pk": Client,
    "connection_pk": Connection,
}


def _custom_url(model, pattern: URLPattern, objects: dict | None) -> str:
    kwargs = {}
    for name in pattern.pattern.converters:
        target = model if name in {"pk", "object_id"} else URL_PARAMETERS.get(name)
        if target is None:
            pytest.fail(f"Teach test_access what {name!r} in {pattern.pattern} stands for.")
        kwargs[name] = objects[target].pk if objects else MISSING_PK
    return reverse(f"admin:{pattern.name}", kwargs=kwargs)


def test_there_are_custom_admin_urls_to_check():
    names = {pattern.name for _, pattern in _custom_admin_urls()}
    assert {
        "syncs_syncedrecord_preview",
        "syncs_syncedrecord_invoice_json",
        "syncs_syncedrecord_config_json",
    } <= names


def test_custom_admin_urls_of_another_clients_objects_answer_404(member, world, spy):
    before = _state_of(world["B"][Client])
    # A POST body that would act on client B wherever a page takes one (e.g. retry a flow's
    # failures, refresh lookups).
    data = {"action": "retry_all", "flow": str(world["B"][SyncFlow].pk), "refresh": "1"}
    for model, pattern in _custom_admin_urls():
        if not pattern.pattern.converters:
            # A page over all the user's flows: none of client B's may show.
            for method in ("get", "post"):
                response = getattr(member.http, method)(reverse(f"admin:{pattern.name}"), data)
                assert B_MARK not in _text(response), f"{method} {pattern.name}"
            continue
        for method in ("get", "post"):
            send = getattr(member.http, method)
            theirs = send(_custom_url(model, pattern, world["B"]), data)
            missing = send(_custom_url(model, pattern, None), data)
            own = send(_custom_url(model, pattern, world["A"]), data)
            where = f"{method.upper()} {pattern.name}"
            assert theirs.status_code in (403, 404, 405), where
            assert theirs.status_code == missing.status_code, where
            if own.status_code < 400:
                # The user may use this page on their own client's objects, not on B's.
                assert theirs.status_code == 404, where
            assert B_MARK not in _text(theirs), where
    _assert_b_untouched(world, before, spy)


def _action_names(model) -> list[str]:
    model_admin = admin.site._registry[model]
    declared = [a if isinstance(a, str) else a.__name__ for a in (model_admin.actions or ())]
    return ["delete_selected", *declared]


def test_actions_on_another_clients_objects_have_no_effect(member, world, spy):
    before = _state_of(world["B"][Client])
    for model in MODELS:
        for action in _action_names(model):
            response = member.http.post(
                _url(model, "changelist"),
                {"action": action, "_selected_action": [world["B"][model].pk], "post": "yes"},
            )
            assert B_MARK not in _text(response), f"{model.__name__} {action}"
            assert "attachment" not in response.get("Content-Disposition", "")
    _assert_b_untouched(world, before, spy)


def test_the_autocomplete_offers_only_the_members_clients_objects(member, world):
    # (source model, its foreign key) -> the model whose admin answers.
    lookups = [
        (Connection, "client", Client),
        (SyncFlow, "invoicing_connection", Connection),
        (SyncFlow, "accounting_connection", Connection),
        (SyncRun, "flow", SyncFlow),
    ]
    for source, field, target in lookups:
        for term in ("", B_MARK):
            response = member.http.get(
                reverse("admin:autocomplete"),
                {
                    "app_label": source._meta.app_label,
                    "model_name": source._meta.model_name,
                    "field_name": field,
                    "term": term,
                },
            )
            where = f"{source.__name__}.{field} {term!r}"
            if not member.may_view(target):
                assert response.status_code == 403, where
                continue
            assert response.status_code == 200, where
            ids = {int(result["id"]) for result in response.json()["results"]}
            expected = set(
                _scoped(target, world["A"][Client])
                .complex_filter(source._meta.get_field(field).get_limit_choices_to())
                .values_list("pk", flat=True)
            )
            assert ids == (set() if term else expected), where


# Every list filter, select, search and autocomplete of every admin page is scoped like the rows

# The path to the client of every client-owned model an admin page may offer as a choice.
OWNED_BY = {**CLIENT_PATH, ConfigChange: "client"}


def _pks(model, client: Client) -> set[int]:
    return set(model.objects.filter(**{OWNED_BY[model]: client.pk}).values_list("pk", flat=True))


def _assert_offers_only_a(choices, related_model, world, where: str, mine=("A",)) -> None:
    """``choices``: (value, label) pairs offered for ``related_model``; none may be client B's,
    all must be of the member's clients (``mine``: keys of ``world``)."""
    offered = {str(value) for value, _ in choices if value not in (None, "")}
    for _, label in choices:
        assert B_MARK not in str(label), f"{where}: offers {label!r}"
    if related_model in OWNED_BY:
        theirs = {str(pk) for pk in _pks(related_model, world["B"][Client])}
        assert not offered & theirs, f"{where}: offers client B's {related_model.__name__} ids"
        allowed = {str(pk) for key in mine for pk in _pks(related_model, world[key][Client])}
        assert offered <= allowed, where


def _assert_filters_offer_only_a(response, world, where: str, mine=("A",)) -> int:
    """Checks every filter of the changelist; returns how many filter on a relation."""
    related = 0
    changelist = response.context["cl"]
    for spec in changelist.filter_specs:
        name = f"{where} filter {spec.title!r}"
        for choice in spec.choices(changelist):
            assert B_MARK not in str(choice.get("display", "")), f"{name}: {choice['display']!r}"
        field = getattr(spec, "field", None)
        if field is not None and field.is_relation:
            _assert_offers_only_a(spec.lookup_choices, field.related_model, world, name, mine)
            related += 1
        else:
            for choice in getattr(spec, "lookup_choices", None) or ():
                label = choice[-1] if isinstance(choice, tuple | list) else choice
                assert B_MARK not in str(label), f"{name}: {label!r}"
    return related


def _assert_selects_offer_only_a(response, world, where: str) -> None:
    # The connection add form's first step is a form of its own (tool and authentication).
    context = response.context
    forms = [context["adminform"].form if "adminform" in context else context["form"]]
    for inline in response.context.get("inline_admin_formsets") or ():
        forms += list(inline.formset.forms)
    for form in forms:
        for field_name, field in form.fields.items():
            queryset = getattr(field, "queryset", None)
            if queryset is None or field.widget.is_hidden:
                continue  # a hidden row id offers no choice (the inline access test covers it)
            choices = [(obj.pk, str(obj)) for obj in queryset]
            _assert_offers_only_a(choices, queryset.model, world, f"{where} select {field_name}")


def _registered_admins():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def test_every_admin_changelist_filter_offers_only_the_members_clients(member, world):
    # A member of two clients (A and C), so that the filters on a client or flow have two
    # choices and show (Django hides a filter with one).
    world["C"] = _build_client("Charlie")
    world["C"][Client].members.add(member.user)
    walked, related_filters = [], 0
    for model, model_admin in _registered_admins():
        url = _url(model, "changelist")
        response = member.http.get(url)
        where = f"{member.role} {model._meta.label} changelist"
        if not model_admin.has_view_or_change_permission(_request_of(member, url)):
            assert response.status_code == 403, where
            continue
        assert response.status_code == 200, where
        walked.append(model)
        assert B_MARK not in _text(response), where
        related_filters += _assert_filters_offer_only_a(response, world, where, ("A", "C"))
    # The walk reached the pages the roles read, among them the configuration-change list, and
    # their filters by client or flow.
    assert {Client, Connection, SyncFlow, SyncRun, SyncedRecord, ConfigChange} <= set(walked)
    assert related_filters >= 5


def test_the_configuration_change_list_filters_by_the_members_clients_only(world):
    # A member of two clients gets the "By client" filter (one client needs none).
    charlie = _build_client("Charlie")[Client]
    viewer = _member(roles.VIEWER, world["A"][Client])
    charlie.members.add(viewer.user)
    response = viewer.http.get(_url(ConfigChange, "changelist"))
    (by_client,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "client"]
    offered = sorted(label for _, label in by_client.lookup_choices)
    assert offered == sorted([str(world["A"][Client]), str(charlie)])
    assert "Bravo Client" not in _text(response)
    assert f"client__id__exact={world['B'][Client].pk}" not in _text(response)


def test_the_audit_of_a_flow_moved_to_another_client_does_not_show_it_to_the_old_client(world):
    from mappings.services import flow_update

    a, b = world["A"], world["B"]
    moved = SyncFlowFactory(client=a[Client], name="Alpha second flow")
    old_record = ConfigChange.objects.filter(flow=moved).get()
    # Moved with its history (recorded under client A) to client B, and renamed there.
    flow_update(
        flow=moved,
        data={
            "client": b[Client],
            "name": f"{B_MARK} moved flow",
            "enabled": False,
            "invoicing_connection": b[SyncFlow].invoicing_connection,
            "accounting_connection": b[SyncFlow].accounting_connection,
        },
    )
    viewer = _member(roles.VIEWER, a[Client])
    listing = viewer.http.get(_url(ConfigChange, "changelist"))
    assert old_record in listing.context["cl"].result_list  # client A's history stays A's
    assert B_MARK not in _text(listing)
    detail = viewer.http.get(_url(ConfigChange, "change", old_record.pk))
    assert detail.status_code == 200
    assert B_MARK not in _text(detail)
    assert "Alpha second flow" in _text(detail)
    # Client B's audit starts the flow afresh: nothing of client A's (names, connections) shows.
    b_viewer = UserFactory(username="b-viewer", roles=[roles.VIEWER], clients=[b[Client]])
    b_http = HttpClient()
    b_http.force_login(b_viewer)
    (arrival,) = ConfigChange.objects.filter(flow=moved, client=b[Client])
    assert arrival.action == "created"
    for url in (_url(ConfigChange, "changelist"), _url(ConfigChange, "change", arrival.pk)):
        page = _text(b_http.get(url))
        assert "Alpha" not in page, url


def test_a_filter_declared_on_a_relation_any_way_is_the_scoped_one():
    from connectors.admin_filters import ClientScopedRelatedFilter, scoped_list_filter

    scoped = ClientScopedRelatedFilter
    declared = ["action", "client", ("flow", admin.RelatedFieldListFilter), "flow__client"]
    assert scoped_list_filter(ConfigChange, declared) == [
        "action", ("client", scoped), ("flow", scoped), ("flow__client", scoped),
    ]  # fmt: skip


def test_searching_any_changelist_finds_none_of_another_clients_rows(member, world):
    for model, model_admin in _registered_admins():
        if model not in OWNED_BY or not model_admin.search_fields:
            continue
        response = member.http.get(_url(model, "changelist"), {"q": B_MARK})
        if response.status_code == 403:
            continue
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert not shown & _pks(model, world["B"][Client]), model.__name__


def test_every_autocomplete_offers_only_the_members_clients_objects(member, world):
    """Every foreign key of every registered model, asked of the autocomplete view."""
    asked = 0
    for source, _ in _registered_admins():
        for field in source._meta.get_fields():
            if not (field.many_to_one or field.many_to_many) or not field.concrete:
                continue
            for term in ("", B_MARK, "Alpha"):
                response = member.http.get(
                    reverse("admin:autocomplete"),
                    {
                        "app_label": source._meta.app_label,
                        "model_name": source._meta.model_name,
                        "field_name": field.name,
                        "term": term,
                    },
                )
                where = f"{member.role} autocomplete {source.__name__}.{field.name} {term!r}"
                if response.status_code in (403, 404):
                    continue
                assert response.status_code == 200, where
                asked += 1
                results = response.json()["results"]
                choices = [(result["id"], result["text"]) for result in results]
                _assert_offers_only_a(choices, field.related_model, world, where)
    assert asked  # at least the connections and flows a member reads answered


def test_every_add_and_change_form_select_offers_only_the_members_clients(member, world):
    checked = 0
    for model, _ in _registered_admins():
        if model not in OWNED_BY:
            continue
        pages = [_url(model, "add")]
        own = _pks(model, world["A"][Client])
        if own:
            pages.append(_url(model, "change", min(own)))
        for url in pages:
            response = member.http.get(url)
            where = f"{member.role} {url}"
            if response.status_code in (302, 403):
                continue
            assert response.status_code == 200, where
            assert B_MARK not in _text(response), where
            _assert_selects_offer_only_a(response, world, where)
            checked += 1
    assert checked


def _request_of(member: Member, path: str):
    from django.test import RequestFactory

    request = RequestFactory().get(path)
    request.user = member.user
    return request


def test_a_flow_page_shows_only_its_own_mappings(member, world):
    if not member.may_view(SyncFlow):
        pytest.skip("no access to flows")
    html = _text(member.http.get(_url(SyncFlow, "change", world["A"][SyncFlow].pk)))
    assert "Alpha-VT" in html
    assert B_MARK not in html


# What each role may do on its own client's objects


def _form_data(response) -> dict:
    """The POST data of an admin change form as the browser would send it unchanged."""
    data: dict = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            if value is True:
                value = "on"
            data[form.add_prefix(name)] = (
                [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
            )

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def _act(member: Member, model, action: str, *objects):
    return member.http.post(
        _url(model, "changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
    )


def test_a_viewer_reads_everything_and_changes_nothing(world, spy):
    viewer = _member(roles.VIEWER, world["A"][Client])
    a = world["A"]
    before = _state_of(a[Client])
    for model in MODELS:
        assert viewer.http.get(_url(model, "change", a[model].pk)).status_code == 200
        response = viewer.http.post(_url(model, "change", a[model].pk), {"name": "Changed"})
        assert response.status_code == 403, model.__name__
        response = viewer.http.post(_url(model, "delete", a[model].pk), {"post": "yes"})
        assert response.status_code == 403, model.__name__
    assert viewer.http.get(_url(SyncFlow, "add")).status_code == 403
    _act(viewer, SyncFlow, "sync_now", a[SyncFlow])
    _act(viewer, SyncedRecord, "retry", a[SyncedRecord])
    _act(viewer, Connection, "test_connection", a[Connection])
    assert spy == {"sync": [], "retry": [], "check": [], "refresh": []}
    assert _state_of(a[Client]) == before


def test_an_operator_syncs_and_retries_but_cannot_change_a_flow(world, spy):
    operator = _member(roles.OPERATOR, world["A"][Client])
    a, b = world["A"], world["B"]
    _act(operator, SyncedRecord, "retry", a[SyncedRecord], b[SyncedRecord])
    assert spy["retry"] == [a[SyncedRecord].pk]
    _act(operator, SyncFlow, "sync_now", a[SyncFlow], b[SyncFlow])
    assert spy["sync"] == [a[SyncFlow].pk]

    url = _url(SyncFlow, "change", a[SyncFlow].pk)
    assert operator.http.get(url).status_code == 200  # read-only
    assert operator.http.post(url, {"name": "Changed"}).status_code == 403
    assert SyncFlow.objects.get(pk=a[SyncFlow].pk).name == "Alpha flow"
    link = a[PartnerLink]
    assert operator.http.post(_url(PartnerLink, "delete", link.pk), {"post": "yes"}).status_code
    assert PartnerLink.objects.filter(pk=link.pk).exists()


def test_an_accountant_changes_a_flow_but_does_not_retry(world, spy):
    accountant = _member(roles.ACCOUNTANT, world["A"][Client])
    flow = world["A"][SyncFlow]
    url = _url(SyncFlow, "change", flow.pk)
    data = _form_data(accountant.http.get(url))
    data["name"] = "Alpha flow, renamed"
    response = accountant.http.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert SyncFlow.objects.get(pk=flow.pk).name == "Alpha flow, renamed"

    _act(accountant, SyncedRecord, "retry", world["A"][SyncedRecord])
    _act(accountant, SyncFlow, "sync_now", flow)
    assert spy["retry"] == [] and spy["sync"] == []


def test_an_accountant_resets_a_partner_link(world):
    accountant = _member(roles.ACCOUNTANT, world["A"][Client])
    link = world["A"][PartnerLink]
    response = accountant.http.post(_url(PartnerLink, "delete", link.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not PartnerLink.objects.filter(pk=link.pk).exists()


def test_an_accountant_chooses_only_among_their_clients_rows(world):
    accountant = _member(roles.ACCOUNTANT, world["A"][Client])
    a, b = world["A"], world["B"]
    url = _url(SyncFlow, "change", a[SyncFlow].pk)
    page = accountant.http.get(url)
    form = page.context["adminform"].form
    assert set(form.fields["client"].queryset) == {a[Client]}
    assert set(form.fields["accounting_connection"].queryset) == {a[SyncFlow].accounting_connection}

    data = _form_data(page)
    data["accounting_connection"] = str(b[SyncFlow].accounting_connection.pk)
    data["client"] = str(b[Client].pk)
    response = accountant.http.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "accounting_connection" in errors and "client" in errors
    assert SyncFlow.objects.get(pk=a[SyncFlow].pk).client == a[Client]

    add_url = _url(Connection, "add") + "?kind=accounting&provider=memory&auth_kind=api_key"
    add = _form_data(accountant.http.get(add_url))
    add.update(
        client=str(b[Client].pk),
        name="Sneaky",
        kind="accounting",
        provider="memory",
        auth_kind="api_key",
        settings="{}",
    )
    response = accountant.http.post(add_url, add)
    assert response.status_code == 200
    assert "client" in response.context["adminform"].form.errors
    assert not Connection.objects.filter(name="Sneaky").exists()


def test_an_accountant_cannot_reach_another_flows_mappings_through_the_inline(world):
    accountant = _member(roles.ACCOUNTANT, world["A"][Client])
    a, b = world["A"], world["B"]
    theirs = b[JournalMapping]
    url = _url(SyncFlow, "change", a[SyncFlow].pk)
    data = _form_data(accountant.http.get(url))
    data["journal_mappings-0-id"] = str(theirs.pk)
    data["journal_mappings-0-source_journal"] = "TAKEN"
    accountant.http.post(url, data)
    assert JournalMapping.objects.get(pk=theirs.pk).source_journal == theirs.source_journal
    assert JournalMapping.objects.get(pk=theirs.pk).flow == b[SyncFlow]


def test_a_staff_user_of_no_client_sees_no_rows(world):
    loner = UserFactory(username="loner", roles=[roles.VIEWER])
    http = HttpClient()
    http.force_login(loner)
    for model in MODELS:
        response = http.get(_url(model, "changelist"))
        assert list(response.context["cl"].result_list) == [], model.__name__


def test_superusers_see_every_clients_objects(world, client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    for model in MODELS:
        response = client.get(_url(model, "changelist"))
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert {world["A"][model].pk, world["B"][model].pk} <= shown, model.__name__
        assert client.get(_url(model, "change", world["B"][model].pk)).status_code == 200


def test_the_admin_links_to_the_users_two_factor_settings(client):
    client.force_login(UserFactory())
    html = client.get("/admin/").content.decode()
    assert f'href="{reverse("mfa_index")}"' in html
    assert "Log out" in html  # Django's own links are still there
