"""Built-in plugin "audio": the microphone to the service, the answers to the speaker, barge-in.

Profile section (every key optional)::

    audio:
      chunk_ms: 20               # input chunk length
      batch_ms: 100              # steady silence or sound is sent in appends this long (0: never)
      quiet_dbfs: -50            # silence: no sample louder than this
      truncate: true             # tell the service how much of an interrupted answer was heard
                                 #   (default: true unless the session uses auto_truncate)
      echo_reference: false      # send stereo input: microphone + the played signal (see below)
      input:  {backend: pyaudio, device: default}   # pyaudio | sounddevice | wav | null | a plugin's
      output: {backend: wav, file: "{run_dir}/output.wav"}

Both backends default to ``null``. ``{run_dir}`` in a ``file`` is the run folder; other relative
paths are relative to the profile's folder. Backend options are in each backend's module
(:mod:`voicepipe.audio.wav`, :mod:`voicepipe.audio.device`, :mod:`voicepipe.audio.null`); an
input also takes ``answer_timeout_s`` (default 15): once a finite input (a file) has ended, how
long to wait for the service to react before the session ends without an answer.

**Flow.** The backends are created at session start (bad options and missing files fail then) and
opened when ``session.updated`` gives the effective rates: ``input_audio_sampling_rate`` for input,
the ``output_audio_format`` for output (G.711 is encoded and decoded here). Each input chunk is sent
as ``input_audio_buffer.append``; each ``response.audio.delta`` goes to the output backend, decoded,
or as a :class:`voicepipe.audio.pcm.LazyPCM` (the base64 text, decoded only if the bytes are asked
for) to an output that sets ``accepts_lazy_pcm`` (``null``: it only counts samples). When a
finite input ends, the session ends with ``input_finished`` once no answer is in progress and the
output has played out.

**Barge-in** on ``input_audio_buffer.speech_started``: the output is cleared at once. For each
assistant item whose playback had not finished, the played position is the smaller of the
backend's own played counter and the audio received; nothing played → ``conversation.item.delete``,
otherwise ``conversation.item.truncate`` at that position, unless the session uses
``auto_truncate`` (the service truncates) or ``truncate: false``. ``response.cancel`` is sent only
when the session's ``turn_detection.interrupt_response`` is explicitly false and a response is in
progress; by default the service cancels by itself. Deltas of an interrupted response that arrive
later are dropped.

**Playback milestones** (``voicepipe_playback``): ``playback.started`` when the output clock
reaches an item's first sample, ``playback.finished`` when it has played the last sample of a
complete item, ``playback.interrupted`` on barge-in.

**Client echo reference**: when the session has ``input_audio_echo_cancellation`` with
``reference_source: client`` and ``channels: 2`` (``echo_reference: true`` sets that up), input is
sent as stereo, the microphone on channel 0 and what the output played at the same moment on
channel 1.

The live state is ``ctx.stash["audio"]`` (an :class:`AudioSession`: ``input``, ``output``,
``input_rate``, ``output_rate``, ``input_started_at``, ...).
"""

from __future__ import annotations

import binascii
import contextlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import voicepipe
from voicepipe.audio.base import AudioInput
from voicepipe.audio.batching import DEFAULT_BATCH_MS, DEFAULT_QUIET_DBFS, InputBatcher
from voicepipe.audio.pcm import LazyPCM
from voicepipe.clientevents import AudioAppend
from voicepipe.errors import UsageError
from voicepipe.lazyimport import lazy_module
from voicepipe.pipeline import event_fields

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

STASH_KEY = "audio"
BUILTIN_BACKENDS = ("pyaudio", "sounddevice", "wav", "null")
#: backends that are a caller's connection, given to the session by ``voicepipe serve``
TRANSPORT_BACKENDS = ("web", "acs", "twilio")
NULL_BACKEND_NAMES = {None, "", "none", "off", "null"}  # YAML `backend: null` arrives as None
DEFAULT_CHUNK_MS = 20
DEFAULT_ANSWER_TIMEOUT_S = 15.0
END_DRAIN_S = 3.0
#: after a finite input has been sent, how long the session must stay quiet before it ends
SETTLE_S = 1.0
#: the longest a finished input waits for one answer to finish generating
MAX_ANSWER_S = 600.0
#: items remembered for barge-in and milestones
MAX_ITEMS = 200
_SETTINGS_KEYS = ("chunk_ms", "batch_ms", "quiet_dbfs", "truncate", "echo_reference", "input", "output")


# -- backends ---------------------------------------------------------------------------------------


@voicepipe.hookimpl
def voicepipe_audio_backend(name: str, direction: str, options: Mapping[str, Any], ctx: Any = None) -> Any:
    """The built-in backends: ``pyaudio``, ``sounddevice``, ``wav``, ``null``, and the callers'
    transports under ``voicepipe serve`` (``web``, ``acs``, ``twilio``)."""
    key = "null" if name in NULL_BACKEND_NAMES else str(name).lower()
    is_input = direction == "input"
    if key in TRANSPORT_BACKENDS:
        return _transport_backend(key, direction, getattr(ctx, "transport", None))
    if key == "null":
        from voicepipe.audio.null import NullInput, NullOutput

        return NullInput(options) if is_input else NullOutput(options)
    if key == "wav":
        from voicepipe.audio.wav import WavInput, WavOutput

        return WavInput(options) if is_input else WavOutput(options)
    if key == "pyaudio":
        from voicepipe.audio.pyaudio_backend import PyAudioInput, PyAudioOutput

        return PyAudioInput(options) if is_input else PyAudioOutput(options)
    if key == "sounddevice":
        from voicepipe.audio.sounddevice_backend import SoundDeviceInput, SoundDeviceOutput

        return SoundDeviceInput(options) if is_input else SoundDeviceOutput(options)
    return None


def _transport_backend(kind: str, direction: str, transport: Any) -> Any:
    """The caller's side of the session: the transport's input or output."""
    if transport is None:
        raise UsageError(
            f"audio.{direction}.backend: {kind!r} is a caller's connection, which only `voicepipe serve` "
            "provides; serve this profile, or choose pyaudio, sounddevice, wav or null to run it here"
        )
    return transport.input if direction == "input" else transport.output


# -- settings ---------------------------------------------------------------------------------------


def audio_settings(profile: Any) -> dict:
    """The profile's ``audio:`` section as a dict (empty when absent)."""
    section = getattr(profile, "audio", None)
    if section is None and hasattr(profile, "section"):
        section = profile.section("audio")
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise UsageError(f"audio: expected a mapping of settings, got {section!r}")
    return dict(section)


def _direction_settings(settings: Mapping[str, Any], direction: str) -> tuple[str, dict]:
    raw = settings.get(direction)
    if raw is None:
        return "null", {}
    if isinstance(raw, str):
        return raw, {}
    if not isinstance(raw, Mapping):
        raise UsageError(f"audio.{direction}: expected a mapping like {{backend: wav, file: x.wav}}, got {raw!r}")
    options = dict(raw)
    name = options.pop("backend", None)
    if name is not None and not isinstance(name, str):
        raise UsageError(f"audio.{direction}.backend: expected a backend name ({', '.join(BUILTIN_BACKENDS)}), got {name!r}")
    return ("null" if name in NULL_BACKEND_NAMES else name), options


def _resolve_file(value: Any, base_dir: Any, run_dir: Optional[Path]) -> Any:
    if not isinstance(value, (str, Path)):
        return value
    text = str(value)
    if run_dir is not None:
        text = text.replace("{run_dir}", str(run_dir))
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or Path.cwd()) / path
    return path


def _file_folders(profile: Any) -> Any:
    """What a relative ``audio.<direction>.file`` is relative to: the profile file that set it."""
    dir_of = getattr(profile, "dir_of", None)
    if dir_of is None:
        return getattr(profile, "base_dir", None)
    return lambda direction: dir_of("audio", direction, "file")


def _flag(settings: Mapping[str, Any], key: str) -> Optional[bool]:
    value = settings.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise UsageError(f"audio.{key}: expected true or false, got {value!r}")


def _client_echo_reference(session: Mapping[str, Any]) -> bool:
    ec = session.get("input_audio_echo_cancellation") or {}
    if not isinstance(ec, Mapping):
        return False
    source = getattr(ec.get("reference_source"), "value", ec.get("reference_source"))
    return str(source or "").lower() == "client" and ec.get("channels") == 2


@voicepipe.hookimpl
def voicepipe_session_config(profile: Any, session: Any) -> None:
    """``audio.echo_reference: true`` asks the service for a client echo reference."""
    try:
        wanted = audio_settings(profile).get("echo_reference") is True
    except UsageError:
        return  # reported at session start
    if not wanted:
        return
    ec = session.get("input_audio_echo_cancellation")
    ec = dict(ec) if ec else {"type": "server_echo_cancellation"}
    ec.update(reference_source="client", channels=2)
    session["input_audio_echo_cancellation"] = ec


def _number(section: Mapping[str, Any], key: str, default: float, in_range: Callable[[float], bool], expected: str) -> float:
    value = section.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not in_range(value):
        raise UsageError(f"audio.{key}: expected {expected}, got {value!r}")
    return float(value)


class AudioSettings:
    """The ``audio:`` section, checked. ``run_dir`` ``None`` (at configure time) leaves
    ``{run_dir}`` in file names as it is."""

    def __init__(self, section: Mapping[str, Any], base_dir: Any, run_dir: Optional[Path] = None):
        self.unknown = [key for key in section if key not in _SETTINGS_KEYS]
        self.chunk_ms = _number(section, "chunk_ms", DEFAULT_CHUNK_MS, lambda v: 0 < v <= 1000,
                                "milliseconds between 1 and 1000")
        self.batch_ms = _number(section, "batch_ms", DEFAULT_BATCH_MS, lambda v: 0 <= v <= 1000,
                                "milliseconds from 0 to 1000")
        self.quiet_dbfs = _number(section, "quiet_dbfs", DEFAULT_QUIET_DBFS, lambda v: -96 <= v <= 0,
                                  "a level in dBFS from -96 to 0")
        self.truncate = _flag(section, "truncate")
        self.echo_reference = bool(_flag(section, "echo_reference"))
        self.input_backend, self.input_options = _direction_settings(section, "input")
        self.output_backend, self.output_options = _direction_settings(section, "output")
        for direction, options in (("input", self.input_options), ("output", self.output_options)):
            if "file" in options:
                folder = base_dir(direction) if callable(base_dir) else base_dir
                options["file"] = _resolve_file(options["file"], folder, run_dir)
        timeout = self.input_options.pop("answer_timeout_s", DEFAULT_ANSWER_TIMEOUT_S)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise UsageError(f"audio.input.answer_timeout_s: expected seconds > 0, got {timeout!r}")
        self.answer_timeout_s = float(timeout)


@voicepipe.hookimpl
def voicepipe_configure(profile: Any) -> None:
    """Check the audio settings before anything connects: option types, backend options, and that
    an input file exists and can be read. Devices are opened only when the session starts."""
    settings = AudioSettings(audio_settings(profile), _file_folders(profile))
    for direction, name, options in (
        ("input", settings.input_backend, settings.input_options),
        ("output", settings.output_backend, settings.output_options),
    ):
        if name in BUILTIN_BACKENDS and not any("{run_dir}" in str(v) for v in options.values()):
            voicepipe_audio_backend(name, direction, options)  # the constructors check their options


# -- the session ------------------------------------------------------------------------------------


class _Item:
    """What the plugin knows of one assistant item with audio."""

    __slots__ = ("item_id", "response_id", "generated_bytes", "complete", "started", "done")

    def __init__(self, item_id: str, response_id: Optional[str]):
        self.item_id = item_id
        self.response_id = response_id
        self.generated_bytes = 0  # PCM16 received
        self.complete = False  # no more audio will come
        self.started = False  # playback.started reported
        self.done = False  # finished or interrupted: nothing more to report or truncate


class AudioSession:
    """The audio of one session: the backends, the playback state, barge-in. ``ctx.stash["audio"]``."""

    def __init__(self, ctx: Any, section: Mapping[str, Any]):
        self.ctx = ctx
        self.log = ctx.log
        settings = AudioSettings(section, _file_folders(ctx.profile), ctx.run_dir)
        if settings.unknown:
            ctx.log.warning("audio_unknown_settings", keys=settings.unknown, known=list(_SETTINGS_KEYS))
        self.chunk_ms = settings.chunk_ms
        self.batch_ms = settings.batch_ms
        self.quiet_dbfs = settings.quiet_dbfs
        self.truncate_setting = settings.truncate
        self.echo_setting = settings.echo_reference
        self.input_backend, self.input_options = settings.input_backend, settings.input_options
        self.output_backend, self.output_options = settings.output_backend, settings.output_options
        self.answer_timeout_s = settings.answer_timeout_s

        self.input: Any = None
        self.output: Any = None
        self.input_rate = 0
        self.output_rate = 0
        self.input_format = "pcm16"
        self.output_format = "pcm16"
        #: ctx.now() time at which the first input sample was captured
        self.input_started_at: Optional[float] = None
        self.output_ready = False
        #: hand the output undecoded audio (a LazyPCM): it only counts samples, and the format is PCM16
        self.lazy_pcm = False
        self.echo: Any = None
        #: called with each microphone chunk (PCM16) when someone asked for it: the console's level meter
        self.level_listener: Optional[Callable[[bytes], None]] = None
        #: the input's :class:`voicepipe.audio.batching.InputBatcher`, when it has one
        self.batcher: Optional[InputBatcher] = None

        # what the session's turn detection does on barge-in (from session.updated)
        self.interrupt_response = True
        self.auto_truncate = False

        self.items: "OrderedDict[str, _Item]" = OrderedDict()
        self.active_response: Optional[str] = None
        self.interrupted_responses: set = set()
        self.speech_active = False
        self.awaiting_response = False
        self.followup_expected = False
        self.responses_done = 0
        self.barge_ins = 0
        self.appends_queued = 0
        self.appends_sent = 0

        self._pending_writes: list[tuple[bytes, str]] = []
        self._started = False
        self._ending = False
        self._task: Optional[asyncio.Task] = None
        self._changed: Optional[asyncio.Event] = None
        self._version = 0  # counts state changes, so a wait can tell whether anything happened

    # -- start -------------------------------------------------------------------------------------

    @property
    def client_truncates(self) -> bool:
        """Whether this client sends truncate/delete on barge-in."""
        if self.truncate_setting is not None:
            return self.truncate_setting
        return not self.auto_truncate

    def create_backends(self) -> None:
        self.input = self._create("input", self.input_backend, self.input_options)
        self.output = self._create("output", self.output_backend, self.output_options)

    @property
    def input_realtime(self) -> bool:
        """Whether input audio is captured (or paced) in real time, so that its sample positions
        are times: a WAV file read with ``realtime: false`` is not."""
        return getattr(self.input, "realtime", True) is not False

    def _create(self, direction: str, name: str, options: dict) -> Any:
        hook = getattr(self.ctx, "hook", None)
        relay = getattr(hook, "voicepipe_audio_backend", None)
        if relay is not None:
            backend = relay(name=name, direction=direction, options=options, ctx=self.ctx)
        else:
            backend = voicepipe_audio_backend(name, direction, options, self.ctx)
        if backend is None:
            raise UsageError(
                f"audio.{direction}.backend: unknown backend {name!r} "
                f"(built in: {', '.join(BUILTIN_BACKENDS)}; a plugin may provide others)"
            )
        return backend

    async def probe(self) -> None:
        """Check the devices at the rates the profile asks for, before connecting (a backend that
        can be checked offers ``probe(sample_rate)``)."""
        from voicepipe.audio.pcm import input_rate, output_rate

        session = dict(getattr(self.ctx.profile, "session", None) or {})
        for backend, rate in ((self.output, output_rate(session)), (self.input, input_rate(session))):
            probe = getattr(backend, "probe", None)
            if probe is None:
                continue
            try:
                await probe(rate)
            except UsageError as exc:
                self.fail(exc)
                return

    def fail(self, exc: BaseException) -> None:
        """Report an audio problem as one line and end the session (a usage error: exit code 2)."""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        self.log.error("audio_error", message=message)
        self.ctx.fail(message)

    def on_session_updated(self, session: Mapping[str, Any]) -> None:
        from voicepipe.audio.pcm import G711_FORMATS, input_format, input_rate, output_format, output_rate

        detection = session.get("turn_detection") or {}
        if isinstance(detection, Mapping):
            self.interrupt_response = detection.get("interrupt_response") is not False
            self.auto_truncate = bool(detection.get("auto_truncate"))
        if self._started:
            if (input_rate(session), output_rate(session)) != (self.input_rate, self.output_rate):
                self.log.warning(
                    "audio_rates_changed",
                    message="the session's audio formats changed after audio started; the first ones stay in use",
                )
            return
        self._started = True
        self.input_rate, self.output_rate = input_rate(session), output_rate(session)
        self.input_format, self.output_format = input_format(session), output_format(session)
        self.lazy_pcm = self.output_format not in G711_FORMATS and getattr(self.output, "accepts_lazy_pcm", False) is True
        if self.echo_setting or _client_echo_reference(session):
            if self.input_format in G711_FORMATS:
                self.log.warning("echo_reference_off", message="a client echo reference needs pcm16 input, not "
                                 f"{self.input_format}; sending mono")
            else:
                from voicepipe.audio.echo import EchoReference

                self.echo = EchoReference(self.input_rate)
        self._changed = asyncio.Event()
        self._task = self.ctx.spawn(self._run(), name="audio")

    async def _run(self) -> None:
        from voicepipe.audio.pcm import frames_for_ms

        try:
            self.output.on_playback = self._on_backend_playback
            if self.echo is not None:
                self.output.on_played = self.echo.played
            await self.output.open(self.output_rate)
            self.output_ready = True
            pending, self._pending_writes = self._pending_writes, []
            for pcm, item_id in pending:
                self.output.write(pcm, item_id)
            if self._ending:
                return
            batcher = InputBatcher(self.chunk_ms, self.batch_ms, self.quiet_dbfs)
            if batcher.enabled and isinstance(self.input, AudioInput):
                self.input.batcher = self.batcher = batcher
            await self.input.open(self.input_rate, frames_for_ms(self.chunk_ms, self.input_rate))
        except UsageError as exc:
            self.fail(exc)
            return
        except Exception as exc:  # a third-party backend's bug: one line, the traceback in the log file
            self.log.error("audio_open_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            self.ctx.stop("error")
            return
        self.log.info(
            "audio_started",
            input=self.input_backend,
            output=self.output_backend,
            input_rate=self.input_rate,
            output_rate=self.output_rate,
            echo_reference=self.echo is not None,
        )
        await self._stream_input()

    # -- input -------------------------------------------------------------------------------------

    async def _stream_input(self) -> None:
        from voicepipe.audio.pcm import G711_FORMATS, SAMPLE_WIDTH, g711_encode, interleave

        send = self.ctx.send
        rate = self.input_rate
        echo = self.echo
        codec = self.input_format if self.input_format in G711_FORMATS else None
        level = self.level_listener
        latency = float(getattr(self.input, "latency_s", 0.0) or 0.0)
        # a virtual output clock moves lazily: bring it to now before reading what it played
        catch_up = getattr(self.output, "advance", None) if echo is not None else None
        first = True
        async for chunk in self.input:
            if first:
                first = False
                self.input_started_at = self.ctx.now() - len(chunk) / SAMPLE_WIDTH / rate - latency
            if level is not None:
                level(chunk)
            if echo is not None:
                if catch_up is not None:
                    catch_up()
                frames = len(chunk) // SAMPLE_WIDTH
                captured_from = time.monotonic() - latency - frames / rate
                chunk = interleave(chunk, echo.window(captured_from, frames))
            elif codec is not None:
                chunk = g711_encode(chunk, codec)
            self.appends_queued += 1  # first: sending may report the append as sent at once
            send(AudioAppend(chunk))  # {"type": "input_audio_buffer.append", "audio": base64}
        if not self._ending:
            await self._finish_after_input()

    def on_reconnected(self, buffered_audio_s: float) -> None:
        """A new connection's audio timeline (``audio_end_ms``) starts again at zero, with the
        audio buffered during the gap: move the capture origin there."""
        if self.input_started_at is not None:
            latency = float(getattr(self.input, "latency_s", 0.0) or 0.0)
            self.input_started_at = self.ctx.now() - latency - buffered_audio_s
        # what was appended before now was dropped in the gap, or leaves first on the new connection
        self.appends_sent = self.appends_queued
        self.speech_active = self.awaiting_response = self.followup_expected = False
        if self.active_response is not None:
            # the answer in progress went with the old connection: it is over, as far as it got
            self.active_response = None
            self.responses_done += 1
        self._bump()

    def on_append_sent(self) -> None:
        # capped: after a reconnect the audio kept from the gap is sent on top of what was counted
        self.appends_sent = min(self.appends_sent + 1, self.appends_queued)
        if self.appends_sent == self.appends_queued and self._changed is not None:
            self._changed.set()

    async def _finish_after_input(self) -> None:
        """The input (a file) has ended: wait until the service has answered and the answer has
        played out, then end the session."""
        self.log.info("audio_input_finished")
        # the last chunks may still wait in the send queue: the service has not heard them yet
        while not self._ending and self.appends_sent < self.appends_queued:
            if not await self._wait_for_change(self.answer_timeout_s):
                break
        while not self._ending:
            if self.active_response is not None:
                if not await self._wait_for_change(MAX_ANSWER_S):
                    break
                continue
            if self.speech_active or self.awaiting_response or self.followup_expected or not self.responses_done:
                if not await self._wait_for_change(self.answer_timeout_s):
                    self.log.warning(
                        "no_answer_after_input",
                        message=f"nothing more came within {self.answer_timeout_s:g} s after the input ended",
                        hint="add audio.input.trailing_silence_ms so the service hears the end of the turn",
                    )
                    break
                continue
            # quiet: give the service a moment to react to the last audio it received
            if await self._wait_for_change(SETTLE_S):
                continue
            version = self._version
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.output.drain(), self._unplayed_s() + 5.0)
            if version == self._version:
                break
        if not self._ending:
            self.ctx.stop("input_finished")

    def _bump(self) -> None:
        self._version += 1
        if self.batcher is not None:  # while an answer is in progress, a barge-in must not wait
            self.batcher.answering = self.active_response is not None or any(
                not item.done and item.generated_bytes for item in self.items.values()
            )
        if self._changed is not None:
            self._changed.set()

    async def _wait_for_change(self, timeout: float) -> bool:
        changed = self._changed
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _unplayed_s(self) -> float:
        total = 0.0
        for item in self.items.values():
            if not item.done:
                total += max(self._generated_ms(item) - self._played_ms(item.item_id), 0.0)
        return total / 1000.0

    # -- server events -----------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        event = event_fields(event)
        kind = event.get("type")
        if kind == "response.audio.delta" or kind == "response.output_audio.delta":  # the GA name too
            self._on_delta(event)
        elif kind == "input_audio_buffer.speech_started":
            self.speech_active = True
            self._barge_in()
            self._bump()
        elif kind == "input_audio_buffer.speech_stopped" or kind == "input_audio_buffer.committed":
            self.speech_active = False
            self.awaiting_response = True
            self._bump()
        elif kind == "response.created":
            self.active_response = (event.get("response") or {}).get("id")
            self.awaiting_response = False
            self.followup_expected = False
            self._bump()
        elif kind in ("response.audio.done", "response.output_audio.done", "response.output_item.done"):
            item_id = event.get("item_id") or (event.get("item") or {}).get("id")
            item = self.items.get(item_id)
            if item is not None:
                item.complete = True
                self._maybe_finished(item)
        elif kind == "response.done":
            self._on_response_done(event.get("response") or {})
        elif kind == "session.updated":
            self.on_session_updated(event.get("session") or {})

    def _on_delta(self, event: Any) -> None:
        response_id = event.get("response_id")
        if response_id in self.interrupted_responses:
            return
        item_id = event.get("item_id") or ""
        item = self.items.get(item_id)
        if item is not None and item.done:
            return  # interrupted: its late audio is neither decoded nor played
        delta = event.get("delta")
        # an output that only counts samples gets the base64 text undecoded (its length is known
        # from the text); otherwise this is the one decode of the delta: the other built-ins take
        # lengths from the base64 text
        pcm = LazyPCM.of(delta) if self.lazy_pcm and type(delta) is str else None
        if pcm is None:
            try:
                pcm = binascii.a2b_base64(delta) if isinstance(delta, str) else bytes(delta or b"")
            except (binascii.Error, TypeError, ValueError):
                self.log.warning("audio_delta_skipped", item_id=item_id, problem="not base64 audio")
                return
            if self.output_format in ("g711_ulaw", "g711_alaw"):
                from voicepipe.audio.pcm import g711_decode

                pcm = g711_decode(pcm, self.output_format)
        if item is None:
            item = self.items[item_id] = _Item(item_id, response_id)
            self._forget_old_items()
        item.generated_bytes += len(pcm)
        if self.output_ready:
            self.output.write(pcm, item_id)
        else:
            self._pending_writes.append((pcm, item_id))

    def _on_response_done(self, response: Mapping[str, Any]) -> None:
        response_id = response.get("id")
        if response_id is None or response_id == self.active_response:
            self.active_response = None
        self.responses_done += 1
        outputs = response.get("output") or []
        self.followup_expected = response.get("status") == "completed" and any(
            isinstance(o, Mapping) and o.get("type") == "function_call" for o in outputs
        )
        for item in list(self.items.values()):
            if item.response_id == response_id and not item.complete:
                item.complete = True
                self._maybe_finished(item)
        self._bump()

    def _forget_old_items(self) -> None:
        while len(self.items) > MAX_ITEMS:
            oldest = next(iter(self.items))
            if not self.items[oldest].done:
                break
            del self.items[oldest]

    # -- barge-in ----------------------------------------------------------------------------------

    def _barge_in(self) -> None:
        cleared = self.output.clear() if self.output_ready else None
        self._pending_writes.clear()
        active = self.active_response
        if active is not None:
            self.interrupted_responses.add(active)
        playing = [item for item in self.items.values() if not item.done and item.generated_bytes]
        if playing or active is not None:
            self.barge_ins += 1
        for item in playing:
            in_queue = cleared is not None and cleared.item_id == item.item_id
            if item.complete and not in_queue and self._fully_played(item):
                self._maybe_finished(item)  # it had already ended: nothing to cut
                continue
            generated = self._generated_ms(item)
            backend_played = cleared.played_ms if in_queue else self._played_ms(item.item_id)
            # the figure the milestone reports (to 0.1 ms) is the one the truncate sends, so the
            # transcript's and the metrics' cut never differ from the service's by a millisecond
            played = round(min(backend_played, generated), 1)
            item.done = True
            if item.response_id is not None:
                self.interrupted_responses.add(item.response_id)
            self._notify("playback.interrupted", item, played)
            if not self.client_truncates:
                continue
            if int(played) <= 0:
                self.ctx.send({"type": "conversation.item.delete", "item_id": item.item_id})
            else:
                self.ctx.send(
                    {"type": "conversation.item.truncate", "item_id": item.item_id, "content_index": 0, "audio_end_ms": int(played)}
                )
        if active is not None and not self.interrupt_response:
            self.ctx.send({"type": "response.cancel", "response_id": active})

    # -- playback milestones -----------------------------------------------------------------------

    def _on_backend_playback(self, kind: str, item_id: str) -> None:
        item = self.items.get(item_id)
        if item is None or item.done:
            return
        if kind == "started":
            self._report_started(item)
        elif kind == "finished":
            self._maybe_finished(item)

    def _report_started(self, item: _Item) -> None:
        if not item.started:
            item.started = True
            self._notify("playback.started", item, self._played_ms(item.item_id))

    def _maybe_finished(self, item: _Item) -> None:
        if item.done or not item.complete or not self.output_ready or not self._fully_played(item):
            return
        self._report_started(item)
        item.done = True
        self._notify("playback.finished", item, self._played_ms(item.item_id))
        self._bump()

    def _fully_played(self, item: _Item) -> bool:
        playback = self.output.playback(item.item_id)
        if playback is not None:
            return playback.played_ms >= playback.written_ms - 1e-6
        return self._played_ms(item.item_id) >= self._generated_ms(item) - 1.0

    def _played_ms(self, item_id: str) -> float:
        if not self.output_ready:
            return 0.0
        return float(self.output.played_ms(item_id))

    def _generated_ms(self, item: _Item) -> float:
        return item.generated_bytes / 2 / max(self.output_rate, 1) * 1000.0

    def _notify(self, kind: str, item: _Item, played_ms: float) -> None:
        self.ctx.notify_playback(
            {
                "type": kind,
                "item_id": item.item_id,
                "response_id": item.response_id,
                "played_ms": round(played_ms, 1),
                "generated_ms": round(self._generated_ms(item), 1),
                "at": self.ctx.now(),
            }
        )

    # -- end ---------------------------------------------------------------------------------------

    async def end(self, reason: str) -> None:
        """Stop the input, let the output play out (briefly, not after a user interrupt), close both."""
        self._ending = True
        self._bump()
        try:
            if self.input is not None:
                with contextlib.suppress(Exception):
                    await self.input.close()
            task = self._task
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 1.0)
            if self.output is not None:
                if self.output_ready and reason != "user":
                    with contextlib.suppress(asyncio.TimeoutError, Exception):
                        await asyncio.wait_for(self.output.drain(), END_DRAIN_S)
                with contextlib.suppress(Exception):
                    await self.output.close()
        except Exception as exc:  # never let the end of audio break the end of the session
            self.log.warning("audio_close_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if self.output is not None:  # its listeners are this session's methods: a reference cycle
                self.output.on_playback = self.output.on_played = None


# -- hooks -----------------------------------------------------------------------------------------


def _create_session(ctx: Any) -> Optional[AudioSession]:
    try:
        audio = AudioSession(ctx, audio_settings(ctx.profile))
        ctx.stash[STASH_KEY] = audio
        audio.create_backends()
    except UsageError as exc:
        ctx.stash.pop(STASH_KEY, None)
        ctx.log.error("audio_error", message=str(exc))
        ctx.fail(str(exc))
        return None
    return audio


@voicepipe.hookimpl
def voicepipe_session_prepare(ctx: Any) -> Any:
    """The backends are made, and devices checked, before anything connects."""
    audio = _create_session(ctx)
    return audio.probe() if audio is not None else None


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    if STASH_KEY not in ctx.stash:  # not prepared (a replay, a test's harness)
        _create_session(ctx)


@voicepipe.hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    audio = ctx.stash.get(STASH_KEY)
    if audio is not None:
        audio.on_event(event)


@voicepipe.hookimpl
def voicepipe_client_event(event: Mapping[str, Any], ctx: Any) -> None:
    if event.get("type") == "input_audio_buffer.append":
        audio = ctx.stash.get(STASH_KEY)
        if audio is not None:
            audio.on_append_sent()


@voicepipe.hookimpl
def voicepipe_reconnected(ctx: Any, buffered_audio_s: float) -> None:
    audio = ctx.stash.get(STASH_KEY)
    if audio is not None:
        audio.on_reconnected(buffered_audio_s)


@voicepipe.hookimpl
def voicepipe_session_end(ctx: Any, reason: str) -> Any:
    audio = ctx.stash.get(STASH_KEY)
    if audio is None:
        return None
    return audio.end(reason)
