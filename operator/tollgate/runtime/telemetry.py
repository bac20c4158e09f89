"""The operator's own metrics, served on /metrics for Prometheus (the chart's ServiceMonitor).

What a platform team alerts and draws on (the chart's Grafana dashboard): each rollout's
phase, canary weight and step, each check canary against stable and its verdict; the decisions
taken, by reason; the time to a rollback and to a promotion; how long reconciles take and how
many fail. Recorded from the
status a reconcile just wrote (or read, when it wrote nothing), so the metrics never claim a
state the API server does not hold. A rollout's series go with the object. The endpoint runs
on the operator's event loop (rendering the registry is a few microseconds per series) and is
off unless an address is set (``tollgate run --metrics``, TOLLGATE_METRICS_ADDRESS).
"""

import contextlib
import logging
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tollgate.api.status import Phase, RolloutStatus, Verdict

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
            "Decisions recorded (a new phase, step or reason), by reason.",
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
        self.check_value = Gauge(
            "tollgate_check_value",
            "A check's value in the last analysis, for the canary and the stable version.",
            [*OBJECT, "check", "version"],
            registry=self.registry,
        )
        self.check_verdict = Gauge(
            "tollgate_check_verdict",
            "1 for a check's verdict in the last analysis (one series per verdict).",
            [*OBJECT, "check", "verdict"],
            registry=self.registry,
        )
        self.time_to_rollback = self._span(
            "rollback", "From a version's first traffic to the decision to roll it back."
        )
        self.time_to_promotion = self._span(
            "promotion", "From a version's first traffic to its promotion."
        )
        for kind in ("Canary", "PromptRelease"):  # a quiet operator still has the series
            self.failures.labels(kind)
            self.time_to_rollback.labels(kind)
            self.time_to_promotion.labels(kind)
        self._checks: dict[tuple[str, str, str], set[str]] = {}
        self._runner: web.AppRunner | None = None

    def _span(self, ending: str, documentation: str) -> Histogram:
        return Histogram(
            f"tollgate_time_to_{ending}_seconds",
            documentation,
            ["kind"],
            buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
            registry=self.registry,
        )

    def observe(self, kind: str, namespace: str, name: str, status: RolloutStatus) -> None:
        """Set a rollout's series from its status."""
        for phase in Phase:
            self.phase.labels(kind, namespace, name, phase.value).set(status.phase is phase)
        self.weight.labels(kind, namespace, name).set(status.canary_weight)
        self.step.labels(kind, namespace, name).set(status.current_step)
        key = (kind, namespace, name)
        names = {check.name for check in status.checks}
        for gone in self._checks.get(key, set()) - names:
            self._forget_check(key, gone)
        self._checks[key] = names
        for check in status.checks:
            for version, value in (("canary", check.canary_value), ("stable", check.stable_value)):
                if value is None:
                    _remove(self.check_value, *key, check.name, version)
                else:
                    self.check_value.labels(*key, check.name, version).set(value)
            for verdict in Verdict:
                self.check_verdict.labels(*key, check.name, verdict.value).set(
                    check.verdict is verdict
                )

    def ended(self, kind: str, status: RolloutStatus, before: RolloutStatus, now: datetime) -> None:
        """A rollback or a promotion decided now: how long since the version's first traffic."""
        started = status.rollout_started_at
        if started is None or before.phase is status.phase:
            return
        took = max(0.0, (now - started).total_seconds())
        if status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and before.phase not in (
            Phase.ROLLING_BACK,
            Phase.ROLLED_BACK,
        ):
            self.time_to_rollback.labels(kind).observe(took)
        elif status.phase is Phase.SUCCEEDED and status.reason == "Promoted":
            self.time_to_promotion.labels(kind).observe(took)

    def _forget_check(self, key: tuple[str, str, str], check: str) -> None:
        for version in ("canary", "stable"):
            _remove(self.check_value, *key, check, version)
        for verdict in Verdict:
            _remove(self.check_verdict, *key, check, verdict.value)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a rollout's series (the object is gone)."""
        for phase in Phase:
            _remove(self.phase, kind, namespace, name, phase.value)
        _remove(self.weight, kind, namespace, name)
        _remove(self.step, kind, namespace, name)
        for check in self._checks.pop((kind, namespace, name), set()):
            self._forget_check((kind, namespace, name), check)

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
