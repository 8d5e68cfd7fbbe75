"""The layering the design card fixes, checked on every import statement (lazy ones included).

cli → remote → drivers → core: a library may import only the libraries to its right.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "python"
ORDER = ("osiris_core", "osiris_drivers", "osiris_remote", "osiris_cli")
"""Lowest first: each library may import itself and those before it."""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(library: str) -> list[str]:
    allowed = set(ORDER[: ORDER.index(library) + 1])
    forbidden = set(ORDER) - allowed
    problems = []
    for path in sorted((SRC / library).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".", 1)[0]
            if top in forbidden:
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("library", ORDER)
def test_library_imports_only_lower_layers(library: str) -> None:
    assert (SRC / library).is_dir()
    assert _violations(library) == []


def test_the_check_finds_a_backward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from osiris_cli.main import main\n", encoding="utf-8")
    assert _imports(bad) == [(2, "osiris_cli.main")]
