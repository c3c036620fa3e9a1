"""Every `expect` kind of a conversation test, shown failing with its reason (and passing), against
the emulator."""

import asyncio
import json
from pathlib import Path

import pytest

from voicepipe.conversation.runner import run_conversation
from voicepipe.conversation.spec import load_conversation
from voicepipe.logsetup import configure_logging, shutdown_logging

ROOT = Path(__file__).resolve().parent.parent
JUDGE = '''
from voicepipe import hookimpl

@hookimpl
def voicepipe_judge_turn(turn, criteria):
    if criteria == "mentions the hours":
        return ("09:00" in turn["answer"], "the hours are there" if "09:00" in turn["answer"] else "no hours")
    if criteria == "short":
        return {"passed": len(turn["answer"]) < 20, "reason": f"{len(turn['answer'])} characters"}
    return None
'''


def _run(path: Path, tmp_path: Path):
    configure_logging(None, console_level="WARNING", session_files=True)
    try:
        return asyncio.run(run_conversation(load_conversation(path), log_dir=tmp_path / "logs", autoload=False))
    finally:
        shutdown_logging()


def _messages(result) -> list[dict]:
    return [{check.kind: (check.passed, check.message) for check in turn.checks} for turn in result.turns]


@pytest.fixture(scope="module")
def fast_result(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fast")
    judge = tmp_path / "judge.py"
    judge.write_text(JUDGE, encoding="utf-8")
    plugins = f"plugins=[{ROOT / 'plugins' / 'opening_hours.py'}, {judge}]"
    path = tmp_path / "wrong.conversation.yaml"
    path.write_text(f"""
profile: {ROOT / 'profiles' / 'tools.yaml'}
scenario: {ROOT / 'profiles' / 'scenarios' / 'concierge.yaml'}
set: ["{plugins}"]
turns:
  - say: When does the Louvre open today?
    expect:
      tool_call: {{name: get_opening_hours, arguments: {{place: Eiffel Tower}}}}
      says_any: [closed all day, never]
      says_all: ["09:00", "midnight"]
      says_none: ["18:00"]
      interrupted: true
      judge: mentions the hours
  - text: And what time is it in Tokyo right now?
    expect:
      tool_call: {{name: get_weather}}
      judge: short
  - say: Thank you, that is all.
    expect:
      tool_call: {{name: get_current_time}}
      judge: something no plugin judges
""", encoding="utf-8")
    return _run(path, tmp_path)


def test_tool_call_fails_with_what_was_called_instead(fast_result):
    first, second, third = _messages(fast_result)
    assert first["tool_call"] == (False, 'expected a call of get_opening_hours {"place": "Eiffel Tower"}, '
                                         'got get_opening_hours {"place": "Louvre"}')
    assert second["tool_call"][0] is False and "expected a call of get_weather, got get_current_time" in second["tool_call"][1]
    assert third["tool_call"] == (False, "expected a call of get_current_time, no tool was called")


def test_phrase_checks_fail_naming_the_phrases_and_quoting_the_answer(fast_result):
    first = _messages(fast_result)[0]
    passed, message = first["says_any"]
    assert not passed and message.startswith('none of "closed all day", "never" was said; the answer was "Here are')
    passed, message = first["says_all"]
    assert not passed and message.startswith('"midnight" not said; the answer was')
    passed, message = first["says_none"]
    assert not passed and message.startswith('said "18:00", which it must not;')


def test_interrupted_fails_when_the_answer_played_to_the_end(fast_result):
    passed, message = _messages(fast_result)[0]["interrupted"]
    assert not passed and message.startswith("expected the answer to be cut off, but it played to the end")


def test_judge_verdicts_and_a_turn_nobody_judges(fast_result):
    first, second, third = _messages(fast_result)
    assert first["judge"] == (True, "the hours are there")
    passed, message = second["judge"]
    assert not passed and message.endswith("characters") and int(message.split()[0]) >= 20
    assert third["judge"] == (False, "no plugin judged this turn (add a plugin that implements "
                                     "voicepipe_judge_turn to the profile)")
    assert not fast_result.passed and fast_result.pace == "fast"


def test_results_are_written_to_the_run_folder(fast_result):
    saved = json.loads((fast_result.run_dir / "conversation.json").read_text(encoding="utf-8"))
    assert saved["passed"] is False and len(saved["turns"]) == 3
    assert saved["turns"][0]["tool_calls"][0]["arguments"] == {"place": "Louvre"}
    assert (fast_result.run_dir / "report.html").is_file()


def test_latency_and_an_answer_that_was_not_expected_to_be_cut_off(tmp_path):
    path = tmp_path / "timed.conversation.yaml"
    path.write_text(f"""
profile: {ROOT / 'profiles' / 'demo.yaml'}
scenario: {ROOT / 'profiles' / 'scenarios' / 'barge-in.yaml'}
turns:
  - say: Tell me everything about the Caspian Sea.
    barge_in_after_ms: 300
    expect: {{interrupted: false}}
  - say: Just tell me how big it is.
    expect:
      voice_to_voice_ms: {{under: 1, p: 95}}
""", encoding="utf-8")
    result = _run(path, tmp_path)
    first, second = _messages(result)
    assert result.pace == "realtime"
    assert first["interrupted"] == (False, "expected the answer to play to the end, but it was cut off")
    passed, message = second["voice_to_voice_ms"]
    assert not passed and message.endswith("(p95 of 1 sample(s)), not under 1 ms")
    measured = result.turns[1].record.voice_to_voice_ms
    assert measured is not None and measured > 1


def test_latency_cannot_be_checked_unpaced(tmp_path):
    path = tmp_path / "unpaced.conversation.yaml"
    path.write_text(f"""
profile: {ROOT / 'profiles' / 'demo.yaml'}
pace: fast
turns:
  - say: What is the largest lake in the world?
    expect: {{voice_to_voice_ms: {{under: 5000}}, says_any: [Caspian]}}
""", encoding="utf-8")
    result = _run(path, tmp_path)
    (turn,) = _messages(result)
    assert turn["says_any"][0] is True
    assert turn["voice_to_voice_ms"] == (False, "not measured: the conversation ran with pace: fast, which has no "
                                                "capture clock (use pace: realtime or auto)")
