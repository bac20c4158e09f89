"""Whole-system rollouts in real time: `kopf run` on the real local control plane, Prometheus
scraping two workload exporters, and simulated traffic split by the weights the operator writes
into the real HTTPRoute.

A 3-second analysis interval and a 1-second scrape keep each rollout to about 20 seconds.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.runtime.live import Live, live_canary, until
from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.scenario import CANARIES, PROMPTS

pytestmark = pytest.mark.integration
SPEC = {
    "analysis": scenario.fast_analysis(),
    "checks": {"latency": {"maxIncreasePercent": 50}, "errorRate": {"maxPercent": 5}},
}


@pytest.fixture
async def live(tollgate_cluster: ClusterAccess, tmp_path: Path) -> AsyncIterator[Live]:
    async with live_canary(tollgate_cluster, tmp_path, SPEC, seed=11) as world:
        yield world


async def test_healthy_release_is_promoted(live: Live) -> None:
    api = live.api
    await until(lambda: live.status().phase is Phase.SUCCEEDED, 60)
    scenario.release(api, "app", "app:2", live.namespace)
    seen: list[int] = []

    def promoted() -> bool:
        weight = scenario.route_weight(api, "app", live.namespace)
        if not seen or seen[-1] != weight:
            seen.append(weight)
        status = live.status()
        return status.phase is Phase.SUCCEEDED and status.reason == "Promoted" and weight == 0

    await until(promoted, 120)
    assert seen[-1] == 0
    assert [w for w in seen if w] == [10, 20, 30]
    checks = {c.name: c for c in live.status().checks}
    assert checks["latency"].verdict.value == "Pass"
    assert checks["latency"].canary_samples >= 20


async def test_p95_regression_is_rolled_back(live: Live) -> None:
    api = live.api
    await until(lambda: live.status().phase is Phase.SUCCEEDED, 60)
    scenario.release(api, "app", "app:2", live.namespace)
    await until(lambda: scenario.route_weight(api, "app", live.namespace) >= 10, 60)
    live.canary.latency_factor = 2.0
    await until(lambda: live.status().phase is Phase.ROLLED_BACK, 60)
    status = live.status()
    assert status.reason == "AnalysisFailed"
    assert scenario.route_weight(api, "app", live.namespace) == 0
    assert scenario.failing_checks(status) == {"latency"}


async def test_a_code_rollback_takes_its_dependent_prompt_back(live: Live) -> None:
    """Code first: a prompt in flight on the code's release goes back when the code does."""
    api = live.api
    await until(lambda: live.status().phase is Phase.SUCCEEDED, 60)
    api.patch(CANARIES, live.namespace, "app", {"spec": {"prompts": ["answer"]}})
    paused_at_10 = {"interval": "2s", "stepWeight": 10, "maxWeight": 30, "pauses": [{"weight": 10}]}
    api.create(
        PROMPTS,
        scenario.prompt_release(
            "answer", {"skipAnalysis": True, "analysis": paused_at_10}, namespace=live.namespace
        ),
    )

    def prompt() -> RolloutStatus:
        return live.status("answer", PROMPTS)

    await until(lambda: prompt().phase is Phase.PAUSED, 60)
    assert scenario.prompt_weight(api, "answer", live.namespace) == 10
    scenario.release(api, "app", "app:2", live.namespace)
    await until(lambda: scenario.route_weight(api, "app", live.namespace) >= 10, 60)
    live.canary.latency_factor = 2.0
    await until(lambda: live.status().phase is Phase.ROLLED_BACK, 60)
    await until(lambda: prompt().phase is Phase.ROLLED_BACK, 30)
    assert prompt().reason == "RequiredCodeRolledBack"
    assert "Canary app rolled back revision" in (prompt().message or "")
    doc = scenario.published(api, "answer", live.namespace)
    assert doc is not None
    assert (doc.stable, doc.candidate, dict(doc.weights)) == ("v1", None, {"v1": 100})
