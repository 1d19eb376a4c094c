"""Every declared flow setting (mappings/flow_settings.py) reaches every reader of the declaration:
the model, the flow form's fieldsets, export/import, the engine's configuration, CONFIG.json and
the setup checklist. A setting added to the declaration and forgotten by one of them fails here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib import admin

from connectors.canonical import TargetLookups
from connectors.selectors import connector_class_for
from mappings.checklist import flow_setup_checklist
from mappings.flow_settings import (
    ENGINE_SETTINGS,
    FLOW_SETTINGS,
    FlowSetting,
    SettingType,
    config_lookup,
    engine_value,
    setting_for_engine_field,
)
from mappings.models import SyncFlow
from mappings.portable import flow_document_read, flow_export, flow_import
from syncs.selectors import flow_engine_config
from syncs.serialization import config_from_json, config_to_json
from tests.factories import SyncFlowFactory

pytestmark = pytest.mark.django_db

SETTING_NAMES = [setting.name for setting in FLOW_SETTINGS]


def _other_value(setting: FlowSetting):
    """A valid value for ``setting`` that is not its default, so a setting that does not travel
    cannot hide behind its default."""
    match setting.type:
        case SettingType.BOOL:
            return not setting.default
        case SettingType.CHOICE:
            return next(value for value, _ in setting.choices if value != setting.default)
        case SettingType.CURRENCY:
            return "USD"
        case SettingType.DATE:
            return dt.date(2025, 2, 3)
        case SettingType.DECIMAL:
            return Decimal("0.0731")
        case SettingType.INTEGER:
            return 17
        case _:  # text, accounts, journals, VAT codes
            return f"X-{setting.name[:40]}"


@pytest.fixture
def flow(memory_connectors) -> SyncFlow:
    """A flow whose every setting holds a value other than its default."""
    flow = SyncFlowFactory(vat=False)
    values = {s.name: _other_value(s) for s in FLOW_SETTINGS}
    SyncFlow.objects.filter(pk=flow.pk).update(**values)
    flow.refresh_from_db()
    return flow


def test_every_declared_setting_is_a_model_field_with_its_label_and_help():
    for setting in FLOW_SETTINGS:
        field = SyncFlow._meta.get_field(setting.name)
        assert (field.verbose_name, field.help_text) == (setting.label, setting.help)
        assert field.editable


def test_every_declared_setting_is_on_the_flow_page_once():
    flow_admin = admin.site._registry[SyncFlow]
    shown = [name for _, options in flow_admin.fieldsets for name in options["fields"]]
    form_fields = flow_admin.form.base_fields

    for name in SETTING_NAMES:
        assert shown.count(name) == 1, name
        assert name in form_fields, name


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_declared_setting_is_exported_and_read_back(flow, name):
    document = flow_export(flow=flow)

    assert name in document["flow"]
    assert flow_document_read(document).flow[name] == getattr(flow, name)


def test_every_declared_setting_survives_an_import_into_a_new_flow(flow):
    document = flow_export(flow=flow)

    copy = flow_import(document=document, flow_name="The copy").flow

    copy.refresh_from_db()
    # An import never turns a flow on (see flow_import); every other setting is copied.
    differing = [n for n in SETTING_NAMES if getattr(copy, n) != getattr(flow, n)]
    assert differing == ["enabled"]
    assert document["flow"]["enabled"] is True


@pytest.mark.parametrize("setting", ENGINE_SETTINGS, ids=lambda s: s.name)
def test_every_engine_setting_reaches_the_engine_config_and_config_json(flow, setting):
    config = flow_engine_config(flow, TargetLookups())
    expected = engine_value(setting, getattr(flow, setting.name))
    if setting.engine == "draft":  # a target without drafts gets none, whatever the flow says
        expected = (
            expected and connector_class_for(flow.accounting_connection).supports_draft_entries
        )

    assert getattr(config, setting.engine) == expected
    document = config_to_json(config)
    written = config_lookup(document, setting.config_path)
    assert written is not None
    assert getattr(config_from_json(document), setting.engine) == expected
    assert setting_for_engine_field(setting.engine_field) is setting


def test_the_engine_config_and_config_json_round_trip_whole(flow):
    config = flow_engine_config(flow, TargetLookups())

    assert config_from_json(config_to_json(config)) == config


def test_every_engine_setting_has_its_own_place_in_config_json():
    paths = [setting.engine_field for setting in ENGINE_SETTINGS]

    assert len(set(paths)) == len(paths)
    assert "accounts.rounding_credit" in paths


@pytest.mark.parametrize("setting", [s for s in FLOW_SETTINGS if s.required], ids=lambda s: s.name)
def test_every_required_setting_left_blank_is_a_missing_checklist_step(setting):
    flow = SyncFlowFactory(start_date=dt.date(2025, 1, 1), separate_discounts=True, scope="both")
    anchor = f"#id_{setting.name}"
    assert not [s for s in flow_setup_checklist(flow) if not s.done and s.fix_url_anchor == anchor]
    setattr(flow, setting.name, None if setting.type is SettingType.DATE else "")

    missing = [s for s in flow_setup_checklist(flow) if not s.done and s.fix_url_anchor == anchor]

    assert len(missing) == 1
    if setting.type is not SettingType.DATE:
        assert setting.label in missing[0].detail
