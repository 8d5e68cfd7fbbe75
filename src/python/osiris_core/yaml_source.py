"""YAML loading that remembers where every key and value stands, for errors that name line and column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from osiris_core.errors import Location, YamlError
from osiris_core.input_files import MAX_YAML_BYTES, read_regular_text

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
"""More nodes than any pipeline needs, counted while parsing with every alias expanded: a bound against alias
bombs (a few lines that expand exponentially) and against huge files of small values."""
MAX_DEPTH = 100
"""More nesting than any pipeline, spec or manifest needs: a bound on the parser's recursion."""
MAX_INT_BITS = 14_000
"""Larger integers (`0b…`/`0x…` literals) could not even be printed: Python converts at most 4300 digits."""
MERGE_TAG = "tag:yaml.org,2002:merge"


class _Mark(Protocol):
    line: int
    column: int


def _location(path: str, mark: _Mark | None) -> Location:
    return Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nodes (aliases expanded) and depth while composing, refuses recursive aliases,
    and rejects duplicate mapping keys instead of silently keeping the last."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.source_path = path
        self._expanded = 0
        self._depth = 0
        self._aliased = False
        self._sizes: dict[int, int] = {}
        """id(anchored node) → its size with aliases expanded, once it is complete."""

    def _grow(self, count: int, mark: _Mark | None) -> None:
        self._expanded += count
        if self._expanded > MAX_NODES:
            expanded = " after expanding aliases" if self._aliased else ""
            raise YamlError(f"more than {MAX_NODES} nodes{expanded}", location=_location(self.source_path, mark),
                            hint="write the file out without nested aliases" if self._aliased
                            else "this is far larger than any pipeline: check that it is the right file")

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor) if event.anchor is not None else None
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:  # the anchored node is still being composed: it contains its own alias
                    raise YamlError("recursive alias", location=_location(self.source_path, target.start_mark),
                                    hint="an alias may not contain itself")
                self._aliased = True
                self._grow(size, event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep", hint="flatten the structure",
                            location=_location(self.source_path, event.start_mark))
        before = self._expanded
        self._grow(1, event.start_mark)
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct as SafeLoader does; a value it cannot convert (`2024-13-45`, an int of 5000 digits,
        `!!int x`) or that is no plain data (`!!binary`) is a `YamlError` at that value."""
        try:
            value = super().construct_object(node, deep)
            if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                raise ValueError(f"an integer of more than {MAX_INT_BITS} bits")
            if isinstance(value, bytes):
                raise ValueError("binary (!!binary) values are not supported")
        except (ValueError, TypeError, ArithmeticError) as exc:
            detail = str(exc).split(":")[0].splitlines()[0] if str(exc) else type(exc).__name__
            raise YamlError(f"invalid value: {detail}", location=_location(self.source_path, node.start_mark),
                            hint="quote it to keep it as text") from None
        return value


def _positions(root: yaml.Node, path: str) -> tuple[dict[PathKey, tuple[int, int]], dict[PathKey, tuple[int, int]]]:
    """Line/column of every node and mapping key by path (the composer has bounded the expanded tree)."""
    positions: dict[PathKey, tuple[int, int]] = {}
    key_positions: dict[PathKey, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, at = stack.pop()
        positions[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError("mapping keys must be plain values", hint="use a string as the key",
                                    location=_location(path, key_node.start_mark))
                child = (*at, key_node.value)
                key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*at, index)) for index, item in enumerate(node.value))
    return positions, key_positions


def _construct_mapping(loader: _BoundedLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue  # `<<: *base` merges: explicit keys may override merged ones
        key = loader.construct_object(key_node)
        if key in seen:
            raise YamlError(f"duplicate key '{key}'", location=_location(loader.source_path, key_node.start_mark),
                            hint="each key may appear once in a mapping")
        seen.add(key)
    return loader.construct_mapping(node)


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, *, path: str) -> YamlDocument:
    """Parse one YAML document in a single pass; syntax errors and limits become a located `YamlError`."""
    loader = _BoundedLoader(text, path)
    try:
        node = loader.get_single_node()
        positions, key_positions = _positions(node, path) if node is not None else ({}, {})
        data = loader.construct_document(node) if node is not None else None
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
    finally:
        loader.dispose()
    return YamlDocument(path=path, data=data, positions=positions, key_positions=key_positions)


def load_yaml(path: Path, *, what: str = "YAML") -> YamlDocument:
    """Read (a regular file of at most `MAX_YAML_BYTES`) and parse a YAML file; any problem is a `YamlError`."""
    text = read_regular_text(path, limit=MAX_YAML_BYTES, what=what, error=YamlError)
    return parse_yaml(text, path=str(path))
