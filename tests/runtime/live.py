"""One live Canary world for the whole-system tests: `kopf run`, the API test server, Prometheus
scraping two workload exporters every second, and simulated traffic split by the weights the
operator writes. The live rollout test and the live replay test share it."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollgate.testing import scenario
from tollgate.testing.controllers import DeploymentController
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, NS, ROUTES
from tollgate.testing.traffic import TrafficSimulator
from tollgate.testing.workload import Profile, WorkloadExporter, pod_name


@dataclass
class Live:
    api: KubeApiServer
    prometheus: PrometheusServer
    canary: WorkloadExporter
    operator: OperatorProcess


@asynccontextmanager
async def live_canary(tmp_path: Path, spec: dict[str, Any], seed: int) -> AsyncIterator[Live]:
    """The Canary ``app`` with ``spec`` on a Deployment at app:1, 200 req/s of traffic."""
    stable = WorkloadExporter(NS, pod_name("app-primary", 1), Profile()).start()
    canary = WorkloadExporter(NS, pod_name("app", 2), Profile()).start()
    prometheus = PrometheusServer(scrape_interval="1s", workdir=tmp_path / "prom")
    prometheus.set_targets([stable.target, canary.target])
    prometheus.start()
    try:
        async with KubeApiServer() as api, DeploymentController(api, delay=0.2):
            api.create(DEPLOYMENTS, scenario.deployment("app", "app:1"))
            api.create(ROUTES, scenario.http_route("app"))
            api.create(CANARIES, scenario.canary("app", spec))

            async def weight() -> float:
                return float(scenario.route_weight(api, "app"))

            operator = OperatorProcess(
                api.write_kubeconfig(tmp_path / "kubeconfig"),
                tmp_path / "operator.log",
                env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
            )
            async with TrafficSimulator(200.0, weight, stable, canary, seed=seed):
                with operator:
                    yield Live(api, prometheus, canary, operator)
    finally:
        prometheus.close()
        stable.stop()
        canary.stop()


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for ``predicate``, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
