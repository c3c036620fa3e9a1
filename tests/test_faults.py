"""Server faults a session survives, or ends on with one clear line: each injected by the emulator."""

import json

import pytest
from faulty_session import Driver, log_records, write_profile

from voicepipe.errors import SessionError, UsageError

NO_RECONNECT = "{attempts: 0}"


def test_an_error_event_is_logged_and_the_session_goes_on(voicepipe_run, tmp_path):
    profile = write_profile(
        tmp_path,
        NO_RECONNECT,
        "- {after: {event: response.created}, action: error, code: rate_limited, message: slow down please}\n",
    )
    driver = Driver(answers=1)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)
    assert result.exit_code == 0 and driver.answers == 1
    errors = [e for e in result.server_events if e["type"] == "error"]
    assert [e["error"]["message"] for e in errors] == ["slow down please"]  # plugins see it
    (logged,) = log_records(result, "server_error")
    assert logged["code"] == "rate_limited" and logged["message"] == "slow down please"
    assert "The answer to question 1." in result.read("transcript.txt")


@pytest.mark.parametrize("kind", ["not_json", "wrong_shape"])
def test_a_malformed_frame_is_logged_and_skipped(voicepipe_run, tmp_path, kind):
    profile = write_profile(
        tmp_path, NO_RECONNECT, f"- {{after: {{event: session.updated}}, action: malformed, kind: {kind}}}\n"
    )
    driver = Driver(answers=1)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)
    assert result.exit_code == 0 and driver.answers == 1
    assert "The answer to question 1." in result.read("transcript.txt")
    if kind == "not_json":
        (logged,) = log_records(result, "malformed_server_frame")
        assert "parse" in logged["error"]
    else:  # {"type": "response.done", "response": "???"}: skipped before any plugin sees it
        (logged,) = log_records(result, "malformed_server_event")
        assert logged["problem"] == "response.done.response is text, not an object"
        assert "???" not in [e.get("response") for e in result.server_events]
    assert log_records(result, "plugin_error") == []


def test_a_server_that_never_configures_the_session_ends_it_in_bounded_time(voicepipe_run, tmp_path):
    profile = write_profile(tmp_path, NO_RECONNECT, "- {action: stop_answering}\n")
    driver = Driver(answers=1)
    with pytest.raises(SessionError) as failure:
        voicepipe_run(profile, plugins=[driver], emulator=False, overrides=["connection.session_timeout_s=0.5"])
    assert str(failure.value) == (
        "the server did not answer session.update within 0.5 s "
        "(raise connection.session_timeout_s if the service is slow)"
    )
    assert driver.ends == ["error"]


def test_a_slow_server_is_waited_for(voicepipe_run, tmp_path):
    profile = write_profile(tmp_path, NO_RECONNECT, "- {after: {event: response.created}, action: delay, ms: 300}\n")
    driver = Driver(answers=1)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)
    assert result.exit_code == 0 and driver.answers == 1
    (turn,) = [line for line in result.read("metrics.jsonl").splitlines() if line.strip()]
    assert json.loads(turn)["response_duration_ms"] >= 300


@pytest.mark.parametrize(
    "status, words",
    [(401, "401 Unauthorized: the api-key from AZURE_VOICELIVE_API_KEY was not accepted"),
     (403, "403 Forbidden: the api-key from AZURE_VOICELIVE_API_KEY lacks access")],
)
def test_a_refused_credential_at_connect_is_a_one_line_usage_error(voicepipe_run, tmp_path, status, words):
    profile = write_profile(tmp_path, "{attempts: 3, initial_delay_s: 0.01}", f"- {{action: http_status, status: {status}}}\n")
    driver = Driver(answers=1)
    with pytest.raises(UsageError) as failure:
        voicepipe_run(profile, plugins=[driver], emulator=False)
    assert str(failure.value).startswith("the embedded emulator refused the connection: " + words)
    assert "\n" not in str(failure.value)
    assert driver.ends == ["error"]


class _CarelessSender:
    """Sends one event JSON cannot carry, once the session is configured."""

    __name__ = "careless"

    def __init__(self, value):
        self.value = value
        self.sent = False

    def voicepipe_event(self, event, ctx):
        if event.get("type") == "session.updated" and not self.sent:
            self.sent = True
            ctx.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": self.value}]}})


def _circular():
    loop = {}
    loop["self"] = loop
    return loop


def _deep():
    value = []
    for _ in range(100_000):
        value = [value]
    return value


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), float("nan"), _circular(), _deep()],
                         ids=["bytes", "set", "object", "nan", "circular", "deep"])
def test_an_unsendable_ctx_send_is_the_plugins_fault_and_the_connection_stays(voicepipe_run, tmp_path, value):
    profile = write_profile(tmp_path, NO_RECONNECT, "[]\n")
    careless, driver = _CarelessSender(value), Driver(answers=1)
    result = voicepipe_run(profile, plugins=[careless, driver], emulator=False)
    assert result.exit_code == 0 and driver.answers == 1 and driver.disconnects == []
    assert "The answer to question 1." in result.read("transcript.txt")
    (failure,) = log_records(result, "plugin_error")
    assert failure["plugin"] == "careless" and failure["event_type"] == "session.updated"
    assert "ctx.send: the 'conversation.item.create' event cannot be sent as JSON" in failure["error"]
    assert log_records(result, "send_failed") == [] and log_records(result, "connection_lost") == []


class _SlowHook:
    __name__ = "slowpoke"

    def __init__(self, kind):
        self.kind = kind
        self.done = False

    def voicepipe_event(self, event, ctx):
        if event.get("type") != "session.updated" or self.done:
            return None
        self.done = True
        if self.kind == "sync":
            import time

            time.sleep(0.3)
            return None

        async def forever():
            import asyncio

            if self.kind == "sleep":
                await asyncio.sleep(3600)
            else:
                await asyncio.Event().wait()

        return forever()


@pytest.mark.parametrize("kind", ["sleep", "event", "sync"])
def test_a_hook_that_holds_up_the_reader_is_cut_off_and_reported(voicepipe_run, tmp_path, kind):
    profile = write_profile(tmp_path, NO_RECONNECT, "[]\n")
    slow, driver = _SlowHook(kind), Driver(answers=1)
    result = voicepipe_run(profile, plugins=[slow, driver], emulator=False,
                           overrides=["runtime.hook_timeout_s=0.2"])
    assert result.exit_code == 0 and driver.answers == 1
    (failure,) = log_records(result, "plugin_error")
    assert failure["plugin"] == "slowpoke" and failure["event_type"] == "session.updated"
    assert "runtime.hook_timeout_s" in failure["error"]


class _Vandal:
    """Changes every event of one type it is shown."""

    __name__ = "vandal"

    def __init__(self, event_type, change):
        self.event_type, self.change = event_type, change

    def voicepipe_event(self, event):
        if event.get("type") == self.event_type:
            self.change(event)


def _drop(key):
    return lambda event: event.pop(key)


def _set(key, value):
    def change(event):
        event[key] = value
    return change


@pytest.mark.parametrize("event_type, change", [
    ("response.done", _drop("response")),
    ("response.audio.delta", _set("delta", "!!not audio!!")),
    ("response.created", _set("type", "something.else")),
    ("response.audio_transcript.done", _set("transcript", None)),
], ids=["drop-response", "garble-audio", "retype", "blank-transcript"])
def test_a_plugin_that_changes_events_cannot_corrupt_them_for_the_others(voicepipe_run, tmp_path, event_type, change):
    profile = write_profile(tmp_path, NO_RECONNECT, "[]\n")
    driver = Driver(answers=1)
    result = voicepipe_run(profile, plugins=[driver, _Vandal(event_type, change)], emulator=False)
    assert result.exit_code == 0 and driver.answers == 1  # the driver runs after the vandal
    assert "The answer to question 1." in result.read("transcript.txt")
    seen = [e for e in result.server_events if e["type"] == event_type]
    assert seen and all(e == seen[0] or e.get("type") == event_type for e in seen)
    failures = log_records(result, "plugin_error")
    assert failures and {f["plugin"] for f in failures} == {"vandal"}
    assert "it changed the" in failures[0]["error"] and "put back" in failures[0]["error"]
    recorded = [json.loads(line)["event"] for line in result.read("events.jsonl").splitlines()]
    assert not any(e.get("type") == "something.else" for e in recorded)
    assert all(e.get("response") for e in recorded if e.get("type") == "response.done")
