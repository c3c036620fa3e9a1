"""The report as one HTML file: inline CSS and SVG, no script, nothing fetched when it is opened."""

from __future__ import annotations

import html
import math
from typing import Any, Optional

from voicepipe.report.model import LANE_TITLES, LANES, RunData

WIDTH = 1100
LABEL_W = 130
LANE_H = 26
BREAKDOWN = (  # per-turn latency parts, in the order they happen
    ("vad_tail_ms", "end of speech detected"),
    ("server_first_audio_ms", "service to first audio"),
    ("first_audio_from_create_ms", "response.create to first audio"),
    ("tool_ms", "tools"),
    ("playout_delay_ms", "playout"),
)
DISTRIBUTION_KEYS = ("voice_to_voice_ms", "server_first_audio_ms", "first_audio_from_create_ms")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5b6475}.pass{color:#17803d;font-weight:600}.fail{color:#b42318;font-weight:600}
table{border-collapse:collapse;margin:4px 0}td,th{border-bottom:1px solid #e3e6ec;padding:4px 10px;text-align:left;
vertical-align:top}th{background:#f5f7fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:#1d2330}.lane-label{font-weight:600}
.user{fill:#3b82f6}.thinking{fill:#cbd5e1}.generated{fill:#a78bfa}.generated-cancelled{fill:#d8b4fe}
.played{fill:#22c55e}.played-cut{fill:#f59e0b}.tool{fill:#0ea5e9}.reconnect{fill:#fb7185}.lost{fill:#fecdd3}
.barge{fill:#dc2626}.truncate{fill:#111827}.typed{fill:#1d4ed8}.error{fill:#dc2626}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-1px;border-radius:2px}.note{color:#92400e}
.part0{fill:#94a3b8}.part1{fill:#8b5cf6}.part2{fill:#a78bfa}.part3{fill:#0ea5e9}.part4{fill:#22c55e}
.bar{fill:#6366f1}.pline{stroke:#111827;stroke-dasharray:3 2}
"""
_LEGEND = (("user", "user speech"), ("typed", "typed message"), ("thinking", "thinking"),
           ("generated", "audio generated"), ("played", "audio played"), ("played-cut", "played, then cut off"),
           ("barge", "barge-in"), ("truncate", "truncation point"), ("tool", "tool call"),
           ("reconnect", "reconnect"))
_COLOURS = {"user": "#3b82f6", "typed": "#1d4ed8", "thinking": "#cbd5e1", "generated": "#a78bfa",
            "played": "#22c55e", "played-cut": "#f59e0b", "barge": "#dc2626", "truncate": "#111827",
            "tool": "#0ea5e9", "reconnect": "#fb7185"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ms(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _ticks(span: float) -> list[float]:
    if span <= 0:
        return [0.0]
    raw = span / 10
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step) + 1)]


def timeline_svg(data: RunData) -> str:
    duration = max(data.duration_s, 0.001)
    plot = WIDTH - LABEL_W - 10
    height = LANE_H * len(LANES) + 24

    def x(t: float) -> float:
        return LABEL_W + plot * max(0.0, t) / duration

    rows = {lane: i for i, lane in enumerate(LANES)}
    out = [f'<svg id="timeline" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline of the conversation">']
    for lane, row in rows.items():
        y = row * LANE_H
        out.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{LANE_H}" fill="{"#fafbfc" if row % 2 else "#fff"}"/>')
        out.append(f'<text class="lane-label" x="4" y="{y + 17}">{esc(LANE_TITLES[lane])}</text>')
    for span in data.spans:
        y = rows[span.lane] * LANE_H + 5
        w = max(x(span.end) - x(span.start), 1.5)
        out.append(f'<rect class="span {esc(span.kind)}" data-lane="{esc(span.lane)}" x="{x(span.start):.1f}" y="{y}" '
                   f'width="{w:.1f}" height="{LANE_H - 10}" rx="2"><title>{esc(span.title)} '
                   f'({span.start:.2f}-{span.end:.2f} s)</title></rect>')
    for mark in data.marks:
        y = rows[mark.lane] * LANE_H
        cx = x(mark.at)
        out.append(f'<g class="mark {esc(mark.kind)}" data-kind="{esc(mark.kind)}"><title>{esc(mark.title)} '
                   f'({mark.at:.2f} s)</title><rect x="{cx - 1:.1f}" y="{y + 2}" width="2.5" height="{LANE_H - 4}" '
                   f'class="{esc(mark.kind)}"/><path d="M{cx - 4:.1f},{y + 2} L{cx + 4:.1f},{y + 2} L{cx:.1f},{y + 8} Z" '
                   f'class="{esc(mark.kind)}"/></g>')
    axis_y = LANE_H * len(LANES)
    for tick in _ticks(duration):
        out.append(f'<line x1="{x(tick):.1f}" y1="0" x2="{x(tick):.1f}" y2="{axis_y}" stroke="#e5e7eb"/>'
                   f'<text x="{x(tick):.1f}" y="{axis_y + 14}" text-anchor="middle">{tick:g} s</text>')
    out.append("</svg>")
    return "".join(out)


def legend() -> str:
    items = "".join(f'<span><i style="background:{_COLOURS[k]}"></i>{esc(text)}</span>' for k, text in _LEGEND)
    return f'<div class="legend">{items}</div>'


def breakdown_svg(turns: list[dict]) -> str:
    rows = [t for t in turns if any(_num(t.get(k)) for k, _ in BREAKDOWN)]
    if not rows:
        return '<p class="meta">No latency was measured in this run.</p>'
    totals = [sum(_num(t.get(k)) or 0.0 for k, _ in BREAKDOWN) for t in rows]
    top = max(max(totals), 1.0)
    bar_h, plot = 20, WIDTH - LABEL_W - 280
    height = bar_h * len(rows) + 30
    out = [f'<svg id="breakdown" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="latency of each turn by part">']
    for row, (turn, total) in enumerate(zip(rows, totals)):
        y = row * bar_h
        out.append(f'<text x="4" y="{y + 14}">turn {row + 1}</text>')
        at = float(LABEL_W)
        for part, (key, label) in enumerate(BREAKDOWN):
            value = _num(turn.get(key))
            if not value:
                continue
            w = plot * value / top
            out.append(f'<rect class="part part{part}" data-part="{key}" x="{at:.1f}" y="{y + 3}" width="{w:.1f}" '
                       f'height="{bar_h - 6}"><title>{esc(label)}: {value:.0f} ms</title></rect>')
            at += w
        v2v = _num(turn.get("voice_to_voice_ms"))
        shown = f"{total:.0f} ms" + (f" (voice to voice {v2v:.0f} ms)" if v2v is not None else "")
        out.append(f'<text x="{at + 6:.1f}" y="{y + 14}">{esc(shown)}</text>')
    legend_y = bar_h * len(rows) + 18
    at = LABEL_W
    for part, (_, label) in enumerate(BREAKDOWN):
        out.append(f'<rect class="part{part}" x="{at}" y="{legend_y - 9}" width="10" height="10"/>'
                   f'<text x="{at + 14}" y="{legend_y}">{esc(label)}</text>')
        at += 20 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


def distribution_svg(turns: list[dict], summary: dict) -> str:
    key = next((k for k in DISTRIBUTION_KEYS if any(_num(t.get(k)) is not None for t in turns)), None)
    if key is None:
        return '<p class="meta">No latency samples in this run.</p>'
    values = sorted(v for v in (_num(t.get(key)) for t in turns) if v is not None)
    low, high = values[0], values[-1]
    bins = max(1, min(20, len(values)))
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    plot_w, plot_h = WIDTH - 120, 140
    tallest = max(counts)
    out = [f'<svg id="distribution" width="{WIDTH}" height="{plot_h + 40}" '
           f'viewBox="0 0 {WIDTH} {plot_h + 40}" role="img" aria-label="distribution of {esc(key)}">']

    def x(value: float) -> float:
        return 60 + plot_w * (value - low) / (width * bins)

    for index, count in enumerate(counts):
        h = plot_h * count / tallest
        out.append(f'<rect class="bar" x="{x(low + index * width) + 1:.1f}" y="{plot_h - h + 10:.1f}" '
                   f'width="{max(plot_w / bins - 2, 1):.1f}" height="{h:.1f}"><title>{count} turn(s) from '
                   f'{low + index * width:.0f} ms</title></rect>')
    stats = (summary.get("metrics") or {}).get(key) or {}
    for name in ("p50", "p90", "p99"):
        value = _num(stats.get(name))
        if value is None:
            continue
        out.append(f'<line class="pline" x1="{x(value):.1f}" y1="10" x2="{x(value):.1f}" y2="{plot_h + 10}"/>'
                   f'<text x="{x(value) + 3:.1f}" y="20">{name} {value:.0f}</text>')
    out.append(f'<text x="60" y="{plot_h + 28}">{low:.0f} ms</text>'
               f'<text x="{60 + plot_w}" y="{plot_h + 28}" text-anchor="end">{low + width * bins:.0f} ms</text>'
               f'<text x="{60 + plot_w / 2}" y="{plot_h + 28}" text-anchor="middle">{esc(key)} '
               f'({len(values)} turn(s))</text></svg>')
    return "".join(out)


def _num(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def turns_table(turns: list[dict]) -> str:
    if not turns:
        return '<p class="meta">No turns were recorded.</p>'
    keys = ("voice_to_voice_ms", "vad_tail_ms", "server_first_audio_ms", "first_audio_from_create_ms", "tool_ms",
            "playout_delay_ms", "generated_ms", "played_ms")
    head = "".join(f"<th>{esc(k.removesuffix('_ms').replace('_', ' '))} ms</th>" for k in keys)
    rows = []
    for index, turn in enumerate(turns, 1):
        calls = ", ".join(str(c.get("name")) for c in turn.get("tool_calls") or [])
        cells = "".join(f'<td class="num">{_ms(turn.get(k))}</td>' for k in keys)
        rows.append(f"<tr><td>{index}</td><td>{esc(turn.get('trigger') or '')}</td><td>{esc(turn.get('status') or '')}"
                    f"{' (interrupted)' if turn.get('interrupted') else ''}</td><td>{esc(calls)}</td>{cells}</tr>")
    return (f'<table id="turns"><tr><th>#</th><th>trigger</th><th>status</th><th>tools</th>{head}</tr>'
            + "".join(rows) + "</table>")


def transcript_table(entries: list[dict]) -> str:
    if not entries:
        return '<p class="meta">No transcript.</p>'
    rows = []
    for entry in entries:
        note = ""
        if entry.get("interrupted"):
            note = f" <em>(cut off at {_ms(entry.get('played_ms'))} ms)</em>"
        rows.append(f'<tr class="role-{esc(entry.get("role"))}"><td class="num">{_ms((_num(entry.get("start")) or 0) * 1000)}'
                    f'</td><td>{esc(entry.get("role"))}</td><td>{esc(entry.get("text") or "")}{note}</td></tr>')
    return '<table id="transcript"><tr><th>ms</th><th>who</th><th>text</th></tr>' + "".join(rows) + "</table>"


def results_table(conversation: dict) -> str:
    verdict = '<span class="pass">passed</span>' if conversation.get("passed") else '<span class="fail">failed</span>'
    parts = [f"<p>Conversation <b>{esc(conversation.get('conversation'))}</b> ({esc(conversation.get('file'))}): "
             f"{verdict}, pace {esc(conversation.get('pace'))}, {conversation.get('seconds', 0):.1f} s</p>"]
    if conversation.get("error"):
        parts.append(f'<p class="fail">{esc(conversation["error"])}</p>')
    rows = []
    for turn in conversation.get("turns") or []:
        for check in turn.get("checks") or []:
            mark = '<span class="pass">pass</span>' if check.get("passed") else '<span class="fail">FAIL</span>'
            rows.append(f"<tr><td>{turn.get('turn')}</td><td>{esc(turn.get('label'))}</td><td>{esc(check.get('kind'))}"
                        f"</td><td>{mark}</td><td>{esc(check.get('message'))}</td></tr>")
    if rows:
        parts.append('<table id="checks"><tr><th>turn</th><th>caller</th><th>check</th><th></th><th>why</th></tr>'
                     + "".join(rows) + "</table>")
    return "".join(parts)


def render(data: RunData) -> str:
    summary = data.summary or {}
    facts = [f"{data.duration_s:.1f} s recorded", f"{len(data.turns)} turn(s)"]
    if summary.get("interrupted"):
        facts.append(f"{summary['interrupted']} interrupted")
    if summary.get("reason"):
        facts.append(f"ended: {summary['reason']}")
    body = [
        f"<h1>voicepipe report: {esc(data.name)}</h1>",
        f'<p class="meta">{esc(" · ".join(facts))}</p>',
    ]
    if data.conversation is not None:
        body += ['<h2 id="results-title">Conversation test</h2>', results_table(data.conversation)]
    body += [
        '<h2>Timeline</h2>', legend(), timeline_svg(data),
        '<h2>Latency per turn</h2>', breakdown_svg(data.turns), turns_table(data.turns),
        '<h2>Latency distribution</h2>', distribution_svg(data.turns, summary),
        '<h2>Transcript</h2>', transcript_table(data.transcript),
    ]
    if data.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{esc(n)}</li>' for n in data.notes) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>voicepipe report: {esc(data.name)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
