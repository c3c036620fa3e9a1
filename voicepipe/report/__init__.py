"""``voicepipe report RUN_FOLDER``: a picture of one conversation as a single self-contained HTML file.

The report shows the timeline (user speech, thinking, audio generated and played, barge-ins and
truncation points, tool calls, reconnects), each turn's latency by part, the latency distribution,
the transcript, and a conversation test's results when the folder holds them. It needs no network
to open: CSS and SVG are inline and there is no script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from voicepipe.diskwrite import write_whole
from voicepipe.errors import UsageError
from voicepipe.report.html import render
from voicepipe.report.model import RunData, load_run

REPORT_FILE = "report.html"


def write_report(run_dir: str | Path, output: Optional[str | Path] = None) -> Path:
    """Render the report of ``run_dir`` to ``output`` (default ``run_dir/report.html``), whole or
    not at all (:func:`voicepipe.diskwrite.write_whole`), so a reader never sees half of it."""
    data = load_run(run_dir)
    target = Path(output) if output is not None else Path(run_dir) / REPORT_FILE
    try:
        write_whole(target, render(data))
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


__all__ = ["REPORT_FILE", "RunData", "load_run", "render", "write_report"]
