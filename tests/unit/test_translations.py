"""The French catalogue (locale/fr/LC_MESSAGES/django.po): every entry translated and none fuzzy,
the committed .mo the compilation of the .po, placeholders kept, and no string marked in the code
or templates missing from it."""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr forms and flags."""
    entries, entry, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry is not None:
                entries.append(entry)
            entry = None
            continue
        if line.startswith("#~"):
            raise AssertionError(f"obsolete entry left in {path.name}: {line}")
        if entry is None:
            entry = {"flags": set(), "msgctxt": None, "msgid_plural": None, "msgstr": {}}
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif match := re.match(
            r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (\".*\")$", line
        ):
            name, form, text = match.groups()
            key = ("msgstr", int(form or 0)) if name.startswith("msgstr") else (name, None)
            value = ast.literal_eval(text)
            if key[0] == "msgstr":
                entry["msgstr"][key[1]] = value
            else:
                entry[name] = value
        elif line.startswith('"'):
            value = ast.literal_eval(line)
            if key[0] == "msgstr":
                entry["msgstr"][key[1]] += value
            else:
                entry[key[0]] += value
        else:
            raise AssertionError(f"unreadable line in {path.name}: {line!r}")
    return entries


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sd]|%[sd]|\{\w*\}", text))


ENTRIES = read_po(PO)
MESSAGES = [e for e in ENTRIES if e["msgid"]]


def test_the_french_catalogue_holds_the_interface():
    assert len(MESSAGES) > 500
    header = ENTRIES[0]["msgstr"][0]
    assert "Language: fr" in header and "plural=(n > 1)" in header


def test_every_french_entry_is_translated_and_none_is_fuzzy():
    untranslated = [e["msgid"] for e in MESSAGES if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in ENTRIES if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []


def test_translations_keep_the_placeholders_of_their_english_text():
    wrong = []
    for entry in MESSAGES:
        english = [entry["msgid"], entry["msgid_plural"] or entry["msgid"]]
        for form, text in entry["msgstr"].items():
            if placeholders(text) != placeholders(english[min(form, 1)]):
                wrong.append((entry["msgid"], text))
    assert wrong == []


def test_committed_mo_is_the_compiled_po():
    with MO.open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)._catalog
    expected = {}
    for entry in MESSAGES:
        msgid = entry["msgid"]
        if entry["msgctxt"] is not None:
            msgid = f"{entry['msgctxt']}\x04{msgid}"
        if entry["msgid_plural"] is None:
            expected[msgid] = entry["msgstr"][0]
        else:
            for form, text in entry["msgstr"].items():
                expected[(msgid, form)] = text
    compiled = {key: value for key, value in catalogue.items() if key != ""}
    assert compiled == expected, "run: msgfmt -c -o locale/fr/LC_MESSAGES/django.mo <the .po>"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext (bin/dev setup) absent")
def test_every_string_marked_in_code_and_templates_is_in_the_french_catalogue(tmp_path):
    # makemessages on a copy of the sources, merging the committed catalogue: a string marked
    # since would appear untranslated, a string no longer used would disappear.
    ignore = shutil.ignore_patterns(
        ".venv", "var", ".git", "tests", "bench", "docs", "__pycache__", "*.egg-info", "*.mo"
    )
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=ignore)
    subprocess.run(
        [sys.executable, "manage.py", *MAKEMESSAGES_ARGS],
        cwd=copy, check=True, capture_output=True,
    )  # fmt: skip
    fresh = read_po(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po")
    fresh_ids = {(e["msgctxt"], e["msgid"]) for e in fresh if e["msgid"]}
    ours = {(e["msgctxt"], e["msgid"]) for e in MESSAGES}
    assert sorted(fresh_ids - ours, key=str) == [], "marked strings missing from the catalogue"
    assert sorted(ours - fresh_ids, key=str) == [], "catalogue entries no longer used"


# The command that refreshes the catalogue (README, "Translations").
MAKEMESSAGES_ARGS = [
    "makemessages", "-l", "fr", "--no-location", "--no-obsolete",
    "-i", "connectors/devtools/*", "-i", "var/*", "-i", "tests/*", "-i", "bench/*",
]  # fmt: skip
