"""Where the development tools live: the test session's setup (tests/conftest.py and the live
Tryton fixtures) takes them from connectors/devtools and loads nothing of bench/; bench/scale.py
starts its PostgreSQL and Redis with the same code the scale-out test's fixture uses."""

import ast
from pathlib import Path

from connectors.devtools import local_servers

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_test_sessions_setup_imports_no_bench_module_even_inside_a_fixture():
    setup = [*sorted((ROOT / "tests").rglob("conftest.py")), ROOT / "tests" / "tryton_fixtures.py"]
    for path in setup:
        benched = {m for m in _imported_modules(path) if m == "bench" or m.startswith("bench.")}
        assert not benched, (path, benched)
    assert "connectors.devtools" in _imported_modules(ROOT / "tests" / "conftest.py")


def test_bench_scale_starts_its_servers_with_the_dev_tools_the_tests_use():
    # Read, not imported: tests never import bench.
    tree = ast.parse((ROOT / "bench" / "scale.py").read_text(encoding="utf-8"))
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert ("connectors.devtools.local_servers", "Services") in imported
    defined = {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    assert not defined & {"Services", "Unavailable", "missing"}  # one copy, in connectors/devtools
    assert callable(local_servers.missing) and local_servers.Services
