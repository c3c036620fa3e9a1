"""Prometheus endpoint for the metrics plugin (optional extra ``voicepipe-live[prometheus]``).

Enabled by ``metrics.prometheus_port`` in the profile; ``prometheus_client`` is imported only then.
Serves ``http://127.0.0.1:<port>/metrics`` from a daemon thread, with its own registry:

- a histogram per latency metric, in seconds as Prometheus expects
  (``voicepipe_voice_to_voice_seconds``, ``voicepipe_server_first_audio_seconds`` …), observed for
  every turn that was not interrupted and whose response is done;
- ``voicepipe_tokens_total{direction="input"|"output", kind="total"|"text"|"audio"|"cached"}``;
- ``voicepipe_turns_total``, ``voicepipe_interrupted_turns_total``;
- ``voicepipe_audio_generated_seconds_total``, ``voicepipe_audio_played_seconds_total``.

The endpoint belongs to the process, not to a session: sessions run in the same process with the
same port share one endpoint and add to the same series, and it stays up until the process exits
(or :func:`shutdown_servers`), so a scrape after a session still sees its last values.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Optional

from voicepipe.metrics_stats import LATENCY_METRICS, token_breakdown

INSTALL_HINT = "pip install 'voicepipe-live[prometheus]'"
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

_exporters: dict[int, "PrometheusExporter"] = {}
_lock = threading.Lock()


class PrometheusExporter:
    """The collectors of one endpoint; :meth:`observe` takes a ``metrics.jsonl`` record."""

    def __init__(self, prometheus_client: Any, registry: Any):
        histogram, counter = prometheus_client.Histogram, prometheus_client.Counter
        self.registry = registry
        self.server: Any = None
        self.latency = {
            name: histogram(
                f"voicepipe_{name[:-3]}_seconds",
                f"Per-turn {name[:-3].replace('_', ' ')} (see voicepipe.builtin.metrics)",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
            for name in LATENCY_METRICS
        }
        self.tokens = counter(
            "voicepipe_tokens", "Tokens reported by response.done", ["direction", "kind"], registry=registry
        )
        self.turns = counter("voicepipe_turns", "Responses recorded", registry=registry)
        self.interrupted = counter("voicepipe_interrupted_turns", "Responses interrupted", registry=registry)
        self.generated = counter(
            "voicepipe_audio_generated_seconds", "Assistant audio received", registry=registry
        )
        self.played = counter("voicepipe_audio_played_seconds", "Assistant audio played", registry=registry)

    def observe(self, record: Mapping[str, Any]) -> None:
        self.turns.inc()
        if record.get("interrupted"):
            self.interrupted.inc()
        elif record.get("status") is not None:
            for name, histogram in self.latency.items():
                value = record.get(name)
                if value is not None:
                    histogram.observe(value / 1000)
        for direction, kind, count in token_breakdown(record.get("usage")):
            if count > 0:
                self.tokens.labels(direction=direction, kind=kind).inc(count)
        if record.get("generated_ms"):
            self.generated.inc(record["generated_ms"] / 1000)
        if record.get("played_ms"):
            self.played.inc(record["played_ms"] / 1000)

    def close(self) -> None:
        """Nothing to do per session: the endpoint outlives the session."""


def open_exporter(port: int, log: Any) -> Optional[PrometheusExporter]:
    """The exporter serving ``port`` on loopback, started on first use; ``None`` (and one warning)
    when ``prometheus_client`` is missing or the port cannot be bound."""
    try:
        import prometheus_client
    except ImportError:
        log.warning(
            "metrics_exporter_missing",
            exporter="prometheus",
            setting="metrics.prometheus_port",
            hint=f"prometheus-client is not installed; {INSTALL_HINT}",
        )
        return None
    with _lock:
        exporter = _exporters.get(port)
        if exporter is not None:
            return exporter
        exporter = PrometheusExporter(prometheus_client, prometheus_client.CollectorRegistry())
        try:
            exporter.server, _thread = prometheus_client.start_http_server(
                port, addr="127.0.0.1", registry=exporter.registry
            )
        except OSError as exc:
            log.warning(
                "metrics_prometheus_port_unavailable",
                setting="metrics.prometheus_port",
                port=port,
                error=exc.strerror or str(exc),
                hint="choose a free port",
            )
            return None
        _exporters[port] = exporter
    log.info("metrics_prometheus_serving", url=f"http://127.0.0.1:{port}/metrics")
    return exporter


def shutdown_servers() -> None:
    """Stop every endpoint this process started."""
    with _lock:
        exporters = list(_exporters.values())
        _exporters.clear()
    for exporter in exporters:
        exporter.server.shutdown()
        exporter.server.server_close()
