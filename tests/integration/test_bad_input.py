"""Bad input from a person: every admin form refuses it with a message on the field, and changes
nothing.

For each editable admin page (client, connection, flow with its VAT and journal mapping rows),
the change form is posted as the browser would send it, with one field at a time replaced by a
value that field can never accept: NUL characters, text past the column's length, numbers that
are not numbers or do not fit, impossible dates, choices that were never offered, malformed
JSON, a blank required field, ten thousand levels of nesting, two megabytes of text (every
text and JSON field of every admin form, third-party ones included). Each post must come back as
the form again (not a crash, not a save) with an error on that field, and the database must be
as before; a body past Django's request limit is refused whole (400). Free text typed into
the name fields (hypothesis) is either saved exactly or refused with a message. The connection
settings are checked one by one (a URL that is not http(s), a timeout of -1, a rate limit of
"fast"...), and so are the line overrides of a failed record. Query strings of the admin's lists
and reports with nonsense get a page, never a crash; a NUL character in one gets a 400 (it would
crash PostgreSQL's text comparison); the failure review refuses unknown actions, codes and flows.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django import forms
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.models import Client, Connection
from mappings.models import ConfigChange, JournalMapping, SyncFlow, VatMapping
from syncs.models import PartnerLink, SyncedRecord, SyncRun
from tests.factories import (
    ConnectionFactory,
    JournalMappingFactory,
    SyncedRecordFactory,
    SyncFlowFactory,
    SyncRunFactory,
)
from tests.integration.test_admin import _form_data
from tests.integration.test_failure_review import unmapped_failure

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(memory_connectors):
    flow = SyncFlowFactory(
        start_date=dt.date(2026, 1, 1),
        invoicing_connection__last_check_ok=True,
        accounting_connection__last_check_ok=True,
    )
    JournalMappingFactory(flow=flow)
    return flow


@pytest.fixture
def unmapped(memory_connectors):
    return unmapped_failure(memory_connectors)


def change_url(obj) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def snapshot(obj) -> str:
    """Everything a save of ``obj``'s page could change, serialised."""
    rows = [type(obj).objects.get(pk=obj.pk)]
    if isinstance(obj, SyncFlow):
        rows += [*VatMapping.objects.filter(flow=obj), *JournalMapping.objects.filter(flow=obj)]
    counts = {
        model.__name__: model.objects.count()
        for model in (Client, Connection, SyncFlow, VatMapping, JournalMapping, ConfigChange)
    }
    # Field values, decrypted (an encrypted column's text changes with each serialisation).
    values = [
        {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields} for row in rows
    ]
    return repr(values) + repr(counts)


def never_valid(field: forms.Field) -> list[str]:
    """Values ``field`` can never accept, whatever the other fields say."""
    if isinstance(field, forms.BooleanField):
        return []  # any value is a yes or a no
    values = ["a\x00b"]  # NUL: refused by every text and choice field
    if field.required:
        values.append("")
    if isinstance(field, forms.CharField) and field.max_length:
        values.append("x" * (field.max_length + 1))
    if isinstance(field, forms.DecimalField):
        values += ["abc", "NaN", "-Infinity", "1e999", "9" * 40, "0.0000000001"]
    elif isinstance(field, forms.FloatField):
        values += ["abc", "NaN", "1e999"]
    elif isinstance(field, forms.IntegerField):
        values += ["abc", "1.5", "9" * 40]
        if field.min_value is not None:
            values.append(str(field.min_value - 1))
        if field.max_value is not None:
            values.append(str(field.max_value + 1))
    if isinstance(field, forms.DateField | forms.DateTimeField):
        values += ["2026-02-30", "31/12/2026x", "99999-01-01"]
    if isinstance(field, forms.JSONField):
        values += ["{", '{"a": }', "[1,"]
    if isinstance(field, forms.ModelChoiceField | forms.ChoiceField):
        values += ["no such choice", "987654321"]
    if isinstance(field, forms.EmailField):
        values.append("not an address")
    return values


def forms_of(response):
    """(form, prefix-less label) of the page's main form and of each inline form."""
    yield response.context["adminform"].form, "form"
    for inline in response.context["inline_admin_formsets"]:
        for index, form in enumerate(inline.formset.forms):
            if form.instance.pk:  # existing rows (extra blank rows ignore blank input)
                yield form, f"{inline.formset.prefix}[{index}]"


def cases(admin_client, obj):
    """(form label, field name, POST key, value) for every field of every form of the page."""
    page = admin_client.get(change_url(obj))
    assert page.status_code == 200
    found = []
    for form, label in forms_of(page):
        for name, field in form.fields.items():
            if field.disabled or isinstance(field.widget, forms.HiddenInput):
                continue
            for value in never_valid(field):
                found.append((label, name, form.add_prefix(name), value))
    return page, found


def field_errors(response, label: str, name: str) -> list[str]:
    for form, found in forms_of(response):
        if found == label:
            return list(form.errors.get(name, []))
    raise AssertionError(f"no form {label} on the page")


def assert_every_bad_value_is_refused_on_its_field(admin_client, obj):
    page, bad = cases(admin_client, obj)
    data = _form_data(page)
    # The page as sent back unchanged saves: the refusals below come from the one bad value.
    assert admin_client.post(change_url(obj), data).status_code == 302
    before = snapshot(obj)
    assert len(bad) >= 5
    accepted = []
    for label, name, key, value in bad:
        response = admin_client.post(change_url(obj), {**data, key: value})
        if response.status_code != 200:
            accepted.append((label, name, value, response.status_code))
            continue
        assert "errornote" in response.content.decode(), (label, name, value)
        assert field_errors(response, label, name), (label, name, value)
        assert snapshot(obj) == before, (label, name, value)
    assert not accepted, accepted


def test_the_client_form_refuses_bad_values(admin_client, flow):
    assert_every_bad_value_is_refused_on_its_field(admin_client, flow.client)


def test_the_connection_form_refuses_bad_values(admin_client, flow):
    assert_every_bad_value_is_refused_on_its_field(admin_client, flow.accounting_connection)


def test_the_flow_form_and_its_mapping_rows_refuse_bad_values(admin_client, flow):
    assert_every_bad_value_is_refused_on_its_field(admin_client, flow)


# -- Nesting and size ----------------------------------------------------------------------------

NESTED_ARRAYS = "[" * 10_000 + "]" * 10_000
NESTED_OBJECTS = '{"a": ' * 10_000 + "1" + "}" * 10_000
NESTED_IN_A_SETTING = '{"url": ' + NESTED_ARRAYS + "}"
BIG = "x" * (2 * 1024 * 1024)  # under Django's request limit (2.5 MB): the form must refuse it


def text_fields(form) -> list[str]:
    """The fields of ``form`` a person types text or JSON into."""
    return [
        name
        for name, field in form.fields.items()
        if isinstance(field, forms.CharField | forms.JSONField)
        and not field.disabled
        and not isinstance(field.widget, forms.HiddenInput)
    ]


@pytest.mark.parametrize("page", ["client", "connection", "flow"])
def test_deep_nesting_and_megabytes_in_any_text_field_are_refused_on_the_field(
    admin_client, flow, settings, page
):
    settings.DEBUG = True  # a crash would answer the debug page: it must not happen at all
    obj = {"client": flow.client, "connection": flow.accounting_connection, "flow": flow}[page]
    response = admin_client.get(change_url(obj))
    data = _form_data(response)
    assert admin_client.post(change_url(obj), data).status_code == 302
    before = snapshot(obj)
    fields = [
        (form, label, name) for form, label in forms_of(response) for name in text_fields(form)
    ]
    assert fields
    for form, label, name in fields:
        # To a text field nesting is just text (the arrays stand for it); JSON gets every shape.
        is_json = isinstance(form.fields[name], forms.JSONField)
        values = (
            (NESTED_ARRAYS, NESTED_OBJECTS, NESTED_IN_A_SETTING) if is_json else (NESTED_ARRAYS,)
        )
        for value in (*values, BIG):
            response = admin_client.post(change_url(obj), {**data, form.add_prefix(name): value})
            assert response.status_code == 200, (label, name, value[:20], response.status_code)
            assert field_errors(response, label, name), (label, name, value[:20])
            assert snapshot(obj) == before, (label, name, value[:20])


def test_no_admin_add_form_answers_500_to_deep_nesting_or_megabytes(admin_client, settings):
    """Every registered admin, third-party ones included: a JSON field refuses the value on the
    field; no text field crashes the page or saves it."""
    from django.contrib import admin

    settings.DEBUG = True
    admin_client.raise_request_exception = False
    walked = set()
    for model in list(admin.site._registry):
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        if meta.label == "connectors.Connection":
            # Its add form follows a first step choosing the tool and authentication.
            url += "?kind=accounting&provider=tryton&auth_kind=credentials"
        page = admin_client.get(url)
        if page.status_code == 403:
            continue  # a read-only log: nothing to type into
        assert page.status_code == 200, (meta.label, page.status_code)
        form = page.context["adminform"].form
        data = _form_data(page)
        for name in text_fields(form):
            is_json = isinstance(form.fields[name], forms.JSONField)
            for value in (NESTED_ARRAYS, NESTED_OBJECTS, BIG):
                count = model._default_manager.count()
                response = admin_client.post(url, {**data, form.add_prefix(name): value})
                assert response.status_code == 200, (meta.label, name, value[:20])
                assert model._default_manager.count() == count, (meta.label, name, value[:20])
                if is_json:
                    assert response.context["adminform"].form.errors.get(name), (meta.label, name)
            walked.add((meta.label, name))
    assert {("mfa.Authenticator", "data"), ("social_django.UserSocialAuth", "extra_data")} <= walked
    assert ("connectors.Connection", "settings") in walked


def test_a_request_past_the_size_limit_is_refused_whole_and_saves_nothing(admin_client, flow):
    connection = flow.accounting_connection
    data = _form_data(admin_client.get(change_url(connection)))
    before = snapshot(connection)
    response = admin_client.post(change_url(connection), {**data, "settings": "x" * 5_000_000})
    # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE before any form reads it.
    assert response.status_code == 400
    assert snapshot(connection) == before


def test_the_service_refuses_deeply_nested_or_oversized_settings():
    from django.core.exceptions import ValidationError

    from connectors.services import connection_create, connection_update

    connection = ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings=TRYTON_SETTINGS, credentials={"username": "u", "password": "p"},
    )  # fmt: skip
    deep: dict = {}
    inner = deep
    for _ in range(10_000):  # deeper than any JSON encoder recurses
        inner["a"] = {}
        inner = inner["a"]
    bad_settings = [
        {**TRYTON_SETTINGS, "timeout": deep},
        {**TRYTON_SETTINGS, "timeout": [deep]},
        deep,
        [TRYTON_SETTINGS],
        {**TRYTON_SETTINGS, "timeout": float("nan")},
        {**TRYTON_SETTINGS, "extra": "x" * 5_000_000},
        {**TRYTON_SETTINGS, **{f"s{i}": "1" for i in range(10_000)}},
        {**TRYTON_SETTINGS, "x" * 5_000: "1"},
    ]
    for bad in bad_settings:
        with pytest.raises(ValidationError) as refused:
            connection_update(connection=connection, data={"settings": bad})
        assert "settings" in refused.value.message_dict
        with pytest.raises(ValidationError) as refused:
            connection_create(
                client=connection.client, name="new", kind="accounting", provider="tryton",
                auth_kind="credentials", settings=bad, credentials={"username": "u"},
            )  # fmt: skip
        assert "settings" in refused.value.message_dict
    assert Connection.objects.count() == 1
    assert Connection.objects.get(pk=connection.pk).settings == TRYTON_SETTINGS


def test_the_client_service_refuses_notes_past_their_limit():
    from django.core.exceptions import ValidationError

    from connectors.services import client_create

    with pytest.raises(ValidationError, match="10,000"):
        client_create(name="Long notes", notes="x" * 10_001)
    assert not Client.objects.filter(name="Long notes").exists()


# -- Free text ---------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=300
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=TEXT)
def test_a_typed_name_is_saved_as_typed_or_refused_with_a_message(admin_client, flow, name):
    for obj in (flow.client, flow.accounting_connection, flow):
        page = admin_client.get(change_url(obj))
        data = {**_form_data(page), "name": name}
        response = admin_client.post(change_url(obj), data)
        stored = type(obj).objects.get(pk=obj.pk).name
        if response.status_code == 302:
            assert stored == name.strip(), (obj, name)
        else:
            assert response.status_code == 200, (obj, name, response.status_code)
            assert response.context["adminform"].form.errors.get("name"), (obj, name)
            assert stored != name.strip() or stored == obj.name


# -- Connection settings -----------------------------------------------------------------------

TRYTON_SETTINGS = {"url": "https://erp.example.com/", "database": "acme"}


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("url", "erp.example.com", "http"),
        ("url", "ftp://erp.example.com/", "http"),
        ("url", "http://", "http"),
        ("url", "http://erp.example.com:port/", "valid address"),
        ("url", "http://erp example.com/", "spaces"),
        ("timeout", "-1", "above 0"),
        ("timeout", "0", "above 0"),
        ("timeout", "abc", "above 0"),
        ("timeout", "inf", "above 0"),
        ("timeout", 1e400, "above 0"),
        ("rate_limit", "fast", "requests/seconds"),
        ("rate_limit", "60/0", "requests/seconds"),
        ("rate_limit", "0/0", "requests/seconds"),
        ("rate_limit", "0/60", "requests/seconds"),
        ("rate_limit", "5/0", "requests/seconds"),
        ("rate_limit", "-5/60", "requests/seconds"),
        ("rate_limit", "5000000/1", "requests/seconds"),
        ("rate_limit", "60/" + "9" * 400, "requests/seconds"),
        ("retry_attempts", "2.5", "whole number"),
        ("retry_attempts", "0", "whole number"),
        ("retry_attempts", "١٢", "whole number"),
        ("retry_base_delay", "-0.1", "≥ 0"),
        ("retry_max_total_delay", "NaN", "≥ 0"),
        ("retry_after_max", "soon", "≥ 0"),
        ("database", "x" * 2001, "at most"),
        ("database", "a\x00b", "at most"),
    ],
)
def test_a_tryton_connection_refuses_a_bad_setting_naming_it(admin_client, setting, value, says):
    import json

    connection = ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings=TRYTON_SETTINGS, credentials={"username": "u", "password": "p"},
    )  # fmt: skip
    page = admin_client.get(change_url(connection))
    data = _form_data(page)
    assert admin_client.post(change_url(connection), data).status_code == 302
    before = snapshot(connection)
    data["settings"] = json.dumps({**TRYTON_SETTINGS, setting: value})
    response = admin_client.post(change_url(connection), data)
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors.get("settings", []))
    assert setting in errors and says in errors, errors
    assert snapshot(connection) == before


def test_good_tryton_settings_are_saved(admin_client):
    import json

    connection = ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings=TRYTON_SETTINGS, credentials={"username": "u", "password": "p"},
    )  # fmt: skip
    data = _form_data(admin_client.get(change_url(connection)))
    good = {
        **TRYTON_SETTINGS, "url": "http://127.0.0.1:8000/", "timeout": "12.5",
        "rate_limit": "60/60", "retry_attempts": 3, "retry_base_delay": "0",
        "retry_max_total_delay": "30", "retry_after_max": "60",
    }  # fmt: skip
    data["settings"] = json.dumps(good)
    # A new server address: the secrets are entered again (never sent to it as stored).
    data.update(credential_username="u", credential_password="p2")
    assert admin_client.post(change_url(connection), data).status_code == 302
    connection.refresh_from_db()
    assert connection.settings == good


def test_the_service_refuses_a_bad_setting_too():
    from django.core.exceptions import ValidationError

    from connectors.services import connection_update

    connection = ConnectionFactory(
        provider="tryton", kind="accounting", auth_kind="credentials",
        settings=TRYTON_SETTINGS, credentials={"username": "u", "password": "p"},
    )  # fmt: skip
    with pytest.raises(ValidationError, match="rate_limit"):
        connection_update(
            connection=connection, data={"settings": {**TRYTON_SETTINGS, "rate_limit": "fast"}}
        )


# -- Line overrides of a failed record -----------------------------------------------------------


def test_the_line_overrides_form_refuses_bad_values(admin_client, unmapped):
    _, record, _ = unmapped
    url = reverse("admin:syncs_syncedrecord_overrides", args=[record.pk])
    form = admin_client.get(reverse("admin:syncs_syncedrecord_change", args=[record.pk])).context[
        "overrides_form"
    ]
    bad = [
        (name, value)
        for name, field in form.fields.items()
        for value in [*never_valid(field), "no such choice", "999", NESTED_ARRAYS, BIG]
    ]
    assert len(bad) >= 16
    for name, value in bad:
        response = admin_client.post(url, {name: value, "_save": "Save overrides"})
        assert response.status_code == 200, (name, value)
        assert response.context["overrides_form"].errors.get(name), (name, value)
        record.refresh_from_db()
        assert record.overrides == {}, (name, value)


# -- Query strings -------------------------------------------------------------------------------

NONSENSE = ["", "zzz", "-1", "9" * 40, "%", "' OR 1=1 --", "2026-13-45", "../../etc", "é\u202e"]


@pytest.mark.parametrize(
    "model", [Client, Connection, SyncFlow, SyncRun, SyncedRecord, PartnerLink, ConfigChange]
)
def test_admin_lists_survive_nonsense_in_their_query_string(admin_client, flow, model):
    SyncedRecordFactory(flow=flow, last_run=SyncRunFactory(flow=flow))
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    params = ["q", "o", "p", "e", "status", "status__exact", "flow__id__exact", "created_at__gte"]
    for param in params:
        for value in NONSENSE:
            response = admin_client.get(url, {param: value})
            assert response.status_code in (200, 302), (param, value, response.status_code)


def test_a_nul_character_in_a_query_string_is_refused_before_any_query(admin_client, flow):
    """PostgreSQL refuses NUL in text: a search for it would crash the page there."""
    url = reverse("admin:mappings_syncflow_changelist")
    for params in ({"q": "a\x00b"}, {"enabled__exact": "\x00"}, {"a\x00": "1"}):
        response = admin_client.get(url, params)
        assert response.status_code == 400, params
        assert "NUL character" in response.content.decode()
    assert admin_client.get(url, {"q": "a b"}).status_code == 200


def test_reports_survive_nonsense_in_their_query_string(admin_client, flow):
    urls = [
        reverse("admin:syncs_flow_reconciliation", args=[flow.pk]),
        reverse("admin:syncs_flow_dashboard", args=[flow.pk]),
        reverse("admin:syncs_dashboards"),
        reverse("admin:syncs_failures"),
    ]
    for url in urls:
        for param in ("from", "to", "run", "flow", "code", "days"):
            for value in NONSENSE:
                response = admin_client.get(url, {param: value, "run": "1"})
                assert response.status_code in (200, 302, 400), (url, param, value)
    response = admin_client.get(urls[0], {"from": "2026-12-31", "to": "2026-01-01", "run": "1"})
    assert response.status_code == 200
    assert "report" not in response.context
    assert response.context["input_error"] == "The period ends before it starts."


def test_the_failure_review_refuses_a_nonsense_action_code_or_flow(admin_client, unmapped):
    _, record, _ = unmapped
    url = reverse("admin:syncs_failures")
    for data in (
        {"action": "retry_code", "code": "a\x00b"},
        {"action": "retry_code", "code": "NOT_A_CODE"},
        {"action": "drop_tables"},
        {"action": "retry_all", "flow": "1 OR 1=1"},
    ):
        response = admin_client.post(url, data)
        assert response.status_code == 400, data
        record.refresh_from_db()
        assert record.status == "failed", data


# -- Start dates and currency codes ----------------------------------------------------------------


def _far_dates():
    from mappings.models import latest_start_date

    latest = latest_start_date()
    return latest, latest + dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1989-12-31", "before 1990-01-01"),
        ("0001-01-01", "before 1990-01-01"),
        ("too late", "more than a year ahead"),
        ("3026-01-01", "more than a year ahead"),
    ],
)
def test_the_flow_form_refuses_a_start_date_before_1990_or_more_than_a_year_ahead(
    admin_client, flow, value, says
):
    if value == "too late":
        value = f"{_far_dates()[1]:%Y-%m-%d}"
    data = _form_data(admin_client.get(change_url(flow)))
    before = snapshot(flow)
    response = admin_client.post(change_url(flow), {**data, "start_date": value})
    assert response.status_code == 200
    errors = field_errors(response, "form", "start_date")
    assert errors and says in errors[0], errors
    assert snapshot(flow) == before


def test_the_flow_form_accepts_start_dates_at_both_limits(admin_client, flow):
    latest, _ = _far_dates()
    for value in ("1990-01-01", f"{latest:%Y-%m-%d}"):
        data = _form_data(admin_client.get(change_url(flow)))
        response = admin_client.post(change_url(flow), {**data, "start_date": value})
        assert response.status_code == 302, value
        flow.refresh_from_db()
        assert f"{flow.start_date:%Y-%m-%d}" == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("EUX", "not an ISO 4217 currency code"),
        ("XYZ", "not an ISO 4217 currency code"),
        ("€", "not an ISO 4217 currency code"),
        ("123", "not an ISO 4217 currency code"),
        ("eur", "Did you mean EUR?"),
    ],
)
def test_the_flow_form_refuses_a_currency_code_not_in_iso_4217(admin_client, flow, value, says):
    data = _form_data(admin_client.get(change_url(flow)))
    before = snapshot(flow)
    response = admin_client.post(change_url(flow), {**data, "company_currency": value})
    assert response.status_code == 200
    errors = field_errors(response, "form", "company_currency")
    assert errors and says in errors[0], errors
    assert snapshot(flow) == before


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "CHF", "XOF", "ZWG"])
def test_the_flow_form_accepts_iso_4217_currency_codes(admin_client, flow, code):
    data = _form_data(admin_client.get(change_url(flow)))
    response = admin_client.post(change_url(flow), {**data, "company_currency": code})
    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.company_currency == code


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("start_date", dt.date(1989, 12, 31), "before 1990-01-01"),
        ("start_date", "too late", "more than a year ahead"),
        ("company_currency", "EUX", "not an ISO 4217 currency code"),
    ],
)
def test_the_flow_services_refuse_the_same_start_dates_and_currencies(flow, field, value, says):
    from django.core.exceptions import ValidationError

    from mappings.services import flow_create, flow_update

    if value == "too late":
        value = _far_dates()[1]
    before = snapshot(flow)
    with pytest.raises(ValidationError) as refused:
        flow_update(flow=SyncFlow.objects.get(pk=flow.pk), data={field: value})
    assert says in " ".join(refused.value.message_dict[field])
    assert snapshot(flow) == before
    with pytest.raises(ValidationError) as refused:
        flow_create(
            client=flow.client,
            name="Another flow",
            invoicing_connection=flow.invoicing_connection,
            accounting_connection=flow.accounting_connection,
            **{field: value},
        )
    assert says in " ".join(refused.value.message_dict[field])
    assert not SyncFlow.objects.filter(name="Another flow").exists()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("start_date", "1985-06-01", "before 1990-01-01"),
        ("start_date", "2999-01-01", "more than a year ahead"),
        ("company_currency", "EURO", "currency"),
        ("company_currency", "ABC", "not an ISO 4217 currency code"),
    ],
)
def test_import_flow_refuses_a_bad_start_date_or_currency_with_a_message(
    flow, tmp_path, field, value, says
):
    import json

    from django.core.management import CommandError, call_command

    path = tmp_path / "flow.json"
    call_command("export_flow", str(flow.pk), "--output", str(path))
    document = json.loads(path.read_text())
    document["flow"][field] = value
    path.write_text(json.dumps(document))
    before = snapshot(flow)
    with pytest.raises(CommandError) as refused:
        call_command("import_flow", str(path), stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert says in str(refused.value), str(refused.value)
    assert snapshot(flow) == before
