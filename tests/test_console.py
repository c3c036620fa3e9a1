"""The console plugin: status, turn states and words for a person, clean lines for a pipe."""

import io
import re

import pytest

from session_script import SESSION, FakeProfile, ScriptedSession, answer, audio_profile, conversation, make_pm

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # anything but a newline


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def console_run(monkeypatch, stream, profile=None, script=conversation):
    monkeypatch.setattr("sys.stdout", stream)
    s = ScriptedSession("/nonexistent-unused", profile=profile or audio_profile(), pm=make_pm("console"))
    script(s)
    s.end("user")
    return stream.getvalue()


def test_a_pipe_gets_complete_lines_without_control_characters(monkeypatch):
    out = console_run(monkeypatch, io.StringIO())
    assert not CONTROL.search(out)
    lines = out.splitlines()
    assert lines[0] == "Session sess_TEST1 started (model gpt-realtime)"
    assert lines[1] == "Ready."
    assert lines[-1] == "Session ended (user)."
    for expected in (
        "You: Hi, who are you?",
        "Assistant: Hello there, how can I help?",
        "[interrupted at 1.0 s]",
        "You: Weather in London?",
        '[tool] get_weather {"city": "London"}',
        "[tool] get_weather -> Foggy, 12 degrees.",
        "Assistant: Foggy and 12.",
    ):
        assert expected in lines
    states = [line for line in lines if line in ("[listening]", "[thinking]", "[speaking]")]
    assert states[:4] == ["[listening]", "[thinking]", "[speaking]", "[listening]"]
    # no partial words in a pipe: every "Assistant:" line is a whole answer
    assert [line for line in lines if line.startswith("Assistant:")] == [
        "Assistant: Hello there, how can I help?",
        "Assistant: Tomorrow will be sunny in the morning and rainy later.",
        "Assistant: Foggy and 12.",
    ]


def test_quiet_prints_only_the_final_words_of_each_turn(monkeypatch):
    out = console_run(monkeypatch, io.StringIO(), profile=audio_profile(console={"quiet": True}))
    assert out.splitlines() == [
        "You: Hi, who are you?",
        "Assistant: Hello there, how can I help?",
        "You: Tell me about the weather tomorrow.",
        "Assistant: Tomorrow will be sunny in the morning and rainy later.",
        "You: Stop, thanks.",
        "You: Weather in London?",
        "Assistant: Foggy and 12.",
    ]


def test_a_terminal_gets_a_status_line_with_words_as_they_arrive(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = console_run(monkeypatch, FakeTerminal())
    assert "\r\x1b[K[speaking] Hello there, how" in out  # the answer streams into the status line
    assert "\r\x1b[K[thinking]" in out
    final_lines = [part.rsplit("\x1b[K", 1)[-1] for part in out.split("\n")]
    assert "Assistant: Hello there, how can I help?" in final_lines
    assert "You: Tell me about the weather tomorrow." in final_lines
    # a status line never wraps: at most the terminal's width less one
    statuses = [s.split("\n")[0] for s in out.split("\r\x1b[K") if s.startswith(("[listening]", "[thinking]", "[speaking]"))]
    assert statuses and max(len(s) for s in statuses) <= 39
    assert any(s.startswith("[speaking] …") for s in statuses)  # long words keep their tail
    assert out.endswith("Session ended (user).\n")


def test_errors_and_warnings_are_one_line_each(monkeypatch):
    def script(s):
        s.start()
        s.server(0.1, "session.updated", session=SESSION)
        s.server(1.0, "error", error={"type": "invalid_request_error", "code": "bad_param", "message": "Invalid\nvalue"})
        s.server(1.1, "warning", warning={"message": "slow down"})
        s.server(1.2, "conversation.item.input_audio_transcription.failed", item_id="i", content_index=0,
                 error={"message": "inaudible"})
        s.server(1.3, "response.done", response={"id": "r", "status": "failed", "status_details": {"type": "failed", "error": {"message": "overloaded"}}})

    lines = console_run(monkeypatch, io.StringIO(), profile=FakeProfile(), script=script).splitlines()
    assert "error: Invalid value (bad_param)" in lines
    assert "warning: slow down" in lines
    assert "error: transcription failed: inaudible" in lines
    assert "error: the response failed: overloaded" in lines


def test_without_playback_reports_speaking_follows_the_response(monkeypatch):
    def script(s):
        s.start()
        s.server(0.1, "session.updated", session=SESSION)
        s.server(1.0, "input_audio_buffer.speech_started", audio_start_ms=0, item_id="u")
        s.server(1.5, "input_audio_buffer.speech_stopped", audio_end_ms=500, item_id="u")
        answer(s, 2.0, "a", "r", ["Yes."])
        s.server(3.0, "response.done", response={"id": "r", "status": "completed", "output": []})

    lines = console_run(monkeypatch, io.StringIO(), profile=FakeProfile(), script=script).splitlines()
    assert lines[:5] == ["Ready.", "[listening]", "[thinking]", "[speaking]", "[listening]"]


def test_console_output_is_masked(monkeypatch):
    from voicepipe.redact import REDACTOR

    REDACTOR.add("console-secret-9931")

    def script(s):
        s.start()
        s.server(1.0, "conversation.item.input_audio_transcription.completed", item_id="u", content_index=0,
                 transcript="it is console-secret-9931")

    out = console_run(monkeypatch, io.StringIO(), profile=FakeProfile(), script=script)
    assert "console-secret-9931" not in out
    assert "You: it is ***" in out


@pytest.mark.parametrize("stream", [io.StringIO(), FakeTerminal()], ids=["pipe", "terminal"])
def test_sessions_in_one_process_do_not_share_console_state(monkeypatch, stream):
    def script(s):
        s.start()
        s.server(0.1, "session.updated", session=SESSION)

    first = console_run(monkeypatch, stream, profile=FakeProfile(), script=script)
    second = console_run(monkeypatch, type(stream)(), profile=FakeProfile(), script=script)
    assert first.count("Ready.") == 1 and second.count("Ready.") == 1
