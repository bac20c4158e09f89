"""Two replicas (``tollgate run --peering``, as the chart runs them) on the real control plane:
one acts, the other waits; SIGKILL the active one mid-rollout and the other carries on from
status at the same step, within the peering lifetime, with no weight written twice or back.
"""

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.world import (
    FAST,
    ON_A_CLUSTER,
    PROMOTED_WEIGHTS,
    RouteWatch,
    World,
    operated,
)
from tollgate.api.status import Phase
from tollgate.testing.cluster import ClusterAccess

pytestmark = ON_A_CLUSTER
LIFETIME = 15  # the chart's default peering.lifetime
FAILOVER_GOAL = 20.0


@pytest.fixture
async def pair(tollgate_cluster: ClusterAccess, tmp_path: Path) -> AsyncIterator[World]:
    async with operated(tollgate_cluster, tmp_path, FAST, replicas=2) as w:
        yield w


def log_of(world: World, replica: int) -> str:
    return world.replicas[replica].log.read_text(errors="replace")


def peers(world: World) -> set[str]:
    found = world.access.kubectl("get", "kopfpeering", "tollgate", "-n", world.namespace,
                                 "-o", "jsonpath={.status}")  # fmt: skip
    return set(json.loads(found.stdout or "{}")) if found.returncode == 0 else set()


async def both_alive(world: World) -> None:
    """Both replicas keep the peering object alive; the junior has never acted."""
    await world.until(lambda: peers(world) == {"tollgate-0", "tollgate-1"}, 30)
    assert "Resuming operations" in log_of(world, 0)
    assert "Resuming operations" not in log_of(world, 1)


async def test_the_senior_replica_acts_and_a_killed_one_is_replaced_mid_rollout(
    pair: World,
) -> None:
    world = pair
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    await both_alive(world)
    watch = RouteWatch(world.access, world.namespace).start()
    try:
        world.release("app:2")
        await world.until(lambda: world.status().current_step == 2, 60)
        step_at_kill = world.status().current_step
        world.operator.kill()
        killed = time.monotonic()
        await world.until(lambda: world.status().current_step > step_at_kill, LIFETIME + 15)
        failover = time.monotonic() - killed
        await world.until(lambda: world.status().reason == "Promoted", 90)
        await world.until(lambda: bool(watch.weights) and watch.weights[-1] == 0)
    finally:
        watch.stop()
    assert failover < FAILOVER_GOAL, f"the standby took over after {failover:.1f} s"
    assert "Resuming operations after the pause" in log_of(world, 1)
    assert watch.weights[-len(PROMOTED_WEIGHTS) :] == PROMOTED_WEIGHTS  # none twice, none back
    steps = [h.step for h in world.status().history if h.phase is Phase.PROGRESSING]
    assert steps == sorted(steps)
    assert step_at_kill in steps


async def test_a_replica_that_stops_hands_over_at_once(pair: World) -> None:
    """A rolling upgrade's SIGTERM: the stopping replica removes its keep-alive, so the next
    one resumes in seconds, not after the lifetime."""
    world = pair
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    await both_alive(world)
    stopped = time.monotonic()
    world.operator.stop()
    await world.until(lambda: "Resuming operations" in log_of(world, 1), LIFETIME)
    assert time.monotonic() - stopped < LIFETIME / 2
    world.release("app:2")  # and the other replica acts on it
    await world.until(lambda: world.status().current_step >= 1, 30)
