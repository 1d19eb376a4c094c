"""The installed package is the product only: the development tools (connectors/devtools: the local
Tryton sandbox, its sample invoices, the scale-out servers) stay in the source checkout, and the
demo, which needs them, says so from an installed wheel instead of failing with a traceback."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("invsync", "connectors", "mappings", "syncs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the build writes build/ and *.egg-info where
    it runs), with pip and the virtualenv's setuptools, offline."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--quiet", "--wheel-dir", str(out), str(source),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("invsync-*.whl")
    return path


def test_the_wheel_ships_the_product_and_no_development_tools(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert not [name for name in names if name.startswith("connectors/devtools/")]
    assert not [name for name in names if "sandbox" in name or "sample_invoices" in name]
    assert not [name for name in names if name.endswith(".json")]  # no sample data of any kind
    for module in (
        "invsync/settings.py",
        "connectors/canonical.py",
        "connectors/providers/tryton/client.py",
        "connectors/providers/tryton/source.py",
        "connectors/providers/einvoice/mapping.py",
        "connectors/migrations/0001_initial.py",
        "mappings/models.py",
        "syncs/models.py",
        "syncs/management/commands/demo.py",
    ):
        assert module in names, module


def test_the_demo_from_an_installed_wheel_says_it_needs_a_source_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import importlib.util, connectors\n"
        f"assert connectors.__file__.startswith({str(site)!r}), connectors.__file__\n"
        "assert importlib.util.find_spec('connectors.devtools') is None\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['django-admin', 'demo', '--no-serve'])\n"
    )
    # -S: no site processing, so not the checkout's editable install (a .pth file that would
    # find connectors.devtools in the checkout); the virtualenv's packages (Django...) by path.
    paths = sysconfig.get_paths()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), paths["purelib"], paths["platlib"]]),
        "DJANGO_SETTINGS_MODULE": "invsync.settings",
        "INVSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "needs a source checkout" in done.stderr, done.stderr
    assert not (tmp_path / "var" / "tryton").exists()
