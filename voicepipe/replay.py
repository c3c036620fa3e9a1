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
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from voicepipe.builtin.recorder import AUDIO_FIELDS
from voicepipe.errors import UsageError
from voicepipe.sessionclock import preset_clock

if TYPE_CHECKING:
    import pluggy

    from voicepipe.profile import Profile

EVENTS_FILE = "events.jsonl"
#: stop reasons that end a replay with exit code 0
CLEAN_REASONS = {"replay_finished", "user", "duration", "input_finished", "server_closed"}
_DIRECTIONS = {"received": "server", "sent": "client"}


# -- reading ---------------------------------------------------------------------------------------


def read_recording(path: Path) -> list[dict]:
    """Every record of a recording, in order: ``{"t": seconds or None, "direction": ..., "event": {...}}``.

    ``direction`` is ``server``, ``client``, ``local`` (playback milestones) or ``meta``. ``path``
    is a run folder, an ``events.jsonl`` or a cassette YAML. Server events are
    ``[r for r in records if r["direction"] == "server"]``.
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
        records = _read_jsonl(path, text)
    else:
        records = _read_cassette(path, text)
    if not any(r["direction"] == "server" for r in records):
        raise UsageError(f"{path}: no server events in this recording")
    return records


def _read_jsonl(path: Path, text: str) -> list[dict]:
    records = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # the last line of a killed run may be cut short
                break
            raise UsageError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        if isinstance(data.get("event"), dict):
            records.append({"t": data.get("t"), "direction": data.get("direction", "server"), "event": data["event"]})
        elif "type" in data:  # a bare server event
            records.append({"t": None, "direction": "server", "event": data})
        else:
            raise UsageError(f"{path}:{number}: neither a recorder line nor an event (no 'event' or 'type' key)")
    return records


def _read_cassette(path: Path, text: str) -> list[dict]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: not a recording: {getattr(exc, 'problem', None) or exc}") from None
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
        at = interaction.get("at")
        records.append({"t": float(at) if at is not None else None, "direction": direction, "event": event})
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

    records = read_recording(Path(source))
    log = log or get_logger("voicepipe.replay")
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
                clock.t = float(record["t"])
            direction, data = record["direction"], record["event"]
            if direction == "server":
                event = ServerEvent._deserialize(_with_audio(data), [])
                event_type = event.get("type")
                if event_type == "session.created":
                    ctx.session_id = (event.get("session") or {}).get("id")
                    bind_session(session_id=ctx.session_id)
                elif event_type == "session.updated":
                    ctx.session = dict(event.get("session") or {})
                await pipeline.dispatch_and_wait(event)
            elif direction == "client":
                pipeline.client_event(_with_audio(data))
            elif direction == "local":
                pipeline.notify_playback(_on_replay_clock(data, origin, clock.t))
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
    field = AUDIO_FIELDS.get(event.get("type", ""))
    if field is None:
        return event
    value = event.get(field)
    if isinstance(value, dict):
        length = value.get("bytes") if isinstance(value.get("bytes"), int) else 0
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


def _on_replay_clock(event: dict, origin: Optional[float], t: float) -> dict:
    """A playback milestone with its ``at`` moved from the live monotonic clock to the replay's."""
    event = dict(event)
    at = event.get("at")
    if at is None:
        event["at"] = t
    elif origin is not None:
        event["at"] = float(at) - float(origin)
    return event


def _parse_time(value: Any) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
