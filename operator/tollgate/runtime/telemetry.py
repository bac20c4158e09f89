"""The operator's own metrics, served on /metrics for Prometheus (the chart's ServiceMonitor).

What a platform team alerts and draws on: each rollout's phase, canary weight and step; the
decisions taken, by reason; how long reconciles take and how many fail. Recorded from the
status a reconcile just wrote (or read, when it wrote nothing), so the metrics never claim a
state the API server does not hold. A rollout's series go with the object. The endpoint runs
on the operator's event loop (rendering the registry is a few microseconds per series) and is
off unless an address is set (``tollgate run --metrics``, TOLLGATE_METRICS_ADDRESS).
"""

import contextlib
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tollgate.api.status import Phase, RolloutStatus

log = logging.getLogger("tollgate.telemetry")
OBJECT = ("kind", "namespace", "name")


class Telemetry:
    """One registry of the operator's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.phase = Gauge(
            "tollgate_rollout_phase",
            "1 for the phase a rollout is in (one series per phase, 0 for the others).",
            [*OBJECT, "phase"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "tollgate_rollout_canary_weight_percent",
            "Percent of traffic on the new version, as recorded in status.",
            OBJECT,
            registry=self.registry,
        )
        self.step = Gauge(
            "tollgate_rollout_step",
            "Current step of the rollout's plan (0: all traffic on stable).",
            OBJECT,
            registry=self.registry,
        )
        self.decisions = Counter(
            "tollgate_decisions",
            "Status changes recorded, by the reason of the decision.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.reconciles = Histogram(
            "tollgate_reconcile_duration_seconds",
            "Wall time of one reconcile (reads, queries, decision, writes).",
            ["kind"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.failures = Counter(
            "tollgate_reconcile_failures",
            "Reconciles that raised (each is reported as a ReconcileFailed Event).",
            ["kind"],
            registry=self.registry,
        )
        self._runner: web.AppRunner | None = None

    def observe(self, kind: str, namespace: str, name: str, status: RolloutStatus) -> None:
        """Set a rollout's series from its status."""
        for phase in Phase:
            self.phase.labels(kind, namespace, name, phase.value).set(status.phase is phase)
        self.weight.labels(kind, namespace, name).set(status.canary_weight)
        self.step.labels(kind, namespace, name).set(status.current_step)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a rollout's series (the object is gone)."""
        for phase in Phase:
            _remove(self.phase, kind, namespace, name, phase.value)
        _remove(self.weight, kind, namespace, name)
        _remove(self.step, kind, namespace, name)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, address: str) -> None:
        """Serve /metrics on ``host:port``; a port taken is a warning, not a crash."""
        host, _, port = address.rpartition(":")

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
        except (OSError, ValueError) as exc:
            log.warning("metrics not served on %s: %s", address, exc)
            await runner.cleanup()
            return
        self._runner = runner
        log.info("metrics on http://%s/metrics", address)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(*labels)
