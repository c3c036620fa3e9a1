"""The benchmarks run end to end at a tiny size (``python -m benchmarks --quick``) and report rows that
hold together. Nothing here asserts that something is fast: speed targets are read from BENCHMARKS.md,
not tested (a device that buffers 400 ms is shown to miss the barge-in goal, which it cannot meet)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside voicepipe, not inside it

from benchmarks.__main__ import END_MARK, NAMES, START_MARK, markdown_table, result_text, write_markdown  # noqa: E402

# the sizes `--quick` runs at (benchmarks/__main__.py)
QUICK_BARGE_INS = 20
QUICK_DEVICE_BARGE_INS = 3
QUICK_DELTAS = 4 * 10
QUICK_SESSIONS = 3
QUICK_SPLIT_SESSIONS = 4


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out / "rows.json"),
               "--output", str(out / "BENCHMARKS.md")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return {
        "rows": json.loads((out / "rows.json").read_text(encoding="utf-8")),
        "stdout": done.stdout,
        "markdown": (out / "BENCHMARKS.md").read_text(encoding="utf-8"),
    }


def rows_of(quick, name):
    rows = [row for row in quick["rows"] if row["benchmark"] == name]
    assert rows, f"no {name} rows"
    return rows


def case(rows, name):
    """The row whose case is ``name``, or else the one row whose case starts with it."""
    matching = [row for row in rows if row["case"] == name] or [row for row in rows if row["case"].startswith(name)]
    assert len(matching) == 1, [row["case"] for row in rows]
    return matching[0]


def test_every_benchmark_reports_without_errors(quick):
    assert {row["benchmark"] for row in quick["rows"]} == set(NAMES)
    assert [row for row in quick["rows"] if row.get("error")] == []
    for row in quick["rows"]:
        assert row["case"] and result_text(row)
        assert row.get("passed") in (True, False, None)


def test_the_microphone_rows_compare_20_ms_with_100_ms_chunks(quick):
    rows = rows_of(quick, "microphone")
    base, quiet, each = case(rows, "100 ms chunks"), case(rows, "20 ms chunks, quiet"), case(rows, "20 ms chunks, every")
    assert base["ratio"] == 1.0 and base["ms_cpu_per_audio_s"] > 0
    assert quiet["ms_cpu_per_audio_s"] > 0 and quiet["ratio"] > 0 and quiet["passed"] in (True, False)
    assert each["ms_cpu_per_audio_s"] > 0 and each["ratio"] > 0 and "passed" not in each


def test_the_conversation_rows_pair_voicepipe_with_the_bare_loop_and_name_the_peers(quick):
    rows = rows_of(quick, "conversation")
    assert case(rows, "bare SDK loop")["ratio"] == 1.0
    for name in ("voicepipe, all built-ins, null output, 20 ms", "voicepipe, all built-ins, null output, 100 ms"):
        assert case(rows, name)["ratio"] > 0 and case(rows, name)["cpu_s"] > 0
    for peer in ("LiveKit", "Pipecat"):
        row = case(rows, peer)
        assert row.get("skipped") and "VOICEPIPE_BENCH_" in row["result"] or row["ratio"] > 0


def test_overhead_rows_compare_the_same_stream(quick):
    rows = rows_of(quick, "overhead")
    bare = case(rows, "bare SDK recv() loop")
    assert bare["ratio"] == 1.0
    assert bare["events"] > 0 and bare["us_per_event"] > 0
    assert {row["events"] for row in rows} == {bare["events"]}  # both clients saw the same events
    for row in rows:
        assert row["ratio"] > 0 and row["rounds"] == 2
        if row is not bare:
            assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    assert case(rows, "bare SDK recv() loop + base64")["events"] == bare["events"]
    assert case(rows, "bare loop, events built by voicepipe's parser")["events"] == bare["events"]
    everything = case(rows, "voicepipe, all built-in plugins")
    assert everything["ratio_vs_parser_loop"] > 0  # what dispatch and the plugins add to that loop
    assert everything["goal"] == "ratio <= 1.25"
    assert everything["passed"] == (everything["ratio"] <= 1.25)


def test_barge_in_rows(quick):
    rows = rows_of(quick, "barge-in")
    file_row = case(rows, "wav output")
    assert file_row["samples"] == QUICK_BARGE_INS
    assert 0 < file_row["p50_ms"] <= file_row["p99_ms"] <= file_row["max_ms"]
    assert file_row["passed"] == (file_row["p99_ms"] <= 5.0)
    device = case(rows, "sounddevice output")
    if device.get("skipped"):
        assert device["passed"] is None and device["skipped"]
    else:
        assert device["samples"] == QUICK_DEVICE_BARGE_INS
        assert 0 < device["min_ms"] <= device["p50_ms"] <= device["p99_ms"] <= device["max_ms"]
        # the goal is what voicepipe configures, whatever PortAudio reports
        assert (device["latency_ms"], device["fade_ms"], device["block_ms"], device["monitor_block_ms"]) == (40, 5, 20, 5)
        assert device["goal_ms"] == 70 and device["goal"].startswith("p99 <= 70 ms")
        assert device["passed"] == (device["p99_ms"] <= 70)
        # the sink plays the fade after the dispatch: a stop heard sooner was not this barge-in's
        assert device["min_ms"] >= device["fade_ms"]


@pytest.mark.audio
def test_a_device_that_buffers_400_ms_misses_the_barge_in_goal(tmp_path, monkeypatch):
    """The device row hears the sound stop on the sink: a device that buffers 400 ms while 40 ms are
    configured fails, however much latency PortAudio reports."""
    from benchmarks import bargein
    from benchmarks.harness import sound_server_available
    from voicepipe.audio.sounddevice_backend import SoundDeviceOutput

    if not (sound_server_available() and bargein.monitor_is_default_input()):
        if os.environ.get("REQUIRE_AUDIO") == "1":
            pytest.fail("REQUIRE_AUDIO=1 but the default input is not the monitor of the default output")
        pytest.skip("no PulseAudio whose default input is the monitor of its default output")
    configure = SoundDeviceOutput.__init__

    def buffering(self, options):
        configure(self, options)
        self.latency = 0.4

    monkeypatch.setattr(SoundDeviceOutput, "__init__", buffering)
    (row,) = bargein.device_rows_here(tmp_path, 3)
    assert row["goal_ms"] == 70
    assert row["min_ms"] > row["goal_ms"] and row["passed"] is False


def test_playout_row(quick):
    row = case(rows_of(quick, "playout"), "wav output")
    assert row["samples"] == QUICK_DELTAS
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["passed"] == (row["p99_ms"] <= 2.0)


def test_memory_row(quick):
    row = case(rows_of(quick, "memory"), "one session")
    assert row["simulated_min"] >= 1.0
    assert 0 < row["measured_min"] <= row["simulated_min"]
    assert row["turns"] > 0
    assert 1 <= len(row["top"]) <= 3
    # the largest live lines are part of the live total (each rounded to 1 KiB, the total to 0.01 MB)
    top_kib = sum(float(line.split()[-2]) for line in row["top"])
    assert 0 < top_kib <= row["traced_growth_mb"] * 1024 + 0.01 * 1024 / 2 + len(row["top"]) / 2
    assert row["passed"] == (max(row["traced_growth_mb"], row["rss_growth_mb"]) < 5.0)


def test_concurrency_rows(quick):
    rows = rows_of(quick, "concurrency")
    one = case(rows, "sessions at real-time pacing, ")
    two = case(rows, "sessions at real-time pacing over 2 client processes")
    for row, sessions, processes, goal in ((one, QUICK_SESSIONS, 1, 100), (two, QUICK_SPLIT_SESSIONS, 2, 200)):
        (step,) = row["steps"]
        assert "error" not in step, step
        assert step["sessions"] == sessions and step["processes"] == processes
        assert step["deltas"] > 0 and step["ended_early"] == 0
        assert 0 <= step["underruns"] <= step["deltas"]
        assert step["loop_lag_p50_ms"] <= step["loop_lag_p99_ms"]
        assert step["delivery_lag_p99_ms"] <= step["delivery_lag_max_ms"]
        assert len(step["client_cpu_each"]) == processes and all(cpu > 0 for cpu in step["client_cpu_each"])
        assert step["emulator_cpu"] > 0
        assert row["max_sessions"] == (sessions if step["passed"] else 0)
        assert row["goal"] == f">= {goal} sessions"
        assert row["passed"] is False  # a handful of sessions are not the goal's
    assert "over 2 processes" in "\n".join(line for line in quick["stdout"].splitlines() if "N=4" in line)


def test_startup_rows(quick):
    rows = rows_of(quick, "start-up")
    assert case(rows, "python -c pass")["ratio"] == 1.0
    for row in rows:
        assert row["p50_ms"] > 0 and row["ratio"] > 0


def test_table_and_markdown(quick):
    for row in quick["rows"]:
        assert row["case"] in quick["stdout"]
    markdown = quick["markdown"]
    assert "`./dev bench`" in markdown and ".venv/bin/python -m benchmarks" in markdown
    assert "nproc" in markdown and "Python 3." in markdown
    assert markdown_table(quick["rows"]) in markdown
    assert markdown.count(START_MARK) == 1 and markdown.count(END_MARK) == 1


def test_markdown_update_keeps_the_text_around_the_results(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Mine\n\nintro\n\n{START_MARK}\nold table\n{END_MARK}\n\n## Notes\nkept\n", encoding="utf-8")
    rows = [{"benchmark": "playout", "case": "a | b", "result": "p99 1 ms", "goal": "p99 <= 2 ms", "passed": True}]
    write_markdown(path, rows, "today", "here")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Mine\n\nintro\n\n")
    assert text.endswith("\n\n## Notes\nkept\n")
    assert "old table" not in text
    assert "| playout | a \\| b | p99 1 ms | - | p99 <= 2 ms | yes |" in text
    assert "on today, here." in text


def test_breakdown_splits_the_overhead_by_plugin_and_operation():
    done = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--turns", "1", "--passes", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = done.stderr
    first = report.splitlines()[0]
    events, deltas = int(first.split()[0]), int(first.split("(")[1].split()[0])
    assert 0 < deltas < events
    for name in ("audio", "tools", "recorder", "transcript", "metrics", "console", "(sum)", "(no plugin)"):
        assert any(line.strip().startswith(f"{name} ") for line in report.splitlines()), name
    for operation in ("base64 decode", "elided audio", "JSON-encode", "mask secrets", "unbuffered write", "JSON text -> typed event"):
        assert operation in report, operation
