"""YAML loading that remembers where every key and value stands, for errors that name line and column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from osiris_core.errors import Location, YamlError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the position of each node, keyed by its path from the root."""

    path: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def location(self, at: Sequence[str | int], *, key: bool = False) -> Location:
        """The location of the node at `at`, or of its nearest existing ancestor.

        With `key=True` the position of the mapping key (not its value) is preferred.
        """
        probe: PathKey = tuple(at)
        while True:
            table = self.key_positions if key else self.positions
            if probe in table:
                line, column = table[probe]
                return Location(self.path, line, column)
            if key and probe in self.positions:
                line, column = self.positions[probe]
                return Location(self.path, line, column)
            if not probe:
                return Location(self.path, 1, 1)
            probe = probe[:-1]


MAX_NODES = 100_000
"""More nodes than any pipeline needs: a bound against alias bombs (a few lines that expand exponentially)."""


def _positions(root: yaml.Node, path: str) -> tuple[dict[PathKey, tuple[int, int]], dict[PathKey, tuple[int, int]]]:
    """Line/column of every node and mapping key by path; refuses recursive aliases and alias bombs."""
    positions: dict[PathKey, tuple[int, int]] = {}
    key_positions: dict[PathKey, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, PathKey, frozenset[int]]] = [(root, (), frozenset())]
    while stack:
        node, at, ancestors = stack.pop()
        where = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in ancestors:
            raise YamlError("recursive alias", location=Location(path, *where), hint="an alias may not contain itself")
        if len(positions) >= MAX_NODES:
            raise YamlError(f"more than {MAX_NODES} nodes after expanding aliases", location=Location(path),
                            hint="write the pipeline out without nested aliases")
        positions[at] = where
        inner = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    mark = key_node.start_mark
                    raise YamlError("mapping keys must be plain values", hint="use a string as the key",
                                    location=Location(path, mark.line + 1, mark.column + 1))
                child = (*at, key_node.value)
                key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                stack.append((value_node, child, inner))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*at, index), inner) for index, item in enumerate(node.value))
    return positions, key_positions


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue  # `<<: *base` merges: explicit keys may override merged ones
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise YamlError(
                f"duplicate key '{key}'",
                location=Location(str(getattr(loader, "source_path", "<yaml>")), mark.line + 1, mark.column + 1),
                hint="each key may appear once in a mapping",
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, *, path: str) -> YamlDocument:
    """Parse one YAML document; syntax errors become a `YamlError` with the location."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        positions, key_positions = _positions(node, path) if node is not None else ({}, {})
        loader = _UniqueKeyLoader(text)
        loader.source_path = path  # type: ignore[attr-defined]
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
        problem = exc.problem or "invalid YAML"
        raise YamlError(f"invalid YAML: {problem}", location=location, hint="fix the YAML syntax") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", location=Location(path), hint="fix the YAML syntax") from None
    except RecursionError:
        raise YamlError("invalid YAML: nested too deeply", location=Location(path),
                        hint="flatten the structure") from None
    return YamlDocument(path=path, data=data, positions=positions, key_positions=key_positions)


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse a YAML file; a missing or unreadable file is a `YamlError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError("file not found", location=Location(str(path)), hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(f"cannot read file: {exc}", location=Location(str(path))) from None
    return parse_yaml(text, path=str(path))
