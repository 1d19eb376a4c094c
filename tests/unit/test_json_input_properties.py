"""Commands that read a file (``preview_posting``, ``import_flow``) answer any input with exit 0/3
(a result) or exit 2 and a one-line message: never a traceback. Property-based: arbitrary bytes,
arbitrary JSON in arbitrary encodings, contract documents with any value anywhere, deep nesting,
huge files, lone surrogates and NUL characters.

``preview_posting`` runs in-process (no database: pytest-django refuses any access here);
``import_flow`` reads its file before touching the database, so a document refused while reading
proves the same. A few subprocess runs check what a person sees on the terminal.
"""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.jsonfiles import MAX_BYTES, JsonFileError, read_json_file
from tests.unit.test_preview_posting_command import COMPLETE_CONFIG, CONTRACT_INVOICE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["120.00", "-0.00", "1E+999999", "20.0", "2026-03-01", "EUR", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
ENCODINGS = [
    "utf-8",
    "utf-8-sig",
    "utf-16",
    "utf-16-le",
    "utf-16-be",
    "utf-32",
    "latin-1",
    "cp1252",
]


def run_preview(tmp_path, invoice_bytes: bytes, config_bytes: bytes | None = None):
    """(exit code, stdout, message) of an in-process preview_posting run."""
    invoice_path, config_path = tmp_path / "INVOICE.json", tmp_path / "CONFIG.json"
    invoice_path.write_bytes(invoice_bytes)
    config_path.write_bytes(
        config_bytes if config_bytes is not None else json.dumps(COMPLETE_CONFIG).encode()
    )
    out = StringIO()
    try:
        call_command("preview_posting", str(invoice_path), "--config", str(config_path), stdout=out)
    except CommandError as error:
        return error.returncode, out.getvalue(), str(error)
    return 0, out.getvalue(), ""


def assert_answered(code: int, message: str) -> None:
    assert code in (0, 2, 3)
    if code == 2:
        assert len(message.splitlines()) == 1 and "Traceback" not in message


def _set_at(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


def _paths(value, prefix=()):
    """Every key path of a JSON document (objects and lists), the document itself excluded."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))


INVOICE_PATHS = list(_paths(CONTRACT_INVOICE))
CONFIG_PATHS = list(_paths(COMPLETE_CONFIG))


# -- preview_posting ------------------------------------------------------------------------------


@PROPERTY
@given(data=st.binary(max_size=400))
def test_preview_answers_arbitrary_bytes_with_an_exit_code_never_a_traceback(tmp_path, data):
    code, _, message = run_preview(tmp_path, data)
    assert_answered(code, message)


@PROPERTY
@given(document=json_values, encoding=st.sampled_from(ENCODINGS))
def test_preview_answers_any_json_in_any_encoding(tmp_path, document, encoding):
    text = json.dumps(document, ensure_ascii=False)
    code, _, message = run_preview(tmp_path, text.encode(encoding, errors="replace"))
    assert_answered(code, message)
    if encoding.startswith(("utf-16", "utf-32")):
        assert code == 2 and "UTF-8" in message


@PROPERTY
@given(
    path=st.sampled_from(INVOICE_PATHS), value=json_values, in_config=st.booleans(), data=st.data()
)
def test_preview_answers_a_contract_document_with_any_value_anywhere(
    tmp_path, path, value, in_config, data
):
    invoice, config = (
        json.loads(json.dumps(CONTRACT_INVOICE)),
        json.loads(json.dumps(COMPLETE_CONFIG)),
    )
    if in_config:
        _set_at(config, data.draw(st.sampled_from(CONFIG_PATHS)), value)
    else:
        _set_at(invoice, path, value)
    code, _, message = run_preview(
        tmp_path, json.dumps(invoice).encode(), json.dumps(config).encode()
    )
    assert_answered(code, message)


@PROPERTY
@given(
    depth=st.integers(min_value=65, max_value=100_000),
    opener=st.sampled_from(["[", '{"lines": ', '{"a": [']),
    closed=st.booleans(),
)
def test_preview_refuses_deep_nesting_with_exit_2(tmp_path, depth, opener, closed):
    closer = {"[": "]", '{"lines": ': "}", '{"a": [': "]}"}[opener]
    text = opener * depth + "1" + (closer * depth if closed else "")
    code, stdout, message = run_preview(tmp_path, text.encode())
    assert code == 2 and stdout == "" and "\n" not in message
    assert "nested" in message or "invalid JSON" in message


def test_preview_refuses_a_file_larger_than_the_cap_without_reading_it_whole(tmp_path):
    sparse = tmp_path / "huge.json"
    with open(sparse, "wb") as handle:
        handle.truncate(MAX_BYTES * 4)  # 64 MiB of NUL bytes, none on disk
    with pytest.raises(CommandError) as caught:
        call_command(
            "preview_posting", str(sparse), "--config", str(_write(tmp_path, COMPLETE_CONFIG))
        )
    assert caught.value.returncode == 2 and "larger than 16 MiB" in str(caught.value)


def test_preview_refuses_a_valid_json_document_just_over_the_cap(tmp_path):
    text = json.dumps(CONTRACT_INVOICE | {"notes": "x" * MAX_BYTES})
    code, _, message = run_preview(tmp_path, text.encode())
    assert code == 2 and "larger than" in message


@pytest.mark.parametrize(
    "encoding, words",
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "NUL bytes"),
        ("utf-32", "UTF-32"),
        ("latin-1", "not UTF-8"),
        ("cp1252", "not UTF-8"),
    ],
)
def test_preview_names_the_encoding_problem(tmp_path, encoding, words):
    text = json.dumps(CONTRACT_INVOICE | {"number": "Facture n° 42 été"}, ensure_ascii=False)
    code, _, message = run_preview(tmp_path, text.encode(encoding))
    assert code == 2 and words in message and "INVOICE" in message and "save it as UTF-8" in message


def test_preview_reads_utf8_with_a_byte_order_mark(tmp_path):
    text = json.dumps(CONTRACT_INVOICE | {"number": "Facture été"}, ensure_ascii=False)
    code, stdout, _ = run_preview(tmp_path, text.encode("utf-8-sig"))
    assert code == 0 and json.loads(stdout)["entry"]["reference"] == "Facture été"


@pytest.mark.parametrize(
    "raw, words",
    [
        (r'"F\ud800"', "lone surrogate"),
        (r'"F\u0000"', "NUL character"),
    ],
)
def test_preview_refuses_strings_no_terminal_or_database_takes(tmp_path, raw, words):
    text = json.dumps(CONTRACT_INVOICE).replace('"F2026-0042"', raw)
    code, _, message = run_preview(tmp_path, text.encode())
    assert code == 2 and words in message


@pytest.mark.parametrize("text", ["[]", "1", '"invoice"', "null", "true"])
def test_preview_refuses_a_top_level_that_is_not_an_object(tmp_path, text):
    code, _, message = run_preview(tmp_path, text.encode())
    assert code == 2 and "must be a JSON object" in message


# -- import_flow (reading only: a refused file never reaches the database) -------------------------


def run_import(tmp_path, data: bytes):
    path = tmp_path / "flow.json"
    path.write_bytes(data)
    try:
        call_command("import_flow", str(path), stdout=StringIO(), stderr=StringIO())
    except CommandError as error:
        return error.returncode, str(error)
    return 0, ""


@PROPERTY
@given(data=st.binary(max_size=400).filter(lambda b: b.strip()[:1] != b"{"))
def test_import_flow_answers_arbitrary_bytes_with_exit_2(tmp_path, data):
    code, message = run_import(tmp_path, data)
    assert code == 2 and "\n" not in message


@PROPERTY
@given(document=json_values, encoding=st.sampled_from(ENCODINGS))
def test_import_flow_answers_any_json_in_any_encoding_with_exit_2(tmp_path, document, encoding):
    # No document drawn here is a flow document ("format" is never "invsync.flow"), so each is
    # refused before the database; pytest-django would fail the test on any query.
    text = json.dumps(document, ensure_ascii=False)
    code, message = run_import(tmp_path, text.encode(encoding, errors="replace"))
    assert code == 2 and "\n" not in message


@PROPERTY
@given(depth=st.integers(min_value=65, max_value=100_000), closed=st.booleans())
def test_import_flow_refuses_deep_nesting_with_exit_2(tmp_path, depth, closed):
    text = '{"flow": ' * depth + "1" + ("}" * depth if closed else "")
    code, message = run_import(tmp_path, text.encode())
    assert code == 2 and ("nested" in message or "not JSON" in message)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "is not JSON: the file is empty"),
        (json.dumps({"format": "x"}).encode("utf-16"), "UTF-16"),
        ('{"client": "Caf\xe9"}'.encode("latin-1"), "not UTF-8"),
        (b'{"format": NaN}', "NaN"),
        (b'{"version": 1e999}', "too large"),
        (b"[1, 2]", "must be a JSON object"),
        (rb'{"client": "a\u0000b"}', "NUL"),
    ],
)
def test_import_flow_names_what_is_wrong_with_the_file(tmp_path, data, words):
    code, message = run_import(tmp_path, data)
    assert code == 2 and words in message and str(tmp_path) in message


def test_import_flow_refuses_a_huge_file(tmp_path):
    sparse = tmp_path / "flow.json"
    with open(sparse, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    with pytest.raises(CommandError) as caught:
        call_command("import_flow", str(sparse), stdout=StringIO(), stderr=StringIO())
    assert caught.value.returncode == 2 and "larger than" in str(caught.value)


# -- the reader itself ----------------------------------------------------------------------------


def test_reader_keeps_amounts_exact_or_as_floats_as_asked(tmp_path):
    path = _write(tmp_path, {"total": 120.10})
    assert str(read_json_file(str(path))["total"]) == "120.1"
    assert read_json_file(str(path), exact_numbers=False)["total"] == 120.1


def test_reader_reads_standard_input_with_the_same_checks(tmp_path):
    from io import BytesIO

    assert read_json_file("-", stdin=BytesIO(b'{"a": 1}')) == {"a": 1}
    with pytest.raises(JsonFileError) as caught:
        read_json_file("-", stdin=BytesIO(b"\xff\xfe{\x00}\x00"))
    assert caught.value.kind == "encoding"


def test_reader_refuses_a_directory_and_a_missing_file(tmp_path):
    for path in (tmp_path, tmp_path / "absent.json"):
        with pytest.raises(JsonFileError) as caught:
            read_json_file(str(path))
        assert caught.value.kind == "read"


# -- what a person sees ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, content",
    [
        ("preview_posting", b"[" * 50_000),
        ("preview_posting", json.dumps(CONTRACT_INVOICE).encode("utf-16")),
        ("import_flow", b"{" * 50_000),
        ("import_flow", '{"client": "Société"}'.encode("cp1252")),
    ],
)
def test_terminal_shows_one_line_and_no_traceback(tmp_path, command, content):
    path = tmp_path / "input.json"
    path.write_bytes(content)
    args = [str(path)]
    if command == "preview_posting":
        args += ["--config", str(_write(tmp_path, COMPLETE_CONFIG))]
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "INVSYNC_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", command, *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def _write(tmp_path, document) -> Path:
    path = tmp_path / "CONFIG.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
