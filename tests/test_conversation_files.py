"""Conversation files: validation with file:line:col, `voicepipe test` on the shipped examples
(concurrently, with JUnit XML and a report per conversation), and pytest collecting them."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from voicepipe.cli import main
from voicepipe.conversation.spec import load_conversation
from voicepipe.errors import ProfileError, UsageError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "conversations"
pytest_plugins = ["pytester"]


def _write(tmp_path: Path, text: str, name: str = "c.conversation.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_problems_are_reported_at_once_with_their_position(tmp_path):
    path = _write(tmp_path, f"""profile: {ROOT / 'profiles' / 'demo.yaml'}
turns:
  - say: Hello
    text: Hello too
  - sya: Hi
  - say: Where?
    expect:
      says_anny: [x]
      voice_to_voice_ms: {{p: 95}}
      tool_call: {{arguments: {{a: 1}}}}
  - audio: missing.wav
""")
    with pytest.raises(ProfileError) as caught:
        load_conversation(path)
    problems = caught.value.problems
    shown = str(path)
    assert f"{shown}:3:5: turns[0]: a turn needs exactly one of say, text or audio (got say and text)" in problems
    assert f"{shown}:5:5: turns[1].sya: unknown key (did you mean 'say'?)" in problems
    assert f"{shown}:8:7: turns[2].expect.says_anny: unknown key (did you mean 'says_any'?)" in problems
    assert f"{shown}:9:7: turns[2].expect.voice_to_voice_ms: missing required key 'under'" in problems
    assert f"{shown}:10:7: turns[2].expect.tool_call: missing required key 'name'" in problems


def test_missing_files_are_named(tmp_path):
    path = _write(tmp_path, "profile: nowhere.yaml\nturns:\n  - audio: missing.wav\n")
    with pytest.raises(ProfileError) as caught:
        load_conversation(path)
    assert any(p.endswith(f"turns[0].audio: no such WAV file: {tmp_path / 'missing.wav'}") for p in caught.value.problems)
    assert any(f"{path}:1:10: profile: no such profile" in p for p in caught.value.problems)
    with pytest.raises(UsageError, match="no such conversation file"):
        load_conversation(tmp_path / "absent.conversation.yaml")


def test_cli_exits_2_on_a_bad_file_without_running_anything(tmp_path, capsys):
    _write(tmp_path, "turns: []\n", "bad.conversation.yaml")
    assert main(["test", str(tmp_path), "--log-dir", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert "bad.conversation.yaml:1:1: missing required key 'profile'" in err
    assert not (tmp_path / "logs").exists()
    assert main(["test", str(tmp_path / "nothing-here")]) == 2
    assert "no such conversation file or folder" in capsys.readouterr().err


def test_the_examples_pass_concurrently_with_junit_and_reports(tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    code = main(["test", str(EXAMPLES), "-j", "2", "--junit", str(junit), "--log-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 of 2 conversation(s) passed; 0 of 5 turn(s) failed" in out
    assert "ok   turn 1: When does the Louvre open today?" in out
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == ["barge-in", "concierge"]
    assert sum(len(s.findall("testcase")) for s in suites) == 5
    assert not list(ET.parse(junit).getroot().iter("failure"))
    folders = sorted((tmp_path / "logs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        saved = json.loads((folder / "conversation.json").read_text(encoding="utf-8"))
        assert saved["passed"] and folder.name.endswith(saved["conversation"])
        assert (folder / "report.html").is_file()
        # each session's log holds its own session only
        ids = {json.loads(line).get("session_id") for line in (folder / "voicepipe.log.jsonl").read_text().splitlines()}
        assert len(ids - {None}) == 1


def test_a_failing_conversation_exits_1_with_the_reason(tmp_path, capsys):
    path = _write(tmp_path, f"""profile: {ROOT / 'profiles' / 'demo.yaml'}
turns:
  - text: What is the largest lake in the world?
    expect: {{says_any: [Baikal]}}
""")
    junit = tmp_path / "junit.xml"
    assert main(["test", str(path), "--junit", str(junit), "--log-dir", str(tmp_path / "logs")]) == 1
    out = capsys.readouterr().out
    assert "FAIL turn 1: What is the largest lake in the world?" in out
    assert 'says_any: none of "Baikal" was said; the answer was "The Caspian Sea' in out
    (failure,) = ET.parse(junit).getroot().iter("failure")
    assert failure.get("message").startswith('says_any: none of "Baikal" was said')


def test_pytest_collects_one_item_per_conversation_file(pytester):
    files = {"good.conversation.yaml": f"""profile: {ROOT / 'profiles' / 'demo.yaml'}
turns:
  - text: What is the largest lake in the world?
    expect: {{says_any: [Caspian]}}
""", "bad.conversation.yaml": f"""profile: {ROOT / 'profiles' / 'demo.yaml'}
turns:
  - text: What is the largest lake in the world?
    expect: {{says_none: [Caspian]}}
""", "broken.conversation.yaml": "profile: 3\n"}
    for name, text in files.items():
        (pytester.path / name).write_text(text, encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*says_none: said \"Caspian\", which it must not*",
                                 "*broken.conversation.yaml:1:10: profile: expected a profile path, got 3*"])


def test_a_dropped_connection_fails_the_conversation_with_the_reason(tmp_path, capsys):
    scenario = _write(tmp_path, """turns:
  - user: What is the largest lake in the world?
    assistant: The Caspian Sea.
faults:
  - after: {event: response.created, count: 1}
    action: close
    code: 1011
""", "drop.yaml")
    path = _write(tmp_path, f"""profile: {ROOT / 'profiles' / 'demo.yaml'}
scenario: {scenario.name}
set: [connection.reconnect.attempts=0]
turns:
  - text: What is the largest lake in the world?
    expect: {{says_any: [Caspian]}}
  - text: And the deepest?
""")
    assert main(["test", str(path), "--log-dir", str(tmp_path / "logs")]) == 1
    out = capsys.readouterr().out
    assert "error: the server closed the connection (code 1011)" in out
    assert "FAIL turn 2: And the deepest?" in out and "answer: not run (an earlier turn did not finish)" in out
    (folder,) = (tmp_path / "logs").iterdir()
    assert json.loads((folder / "conversation.json").read_text(encoding="utf-8"))["passed"] is False
