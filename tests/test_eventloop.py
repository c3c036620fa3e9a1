"""VOICEPIPE_LOOP chooses the event loop: uvloop when installed, asyncio's when asked for; a bad
value is a one-line usage error before anything is started."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from voicepipe import eventloop
from voicepipe.cli import main
from voicepipe.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "demo.yaml"

uvloop = pytest.importorskip("uvloop")  # in the test extra: CI runs these


async def _loop_kind() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if isinstance(loop, uvloop.Loop) else type(loop).__module__


@pytest.mark.parametrize("value, kind", [("asyncio", "asyncio.unix_events"), ("uvloop", "uvloop"),
                                         ("auto", "uvloop"), ("", "uvloop"), (" UVLoop ", "uvloop")])
def test_run_uses_the_loop_the_variable_names(monkeypatch, value, kind):
    monkeypatch.setenv(eventloop.ENV, value)
    assert eventloop.run(_loop_kind()) == kind


def test_unset_means_uvloop_when_installed_and_asyncio_when_not(monkeypatch):
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.chosen() == "uvloop"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert eventloop.chosen() == "asyncio"
    assert eventloop.run(_loop_kind()) == "asyncio.unix_events"
    loop = eventloop.new_event_loop()
    try:
        assert type(loop).__module__ == "asyncio.unix_events"
    finally:
        loop.close()


def test_uvloop_asked_for_but_not_installed_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(UsageError, match=r"^VOICEPIPE_LOOP=uvloop: uvloop is not installed; pip install "
                                         r"'voicepipe-live\[fast\]' or set VOICEPIPE_LOOP=asyncio$"):
        eventloop.chosen({eventloop.ENV: "uvloop"})


def test_an_unknown_value_is_a_usage_error_and_the_coroutine_is_closed(monkeypatch):
    monkeypatch.setenv(eventloop.ENV, "tokio")
    coro = _loop_kind()
    with pytest.raises(UsageError, match="^VOICEPIPE_LOOP=tokio: unknown event loop; use asyncio, uvloop or auto"):
        eventloop.run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning


@pytest.mark.parametrize("argv", [["run", str(DEMO)], ["emulator", "--port", "0"], ["serve", str(DEMO), "--port", "0"],
                                  ["test", str(ROOT / "conversations")], ["replay", str(ROOT / "conversations")]])
def test_the_commands_that_run_a_loop_refuse_an_unknown_value_in_one_line(capsys, monkeypatch, tmp_path, argv):
    monkeypatch.setenv(eventloop.ENV, "fast")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "voicepipe: VOICEPIPE_LOOP=fast: unknown event loop; use asyncio, uvloop or auto (or leave it unset)\n"
    assert not list(tmp_path.iterdir())  # no run folder, no log


@pytest.mark.parametrize("value, kind", [("asyncio", "asyncio.unix_events"), ("uvloop", "uvloop")])
def test_a_session_runs_on_the_chosen_loop(voicepipe_run, monkeypatch, value, kind):
    monkeypatch.setenv(eventloop.ENV, value)
    seen = []

    class LoopProbe:
        def voicepipe_session_start(self, ctx):
            loop = asyncio.get_running_loop()
            seen.append("uvloop" if isinstance(loop, uvloop.Loop) else type(loop).__module__)
            ctx.stop("probed")

    result = voicepipe_run(DEMO, plugins=[LoopProbe()])
    assert seen == [kind]
    assert result.reason == "probed"


@pytest.mark.parametrize("value, kind", [("asyncio", "asyncio.unix_events"), ("uvloop", "uvloop")])
def test_a_gunicorn_worker_runs_on_the_chosen_loop(monkeypatch, value, kind):
    pytest.importorskip("gunicorn")
    from voicepipe.serve import workers

    monkeypatch.setenv(eventloop.ENV, value)
    seen = []

    def booted(worker):  # gunicorn's own init_process would now set up signals and call run()
        seen.append("uvloop" if isinstance(worker.loop, uvloop.Loop) else type(worker.loop).__module__)

    monkeypatch.setattr(workers.Worker, "init_process", booted)
    worker = object.__new__(workers.DrainingWorker)
    try:
        worker.init_process()
    finally:
        worker.loop.close()
        asyncio.set_event_loop(None)
    assert seen == [kind]
