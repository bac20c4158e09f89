"""Time from a prompt regression's start to all requests on the stable prompt, live.

Everything is real but the model: the operator runs as ``kopf run`` against the API test server,
an app process serves 100 req/s through the SDK (watching the published ConfigMap), and the
real Prometheus scrapes the app's SDK metrics. The candidate prompt doubles the time to first
token. The regression starts when the app first serves the candidate (the first step); it ends
when the app has applied the publication that drops it. The time is split into: until the
operator's failing analysis (scrapes, the analysis tick, the window filling), until the
rollback is published (decision and write), and until the app applied it (watch and reload).

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

from tollgate.api.status import Phase
from tollgate.testing import scenario
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.promptapp import PromptAppProcess
from tollgate.testing.scenario import CONFIGMAPS, NS, PROMPTS

RESULTS = Path(__file__).parent / "results"


def release(interval: str) -> dict[str, Any]:
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
    return scenario.prompt_release("answer", spec, versions)


async def until(predicate: Any, timeout: float, poll: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(poll)
    return time.time()


async def rollback_run(scrape: str, interval: str, work: Path) -> dict[str, Any]:
    prometheus = PrometheusServer(scrape_interval=scrape, workdir=work / "prom")
    prometheus.start()
    try:
        async with KubeApiServer() as api:
            app = PromptAppProcess(
                api.url, "answer-prompts", "answer", work / "app.jsonl", rate=100
            )
            prometheus.set_targets([app.target])
            operator = OperatorProcess(
                api.write_kubeconfig(work / "kubeconfig"),
                work / "operator.log",
                env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
            )
            with app, operator:
                api.create(PROMPTS, release(interval))

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
                    return scenario.rollout_status(api, "answer", resource=PROMPTS)

                await until(started, 120)
                await until(lambda: status().phase is Phase.ROLLED_BACK, 300)
                await until(app_back_on_stable, 30)
                seen = revisions()
                t0 = next(e["t"] for e in seen if e["weights"].get("v2"))
                t_app = next(e["t"] for e in seen if e["t"] > t0 and "v2" not in e["weights"])
                decided = next(
                    h.time.timestamp()
                    for h in status().history
                    if h.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
                )
                rollback_doc = [
                    r.at
                    for r in api.writes(CONFIGMAPS, "answer-prompts")
                    if '"candidate": null' in (r.body.get("data") or {}).get("prompts.json", "")
                ]
                published = rollback_doc[-1] if rollback_doc else decided
                return {
                    "scrape": scrape,
                    "interval": interval,
                    "decided_s": round(decided - t0, 2),
                    "published_s": round(published - t0, 2),
                    "all_on_stable_s": round(t_app - t0, 2),
                    "watch_to_app_s": round(t_app - published, 3),
                    "reason": status().reason,
                    "namespace": NS,
                }
    finally:
        prometheus.close()


async def main_async(args: argparse.Namespace) -> int:
    rows = []
    for run in args.runs.split(","):
        scrape, interval = run.split("/")
        with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as work:
            rows.append(await rollback_run(scrape, interval, Path(work)))
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
