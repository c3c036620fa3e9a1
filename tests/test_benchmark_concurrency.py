"""The concurrency benchmark's several-process row: how the children's records become one verdict,
and a child that dies or says nothing fails its step with a message instead of hanging."""

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside voicepipe, not inside it

from benchmarks import concurrency  # noqa: E402


def part(lags, ticks, cpu=0.5, early=(), started=100.0, ended=120.0):
    step = (ended - started) / len(lags)
    return {"sessions": 1, "started_at": started, "ended_at": ended, "cpu": cpu, "early": list(early),
            "deliveries": [[started + step * (i + 0.5), lag] for i, lag in enumerate(lags)], "ticks": list(ticks)}


def test_the_parts_merge_into_one_verdict():
    calm = part([1.0] * 40, [1.0] * 100, cpu=0.6)
    busy = part([2.0] * 40, [3.0] * 100, cpu=0.7)
    step = concurrency.summarize([calm, busy], 2, 0.4, [])
    assert step["passed"] and step["processes"] == 2
    assert step["deltas"] == 80 and step["underruns"] == 0
    assert step["client_cpu_each"] == [0.6, 0.7] and step["client_cpu"] == 1.3
    assert step["loop_lag_p99_ms"] == 3.0  # the worst process's loop, not the mixture's


def test_one_late_process_fails_the_step():
    calm = part([1.0] * 40, [1.0] * 100)
    stalled = part([1.0] * 40, [1.0] * 98 + [80.0] * 2)  # 1% of the mixture, 2% of its own
    step = concurrency.summarize([calm, stalled], 2, 0.4, [])
    assert not step["passed"] and step["loop_lag_p99_ms"] == 80.0
    assert step["loop_lag_p99_each_ms"] == [1.0, 80.0] and "loop lag p99 80.0 ms (1.0 / 80.0)" in concurrency.describe(step)
    late = concurrency.summarize([calm, part([1.0] * 39 + [60.0], [1.0] * 100)], 2, 0.4, [])
    assert not late["passed"] and late["underruns"] == 1
    assert "1 of 80 deltas later than 50 ms" in concurrency.why_failed(late)


def test_the_sessions_are_shared_out_evenly():
    assert concurrency.shares(200, 2) == [100, 100]
    assert concurrency.shares(5, 2) == [3, 2]
    assert sum(concurrency.shares(251, 3)) == 251


class NoEmulator:
    def cpu_seconds(self):
        raise AssertionError("no window should be measured")


def test_a_child_that_dies_fails_the_step_with_its_message(tmp_path):
    missing = tmp_path / "no-such-profile.yaml"
    step = asyncio.run(concurrency.measure_split_step(NoEmulator(), missing, tmp_path, 4, 1.0, 2))
    assert step["passed"] is False and step["sessions"] == 4 and step["processes"] == 2
    assert "exited with code 1 before 'connected'" in step["error"]
    assert "no-such-profile.yaml" in step["error"]
    assert concurrency.why_failed(step) == step["error"]
    assert step["error"] in concurrency.describe(step)


def test_a_child_that_says_nothing_is_ended(tmp_path):
    async def main():
        child = concurrency.Child(0, tmp_path)
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stderr.write('stuck here\\n'); sys.stderr.flush(); sys.stdin.read()",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=open(child.stderr_path, "wb"))
        try:
            await child.expect("connected", 0.5)
        except RuntimeError as exc:
            error = str(exc)
        else:
            error = ""
        await child.end(10)
        return error, child.proc.returncode

    error, code = asyncio.run(main())
    assert "did not say 'connected' within 0.5 s" in error and "stuck here" in error
    assert code is not None  # closing its stdin let it exit


def test_usage_errors_exit_2(capsys):
    import pytest

    for argv, expected in ((["--steps", "a,b"], "--steps"), (["--processes", "0"], "--processes"),
                           (["--child"], "--child needs")):
        with pytest.raises(SystemExit) as exited:
            concurrency.main(argv)
        assert exited.value.code == 2
        assert expected in capsys.readouterr().err
