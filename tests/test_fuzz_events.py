"""Hostile server events: random, malformed and out-of-order events through the built-in plugins.

Every event goes through the real :class:`~voicepipe.pipeline.Pipeline` exactly as a live session
or a replay dispatches it (an SDK ``ServerEvent``), so a plugin that raises on bad input shows up
in the pipeline's error counter. The acceptable outcomes are: the event is handled, or it is
logged and skipped; the files the session writes stay one JSON object per line.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import voicepipe
from fuzzing import fuzz_property, properties, run_randomized
from session_script import NullLog, cassette_dir
from voicepipe.errors import UsageError
from voicepipe.plugins import configure_plugins, make_plugin_manager
from voicepipe.profile import Profile
from voicepipe.replay import read_recording, replay

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CASSETTES = sorted(cassette_dir().glob("test_*.yaml"))
RECORDED = [[r["event"] for r in read_recording(path) if r["direction"] == "server"] for path in CASSETTES]
#: the JSON-lines files a session writes
JSONL_FILES = ("events.jsonl", "transcript.jsonl", "metrics.jsonl")

OTHER_TYPES = [
    "error", "warning", "input_audio_buffer.cleared", "conversation.item.truncated",
    "conversation.item.deleted", "conversation.item.input_audio_transcription.failed",
    "response.output_audio.delta", "response.output_audio_transcript.delta", "response.output_text.delta",
    "response.output_audio_transcript.done", "response.output_text.done", "rate_limits.updated",
    "session.avatar.connecting", "", "no.such.event", "response", "session",
]
EVENT_TYPES = sorted({event["type"] for events in RECORDED for event in events} | set(OTHER_TYPES))
FIELDS = [
    "event_id", "item_id", "response_id", "previous_item_id", "output_index", "content_index", "delta",
    "transcript", "text", "arguments", "name", "call_id", "audio_start_ms", "audio_end_ms", "item",
    "response", "session", "error", "warning", "part", "status", "output", "usage", "status_details",
]
IDS = st.sampled_from(["item_1", "item_2", "resp_1", "resp_2", "call_1", "sess_1", ""])


# -- strategies ----------------------------------------------------------------------------------------

scalars = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 2**70, -(2**70), 0.5, -1e-300, 1e308, math.nan, math.inf, -math.inf,
                     "", "x" * 100_000, "\u2028", "\x00", "\U0001f600"]),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    IDS,
    st.sampled_from(EVENT_TYPES),
    st.sampled_from(["completed", "cancelled", "failed", "incomplete", "in_progress", "function_call",
                     "message", "assistant", "user", "input_audio", "input_text", "audio", "text"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS + ["id", "type", "role", "content", "x"]), children, max_size=4),
    ),
    max_leaves=6,
)
#: audio deltas: valid base64, base64 of an odd length, broken padding, not base64 at all
audio_deltas = st.one_of(
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["!!!", "QUJD=", "Q", "QQ", "QQ=", "=", "====", "QUJ\nD", "not base64 at all", "\u00e9\u00e9"]),
    json_values,
)


@st.composite
def events(draw: Any) -> dict:
    """One server event: a known or unknown type with random, missing, null or wrong-typed fields."""
    event: dict = {"type": draw(st.one_of(st.sampled_from(EVENT_TYPES), scalars))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        event[name] = draw(audio_deltas if name == "delta" else json_values)
    return event


def containers(value: Any) -> list:
    """Every dict and list inside ``value`` (itself included), outermost first."""
    found = []
    if isinstance(value, (dict, list)):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            found.extend(containers(child))
    return found


#: keys the built-in plugins read inside events' objects
READ_KEYS = {"id", "type", "role", "status", "content", "text", "transcript", "output", "call_id", "name", "arguments",
             "usage", "status_details", "reason", "error", "message", "code", "turn_detection", "modalities", "voice",
             "input_audio_transcription", "output_audio_format", "output_audio_sampling_rate", "audio_end_ms"}


def wrong_type(value: Any) -> st.SearchStrategy:
    """Values of another JSON type than ``value`` (an object for text, text for an object ...), or null."""
    kinds = {
        str: st.sampled_from([["item_1"], {"id": "x"}, 0, None, True]),
        dict: st.sampled_from(["text", ["a"], 0, None, []]),
        list: st.sampled_from(["text", {"a": 1}, 0, None, [None], ["text"], [[]]]),
    }
    return kinds.get(type(value), st.sampled_from(["12", ["a"], {"a": 1}, None, math.nan, -math.inf, 2**70]))


@st.composite
def mutate_inside(draw: Any, event: dict) -> None:
    """Replace (by a value of another type, or any value) or delete one value anywhere inside
    ``event``: ``item.id``, ``item.content[0]``, ``response.output`` ..."""
    slots = [(container, key) for container in containers(event)
             for key in (sorted(container) if isinstance(container, dict) else range(len(container)))]
    read = [(container, key) for container, key in slots
            if key in READ_KEYS or isinstance(container[key], (dict, list)) or isinstance(container, list)]
    if not slots:
        return
    container, key = draw(st.sampled_from(read or slots) if draw(st.booleans()) else st.sampled_from(slots))
    operation = draw(st.sampled_from(["wrong_type", "wrong_type", "any", "delete"]))
    if operation == "wrong_type" or key == "type":
        container[key] = draw(wrong_type(container[key]))
    elif operation == "any":
        container[key] = draw(json_values)
    else:
        del container[key]


@st.composite
def mutated_recording(draw: Any) -> list[dict]:
    """A recorded session's server events, reordered, repeated, dropped, or with values replaced
    anywhere inside them (events of each type as likely to be picked, the many deltas no more)."""
    recorded = copy.deepcopy(draw(st.sampled_from(RECORDED)))
    for _ in range(draw(st.integers(1, 8))):
        kinds = sorted({str(event.get("type")) for event in recorded})
        with_objects = sorted({str(event.get("type")) for event in recorded
                               if any(isinstance(value, (dict, list)) for value in event.values())})
        kind = draw(st.sampled_from(with_objects if with_objects and draw(st.booleans()) else kinds))
        index = draw(st.sampled_from([i for i, event in enumerate(recorded) if str(event.get("type")) == kind]))
        operation = draw(st.sampled_from(["inside", "inside", "inside", "drop", "repeat", "move", "field", "insert"]))
        event = recorded[index]
        if operation == "inside":
            draw(mutate_inside(event))
        elif operation == "drop" and len(recorded) > 1:
            del recorded[index]
        elif operation == "repeat":
            recorded.insert(index, copy.deepcopy(event))
        elif operation == "move":
            recorded.insert(draw(st.integers(0, len(recorded) - 1)), recorded.pop(index))
        elif operation == "field":
            event[draw(st.sampled_from(sorted(event) + FIELDS))] = draw(json_values)
        elif operation == "insert":
            recorded.insert(index, draw(events()))
    return recorded


CLIENT_TYPES = ["input_audio_buffer.append", "response.create", "conversation.item.create",
                "conversation.item.truncate", "session.update", "response.cancel", "no.such.event"]
PLAYBACK_TYPES = ["playback.started", "playback.finished", "playback.interrupted", "playback.unknown"]


@st.composite
def client_event(draw: Any) -> dict:
    """A recorded client event: a known or unknown type, random fields (audio among them)."""
    event: dict = {"type": draw(st.one_of(st.sampled_from(CLIENT_TYPES), scalars))}
    for name in draw(st.lists(st.sampled_from(["audio", "item", "item_id", "response_id", "audio_end_ms"]), unique=True)):
        event[name] = draw(audio_deltas if name == "audio" else json_values)
    return event


@st.composite
def playback_event(draw: Any) -> dict:
    """A recorded playback milestone, its ids and times random."""
    event: dict = {"type": draw(st.one_of(st.sampled_from(PLAYBACK_TYPES), scalars))}
    for name in draw(st.lists(st.sampled_from(["item_id", "response_id", "played_ms", "generated_ms", "at"]),
                              unique=True)):
        event[name] = draw(st.one_of(IDS, st.floats(0, 1e4), json_values))
    return event


@st.composite
def meta_event(draw: Any) -> dict:
    """A recording's ``recording.started`` record with random clock origin, start time and flags."""
    event: dict = {"type": "recording.started"}
    for name in draw(st.lists(st.sampled_from(["clock_origin", "started_at", "playback_expected"]), unique=True)):
        event[name] = draw(json_values)
    return event


@st.composite
def recording(draw: Any) -> list[dict]:
    """A recording: server events with client events, playback milestones and meta records among
    them, at increasing or nonsensical times."""
    records = []
    t = 0.0
    for raw in draw(st.lists(events(), min_size=1, max_size=8)):
        for direction, strategy in draw(st.lists(st.sampled_from(
                [("client", client_event()), ("local", playback_event()), ("meta", meta_event())]), max_size=2)):
            records.append({"t": t, "direction": direction, "event": draw(strategy)})
        t += draw(st.floats(0, 5))
        records.append({"t": draw(st.one_of(st.just(round(t, 3)), json_values)), "direction": "server", "event": raw})
    return records


# -- driving a session ---------------------------------------------------------------------------------


class LetSpawnedWorkRun:
    """A plugin whose session end yields to the loop, so work spawned by events (tool calls) runs
    before the session's tasks are cancelled."""

    @voicepipe.hookimpl(tryfirst=True)
    async def voicepipe_session_end(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


def fuzz_profile(folder: Path) -> Profile:
    """A profile for every built-in; its audio output needs no sound card."""
    data = {"audio": {"input": "null", "output": {"backend": "null", "realtime": False}}, "metrics": {"table": False}}
    return Profile(folder / "fuzz.yaml", data)


def write_recording(records: list[dict], path: Path) -> Path:
    """``records`` as an ``events.jsonl`` at ``path``."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def replay_records(records: list[dict], folder: Path, without: Iterable[str] = ("audio",)) -> NullLog:
    """Write ``records`` as a recording and replay it into ``folder/run`` through the built-ins
    (less ``without``); the replay's log."""
    source = write_recording(records, folder / "recording.jsonl")
    profile = fuzz_profile(folder)
    pm = make_plugin_manager(profile, autoload=False, without=tuple(without))
    pm.add(LetSpawnedWorkRun(), "let-spawned-work-run", "test")
    configure_plugins(pm, profile)
    log = NullLog()
    asyncio.run(replay(profile, source, folder / "run", pm=pm, log=log))
    return log


def server_records(raw_events: list[dict]) -> list[dict]:
    """Server events as recorder lines, 10 ms apart."""
    return [{"t": round(index * 0.01, 2), "direction": "server", "event": raw} for index, raw in enumerate(raw_events)]


def failures(log: NullLog) -> list:
    """Plugin failures: the pipeline's error reports and background tasks that raised."""
    return [(name, fields.get("plugin"), fields.get("event_type"), fields.get("error"))
            for _, name, fields in log.records if name in ("plugin_error", "background_task_failed")]


def logged(log: NullLog, name: str) -> list[dict]:
    """The fields of every log record named ``name``."""
    return [fields for _, event, fields in log.records if event == name]


def json_or_problem(text: str) -> Any:
    """``text`` read as strict JSON (NaN and Infinity are not JSON), or what is wrong with it."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        return f"not JSON ({exc})"


def json_lines(path: Path) -> list[dict]:
    """The records of a JSON-lines file, checked: \\n ends every record (and nothing else does),
    each is one strict JSON object."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines.pop() == "", f"{path.name}: the last line is not complete"
    records = [json_or_problem(line) for line in lines]
    for number, (line, record) in enumerate(zip(lines, records), 1):
        assert isinstance(record, dict), f"{path.name}:{number}: {record}: {line[:300]}"
    return records


def assert_well_formed(run_dir: Path) -> None:
    """Every JSON-lines file of the run holds one JSON object a line; metrics.json is JSON."""
    for name in JSONL_FILES:
        if (run_dir / name).exists():
            json_lines(run_dir / name)
    summary = run_dir / "metrics.json"
    if summary.exists():
        assert isinstance(json_or_problem(summary.read_text(encoding="utf-8")), dict)


def check_replay(records: list[dict], without: Iterable[str] = ("audio",)) -> None:
    """Replay ``records`` through the built-ins (less ``without``): no plugin fails, the run's files
    stay well-formed."""
    with tempfile.TemporaryDirectory() as folder:
        log = replay_records(records, Path(folder), without)
        assert failures(log) == []
        assert logged(log, "replay_finished")[0]["plugin_errors"] == 0  # the pipeline's error counter
        assert_well_formed(Path(folder) / "run")


# -- properties -----------------------------------------------------------------------------------------


@fuzz_property(FUZZ, raw_events=st.lists(events(), min_size=1, max_size=25))
def test_random_events_never_make_a_plugin_fail(raw_events):
    check_replay(server_records(raw_events))


@fuzz_property(settings(FUZZ, max_examples=120), raw_events=mutated_recording())
def test_mutated_recordings_never_make_a_plugin_fail(raw_events):
    check_replay(server_records(raw_events))


@fuzz_property(FUZZ, records=recording())
def test_recordings_with_nonsense_times_milestones_and_client_events_replay(records):
    check_replay(records)


@fuzz_property(FUZZ, raw_events=st.one_of(mutated_recording(), st.lists(events(), min_size=1, max_size=15)))
def test_with_the_audio_plugin_no_plugin_fails(raw_events):
    check_replay(server_records(raw_events), without=())


@pytest.mark.fuzz
@pytest.mark.parametrize("prop", properties(globals()), ids=lambda prop: prop.__name__)
def test_properties_on_random_examples(prop):
    """``-m fuzz`` only: each property above on new random examples, for a bounded time."""
    run_randomized(prop)


# -- the defects these properties found, as plain examples --------------------------------------------------


def replay_events(tmp_path: Path, raw_events: list[dict],
                  without: Iterable[str] = ("audio",)) -> tuple[NullLog, Path]:
    """Replay server events 10 ms apart; the log and the run folder, checked for well-formed files."""
    log = replay_records(server_records(raw_events), tmp_path, without)
    assert_well_formed(tmp_path / "run")
    return log, tmp_path / "run"


SESSION = {"type": "session.created", "session": {"id": "sess_1", "model": "gpt-realtime"}}


def test_an_event_whose_type_is_not_text_is_skipped_and_logged(tmp_path):
    log, _ = replay_events(tmp_path, [SESSION, {"type": ["response.audio.delta"], "delta": "AAAA"}])
    assert failures(log) == []
    assert logged(log, "malformed_server_event")[0]["problem"] == "'type' is a list, not text"


def test_recorded_times_that_are_not_numbers_are_ignored(tmp_path):
    records = server_records([SESSION, {"type": "input_audio_buffer.speech_started", "item_id": "item_1"}])
    records[1]["t"] = "soon"
    records.append({"t": 1e300, "direction": "local",
                    "event": {"type": "playback.started", "item_id": "item_1", "at": "later"}})
    log = replay_records(records, tmp_path)
    assert failures(log) == []
    assert logged(log, "malformed_playback_event")[0]["problem"] == "at is not a finite number"


def test_a_line_separator_inside_a_text_does_not_split_the_recording(tmp_path):
    events_ = [SESSION,
               {"type": "conversation.item.created", "item": {"id": "item_1", "type": "message", "role": "user",
                                                             "status": "completed",
                                                             "content": [{"type": "input_text", "text": "a\u2028b\x85c"}]}}]
    first = tmp_path / "first"
    first.mkdir()
    replay_events(first, events_)
    again = tmp_path / "again"
    again.mkdir()
    log = NullLog()
    profile = fuzz_profile(again)
    pm = make_plugin_manager(profile, autoload=False, without=("audio",))
    assert asyncio.run(replay(profile, tmp_path / "first" / "run", again / "run", pm=pm, log=log)) == 0
    (record,) = json_lines(again / "run" / "transcript.jsonl")
    assert record["text"] == "a\u2028b\x85c"


def test_an_event_nested_too_deeply_is_skipped_and_logged(tmp_path):
    nested: Any = []
    for _ in range(200):
        nested = [nested]
    log, _ = replay_events(tmp_path, [SESSION, {"type": "response.done", "response": {"id": "r", "usage": nested}}])
    assert failures(log) == []
    assert logged(log, "malformed_server_event")[0]["problem"] == "nested deeper than 64 levels"


def test_a_cassette_of_aliases_repeating_aliases_is_skipped_not_expanded(tmp_path):
    lines = ["interactions:", "- {kind: message, direction: received, data: {type: session.created, session: {id: s}}}",
             "- kind: message", "  direction: received", "  data:", "    type: response.done",
             "    a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    cassette = tmp_path / "bomb.yaml"
    cassette.write_text("\n".join(lines) + "\n")
    log = NullLog()
    profile = fuzz_profile(tmp_path)
    pm = make_plugin_manager(profile, autoload=False, without=("audio",))
    assert asyncio.run(replay(profile, cassette, tmp_path / "run", pm=pm, log=log)) == 0
    assert logged(log, "malformed_server_event")[0]["problem"] == "more than 100000 values"


def test_a_cassette_with_a_bad_tagged_value_is_a_usage_error(tmp_path):
    cassette = tmp_path / "bad.yaml"
    cassette.write_text("interactions:\n- {kind: message, direction: received, at: !!bool maybe, data: {type: x}}\n")
    with pytest.raises(UsageError, match="not a recording"):
        read_recording(cassette)


def test_nan_in_an_event_is_recorded_as_null(tmp_path):
    _, run = replay_events(tmp_path, [SESSION, {"type": "rate_limits.updated", "rate_limits": [{"remaining": math.nan}]}])
    records = json_lines(run / "events.jsonl")
    assert records[2]["event"]["rate_limits"] == [{"remaining": None}]


def user_item(item_id: Any, content: Any) -> dict:
    """A ``conversation.item.created`` for a user message."""
    return {"type": "conversation.item.created",
            "item": {"id": item_id, "type": "message", "role": "user", "status": "completed", "content": content}}


def test_objects_inside_events_with_the_wrong_shape_are_read_as_missing(tmp_path):
    log, run = replay_events(tmp_path, [
        SESSION,
        {"type": "session.updated", "session": {"id": "sess_1", "turn_detection": "server_vad", "modalities": 3,
                                                "output_audio_sampling_rate": 0}},
        user_item("item_1", "Hello"),
        user_item(["item_2"], [{"type": "input_text", "text": "Skipped"}]),
        user_item("item_5", [{"type": "input_text", "text": 7}, "text", {"type": "input_text", "text": "Hi"}]),
        {"type": "response.output_item.added", "response_id": "resp_1", "item": {"id": {"x": 1}, "type": "message"}},
        {"type": "response.output_item.added", "response_id": "resp_1", "item": "item_3"},
        {"type": "response.output_text.delta", "response_id": "resp_1", "item_id": "item_3", "delta": ["Hi"]},
        {"type": "response.output_text.done", "response_id": "resp_1", "item_id": "item_3", "text": {"t": "Hi"}},
        {"type": "response.output_item.done", "response_id": "resp_1", "item": {"id": ["item_3"], "content": 5}},
        {"type": "conversation.item.input_audio_transcription.failed", "item_id": "item_4", "error": "timeout"},
        {"type": "warning", "warning": "slow down"},
        {"type": "response.done", "response": {"id": ["resp_1"], "output": "none", "usage": [1, 2]}},
        {"type": "response.done", "response": {"id": "resp_1", "status": "completed",
                                               "output": [3, {"type": "function_call", "call_id": {"c": 1}}]}},
    ], without=())
    assert failures(log) == []
    texts = [record["text"].strip() for record in json_lines(run / "transcript.jsonl")]
    assert "Hi" in texts and "Skipped" not in texts  # an item whose id is not text never reaches the plugins


def test_a_truncation_at_nan_leaves_no_nan_in_the_transcript(tmp_path):
    answer = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.output_item.added", "response_id": "resp_1", "item": {"id": "item_a", "type": "message"}},
        {"type": "response.audio.delta", "response_id": "resp_1", "item_id": "item_a", "delta": "AAAA" * 1000},
        {"type": "response.audio_transcript.done", "response_id": "resp_1", "item_id": "item_a", "transcript": "One two"},
        {"type": "conversation.item.truncated", "item_id": "item_a", "audio_end_ms": math.nan},
        {"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}},
    ]
    log, run = replay_events(tmp_path, [SESSION] + answer)
    assert failures(log) == []
    (record,) = json_lines(run / "transcript.jsonl")
    assert record["played_ms"] is None and record["interrupted"] is True


def test_usage_of_a_shape_that_contradicts_an_earlier_one_is_not_totalled(tmp_path):
    log, run = replay_events(tmp_path, [
        SESSION,
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": math.inf},
        {"type": "response.done", "response": {"id": "r1", "status": "completed", "usage": {"tokens": {"audio": 3}}}},
        {"type": "response.done", "response": {"id": "r2", "status": "completed", "usage": {"tokens": 5, "x": math.nan}}},
    ])
    assert failures(log) == []
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["tokens"] == {"tokens": {"audio": 3}}


@pytest.mark.parametrize("arguments", ["[1, 2]", "5", "[" * 100_000, '{"city": "London"'])
def test_tool_arguments_that_are_not_a_json_object_get_an_error_output(tmp_path, arguments):
    call = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.function_call_arguments.done", "response_id": "resp_1", "item_id": "item_f",
         "call_id": "call_1", "name": "get_weather", "arguments": arguments},
        {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}},
    ]
    log, _ = replay_events(tmp_path, [SESSION] + call)
    assert failures(log) == []
    assert logged(log, "tool_arguments_not_json") == [{"tool": "get_weather", "call_id": "call_1"}]


def test_a_response_done_whose_id_is_not_text_runs_no_tool_calls(tmp_path):
    log, _ = replay_events(tmp_path, [
        SESSION,
        {"type": "response.function_call_arguments.done", "response_id": "resp_1", "call_id": "call_1", "name": "f",
         "arguments": "{}"},
        {"type": "response.done", "response": {"id": {"x": 1}, "status": "completed"}},
    ])
    assert failures(log) == []
    assert logged(log, "tool_unhandled") == []


def test_events_out_of_order_are_handled(tmp_path):
    delta = {"type": "response.audio.delta", "response_id": "resp_1", "item_id": "item_a", "delta": "AAAA"}
    done = {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}
    log, run = replay_events(tmp_path, [
        delta, SESSION, {"type": "input_audio_buffer.speech_stopped", "item_id": "item_u", "audio_end_ms": 900},
        delta, {"type": "response.created", "response": {"id": "resp_1"}}, done, done, delta,
        {"type": "response.audio_transcript.done", "response_id": "resp_1", "item_id": "item_a", "transcript": "Late"},
    ], without=())
    assert failures(log) == []
    # a stop without a start makes no user turn; the answer done twice is written once
    assert [record["role"] for record in json_lines(run / "transcript.jsonl")] == ["assistant"]


# -- the audio plugin ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", ["Q", "QUJDRA=", "QUJDR"])
def test_audio_plugin_skips_a_delta_that_is_not_base64(tmp_path, delta):
    log, _ = replay_events(tmp_path, [SESSION, {"type": "response.audio.delta", "response_id": "r", "item_id": "i",
                                                "delta": delta}], without=())
    assert failures(log) == []


@pytest.mark.parametrize("event", [
    {"type": "response.audio.done", "item": "item_1"},
    {"type": "response.output_item.done", "item": {"id": {"x": 1}}},
])
def test_audio_plugin_skips_an_item_of_the_wrong_shape(tmp_path, event):
    log, _ = replay_events(tmp_path, [SESSION, event], without=())
    assert failures(log) == []
