"""Aggregation for the metrics plugin: percentiles, token totals and the end-of-session table.

Percentiles use the **nearest-rank** method: the p-th percentile of ``n`` sorted values is the value
at rank ``ceil(p / 100 * n)`` (1-based). Every reported percentile is therefore a value that was
actually measured, never an interpolation between two turns, and p99 of fewer than 100 turns is the
maximum.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

PERCENTILES = (50, 90, 99)
#: the per-turn latencies the metrics plugin measures (each record's ``*_ms`` keys), in table order
LATENCY_METRICS = (
    "voice_to_voice_ms",
    "server_first_audio_ms",
    "first_audio_from_create_ms",
    "vad_tail_ms",
    "playout_delay_ms",
    "response_duration_ms",
    "tool_ms",
)
PERCENTILE_METHOD = "nearest-rank"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of non-empty, ascending ``sorted_values``."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """``{count, p50, p90, p99, max}`` of ``values``; the statistics are ``None`` when there are none."""
    ordered = sorted(values)
    summary: dict[str, Any] = {"count": len(ordered)}
    for p in PERCENTILES:
        summary[f"p{p}"] = percentile(ordered, p) if ordered else None
    summary["max"] = ordered[-1] if ordered else None
    return summary


def add_usage(totals: dict[str, Any], usage: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Add the numbers of one ``response.done`` ``usage`` into ``totals``, key by key, nested dicts too.

    Keys are kept as the server sent them, so fields this code does not know (Voice Live's
    ``cache_write_tokens``, a future ``image_tokens``) are totalled as well. Non-numeric values are
    ignored, and so is a value whose kind (number or mapping) disagrees with the total so far.
    """
    if not usage:
        return totals
    for key, value in usage.items():
        if isinstance(value, bool):
            continue
        total = totals.get(key)
        if _is_number(value) and (total is None or _is_number(total)):
            totals[key] = (total or 0) + value
        elif isinstance(value, Mapping) and (total is None or isinstance(total, dict)):
            add_usage(totals.setdefault(key, {}), value)
    return totals


def token_breakdown(usage: Optional[Mapping[str, Any]]) -> list[tuple[str, str, float]]:
    """``(direction, kind, count)`` for the token counts an exporter reports from one ``usage``.

    ``direction`` is ``input`` or ``output``; ``kind`` is ``total``, ``text``, ``audio`` or (input
    only) ``cached``. Counts the server did not send are left out.
    """
    if not usage:
        return []
    found = []
    for direction in ("input", "output"):
        total = usage.get(f"{direction}_tokens")
        if _is_number(total):
            found.append((direction, "total", total))
        details = usage.get(f"{direction}_token_details") or {}
        for kind in ("text", "audio", "cached"):
            count = details.get(f"{kind}_tokens")
            if _is_number(count):
                found.append((direction, kind, count))
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the table ---------------------------------------------------------------------------------------


def format_table(summary: Mapping[str, Any]) -> str:
    """Render a ``metrics.json`` summary as a plain-text table (no colours, no terminal codes)."""
    turns = summary.get("turns", 0)
    interrupted = summary.get("interrupted", 0)
    heading = f"metrics: {turns} turn{'s' if turns != 1 else ''}, {interrupted} interrupted"
    if interrupted:
        heading += " (the latencies leave interrupted turns out; the token totals count every turn)"
    lines = [heading]
    rows = [(name, stats) for name, stats in summary.get("metrics", {}).items() if stats.get("count")]
    if rows:
        width = max(len("metric"), *(len(name) for name, _ in rows))
        header = f"  {'metric':<{width}}  {'count':>5}" + "".join(
            f"  {column:>8}" for column in ("p50", "p90", "p99", "max")
        )
        lines.append(header)
        for name, stats in rows:
            cells = "".join(f"  {_cell(stats.get(column)):>8}" for column in ("p50", "p90", "p99", "max"))
            lines.append(f"  {name:<{width}}  {stats['count']:>5}{cells}")
    else:
        lines.append("  no latency measured")
    tokens = summary.get("tokens") or {}
    if tokens:
        lines.append("  tokens: " + _token_line(tokens))
    return "\n".join(lines)


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _token_line(tokens: Mapping[str, Any]) -> str:
    parts = []
    for direction, kinds in (("input", ("cached", "text", "audio")), ("output", ("text", "audio"))):
        total = tokens.get(f"{direction}_tokens")
        if total is None:
            continue
        details = tokens.get(f"{direction}_token_details") or {}
        known = [f"{kind} {details[f'{kind}_tokens']}" for kind in kinds if f"{kind}_tokens" in details]
        parts.append(f"{direction} {total}" + (f" ({', '.join(known)})" if known else ""))
    if "total_tokens" in tokens:
        parts.append(f"total {tokens['total_tokens']}")
    return ", ".join(parts) if parts else "none"
