"""Two sessions in one process, as `voicepipe serve` runs them: nothing of one reaches the other.

Each session has its own plugin manager (class plugins get an instance each), its own settings,
run folder, transcript, events and log file.
"""

import asyncio
import json
from pathlib import Path

from voicepipe import hookimpl
from voicepipe.logsetup import configure_logging, session_log_file, shutdown_logging
from voicepipe.plugins import configure_plugins, load_plugin_set
from voicepipe.profile import load_profile
from voicepipe.runtime import SessionRunner

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "demo.yaml"
FAST = ["connection.emulator.speed=0", "audio.input.realtime=false", "audio.output.realtime=false", "disable=[console]"]


class EventCounter:
    """A stateful class plugin: counts the server events its own session saw."""

    instances: list = []

    def __init__(self):
        self.events = 0
        self.session_ids: set = set()
        EventCounter.instances.append(self)

    @hookimpl
    def voicepipe_event(self, event, ctx):
        self.events += 1
        if ctx.session_id:
            self.session_ids.add(ctx.session_id)


async def _session(keywords: str, run_dir: Path) -> tuple[int, object]:
    profile = load_profile(DEMO, [*FAST, f"keyword_alert.keywords=[{keywords}]"])
    plugins = load_plugin_set(profile, autoload=False)
    plugins.entries.append(("event_counter", EventCounter, "test"))
    pm = plugins.manager()
    configure_plugins(pm, profile)
    counter = pm.get_plugin("event_counter")
    with session_log_file(run_dir):
        runner = SessionRunner(profile, pm, run_dir, _log(), duration=60)
        return await runner.run(), counter


def _log():
    from voicepipe.logsetup import get_logger

    return get_logger()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_two_concurrent_sessions_keep_their_own_state(tmp_path):
    EventCounter.instances.clear()
    lake, volcano = tmp_path / "lake", tmp_path / "volcano"
    configure_logging(None, console_level="WARNING", session_files=True)

    async def both():
        return await asyncio.gather(_session("lake", lake), _session("volcano", volcano))

    try:
        (code_a, counter_a), (code_b, counter_b) = asyncio.run(both())
    finally:
        shutdown_logging()
    assert (code_a, code_b) == (0, 0)

    # the keyword plugin is a class: each session had its own instance with its own keywords
    alerts = _lines(lake / "alerts.jsonl")
    assert [a["keywords"] for a in alerts] == [["lake"]]
    assert not (volcano / "alerts.jsonl").exists()

    # a stateful class plugin counted only its own session's events
    assert counter_a is not counter_b and len(EventCounter.instances) == 2
    for counter, run_dir in ((counter_a, lake), (counter_b, volcano)):
        server_events = [line for line in _lines(run_dir / "events.jsonl") if line.get("direction") == "server"]
        assert counter.events == len(server_events) > 0
    assert len(counter_a.session_ids) == len(counter_b.session_ids) == 1
    assert counter_a.session_ids != counter_b.session_ids

    # each log file holds the lines of its own session only
    for counter, run_dir in ((counter_a, lake), (counter_b, volcano)):
        (own,) = counter.session_ids
        tagged = {line["session_id"] for line in _lines(run_dir / "voicepipe.log.jsonl") if "session_id" in line}
        assert tagged == {own}

    # and each transcript is one question and its answer
    for run_dir in (lake, volcano):
        text = (run_dir / "transcript.txt").read_text(encoding="utf-8")
        assert text.count("largest lake") >= 1 and "Caspian" in text
