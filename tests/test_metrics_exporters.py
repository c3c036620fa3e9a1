"""The optional Prometheus and OpenTelemetry exporters of the metrics plugin."""

import socket
import sys
import urllib.request

import pytest

from test_metrics import Session

from voicepipe.builtin import metrics_prometheus


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_turns(session):
    """One played turn and one interrupted turn, both with the recorded usage."""
    session.start_input(0.0, chunk_ms=0)
    session.vad_turn(10.0, "r1", audio_end_ms=9700)  # voice to voice 750 ms, first audio 400 ms
    session.server(20.0, "response.created", response={"id": "r2"})
    session.server(20.1, "response.audio.delta", response_id="r2", item_id="i2", delta="AAAA")
    session.playback(20.2, "playback.started", "i2", "r2")
    session.playback(20.3, "playback.interrupted", "i2", "r2", played_ms=100.0)
    session.server(20.4, "response.done", response={"id": "r2", "status": "cancelled", "usage": {"input_tokens": 6}})
    session.end(30.0)


def warnings_named(session, name):
    return [fields for event, fields in session.log.level("warning") if event == name]


# -- missing extras ----------------------------------------------------------------------------------


def test_a_missing_prometheus_client_is_one_warning_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes the import fail
    session = Session(tmp_path, settings={"prometheus_port": free_port(), "table": False})
    run_two_turns(session)
    [warning] = warnings_named(session, "metrics_exporter_missing")
    assert warning["exporter"] == "prometheus"
    assert "pip install 'voicepipe-live[prometheus]'" in warning["hint"]
    assert len(session.log.level("warning")) == 1
    assert session.summary()["turns"] == 2  # the files are written all the same


def test_a_missing_opentelemetry_is_one_warning_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    session = Session(tmp_path, settings={"otel": True, "table": False})
    run_two_turns(session)
    [warning] = warnings_named(session, "metrics_exporter_missing")
    assert warning["exporter"] == "otel"
    assert "pip install 'voicepipe-live[otel]'" in warning["hint"]
    assert session.summary()["turns"] == 2


def test_a_port_in_use_is_a_warning_not_a_crash(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        session = Session(tmp_path, settings={"prometheus_port": port, "table": False})
        run_two_turns(session)
    [warning] = warnings_named(session, "metrics_prometheus_port_unavailable")
    assert warning["port"] == port
    assert session.summary()["turns"] == 2


# -- Prometheus --------------------------------------------------------------------------------------


def test_the_prometheus_endpoint_serves_the_turn_metrics_on_loopback(tmp_path):
    port = free_port()
    try:
        session = Session(tmp_path, settings={"prometheus_port": port, "table": False})
        run_two_turns(session)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        metrics_prometheus.shutdown_servers()
    lines = set(body.splitlines())
    # the interrupted turn is counted but kept out of the latency histograms
    assert "voicepipe_turns_total 2.0" in lines
    assert "voicepipe_interrupted_turns_total 1.0" in lines
    assert "voicepipe_voice_to_voice_seconds_count 1.0" in lines
    assert "voicepipe_voice_to_voice_seconds_sum 0.75" in lines
    assert 'voicepipe_voice_to_voice_seconds_bucket{le="0.75"} 1.0' in lines
    assert 'voicepipe_voice_to_voice_seconds_bucket{le="0.5"} 0.0' in lines
    assert "voicepipe_server_first_audio_seconds_count 1.0" in lines
    for name in ("playout_delay", "response_duration", "tool", "first_audio_from_create", "vad_tail"):
        assert f"# TYPE voicepipe_{name}_seconds histogram" in lines
    # tokens of both turns, the interrupted one included
    assert 'voicepipe_tokens_total{direction="input",kind="total"} 50.0' in lines
    assert 'voicepipe_tokens_total{direction="output",kind="audio"} 72.0' in lines
    [played] = [line for line in lines if line.startswith("voicepipe_audio_played_seconds_total ")]
    assert float(played.split()[1]) == pytest.approx(0.3)


def test_sessions_sharing_a_port_share_one_endpoint(tmp_path):
    port = free_port()
    try:
        first = Session(tmp_path / "a", settings={"prometheus_port": port, "table": False})
        second = Session(tmp_path / "b", settings={"prometheus_port": port, "table": False})
        run_two_turns(first)
        run_two_turns(second)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        metrics_prometheus.shutdown_servers()
    assert "voicepipe_turns_total 4.0" in body.splitlines()
    assert not warnings_named(second, "metrics_prometheus_port_unavailable")


# -- OpenTelemetry -----------------------------------------------------------------------------------


def test_opentelemetry_histograms_and_token_usage(tmp_path, monkeypatch):
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(otel_metrics, "get_meter_provider", lambda: provider)
    session = Session(tmp_path, settings={"otel": True, "table": False})
    run_two_turns(session)
    assert not session.log.level("warning")

    found = {
        metric.name: metric.data.data_points
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    [v2v] = found["voicepipe.turn.voice_to_voice"]
    assert (v2v.count, v2v.sum) == (1, pytest.approx(0.75))
    assert 0.75 in v2v.explicit_bounds
    usage = {dict(p.attributes)["gen_ai.token.type"]: p.sum for p in found["gen_ai.client.token.usage"]}
    assert usage == {"input": 50, "output": 99}
    turns = {dict(p.attributes)["interrupted"]: p.value for p in found["voicepipe.turns"]}
    assert turns == {False: 1, True: 1}
    tokens = {(dict(p.attributes)["direction"], dict(p.attributes)["kind"]): p.value for p in found["voicepipe.tokens"]}
    assert tokens[("input", "audio")] == 30
    provider.shutdown()


def test_opentelemetry_without_a_configured_provider_warns_that_measurements_are_dropped(tmp_path):
    from opentelemetry import metrics as otel_metrics

    if type(otel_metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider":
        pytest.fail("a global MeterProvider was set by another test; this test needs the default one")
    session = Session(tmp_path, settings={"otel": True, "table": False})
    run_two_turns(session)
    [warning] = warnings_named(session, "metrics_otel_no_provider")
    assert "opentelemetry-instrument" in warning["hint"]
