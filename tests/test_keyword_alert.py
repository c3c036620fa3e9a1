"""The example local plugin, tested the way a plugin author would: with the voicepipe_run fixture."""

import json
from pathlib import Path

import pytest

from voicepipe.errors import UsageError

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "demo.yaml"
FAST = ["connection.emulator.speed=0", "audio.input.realtime=false", "audio.output.realtime=false"]


def test_alert_written_when_the_user_says_a_keyword(voicepipe_run):
    result = voicepipe_run(DEMO, overrides=[*FAST, "keyword_alert.keywords=[lake]"])
    assert result.exit_code == 0
    alerts = [json.loads(line) for line in result.read("alerts.jsonl").splitlines()]
    assert len(alerts) == 1 and alerts[0]["keywords"] == ["lake"]


def test_no_alert_without_the_keyword(voicepipe_run):
    result = voicepipe_run(DEMO, overrides=[*FAST, "keyword_alert.keywords=[volcano]"])
    assert result.exit_code == 0
    assert not (result.run_dir / "alerts.jsonl").exists()


def test_bad_keywords_setting_is_a_configuration_error(voicepipe_run):
    with pytest.raises(UsageError, match="keyword_alert.keywords"):
        voicepipe_run(DEMO, overrides=[*FAST, "keyword_alert.keywords=7"])
