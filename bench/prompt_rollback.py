"""Time from a prompt regression's start to all requests on the stable prompt, live.

Everything is real but the model: the operator runs as ``kopf run`` against a local Kubernetes
control plane (or the cluster ``TOLLGATE_KUBECONFIG`` names), an app process serves 100 req/s
through the SDK (watching the published ConfigMap as a ServiceAccount allowed that ConfigMap
only), and the real Prometheus scrapes the app's SDK metrics. The candidate prompt doubles the
time to first token. The regression starts when the app first serves the candidate (the first
step); it ends when the app has applied the publication that drops it. The time is split into:
until the operator's failing analysis (scrapes, the analysis tick, the window filling), until
the rollback is published (decision and write, polled every 50 ms), and until the app applied
it (watch and reload).

    python -m bench.prompt_rollback [--runs 1s/10s,15s/30s]
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import bench_cluster, fresh_namespace
from tollgate.api.status import Phase
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.promptapp import PromptAppProcess
from tollgate.testing.scenario import CONFIGMAPS, PROMPTS

RESULTS = Path(__file__).parent / "results"


def release(interval: str, namespace: str) -> dict[str, Any]:
    spec = {
        "analysis": {
            "interval": interval,
            "stepWeight": 10,
            "maxWeight": 50,
            "failureLimit": 0,
            "minSamples": 20,
            "progressDeadline": "10m",
        },
        "checks": {"ttft": {"maxIncreasePercent": 50}},
    }
    versions = [scenario.prompt_version("v1"), scenario.prompt_version("v2", sim_ttft_factor=2.0)]
    return scenario.prompt_release("answer", spec, versions, namespace=namespace)


async def until(predicate: Any, timeout: float, poll: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(poll)
    return time.time()


async def rollback_run(
    access: ClusterAccess, scrape: str, interval: str, work: Path
) -> dict[str, Any]:
    prometheus = PrometheusServer(scrape_interval=scrape, workdir=work / "prom")
    prometheus.start()
    api = ClusterApi(access)
    ns = fresh_namespace(api, "prompt")
    try:
        app = PromptAppProcess.on_cluster(api, ns, "answer-prompts", "answer", work, rate=100)
        prometheus.set_targets([app.target])
        operator = OperatorProcess(
            access.kubeconfig,
            work / "operator.log",
            namespace=ns,
            env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
        )
        with app, operator:
            api.create(PROMPTS, release(interval, ns))

            def revisions() -> list[dict[str, Any]]:
                return app.events("revision")

            def started() -> bool:
                return any(e["weights"].get("v2") for e in revisions())

            def app_back_on_stable() -> bool:
                seen = revisions()
                first = next((i for i, e in enumerate(seen) if e["weights"].get("v2")), None)
                return first is not None and any(
                    "v2" not in e["weights"] for e in seen[first + 1 :]
                )

            def status() -> Any:
                return scenario.rollout_status(api, "answer", ns, PROMPTS)

            published: list[float] = []

            def candidate_dropped() -> bool:  # polled: the first time the document shows it
                found = api.get(CONFIGMAPS, ns, "answer-prompts") or {}
                text = (found.get("data") or {}).get("prompts.json", "")
                if started() and '"candidate": null' in text and not published:
                    published.append(time.time())
                return bool(published)

            await until(started, 120)
            await until(lambda: candidate_dropped() and status().phase is Phase.ROLLED_BACK, 300)
            await until(app_back_on_stable, 30)
            seen = revisions()
            t0 = next(e["t"] for e in seen if e["weights"].get("v2"))
            t_app = next(e["t"] for e in seen if e["t"] > t0 and "v2" not in e["weights"])
            decided = next(
                h.time.timestamp()
                for h in status().history
                if h.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
            )
            return {
                "scrape": scrape,
                "interval": interval,
                "decided_s": round(decided - t0, 2),
                "published_s": round(published[0] - t0, 2),
                "all_on_stable_s": round(t_app - t0, 2),
                "watch_to_app_s": round(t_app - published[0], 3),
                "reason": status().reason,
            }
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prometheus.close()


async def main_async(args: argparse.Namespace) -> int:
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp,
        bench_cluster(Path(tmp)) as access,
    ):
        for run in args.runs.split(","):
            scrape, interval = run.split("/")
            work = Path(tmp) / run.replace("/", "-")
            work.mkdir()
            rows.append(await rollback_run(access, scrape, interval, work))
    print("prompt TTFT x2 at 10% of 100 req/s; seconds from the first candidate request")
    print(f"{'scrape':>7} {'interval':>9} {'decided':>8} {'published':>10} {'all on stable':>14}")
    for r in rows:
        print(
            f"{r['scrape']:>7} {r['interval']:>9} {r['decided_s']:>8.2f} "
            f"{r['published_s']:>10.2f} {r['all_on_stable_s']:>14.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "prompt_rollback.json"
    out.write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1s/10s,15s/30s", help="scrape/interval pairs")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
