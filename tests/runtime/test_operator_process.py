"""The real operator process (kopf run) against the API test server: restart and deletion.

The rollouts here skip analysis (their subject is the control loop, not the metrics) and use a
2-second interval, so each test runs in real time in about 20 seconds.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing.controllers import DeploymentController
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import free_port
from tollgate.testing.scenario import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    ROUTES,
    canary,
    deployment,
    http_route,
    release,
    rollout_status,
    route_weight,
)

pytestmark = pytest.mark.integration
FAST = {
    "skipAnalysis": True,
    "analysis": {"interval": "2s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "1m"},
}


def status(api: KubeApiServer) -> RolloutStatus:
    return rollout_status(api, "app")


def weight_writes(api: KubeApiServer) -> list[int]:
    """The canary weight of every successful HTTPRoute write, in order."""
    out = []
    for record in api.writes(ROUTES, "app"):
        if "spec" not in record.body:
            continue  # the claim: a metadata-only patch
        refs = record.body["spec"]["rules"][0]["backendRefs"]
        out.append(next(r["weight"] for r in refs if r["name"] == "app-canary"))
    return out


@asynccontextmanager
async def operated(
    tmp_path: Path, spec: dict[str, Any]
) -> AsyncIterator[tuple[KubeApiServer, OperatorProcess]]:
    """A Deployment, its HTTPRoute and a Canary with ``spec``, and the operator running."""
    async with KubeApiServer() as api, DeploymentController(api, delay=0.2):
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        api.create(DEPLOYMENTS, deployment("app", "app:1"))
        api.create(ROUTES, http_route("app"))
        api.create(CANARIES, canary("app", spec))
        operator = OperatorProcess(
            kubeconfig,
            tmp_path / "operator.log",
            env={"TOLLGATE_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"},
        )
        try:
            yield api, operator.start()
        finally:
            operator.stop()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, OperatorProcess]]:
    async with operated(tmp_path, FAST) as world:
        yield world


async def until(api: KubeApiServer, predicate: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_sigkill_mid_rollout_resumes_at_the_same_step(
    cluster: tuple[KubeApiServer, OperatorProcess],
) -> None:
    api, operator = cluster
    await until(api, lambda: status(api).phase is Phase.SUCCEEDED)
    release(api, "app", "app:2")
    await until(api, lambda: status(api).current_step == 2)
    operator.kill()
    step_at_kill = status(api).current_step
    await asyncio.sleep(1.0)
    operator.start()
    await until(api, lambda: status(api).reason == "Promoted" and weight_writes(api)[-1] == 0, 60)
    assert weight_writes(api) == [10, 20, 30, 40, 50, 0]  # none written twice, none skipped
    steps = [h.step for h in status(api).history if h.phase is Phase.PROGRESSING]
    assert steps == sorted(steps)  # never went back to an earlier step
    assert step_at_kill in steps
    assert operator.starts == 2


async def test_deleting_a_canary_mid_rollout_returns_traffic_to_primary(
    cluster: tuple[KubeApiServer, OperatorProcess],
) -> None:
    api, _ = cluster
    await until(api, lambda: status(api).phase is Phase.SUCCEEDED)
    release(api, "app", "app:2")
    await until(api, lambda: status(api).canary_weight == 20)
    api.delete(CANARIES, NS, "app")
    await until(api, lambda: api.get(CANARIES, NS, "app") is None)
    assert weight_writes(api)[-1] == 0


async def test_deletion_does_not_hang_when_the_route_is_gone(
    cluster: tuple[KubeApiServer, OperatorProcess],
) -> None:
    api, _ = cluster
    await until(api, lambda: status(api).phase is Phase.SUCCEEDED)
    api.delete(ROUTES, NS, "app")
    api.delete(CANARIES, NS, "app")
    await until(api, lambda: api.get(CANARIES, NS, "app") is None)
    reasons = [e.get("reason") for e in api.list_objects("events", NS)]
    assert "TrafficNotRestored" in reasons


async def test_the_log_holds_decisions_not_every_request_or_event(
    cluster: tuple[KubeApiServer, OperatorProcess], tmp_path: Path
) -> None:
    api, operator = cluster
    await until(api, lambda: status(api).phase is Phase.SUCCEEDED)
    for i in range(20):  # Deployments of other teams, changing: none of the operator's business
        api.create(DEPLOYMENTS, deployment(f"other{i}", "x:1"))
    release(api, "app", "app:2")
    await until(api, lambda: status(api).reason == "Promoted", 60)
    operator.stop()
    lines = (tmp_path / "operator.log").read_text().splitlines()
    assert not [line for line in lines if "HTTP Request:" in line]
    assert not [line for line in lines if "wake_on_workload" in line and "succeeded" in line]
    assert not [line for line in lines if "wake_on_change" in line and "succeeded" in line]


async def test_a_route_reapplied_without_the_canary_is_put_right_at_once(tmp_path: Path) -> None:
    """GitOps re-applies the HTTPRoute as written in Git (no canary backendRef): the route watch
    wakes the Canary, which writes its weight back, long before its next tick (60 s)."""
    slow = {
        "skipAnalysis": True,
        "analysis": {
            "interval": "60s",
            "stepWeight": 10,
            "maxWeight": 50,
            "progressDeadline": "5m",
        },
    }
    async with operated(tmp_path, slow) as (api, _operator):
        await until(api, lambda: status(api).phase is Phase.SUCCEEDED)
        release(api, "app", "app:2")
        await until(api, lambda: route_weight(api, "app") == 10)
        as_in_git = http_route("app")
        stored = api.get(ROUTES, NS, "app")
        assert stored is not None
        as_in_git["metadata"] = stored["metadata"]
        api.replace(ROUTES, NS, "app", as_in_git)
        assert route_weight(api, "app") == 0
        await until(api, lambda: route_weight(api, "app") == 10, 15)
