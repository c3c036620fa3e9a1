"""Testing voicepipe plugins: a pytest plugin, active wherever voicepipe is installed.

Fixtures:

``voicepipe_run``
    ``voicepipe_run(profile, overrides=(), plugins=(), scenario=None, duration=None,
    realtime=False)`` runs a profile end to end against the embedded emulator and returns a
    :class:`RunResult`: the exit code, the run folder, and every server event, client event and
    playback milestone the plugins saw, in order. By default the session runs as fast as it can:
    the emulator answers unpaced (``connection.emulator.speed=0``) and WAV or null audio is read
    and played on a virtual clock (``audio.input.realtime=false``, ``audio.output.realtime=false``),
    so a test takes a second, not the length of the conversation; ``realtime=True`` keeps the
    profile's own pacing (for timing-sensitive checks such as barge-in). Overrides you pass win.

``voicelive_emulator``
    A running :class:`voicepipe.emulator.Emulator` on a free loopback port (its own thread), for
    tests that drive the official SDK directly: ``connect(endpoint=voicelive_emulator.url, ...)``.

``run_profile`` is the same as ``voicepipe_run`` for use outside pytest.

Conversation files (``*.conversation.yaml``, see :mod:`voicepipe.conversation.spec`) found where
pytest collects are test items, one per file, run as ``voicepipe test`` runs them; with
pytest-xdist (``pytest -n 4``) they are spread over the workers like any test. Their run folders go
to the ``voicepipe_log_dir`` ini option's folder when it is set, else to pytest's temporary
folder. A failure reports every failed check of every turn, and the run folder.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import pytest

from voicepipe import eventloop


@dataclass
class RunResult:
    """What one run did, as the plugins saw it."""

    exit_code: int
    run_dir: Path
    reason: Optional[str]
    server_events: list[dict] = field(default_factory=list)
    client_events: list[dict] = field(default_factory=list)
    playback: list[dict] = field(default_factory=list)

    def server_types(self) -> list[str]:
        return [e.get("type") for e in self.server_events]

    def client_types(self) -> list[str]:
        return [e.get("type") for e in self.client_events]

    def read(self, name: str) -> str:
        """The text of a file the run wrote into its run folder."""
        return (self.run_dir / name).read_text(encoding="utf-8")


class _Probe:
    """A plugin that keeps everything it is shown."""

    def __init__(self, result: RunResult):
        self.result = result

    def voicepipe_event(self, event: Any) -> None:
        self.result.server_events.append(dict(event.items()) if hasattr(event, "items") else dict(event))

    def voicepipe_client_event(self, event: Any) -> None:
        self.result.client_events.append(dict(event))

    def voicepipe_playback(self, event: Any) -> None:
        self.result.playback.append(dict(event))


def run_profile(
    profile: str | Path,
    *,
    run_dir: Path,
    overrides: Sequence[str] = (),
    plugins: Iterable[Any] = (),
    scenario: Optional[str | Path] = None,
    duration: Optional[float] = 60.0,
    emulator: bool = True,
    realtime: bool = False,
) -> RunResult:
    """Run ``profile`` (against the embedded emulator unless ``emulator=False``) and report."""
    from voicepipe.logsetup import configure_logging, shutdown_logging
    from voicepipe.plugins import configure_plugins, make_plugin_manager, release_plugin_manager
    from voicepipe.profile import load_profile
    from voicepipe.runtime import SessionRunner

    extra = list(overrides)
    if emulator:
        extra.append("connection.endpoint=emulator")
    if scenario is not None:
        extra.append(f"connection.emulator.scenario={Path(scenario).resolve()}")
    if emulator and not realtime:
        extra = _fast_pacing(load_profile(profile, extra)) + extra
    loaded = load_profile(profile, extra)
    pm = make_plugin_manager(loaded, autoload=False)
    result = RunResult(exit_code=-1, run_dir=Path(run_dir), reason=None)
    pm.add(_Probe(result), "voicepipe-test-probe", "voicepipe.testing")
    for index, plugin in enumerate(plugins):
        pm.add(plugin, getattr(plugin, "__name__", f"test-plugin-{index}"), "test")
    configure_plugins(pm, loaded)
    result.run_dir.mkdir(parents=True, exist_ok=True)
    log = configure_logging(result.run_dir, console_level="WARNING")
    runner = SessionRunner(loaded, pm, result.run_dir, log, duration=duration)
    try:
        result.exit_code = eventloop.run(runner.run())
    finally:
        result.reason = runner.stop_reason
        shutdown_logging()
        release_plugin_manager(pm)
    return result


#: the backends whose pacing a test may switch off (null input stays paced: it never ends)
_UNPACED = {"input": {"wav"}, "output": {None, "wav", "null", "none", "off", ""}}


def _fast_pacing(profile: Any) -> list[str]:
    """Overrides that run ``profile`` unpaced: the emulator answers at once, a WAV input is read
    as fast as the session takes it, WAV and null output play on a virtual clock."""
    fast = ["connection.emulator.speed=0"]
    for direction in ("input", "output"):
        section = (profile.audio or {}).get(direction)
        backend = section.get("backend") if isinstance(section, dict) else section
        if section is None and direction == "output":
            fast.append("audio.output.backend=null")  # the default output, named so it can be unpaced
        if backend in _UNPACED[direction]:
            fast.append(f"audio.{direction}.realtime=false")
    return fast


@pytest.fixture
def voicepipe_run(tmp_path: Path):
    """Run a profile against the embedded emulator: ``voicepipe_run("profiles/demo.yaml")``."""
    counter = iter(range(1_000_000))

    def run(profile: str | Path, **kwargs: Any) -> RunResult:
        kwargs.setdefault("run_dir", tmp_path / f"run-{next(counter)}")
        return run_profile(profile, **kwargs)

    return run


@pytest.fixture
def voicelive_emulator():
    """A Voice Live emulator on a free loopback port, served from its own thread."""
    from voicepipe.emulator import Emulator

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="voicelive-emulator", daemon=True)
    thread.start()
    emulator = Emulator(speed=0)
    asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(timeout=10)
    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# -- conversation files ------------------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    parser.addini("voicepipe_log_dir", "where conversation tests leave their run folders (default: pytest's tmp)",
                  default="")


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    from voicepipe.conversation.spec import is_conversation_file

    if is_conversation_file(file_path):
        return ConversationFile.from_parent(parent, path=file_path)
    return None


class ConversationFile(pytest.File):
    """A conversation file: one test item, the whole conversation."""

    def collect(self) -> Iterable[pytest.Item]:
        yield ConversationItem.from_parent(self, name=self.path.name)


class ConversationFailed(Exception):
    """A conversation whose checks failed; the message is the per-turn report."""


class ConversationItem(pytest.Item):
    def runtest(self) -> None:
        from voicepipe.conversation.output import format_result
        from voicepipe.conversation.runner import run_conversation
        from voicepipe.conversation.spec import load_conversation
        from voicepipe.logsetup import configure_logging, shutdown_logging

        conversation = load_conversation(self.path)
        configured = self.config.getini("voicepipe_log_dir")
        if configured:
            log_dir = Path(str(configured))
            if not log_dir.is_absolute():
                log_dir = Path(str(self.config.rootpath)) / log_dir
        else:
            log_dir = self.config._tmp_path_factory.mktemp(conversation.name)  # noqa: SLF001 - pytest's own tmp
        configure_logging(None, console_level="WARNING", session_files=True)
        try:
            result = eventloop.run(run_conversation(conversation, log_dir=log_dir))
        finally:
            shutdown_logging()
        if not result.passed:
            raise ConversationFailed(format_result(result))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:  # type: ignore[override]
        from voicepipe.errors import ProfileError, VoicepipeError

        if isinstance(excinfo.value, ConversationFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, ProfileError):
            return "\n".join(excinfo.value.problems)
        if isinstance(excinfo.value, VoicepipeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, Optional[int], str]:
        return self.path, 0, f"conversation {self.path.name}"
