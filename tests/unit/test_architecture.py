"""Dependencies point one way (issue #12): invsync > syncs > mappings > connectors.

import-linter's contracts (pyproject.toml, [tool.importlinter]) see every import, function-local
ones included; the scan below also refuses any import of a project module inside a function, the
usual way to dodge a cycle, except where Django wants it (AppConfig.ready) and in migrations."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("invsync", "connectors", "mappings", "syncs")
PROJECT_MODULES = (*PACKAGES, "bench")


def test_import_linter_contracts_are_kept(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    exit_code = lint_imports(no_cache=True, no_logo=True)
    assert exit_code == 0, capsys.readouterr().out


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] if node.level == 0 else ["." * node.level]
    return [alias.name for alias in node.names]


def function_local_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each import of a project module inside a function, other than in an
    AppConfig's ``ready``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom) and function not in (None, "ready"):
                for module in _imported(child):
                    # A relative import is a project module by definition.
                    if module.startswith(".") or module.split(".")[0] in PROJECT_MODULES:
                        found.append((child.lineno, module))
            visit(child, function)

    visit(ast.parse(source), None)
    return found


def test_no_function_local_import_of_a_project_module():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
        for line, module in function_local_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "import at module level instead:\n" + "\n".join(offenders)


def test_the_scan_finds_an_import_inside_a_function_and_spares_ready():
    source = (
        "from mappings.models import SyncFlow\n"
        "import json\n"
        "def f():\n"
        "    import json\n"
        "    from syncs.models import SyncRun\n"
        "    class Inner:\n"
        "        def g(self):\n"
        "            import connectors.registry\n"
        "class Config:\n"
        "    def ready(self):\n"
        "        from mappings import receivers\n"
    )
    assert function_local_imports(source) == [(5, "syncs.models"), (8, "connectors.registry")]
