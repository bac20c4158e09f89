"""The operator's CPU with many rollouts in flight: share of a core, from the kernel's count.

The operator runs as ``kopf run`` (the real kopf runtime) against a local Kubernetes control
plane (or the cluster ``TOLLGATE_KUBECONFIG`` names), with a real Prometheus; N Canaries at one
analysis interval are moved to a new revision together, and once every one is in flight the
operator process' user + system CPU time (``/proc/<pid>/stat``) is read over a measured period.
Each in-flight Canary reconciles at its interval: it queries Prometheus (one batch per family
when their ticks meet), decides, and writes its status.

    python -m bench.operator_cpu [--canaries 200] [--interval 10s] [--seconds 60]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.canary_rollback import in_flight, many_in_flight
from bench.cluster import bench_cluster, fresh_namespace
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.prometheus import PrometheusServer

RESULTS = Path(__file__).parent / "results"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def cpu_run(
    access: ClusterAccess, count: int, interval: str, seconds: float, work: Path
) -> dict[str, Any]:
    prom = PrometheusServer(workdir=work / "prom").start()
    api = ClusterApi(access)
    ns = fresh_namespace(api, "cpu")
    try:
        names = [f"svc{i}" for i in range(count)]
        operator = await many_in_flight(
            access, api, ns, names, interval, work / "operator.log", prom
        )
        try:
            assert operator.process is not None
            pid = operator.process.pid
            await asyncio.sleep(5.0)  # past the burst of first steps
            start_cpu, start = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            used, spent = cpu_seconds(pid) - start_cpu, time.monotonic() - start
            flying = in_flight(api, names, ns)
        finally:
            operator.stop()
        return {
            "canaries": count,
            "interval": interval,
            "in_flight": flying,
            "seconds": round(spent, 1),
            "cpu_seconds": round(used, 2),
            "core_share": round(used / spent, 3),
        }
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prom.close()


async def main_async(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-cpu-") as tmp,
        bench_cluster(Path(tmp)) as access,
    ):
        result = await cpu_run(access, args.canaries, args.interval, args.seconds, Path(tmp))
    print(
        f"{result['canaries']} Canaries at a {result['interval']} interval "
        f"({result['in_flight']} in flight): {result['cpu_seconds']} CPU-s in "
        f"{result['seconds']} s = {100 * result['core_share']:.1f}% of a core"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "operator_cpu.json"
    out.write_text(json.dumps({"benchmark": "operator_cpu", **result}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=200)
    parser.add_argument("--interval", default="10s")
    parser.add_argument("--seconds", type=float, default=60.0)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
