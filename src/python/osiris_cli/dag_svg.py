"""The pipeline graph as inline SVG: one column per depth, left to right, edges from each need to its step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

NODE_H = 64
GAP_X = 64
GAP_Y = 20
PAD = 16
CHAR_W = 7.9
"""Width of one character of the 13px monospace step id, for sizing the boxes."""
MAX_CHARS = 30
WRAP = 4
"""Steps per row when the graph is unknown."""
STATUS_COLOURS = {"succeeded": "#1a7f37", "failed": "#cf222e", "skipped": "#8c959f", "started": "#bf8700",
                  "not started": "#afb8c1"}


@dataclass(frozen=True)
class Box:
    step: Mapping[str, Any]
    x: float
    y: float


def _depths(order: Sequence[str], needs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for step_id in order:  # execution order: every need comes first
        depth[step_id] = 1 + max((depth.get(n, 0) for n in needs.get(step_id, ())), default=-1)
    return depth


def shorten(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _grid(steps: Sequence[Mapping[str, Any]], needs: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[int, int]]:
    """(column, row) per step: by depth in the graph, or without `needs` in execution order, WRAP to a row."""
    order = [str(s["step_id"]) for s in steps]
    if needs is None:
        return {step_id: (i % WRAP, i // WRAP) for i, step_id in enumerate(order)}
    depth = _depths(order, needs)
    rows: dict[int, int] = {}
    place = {}
    for step_id in order:
        column = depth[step_id]
        place[step_id] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return place


def _layout(steps: Sequence[Mapping[str, Any]], needs: Mapping[str, Sequence[str]] | None) -> tuple[
        list[Box], float, float, float]:
    place = _grid(steps, needs)
    longest = max(max(len(shorten(str(s["step_id"]))), len(shorten(str(s.get("component") or "")))) for s in steps)
    node_w = max(190.0, longest * CHAR_W + 28)
    columns = 1 + max(c for c, _ in place.values())
    per_column = [sum(1 for c, _ in place.values() if c == column) for column in range(columns)]
    tallest = max(per_column)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    boxes = []
    for step in steps:
        column, row = place[str(step["step_id"])]
        used = per_column[column] * NODE_H + (per_column[column] - 1) * GAP_Y
        top = (height - used) / 2 if needs is not None else PAD  # a graph's columns are centred
        boxes.append(Box(step, PAD + column * (node_w + GAP_X), top + row * (NODE_H + GAP_Y)))
    width = PAD * 2 + columns * node_w + (columns - 1) * GAP_X
    return boxes, node_w, width, height


def _rows(step: Mapping[str, Any]) -> str:
    rows = step.get("rows_out")
    return "" if rows is None else f" · {rows:,} rows"


def render_dag(steps: Sequence[Mapping[str, Any]], needs: Mapping[str, Sequence[str]] | None) -> str:
    """An `<svg>` of the steps; without `needs` (manifest unavailable) they stand in execution order, unlinked."""
    if not steps:
        return ""
    drawn: Mapping[str, Sequence[str]] = needs or {}  # without needs, no edges: the real ones are unknown
    boxes, node_w, width, height = _layout(steps, needs)
    where = {str(b.step["step_id"]): b for b in boxes}
    parts = [f'<svg class="dag" role="img" aria-label="pipeline graph" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'width="{width:.0f}" height="{height:.0f}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>']
    for step_id, box in where.items():
        for need in drawn.get(step_id, ()):
            source = where.get(need)
            if source is None:
                continue
            x1, y1 = source.x + node_w, source.y + NODE_H / 2
            x2, y2 = box.x, box.y + NODE_H / 2
            bend = (x2 - x1) / 2
            parts.append(f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} '
                         f'{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" marker-end="url(#arrow)"/>')
    for step_id, box in where.items():
        status = str(box.step.get("status"))
        colour = STATUS_COLOURS.get(status, "#afb8c1")
        component = str(box.step.get("component") or "")
        parts.append(
            f'<a href="#step-{escape(step_id)}" class="node" data-step="{escape(step_id)}">'
            f"<title>{escape(step_id)} ({escape(component)}): {escape(status)}{escape(_rows(box.step))}</title>"
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{node_w:.0f}" height="{NODE_H}" rx="8" fill="#ffffff" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="6" height="{NODE_H}" rx="3" fill="{colour}"/>'
            f'<text class="id" x="{box.x + 16:.1f}" y="{box.y + 22:.1f}">{escape(shorten(step_id))}</text>'
            f'<text class="component" x="{box.x + 16:.1f}" y="{box.y + 39:.1f}">{escape(shorten(component))}</text>'
            f'<text class="status" x="{box.x + 16:.1f}" y="{box.y + 55:.1f}" fill="{colour}">'
            f"{escape(status)}{escape(_rows(box.step))}</text></a>")
    parts.append("</svg>")
    return "".join(parts)
