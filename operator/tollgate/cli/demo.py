"""`tollgate demo`: a whole release cycle on a local Kubernetes control plane.

What runs is real apart from the workloads' traffic: a control plane built from Go modules
(etcd, kube-apiserver, controller-manager, scheduler, kwok's nodes; ``make tools``), the
operator as `kopf run` against it, a real Prometheus scraping two simulated workloads (the
stable and the canary Deployment's pods), and simulated traffic split by the weights the
operator writes into the real HTTPRoute. A healthy release walks its steps and is promoted;
then a release whose p95 doubles is rolled back on its own. The demo prints what a platform
engineer would watch: phase and weight changes and the operator's Events, then the times it
measured.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing import scenario
from tollgate.testing.cluster import (
    ClusterAccess,
    ClusterError,
    LocalCluster,
    ToolsNotBuiltError,
    install_tollgate,
    repo_root,
)
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusNotInstalledError, PrometheusServer
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, ROUTES
from tollgate.testing.traffic import TrafficSimulator
from tollgate.testing.workload import Profile, WorkloadExporter, pod_name

NAME = "app"
NS = "tollgate-demo"
RPS = 100.0
SPEC: dict[str, Any] = {
    "analysis": scenario.fast_analysis(failure_limit=1),
    "checks": {
        "latency": {"maxIncreasePercent": 50},
        "errorRate": {"maxPercent": 5},
        "errorBudget": {"objectivePercent": 99},
    },
}
ACT_TIMEOUT = 120.0
WIDTH = 150


@dataclass
class Watch:
    """Prints what changed in the Canary and its Events since the last look."""

    api: ClusterApi
    out: TextIO
    started: float = field(default_factory=time.monotonic)
    last: tuple[object, ...] = ()
    events: dict[str, int] = field(default_factory=dict)

    def say(self, text: str) -> None:
        stamp = f"[{time.monotonic() - self.started:6.1f}s] "
        line = stamp + text
        print(line if len(line) <= WIDTH else line[: WIDTH - 3] + "...", file=self.out)

    def look(self) -> RolloutStatus:
        status = scenario.rollout_status(self.api, NAME, NS)
        weight = scenario.route_weight(self.api, NAME, NS)
        now = (status.phase, status.canary_weight, weight, status.reason)
        if now != self.last:
            self.last = now
            phase = status.phase.value if status.phase else "-"
            self.say(
                f"Canary {NAME}: {phase}, canary weight {weight}% on the route "
                f"- {status.reason}: {status.message}"
            )
        for event in sorted(
            self.api.list_objects("events", NS),
            key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
        ):
            if (event.get("involvedObject") or {}).get("kind") != "Canary":
                continue  # the cluster's own (scheduling, scaling): not the operator's
            name, count = event["metadata"]["name"], int(event.get("count") or 1)
            if self.events.get(name) != count:
                self.events[name] = count
                kind = "Warning" if event.get("type") == "Warning" else "Normal"
                self.say(f"  event {kind} {event['reason']}: {event['message']}")
        return status

    async def until(self, done: Callable[[RolloutStatus], bool], what: str) -> float:
        """Seconds until ``done``; raises TimeoutError naming ``what``."""
        began = time.monotonic()
        while not done(self.look()):
            if time.monotonic() - began > ACT_TIMEOUT:
                raise TimeoutError(f"{what} did not happen within {ACT_TIMEOUT:g}s")
            await asyncio.sleep(0.1)
        return time.monotonic() - began


def _promoted(api: ClusterApi) -> Callable[[RolloutStatus], bool]:
    def done(s: RolloutStatus) -> bool:
        return s.phase is Phase.SUCCEEDED and s.reason == "Promoted"

    return lambda s: done(s) and scenario.route_weight(api, NAME, NS) == 0


def install(access: ClusterAccess) -> None:
    """Tollgate's CRDs as README installs them, and the demo's namespace."""
    install_tollgate(access)
    done = access.kubectl("create", "namespace", NS)
    if done.returncode != 0:
        raise ClusterError(f"kubectl create namespace: {done.stderr.strip()}")


async def run(out: TextIO, workdir: Path, access: ClusterAccess) -> int:
    install(access)
    stable = WorkloadExporter(NS, pod_name(f"{NAME}-primary", 1), Profile()).start()
    canary = WorkloadExporter(NS, pod_name(NAME, 2), Profile()).start()
    prometheus = PrometheusServer(scrape_interval="1s", workdir=workdir / "prometheus")
    try:
        prometheus.set_targets([stable.target, canary.target])
        prometheus.start()
        with ClusterApi(access) as api:
            api.create(DEPLOYMENTS, scenario.deployment(NAME, f"{NAME}:1", namespace=NS))
            api.create(ROUTES, scenario.http_route(NAME, namespace=NS))
            api.create(CANARIES, scenario.canary(NAME, SPEC, namespace=NS))
            operator = OperatorProcess(
                access.kubeconfig,
                workdir / "operator.log",
                namespace=NS,
                env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
            )

            async def weight() -> float:
                return float(scenario.route_weight(api, NAME, NS))

            async with TrafficSimulator(RPS, weight, stable, canary, seed=7):
                with operator:
                    return await _acts(api, canary, out)
    finally:
        prometheus.close()
        stable.stop()
        canary.stop()


async def _acts(api: ClusterApi, canary: WorkloadExporter, out: TextIO) -> int:
    watch = Watch(api, out)
    print(
        f"The operator (kopf run) on a local Kubernetes control plane, Prometheus scraping every "
        f"1s, {RPS:g} req/s of simulated traffic.\nCanary: steps of 10% up to 30%, an analysis "
        "every 3s, checks: p95 latency (+50% of stable), error rate (5%), error budget (99%).\n",
        file=out,
    )
    await watch.until(lambda s: s.phase is Phase.SUCCEEDED, "adopting the stable version")

    print(f"\n== Act 1: a healthy release ({NAME}:2)\n", file=out)
    scenario.release(api, NAME, f"{NAME}:2", NS)
    promoted_after = await watch.until(_promoted(api), "promotion")

    print(f"\n== Act 2: a bad release ({NAME}:3): its p95 latency doubles\n", file=out)
    canary.latency_factor = 2.0
    scenario.release(api, NAME, f"{NAME}:3", NS)
    await watch.until(lambda s: scenario.route_weight(api, NAME, NS) > 0, "the first step")
    took_traffic = time.monotonic()
    await watch.until(lambda s: scenario.route_weight(api, NAME, NS) == 0, "traffic back on stable")
    rolled_back_after = time.monotonic() - took_traffic
    await watch.until(lambda s: s.phase is Phase.ROLLED_BACK, "rollback")
    status = watch.look()

    print("\n== Result\n", file=out)
    print(f"healthy release promoted after {promoted_after:.1f}s (3 steps x 3s analyses)", file=out)
    print(
        f"bad release back on stable {rolled_back_after:.1f}s after it first took traffic "
        f"({status.reason}: {status.message})",
        file=out,
    )
    print(
        "\nThe same operator runs on a cluster: `kubectl apply -f crds/`, then "
        "`kopf run -m tollgate.runtime.handlers --all-namespaces`.",
        file=out,
    )
    return 0


def main(_: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the demo on a local control plane of its own; 0 when both releases ended as they
    should, 2 when something it needs is missing."""
    with tempfile.TemporaryDirectory(prefix="tollgate-demo-") as tmp:
        cluster = LocalCluster(
            state=repo_root() / ".tools" / "demo-cluster",
            progress=lambda message: print(f"  {message}", file=out),
        )
        try:
            print("starting a local Kubernetes control plane ...", file=out)
            began = time.monotonic()
            access = cluster.start()
            print(f"control plane up in {time.monotonic() - began:.0f}s\n", file=out)
            return asyncio.run(run(out, Path(tmp), access))
        except (PrometheusNotInstalledError, ToolsNotBuiltError) as exc:
            print(f"tollgate demo: {exc}", file=sys.stderr)
            return 2
        except (TimeoutError, ClusterError) as exc:
            log = Path(tmp) / "operator.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            print(f"tollgate demo failed: {exc}\noperator log (tail):\n{tail}", file=sys.stderr)
            return 1
        finally:
            cluster.stop()
