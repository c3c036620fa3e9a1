"""Benchmark plugin for ``benchmarks/web_load.py``: when the server received each assistant delta.

Loaded by the benchmark's profile in the serving process. For every ``response.audio.delta`` it
records ``(item_id, audio bytes of the item so far, time.monotonic())`` as the first hook to see
it, and writes the session's records to ``$VOICEPIPE_WEB_PROBE/<session>.json`` at its end; the
load client matches them with the time the same bytes reached its socket (one clock: the same
machine's monotonic clock).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import voicepipe

STASH_KEY = "web_probe"


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    ctx.stash[STASH_KEY] = ({}, [])


@voicepipe.hookimpl(tryfirst=True)
def voicepipe_event(event: Any, ctx: Any) -> None:
    now = time.monotonic()
    if event.get("type") != "response.audio.delta":
        return
    totals, records = ctx.stash[STASH_KEY]
    delta = event.get("delta") or ""
    size = len(delta) * 3 // 4 - delta[-2:].count("=")
    size -= size & 1  # the output keeps whole samples
    item_id = event.get("item_id")
    total = totals[item_id] = totals.get(item_id, 0) + size
    records.append((item_id, total, now))


@voicepipe.hookimpl
def voicepipe_session_end(ctx: Any) -> None:
    folder = os.environ.get("VOICEPIPE_WEB_PROBE")
    state = ctx.stash.get(STASH_KEY)
    if folder and state is not None:
        path = Path(folder) / f"{ctx.session_id or id(state)}.json"
        path.write_text(json.dumps(state[1]), encoding="utf-8")
