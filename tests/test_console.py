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
    assert lines[:6] == ["Ready.", "[listening]", "[you are speaking]", "[thinking]", "[speaking]", "[listening]"]


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


def test_log_lines_go_above_the_status_line_never_through_it(monkeypatch):
    from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging

    term = FakeTerminal()
    configure_logging(None, console_level="WARNING", console_stream=term)

    def script(s):
        conversation(s)
        get_logger().warning("disk_slow", ms=120)  # while a status line is on the screen
        s.server(30.0, "input_audio_buffer.speech_started", audio_start_ms=9000, item_id="late")
        get_logger().warning("disk_slow", ms=240)

    try:
        out = console_run(monkeypatch, term, script=script)
    finally:
        shutdown_logging()
    lines = out.split("\n")
    warnings = [line for line in lines if "disk_slow" in line]
    assert len(warnings) == 2
    for line in warnings:
        visible = line.rsplit("\x1b[K", 1)[-1]  # what stays on the screen after the last clear
        assert "disk_slow" in visible and "[" not in visible.split("disk_slow")[0].split("]")[0][:1]
        assert not re.search(r"\[(listening|thinking|speaking|you are speaking)\]", visible)
    # and the status line comes back after each warning
    after = out.split("disk_slow")[1]
    assert re.search(r"\r\x1b\[K\[(listening|thinking|speaking|you are speaking)\]", after)


def test_without_transcription_the_users_turns_show_and_the_key_is_named_once(monkeypatch):
    profile = audio_profile(audio={"input": {"backend": "wav", "file": "question.wav"}})

    def script(s):
        s.start()
        s.server(0.1, "session.updated", session={k: v for k, v in SESSION.items() if k != "input_audio_transcription"})
        for start in (0, 3000):
            s.server(1.0 + start / 1000, "input_audio_buffer.speech_started", audio_start_ms=start, item_id=f"u{start}")
            s.server(2.2 + start / 1000, "input_audio_buffer.speech_stopped", audio_end_ms=start + 1200, item_id=f"u{start}")

    lines = console_run(monkeypatch, io.StringIO(), profile=profile, script=script).splitlines()
    assert lines[0] == "Ready. Sending question.wav as the user's voice."
    hints = [line for line in lines if "input_audio_transcription" in line]
    assert len(hints) == 1 and "session.input_audio_transcription: {model: whisper-1}" in hints[0]
    assert lines.count("You: (spoke 1.2 s)") == 2


def test_states_a_person_can_follow(monkeypatch):
    lines = console_run(monkeypatch, io.StringIO()).splitlines()
    states = [line for line in lines if line.startswith("[") and line.endswith("]") and not line.startswith(("[tool", "[interrupted at"))]
    assert "[you are speaking]" in states and "[interrupted]" in states
    barge_in = states.index("[interrupted]")
    # the user starts speaking over the answer, the answer stops, the user goes on
    assert states[barge_in - 2 : barge_in + 2] == ["[speaking]", "[you are speaking]", "[interrupted]", "[you are speaking]"]


@pytest.mark.parametrize("amplitude, cells", [(0, 0), (10, 0), (1000, 4), (32767, 8)])
def test_the_level_meter_reads_loudness(amplitude, cells):
    import numpy as np

    from voicepipe.builtin.console import level_meter

    chunk = (np.ones(480, dtype="<i2") * amplitude).tobytes()
    meter = level_meter(chunk)
    assert len(meter) == 8 and meter.count("█") == cells
