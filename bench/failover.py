"""Failover: SIGKILL the acting replica mid-rollout; how long until the other one carries on.

Two ``tollgate run --peering`` replicas (as the chart runs them) against a real control plane
(local, or the cluster ``TOLLGATE_KUBECONFIG`` names). A rollout with a 2-second interval is
at its second step when the senior replica is killed without a word; the benchmark measures
until the junior resumes (kopf's log line) and until it writes the next step, and checks that
no weight was written twice or backwards. The peering lifetime bounds the wait: a silent peer
is believed alive until its last keep-alive is ``lifetime`` seconds old. Goal: under 20 s.

    python -m bench.failover [--runs 5] [--lifetime 15]
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.canary_rollback import until
from bench.cluster import bench_cluster, fresh_namespace
from tollgate.api.status import Phase
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, ROUTES, deployment

RESULTS = Path(__file__).parent / "results"
GOAL_S = 20.0
SPEC = {
    "skipAnalysis": True,
    "analysis": {"interval": "2s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "5m"},
}


async def one_failover(access: ClusterAccess, work: Path, lifetime: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    api = ClusterApi(access)
    ns = fresh_namespace(api, "failover")
    replicas = [
        OperatorProcess(
            access.kubeconfig,
            work / f"replica-{i}.log",
            namespace=ns,
            env={"POD_ID": f"replica-{i}", "TOLLGATE_PEERING_LIFETIME": str(lifetime)},
            peering="tollgate",
        )
        for i in range(2)
    ]
    try:
        api.create(DEPLOYMENTS, deployment("app", "app:1", namespace=ns))
        api.create(ROUTES, scenario.http_route("app", namespace=ns))
        api.create(CANARIES, scenario.canary("app", SPEC, namespace=ns))
        replicas[0].start()
        await asyncio.sleep(1.0)  # the first is the senior
        replicas[1].start()

        def status() -> Any:
            return scenario.rollout_status(api, "app", ns)

        await until(lambda: status().phase is Phase.SUCCEEDED, 60)
        scenario.release(api, "app", "app:2", ns)
        weights: list[int] = []

        async def sample() -> None:
            while True:
                now = scenario.route_weight(api, "app", ns)
                if not weights or weights[-1] != now:
                    weights.append(now)
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        try:
            await until(lambda: status().current_step == 2, 60)
            step = status().current_step
            replicas[0].kill()
            resumed = await until(
                lambda: "Resuming operations" in replicas[1].log.read_text(), lifetime + 30
            )
            next_step = await until(lambda: status().current_step > step, 30) + resumed
            await until(lambda: status().reason == "Promoted", 90)
            await until(lambda: bool(weights) and weights[-1] == 0, 30)
        finally:
            sampler.cancel()
        rising = weights[:-1]
        return {
            "killed_at_step": step,
            "resumed_s": round(resumed, 2),
            "next_step_written_s": round(next_step, 2),
            "weights": weights,
            "none_twice_or_back": rising == sorted(set(rising)) and weights[-1] == 0,
        }
    finally:
        for replica in replicas:
            replica.stop()
        api.delete("namespaces", None, ns)
        api.close()


async def main_async(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp,
        bench_cluster(Path(tmp)) as access,
    ):
        runs = [
            await one_failover(access, Path(tmp) / f"run{i}", args.lifetime)
            for i in range(args.runs)
        ]
    nexts = [r["next_step_written_s"] for r in runs]
    result = {
        "benchmark": "failover",
        "lifetime_s": args.lifetime,
        "runs": runs,
        "next_step_median_s": statistics.median(nexts),
        "next_step_max_s": max(nexts),
        "goal_s": GOAL_S,
    }
    print(f"SIGKILL of the acting replica at step 2 (interval 2 s), peering lifetime "
          f"{args.lifetime} s; seconds after the kill:")  # fmt: skip
    print("  {:>4} {:>9} {:>19} {:>22}".format("run", "resumed", "next step written", "weights"))
    for i, r in enumerate(runs):
        ok = "in order" if r["none_twice_or_back"] else "OUT OF ORDER"
        print(f"  {i:>4} {r['resumed_s']:>9} {r['next_step_written_s']:>19} {ok:>22}")
    verdict = "met" if max(nexts) < GOAL_S else "MISSED"
    print(f"next step after the kill: median {result['next_step_median_s']} s, max "
          f"{result['next_step_max_s']} s (goal < {GOAL_S:g} s: {verdict})")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "failover.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'failover.json'}")
    return 0 if all(r["none_twice_or_back"] for r in runs) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lifetime", type=int, default=15, help="peering lifetime (s)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
