"""A server of our own on loopback that sends what no sane service would: the session holds."""

import base64
import json

import pytest
from hostile_server import HostileServer, log_records, run_against

from voicepipe.errors import SessionError
from voicepipe.reconnect import AttemptBudget, ReconnectPolicy
from voicepipe.serverbounds import enforce_bounds

# -- values that size, pace or allocate ------------------------------------------------------------


@pytest.mark.parametrize("rate", [-16000, -1, 10**12, 16000.5, 1e-3, "fast", True, [24000], 7999, 48001])
def test_an_input_rate_out_of_bounds_is_replaced_by_the_requested_one(tmp_path, monkeypatch, rate):
    async def script(peer):
        await peer.configure(input_audio_sampling_rate=rate)
        await peer.drain()

    with HostileServer(script) as server:
        result = run_against(server, tmp_path, monkeypatch, duration=0.3,
                             overrides=("session.input_audio_sampling_rate=16000",))
    assert result.exit_code == 0 and result.reason == "duration"
    (problem,) = log_records(result.run_dir, "server_value_out_of_bounds")
    assert problem["field"] == "input_audio_sampling_rate" and problem["using"] == 16000
    (started,) = log_records(result.run_dir, "audio_started")
    assert started["input_rate"] == 16000
    updated = [e for e in result.server_events if e["type"] == "session.updated"]
    assert updated[0]["session"]["input_audio_sampling_rate"] == 16000  # plugins see the bounded value
    appends = [e for e in server.peers[0].received if e["type"] == "input_audio_buffer.append"]
    assert appends and {len(base64.b64decode(e["audio"])) for e in appends} == {16000 * 2 * 20 // 1000}


@pytest.mark.parametrize("rate", [-24000, 2**40, 22050.25])
def test_a_bad_rate_without_a_requested_one_falls_back_to_the_default(tmp_path, monkeypatch, rate):
    async def script(peer):
        await peer.configure(input_audio_sampling_rate=rate, output_audio_sampling_rate=rate)
        await peer.drain()

    with HostileServer(script) as server:
        result = run_against(server, tmp_path, monkeypatch, duration=0.3)
    assert result.exit_code == 0
    problems = log_records(result.run_dir, "server_value_out_of_bounds")
    assert sorted(p["field"] for p in problems) == ["input_audio_sampling_rate", "output_audio_sampling_rate"]
    assert {p["using"] for p in problems} == {"the default"}
    (started,) = log_records(result.run_dir, "audio_started")
    assert started["input_rate"] == 24000


def test_sound_values_pass_and_whole_floats_become_integers():
    session = {"input_audio_sampling_rate": 16000.0, "output_audio_sampling_rate": 24000, "input_audio_format": "pcm16"}
    assert enforce_bounds(session, {}) == []
    assert session == {"input_audio_sampling_rate": 16000, "output_audio_sampling_rate": 24000, "input_audio_format": "pcm16"}
    assert type(session["input_audio_sampling_rate"]) is int


def test_a_format_that_is_not_text_is_replaced():
    session = {"output_audio_format": {"huge": 1}, "input_audio_format": 7}
    problems = enforce_bounds(session, {"input_audio_format": "pcm16"})
    assert session == {"input_audio_format": "pcm16"}
    assert sorted(p["field"] for p in problems) == ["input_audio_format", "output_audio_format"]


# -- a server that accepts the session and drops it, again and again --------------------------------


async def _configure_then_close(peer):
    await peer.configure()
    await peer.close(1011, "internal error")


async def _configure_answer_then_close(peer):
    await peer.configure()
    await peer.send({"type": "response.created", "event_id": "ev_2", "response": {"id": f"resp_{peer.number}"}})
    await peer.close(4000, "going away")


async def _configure_then_abort(peer):
    await peer.configure()
    peer.ws._writer.transport.abort()  # no close frame: a lost network


@pytest.mark.parametrize("script", [_configure_then_close, _configure_answer_then_close, _configure_then_abort])
def test_reconnects_are_bounded_within_a_window_and_back_off(tmp_path, monkeypatch, script):
    with HostileServer(script) as server:
        with pytest.raises(SessionError) as failure:
            run_against(server, tmp_path, monkeypatch, reconnect="{attempts: 3, initial_delay_s: 0.01, window_s: 600}")
    assert len(server.peers) == 4  # the first connection and three attempts, however each was configured
    message = str(failure.value)
    assert message.startswith("the connection was lost and 3 reconnect attempt(s) within 600 s did not keep it")
    run_dir = tmp_path / "run"
    assert [r["attempt"] for r in log_records(run_dir, "reconnecting")] == [1, 2, 3]
    (gave_up,) = log_records(run_dir, "reconnect_gave_up")
    assert gave_up["attempts"] == 3
    transcript = (run_dir / "transcript.txt").read_text().splitlines()
    assert transcript[-1].endswith(f"-- session ended: {message} --")


def test_the_backoff_grows_with_each_attempt_in_the_window():
    policy = ReconnectPolicy(attempts=4, initial_delay_s=1, max_delay_s=100, window_s=10)
    budget = AttemptBudget(policy)
    numbers = [budget.take(t) for t in (0, 1, 2, 3, 4)]
    assert numbers == [1, 2, 3, 4, 0]  # the fifth within 10 s is refused
    assert [policy.delay(n, rng=lambda: 1.0) for n in numbers[:4]] == [1, 2, 4, 8]
    assert budget.take(10.5) == 4  # the attempt at 0 has left the window; the one at 1 still counts


def test_window_s_is_validated(tmp_path):
    from voicepipe.errors import ProfileError
    from voicepipe.profile import load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text("connection: {endpoint: emulator, model: m, reconnect: {window_s: -1}}\n")
    with pytest.raises(ProfileError) as failure:
        load_profile(profile)
    assert "connection.reconnect.window_s" in str(failure.value)


# -- a flood of malformed frames ---------------------------------------------------------------------


@pytest.mark.parametrize("frame, event", [("{not json", "malformed_server_frame"),
                                          ('{"type": "response.done", "response": "???"}', "malformed_server_event")])
def test_malformed_frames_are_logged_at_a_bounded_rate(tmp_path, monkeypatch, frame, event):
    async def script(peer):
        await peer.configure()
        for _ in range(2500):
            await peer.send_raw(frame)
        await peer.close(1000)

    with HostileServer(script) as server:
        result = run_against(server, tmp_path, monkeypatch)
    assert result.exit_code == 0 and result.reason == "server_closed"
    logged = log_records(result.run_dir, event)
    assert len(logged) == 10 + 2  # the first ten, then the 1000th and the 2000th with the count
    assert [r.get("repeated") for r in logged[10:]] == [1000, 2000]
    (total,) = log_records(result.run_dir, f"{event}s_total")
    assert total["count"] == 2500


# -- a message too big: not a transient fault ---------------------------------------------------------


async def _send_a_huge_frame(peer):
    await peer.configure()
    await peer.send({"type": "response.text.delta", "delta": "x" * (5 * 1024 * 1024)})
    await peer.drain()


async def _close_with_1009(peer):
    await peer.configure()
    await peer.close(1009, "message too big")


@pytest.mark.parametrize("script, words", [
    (_send_a_huge_frame, "the server sent a message larger than the client accepts (4 MiB, the SDK's limit)"),
    (_close_with_1009, "the server closed the connection because a message was too big (close code 1009)"),
])
def test_a_message_too_big_ends_the_session_without_reconnecting(tmp_path, monkeypatch, script, words):
    with HostileServer(script) as server:
        with pytest.raises(SessionError) as failure:
            run_against(server, tmp_path, monkeypatch, reconnect="{attempts: 3, initial_delay_s: 0.01}")
    assert len(server.peers) == 1
    message = str(failure.value)
    assert message.startswith(words) and "reconnecting would not help" in message
    assert "reconnect.attempts" not in message


# -- ids that repeat across connections ----------------------------------------------------------------


def _answer_events(audio_end_ms: int) -> list:
    audio = base64.b64encode(bytes(4800)).decode()
    return [
        {"type": "input_audio_buffer.speech_stopped", "event_id": "e1", "audio_end_ms": audio_end_ms, "item_id": "item_u"},
        {"type": "response.created", "event_id": "e2", "response": {"id": "resp_1", "status": "in_progress"}},
        {"type": "response.output_item.added", "event_id": "e3", "response_id": "resp_1",
         "item": {"id": "item_1", "type": "message", "role": "assistant"}},
        {"type": "response.audio.delta", "event_id": "e4", "response_id": "resp_1", "item_id": "item_1", "delta": audio},
        {"type": "response.audio.done", "event_id": "e5", "response_id": "resp_1", "item_id": "item_1"},
        {"type": "response.done", "event_id": "e6", "response": {"id": "resp_1", "status": "completed"}},
    ]


@pytest.mark.parametrize("drop_after", [1, 2, 4, 5])
def test_latencies_are_never_negative_when_ids_repeat_after_a_reconnect(tmp_path, monkeypatch, drop_after):
    async def script(peer):
        await peer.configure()
        events = _answer_events(0)
        for event in events[:drop_after] if peer.number == 1 else events:
            await peer.send(event)
        if peer.number == 1:
            await peer.close(1011)
        else:
            await peer.close(1000)

    with HostileServer(script) as server:
        result = run_against(server, tmp_path, monkeypatch, reconnect="{attempts: 2, initial_delay_s: 0.01}")
    assert result.exit_code == 0 and len(server.peers) == 2
    records = [json.loads(line) for line in result.read("metrics.jsonl").splitlines()]
    latencies = [value for record in records for key, value in record.items()
                 if key.endswith("_ms") and isinstance(value, (int, float))]
    assert latencies and min(latencies) >= 0, records
    (answered,) = [r for r in records if r["status"] == "completed"]  # the second connection's answer
    assert answered["server_first_audio_ms"] is not None and answered["response_duration_ms"] is not None


# -- a response that stalls while pings are still answered ---------------------------------------------


@pytest.mark.parametrize("stall_after", [1, 2, 3])
def test_a_stalled_response_is_a_lost_connection(tmp_path, monkeypatch, stall_after):
    async def script(peer):
        await peer.configure()
        events = _answer_events(0)[1:]  # response.created, item, audio, audio.done, response.done
        if peer.number == 1:
            for event in events[:stall_after]:
                await peer.send(event)
            await peer.drain()  # silent from here on; aiohttp still answers pings
            return
        for event in events:
            await peer.send(event)
        await peer.close(1000)

    with HostileServer(script) as server:
        result = run_against(server, tmp_path, monkeypatch, reconnect="{attempts: 2, initial_delay_s: 0.01}",
                             overrides=("connection.response_timeout_s=0.5",))
    assert result.exit_code == 0 and result.reason == "server_closed"
    assert len(server.peers) == 2
    (stalled,) = log_records(result.run_dir, "response_stalled")
    assert stalled["message"] == "nothing arrived for 0.5 s during a response"
    assert [e["type"] for e in result.server_events].count("response.done") == 1


def test_response_timeout_s_is_validated(tmp_path):
    from voicepipe.errors import ProfileError
    from voicepipe.profile import load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text("connection: {endpoint: emulator, model: m, response_timeout_s: 0}\n")
    with pytest.raises(ProfileError) as failure:
        load_profile(profile)
    assert "connection.response_timeout_s" in str(failure.value)
