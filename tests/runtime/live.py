"""One live Canary world for the whole-system tests: `kopf run` on the real local control plane,
Prometheus scraping two workload exporters every second, and simulated traffic split by the
weights the operator writes into the real HTTPRoute. The live rollout test and the live replay
test share it. Each world has a namespace of its own."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollgate.api.status import RolloutStatus
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, PROMPTS, ROUTES
from tollgate.testing.traffic import TrafficSimulator
from tollgate.testing.workload import Profile, WorkloadExporter, pod_name


@dataclass
class Live:
    api: ClusterApi
    namespace: str
    prometheus: PrometheusServer
    canary: WorkloadExporter
    operator: OperatorProcess

    def status(self, name: str = "app", resource: str = CANARIES) -> RolloutStatus:
        return scenario.rollout_status(self.api, name, self.namespace, resource)


@asynccontextmanager
async def live_canary(
    cluster: ClusterAccess, tmp_path: Path, spec: dict[str, Any], seed: int
) -> AsyncIterator[Live]:
    """The Canary ``app`` with ``spec`` on a Deployment at app:1, 200 req/s of traffic."""
    ns = f"live-{secrets.token_hex(3)}"
    stable = WorkloadExporter(ns, pod_name("app-primary", 1), Profile()).start()
    canary = WorkloadExporter(ns, pod_name("app", 2), Profile()).start()
    prometheus = PrometheusServer(scrape_interval="1s", workdir=tmp_path / "prom")
    api = ClusterApi(cluster)
    api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    operator = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        namespace=ns,
        env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
    )
    itself = (f"127.0.0.1:{operator.metrics_port}", {"job": "tollgate"})  # its own /metrics
    prometheus.set_targets([stable.target, canary.target, itself])
    prometheus.start()
    try:
        api.create(DEPLOYMENTS, scenario.deployment("app", "app:1", namespace=ns))
        api.create(ROUTES, scenario.http_route("app", namespace=ns))
        api.create(CANARIES, scenario.canary("app", spec, namespace=ns))

        async def weight() -> float:
            return float(scenario.route_weight(api, "app", ns))

        async with TrafficSimulator(200.0, weight, stable, canary, seed=seed):
            with operator:
                try:
                    yield Live(api, ns, prometheus, canary, operator)
                finally:  # the operator's finalizers go while it still runs
                    await gone(api, ns)
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prometheus.close()
        stable.stop()
        canary.stop()


async def gone(api: ClusterApi, namespace: str, timeout: float = 30.0) -> None:
    """Delete the world's Canaries and PromptReleases and wait until their finalizers ran."""
    kinds = (CANARIES, PROMPTS)
    for kind in kinds:
        for obj in api.list_objects(kind, namespace):
            api.delete(kind, namespace, obj["metadata"]["name"])
    deadline = time.monotonic() + timeout
    while any(api.list_objects(kind, namespace) for kind in kinds):
        if time.monotonic() > deadline:
            return  # the namespace's deletion reports what is stuck
        await asyncio.sleep(0.2)


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for ``predicate``, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
