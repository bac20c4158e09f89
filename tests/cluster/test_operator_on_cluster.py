"""The operator (``kopf run``, as a user runs it) on the real local control plane.

Real Deployments become ready through the controller-manager, the scheduler and kwok's nodes;
the HTTPRoute is validated by the Gateway API CRDs; deletion goes through the API server's
finalizers and garbage collector. The rollouts skip analysis (their subject is the control
loop, not the metrics) and use a 1-second interval.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.world import (
    CANARIES,
    DEPLOYMENTS,
    FAST,
    LAST_HANDLED,
    ON_A_CLUSTER,
    PROMOTED_WEIGHTS,
    ROUTES,
    SERVICES,
    SLOW,
    RouteWatch,
    World,
    ok,
    operated,
    owners,
    route_weights,
)
from tollgate.api.status import Phase
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess, repo_root
from tollgate.testing.scenario import canary, deployment

pytestmark = ON_A_CLUSTER
CRDS = repo_root() / "crds"


@pytest.fixture
def installed(tollgate_cluster: ClusterAccess) -> ClusterAccess:
    return tollgate_cluster


@pytest.fixture
async def world(installed: ClusterAccess, tmp_path: Path) -> AsyncIterator[World]:
    async with operated(installed, tmp_path, FAST) as w:
        yield w


@pytest.fixture
async def reverting(installed: ClusterAccess, tmp_path: Path) -> AsyncIterator[World]:
    async with operated(installed, tmp_path, {**FAST, "revertOnDeletion": True}) as w:
        yield w


async def test_a_release_is_promoted_on_real_deployments_quietly_and_no_spec_copy_is_kept(
    world: World, tmp_path: Path
) -> None:
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    for i in range(20):  # Deployments of other teams: none of the operator's business
        body = deployment(f"other{i}", "x:1", namespace=world.namespace)
        assert world.api.post(DEPLOYMENTS.format(ns=world.namespace), json=body).is_success
    uid = (world.get(CANARIES, "app") or {})["metadata"]["uid"]
    primary = world.get(DEPLOYMENTS, "app-primary")
    assert owners(primary) == [uid]
    assert owners(world.get(SERVICES, "app-primary")) == [uid]
    assert owners(world.get(SERVICES, "app-canary")) == [uid]
    assert await world.promote_watched() == PROMOTED_WEIGHTS
    primary = world.get(DEPLOYMENTS, "app-primary") or {}
    assert scenario.version_of(primary) == "app:2"
    annotations = (world.get(CANARIES, "app") or {})["metadata"].get("annotations") or {}
    assert LAST_HANDLED not in annotations
    # the log holds decisions, not every request or every event of every Deployment
    world.operator.stop()
    lines = (tmp_path / "operator.log").read_text().splitlines()
    assert not [line for line in lines if "HTTP Request:" in line]
    decisions = [line for line in lines if "Canary " in line and "tollgate" in line]
    assert any("Succeeded at 0% (step 5/5), Promoted" in line for line in decisions), decisions
    assert not [line for line in lines if "wake_on_workload" in line and "succeeded" in line]
    assert not [line for line in lines if "wake_on_change" in line and "succeeded" in line]


async def test_sigkill_mid_rollout_resumes_at_the_same_step(world: World) -> None:
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    watch = RouteWatch(world.access, world.namespace).start()
    try:
        world.release("app:2")
        await world.until(lambda: world.status().current_step == 2)
        world.operator.kill()
        step_at_kill = world.status().current_step
        await asyncio.sleep(1.0)
        world.operator.start()
        await world.until(lambda: world.status().reason == "Promoted", 90)
        await world.until(lambda: bool(watch.weights) and watch.weights[-1] == 0)
    finally:
        watch.stop()
    assert watch.weights[-6:] == [10, 20, 30, 40, 50, 0]  # none skipped, none repeated
    steps = [h.step for h in world.status().history if h.phase is Phase.PROGRESSING]
    assert steps == sorted(steps)
    assert step_at_kill in steps


async def released_and_kept(world: World) -> None:
    """Primary and both Services carry no owner reference, and outlive the garbage collector."""
    for path, name in (
        (DEPLOYMENTS, "app-primary"),
        (SERVICES, "app-primary"),
        (SERVICES, "app-canary"),
    ):
        assert owners(world.get(path, name)) == [], name
    await asyncio.sleep(3)  # the garbage collector had its chance
    for path, name in ((DEPLOYMENTS, "app-primary"), (SERVICES, "app-primary")):
        assert world.get(path, name) is not None, name


async def test_deleting_mid_rollout_leaves_primary_serving_and_unowned(world: World) -> None:
    await world.delete_at_step(2)
    assert route_weights(world.get(ROUTES, "app") or {}) == (100, 0)
    await released_and_kept(world)
    primary = world.get(DEPLOYMENTS, "app-primary") or {}
    assert scenario.version_of(primary) == "app:1"
    assert world.events("Released")


async def test_revert_on_deletion_hands_the_traffic_back_to_the_target(
    reverting: World,
) -> None:
    world = reverting
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    world.delete_canary()
    await world.until(lambda: world.get(CANARIES, "app") is None)
    assert world.get(DEPLOYMENTS, "app-primary") is None
    service = world.get(SERVICES, "app-primary") or {}
    assert service["spec"]["selector"] == {"app": "app"}  # the target's own pods
    assert owners(service) == []
    assert route_weights(world.get(ROUTES, "app") or {})[1] == 0
    assert world.events("Reverted")
    # a Canary created again takes the Service back: primary pods only, never the target's
    created = world.api.post(
        CANARIES.format(ns=world.namespace), json=canary("app", FAST, namespace=world.namespace)
    )
    assert created.status_code == 201, created.text
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    service = world.get(SERVICES, "app-primary") or {}
    assert service["spec"]["selector"] == {"app": "app-primary", "tollgate.dev/track": "primary"}
    assert world.get(DEPLOYMENTS, "app-primary") is not None


async def test_revert_on_deletion_mid_rollout_keeps_primary(reverting: World) -> None:
    world = reverting
    await world.delete_at_step(1)
    assert route_weights(world.get(ROUTES, "app") or {}) == (100, 0)
    assert owners(world.get(DEPLOYMENTS, "app-primary")) == []
    service = world.get(SERVICES, "app-primary") or {}
    assert service["spec"]["selector"]["tollgate.dev/track"] == "primary"
    (event,) = world.events("NotReverted")
    assert "never promoted" in event["message"]


async def test_deletion_does_not_hang_when_the_route_is_gone(world: World) -> None:
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    world.api.delete(f"{ROUTES.format(ns=world.namespace)}/app").raise_for_status()
    world.delete_canary()
    await world.until(lambda: world.get(CANARIES, "app") is None, 30)
    assert world.events("TrafficNotRestored")
    assert owners(world.get(DEPLOYMENTS, "app-primary")) == []  # released all the same


MIN_SAMPLES_MAXIMUM = (
    "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/analysis"
    "/properties/minSamples/maximum"
)


async def test_deleting_a_canary_whose_stored_spec_no_longer_parses_keeps_primary(
    world: World,
) -> None:
    """A Canary stored under a looser CRD (before an upgrade tightened a bound) no longer
    parses: deleting it must still release primary and its Services, never let the garbage
    collector take what serves the traffic."""
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    uid = (world.get(CANARIES, "app") or {})["metadata"]["uid"]
    assert owners(world.get(DEPLOYMENTS, "app-primary")) == [uid]
    crd = "crd/canaries.tollgate.dev"
    loosen = json.dumps([{"op": "remove", "path": MIN_SAMPLES_MAXIMUM}])
    try:
        ok(world.access.kubectl("patch", crd, "--type=json", "-p", loosen))
        beyond = '{"spec": {"analysis": {"minSamples": 20000000}}}'
        patch = ("patch", "canary", "app", "-n", world.namespace, "--type=merge", "-p", beyond)
        # the loosened schema reaches the server's handlers within moments
        await world.until(lambda: world.access.kubectl(*patch).returncode == 0, 30)
    finally:
        shipped = str(CRDS / "tollgate.dev_canaries.yaml")
        apply = ("apply", "--server-side", "--force-conflicts", "-f", shipped)
        tightened = world.access.kubectl(*apply)
    ok(tightened)
    stalled = ("Stalled", "InvalidSpec")
    await world.until(lambda: stalled in {(c.type, c.reason) for c in world.status().conditions})
    world.delete_canary()
    await world.until(lambda: world.get(CANARIES, "app") is None, 30)
    await released_and_kept(world)
    assert world.get(DEPLOYMENTS, "app-primary") is not None
    assert route_weights(world.get(ROUTES, "app") or {}) == (100, 0)
    (event,) = world.events("Released")
    assert "spec" in event["message"]


async def test_a_route_reapplied_without_the_canary_is_put_right_at_once(
    installed: ClusterAccess, tmp_path: Path
) -> None:
    """GitOps re-applies the HTTPRoute as written in Git (no canary backendRef): the route watch
    wakes the Canary, which writes its weight back long before its next tick (60 s)."""
    async with operated(installed, tmp_path, SLOW) as world:
        await world.route_reapplied_is_put_right(within=15)
