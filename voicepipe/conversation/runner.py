"""Running a conversation file: one session of its profile with the scripted caller, then the checks.

**Where it runs.** A profile whose ``connection.endpoint`` is ``emulator`` runs offline against the
embedded emulator, which follows the conversation's ``scenario`` (or the profile's own); any other
endpoint (``--set connection.endpoint=...``) is the real service, and the same file runs there.

**Pacing.** ``pace: fast`` sends the caller's speech as fast as the connection takes it, has the
emulator answer at once (``speed: 0``) and plays answers without waiting (output not in real time):
a conversation takes a fraction of a second a turn, but nothing is timed. ``pace: realtime`` paces
the caller's microphone and the playback in real time (and the emulator at its profile's speed),
as a call would be. ``auto`` (the default) is fast offline unless a turn barges in or checks
``voice_to_voice_ms``, and always real time against a real endpoint.

Each conversation gets a run folder (every file of a ``voicepipe run``, plus ``conversation.json``
with the results, and ``report.html``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from voicepipe.conversation.caller import BACKEND, INTERJECTION, choose_engine, say_audio, wav_audio
from voicepipe.conversation.checks import CheckResult, evaluate, judge_result
from voicepipe.conversation.driver import ConversationDriver, TurnRecord
from voicepipe.conversation.spec import Conversation
from voicepipe.errors import UsageError, VoicepipeError

RESULTS_FILE = "conversation.json"
DEFAULT_INPUT_RATE = 24000


@dataclass
class TurnResult:
    index: int
    label: str
    checks: list[CheckResult]
    record: TurnRecord

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class ConversationResult:
    """The outcome of one conversation: per-turn checks, or the error that stopped it."""

    conversation: Conversation
    run_dir: Optional[Path] = None
    turns: list[TurnResult] = field(default_factory=list)
    error: Optional[str] = None
    exit_code: Optional[int] = None
    seconds: float = 0.0
    pace: str = ""
    offline: bool = True

    @property
    def passed(self) -> bool:
        return self.error is None and all(turn.passed for turn in self.turns)

    def as_dict(self) -> dict:
        return {
            "conversation": self.conversation.name,
            "file": str(self.conversation.path),
            "passed": self.passed,
            "error": self.error,
            "pace": self.pace,
            "offline": self.offline,
            "seconds": round(self.seconds, 3),
            "turns": [
                {**turn.record.as_dict(), "passed": turn.passed, "checks": [c.as_dict() for c in turn.checks]}
                for turn in self.turns
            ],
        }


def _is_emulator(profile: Any) -> bool:
    return str(profile.connection.get("endpoint", "")).strip().lower() == "emulator"


def plan(conversation: Conversation, overrides: Sequence[str], pace: Optional[str] = None) -> tuple[Any, str, bool]:
    """The profile this conversation runs with, its pace (``fast`` or ``realtime``) and whether
    it runs offline."""
    from voicepipe.profile import load_profile

    user = [*conversation.overrides, *overrides]
    first = load_profile(conversation.profile, user)
    offline = _is_emulator(first)
    chosen = pace or conversation.pace
    if chosen == "auto":
        chosen = "fast" if offline and not conversation.needs_timing else "realtime"
    if chosen == "fast" and not offline:
        raise UsageError(f"{conversation.path}: pace: fast runs only against the emulator (this profile "
                         "connects to a real endpoint); use pace: auto or realtime")
    realtime = chosen == "realtime"
    extra = [
        f"audio.input={{backend: {BACKEND}}}",
        "audio.output={backend: wav, file: '{run_dir}/output.wav', realtime: %s}" % ("true" if realtime else "false"),
        "disable=[%s]" % ", ".join(sorted({*first.disable, "console"})),
        "metrics.table=false",
    ]
    if offline and conversation.scenario is not None:
        extra.append(f"connection.emulator.scenario={json.dumps(str(conversation.scenario.resolve()))}")
    if offline and not realtime:
        extra.append("connection.emulator.speed=0")
    return load_profile(conversation.profile, [*user, *extra]), chosen, offline


def prepare_audio(conversation: Conversation, profile: Any, offline: bool) -> tuple[list, bytes]:
    """Each turn's PCM at the session's input rate (``None`` for typed turns), and the interjection."""
    rate = int(profile.session.get("input_audio_sampling_rate") or DEFAULT_INPUT_RATE)
    engine = choose_engine(conversation.voice, needs_intelligible=not offline)
    audio: list = []
    for turn in conversation.turns:
        if turn.say is not None:
            audio.append(say_audio(turn.say, rate, engine))
        elif turn.audio is not None:
            audio.append(wav_audio(turn.audio, rate))
        else:
            audio.append(None)
    return audio, say_audio(INTERJECTION, rate, engine)


async def run_conversation(
    conversation: Conversation,
    *,
    log_dir: Optional[Path] = None,
    run_dir: Optional[Path] = None,
    overrides: Sequence[str] = (),
    pace: Optional[str] = None,
    autoload: Optional[bool] = None,
    report: bool = True,
) -> ConversationResult:
    """Run ``conversation`` once and check it. Problems with the files raise :class:`UsageError`;
    a session that fails is a failed result, not an exception."""
    from voicepipe.logsetup import get_logger, session_log_file
    from voicepipe.plugins import configure_plugins, load_plugin_set, release_plugin_manager
    from voicepipe.rundir import make_run_dir
    from voicepipe.runtime import SessionRunner

    started = time.monotonic()
    profile, chosen, offline = plan(conversation, overrides, pace)
    result = ConversationResult(conversation, pace=chosen, offline=offline)
    audio, interjection = prepare_audio(conversation, profile, offline)
    driver = ConversationDriver(conversation, audio, interjection, paced=chosen == "realtime")
    pm = load_plugin_set(profile, autoload=autoload).manager()
    pm.add(driver, "conversation", "voicepipe test")
    configure_plugins(pm, profile)
    if run_dir is None:
        profile.data.setdefault("logging", {})["run_name"] = conversation.name
        run_dir = make_run_dir(profile, base=log_dir)
    result.run_dir = Path(run_dir)
    limit = conversation.turn_timeout_s * (len(conversation.turns) + 2) + 30.0
    with session_log_file(result.run_dir):
        runner = SessionRunner(profile, pm, result.run_dir, get_logger(), duration=limit)
        try:
            result.exit_code = await runner.run()
        except VoicepipeError as exc:
            from voicepipe.redact import REDACTOR

            result.exit_code = exc.exit_code
            result.error = REDACTOR.redact(str(exc))
        if result.error is None and runner.stop_reason not in ("input_finished",):
            result.error = f"the session ended early ({runner.stop_reason})"
        for turn, record in zip(conversation.turns, driver.records):
            if record.started_at is None and record.failure is None:
                record.failure = "not run (an earlier turn did not finish)"
            elif record.failure is None and not record.settled() and not _moved_on(conversation, turn.index):
                record.failure = f"the session ended ({runner.stop_reason}) before the turn was answered"
            checks = evaluate(turn, record)
            if "judge" in turn.expect:
                checks.append(await _judge(pm, turn, record, conversation))
            result.turns.append(TurnResult(turn.index, turn.label, checks, record))
        release_plugin_manager(pm)  # no hook is called any more
    result.seconds = time.monotonic() - started
    _write_results(result)
    if report:
        _write_report(result)
    return result


def _moved_on(conversation: Conversation, index: int) -> bool:
    """Whether the caller left this turn by talking over its answer (it is not awaited then)."""
    return conversation.turns[index].barge_in_after_ms is not None


async def _judge(pm: Any, turn: Any, record: TurnRecord, conversation: Conversation) -> CheckResult:
    try:
        verdicts = pm.hook.voicepipe_judge_turn(
            turn=record.as_dict(), criteria=turn.expect["judge"], conversation=conversation.name
        )
        verdicts = [await v if inspect.isawaitable(v) else v for v in verdicts]
    except Exception as exc:
        return judge_result([], f"a judge plugin raised {type(exc).__name__}: {exc}")
    return judge_result(verdicts, None)


def _write_results(result: ConversationResult) -> None:
    if result.run_dir is None:
        return
    try:
        (result.run_dir / RESULTS_FILE).write_text(json.dumps(result.as_dict(), indent=2, default=str) + "\n",
                                                   encoding="utf-8")
    except OSError as exc:
        result.error = result.error or f"cannot write {RESULTS_FILE}: {exc.strerror or exc}"


def _write_report(result: ConversationResult) -> None:
    from voicepipe.report import write_report

    try:
        write_report(result.run_dir)
    except (OSError, VoicepipeError) as exc:
        result.error = result.error or f"cannot write the report: {exc}"


async def run_many(
    conversations: list[Conversation], *, jobs: int = 1, on_result: Any = None, **kwargs: Any
) -> list[ConversationResult]:
    """Run ``conversations``, ``jobs`` at a time in this process (each session with its own plugins
    and log file); ``on_result`` is called with each result as it comes."""
    gate = asyncio.Semaphore(max(1, jobs))
    results: list[Optional[ConversationResult]] = [None] * len(conversations)

    async def one(index: int, conversation: Conversation) -> None:
        async with gate:
            try:
                outcome = await run_conversation(conversation, **kwargs)
            except UsageError as exc:
                outcome = ConversationResult(conversation, error=str(exc), exit_code=exc.exit_code)
            results[index] = outcome
            if on_result is not None:
                on_result(outcome)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conversations)))
    return [r for r in results if r is not None]
