"""The operator (``kopf run``) on the real control plane, through a fault-injecting proxy.

The real API server answers everything the proxy passes on; the proxy adds what a real server
does only under load or in an incident, on cue: a storm of 409s on status writes, a 429 with
Retry-After on the route, 500s reading the target, watch streams that drop, a slow API.
What the rollout did is read from the real server (GETs, a watch of the route), not the proxy.
"""

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.cluster.world import (
    FAST,
    ON_A_CLUSTER,
    PROMOTED_WEIGHTS,
    SLOW,
    RouteWatch,
    World,
    operated,
)
from tollgate.api.status import Phase
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.faultproxy import FaultProxy, Slowdown

pytestmark = ON_A_CLUSTER


@pytest.fixture
def proxy(tollgate_cluster: ClusterAccess) -> Iterator[FaultProxy]:
    with FaultProxy(tollgate_cluster) as running:
        yield running


def proxied(
    access: ClusterAccess,
    proxy: FaultProxy,
    tmp_path: Path,
    spec: dict[str, object],
    env: dict[str, str] | None = None,
) -> AbstractAsyncContextManager[World]:
    """The world, with the operator talking to the API server through ``proxy``."""
    kubeconfig = proxy.write_kubeconfig(tmp_path / "proxy.kubeconfig")
    return operated(access, tmp_path, dict(spec), kubeconfig=kubeconfig, env=env)


@pytest.fixture
async def world(
    tollgate_cluster: ClusterAccess, proxy: FaultProxy, tmp_path: Path
) -> AsyncIterator[World]:
    async with proxied(tollgate_cluster, proxy, tmp_path, FAST) as w:
        yield w


async def test_a_release_through_a_409_storm_a_429_and_500s_is_promoted_step_by_step(
    world: World, proxy: FaultProxy
) -> None:
    """One release meets them all (one rollout keeps the suite short): 6 conflicts in a row on
    status writes (backing off to the 5 s cap), a 429 with Retry-After on the first route
    write, then 4 failed reads of the target.
    Every weight is written once and in order, the 429's wait is honoured, nothing rolls back."""
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    storm = proxy.fail("PATCH", "canaries/app/status", status=409, times=6)
    proxy.fail("PATCH", "httproutes/app", status=429, retry_after=2, times=1)
    proxy.fail("PUT", "httproutes/app", status=429, retry_after=2, times=1)
    watch = RouteWatch(world.access, world.namespace).start()
    try:
        world.release("app:2")
        await world.until(lambda: world.status().current_step >= 1, 90)
        outage = proxy.fail("GET", "deployments.apps/app", status=500, times=4)
        await world.until(lambda: outage.exhausted, 60)
        await world.until(lambda: world.status().reason == "Promoted", 120)
        await world.until(lambda: bool(watch.weights) and watch.weights[-1] == 0)
    finally:
        watch.stop()
    assert watch.weights[-len(PROMOTED_WEIGHTS) :] == PROMOTED_WEIGHTS  # none skipped or repeated
    assert storm.fired == 6
    writes = [
        r for r in proxy.log if r.target.plural == "httproutes" and r.method in ("PUT", "PATCH")
    ]
    refused = next(i for i, r in enumerate(writes) if r.status == 429)
    assert writes[refused + 1].at - writes[refused].at >= 1.9  # Retry-After honoured
    reasons = {h.reason for h in world.status().history}
    assert not reasons & {"AnalysisFailed", "ReconcileFailed", "ProgressDeadlineExceeded"}


async def test_dropped_watches_and_a_slow_api_still_put_a_reapplied_route_right(
    tollgate_cluster: ClusterAccess, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every watch stream is cut after 3 s and every request waits 0.3 s: kopf re-lists and
    re-watches, and a GitOps re-apply of the route is still put right before the next tick."""
    proxy.watch_cut_after = 3.0
    proxy.slowdowns.append(Slowdown(0.3))
    async with proxied(tollgate_cluster, proxy, tmp_path, SLOW) as world:
        await world.route_reapplied_is_put_right(within=20)
        watches = [r for r in proxy.log if r.is_watch]
        assert len(watches) > 3  # the streams were cut and opened again
        proxy.watch_cut_after = None  # the deletion at the end is not what this test is about
        proxy.slowdowns.clear()


async def test_watches_gone_silent_are_dropped_and_a_reapplied_route_is_still_put_right(
    tollgate_cluster: ClusterAccess, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every open watch goes silent, as over a half-open connection: nothing passes, not even
    the server's end of the stream. Past 1.5 watch timeouts the operator drops them and
    watches again from where it was, so a GitOps re-apply of the route is put right long
    before the next tick (60 s), not only when the rollout's own timer fires."""
    env = {"TOLLGATE_WATCH_TIMEOUT": "4"}
    async with proxied(tollgate_cluster, proxy, tmp_path, SLOW, env=env) as world:

        def go_silent() -> None:
            proxy.stalled_before = time.monotonic()

        await world.route_reapplied_is_put_right(within=20, before=go_silent)
