"""Replay: a recorded session through the plugins again, offline, with the same results."""

import asyncio
import base64
import json
from pathlib import Path

import pytest
from azure.ai.voicelive.models import ServerEvent, ServerEventResponseAudioDelta

import voicepipe
from session_script import FakeProfile, NullLog, ScriptedSession, audio_profile, cassette_dir, conversation, make_pm
from voicepipe.errors import UsageError
from voicepipe.replay import read_recording, replay

CASSETTES = sorted(cassette_dir().glob("test_*.yaml"))


def run_replay(source, run_dir, *, profile=None, extra=()):
    pm = make_pm(extra=extra)
    return asyncio.run(replay(profile or FakeProfile(name="replay"), Path(source), Path(run_dir), pm=pm, log=NullLog()))


def live_run(run_dir, profile=None):
    session = ScriptedSession(run_dir, profile=profile or audio_profile())
    conversation(session)
    session.end("user")
    return session


def test_replay_regenerates_the_live_transcript_exactly(tmp_path):
    live_run(tmp_path / "live")
    assert run_replay(tmp_path / "live", tmp_path / "replayed") == 0
    for name in ("transcript.txt", "transcript.jsonl"):
        live = (tmp_path / "live" / name).read_text(encoding="utf-8").splitlines()
        replayed = (tmp_path / "replayed" / name).read_text(encoding="utf-8").splitlines()
        assert replayed == live, name
    text = (tmp_path / "replayed" / "transcript.txt").read_text(encoding="utf-8")
    assert "Assistant (interrupted at 1.0 s): Tomorrow will be sunny in …" in text


def test_replay_without_the_original_profile_still_matches(tmp_path):
    # the recording says that playback milestones were expected; replay does not need the profile
    live_run(tmp_path / "live")
    assert run_replay(tmp_path / "live" / "events.jsonl", tmp_path / "replayed", profile=FakeProfile()) == 0
    assert (tmp_path / "replayed" / "transcript.txt").read_text() == (tmp_path / "live" / "transcript.txt").read_text()


def test_replay_of_a_replay_records_the_same_server_events(tmp_path):
    live_run(tmp_path / "live")
    run_replay(tmp_path / "live", tmp_path / "replayed")

    def server_lines(folder):
        records = read_recording(folder)
        return [(r["t"], r["event"]["type"]) for r in records if r["direction"] in ("server", "local")]

    assert server_lines(tmp_path / "replayed") == server_lines(tmp_path / "live")


@pytest.mark.parametrize("cassette", CASSETTES, ids=lambda p: p.stem)
def test_every_recorded_real_session_replays(cassette, tmp_path, capsys):
    assert run_replay(cassette, tmp_path) == 0
    lines = (tmp_path / "transcript.txt").read_text(encoding="utf-8").splitlines()
    turns = [line for line in lines if line.startswith("[")]
    assert any(" User: " in line for line in turns)
    assert any(" Assistant: " in line for line in turns)
    assert "# session: sess_" in "\n".join(lines)
    records = [json.loads(line) for line in (tmp_path / "transcript.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["text"] for r in records)
    out = capsys.readouterr().out
    assert "Session ended (replay_finished)." in out


def test_recorded_sessions_give_the_words_that_were_said(tmp_path):
    expected = {
        "test_audio_in_server_vad_turn": ["User: Cześć, nazywam się Marcelo.", "Assistant: Hi Marcelo, nice to meet you!"],
        "test_tool_call_round": [
            "User: What is the weather in London?",
            'Tool call: get_weather {"city": "London"}',
            "Tool result: It is foggy and 12 degrees in London.",
            "Assistant: It's foggy and 12 degrees in London right now.",
        ],
        "test_message_history_seeding": [
            "User: My name is Alice and my favorite color is teal.",
            "Assistant: Nice to meet you, Alice!",
            "User: What is my name and favorite color?",
            "Assistant: Your name is Alice",
        ],
        "test_text_output_modality_returns_text": ["User: Say a short greeting.", "Assistant: Hello there!"],
        "test_text_in_audio_out_turn": ["User: Say a short greeting.", "Assistant: Hola, ¿qué tal?"],
    }
    for cassette in CASSETTES:
        run_dir = tmp_path / cassette.stem
        assert run_replay(cassette, run_dir) == 0
        turns = [line.split("] ", 1)[1] for line in (run_dir / "transcript.txt").read_text().splitlines() if line.startswith("[")]
        wanted = expected[cassette.stem]
        assert len(turns) == len(wanted), turns
        for got, want in zip(turns, wanted):
            assert got.startswith(want)


def test_replay_dispatches_sdk_event_objects_with_silence_for_elided_audio(tmp_path):
    live_run(tmp_path / "live")
    seen = []

    class Probe:
        @voicepipe.hookimpl
        def voicepipe_event(self, event):
            seen.append(event)

    run_replay(tmp_path / "live", tmp_path / "replayed", extra=(("probe", Probe()),))
    assert all(isinstance(e, ServerEvent) for e in seen)
    deltas = [e for e in seen if e.get("type") == "response.audio.delta"]
    assert deltas and all(isinstance(e, ServerEventResponseAudioDelta) for e in deltas)
    assert deltas[0].delta == bytes(4800)  # typed access decodes the silence
    assert base64.b64decode(deltas[0]["delta"]) == bytes(4800)


def test_replay_runs_the_clock_of_the_recording(tmp_path):
    live_run(tmp_path / "live")
    times = {}

    class Probe:
        @voicepipe.hookimpl
        def voicepipe_event(self, event, ctx):
            times.setdefault(event.get("type"), ctx.now())

        @voicepipe.hookimpl
        def voicepipe_playback(self, event, ctx):
            times.setdefault(event["type"], event["at"])

    run_replay(tmp_path / "live", tmp_path / "replayed", extra=(("probe", Probe()),))
    assert times["session.created"] == pytest.approx(0.05)
    assert times["input_audio_buffer.speech_started"] == pytest.approx(1.0)
    assert times["playback.started"] == pytest.approx(2.81)
    assert times["playback.interrupted"] == pytest.approx(7.01)


def test_client_events_are_replayed_and_those_plugins_send_are_dropped(tmp_path):
    live_run(tmp_path / "live")
    client = []

    class Probe:
        @voicepipe.hookimpl
        def voicepipe_client_event(self, event):
            client.append(event["type"])

        @voicepipe.hookimpl
        def voicepipe_event(self, event, ctx):
            if event.get("type") == "response.done":
                ctx.send({"type": "response.create"})

    run_replay(tmp_path / "live", tmp_path / "replayed", extra=(("probe", Probe()),))
    assert client.count("input_audio_buffer.append") == 3
    assert "conversation.item.truncate" in client
    assert "response.create" not in client


def test_a_plugin_can_stop_a_replay_early(tmp_path):
    live_run(tmp_path / "live")
    reasons = []

    class Stopper:
        @voicepipe.hookimpl
        def voicepipe_event(self, event, ctx):
            if event.get("type") == "input_audio_buffer.speech_stopped":
                ctx.stop("error")

        @voicepipe.hookimpl
        def voicepipe_session_end(self, reason):
            reasons.append(reason)

    assert run_replay(tmp_path / "live", tmp_path / "replayed", extra=(("stopper", Stopper()),)) == 1
    assert reasons == ["error"]
    transcript = (tmp_path / "replayed" / "transcript.txt").read_text()
    assert "Tell me about the weather" not in transcript


# -- reading recordings ----------------------------------------------------------------------------


def test_read_recording_accepts_a_folder_its_events_file_and_a_cassette(tmp_path):
    live_run(tmp_path / "live")
    from_folder = read_recording(tmp_path / "live")
    assert from_folder == read_recording(tmp_path / "live" / "events.jsonl")
    directions = {r["direction"] for r in from_folder}
    assert directions == {"meta", "server", "client", "local"}
    cassette = read_recording(cassette_dir() / "test_audio_in_server_vad_turn.yaml")
    server = [r for r in cassette if r["direction"] == "server"]
    assert server[0]["event"]["type"] == "session.created"
    assert all(r["t"] is None for r in server)  # this cassette has no `at` timestamps
    assert any(r["direction"] == "client" for r in cassette)


def test_cassette_timestamps_become_the_replay_clock(tmp_path):
    cassette = tmp_path / "timed.yaml"
    cassette.write_text(
        "interactions:\n"
        "- {kind: message, direction: received, at: 0.5, data: {type: session.created, session: {id: sess_X}}}\n"
        "- {kind: message, direction: received, at: 1.3, data: {type: conversation.item.created,"
        " item: {id: item_1, type: message, role: user, status: completed, content: [{type: input_text, text: Hi}]}}}\n"
    )
    records = read_recording(cassette)
    assert [r["t"] for r in records] == [0.5, 1.3]
    assert run_replay(cassette, tmp_path / "out") == 0
    assert "[00:01.3] User: Hi" in (tmp_path / "out" / "transcript.txt").read_text()


def test_a_recording_cut_by_a_kill_replays_up_to_the_cut(tmp_path):
    live_run(tmp_path / "live")
    events = (tmp_path / "live" / "events.jsonl").read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(events[:40]) + "\n" + events[40][:25])  # the last line half written
    records = read_recording(cut)
    assert len(records) == 40
    assert run_replay(cut, tmp_path / "out") == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"t": 0, "direction": "server", "event": {"type": "session.created"}}\nnot json\n{"t": 1}\n', ":3: neither a recorder line"),
        ("not json\n{torn\n\n", ":1: not a JSON record"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        ('{"t": 0, "direction": "client", "event": {"type": "response.create"}}\n', "no server events"),
        ("interactions: 3\n", "not a recording"),
        ("a: [unclosed\n", "not a recording"),
    ],
)
def test_bad_recordings_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / ("rec.yaml" if content.startswith(("interactions", "a:")) else "rec.jsonl")
    path.write_text(content)
    with pytest.raises(UsageError) as error:
        read_recording(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_folder_without_events_says_so(tmp_path):
    with pytest.raises(UsageError, match="no events.jsonl in this folder"):
        read_recording(tmp_path)
    with pytest.raises(UsageError, match="no such run folder"):
        read_recording(tmp_path / "missing")


@pytest.mark.parametrize("torn_at", [[5], [5, 6, 30], [1, 38]])
def test_torn_lines_in_the_middle_are_skipped_and_the_rest_replays(tmp_path, torn_at):
    live_run(tmp_path / "live")
    events = (tmp_path / "live" / "events.jsonl").read_text().splitlines()[:40]
    whole = len(read_recording(tmp_path / "live" / "events.jsonl")[:40])
    torn = [line[: len(line) // 2] if number in torn_at else line for number, line in enumerate(events)]
    path = tmp_path / "torn.jsonl"
    path.write_text("\n".join(torn) + "\n")
    skipped: list = []
    records = read_recording(path, skipped)
    assert len(records) == whole - len(torn_at)
    assert [message.split(":")[1] for message in skipped] == [str(n + 1) for n in torn_at]
    assert all(message.endswith("; skipped") for message in skipped)
    assert run_replay(path, tmp_path / "out") == 0
