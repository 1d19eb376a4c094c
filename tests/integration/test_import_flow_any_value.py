"""``import_flow`` answers an export_flow document with any JSON value at any place (object, list,
wrong type, huge number, odd text) by importing it or exiting 2 with a message naming the key:
never a traceback. Property-based, against the test database."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.portable import flow_export
from tests.factories import SyncFlowFactory
from tests.unit.test_json_input_properties import _paths, _set_at, json_values

pytestmark = pytest.mark.django_db


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), value=json_values)
def test_import_flow_answers_any_value_anywhere_in_a_flow_document(tmp_path, data, value):
    flow = SyncFlowFactory()
    document = json.loads(json.dumps(flow_export(flow=flow)))
    _set_at(document, data.draw(st.sampled_from(list(_paths(document)))), value)
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(document))
    try:
        call_command(
            "import_flow", str(path), "--client", "Elsewhere", stdout=StringIO(), stderr=StringIO()
        )
    except CommandError as error:
        assert error.returncode == 2 and len(str(error).splitlines()) == 1
