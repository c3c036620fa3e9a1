"""Built-in plugin "metrics": per-turn latency, audio and token usage, measured where the user hears it.

A *turn* is one response, keyed by its ``response_id``. Times are ``ctx.now()`` readings (monotonic
seconds) taken when the plugin sees an event: a server event when it is dispatched, a client event
just before it is sent, a playback milestone at the ``at`` time the output backend's clock reported.
All durations are in milliseconds, rounded to 0.1 ms.

``server_first_audio_ms``
    ``input_audio_buffer.speech_stopped`` received → first ``response.audio.delta`` of the response
    received. Set for responses that follow a ``speech_stopped`` (server VAD turns): the first
    ``response.created`` after a ``speech_stopped`` takes it.
``first_audio_from_create_ms``
    Client ``response.create`` sent → first audio delta received. Set for client-created responses:
    each ``response.created`` takes the oldest ``response.create`` not yet answered (one rejected with
    ``conversation_already_has_active_response`` is dropped again).
``vad_tail_ms``
    End of the user's speech on the capture clock (below) → ``speech_stopped`` received: the server's
    silence window plus the network.
``playout_delay_ms``
    First audio delta received → ``playback.started`` of the response's first item (the output
    backend's clock reaching the item's first sample).
``voice_to_voice_ms``
    End of the user's speech on the capture clock → ``playback.started``: what the user experiences.
    It equals ``vad_tail_ms + server_first_audio_ms + playout_delay_ms``.
``response_duration_ms``
    ``response.created`` received → ``response.done`` received.
``tool_ms``
    For a response that calls functions: the earliest ``response.function_call_arguments.done``
    received (or ``response.done`` for a call only seen there) → the last ``function_call_output``
    ``conversation.item.create`` sent. ``tool_calls`` lists each call with its own ``ms``.
``interrupted``
    ``response.done`` with status ``cancelled``, or a ``playback.interrupted`` for one of its items.
``generated_ms``
    Audio received for the response: the base64 length of every delta × 3/4 (padding is not
    subtracted: at most one sample too many per delta), divided by the output format's bytes per
    second (``pcm16`` 24 kHz × 2 bytes, ``pcm16_16000hz``, ``pcm16_8000hz``, G.711 8 kHz × 1 byte),
    taken from ``response.created`` or else the session's ``output_audio_format``.
``played_ms``
    The backend's ``played_ms`` from ``playback.finished`` / ``playback.interrupted``, summed over the
    response's items.
``usage``
    ``response.done``'s ``usage``, verbatim.

**Capture clock.** ``speech_stopped.audio_end_ms`` counts milliseconds of input audio appended since
the session's input started. The end of speech in local time is ``input start + audio_end_ms``,
where *input start* is the time the first input sample was captured: the audio plugin's
``ctx.stash["audio"].input_started_at`` when it offers one, otherwise the time the first
``input_audio_buffer.append`` was sent minus that chunk's duration (its decoded length at the
session's ``input_audio_sampling_rate``). This assumes input is appended continuously; a source that
pauses between chunks moves the true capture times later than the computed ones. Input that is not
paced in real time (a WAV file with ``realtime: false``) has no capture clock: ``vad_tail_ms`` and
``voice_to_voice_ms`` are left out.

**Records.** A turn is written to ``metrics.jsonl`` (one JSON object a line, flushed per line) once
its response is done, its function calls have their outputs sent (for a completed response), and,
if it carried audio, its playback finished or was interrupted, or a later response started playing
(playback is in order, so an item that has not started by then never will). Whatever is still open
at session end is written then with ``"complete": false``; without an audio plugin that reports
playback, every audio turn waits until then.

**Summary.** At session end ``metrics.json`` holds ``count``, ``p50``, ``p90``, ``p99`` and ``max``
(nearest-rank, see :mod:`voicepipe.metrics_stats`) of each metric over the turns whose response is
done and that were not interrupted, token totals over *all* turns (interrupted responses are billed
too), the number of turns and of interrupted turns. A plain-text table of the same goes to stdout
unless the profile says ``metrics: {table: false}``.

Profile section::

    metrics:
      table: true            # print the table at session end
      prometheus_port: 9464  # serve /metrics on 127.0.0.1 (extra: voicepipe-live[prometheus])
      otel: false            # record OpenTelemetry metrics (extra: voicepipe-live[otel])

The per-session state lives at ``ctx.stash["metrics"]`` (a :class:`SessionMetrics`). Another plugin
adds a section to ``metrics.json`` through its ``sections`` (name -> a dict, or a function called
when the file is written), as a phone transport does with ``transport``.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from typing import Any, Callable, Mapping, NamedTuple, Optional

from voicepipe import hookimpl
from voicepipe.diskwrite import LineFile, write_whole
from voicepipe.errors import UsageError
from voicepipe.eventshape import finite_or_none as _finite
from voicepipe.eventshape import mapping_or_empty as _mapping
from voicepipe.eventshape import text_or_none as _id
from voicepipe.metrics_stats import LATENCY_METRICS, PERCENTILE_METHOD, add_usage, format_table, summarize
from voicepipe.pipeline import event_fields

STASH_KEY = "metrics"
JSONL_NAME = "metrics.jsonl"
SUMMARY_NAME = "metrics.json"

AUDIO_METRICS = ("generated_ms", "played_ms")
SUMMARY_METRICS = LATENCY_METRICS + AUDIO_METRICS

#: output/input audio format -> (samples per second, bytes per sample)
AUDIO_FORMATS: dict[str, tuple[int, int]] = {
    "pcm16": (24000, 2),
    "pcm16_16000hz": (16000, 2),
    "pcm16-16000hz": (16000, 2),
    "pcm16_8000hz": (8000, 2),
    "pcm16-8000hz": (8000, 2),
    "g711_ulaw": (8000, 1),
    "g711_alaw": (8000, 1),
}
DEFAULT_AUDIO_FORMAT = (24000, 2)
ACTIVE_RESPONSE_ERROR = "conversation_already_has_active_response"
KNOWN_SETTINGS = ("table", "prometheus_port", "otel")


# -- settings ----------------------------------------------------------------------------------------


class MetricsSettings(NamedTuple):  # not a frozen dataclass: making that class costs a millisecond at start-up
    """The profile's ``metrics:`` section."""

    table: bool = True
    prometheus_port: Optional[int] = None
    otel: bool = False


def read_settings(profile: Any) -> MetricsSettings:
    """Validate and return the ``metrics:`` section; a bad value raises :class:`UsageError`."""
    section = profile.section("metrics") or {}
    where = _location(profile)
    if not isinstance(section, Mapping):
        raise UsageError(f"{where}metrics: expected a mapping of settings, got {section!r}")
    for key in section:
        if key not in KNOWN_SETTINGS:
            raise UsageError(f"{where}metrics.{key}: unknown setting (known: {', '.join(KNOWN_SETTINGS)})")
    table = section.get("table", True)
    otel = section.get("otel", False)
    port = section.get("prometheus_port")
    for key, value in (("table", table), ("otel", otel)):
        if not isinstance(value, bool):
            raise UsageError(f"{where}metrics.{key}: expected true or false, got {value!r}")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise UsageError(f"{where}metrics.prometheus_port: expected a port number from 1 to 65535, got {port!r}")
    return MetricsSettings(table=table, prometheus_port=port, otel=otel)


def _location(profile: Any) -> str:
    locate = getattr(profile, "location", None)
    if not callable(locate):
        return ""
    try:
        where = locate("metrics")
    except Exception:  # a profile without a position for the key
        return ""
    return f"{where}: " if where else ""


# -- one turn ----------------------------------------------------------------------------------------


class Turn:
    """What is known so far about one response."""

    __slots__ = (
        "response_id",
        "key",
        "index",
        "created_at",
        "done_at",
        "status",
        "usage",
        "trigger",
        "speech_stopped_at",
        "audio_end_ms",
        "input_origin",
        "create_sent_at",
        "first_audio_at",
        "audio_chars",
        "bytes_per_second",
        "item_ids",
        "playback_started_at",
        "playing",
        "played_by_item",
        "playback_over",
        "playback_interrupted",
        "calls",
    )

    def __init__(self, response_id: str, index: int, bytes_per_second: int):
        self.response_id = response_id
        self.key: Any = response_id  # where SessionMetrics.turns holds it
        self.index = index
        self.created_at: Optional[float] = None
        self.done_at: Optional[float] = None
        self.status: Optional[str] = None
        self.usage: Optional[dict] = None
        self.trigger = "server"
        self.speech_stopped_at: Optional[float] = None
        self.audio_end_ms: Optional[float] = None
        self.input_origin: Optional[float] = None  # the capture origin audio_end_ms counts from
        self.create_sent_at: Optional[float] = None
        self.first_audio_at: Optional[float] = None
        self.audio_chars = 0
        self.bytes_per_second = bytes_per_second
        self.item_ids: list[str] = []
        self.playback_started_at: Optional[float] = None
        self.playing: set[str] = set()
        self.played_by_item: dict[str, float] = {}
        self.playback_over = False
        self.playback_interrupted = False
        #: call_id -> [name, started_at, output_sent_at]
        self.calls: dict[str, list] = {}

    @property
    def interrupted(self) -> bool:
        return self.status == "cancelled" or self.playback_interrupted

    def settled(self) -> bool:
        """Whether everything the record needs has happened."""
        if self.done_at is None:
            return False
        if self.status == "completed" and any(call[2] is None for call in self.calls.values()):
            return False
        return self.audio_chars == 0 or self.playback_over


# -- one session -------------------------------------------------------------------------------------


class SessionMetrics:
    """The metrics of one session: turns in progress, the records file, aggregates and exporters."""

    def __init__(self, ctx: Any, settings: MetricsSettings, sinks: Optional[list] = None):
        self.ctx = ctx
        self.settings = settings
        self.now: Callable[[], float] = ctx.now
        self.started_at = self.now()
        self.sinks = list(sinks or [])
        self.turns: dict[str, Turn] = {}
        self.item_response: dict[str, str] = {}
        self.call_turn: dict[str, Turn] = {}
        self.pending_creates: deque[float] = deque()
        self.pending_speech: Optional[tuple[float, float, Optional[float]]] = None
        self.first_append_start: Optional[float] = None
        self.values: dict[str, list[float]] = {name: [] for name in SUMMARY_METRICS}
        self.token_totals: dict[str, Any] = {}
        self.turn_count = 0
        self.interrupted_count = 0
        self.summary: Optional[dict] = None
        #: more sections of ``metrics.json`` from other plugins (a serving transport's latency):
        #: name -> a dict, or a function returning one, called when the file is written
        self.sections: dict[str, Any] = {}
        self._next_index = 0
        self._jsonl: Any = None
        self.handlers: dict[str, Callable[[Any], None]] = {
            "response.audio.delta": self._on_audio_delta,
            "response.output_audio.delta": self._on_audio_delta,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item_added,
            "response.function_call_arguments.done": self._on_arguments_done,
            "response.done": self._on_response_done,
            "error": self._on_error,
            "session.created": self._on_session_created,
        }
        self._sessions = 0
        self.client_handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "input_audio_buffer.append": self._on_first_append,
            "response.create": self._on_response_create,
            "conversation.item.create": self._on_item_create,
        }

    # -- server events -------------------------------------------------------------------------------

    def _turn(self, response_id: Any) -> Turn:
        turn = self.turns.get(response_id)
        if turn is None:
            turn = Turn(response_id, self._next_index, self._output_bytes_per_second(None))
            self._next_index += 1
            self.turns[response_id] = turn
        return turn

    def _on_session_created(self, event: Any) -> None:
        """A new connection (after a reconnect) starts a new session whose ids may repeat the old
        one's (``resp_1`` again): the turns still open are moved out of the way, so a new response
        with the same id gets a turn of its own, never the old one's times."""
        self._sessions += 1
        if self._sessions == 1:
            return
        for turn in list(self.turns.values()):
            if turn.key == turn.response_id:
                del self.turns[turn.key]
                if turn.input_origin is None:
                    turn.audio_end_ms = None  # it counted on the old connection's audio timeline, now gone
                turn.key = (self._sessions, turn.response_id)
                self.turns[turn.key] = turn
                for item_id in turn.item_ids:
                    self.item_response[item_id] = turn.key
        self.pending_creates.clear()
        self.pending_speech = None

    def _on_audio_delta(self, event: Any) -> None:
        # the hot path: dictionary lookups, one clock read per response, a length per delta
        turn = self.turns.get(event.get("response_id"))
        if turn is None:
            turn = self._turn(event.get("response_id"))
        if turn.first_audio_at is None:
            turn.first_audio_at = self.now()
        delta = event.get("delta")
        if isinstance(delta, str):
            turn.audio_chars += len(delta)

    def _on_speech_stopped(self, event: Any) -> None:
        audio_end_ms = _finite(event.get("audio_end_ms"))
        if audio_end_ms is not None:
            # the origin as of now: a reconnect starts a new audio timeline
            self.pending_speech = (self.now(), float(audio_end_ms), self.input_started_at())

    def _on_response_created(self, event: Any) -> None:
        response = _mapping(event.get("response"))
        turn = self._turn(_id(response.get("id")))
        turn.created_at = self.now()
        turn.bytes_per_second = self._output_bytes_per_second(response.get("output_audio_format"))
        if self.pending_speech is not None:
            turn.speech_stopped_at, turn.audio_end_ms, turn.input_origin = self.pending_speech
            self.pending_speech = None
            turn.trigger = "speech"
        if self.pending_creates:
            turn.create_sent_at = self.pending_creates.popleft()
            turn.trigger = "client"

    def _on_output_item_added(self, event: Any) -> None:
        response_id = event.get("response_id")
        item_id = _id(_mapping(event.get("item")).get("id"))
        turn = self._turn(response_id)
        if item_id is not None:
            self.item_response[item_id] = response_id
            turn.item_ids.append(item_id)

    def _on_arguments_done(self, event: Any) -> None:
        self._register_call(self._turn(event.get("response_id")), event.get("call_id"), event.get("name"))

    def _register_call(self, turn: Turn, call_id: Any, name: Any) -> None:
        if call_id is None or call_id in turn.calls:
            return
        turn.calls[call_id] = [name, self.now(), None]
        self.call_turn[call_id] = turn

    def _on_response_done(self, event: Any) -> None:
        response = _mapping(event.get("response"))
        turn = self._turn(_id(response.get("id")))
        turn.done_at = self.now()
        turn.status = _text(response.get("status"))
        usage = response.get("usage")
        turn.usage = _plain(usage) if isinstance(usage, Mapping) else None
        outputs = response.get("output")
        for output in outputs if isinstance(outputs, list) else ():
            if isinstance(output, Mapping) and _text(output.get("type")) == "function_call":
                self._register_call(turn, _id(output.get("call_id")), output.get("name"))
        self._maybe_write(turn)

    def _on_error(self, event: Any) -> None:
        error = event.get("error") or {}
        if error.get("code") == ACTIVE_RESPONSE_ERROR and self.pending_creates:
            self.pending_creates.pop()

    # -- client events -------------------------------------------------------------------------------

    def _on_first_append(self, event: Mapping[str, Any]) -> None:
        audio = event.get("audio")
        audio = audio if isinstance(audio, str) else ""
        rate, width = self._input_format()
        chunk_seconds = len(audio) * 3 / 4 / width / rate
        self.first_append_start = self.now() - chunk_seconds
        # later appends cost one dictionary miss
        self.client_handlers.pop("input_audio_buffer.append", None)

    def _on_response_create(self, event: Mapping[str, Any]) -> None:
        self.pending_creates.append(self.now())

    def _on_item_create(self, event: Mapping[str, Any]) -> None:
        item = _mapping(event.get("item"))
        call_id = _id(item.get("call_id"))
        if item.get("type") != "function_call_output":
            return
        turn = self.call_turn.pop(call_id, None)
        if turn is None:
            return
        turn.calls[call_id][2] = self.now()
        self._maybe_write(turn)

    # -- playback ------------------------------------------------------------------------------------

    def on_playback(self, event: Mapping[str, Any]) -> None:
        item_id = event.get("item_id")
        turn = self.turns.get(self.item_response.get(item_id) or event.get("response_id"))
        if turn is None:
            return
        at = event.get("at")
        if not isinstance(at, (int, float)):
            at = self.now()
        kind = event.get("type")
        if kind == "playback.started":
            if turn.playback_started_at is None or at < turn.playback_started_at:
                turn.playback_started_at = at
            turn.playing.add(item_id)
            turn.playback_over = False
            self._supersede(turn)
        elif kind in ("playback.finished", "playback.interrupted"):
            turn.playing.discard(item_id)
            played = event.get("played_ms")
            if isinstance(played, (int, float)):
                turn.played_by_item[item_id] = float(played)
            if kind == "playback.interrupted":
                turn.playback_interrupted = True
            if not turn.playing:
                turn.playback_over = True
                self._maybe_write(turn)

    def _supersede(self, playing: Turn) -> None:
        """A later response started playing, so earlier ones that are not playing never will."""
        for turn in [t for t in self.turns.values() if t.index < playing.index and not t.playing]:
            turn.playback_over = True
            self._maybe_write(turn)

    # -- records -------------------------------------------------------------------------------------

    def _maybe_write(self, turn: Turn) -> None:
        if turn.settled():
            self._write(turn, complete=True)

    def _write(self, turn: Turn, complete: bool) -> None:
        self.turns.pop(turn.key, None)
        for item_id in turn.item_ids:
            self.item_response.pop(item_id, None)
        for call_id in turn.calls:
            self.call_turn.pop(call_id, None)
        record = self.record(turn, complete)
        self._append_line(record)
        self.turn_count += 1
        if record["interrupted"]:
            self.interrupted_count += 1
        elif turn.done_at is not None:
            for name in SUMMARY_METRICS:
                value = record[name]
                if value is not None:
                    self.values[name].append(value)
        add_usage(self.token_totals, record["usage"])
        for sink in list(self.sinks):
            try:
                sink.observe(record)
            except Exception as exc:  # an exporter's fault must not lose the other outputs
                self.sinks.remove(sink)
                self.ctx.log.warning("metrics_export_failed", exporter=type(sink).__name__, error=repr(exc))

    def record(self, turn: Turn, complete: bool) -> dict[str, Any]:
        """The ``metrics.jsonl`` record of ``turn``; metrics that could not be measured are ``None``."""
        speech_end = self._speech_end(turn)
        calls = [
            {"call_id": call_id, "name": name, "ms": _ms(started, sent)}
            for call_id, (name, started, sent) in turn.calls.items()
        ]
        sent_times = [sent for _, _, sent in turn.calls.values() if sent is not None]
        tool_ms = None
        if sent_times:
            tool_ms = _ms(min(started for _, started, _ in turn.calls.values()), max(sent_times))
        generated_ms = None
        if turn.audio_chars:
            generated_ms = round(turn.audio_chars * 3 / 4 / turn.bytes_per_second * 1000, 1)
        return {
            "response_id": turn.response_id,
            "at_s": None if turn.created_at is None else round(turn.created_at - self.started_at, 3),
            "trigger": turn.trigger,
            "status": turn.status,
            "interrupted": turn.interrupted,
            "complete": complete,
            "item_ids": list(turn.item_ids),
            "voice_to_voice_ms": _ms(speech_end, turn.playback_started_at),
            "server_first_audio_ms": _ms(turn.speech_stopped_at, turn.first_audio_at),
            "first_audio_from_create_ms": _ms(turn.create_sent_at, turn.first_audio_at),
            "vad_tail_ms": _ms(speech_end, turn.speech_stopped_at),
            "playout_delay_ms": _ms(turn.first_audio_at, turn.playback_started_at),
            "response_duration_ms": _ms(turn.created_at, turn.done_at),
            "tool_ms": tool_ms,
            "tool_calls": calls,
            "generated_ms": generated_ms,
            "played_ms": round(sum(turn.played_by_item.values()), 1) if turn.played_by_item else None,
            "usage": turn.usage,
        }

    def _speech_end(self, turn: Turn) -> Optional[float]:
        if turn.audio_end_ms is None or getattr(self.ctx.stash.get("audio"), "input_realtime", True) is False:
            return None
        started = turn.input_origin if turn.input_origin is not None else self.input_started_at()
        return None if started is None else started + turn.audio_end_ms / 1000

    def input_started_at(self) -> Optional[float]:
        """When the first input sample was captured (monotonic seconds), if known."""
        started = getattr(self.ctx.stash.get("audio"), "input_started_at", None)
        if isinstance(started, (int, float)) and not isinstance(started, bool):
            return float(started)
        return self.first_append_start

    def _append_line(self, record: dict) -> None:
        if self._jsonl is None:
            self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = LineFile(self.ctx.run_dir / JSONL_NAME)  # whole lines, even on a full disk
        self._jsonl.write(json.dumps(record, default=str) + "\n")

    # -- the end -------------------------------------------------------------------------------------

    def finish(self, reason: str) -> dict[str, Any]:
        """Write what is still open, then ``metrics.json``, the table, and close the exporters."""
        self.handlers = {}
        self.client_handlers = {}
        failure: Optional[OSError] = None  # a full disk: metrics.json is still tried, then it is raised
        try:
            for turn in sorted(self.turns.values(), key=lambda t: t.index):
                self._write(turn, complete=turn.settled())
        except OSError as exc:
            failure = exc
        self.summary = self.summarize(reason)
        try:
            self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
            write_whole(self.ctx.run_dir / SUMMARY_NAME, json.dumps(self.summary, indent=2, default=str) + "\n")
        except OSError as exc:
            failure = failure or exc
        finally:
            if self._jsonl is not None:
                self._jsonl.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.ctx.log.warning("metrics_export_failed", exporter=type(sink).__name__, error=repr(exc))
        if failure is not None:
            raise failure
        if self.settings.table:
            print(format_table(self.summary), file=sys.stdout, flush=True)
        return self.summary

    def summarize(self, reason: Optional[str] = None) -> dict[str, Any]:
        """The ``metrics.json`` content for the turns written so far."""
        return {
            "session_id": self.ctx.session_id,
            "reason": reason,
            "turns": self.turn_count,
            "interrupted": self.interrupted_count,
            "percentiles": PERCENTILE_METHOD,
            "metrics": {name: summarize(self.values[name]) for name in SUMMARY_METRICS},
            "tokens": self.token_totals,
            **{name: _section(value, self.ctx.log) for name, value in self.sections.items()},
        }

    # -- formats -------------------------------------------------------------------------------------

    def _output_bytes_per_second(self, response_format: Any) -> int:
        name = _text(response_format) or _text(self.ctx.session.get("output_audio_format"))
        rate, width = AUDIO_FORMATS.get(str(name).lower(), DEFAULT_AUDIO_FORMAT) if name else DEFAULT_AUDIO_FORMAT
        return rate * width

    def _input_format(self) -> tuple[int, int]:
        session = self.ctx.session
        name = _text(session.get("input_audio_format"))
        rate, width = AUDIO_FORMATS.get(str(name).lower(), DEFAULT_AUDIO_FORMAT) if name else DEFAULT_AUDIO_FORMAT
        if width == 2:  # PCM16 input runs at the session's sampling rate
            sampling_rate = session.get("input_audio_sampling_rate")
            if isinstance(sampling_rate, int) and sampling_rate > 0:
                rate = sampling_rate
        return rate, width


def _section(value: Any, log: Any) -> Any:
    if not callable(value):
        return value
    try:
        return value()
    except Exception as exc:  # another plugin's bug must not cost the summary
        log.warning("metrics_section_failed", error=f"{type(exc).__name__}: {exc}")
        return None


def _ms(start: Optional[float], end: Optional[float]) -> Optional[float]:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 1)


def _text(value: Any) -> Any:
    """An SDK enum's string value, or the value itself."""
    return getattr(value, "value", value)


def _plain(value: Any) -> Any:
    """SDK models and enums as plain JSON-ready dicts, lists and scalars (NaN and the infinities,
    which JSON cannot hold, as ``None``)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return _text(value)


# -- hooks -------------------------------------------------------------------------------------------


@hookimpl
def voicepipe_configure(profile: Any) -> None:
    read_settings(profile)


@hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    settings = read_settings(ctx.profile)
    ctx.stash[STASH_KEY] = SessionMetrics(ctx, settings, _open_sinks(settings, ctx.log))


def _open_sinks(settings: MetricsSettings, log: Any) -> list:
    sinks = []
    if settings.prometheus_port is not None:
        from voicepipe.builtin import metrics_prometheus

        sink = metrics_prometheus.open_exporter(settings.prometheus_port, log)
        if sink is not None:
            sinks.append(sink)
    if settings.otel:
        from voicepipe.builtin import metrics_otel

        sink = metrics_otel.open_exporter(log)
        if sink is not None:
            sinks.append(sink)
    return sinks


@hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    state = ctx.stash.get(STASH_KEY)
    if state is not None:
        fields = event_fields(event)
        handler = state.handlers.get(fields.get("type"))
        if handler is not None:
            handler(fields)


@hookimpl
def voicepipe_client_event(event: Mapping[str, Any], ctx: Any) -> None:
    state = ctx.stash.get(STASH_KEY)
    if state is not None:
        handler = state.client_handlers.get(event.get("type"))
        if handler is not None:
            handler(event)


@hookimpl
def voicepipe_playback(event: Mapping[str, Any], ctx: Any) -> None:
    state = ctx.stash.get(STASH_KEY)
    if state is not None and state.summary is None:
        state.on_playback(event)


@hookimpl(trylast=True)
async def voicepipe_session_end(ctx: Any, reason: str) -> None:
    # called last and awaited after the other plugins' awaitables (the audio plugin's drain), so
    # the playback milestones reported while the session ends still count
    state = ctx.stash.get(STASH_KEY)
    if state is not None and state.summary is None:
        state.finish(reason)
