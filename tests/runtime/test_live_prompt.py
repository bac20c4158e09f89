"""Whole-system prompt rollouts in real time: `kopf run` on the real local control plane, an app
process that serves the prompt through the SDK (watching the published ConfigMap as a
ServiceAccount allowed to read only that ConfigMap), and the real Prometheus scraping the app's
SDK metrics.

A 3-second analysis interval and a 1-second scrape keep each rollout to about 20 seconds. The
regressions are properties of the candidate version (its parameters drive the simulated model).
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.live import gone
from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.promptapp import PromptAppProcess
from tollgate.testing.scenario import PROMPTS

pytestmark = pytest.mark.integration
SPEC: dict[str, Any] = {
    # promotion waits for the sample that catches a canary 4 times worse than a limit (not 2):
    # the suite's budget, not a recommendation
    "analysis": {**scenario.fast_analysis(), "sequential": {"detect": 4}},
    "checks": {
        "ttft": {"maxIncreasePercent": 50},
        "errorRate": {"maxIncreasePoints": 2},
        "costPerRequest": {
            "pricing": {"inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.60},
            "maxIncreasePercent": 20,
        },
    },
}


@dataclass
class LivePrompt:
    api: ClusterApi
    namespace: str
    app: PromptAppProcess

    def status(self) -> RolloutStatus:
        return scenario.rollout_status(self.api, "answer", self.namespace, PROMPTS)


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
async def live(
    tollgate_cluster: ClusterAccess, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[LivePrompt]:
    candidate_parameters: dict[str, Any] = getattr(request, "param", {})
    ns = f"prompt-{secrets.token_hex(3)}"
    prometheus = PrometheusServer(scrape_interval="1s", workdir=tmp_path / "prom")
    prometheus.start()
    api = ClusterApi(tollgate_cluster)
    api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        app = PromptAppProcess.on_cluster(api, ns, "answer-prompts", "answer", tmp_path)
        prometheus.set_targets([app.target])
        operator = OperatorProcess(
            tollgate_cluster.kubeconfig,
            tmp_path / "operator.log",
            namespace=ns,
            env={"TOLLGATE_PROMETHEUS_URL": prometheus.url},
        )
        versions = [
            scenario.prompt_version("v1"),
            scenario.prompt_version("v2", **candidate_parameters),
        ]
        api.create(PROMPTS, scenario.prompt_release("answer", SPEC, versions, namespace=ns))
        with app, operator:
            try:
                yield LivePrompt(api, ns, app)
            finally:
                await gone(api, ns)
    finally:
        api.delete("namespaces", None, ns)
        api.close()
        prometheus.close()


async def test_healthy_prompt_version_is_promoted(live: LivePrompt) -> None:
    # the walk takes about 10 s; promotion then waits for the sample that resolves errorRate's
    # 2-point tolerance at the stable's 0.5%
    await until(lambda: live.status().reason == "Promoted", 150)
    doc = scenario.published(live.api, "answer", live.namespace)
    assert doc is not None
    assert (doc.stable, doc.candidate, dict(doc.weights)) == ("v2", None, {"v2": 100})
    checks = {c.name: c for c in live.status().checks}
    assert {"ttft", "errorRate", "costPerRequest"} <= set(checks)
    assert all(c.verdict.value == "Pass" for c in checks.values())
    assert 'prompt="answer"' in (checks["ttft"].query or "")
    await until(lambda: live.app.events("revision")[-1]["weights"] == {"v2": 100}, 10)


@pytest.mark.parametrize(
    ("live", "check"),
    [
        ({"sim_ttft_factor": 2.0}, "ttft"),
        ({"sim_output_tokens": 450}, "costPerRequest"),
        ({"sim_error_share": 0.08}, "errorRate"),
    ],
    ids=["ttft", "cost", "errors"],
    indirect=["live"],
)
async def test_prompt_regression_rolls_back(live: LivePrompt, check: str) -> None:
    await until(lambda: live.status().phase is Phase.ROLLED_BACK, 90)
    status = live.status()
    assert status.reason == "AnalysisFailed"
    failing = scenario.failing_checks(status)
    assert check in failing
    doc = scenario.published(live.api, "answer", live.namespace)
    assert doc is not None
    assert (doc.stable, doc.candidate, dict(doc.weights)) == ("v1", None, {"v1": 100})
    # The app follows: its last publication puts everyone on v1.
    await until(lambda: live.app.events("revision")[-1]["weights"] == {"v1": 100}, 10)
    served_v2 = [e for e in live.app.events("revision") if e["weights"].get("v2")]
    assert served_v2, "the candidate never got traffic"
