"""A server of our own on loopback that sends what no sane service would: the session holds."""

import base64

import pytest
from hostile_server import HostileServer, log_records, run_against

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
