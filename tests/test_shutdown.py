"""How a real ``voicepipe run`` process stops: signals, ``q`` + Enter, end of input, ``--duration``.

Each test starts the command as a child process against an emulator (the ``voicelive_emulator``
fixture in this process, reached over loopback, or the embedded one for scenario faults), waits
for the session to be established (and, where it matters, for an answer to be heard), stops it,
and checks what a user relies on: the exit code, the WebSocket closed with 1000, the end hooks run
exactly once, and every file of the run folder whole.
"""

from __future__ import annotations

import json
import signal
import textwrap
from datetime import datetime

import pytest
from shutdown_helpers import (
    HANGING_END_PLUGIN,
    HANGING_LINE,
    QUESTION_INPUT,
    SHIPPING_LINE,
    SLOW_LOG_PLUGIN,
    STOPS,
    VoicepipeProcess,
    answer_heard,
    assert_files_complete,
    assert_lines_well_formed,
    emulator_close_code,
    end_reasons,
    find_log_record,
    log_records,
    write_profile,
)

#: after a second Ctrl+C the process is gone at once; this bounds "at once" generously for a busy machine
AT_ONCE_S = 5.0



@pytest.mark.parametrize("stop", list(STOPS))
def test_a_session_stopped_after_an_answer_keeps_the_turn_and_closes_with_1000(stop, voicelive_emulator, tmp_path):
    """The question is spoken from a WAV file, the answer is heard, then the microphone keeps
    hearing silence: the session goes on until it is stopped."""
    profile = write_profile(tmp_path, voicelive_emulator.url, audio_input=QUESTION_INPUT)
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        answer = answer_heard(run.run_dir)
        STOPS[stop](run)
        assert run.wait() == 0, run.describe()
        run_dir = run.run_dir

    assert answer["text"].startswith("This is the voicepipe emulator.")
    assert emulator_close_code(voicelive_emulator) == 1000
    assert run.stdout.count("Session ended (user).") == 1
    assert run.stdout.count(f"Assistant: {answer['text']}") == 1
    assert end_reasons(run_dir) == ["user"]
    assert_files_complete(run_dir, "user", turns=1)
    assert "Traceback" not in run.stderr
    # the emulator got the whole conversation: the audio, then a clean close
    client_types = [e["type"] for e in voicelive_emulator.connections[0].client_events]
    assert client_types[0] == "session.update" and "input_audio_buffer.append" in client_types


def test_duration_ends_the_session_with_exit_0_and_closes_with_1000(voicelive_emulator, tmp_path):
    profile = write_profile(tmp_path, voicelive_emulator.url)
    with VoicepipeProcess(profile, tmp_path / "logs", "--duration", "2") as run:
        run.wait_for_line(r"^Ready\.")
        assert run.wait() == 0, run.describe()
        run_dir = run.run_dir

    assert emulator_close_code(voicelive_emulator) == 1000
    assert run.stdout.count("Session ended (duration).") == 1
    assert end_reasons(run_dir) == ["duration"]
    assert_files_complete(run_dir, "duration", turns=0)
    finished = json.loads((run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert finished["t"] >= 1.9  # the session lasted the duration (its clock starts just after the timer)


def test_a_second_ctrl_c_exits_130_at_once_while_a_session_end_hook_hangs(voicelive_emulator, tmp_path):
    """The first Ctrl+C starts a clean stop; a plugin's end hook then hangs. The second Ctrl+C
    leaves at once with 130, and what was written up to then is whole."""
    profile = write_profile(tmp_path, voicelive_emulator.url, plugins=[HANGING_END_PLUGIN])
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        run.send_signal(signal.SIGINT)
        run.wait_for_line(r"\bstopping\b.*reason=user", "stderr")
        run.wait_for_line(HANGING_LINE)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=AT_ONCE_S) == 130, run.describe()
        run_dir = run.run_dir

    assert run.stdout.count("Session ended (user).") == 1
    assert end_reasons(run_dir) == ["user"]
    assert_lines_well_formed(run_dir)
    # the built-in end hooks that do not wait had run before the hanging one was awaited
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[-1]["event"]["type"] == "recording.finished"


def test_a_second_ctrl_c_while_a_session_end_hook_hangs_leaves_without_tracebacks_or_warnings(
    voicelive_emulator, tmp_path
):
    profile = write_profile(tmp_path, voicelive_emulator.url, plugins=[HANGING_END_PLUGIN])
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        run.send_signal(signal.SIGINT)
        run.wait_for_line(HANGING_LINE)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=AT_ONCE_S) == 130, run.describe()

    for noise in ("Traceback", "RuntimeWarning", "never awaited", "never retrieved", "Task was destroyed", "Unclosed"):
        assert noise not in run.stderr, run.stderr


def test_a_second_ctrl_c_during_the_first_stop_is_not_lost(voicelive_emulator, tmp_path):
    """A log handler ships the "stopping" record slowly, so the second Ctrl+C arrives while the
    first stop is still being handled. It must count: the process leaves with 130."""
    profile = write_profile(tmp_path, voicelive_emulator.url, plugins=[SLOW_LOG_PLUGIN])
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        run.send_signal(signal.SIGINT)
        run.wait_for_line(SHIPPING_LINE)
        run.send_signal(signal.SIGINT)
        code = run.wait()
        run_dir = run.run_dir
    assert code == 130, run.describe()
    assert_lines_well_formed(run_dir)


def test_q_after_another_line_in_the_same_write_still_stops_the_session(voicelive_emulator, tmp_path):
    """Lines that arrive together on stdin are each read: the ``q`` is not left in a buffer. (The
    ``--duration`` only ends the session if the ``q`` went unseen.)"""
    profile = write_profile(tmp_path, voicelive_emulator.url)
    with VoicepipeProcess(profile, tmp_path / "logs", "--duration", "3") as run:
        run.wait_for_line(r"^Ready\.")
        run.type("hello\nq\n")
        assert run.wait() == 0, run.describe()
        run_dir = run.run_dir
    assert end_reasons(run_dir) == ["user"]
    assert_files_complete(run_dir, "user", turns=0)


def reconnect_scenario(tmp_path, refusals: int) -> str:
    """The first connection is closed with 1011 once configured; the next ``refusals`` attempts get 503."""
    faults = ["- {after: {event: session.updated}, action: close, code: 1011, connection: 1}"]
    faults += [f"- {{action: http_status, status: 503, connection: {n}}}" for n in range(2, refusals + 2)]
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("response_delay_ms: 0\nfaults:\n" + textwrap.indent("\n".join(faults), "  ") + "\n")
    return str(scenario)


def test_ctrl_c_while_waiting_to_reconnect_ends_at_once_with_exit_0(tmp_path):
    """The connection drops with 1011, two reconnect attempts are refused with 503, and Ctrl+C comes
    during the wait before the third: the wait is cut short, the stop is the user's, files complete."""
    scenario = reconnect_scenario(tmp_path, refusals=10)
    profile = write_profile(
        tmp_path,
        "emulator",
        connection=f"""\
            emulator: {{scenario: {json.dumps(scenario)}, speed: 0}}
            reconnect: {{attempts: 10, initial_delay_s: 1}}
            """,
    )
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        run.wait_for_line(r"^Connection lost \(code 1011\); reconnecting")
        run.wait_for_line(r"\breconnecting\b.*\battempt=3\b", "stderr")
        run_dir = run.run_dir
        waiting = find_log_record(run_dir, "reconnecting", attempt=3)
        run.send_signal(signal.SIGINT)
        assert run.wait() == 0, run.describe()

    # the process was gone before the wait for the third attempt would have ended
    assert waiting["delay_s"] >= 2.0
    wait_ends_at = datetime.fromisoformat(waiting["timestamp"].replace("Z", "+00:00")).timestamp() + waiting["delay_s"]
    assert run.exited_at < wait_ends_at, f"exited {run.exited_at - wait_ends_at:.2f} s after the wait would have ended"

    log = log_records(run_dir)
    assert [r["attempt"] for r in log if r["event"] == "reconnect_failed"] == [1, 2]
    after_wait = [r["event"] for r in log[log.index(waiting) + 1 :]]
    assert "stopping" in after_wait
    assert not {"reconnect_failed", "reconnecting", "reconnected", "reconnect_gave_up"} & set(after_wait)

    assert run.stdout.count("Session ended (user).") == 1
    assert end_reasons(run_dir) == ["user"]
    assert_files_complete(run_dir, "user", turns=0)
    assert "-- connection lost (code 1011), reconnecting --" in (run_dir / "transcript.txt").read_text(encoding="utf-8")
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "q-Enter"])
def test_a_stop_while_the_connection_opens_ends_cleanly_with_the_end_hooks(tmp_path, stop):
    """The server accepts the TCP connection and never answers the WebSocket upgrade; the stop
    comes while the client waits for it: a message, the end hooks, exit 0, no leaked HTTP session."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accept()ed: the upgrade hangs
        profile = write_profile(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}",
                                connection="connect_timeout_s: 120")
        with VoicepipeProcess(profile, tmp_path / "logs") as run:
            run_dir = run.run_dir
            run.wait_for_line(r"\bconnecting\b", "stderr")
            STOPS[stop](run)
            assert run.wait() == 0, run.describe()
    assert "reason=user" in run.wait_for_line(r"\bstopping\b", "stderr").string  # said on the console
    assert end_reasons(run_dir) == ["user"]
    assert find_log_record(run_dir, "stopping")["reason"] == "user"
    assert "Unclosed" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert_lines_well_formed(run_dir)
