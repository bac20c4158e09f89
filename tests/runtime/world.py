"""A deterministic world for reconcile tests: the API test server, a real Prometheus holding
backfilled history, and a clock the test moves. Every reconcile queries Prometheus at the
simulated time, so a rollout of several minutes replays in about a second."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.adapters.history import Workload, openmetrics
from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.api.status import Phase, RolloutStatus
from tollgate.runtime.canary import Outcome, reconcile_canary
from tollgate.runtime.settings import Settings
from tollgate.runtime.wiring import Wiring
from tollgate.testing import scenario
from tollgate.testing.controllers import DeploymentController
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, NS, ROUTES

END = 1_767_225_600  # history ends 2026-01-01T00:00:00Z
START = END - 3600

HEALTHY = {
    "error_share": 0.002,
    "latency_shares": (0.6, 0.9, 0.97, 1, 1),
    "ttft_shares": (0.6, 0.9, 0.97, 1, 1),
    "input_tokens_per_request": 800,
    "output_tokens_per_request": 300,
}


def workload(pod: str, rps: float, **over: Any) -> Workload:
    return Workload(NS, pod, rps=rps, **{**HEALTHY, **over})


def stable_and_canary(**canary: Any) -> list[Workload]:
    """History of a primary at 95 req/s and a canary at 10 req/s, the canary changed by kw."""
    return [
        workload("app-primary-5f6d7c8b9-fghij", 95),
        workload("app-7d9f8c6b5-abcde", 10, **canary),
    ]


def canary(**spec: Any) -> dict[str, Any]:
    """The Canary of these tests: 5% steps to 20% every 30 s, four built-in checks.

    The history's canary serves 10 req/s whatever the weight, so the tests resolve a canary
    four times worse than a limit (``detect: 4``) within the ten minutes a step may take.
    """
    body: dict[str, Any] = {
        "analysis": {
            "interval": "30s",
            "stepWeight": 5,
            "maxWeight": 20,
            "sequential": {"detect": 4},
        },
        "checks": {
            "latency": {"maxMilliseconds": 500, "maxIncreasePercent": 25},
            "errorRate": {"maxPercent": 1, "maxIncreasePoints": 0.5},
            "ttft": {"maxIncreasePercent": 25},
            "costPerRequest": {
                "pricing": {"inputPerMillionTokens": 2, "outputPerMillionTokens": 8},
                "maxIncreasePercent": 20,
            },
        },
    }
    body.update(spec)
    return scenario.canary("app", body)


@dataclass
class World:
    api: KubeApiServer
    prometheus: PrometheusServer
    wiring: Wiring
    controller: DeploymentController
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)

    def canary(self) -> dict[str, Any]:
        found = self.api.get(CANARIES, NS, "app")
        assert found is not None
        return found

    def status(self) -> RolloutStatus:
        return RolloutStatus.model_validate(self.canary().get("status") or {})

    def route_weight(self) -> int:
        return scenario.route_weight(self.api, "app")

    async def tick(self, seconds: float = 0.0) -> Outcome:
        """Advance the clock, let the deployment controller act, reconcile once."""
        self.now += timedelta(seconds=seconds)
        self.controller.sweep(self.now.timestamp())
        outcome = await reconcile_canary(self.canary(), self.wiring)
        self.outcomes.append(outcome)
        self.controller.sweep(self.now.timestamp())
        return outcome

    async def run_until(self, done: Any, *, step: float = 5.0, limit: int = 400) -> None:
        for _ in range(limit):
            if done(self):
                return
            if self.status().phase is Phase.ROLLED_BACK:
                break  # terminal and not what was awaited
            await self.tick(step)
        raise AssertionError(f"not reached; status: {self.status().phase} {self.status().message}")

    def release(self, image: str) -> None:
        """GitOps changes the target's pod template."""
        self.api.patch(
            DEPLOYMENTS,
            NS,
            "app",
            {"spec": {"template": {"spec": {"containers": [scenario.container(image)]}}}},
        )


@asynccontextmanager
async def world(history: list[Workload], **spec: Any) -> AsyncIterator[World]:
    prometheus = PrometheusServer()
    prometheus.backfill(openmetrics(history, START, END))
    prometheus.start()
    try:
        async with KubeApiServer() as api:
            http = httpx.AsyncClient()
            kube = KubeClient(httpx.AsyncClient(base_url=api.url, timeout=5.0))
            wiring = Wiring(
                settings=Settings(prometheus_url=prometheus.url),
                kube=kube,
                http=http,
                metrics=MetricsBatcher(
                    lambda url: PrometheusClient(url, 5.0, client=http), window=0.0
                ),
                counts=CountReader(lambda url: PrometheusClient(url, 5.0, client=http)),
            )
            clock = World(
                api,
                prometheus,
                wiring,
                DeploymentController(api),
                datetime.fromtimestamp(START + 600, tz=UTC),
            )
            wiring.now = lambda: clock.now
            api.create(DEPLOYMENTS, scenario.deployment("app", "app:1", replicas=2))
            api.create(ROUTES, scenario.http_route("app"))
            api.create(CANARIES, canary(**spec))
            try:
                yield clock
            finally:
                await wiring.aclose()
    finally:
        prometheus.close()
