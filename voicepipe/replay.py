"""Offline replay: a recorded session's events through the plugins again, without a network.

Sources: a run folder (its ``events.jsonl``), an ``events.jsonl`` written by the recorder plugin,
or a recorded cassette (YAML ``interactions:`` with ``direction: received|sent``, ``data`` and
optional ``at`` seconds, as in pydantic-ai's Voice Live cassettes).

What is replayed, in recorded order and on the recorded clock (``ctx.now()`` returns the recorded
time of the event being dispatched, so plugins compute the times the live session did):

* server events, as the same SDK objects a live session gets (``ServerEvent._deserialize``);
* client events, through ``voicepipe_client_event`` (nothing is sent anywhere);
* playback milestones, through ``voicepipe_playback``.

Replay is for the event stream, not for sound: audio the recorder elided (the default) comes back
as silence of the recorded length, so durations and byte counts are right but the samples are not.
Client events that plugins send during a replay are dropped (logged at debug level).

A recording is read as untrusted input: a record whose known fields have the wrong type (the
checks of :mod:`voicepipe.eventshape`, and for playback milestones ids that are text and times
that are numbers), or that is nested deeper than :data:`MAX_EVENT_DEPTH` or holds more than
:data:`MAX_EVENT_VALUES` values, is skipped with a ``malformed_*_event`` warning; a time that is
not a number of seconds is ignored. JSON Lines records end at ``\n`` only.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from voicepipe.builtin.recorder import AUDIO_FIELDS
from voicepipe.errors import UsageError
from voicepipe.eventshape import malformed
from voicepipe.serverbounds import bounded_session
from voicepipe.sessionclock import preset_clock

if TYPE_CHECKING:
    import pluggy

    from voicepipe.profile.model import Profile

EVENTS_FILE = "events.jsonl"
#: stop reasons that end a replay with exit code 0
CLEAN_REASONS = {"replay_finished", "user", "duration", "input_finished", "server_closed", "caller_hung_up", "server_draining"}
_DIRECTIONS = {"received": "server", "sent": "client"}
#: the most values one recorded event may hold, and how deeply nested (real ones: hundreds, and 6)
MAX_EVENT_VALUES = 100_000
MAX_EVENT_DEPTH = 64
#: elided audio is replayed as silence of its recorded length, up to this (a delta is ~100 KB)
MAX_ELIDED_AUDIO_BYTES = 16 * 1024 * 1024
#: recorded times are seconds on a monotonic clock: beyond this (30 years) a value is not a time
MAX_SECONDS = 1e9
#: direction -> what replay logs when it skips a record of that direction it cannot dispatch
_MALFORMED = {"server": "malformed_server_event", "client": "malformed_client_event", "local": "malformed_playback_event"}


# -- reading ---------------------------------------------------------------------------------------


def read_recording(path: Path, skipped: Optional[list] = None) -> list[dict]:
    """Every record of a recording, in order: ``{"t": seconds or None, "direction": ..., "event": {...}}``.

    ``direction`` is ``server``, ``client``, ``local`` (playback milestones) or ``meta``. ``path``
    is a run folder, an ``events.jsonl`` or a cassette YAML. Server events are
    ``[r for r in records if r["direction"] == "server"]``. A line of JSON Lines that is not JSON
    (torn by a crash or a full disk) is left out; ``skipped`` receives one message for each.
    """
    path = Path(path)
    if path.is_dir():
        events = path / EVENTS_FILE
        if not events.is_file():
            raise UsageError(f"{path}: no {EVENTS_FILE} in this folder (was the recorder plugin disabled?)")
        path = events
    if not path.is_file():
        raise UsageError(f"{path}: no such run folder or recording")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the recording ({exc})") from None
    if path.suffix in (".jsonl", ".json") or (path.suffix not in (".yaml", ".yml") and text.lstrip()[:1] in "{["):
        records = _read_jsonl(path, text, skipped if skipped is not None else [])
    else:
        records = _read_cassette(path, text)
    if not any(r["direction"] == "server" for r in records):
        raise UsageError(f"{path}: no server events in this recording")
    return records


def _read_jsonl(path: Path, text: str, skipped: list) -> list[dict]:
    records = []
    first_problem = ""
    lines = text.split("\n")  # JSON Lines ends records at \n only: U+2028 and the like are text
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # the last line of a killed run may be cut short
                break
            problem = f"{path}:{number}: not a JSON record ({getattr(exc, 'msg', exc)})"
            first_problem = first_problem or problem
            skipped.append(problem + "; skipped")  # one torn line does not spoil the rest
            continue
        except RecursionError:
            raise UsageError(f"{path}:{number}: not a recording (nested too deeply to read)") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        if isinstance(data.get("event"), dict):
            direction = str(data.get("direction", "server"))
            records.append({"t": _seconds(data.get("t")), "direction": direction, "event": data["event"]})
        elif "type" in data:  # a bare server event
            records.append({"t": None, "direction": "server", "event": data})
        else:
            raise UsageError(f"{path}:{number}: neither a recorder line nor an event (no 'event' or 'type' key)")
    if first_problem and not records:
        raise UsageError(first_problem)
    return records


def _read_cassette(path: Path, text: str) -> list[dict]:
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: not a recording: {getattr(exc, 'problem', None) or exc}") from None
    except Exception as exc:  # PyYAML's constructors fail in their own ways on bad tagged values (!!bool x)
        raise UsageError(f"{path}: not a recording: {type(exc).__name__}: {exc}") from None
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        raise UsageError(f"{path}: not a recording (expected JSON lines, or YAML with an 'interactions' list)")
    records = []
    for index, interaction in enumerate(interactions):
        if not isinstance(interaction, dict) or interaction.get("kind", "message") != "message":
            continue
        direction = _DIRECTIONS.get(str(interaction.get("direction")))
        event = interaction.get("data")
        if direction is None or not isinstance(event, dict):
            raise UsageError(f"{path}: interactions[{index}]: expected direction received|sent and a data mapping")
        records.append({"t": _seconds(interaction.get("at")), "direction": direction, "event": event})
    return records


# -- replaying -----------------------------------------------------------------------------------------


class _RecordedClock:
    """``ctx.now()`` during a replay: the recorded time of the record being replayed."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def replay(profile: Profile, source: Path, run_dir: Path, *, pm: pluggy.PluginManager, log: Any = None) -> int:
    """Feed the recording at ``source`` through the plugins in ``pm``; return the exit code.

    Runs ``voicepipe_session_start``, every recorded event, then
    ``voicepipe_session_end(reason="replay_finished")`` (or the reason a plugin passed to
    ``ctx.stop``, which also ends the replay early).
    """
    from azure.ai.voicelive.models import ServerEvent

    from voicepipe.logsetup import bind_session, get_logger
    from voicepipe.pipeline import Pipeline

    skipped: list[str] = []
    records = read_recording(Path(source), skipped)
    log = log or get_logger("voicepipe.replay")
    for problem in skipped[:10]:
        log.warning("recording_line_skipped", problem=problem)
    if len(skipped) > 10:
        log.warning("recording_lines_skipped", count=len(skipped))
    clock = _RecordedClock()
    stop_reasons: list[str] = []

    def dropped(event: Any) -> None:
        event_type = event.get("type") if hasattr(event, "get") else type(event).__name__
        log.debug("replay_send_dropped", event_type=event_type)

    pipeline = Pipeline(profile, pm, Path(run_dir), log, send=dropped, stop=stop_reasons.append, clock=clock)
    ctx = pipeline.ctx
    meta = next(
        (r["event"] for r in records if r["direction"] == "meta" and r["event"].get("type") == "recording.started"), {}
    )
    origin = meta.get("clock_origin")
    preset_clock(
        ctx,
        origin=0.0,
        started_at=_parse_time(meta.get("started_at")) or datetime.now().astimezone(),
        playback_expected=bool(meta.get("playback_expected", any(r["direction"] == "local" for r in records))),
    )
    log.info("replay_started", source=str(source), records=len(records))
    reason = "replay_finished"
    try:
        await pipeline.start()
        for record in records:
            if stop_reasons:
                break
            if record["t"] is not None:
                clock.t = record["t"]
            direction, data = record["direction"], record["event"]
            if direction in ("server", "client"):
                data = _with_audio(data)  # before the shape check: elided audio is an object
            problem = _problem(direction, data)
            if problem is not None:
                log.warning(_MALFORMED.get(direction, "malformed_recorded_event"),
                            event_type=str(data.get("type"))[:80], problem=problem)
                continue
            if direction == "server":
                event = ServerEvent._deserialize(data, [])
                event_type = event.get("type")
                if event_type == "session.created":
                    ctx.session_id = (event.get("session") or {}).get("id")
                    bind_session(session_id=ctx.session_id)
                elif event_type == "session.updated":
                    ctx.session = bounded_session(event, {}, log)
                await pipeline.dispatch_and_wait(event)
            elif direction == "client":
                pipeline.client_event(data)
            elif direction == "local":
                pipeline.notify_playback(_on_replay_clock(data, origin, clock.t))
            elif direction == "meta":
                _replay_connection_change(pipeline, ctx, data)
        if stop_reasons:
            reason = stop_reasons[0]
    except BaseException:
        reason = "error"
        await pipeline.end(reason)
        raise
    await pipeline.end(reason)
    log.info("replay_finished", reason=reason, plugin_errors=sum(pipeline.errors.values()))
    return 0 if reason in CLEAN_REASONS else 1


def _with_audio(event: dict) -> dict:
    """Elided audio (``{"bytes": n, "sha256": …}``) back as ``n`` bytes of silence, base64."""
    event_type = event.get("type")
    field = AUDIO_FIELDS.get(event_type) if isinstance(event_type, str) else None
    if field is None:
        return event
    value = event.get(field)
    if isinstance(value, dict):
        length = value.get("bytes") if isinstance(value.get("bytes"), int) else 0
        if not 0 <= length <= MAX_ELIDED_AUDIO_BYTES:
            length = 0
        event = dict(event)
        event[field] = _silence(length)
    return event


_SILENCE: dict[int, str] = {}


def _silence(length: int) -> str:
    text = _SILENCE.get(length)
    if text is None:
        text = base64.b64encode(bytes(length)).decode("ascii")
        if len(_SILENCE) < 64:
            _SILENCE[length] = text
    return text


def _on_replay_clock(event: dict, origin: Any, t: float) -> dict:
    """A playback milestone with its ``at`` moved from the live monotonic clock to the replay's."""
    event = dict(event)
    at, origin = _seconds(event.get("at")), _seconds(origin)
    if at is None:
        event["at"] = t
    elif origin is not None:
        event["at"] = at - origin
    return event


def _seconds(value: Any) -> Optional[float]:
    """A recorded time (or duration) as a float; ``None`` for anything that is not a number of
    seconds a clock could read (finite, and within :data:`MAX_SECONDS` of zero)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_SECONDS else None


_PLAYBACK_NUMBERS = ("played_ms", "generated_ms", "at")


def _replay_connection_change(pipeline: Any, ctx: Any, meta: dict) -> None:
    """A recorded drop or reconnect: tell the plugins as the live session did."""
    kind = meta.get("type")
    if kind == "connection.lost":
        pipeline.call(
            "voicepipe_disconnected",
            "disconnected",
            ctx=ctx,
            code=meta.get("code") if isinstance(meta.get("code"), int) else None,
            reason=meta.get("reason") if isinstance(meta.get("reason"), str) else None,
            reconnecting=meta.get("reconnecting") is True,
        )
    elif kind == "connection.reconnected":
        seeded = meta.get("seeded_item_ids")
        pipeline.call(
            "voicepipe_reconnected",
            "reconnected",
            ctx=ctx,
            attempts=meta.get("attempts") if isinstance(meta.get("attempts"), int) else 1,
            gap_s=_seconds(meta.get("gap_s")) or 0.0,
            seeded_item_ids=[i for i in seeded if isinstance(i, str)] if isinstance(seeded, list) else [],
            buffered_audio_s=_seconds(meta.get("buffered_audio_s")) or 0.0,
        )


def _problem(direction: str, event: dict) -> Optional[str]:
    """Why a recorded event cannot be dispatched (too large, or its known fields have the wrong
    type), or ``None``."""
    oversized = _oversized(event)
    if oversized is not None:
        return oversized
    if direction == "local":
        return _playback_problem(event)
    if direction in _MALFORMED:
        return malformed(event)
    return None


def _oversized(event: dict) -> Optional[str]:
    """What makes an event too large to dispatch, or ``None``. Values are counted with every
    repetition of a shared one: YAML aliases make a small cassette hold exponentially many."""
    count, stack = 0, [(event, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_EVENT_VALUES:
            return f"more than {MAX_EVENT_VALUES} values"
        if depth > MAX_EVENT_DEPTH:
            return f"nested deeper than {MAX_EVENT_DEPTH} levels"
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return None


def _playback_problem(event: dict) -> Optional[str]:
    """Why a recorded playback milestone cannot be handed to plugins, or ``None``. The live audio
    plugin only ever reports well-formed ones; a recording may hold anything."""
    if not isinstance(event.get("type"), str):
        return "'type' is not text"
    for name in ("item_id", "response_id"):
        if event.get(name) is not None and not isinstance(event.get(name), str):
            return f"{name} is not text"
    for name in _PLAYBACK_NUMBERS:
        value = event.get(name)
        if value is not None and _seconds(value) is None:
            return f"{name} is not a finite number"
    return None


def _parse_time(value: Any) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
