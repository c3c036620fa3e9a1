"""``/metrics`` of a serving process, in the Prometheus text format (extra ``voicepipe-live[serve]``).

- ``voicepipe_serve_active_sessions{profile}``: sessions in progress (what an autoscaler follows);
- ``voicepipe_serve_session_capacity``: sessions the process admits at once;
- ``voicepipe_serve_sessions_started_total{profile}``,
  ``voicepipe_serve_sessions_ended_total{profile,reason}``,
  ``voicepipe_serve_refused_total{profile,reason}`` (``origin``, ``unauthorized``, ``capacity``,
  ``draining``, ``message_rate``, ``message_size``, ...);
- the metrics plugin's per-turn series (``voicepipe_voice_to_voice_seconds`` and the other latency
  histograms, tokens, turns; see :mod:`voicepipe.builtin.metrics_prometheus`), fed by every
  session's metrics plugin through a sink the host registers per session: one observation per
  finished turn, nothing per audio chunk.

Each application has its own ``CollectorRegistry``. Under several workers
(``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is imported, as ``voicepipe serve
--workers`` does) the values live in that folder and a scrape of any worker reads all of them
(``MultiProcessCollector``), gauges summed over the live workers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

from voicepipe import hookimpl

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
INSTALL_HINT = "pip install 'voicepipe-live[serve]'"


class ServeMetrics:
    """The process's collectors; the host calls :meth:`session_started` and the others."""

    def __init__(self, prometheus_client: Any, profiles: Iterable[str], capacity: int):
        from voicepipe.builtin.metrics_prometheus import PrometheusExporter

        self._client = prometheus_client
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # multiprocess: the values go to files, read back by a collector at each scrape
        registry = None if self.multiprocess else prometheus_client.CollectorRegistry()
        self.registry = registry
        gauge, counter = prometheus_client.Gauge, prometheus_client.Counter
        self.active = gauge("voicepipe_serve_active_sessions", "Sessions in progress", ["profile"],
                            registry=registry, multiprocess_mode="livesum")
        self.capacity = gauge("voicepipe_serve_session_capacity", "Sessions admitted at once",
                              registry=registry, multiprocess_mode="livesum")
        self.started = counter("voicepipe_serve_sessions_started", "Sessions started", ["profile"], registry=registry)
        self.ended = counter("voicepipe_serve_sessions_ended", "Sessions ended, by reason", ["profile", "reason"],
                             registry=registry)
        self.refusals = counter("voicepipe_serve_refused", "Callers refused, by reason", ["profile", "reason"],
                                registry=registry)
        self.turns = PrometheusExporter(prometheus_client, registry)
        self.capacity.set(capacity)
        for name in profiles:  # the series exist from the start, at 0
            self.active.labels(profile=name)
            self.started.labels(profile=name)

    def session_started(self, profile: str) -> None:
        self.active.labels(profile=profile).inc()
        self.started.labels(profile=profile).inc()

    def session_ended(self, profile: str, reason: str) -> None:
        self.active.labels(profile=profile).dec()
        self.ended.labels(profile=profile, reason=reason).inc()

    def refused(self, profile: str, reason: str) -> None:
        self.refusals.labels(profile=profile, reason=reason).inc()

    def session_plugin(self) -> "TurnSink":
        """A session's plugin that hands its finished turns to the latency histograms."""
        return TurnSink(self.turns)

    def render(self) -> tuple[bytes, str]:
        """The exposition: body and content type."""
        client = self._client
        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return client.generate_latest(registry), client.CONTENT_TYPE_LATEST


class TurnSink:
    """Registered in each session's plugin manager: adds the serving process's exporter to the
    session's metrics plugin (``ctx.stash["metrics"].sinks``) once that plugin has started."""

    def __init__(self, exporter: Any):
        self.exporter = exporter

    @hookimpl(trylast=True)
    def voicepipe_session_start(self, ctx: Any) -> None:
        sinks = getattr(ctx.stash.get("metrics"), "sinks", None)
        if isinstance(sinks, list):
            sinks.append(self.exporter)


def open_metrics(profiles: Iterable[str], capacity: int) -> Optional[ServeMetrics]:
    """The process's metrics, or ``None`` when prometheus-client is not installed."""
    try:
        import prometheus_client
    except ImportError:
        return None
    return ServeMetrics(prometheus_client, profiles, capacity)


def metrics_folder() -> tuple[Path, bool]:
    """The multiprocess metrics folder, emptied, set in the environment before prometheus_client is
    imported (then inherited by the workers); whether it is a temporary one to remove after."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # values of an earlier run would add up with ours
            stale.unlink()
        return folder, False
    folder = Path(tempfile.mkdtemp(prefix="voicepipe-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder, True


def remove_metrics_folder(folder: Path) -> None:
    """The temporary folder of :func:`metrics_folder` removed, and taken out of the environment."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == str(folder):
        del os.environ[MULTIPROC_ENV]


def mark_process_dead(pid: int) -> None:
    """Forget a worker that exited (its live gauges stop counting); multiprocess mode only."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
