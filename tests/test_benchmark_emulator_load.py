"""``python -m benchmarks.emulator_load`` runs its phases to the end and counts what it divides by."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside voicepipe, not inside it

from benchmarks import emulator_load  # noqa: E402


def test_every_connection_appends_and_hears_the_whole_answer():
    from voicepipe.emulator.voice import spoken

    answer = "Hello there."
    result = emulator_load.measure(ROOT, 3, 0.2, 20, answer=answer)
    per_answer = sum(1 for step in spoken(answer, "pcm16").steps if step.audio_b64)
    assert result["appends"] == 3 * 10
    assert result["deltas"] == 3 * per_answer
    assert result["us_per_append"] >= 0 and result["us_per_delta"] >= 0
    assert str(ROOT) in emulator_load.describe(result)


def test_a_source_without_an_emulator_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        emulator_load.main(["--source", str(tmp_path)])
    assert exited.value.code == 2 and "no voicepipe/emulator there" in capsys.readouterr().err
