"""A real ``voicepipe run`` process, watched from outside: its output, its run folder, its exit.

Shared by the shutdown tests. Every wait is on a condition (a line printed, a file written, the
process gone) with a generous deadline that only bounds a hang; nothing sleeps blindly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
QUESTION_WAV = ROOT / "profiles" / "audio" / "question.wav"
FAKE_KEY = "fake-key-shutdown-tests-0001"
#: an upper bound for any wait on a condition; the slow, shared test machines only ever need a fraction
DEADLINE_S = 30.0
POLL_S = 0.02

NULL_INPUT = "{backend: null}"
#: the question, then a microphone that keeps hearing silence: the session goes on until stopped
QUESTION_INPUT = f"{{backend: wav, file: {json.dumps(str(QUESTION_WAV))}, trailing_silence_ms: 120000}}"
#: answers are "heard" as soon as they arrive: the virtual clock jumps to the end of each write
INSTANT_OUTPUT = "{backend: null, realtime: false}"

#: appends the reason to ``session_end.txt`` in the run folder each time the end hooks run
END_MARKER_PLUGIN = '''\
from voicepipe import hookimpl


@hookimpl
def voicepipe_session_end(ctx, reason):
    with open(ctx.run_dir / "session_end.txt", "a", encoding="utf-8") as marker:
        marker.write(reason + "\\n")
'''

#: a plugin whose end hook never finishes on its own
HANGING_END_PLUGIN = '''\
import asyncio

from voicepipe import hookimpl

HANGING = "hanging_end: session_end is waiting"


@hookimpl
async def voicepipe_session_end(ctx, reason):
    print(HANGING, flush=True)
    await asyncio.sleep(600)
'''
HANGING_LINE = "hanging_end: session_end is waiting"

#: a log handler that ships the "stopping" record synchronously to a slow collector: for a moment
#: the event loop is busy right after the first stop was asked for
SLOW_LOG_PLUGIN = '''\
import logging
import time

from voicepipe import hookimpl

SHIPPING = "slow_log: shipping the stopping record"


class SlowShipper(logging.Handler):
    def emit(self, record):
        fields = record.msg if isinstance(record.msg, dict) else {}
        if fields.get("event") == "stopping":
            print(SHIPPING, flush=True)
            time.sleep(1.5)


@hookimpl
def voicepipe_session_start(ctx):
    logging.getLogger("voicepipe").addHandler(SlowShipper())
'''
SHIPPING_LINE = "slow_log: shipping the stopping record"


def write_profile(
    folder: Path,
    endpoint: str,
    *,
    audio_input: str = NULL_INPUT,
    audio_output: str = INSTANT_OUTPUT,
    plugins: Sequence[str] = (),
    connection: str = "",
    name: str = "shutdown",
) -> Path:
    """A profile for ``endpoint``, with the end-marker plugin and ``plugins`` (source texts) as local
    files; ``connection`` adds keys (YAML lines) to the connection section."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index, source in enumerate((END_MARKER_PLUGIN, *plugins)):
        path = folder / f"shutdown_plugin_{index}.py"
        path.write_text(source, encoding="utf-8")
        files.append(json.dumps(str(path)))
    connection_lines = "".join(f"  {line}\n" for line in textwrap.dedent(connection).splitlines() if line.strip())
    profile = folder / f"{name}.yaml"
    profile.write_text(
        "connection:\n"
        f"  endpoint: {endpoint}\n"
        "  model: gpt-realtime\n"
        f"{connection_lines}"
        "session:\n"
        "  modalities: [text, audio]\n"
        "  voice: {name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}\n"
        "  input_audio_transcription: {model: whisper-1}\n"
        "audio:\n"
        f"  input: {audio_input}\n"
        f"  output: {audio_output}\n"
        f"plugins: [{', '.join(files)}]\n"
        "metrics: {table: false}\n",
        encoding="utf-8",
    )
    return profile


class VoicepipeProcess:
    """``voicepipe run PROFILE --log-dir DIR [ARGS]`` in a child process, stdin a pipe.

    Both output streams are read line by line on threads, so the child never blocks on a full
    pipe and the test can wait for any line.
    """

    def __init__(self, profile: Path, log_dir: Path, *args: str):
        self.log_dir = Path(log_dir)
        env = dict(os.environ, AZURE_VOICELIVE_API_KEY=FAKE_KEY, VOICEPIPE_DISABLE_PLUGIN_AUTOLOAD="1")
        env.pop("AZURE_VOICELIVE_ENDPOINT", None)
        self.args = [sys.executable, "-m", "voicepipe", "run", str(profile), "--log-dir", str(log_dir), "-v", *args]
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            cwd=ROOT,
            env=env,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._open = {"stdout": True, "stderr": True}
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(name, getattr(self.proc, name)), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()
        self.exited_at: Optional[float] = None  # time.time() once the exit was seen

    def _pump(self, name: str, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._changed:
                self.lines[name].append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._open[name] = False
            self._changed.notify_all()

    # -- what it printed -------------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self.lines["stdout"])

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines["stderr"])

    def describe(self) -> str:
        return f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    def wait_for_line(self, pattern: str, stream: str = "stdout", timeout: float = DEADLINE_S) -> re.Match:
        """The first line of ``stream`` that ``pattern`` matches (``re.search``), once printed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[stream]:
                    match = regex.search(line)
                    if match:
                        return match
                if not self._open[stream]:
                    raise AssertionError(f"{stream} ended without a line matching {pattern!r}\n{self._describe_locked()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} on {stream} within {timeout:g} s\n{self._describe_locked()}")
                self._changed.wait(left)

    def _describe_locked(self) -> str:
        return "stdout:\n" + "\n".join(self.lines["stdout"]) + "\nstderr:\n" + "\n".join(self.lines["stderr"])

    @property
    def run_dir(self) -> Path:
        """The run folder: the one folder the command made in its log folder (it names it on
        stderr only once the connection is up)."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            folders = [p for p in self.log_dir.glob("*") if p.is_dir()] if self.log_dir.is_dir() else []
            if folders:
                (folder,) = folders
                return folder
            time.sleep(0.02)
        raise AssertionError(f"no run folder in {self.log_dir} within {DEADLINE_S} s\n{self.describe()}")

    # -- stopping it -----------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def type(self, text: str) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = DEADLINE_S) -> int:
        """The exit code, once the process has exited and its output was read to the end."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process was still running {timeout:g} s later\n{self.describe()}") from None
        self.exited_at = self.exited_at or time.time()
        for reader in self._readers:
            reader.join(DEADLINE_S)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE_S)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> "VoicepipeProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()


STOPS: dict[str, Callable[[VoicepipeProcess], None]] = {
    "SIGINT": lambda p: p.send_signal(signal.SIGINT),
    "SIGTERM": lambda p: p.send_signal(signal.SIGTERM),
    "q-Enter": lambda p: p.type("q\n"),
    "stdin-EOF": lambda p: p.close_stdin(),
}


# -- waiting on things outside the process ---------------------------------------------------------


def poll(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S):
    """``condition()``'s first true value, checked every few milliseconds up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(POLL_S)


def emulator_close_code(emulator, index: int = 0, timeout: float = DEADLINE_S) -> Optional[int]:
    """The close code of the emulator's ``index``-th connection, once that connection has ended."""
    record = poll(lambda: len(emulator.connections) > index and emulator.connections[index], "the connection was accepted", timeout)
    poll(record.closed.is_set, f"connection #{record.number} closed", timeout)
    return record.close_code


def answer_heard(run_dir: Path, timeout: float = DEADLINE_S) -> dict:
    """The first assistant turn of ``transcript.jsonl``, once its playback has ended and it was written."""

    def assistant_turn():
        path = run_dir / "transcript.jsonl"
        if not path.exists():
            return None
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                turn = json.loads(line)
            except ValueError:
                return None  # a line still being written
            if turn.get("role") == "assistant":
                return turn
        return None

    return poll(assistant_turn, "an answer was heard", timeout)


# -- the files a run leaves ------------------------------------------------------------------------


def json_lines(path: Path) -> list:
    """Every line of a JSON-lines file, each checked to be one whole JSON value."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path.name}: the last line is cut off: {text[-200:]!r}"
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"{path.name}:{number}: not JSON ({exc}): {line[:200]!r}") from None
    return records


def log_records(run_dir: Path, event: Optional[str] = None) -> list[dict]:
    records = json_lines(run_dir / "voicepipe.log.jsonl")
    return records if event is None else [r for r in records if r.get("event") == event]


def find_log_record(run_dir: Path, event: str, timeout: float = DEADLINE_S, **fields) -> dict:
    """The first record of ``event`` with ``fields`` in ``voicepipe.log.jsonl``, once it is written
    (the console shows a record just before the file has it)."""

    def record():
        path = run_dir / "voicepipe.log.jsonl"
        if not path.exists():
            return None
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                candidate = json.loads(line)
            except ValueError:
                return None  # a line still being written
            if candidate.get("event") == event and all(candidate.get(k) == v for k, v in fields.items()):
                return candidate
        return None

    return poll(record, f"a {event} {fields} record in voicepipe.log.jsonl", timeout)


def end_reasons(run_dir: Path) -> list[str]:
    """The reason of every run of the end hooks, from the end-marker plugin."""
    path = run_dir / "session_end.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def assert_files_complete(run_dir: Path, reason: str, *, turns: int = 0) -> None:
    """Every file of a run that ended normally is whole: JSON lines parse, the recording and the
    metrics are closed with ``reason``, the transcript has its header and ``turns`` question/answer pairs."""
    events = json_lines(run_dir / "events.jsonl")
    assert events[0]["event"]["type"] == "recording.started"
    assert events[-1]["event"] == {"type": "recording.finished", "reason": reason, "lines": len(events) - 1}
    assert [r for r in events if r["event"].get("type") == "recording.finished"] == [events[-1]]

    log = log_records(run_dir)
    assert [r["reason"] for r in log if r.get("event") == "stopping"] == [reason]

    transcript = (run_dir / "transcript.txt").read_text(encoding="utf-8")
    assert transcript.startswith("# voicepipe transcript\n# session: sess_"), transcript[:200]
    assert transcript.endswith("\n")
    turn_records = json_lines(run_dir / "transcript.jsonl")
    assert [t["role"] for t in turn_records] == ["user", "assistant"] * turns
    for turn in turn_records:
        assert f"{'User' if turn['role'] == 'user' else 'Assistant'}: {turn['text']}" in transcript

    metrics_lines = run_dir / "metrics.jsonl"
    per_turn = json_lines(metrics_lines) if metrics_lines.exists() else []
    assert len(per_turn) == turns
    summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert summary["reason"] == reason and summary["turns"] == turns


def assert_lines_well_formed(run_dir: Path) -> None:
    """Whatever was written so far is whole: every JSON-lines file parses line by line."""
    for name in ("events.jsonl", "transcript.jsonl", "metrics.jsonl", "voicepipe.log.jsonl"):
        if (run_dir / name).exists():
            json_lines(run_dir / name)
    transcript = run_dir / "transcript.txt"
    if transcript.exists():
        text = transcript.read_text(encoding="utf-8")
        assert text.startswith("# voicepipe transcript\n") and text.endswith("\n")
