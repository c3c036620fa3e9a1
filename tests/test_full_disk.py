"""A disk that refuses writes (full, over quota, a file-size limit) ends the session at once, as a
failure, with one line; every file in the run folder stays whole.

The refusal is real, from the kernel: the session runs in a process whose files may not grow past
RLIMIT_FSIZE (with SIGXFSZ ignored, a write past it fails with EFBIG, as a full disk fails with
ENOSPC). Which file hits the limit first depends on the limit: the event recording, the WAV output.
"""

import json
import resource
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("limit", [1500, 30_000, 100_000])
def test_a_refused_write_ends_the_session_as_a_failure_with_whole_files(tmp_path, limit):
    command = [
        sys.executable, "-m", "voicepipe", "run", str(ROOT / "profiles" / "demo.yaml"), "--quiet",
        "--log-dir", str(tmp_path / "logs"),
        "--set", "connection.emulator.speed=0", "--set", "audio.input.realtime=false",
        "--set", "audio.output.realtime=false",
    ]
    try:
        done = subprocess.run(command, preexec_fn=_limit_file_size(limit), capture_output=True, text=True,
                              timeout=DEADLINE_S, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the session did not end within {DEADLINE_S:g} s of the disk refusing a write")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("voicepipe:")]
    assert line.startswith("voicepipe: cannot write ") and ": File too large in the run folder " in line
    assert line.endswith("the session was ended (free space on that disk, or choose another logging.dir or --log-dir)")

    (run_dir,) = (tmp_path / "logs").iterdir()
    for path in run_dir.iterdir():
        assert path.stat().st_size <= limit
        if path.suffix == ".jsonl":
            text = path.read_text(encoding="utf-8")
            assert text == "" or text.endswith("\n"), f"{path.name} ends in a torn line"
            for number, record in enumerate(text.splitlines(), 1):
                json.loads(record)  # every line whole
        elif path.suffix == ".wav":
            with wave.open(str(path)) as audio:
                assert 44 + audio.getnframes() * 2 == path.stat().st_size  # the header matches the data
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    assert not list(run_dir.glob("*.partial"))
