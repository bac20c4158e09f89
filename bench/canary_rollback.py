"""Time to roll back a p95 regression, live, and the operator's memory with 10 canaries.

Everything is real except the cluster's data plane: the operator runs as ``kopf run`` against
a local Kubernetes control plane (or the cluster ``TOLLGATE_KUBECONFIG`` names), Prometheus
scrapes two workload exporters, and the traffic simulator
sends 100 req/s split by the weights the operator writes into the HTTPRoute. At t0 the canary's
latency doubles; the benchmark measures until the route carries weight 0 for the canary, and
splits the time into: until Prometheus shows the regression (scrape), until the operator's
failing analysis (analysis: the interval tick and the window filling with slow requests), and
until the route write (decision and write).

    python -m bench.canary_rollback [--runs 1s/10s,15s/30s] [--canaries 10]
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import bench_cluster, fresh_namespace
from tollgate.api.status import Phase
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, ROUTES, deployment
from tollgate.testing.traffic import TrafficSimulator
from tollgate.testing.workload import Profile, WorkloadExporter, pod_name

RESULTS = Path(__file__).parent / "results"


def canary(name: str, interval: str, ns: str, every: str | None = None) -> dict[str, Any]:
    return scenario.canary(
        name,
        {
            "analysis": {
                "interval": interval,
                "stepWeight": 10,
                "maxWeight": 50,
                "failureLimit": 0,
                "minSamples": 20,
                "progressDeadline": "10m",
                "sequential": {"every": every} if every else {},
            },
            "checks": {"latency": {"maxIncreasePercent": 50}, "errorRate": {"maxPercent": 5}},
        },
        namespace=ns,
    )


weight = scenario.route_weight
status = scenario.rollout_status


def in_flight(api: ClusterApi, names: list[str], ns: str) -> int:
    """How many of the Canaries are still progressing (or paused)."""
    return sum(status(api, n, ns).phase in (Phase.PROGRESSING, Phase.PAUSED) for n in names)


async def until(predicate: Any, timeout: float, poll: float = 0.05) -> float:
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(poll)
    return time.monotonic() - start


async def p95_ratio(prom: PrometheusServer, window: str) -> float | None:
    query = (
        "histogram_quantile(0.95, sum by (pod, le) (rate(http_request_duration_seconds_bucket"
        f"[{window}])))"
    )
    async with httpx.AsyncClient() as http:
        answer = (await http.get(f"{prom.url}/api/v1/query", params={"query": query})).json()
    values = {r["metric"]["pod"]: float(r["value"][1]) for r in answer["data"]["result"]}
    canary = next((v for k, v in values.items() if not k.startswith("app-primary")), None)
    stable = next((v for k, v in values.items() if k.startswith("app-primary")), None)
    return canary / stable if canary and stable else None


async def rollback_run(
    access: ClusterAccess, scrape: str, interval: str, work: Path, every: str | None = None
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    api = ClusterApi(access)
    ns = fresh_namespace(api, "rollback")
    prom = PrometheusServer(scrape_interval=scrape, workdir=work / "prom")
    stable = WorkloadExporter(ns, pod_name("app-primary", 1), Profile()).start()
    canary_exp = WorkloadExporter(ns, pod_name("app", 2), Profile()).start()
    prom.set_targets([stable.target, canary_exp.target])
    prom.start()
    try:
        api.create(DEPLOYMENTS, deployment("app", "app:1", namespace=ns))
        api.create(ROUTES, scenario.http_route("app", namespace=ns))
        api.create(CANARIES, canary("app", interval, ns, every))

        async def read_weight() -> float:
            return float(weight(api, "app", ns))

        sim = TrafficSimulator(100.0, read_weight, stable, canary_exp, seed=7)
        operator = OperatorProcess(
            access.kubeconfig,
            work / "operator.log",
            namespace=ns,
            env={"TOLLGATE_PROMETHEUS_URL": prom.url},
        )
        async with sim:
            operator.start()
            try:
                await until(lambda: status(api, "app", ns).phase is Phase.SUCCEEDED, 60)
                scenario.release(api, "app", "app:2", ns)
                await until(lambda: weight(api, "app", ns) >= 20, 180)
                canary_exp.latency_factor = 2.0
                t0 = time.monotonic()
                wall0 = datetime.now().astimezone()
                visible: float | None = None
                while weight(api, "app", ns) != 0:
                    if visible is None:
                        ratio = await p95_ratio(prom, scrape_window(scrape))
                        if ratio is not None and ratio > 1.5:
                            visible = time.monotonic() - t0
                    await asyncio.sleep(0.05)
                    if time.monotonic() - t0 > 300:
                        raise TimeoutError("no rollback within 300 s")
                total = time.monotonic() - t0
                st = status(api, "app", ns)
                decided = next(
                    (
                        h.time
                        for h in reversed(st.history)
                        if h.phase is Phase.ROLLING_BACK or h.phase is Phase.ROLLED_BACK
                    ),
                    None,
                )
                decision_after = (decided - wall0).total_seconds() if decided else None
            finally:
                operator.stop()
        return {
            "scrape_interval": scrape,
            "analysis_interval": interval,
            "counts_every": every or interval,
            "time_to_weight_zero_s": round(total, 2),
            "regression_visible_in_prometheus_s": round(visible, 2) if visible else None,
            "rollback_decided_s": round(decision_after, 2) if decision_after else None,
            "reason": st.reason,
        }
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prom.close()
        stable.stop()
        canary_exp.stop()


async def many_in_flight(
    access: ClusterAccess,
    api: ClusterApi,
    ns: str,
    names: list[str],
    interval: str,
    log: Path,
    prom: PrometheusServer,
) -> OperatorProcess:
    """Canaries ``names`` adopted by a started operator, then all moved to a new revision and
    in flight (each at its first step)."""
    for name in names:
        api.create(DEPLOYMENTS, deployment(name, "v1", namespace=ns))
        api.create(ROUTES, scenario.http_route(name, namespace=ns))
        api.create(CANARIES, canary(name, interval, ns))
    operator = OperatorProcess(
        access.kubeconfig, log, namespace=ns, env={"TOLLGATE_PROMETHEUS_URL": prom.url}
    )
    operator.start()
    try:
        await until(lambda: all(status(api, n, ns).phase is Phase.SUCCEEDED for n in names), 300)
        for name in names:
            scenario.release(api, name, "v2", ns)
        await until(lambda: all(status(api, n, ns).canary_weight > 0 for n in names), 300)
    except BaseException:
        operator.stop()
        raise
    return operator


def scrape_window(scrape: str) -> str:
    seconds = float(scrape.rstrip("s"))
    return f"{max(4 * seconds, 4):g}s"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory_run(access: ClusterAccess, count: int, work: Path) -> dict[str, Any]:
    prom = PrometheusServer(workdir=work / "prom-mem").start()
    api = ClusterApi(access)
    ns = fresh_namespace(api, "memory")
    try:
        names = [f"svc{i}" for i in range(count)]
        operator = await many_in_flight(
            access, api, ns, names, "5s", work / "operator-mem.log", prom
        )
        try:
            assert operator.process is not None
            samples = []
            for _ in range(30):  # 30 s in flight: every canary waits for data, queries
                samples.append(rss_kib(operator.process.pid))
                await asyncio.sleep(1.0)
            flying = in_flight(api, names, ns)
        finally:
            operator.stop()
        return {
            "canaries": count,
            "in_flight": flying,
            "rss_mib_median": round(sorted(samples)[len(samples) // 2] / 1024, 1),
            "rss_mib_max": round(max(samples) / 1024, 1),
        }
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prom.close()


async def main_async(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp,
        bench_cluster(Path(tmp)) as access,
    ):
        work = Path(tmp)
        runs = []
        for config in args.runs.split(","):
            scrape, interval, *every = config.split("/")
            where = work / config.replace("/", "-")
            one = await rollback_run(access, scrape, interval, where, every[0] if every else None)
            runs.append(one)
        memory = await memory_run(access, args.canaries, work)
    result = {"benchmark": "canary_rollback", "rollback": runs, "memory": memory}
    print("p95 x2 regression at 20% of 100 req/s, live (kopf run + real Prometheus),")
    print("failureLimit 0; seconds after the regression starts:")
    header = ("scrape", "interval", "counts", "visible in Prometheus", "decided", "weight 0")
    print("  {:>6} {:>8} {:>6} {:>22} {:>8} {:>9}".format(*header))
    for r in runs:
        row = (
            r["scrape_interval"],
            r["analysis_interval"],
            r["counts_every"],
            r["regression_visible_in_prometheus_s"],
            r["rollback_decided_s"],
            r["time_to_weight_zero_s"],
        )
        print("  {:>6} {:>8} {:>6} {!s:>22} {!s:>8} {!s:>9}".format(*row))
    print(
        f"operator RSS with {memory['canaries']} canaries ({memory['in_flight']} in flight): "
        f"median {memory['rss_mib_median']} MiB, max {memory['rss_mib_max']} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "canary_rollback.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'canary_rollback.json'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        default="1s/10s,15s/30s,1s/30s/5s",
        help="scrape/analysis interval[/counts every], comma-separated",
    )
    parser.add_argument("--canaries", type=int, default=10)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
