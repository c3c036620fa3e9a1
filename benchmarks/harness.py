"""What the benchmarks share: an emulator in its own process, profiles, sessions run in-process, and a
Pipeline fed synthetic server events.

The emulator runs in a child process so that ``time.process_time()`` in the benchmark process counts
the client only. Sessions connect to it as to any endpoint (``connection.endpoint`` is its URL, with
a throw-away API key), so what runs is exactly what ``voicepipe run`` runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from voicepipe.audio.base import AudioInput

ROOT = Path(__file__).resolve().parent.parent
API_KEY_ENV = "AZURE_VOICELIVE_API_KEY"
BENCHMARK_KEY = "voicepipe-benchmark-key"
#: an input backend the benchmark plugin provides: a microphone that never sends anything
IDLE_INPUT = "benchmark-idle"
#: the answer every typed turn gets: about 8.4 s of speech, 84 audio deltas
ANSWER = (
    "The Caspian Sea is the largest lake in the world, with an area of about three hundred and "
    "seventy thousand square kilometres."
)
SCENARIO = f"default_answer: {json.dumps(ANSWER)}\n"
OUTPUT_RATE = 24000
DELTA_MS = 100


# -- the emulator in a child process -----------------------------------------------------------------


class EmulatorProcess:
    """``voicepipe emulator`` in a child process on a free loopback port; a context manager."""

    def __init__(self, speed: float, scenario: str = SCENARIO):
        self.speed = speed
        self.scenario = scenario
        self.url = ""
        self.proc: Optional[subprocess.Popen] = None
        self._dir: Optional[tempfile.TemporaryDirectory] = None

    def __enter__(self) -> "EmulatorProcess":
        self._dir = tempfile.TemporaryDirectory(prefix="voicepipe-bench-emulator-")
        scenario_file = Path(self._dir.name) / "scenario.yaml"
        scenario_file.write_text(self.scenario, encoding="utf-8")
        command = [sys.executable, "-m", "voicepipe", "emulator", "--port", "0", "--speed", f"{self.speed:g}",
                   "--scenario", str(scenario_file)]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = self._first_line(timeout=30)
            marker = " on "
            if marker not in line:
                raise RuntimeError(f"the emulator did not start: {line.strip() or 'no output'}")
            self.url = line.split(marker, 1)[1].strip()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else ""

    def cpu_seconds(self) -> float:
        """User + system CPU time the emulator process has used so far."""
        if self.proc is None:
            return 0.0
        return process_cpu_seconds(self.proc.pid)

    def __exit__(self, *exc_info: Any) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- profiles and sessions ------------------------------------------------------------------------------


def quickstart_session() -> dict:
    """The ``session:`` section of ``profiles/ava.yaml`` (the Voice Live quickstart's session)."""
    from voicepipe.profile import load_profile

    return dict(load_profile(ROOT / "profiles" / "ava.yaml").session)


def write_profile(directory: Path, endpoint: str, audio: Mapping[str, Any], **sections: Any) -> Path:
    """A profile for the quickstart's session at ``endpoint`` with the given ``audio:`` section.

    JSON is YAML, so the file is written with :mod:`json`.
    """
    data = {
        "connection": {"endpoint": endpoint, "model": "gpt-realtime", "auth": "api-key",
                       "connect_timeout_s": 120, "session_timeout_s": 120},
        "session": quickstart_session(),
        "audio": dict(audio),
        **sections,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "benchmark.yaml"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@contextlib.contextmanager
def benchmark_key() -> Iterator[None]:
    """The emulator accepts any key; sessions need one in the environment to use api-key auth."""
    previous = os.environ.get(API_KEY_ENV)
    os.environ[API_KEY_ENV] = BENCHMARK_KEY
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(API_KEY_ENV, None)
        else:
            os.environ[API_KEY_ENV] = previous


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The console plugin still formats every line; the lines go nowhere."""
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        yield


class IdleInput(AudioInput):
    """A microphone that sends nothing until it is closed, so that a session's only client events are
    the ones the benchmark sends (as in the bare SDK loop it is compared with)."""

    def __init__(self) -> None:
        self._closed: Optional[asyncio.Event] = None

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        self._closed = asyncio.Event()

    async def __aiter__(self):  # type: ignore[override]
        if self._closed is not None:
            await self._closed.wait()
        return
        yield  # an async generator that yields nothing

    async def close(self) -> None:
        if self._closed is not None:
            self._closed.set()


class IdleInputPlugin:
    """Provides the ``benchmark-idle`` input backend."""

    @staticmethod
    def voicepipe_audio_backend(name: str, direction: str, options: Mapping[str, Any]) -> Any:
        if name == IDLE_INPUT and direction == "input":
            return IdleInput()
        return None


def user_turn(text: str = "What is the largest lake in the world?") -> list[dict]:
    """The client events of one typed turn: the user's message, then a request for an answer."""
    return [
        {"type": "conversation.item.create",
         "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}},
        {"type": "response.create"},
    ]


def make_runner(profile_path: Path, run_dir: Path, plugins: Iterable[Any], log: Any) -> Any:
    """A :class:`voicepipe.runtime.SessionRunner` for the profile with every built-in plugin, the
    idle input backend and ``plugins`` (registered last, so their hooks run first)."""
    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.profile import load_profile
    from voicepipe.runtime import SessionRunner

    profile = load_profile(profile_path)
    pm = make_plugin_manager(profile, autoload=False)
    pm.add(IdleInputPlugin(), "benchmark-idle-input", "benchmark")
    for index, plugin in enumerate(plugins):
        pm.add(plugin, f"benchmark-{index}", "benchmark")
    configure_plugins(pm, profile)
    run_dir.mkdir(parents=True, exist_ok=True)
    return SessionRunner(profile, pm, run_dir, log)


# -- a Pipeline fed synthetic events ------------------------------------------------------------------


def server_event(data: Mapping[str, Any]) -> Any:
    """The SDK's typed event for ``data``, built as ``connection.recv()`` builds it."""
    from azure.ai.voicelive.models import ServerEvent

    return ServerEvent._deserialize(json.loads(json.dumps(data)), [])


def tone(ms: float, level: int = 3000) -> bytes:
    """A constant non-zero PCM16 signal: any zero sample in what is played is silence."""
    frames = int(OUTPUT_RATE * ms / 1000)
    return level.to_bytes(2, "little", signed=True) * frames


SESSION_UPDATED = {
    "id": "sess_benchmark",
    "object": "realtime.session",
    "model": "gpt-realtime",
    "modalities": ["text", "audio"],
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "input_audio_sampling_rate": 24000,
    "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.3, "prefix_padding_ms": 200,
                       "silence_duration_ms": 200},
    "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard"},
}


class ResponseScript:
    """The server events of one spoken answer, as the service sends them, built ahead of time."""

    def __init__(self, number: int, deltas: int):
        rid, iid = f"resp_{number}", f"item_{number}"
        self.response_id, self.item_id = rid, iid
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        audio = base64.b64encode(tone(DELTA_MS)).decode("ascii")
        self.head = [
            server_event({"type": "response.created", "event_id": f"e{number}a",
                          "response": {"id": rid, "object": "realtime.response", "status": "in_progress", "output": []}}),
            server_event({"type": "response.output_item.added", "event_id": f"e{number}b", "response_id": rid,
                          "output_index": 0, "item": {"id": iid, "type": "message", "role": "assistant",
                                                       "status": "in_progress", "content": []}}),
            server_event({"type": "response.content_part.added", "event_id": f"e{number}c", **where,
                          "part": {"type": "audio", "transcript": ""}}),
        ]
        #: (transcript delta, audio delta) pairs
        self.deltas = [
            (server_event({"type": "response.audio_transcript.delta", "event_id": f"e{number}t{i}", **where,
                           "delta": " word"}),
             server_event({"type": "response.audio.delta", "event_id": f"e{number}d{i}", **where, "delta": audio}))
            for i in range(deltas)
        ]
        self.speech_started = server_event({"type": "input_audio_buffer.speech_started", "event_id": f"e{number}s",
                                            "audio_start_ms": 1000 * number, "item_id": f"user_{number}"})
        self.cancelled = [
            server_event({"type": "response.done", "event_id": f"e{number}x",
                          "response": {"id": rid, "object": "realtime.response", "status": "cancelled",
                                       "status_details": {"type": "cancelled", "reason": "turn_detected"},
                                       "output": []}}),
            server_event({"type": "input_audio_buffer.speech_stopped", "event_id": f"e{number}y",
                          "audio_end_ms": 1000 * number + 500, "item_id": f"user_{number}"}),
        ]
        self.completed = [
            server_event({"type": "response.audio.done", "event_id": f"e{number}ad", **where}),
            server_event({"type": "response.output_item.done", "event_id": f"e{number}od", "response_id": rid,
                          "output_index": 0, "item": {"id": iid, "type": "message", "role": "assistant",
                                                       "status": "completed", "content": []}}),
            server_event({"type": "response.done", "event_id": f"e{number}rd",
                          "response": {"id": rid, "object": "realtime.response", "status": "completed",
                                       "output": []}}),
        ]


class DispatchHarness:
    """Every built-in plugin behind a :class:`voicepipe.pipeline.Pipeline`, fed server events by the
    benchmark instead of a connection, with the runtime's order of work: a client event a plugin
    sends is handed to the ``voicepipe_client_event`` hook later, as the writer task does."""

    def __init__(self, workdir: Path, audio: Mapping[str, Any]):
        from voicepipe.logsetup import configure_logging
        from voicepipe.pipeline import Pipeline
        from voicepipe.plugins import configure_plugins, make_plugin_manager
        from voicepipe.profile import load_profile

        profile = load_profile(write_profile(workdir, "emulator", audio))
        pm = make_plugin_manager(profile, autoload=False)
        configure_plugins(pm, profile)
        self.run_dir = workdir / "run"
        self.log = configure_logging(self.run_dir, console_level="ERROR")
        self.sent: list[dict] = []
        self.stops: list[str] = []
        self.pipeline = Pipeline(profile, pm, self.run_dir, self.log, send=self._send, stop=self.stops.append)
        self.ctx = self.pipeline.ctx

    def _send(self, event: Mapping[str, Any]) -> None:
        event = dict(event)
        self.sent.append(event)
        asyncio.get_running_loop().call_soon(self.pipeline.client_event, event)

    @property
    def audio(self) -> Any:
        return self.ctx.stash["audio"]

    async def start(self) -> None:
        await self.pipeline.start()
        created = {"type": "session.created", "event_id": "e_created", "session": SESSION_UPDATED}
        self.ctx.session_id = SESSION_UPDATED["id"]
        await self.feed(server_event(created))
        self.ctx.session = dict(SESSION_UPDATED)
        await self.feed(server_event({"type": "session.updated", "event_id": "e_updated", "session": SESSION_UPDATED}))
        deadline = time.monotonic() + 30
        while not (self.audio.output_ready and self.audio.input_rate):
            if self.stops or time.monotonic() > deadline:
                raise RuntimeError(f"the audio plugin did not start (stop reasons: {self.stops})")
            await asyncio.sleep(0.005)

    async def feed(self, event: Any) -> None:
        """Dispatch one event as the runtime's reader does, then let other tasks run."""
        pending = self.pipeline.dispatch(event)
        if pending:
            for _, awaitable in pending:
                await awaitable
        await asyncio.sleep(0)

    async def end(self, reason: str = "user") -> None:
        from voicepipe.logsetup import shutdown_logging

        try:
            await self.pipeline.end(reason)
        finally:
            shutdown_logging()


def sound_server_available() -> bool:
    """Whether a PulseAudio server answers (``pactl info``)."""
    try:
        return subprocess.run(["pactl", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
