"""`osiris logs html`: one self-contained HTML page about a run, readable offline and as an e-mail attachment.

No scripts, no fonts, no images from anywhere: styles are inline, the graph is inline SVG, and the page's
Content-Security-Policy forbids every fetch, so it looks the same wherever it is opened. Every value from the
session is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from osiris_cli import __version__
from osiris_cli.dag_svg import STATUS_COLOURS, render_dag
from osiris_cli.sessions import human_duration

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
STYLE = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.pill { display: inline-block; padding: 1px 10px; border-radius: 999px; color: #fff; font-weight: 600;
        font-size: 13px; vertical-align: middle; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.error { border: 1px solid #ff8182; background: #ffebe9; border-radius: 8px; padding: 12px 16px; margin-top: 20px; }
.error .message { font-weight: 600; overflow-wrap: anywhere; }
.error .hint { margin-top: 6px; }
.note { color: var(--muted); font-style: italic; }
.graph { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); padding: 8px; }
svg.dag { display: block; max-width: 100%; height: auto; }
svg.dag text { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
svg.dag text.id { font-size: 13px; font-weight: 700; fill: #1f2328; }
svg.dag text.component { font-size: 11px; fill: #59636e; }
svg.dag text.status { font-size: 11px; font-weight: 600; }
svg.dag path.edge { fill: none; stroke: #57606a; stroke-width: 1.5; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.mono:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:target { background: #fff8c5; }
.status { font-weight: 600; white-space: nowrap; }
.timeline .row { display: grid; grid-template-columns: minmax(160px, 260px) 1fr 90px; gap: 10px; align-items: center;
                 padding: 3px 0; }
.timeline .track { position: relative; height: 16px; background: var(--bg); border-radius: 4px; }
.timeline .bar { position: absolute; top: 0; bottom: 0; min-width: 3px; border-radius: 4px; }
.timeline .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
details { margin: 6px 0; }
summary { cursor: pointer; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto;
      white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def _pill(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#59636e")
    return f'<span class="pill" style="background:{colour}">{escape(status)}</span>'


def _status(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#59636e")
    return f'<span class="status" style="color:{colour}">{escape(status)}</span>'


def _place(report: Mapping[str, Any]) -> str:
    execution = report.get("execution") or {}
    if execution.get("mode") == "sandbox":
        return f"sandbox ({escape(str(execution.get('backend') or 'unknown'))})"
    return "local (on this machine)" if report.get("place") == "local" else "unknown (the run has no card)"


def _facts(report: Mapping[str, Any]) -> str:
    execution = report.get("execution") or {}
    bundle = execution.get("bundle_sha256")
    rows = [("Pipeline", escape(str(report.get("pipeline") or "unknown"))),
            ("Session", f'<span class="mono">{escape(report["session"])}</span>'),
            ("Started", escape((report.get("started_at") or "unknown").replace("T", " ").replace("Z", " UTC"))),
            ("Duration", human_duration(report.get("duration_ms"))),
            ("Execution", _place(report)),
            ("Bundle sha256", f'<span class="mono">{escape(bundle)}</span>' if bundle
             else "none (the steps ran in this process, not from a bundle)"),
            ("Driver code sha256", f'<span class="mono">{escape(str(report.get("driver_code_sha256") or "—"))}</span>')]
    if execution.get("sandbox_session"):
        rows.append(("Sandbox session", f'<span class="mono">{escape(str(execution["sandbox_session"]))}</span>'))
    counts: dict[str, int] = {}
    for step in report["steps"]:
        counts[str(step["status"])] = counts.get(str(step["status"]), 0) + 1
    rows.append(("Steps", ", ".join(f"{n} {escape(s)}" for s, n in counts.items()) or "none"))
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _error(report: Mapping[str, Any]) -> str:
    error, failed = report.get("error"), report.get("failed_step")
    if not error and not failed:
        return ""
    shown = error or (failed or {}).get("error") or {}
    parts = ['<section class="error" id="error"><div><strong>Error</strong></div>',
             f'<div class="message">{escape(str(shown.get("message") or ""))}</div>']
    if shown.get("hint"):
        parts.append(f'<div class="hint"><strong>Hint:</strong> {escape(str(shown["hint"]))}</div>')
    if failed:
        parts.append(f'<div class="note">In step <a href="#step-{escape(str(failed.get("step_id")))}">'
                     f'{escape(str(failed.get("step_id")))}</a> ({escape(str(failed.get("error_type") or "error"))})'
                     "</div>")
        if failed.get("traceback"):
            parts.append(f"<details><summary>Traceback</summary><pre>{escape(str(failed['traceback']))}</pre>"
                         "</details>")
    parts.append("</section>")
    return "".join(parts)


def _steps_table(steps: Sequence[Mapping[str, Any]]) -> str:
    head = ('<table class="steps"><thead><tr><th>Step</th><th>Component</th><th>Status</th><th class="num">Rows in'
            '</th><th class="num">Rows out</th><th class="num">Duration</th><th>Error</th></tr></thead><tbody>')
    rows = []
    for step in steps:
        step_id = escape(str(step["step_id"]))
        rows.append(f'<tr id="step-{step_id}" data-step="{step_id}"><td class="mono">{step_id}</td>'
                    f'<td class="mono">{escape(str(step.get("component") or "—"))}</td>'
                    f'<td>{_status(str(step["status"]))}</td>'
                    f'<td class="num">{_count(step.get("rows_in"))}</td>'
                    f'<td class="num">{_count(step.get("rows_out"))}</td>'
                    f'<td class="num">{human_duration(step.get("duration_ms"))}</td>'
                    f'<td>{escape(str(step.get("error") or ""))}</td></tr>')
    return head + "".join(rows) + "</tbody></table>"


def _incremental(steps: Sequence[Mapping[str, Any]]) -> str:
    """Each incremental extractor's read (the card's `steps[].incremental`); "" when there is none."""
    rows = []
    for step in steps:
        read = step.get("incremental")
        if not isinstance(read, Mapping):
            continue
        before = read.get("cursor_before")
        after = read.get("cursor_after")
        start = "full (--full-refresh)" if read.get("full_refresh") else "full (no state)" if before is None \
            else str(before)
        rows.append(f'<tr data-step="{escape(str(step["step_id"]))}"><td class="mono">'
                    f'{escape(str(step["step_id"]))}</td><td class="mono">{escape(start)}</td>'
                    f'<td class="mono">{escape(str(after) if after is not None else "not committed")}</td>'
                    f'<td class="num">{_count(read.get("rows_read"))}</td></tr>')
    if not rows:
        return ""
    return ('<h2>Incremental reads</h2><table class="incremental"><thead><tr><th>Step</th><th>Cursor before</th>'
            '<th>Cursor after</th><th class="num">Rows read</th></tr></thead><tbody>' + "".join(rows) +
            "</tbody></table>")


def _timeline(report: Mapping[str, Any]) -> str:
    spans: Mapping[str, Mapping[str, Any]] = report.get("timeline") or {}
    if not spans:
        return '<p class="note">No step started.</p>'
    ends = [s["end_ms"] if s["end_ms"] is not None else s["start_ms"] for s in spans.values()]
    total = max([*ends, report.get("duration_ms") or 0, 1])
    rows = []
    for step in report["steps"]:
        step_id = str(step["step_id"])
        span = spans.get(step_id)
        colour = STATUS_COLOURS.get(str(step["status"]), "#afb8c1")
        if span is None:
            bar, label = "", "not run"
        else:
            end = span["end_ms"] if span["end_ms"] is not None else total
            left, width = 100 * span["start_ms"] / total, 100 * (end - span["start_ms"]) / total
            bar = (f'<div class="bar" style="left:{left:.2f}%;width:{width:.2f}%;background:{colour}" '
                   f'title="{escape(step_id)}: +{span["start_ms"]} ms"></div>')
            label = human_duration(end - span["start_ms"]) + ("" if span["end_ms"] is not None else " so far")
        rows.append(f'<div class="row"><div class="label mono">{escape(step_id)}</div>'
                    f'<div class="track">{bar}</div><div class="num mono">{escape(label)}</div></div>')
    return f'<div class="timeline">{"".join(rows)}</div>'


def _configs(report: Mapping[str, Any]) -> str:
    configs: Mapping[str, Any] = report.get("configs") or {}
    if not configs:
        return '<p class="note">No step configs were written.</p>'
    return "".join(f'<details><summary class="mono">{escape(step_id)}</summary>'
                   f"<pre>{escape(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True))}</pre></details>"
                   for step_id, config in configs.items())


def _events(report: Mapping[str, Any]) -> str:
    shown: Sequence[Mapping[str, Any]] = report.get("events") or []
    total = int(report.get("events_total") or len(shown))
    rows = []
    for event in shown:
        rest = {k: v for k, v in event.items() if k not in ("ts", "event", "step_id")}
        detail = json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str)
        rows.append(f'<tr><td class="mono">{escape(str(event.get("ts", ""))[11:23])}</td>'
                    f'<td class="mono">{escape(str(event.get("event")))}</td>'
                    f'<td class="mono">{escape(str(event.get("step_id") or ""))}</td>'
                    f'<td class="mono">{escape(detail[:400] + ("…" if len(detail) > 400 else ""))}</td></tr>')
    more = f" (the first {len(shown)} shown)" if total > len(shown) else ""
    return (f"<details><summary>{total} events{more}</summary><table><thead><tr><th>Time (UTC)</th>"
            f"<th>Event</th><th>Step</th><th>Details</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</details>")


def render_html(report: Mapping[str, Any]) -> str:
    """The page for a `report.run_report` result."""
    title = f"{report.get('pipeline') or 'run'} — {report['status']} — Osiris run {report['session']}"
    note = report.get("dag_note")
    graph = render_dag(report["steps"], report.get("needs"))
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(str(report.get('pipeline') or 'Unknown pipeline'))} {_pill(str(report['status']))}</h1>",
        f'<p class="sub">Osiris run report · session <span class="mono">{escape(report["session"])}</span></p>',
        _facts(report), _error(report),
        '<h2>Pipeline</h2><div class="graph">', graph, "</div>",
        f'<p class="note">{escape(str(note))}</p>' if note else "",
        "<h2>Steps</h2>", _steps_table(report["steps"]), _incremental(report["steps"]),
        "<h2>Timeline</h2>", _timeline(report),
        "<h2>Configs <small class=\"note\">(as the steps received them, secrets masked)</small></h2>",
        _configs(report),
        "<h2>Events</h2>", _events(report),
        f"<footer>Generated by osiris {escape(__version__)} from {escape(report['session'])}. "
        "Self-contained: this file loads nothing from the network.</footer>",
        "</main></body></html>\n",
    ])
