"""The technical log (JSON lines file + console) and the run folder."""

import asyncio
import io
import json
import logging
from datetime import datetime
from types import SimpleNamespace

import pytest

from voicepipe.errors import UsageError
from voicepipe.logsetup import LOG_FILE_NAME, bind_session, configure_logging, get_logger, shutdown_logging
from voicepipe.rundir import make_run_dir


@pytest.fixture(autouse=True)
def logging_is_shut_down_after_each_test():
    yield
    shutdown_logging()


def file_lines(run_dir):
    return [json.loads(line) for line in (run_dir / LOG_FILE_NAME).read_text(encoding="utf-8").splitlines()]


def test_json_lines_to_the_file_and_readable_lines_to_the_console(tmp_path):
    console = io.StringIO()
    log = configure_logging(tmp_path, console_stream=console)
    log.info("connected", target="model gpt-realtime")
    log.debug("frame_details", size=3)
    lines = file_lines(tmp_path)
    assert [line["event"] for line in lines] == ["connected", "frame_details"]
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "voicepipe" and lines[0]["target"] == "model gpt-realtime"
    assert lines[0]["timestamp"].endswith("Z")
    assert list(lines[0])[:4] == ["timestamp", "level", "logger", "event"]
    text = console.getvalue()
    assert "connected" in text and "model gpt-realtime" in text
    assert "frame_details" not in text  # console: INFO and up
    assert "\x1b" not in text  # not a terminal: no colours


def test_levels_are_configurable_per_sink(tmp_path):
    console = io.StringIO()
    log = configure_logging(tmp_path, console_level="WARNING", file_level="INFO", console_stream=console)
    log.debug("d")
    log.info("i")
    log.warning("w")
    assert [line["event"] for line in file_lines(tmp_path)] == ["i", "w"]
    assert "w" in console.getvalue() and " i " not in console.getvalue()


def test_the_azure_sdk_logs_through_the_same_pipeline_capped_at_warning(tmp_path):
    console = io.StringIO()
    configure_logging(tmp_path, console_stream=console)
    bind_session(session_id="sess_AZ")
    azure = logging.getLogger("azure.ai.voicelive.aio._patch")
    azure.debug("Received websocket text message: %s", '{"delta": "AAAA"}')
    azure.warning("Connection closed: %s", 1006)
    lines = file_lines(tmp_path)
    assert [line["event"] for line in lines] == ["Connection closed: 1006"]
    assert lines[0]["logger"] == "azure.ai.voicelive.aio._patch" and lines[0]["session_id"] == "sess_AZ"
    assert "Connection closed: 1006" in console.getvalue()


def test_the_azure_cap_can_be_lowered(tmp_path):
    configure_logging(tmp_path, azure_level="DEBUG", console_stream=io.StringIO())
    logging.getLogger("azure.core").debug("request %s", "GET")
    assert file_lines(tmp_path)[0]["event"] == "request GET"


def test_session_and_turn_reach_every_line_from_every_task(tmp_path):
    configure_logging(tmp_path, console_stream=io.StringIO())
    log = get_logger()

    async def session():
        learned = asyncio.Event()

        async def reader():
            bind_session(session_id="sess_T")  # learned by one task …
            learned.set()
            bind_session(turn=2)

        async def writer():
            await learned.wait()
            log.info("sent")  # … seen by another

        await asyncio.gather(reader(), writer())

    asyncio.run(session())
    line = file_lines(tmp_path)[0]
    assert line["event"] == "sent" and line["session_id"] == "sess_T" and line["turn"] == 2


def test_exceptions_are_rendered_in_both_sinks(tmp_path):
    console = io.StringIO()
    log = configure_logging(tmp_path, console_stream=console)
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        log.error("plugin_error", plugin="p", exc_info=exc)
    line = file_lines(tmp_path)[0]
    assert line["exception"][0]["exc_type"] == "ValueError" and line["exception"][0]["exc_value"] == "bad value"
    assert "ValueError: bad value" in console.getvalue()


def test_configuring_again_switches_the_file_and_does_not_duplicate(tmp_path):
    console = io.StringIO()
    first = configure_logging(tmp_path / "one", console_stream=console)
    first.info("to_one")
    second = configure_logging(tmp_path / "two", console_stream=console)
    second.info("to_two")
    assert [line["event"] for line in file_lines(tmp_path / "one")] == ["to_one"]
    assert [line["event"] for line in file_lines(tmp_path / "two")] == ["to_two"]
    assert console.getvalue().count("to_two") == 1


def test_shutdown_closes_the_file_and_is_idempotent(tmp_path):
    log = configure_logging(tmp_path, console_stream=io.StringIO())
    log.info("before")
    shutdown_logging()
    shutdown_logging()
    log.warning("after")
    assert [line["event"] for line in file_lines(tmp_path)] == ["before"]


def test_lines_are_in_the_file_as_soon_as_they_are_logged(tmp_path):
    log = configure_logging(tmp_path, console_stream=io.StringIO())
    for index in range(3):
        log.info("step", index=index)
        with open(tmp_path / LOG_FILE_NAME, encoding="utf-8") as fresh:
            assert len(fresh.read().splitlines()) == index + 1


def test_console_only_without_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    console = io.StringIO()
    configure_logging(None, console_stream=console).info("hello")
    assert "hello" in console.getvalue()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_level_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="logging.console_level: unknown level 'LOUD'"):
        configure_logging(tmp_path, console_level="LOUD")


# -- run folder ------------------------------------------------------------------------------------


def profile(name="ava", **logging_settings):
    return SimpleNamespace(name=name, logging=logging_settings)


def test_run_folder_is_named_after_the_time_and_the_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime(2025, 3, 4, 5, 6, 7)
    run_dir = make_run_dir(profile(), now=now)
    assert run_dir == tmp_path / "logs" / "2025-03-04_05-06-07_ava"
    assert run_dir.is_dir()


def test_run_folder_is_unique_within_a_second(tmp_path):
    now = datetime(2025, 3, 4, 5, 6, 7)
    names = [make_run_dir(profile(), base=tmp_path, now=now).name for _ in range(3)]
    assert names == ["2025-03-04_05-06-07_ava", "2025-03-04_05-06-07_ava-2", "2025-03-04_05-06-07_ava-3"]


def test_run_folder_follows_the_profile_logging_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime(2025, 1, 2, 3, 4, 5)
    run_dir = make_run_dir(profile(dir="out/runs", run_name="night test/1"), now=now)
    assert run_dir == tmp_path / "out" / "runs" / "2025-01-02_03-04-05_night-test-1"
    assert make_run_dir(profile(dir="ignored"), base=tmp_path / "cli", now=now).parent == tmp_path / "cli"


def test_a_run_folder_that_cannot_be_made_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot create a run folder in .*file"):
        make_run_dir(profile(), base=tmp_path / "file")


def test_handlers_voicepipe_does_not_own_get_masked_records(tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", secret)

    class Url:  # an argument whose str() holds the secret, as aiohttp's URL objects do
        def __str__(self):
            return f"wss://host/voice-live/realtime?api-key={secret}"

    foreign = io.StringIO()
    handler = logging.StreamHandler(foreign)
    configure_logging(tmp_path)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("azure.ai.voicelive").warning("connecting to %s", Url())
        get_logger().warning("key_seen", key=secret, detail=f"Bearer {secret}")
    finally:
        logging.getLogger().removeHandler(handler)
        shutdown_logging()
    text = foreign.getvalue()
    assert "connecting to wss://host/voice-live/realtime?api-key=***" in text
    assert "key_seen" in text
    assert secret not in text


def test_a_second_run_in_one_process_prints_each_warning_once(tmp_path, capsys):
    for run in ("first", "second"):
        configure_logging(tmp_path / run)  # the console is stderr, as is the fallback between runs
        get_logger().warning("only_once")
        shutdown_logging()
        assert capsys.readouterr().err.count("only_once") == 1, run
