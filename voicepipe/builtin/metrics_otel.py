"""OpenTelemetry metrics for the metrics plugin (optional extra ``voicepipe-live[otel]``).

Enabled by ``metrics.otel: true``; ``opentelemetry`` is imported only then. Instruments are made on
the global ``MeterProvider`` (meter ``voicepipe``), so the exporter is whatever the process
configured: run under ``opentelemetry-instrument`` or set a provider from a plugin's
``voicepipe_configure``. With no provider configured the measurements would be dropped, and a
warning says so.

- ``voicepipe.turn.<metric>`` histograms in seconds (``voicepipe.turn.voice_to_voice``,
  ``voicepipe.turn.server_first_audio`` …), recorded for turns that were not interrupted and whose
  response is done;
- ``gen_ai.client.token.usage`` (unit ``{token}``, attribute ``gen_ai.token.type`` = ``input`` or
  ``output``), one measurement per response, as in the GenAI semantic conventions;
- ``voicepipe.tokens`` counter with ``direction`` and ``kind`` (``total``, ``text``, ``audio``,
  ``cached``) for the breakdown the conventions do not cover;
- ``voicepipe.turns`` counter with the boolean attribute ``interrupted``.

Instruments are created once per provider and shared by the sessions of the process. The SDK
exports on its own schedule and flushes when the process exits.
"""

from __future__ import annotations

import weakref
from typing import Any, Mapping, Optional

from voicepipe import __version__
from voicepipe.metrics_stats import LATENCY_METRICS, token_breakdown

INSTALL_HINT = "pip install 'voicepipe-live[otel]'"
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_UNCONFIGURED_PROVIDERS = ("_ProxyMeterProvider", "NoOpMeterProvider")

_instruments: "weakref.WeakKeyDictionary[Any, OtelExporter]" = weakref.WeakKeyDictionary()


class OtelExporter:
    """The instruments on one meter; :meth:`observe` takes a ``metrics.jsonl`` record."""

    def __init__(self, meter: Any):
        self.latency = {
            name: meter.create_histogram(
                f"voicepipe.turn.{name[:-3]}",
                unit="s",
                description=f"Per-turn {name[:-3].replace('_', ' ')} (see voicepipe.builtin.metrics)",
                explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
            )
            for name in LATENCY_METRICS
        }
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per response"
        )
        self.tokens = meter.create_counter("voicepipe.tokens", unit="{token}", description="Tokens by kind")
        self.turns = meter.create_counter("voicepipe.turns", unit="{turn}", description="Responses recorded")

    def observe(self, record: Mapping[str, Any]) -> None:
        interrupted = bool(record.get("interrupted"))
        self.turns.add(1, {"interrupted": interrupted})
        if not interrupted and record.get("status") is not None:
            for name, histogram in self.latency.items():
                value = record.get(name)
                if value is not None:
                    histogram.record(value / 1000)
        for direction, kind, count in token_breakdown(record.get("usage")):
            if kind == "total":
                self.token_usage.record(count, {"gen_ai.token.type": direction})
            if count > 0:
                self.tokens.add(count, {"direction": direction, "kind": kind})

    def close(self) -> None:
        """Nothing to do per session: the provider exports on its own schedule."""


def open_exporter(log: Any) -> Optional[OtelExporter]:
    """The exporter on the global meter provider; ``None`` (and one warning) without ``opentelemetry``."""
    try:
        from opentelemetry import metrics
    except ImportError:
        log.warning(
            "metrics_exporter_missing",
            exporter="otel",
            setting="metrics.otel",
            hint=f"opentelemetry is not installed; {INSTALL_HINT}",
        )
        return None
    provider = metrics.get_meter_provider()
    if type(provider).__name__ in _UNCONFIGURED_PROVIDERS:
        log.warning(
            "metrics_otel_no_provider",
            setting="metrics.otel",
            hint="no OpenTelemetry MeterProvider is configured, so measurements are dropped; "
            "run under opentelemetry-instrument or set one in a plugin's voicepipe_configure",
        )
    try:
        exporter = _instruments.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced
        return OtelExporter(provider.get_meter("voicepipe", __version__))
    if exporter is None:
        exporter = OtelExporter(provider.get_meter("voicepipe", __version__))
        _instruments[provider] = exporter
    return exporter
