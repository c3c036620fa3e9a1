"""The transcript plugin: what was said, in order, with interruptions cut where playback stopped."""

import json

import pytest

from session_script import (
    SESSION,
    FakeProfile,
    ScriptedSession,
    answer,
    audio_profile,
    conversation,
    finish_answer,
    make_pm,
)
from voicepipe.builtin.transcript import cut_text, format_time


def transcript_session(tmp_path, profile=None, name="run"):
    session = ScriptedSession(tmp_path / name, profile=profile or FakeProfile(), pm=make_pm("transcript"))
    session.start()
    session.server(0.05, "session.created", session=SESSION)
    session.server(0.10, "session.updated", session=SESSION)
    return session


def turn_lines(session):
    text = (session.ctx.run_dir / "transcript.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith("[")]


def records(session):
    path = session.ctx.run_dir / "transcript.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def user_turn(s, t, item, text, *, transcript_at=None):
    s.server(t, "input_audio_buffer.speech_started", audio_start_ms=0, item_id=item)
    s.server(t + 0.5, "input_audio_buffer.speech_stopped", audio_end_ms=500, item_id=item)
    s.server(t + 0.51, "input_audio_buffer.committed", item_id=item)
    s.server(t + 0.52, "conversation.item.created",
             item={"id": item, "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_audio", "transcript": None}]})
    if transcript_at is not None:
        transcribed(s, transcript_at, item, text)


def transcribed(s, t, item, text):
    s.server(t, "conversation.item.input_audio_transcription.completed", item_id=item, content_index=0, transcript=text)


def test_header_has_the_session_and_its_configuration_in_short(tmp_path):
    s = transcript_session(tmp_path)
    s.end()
    header = (tmp_path / "run" / "transcript.txt").read_text().splitlines()
    assert header[0] == "# voicepipe transcript"
    for expected in (
        "# session: sess_TEST1",
        "# model: gpt-realtime",
        "# voice: en-US-Ava:DragonHDLatestNeural (azure-standard)",
        "# turn detection: azure_semantic_vad",
        "# noise reduction: azure_deep_noise_suppression",
        "# echo cancellation: server_echo_cancellation",
        "# input transcription: azure-speech",
        "# modalities: text, audio",
    ):
        assert expected in header
    assert any(line.startswith("# started: ") for line in header)


def test_header_names_the_agent_and_says_what_is_off(tmp_path):
    profile = FakeProfile(connection={"agent": {"name": "concierge", "project": "hotel"}})
    session = {"id": "sess_A", "turn_detection": None, "modalities": ["audio"], "voice": "alloy"}
    s = ScriptedSession(tmp_path, profile=profile, pm=make_pm("transcript"))
    s.start()
    s.server(0.1, "session.updated", session=session)
    s.end()
    header = (tmp_path / "transcript.txt").read_text()
    assert "# agent: concierge (project hotel)" in header
    assert "# voice: alloy" in header
    assert "# turn detection: none (manual turns)" in header
    assert "# noise reduction: off" in header
    assert "# echo cancellation: off" in header


def test_a_conversation_reads_in_the_order_it_happened(tmp_path):
    s = ScriptedSession(tmp_path, profile=audio_profile(), pm=make_pm("transcript"))
    conversation(s)
    s.end()
    assert [line.split("] ", 1)[1] for line in turn_lines(s)] == [
        "User: Hi, who are you?",
        "Assistant: Hello there, how can I help?",
        "User: Tell me about the weather tomorrow.",
        "Assistant (interrupted at 1.0 s): Tomorrow will be sunny in …",
        "User: Stop, thanks.",
        "User: Weather in London?",
        'Tool call: get_weather {"city": "London"}',
        "Tool result: Foggy, 12 degrees.",
        "Assistant: Foggy and 12.",
    ]
    assert [line[:9] for line in turn_lines(s)][:4] == ["[00:01.0]", "[00:02.8]", "[00:05.0]", "[00:06.2]"]


def test_jsonl_has_one_record_per_turn_with_timing_and_interruption(tmp_path):
    s = ScriptedSession(tmp_path, profile=audio_profile(), pm=make_pm("transcript"))
    conversation(s)
    s.end()
    recs = records(s)
    assert [r["role"] for r in recs] == ["user", "assistant", "user", "assistant", "user", "user", "tool_call", "tool_result", "assistant"]
    first_answer, cut_answer = recs[1], recs[3]
    assert first_answer == {
        "role": "assistant", "text": "Hello there, how can I help?", "item_id": "item_a1", "response_id": "resp_1",
        "start": 2.81, "end": 4.0, "interrupted": False, "played_ms": 1200.0,
    }
    assert cut_answer["interrupted"] is True and cut_answer["played_ms"] == 1000.0
    assert cut_answer["text"] == "Tomorrow will be sunny in"
    assert cut_answer["generated_text"] == "Tomorrow will be sunny in the morning and rainy later."
    assert cut_answer["generated_ms"] == 2000.0
    assert recs[0]["start"] == 1.0 and recs[0]["end"] == 1.5 + 1.0


def test_a_late_user_transcript_still_comes_before_the_answer(tmp_path):
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "")
    t = answer(s, 2.0, "item_a1", "resp_1", ["Sure."])
    finish_answer(s, t, "item_a1", "resp_1", "Sure.")
    assert turn_lines(s) == []  # the answer waits for the question
    transcribed(s, 3.0, "item_u1", "Can you help?")
    assert [line.split("] ", 1)[1] for line in turn_lines(s)] == ["User: Can you help?", "Assistant: Sure."]
    assert turn_lines(s)[0].startswith("[00:01.0]")  # the time the user started speaking


def test_with_playback_the_answer_waits_until_it_was_heard(tmp_path):
    s = transcript_session(tmp_path, profile=audio_profile())
    user_turn(s, 1.0, "item_u1", "Hello?", transcript_at=1.6)
    t = answer(s, 2.0, "item_a1", "resp_1", ["Hi", "there."])
    finish_answer(s, t, "item_a1", "resp_1", "Hi there.")
    assert len(turn_lines(s)) == 1
    s.playback(2.2, "playback.started", "item_a1", 0, 400)
    assert len(turn_lines(s)) == 1
    s.playback(2.8, "playback.finished", "item_a1", 400, 400)
    assert turn_lines(s)[1] == "[00:02.2] Assistant: Hi there."


def test_an_answer_without_playback_report_is_written_when_the_next_response_starts(tmp_path):
    s = transcript_session(tmp_path, profile=audio_profile())
    user_turn(s, 1.0, "item_u1", "One?", transcript_at=1.6)
    t = answer(s, 2.0, "item_a1", "resp_1", ["One."])
    finish_answer(s, t, "item_a1", "resp_1", "One.")
    assert len(turn_lines(s)) == 1
    s.server(3.0, "response.created", response={"id": "resp_2", "status": "in_progress", "output": []})
    assert turn_lines(s)[1].endswith("Assistant: One.")


def test_without_an_audio_output_answers_are_written_when_the_response_is_done(tmp_path):
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "Hello?", transcript_at=1.6)
    t = answer(s, 2.0, "item_a1", "resp_1", ["Hi."])
    finish_answer(s, t, "item_a1", "resp_1", "Hi.")
    assert turn_lines(s)[1] == "[00:02.0] Assistant: Hi."


def test_a_cancelled_response_is_cut_at_the_truncation_the_service_reports(tmp_path):
    session = {**SESSION, "turn_detection": {"type": "server_vad", "auto_truncate": True}}
    s = ScriptedSession(tmp_path, pm=make_pm("transcript"))
    s.start()
    s.server(0.1, "session.updated", session=session)
    words = ["one", "two", "three", "four"]
    t = answer(s, 1.0, "item_a1", "resp_1", words)  # 4 words, 2 chunks each: 800 ms of audio
    finish_answer(s, t, "item_a1", "resp_1", "one two three four", status="cancelled", reason="turn_detected")
    assert turn_lines(s) == []  # waits for the truncation
    s.server(t + 0.1, "conversation.item.truncated", item_id="item_a1", content_index=0, audio_end_ms=300)
    assert turn_lines(s) == ["[00:01.0] Assistant (interrupted at 0.3 s): one two …"]
    assert records(s)[0]["played_ms"] == 300.0


def test_a_cancelled_response_without_a_played_position_is_marked_not_cut(tmp_path):
    s = transcript_session(tmp_path)
    t = answer(s, 1.0, "item_a1", "resp_1", ["Let", "me", "think"])
    finish_answer(s, t, "item_a1", "resp_1", "Let me think", status="cancelled", reason="turn_detected")
    assert turn_lines(s) == ["[00:01.0] Assistant (interrupted): Let me think"]
    assert records(s)[0]["interrupted"] is True and records(s)[0]["played_ms"] is None


def test_user_turns_without_words_get_a_placeholder(tmp_path):
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "")
    s.server(1.7, "conversation.item.input_audio_transcription.failed", item_id="item_u1", content_index=0,
             error={"code": "audio_unintelligible", "message": "could not transcribe"})
    user_turn(s, 2.0, "item_u2", "")  # its transcript never comes
    user_turn(s, 3.0, "item_u3", "Third.", transcript_at=3.6)
    assert [line.split("] ", 1)[1] for line in turn_lines(s)] == [
        "User: [transcription failed: could not transcribe]",
        "User: [no transcript]",
        "User: Third.",
    ]


def test_without_input_transcription_user_turns_say_so(tmp_path):
    session = {**SESSION, "input_audio_transcription": None}
    s = ScriptedSession(tmp_path, pm=make_pm("transcript"))
    s.start()
    s.server(0.1, "session.updated", session=session)
    user_turn(s, 1.0, "item_u1", "")
    assert turn_lines(s) == ["[00:01.0] User: [not transcribed: input_audio_transcription is off]"]
    assert "# input transcription: off" in (tmp_path / "transcript.txt").read_text()


def test_a_false_start_leaves_no_line(tmp_path):
    s = transcript_session(tmp_path)
    s.server(1.0, "input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_x")
    s.server(1.1, "input_audio_buffer.cleared")
    user_turn(s, 2.0, "item_u1", "Real.", transcript_at=2.6)
    s.end()
    assert turn_lines(s) == ["[00:02.0] User: Real."]


def test_the_end_of_the_session_writes_what_is_still_waiting(tmp_path):
    s = transcript_session(tmp_path, profile=audio_profile())
    user_turn(s, 1.0, "item_u1", "")
    t = answer(s, 2.0, "item_a1", "resp_1", ["Half", "an", "answer"])
    assert turn_lines(s) == []
    s.end("user")
    assert [line.split("] ", 1)[1] for line in turn_lines(s)] == ["User: [no transcript]", "Assistant: Half an answer [unfinished]"]


def test_lines_are_on_disk_as_soon_as_they_are_complete_without_session_end(tmp_path):
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "Are you there?", transcript_at=1.6)
    t = answer(s, 2.0, "item_a1", "resp_1", ["Yes."])
    finish_answer(s, t, "item_a1", "resp_1", "Yes.")
    # no session_end (a crash): a fresh reader sees both turns in both files
    assert len(turn_lines(s)) == 2
    assert [r["role"] for r in records(s)] == ["user", "assistant"]


def test_secrets_said_aloud_are_masked(tmp_path, monkeypatch):
    from voicepipe.redact import REDACTOR

    REDACTOR.add("sk-live-5f2a9c7e1d")
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "my key is sk-live-5f2a9c7e1d", transcript_at=1.6)
    s.end()
    for name in ("transcript.txt", "transcript.jsonl"):
        text = (tmp_path / "run" / name).read_text()
        assert "sk-live-5f2a9c7e1d" not in text
        assert "my key is ***" in text


def test_a_written_answer_lets_go_of_its_deltas_and_old_turns_are_forgotten(tmp_path):
    from voicepipe.builtin import transcript as transcript_plugin

    s = transcript_session(tmp_path)
    state = s.ctx.stash["transcript"]
    turns = transcript_plugin.MAX_WRITTEN_TURNS // 2 + 10  # a user and an answer each
    t = 1.0
    for n in range(turns):
        user_turn(s, t, f"item_u{n}", "Again?", transcript_at=t + 0.6)
        end = answer(s, t + 1.0, f"item_a{n}", f"resp_{n}", ["One", "more", "time."])
        assert len(state.turns[f"item_a{n}"].deltas) == 3  # kept while the answer is in progress
        finish_answer(s, end, f"item_a{n}", f"resp_{n}", "One more time.")
        assert state.turns[f"item_a{n}"].deltas == []  # written: the deltas are let go
        t = end + 1.0
    assert len(turn_lines(s)) == 2 * turns
    assert len(state.turns) == len(state.written) == transcript_plugin.MAX_WRITTEN_TURNS
    assert "item_u0" not in state.turns and "resp_0" not in state.responses
    assert f"item_a{turns - 1}" in state.turns and f"resp_{turns - 1}" in state.responses
    assert len(state.responses) <= transcript_plugin.MAX_WRITTEN_TURNS


def test_a_late_delta_for_a_written_answer_adds_nothing(tmp_path):
    s = transcript_session(tmp_path)
    user_turn(s, 1.0, "item_u1", "Hello?", transcript_at=1.6)
    t = answer(s, 2.0, "item_a1", "resp_1", ["Hi."])
    finish_answer(s, t, "item_a1", "resp_1", "Hi.")
    s.server(t + 0.1, "response.audio_transcript.delta", response_id="resp_1", item_id="item_a1", output_index=0,
             content_index=0, delta=" late")
    assert s.ctx.stash["transcript"].turns["item_a1"].deltas == []
    s.end()
    assert [line.split("] ", 1)[1] for line in turn_lines(s)] == ["User: Hello?", "Assistant: Hi."]


def test_sessions_in_one_process_keep_their_own_state(tmp_path):
    a = transcript_session(tmp_path, name="a")
    b = transcript_session(tmp_path, name="b")
    user_turn(a, 1.0, "item_u1", "From A.", transcript_at=1.6)
    user_turn(b, 1.0, "item_u1", "From B.", transcript_at=1.6)
    a.end()
    b.end()
    assert turn_lines(a) == ["[00:01.0] User: From A."]
    assert turn_lines(b) == ["[00:01.0] User: From B."]


# -- the cut rule --------------------------------------------------------------------------------


def test_cut_text_follows_the_transcript_deltas_when_they_stream_with_the_audio():
    deltas = [(0, "The"), (100, " quick"), (200, " brown"), (300, " fox")]
    assert cut_text("The quick brown fox", deltas, 400, played_ms=600, generated_ms=1000) == "The quick brown"
    assert cut_text("The quick brown fox", deltas, 400, played_ms=250, generated_ms=1000) == "The"
    assert cut_text("The quick brown fox", deltas, 400, played_ms=0, generated_ms=1000) == ""
    assert cut_text("The quick brown fox", deltas, 400, played_ms=1000, generated_ms=1000) == "The quick brown fox"


def test_cut_text_is_proportional_when_the_text_came_ahead_of_the_audio():
    text = "one two three four five six seven eight"
    deltas = [(0, word if i == 0 else " " + word) for i, word in enumerate(text.split())]  # all before any audio
    assert cut_text(text, deltas, 8000, played_ms=500, generated_ms=1000) == "one two three four five"
    assert cut_text(text, [], 0, played_ms=100, generated_ms=1000) == "one"
    assert cut_text(text, [], 0, played_ms=100, generated_ms=None) == text


@pytest.mark.parametrize("seconds, shown", [(0, "00:00.0"), (4.54, "00:04.5"), (65.25, "01:05.2"), (3725.0, "1:02:05.0"), (None, "00:00.0")])
def test_time_format(seconds, shown):
    assert format_time(seconds) == shown
