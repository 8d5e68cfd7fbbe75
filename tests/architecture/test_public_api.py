"""Each library's `__init__` declares its public API; other libraries import only those names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "python"
LIBRARIES = ("osiris_core", "osiris_drivers", "osiris_remote", "osiris_cli")


def _cross_library_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every `from osiris_x.mod import name` across libraries."""
    found: list[tuple[str, int, str, str]] = []
    for library in LIBRARIES:
        for path in sorted((SRC / library).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    top = node.module.split(".", 1)[0]
                    if top in LIBRARIES and top != library:
                        rel = str(path.relative_to(SRC))
                        found.extend((rel, node.lineno, node.module, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_public_name_resolves_to_the_object_its_module_defines(library: str) -> None:
    package = importlib.import_module(library)
    public: dict[str, str] = package._PUBLIC
    assert package.__all__ == sorted(public)
    for name, module in public.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name), name


def test_libraries_import_only_each_others_public_names() -> None:
    offending = []
    for path, line, module, name in _cross_library_imports():
        package = importlib.import_module(module.split(".", 1)[0])
        public: dict[str, str] = package._PUBLIC
        if module != package.__name__ and public.get(name) != module:
            offending.append(f"{path}:{line} imports {name} from {module}, not declared public")
    assert offending == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        importlib.import_module("osiris_core").no_such_name  # noqa: B018


def test_docs_architecture_lists_every_public_name() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [f"{library}.{name}" for library in LIBRARIES
               for name in importlib.import_module(library).__all__ if f"`{name}`" not in text]
    assert missing == []
