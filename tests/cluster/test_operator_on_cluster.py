"""The operator (``kopf run``, as a user runs it) on the real local control plane.

Real Deployments become ready through the controller-manager, the scheduler and kwok's nodes;
the HTTPRoute is validated by the Gateway API CRDs; deletion goes through the API server's
finalizers and garbage collector. The rollouts skip analysis (their subject is the control
loop, not the metrics) and use a 2-second interval.
"""

import asyncio
import json
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import free_port
from tollgate.testing.scenario import canary, deployment, http_route

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

FAST = {
    "skipAnalysis": True,
    "analysis": {"interval": "2s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "1m"},
}
CANARIES = "/apis/tollgate.dev/v1alpha1/namespaces/{ns}/canaries"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICES = "/api/v1/namespaces/{ns}/services"
EVENTS = "/api/v1/namespaces/{ns}/events"
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


@pytest.fixture
def installed(tollgate_cluster: ClusterAccess) -> ClusterAccess:
    return tollgate_cluster


def route_weights(route: dict[str, Any], name: str = "app") -> tuple[int, int]:
    """(primary, canary) weights of the route's first rule; a missing backend is 0."""
    refs = {r["name"]: int(r.get("weight", 1)) for r in route["spec"]["rules"][0]["backendRefs"]}
    return refs.get(f"{name}-primary", 0), refs.get(f"{name}-canary", 0)


@dataclass
class RouteWatch:
    """Every canary weight the HTTPRoute was written with, from a watch (the server's view)."""

    access: ClusterAccess
    namespace: str
    weights: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "RouteWatch":
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        path = ROUTES.format(ns=self.namespace)
        version = "0"
        while not self._stop.is_set():
            params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "5"}
            try:
                with (
                    self.access.client(timeout=30.0) as client,
                    client.stream("GET", path, params=params) as response,
                ):
                    for line in response.iter_lines():
                        if self._stop.is_set():
                            return
                        event = json.loads(line)
                        obj = event["object"]
                        version = obj["metadata"].get("resourceVersion", version)
                        if event["type"] in ("ADDED", "MODIFIED"):
                            canary_weight = route_weights(obj)[1]
                            if not self.weights or self.weights[-1] != canary_weight:
                                self.weights.append(canary_weight)
            except (httpx.HTTPError, json.JSONDecodeError, KeyError):
                continue

    def stop(self) -> None:
        self._stop.set()


@dataclass
class World:
    """One namespace with a Deployment, its HTTPRoute and a Canary, and the operator."""

    access: ClusterAccess
    api: httpx.Client
    namespace: str
    operator: OperatorProcess

    def get(self, path: str, name: str) -> dict[str, Any] | None:
        response = self.api.get(f"{path.format(ns=self.namespace)}/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def status(self) -> RolloutStatus:
        found = self.get(CANARIES, "app") or {}
        return RolloutStatus.model_validate(found.get("status") or {})

    def release(self, image: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        response = self.api.patch(
            f"{DEPLOYMENTS.format(ns=self.namespace)}/app",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()

    def delete_canary(self) -> None:
        self.api.delete(f"{CANARIES.format(ns=self.namespace)}/app").raise_for_status()

    def events(self, reason: str) -> list[dict[str, Any]]:
        listed = self.api.get(EVENTS.format(ns=self.namespace)).json()["items"]
        return [e for e in listed if e.get("reason") == reason]

    async def delete_at_step(self, step: int) -> None:
        """Release app:2, delete the Canary once the rollout reached ``step``, until it is gone."""
        await self.until(lambda: self.status().phase is Phase.SUCCEEDED)
        self.release("app:2")
        await self.until(lambda: self.status().current_step >= step)
        self.delete_canary()
        await self.until(lambda: self.get(CANARIES, "app") is None)

    async def until(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.2)


@asynccontextmanager
async def operated(
    access: ClusterAccess, tmp_path: Path, spec: dict[str, Any]
) -> AsyncIterator[World]:
    namespace = f"op-{secrets.token_hex(3)}"
    ok(access.kubectl("create", "namespace", namespace))
    with access.client() as api:
        for path, body in (
            (DEPLOYMENTS, deployment("app", "app:1", replicas=2, namespace=namespace)),
            (ROUTES, http_route("app", namespace=namespace)),
            (CANARIES, canary("app", spec, namespace=namespace)),
        ):
            created = api.post(path.format(ns=namespace), json=body)
            assert created.status_code == 201, created.text
        operator = OperatorProcess(
            access.kubeconfig,
            tmp_path / "operator.log",
            namespace=namespace,
            env={"TOLLGATE_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"},
        )
        world = World(access, api, namespace, operator.start())
        try:
            yield world
        finally:
            if operator.process is None:
                operator.start()
            api.delete(f"{CANARIES.format(ns=namespace)}/app")
            try:
                await world.until(lambda: world.get(CANARIES, "app") is None, 30)
            finally:
                operator.stop()
                access.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
async def world(installed: ClusterAccess, tmp_path: Path) -> AsyncIterator[World]:
    async with operated(installed, tmp_path, FAST) as w:
        yield w


@pytest.fixture
async def reverting(installed: ClusterAccess, tmp_path: Path) -> AsyncIterator[World]:
    async with operated(installed, tmp_path, {**FAST, "revertOnDeletion": True}) as w:
        yield w


def owners(obj: dict[str, Any] | None) -> list[str]:
    assert obj is not None
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


async def test_a_release_is_promoted_on_real_deployments_and_no_spec_copy_is_kept(
    world: World,
) -> None:
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    uid = (world.get(CANARIES, "app") or {})["metadata"]["uid"]
    primary = world.get(DEPLOYMENTS, "app-primary")
    assert owners(primary) == [uid]
    assert owners(world.get(SERVICES, "app-primary")) == [uid]
    assert owners(world.get(SERVICES, "app-canary")) == [uid]
    watch = RouteWatch(world.access, world.namespace).start()
    try:
        world.release("app:2")
        await world.until(lambda: world.status().reason == "Promoted", 90)
        await world.until(lambda: bool(watch.weights) and watch.weights[-1] == 0)
    finally:
        watch.stop()
    assert watch.weights[-6:] == [10, 20, 30, 40, 50, 0]
    primary = world.get(DEPLOYMENTS, "app-primary") or {}
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    annotations = (world.get(CANARIES, "app") or {})["metadata"].get("annotations") or {}
    assert LAST_HANDLED not in annotations


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


async def test_deleting_mid_rollout_leaves_primary_serving_and_unowned(world: World) -> None:
    await world.delete_at_step(2)
    assert route_weights(world.get(ROUTES, "app") or {}) == (100, 0)
    for path, name in (
        (DEPLOYMENTS, "app-primary"),
        (SERVICES, "app-primary"),
        (SERVICES, "app-canary"),
    ):
        assert owners(world.get(path, name)) == [], name
    await asyncio.sleep(3)  # the garbage collector had its chance
    primary = world.get(DEPLOYMENTS, "app-primary") or {}
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
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


async def test_the_log_holds_decisions_not_every_request_or_event(
    world: World, tmp_path: Path
) -> None:
    await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
    for i in range(20):  # Deployments of other teams: none of the operator's business
        body = deployment(f"other{i}", "x:1", namespace=world.namespace)
        assert world.api.post(DEPLOYMENTS.format(ns=world.namespace), json=body).is_success
    world.release("app:2")
    await world.until(lambda: world.status().reason == "Promoted", 90)
    world.operator.stop()
    lines = (tmp_path / "operator.log").read_text().splitlines()
    assert not [line for line in lines if "HTTP Request:" in line]
    assert not [line for line in lines if "wake_on_workload" in line and "succeeded" in line]
    assert not [line for line in lines if "wake_on_change" in line and "succeeded" in line]


async def test_a_route_reapplied_without_the_canary_is_put_right_at_once(
    installed: ClusterAccess, tmp_path: Path
) -> None:
    """GitOps re-applies the HTTPRoute as written in Git (no canary backendRef): the route watch
    wakes the Canary, which writes its weight back long before its next tick (60 s)."""
    slow = {
        "skipAnalysis": True,
        "analysis": {
            "interval": "60s",
            "stepWeight": 10,
            "maxWeight": 50,
            "progressDeadline": "5m",
        },
    }
    async with operated(installed, tmp_path, slow) as world:
        await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
        world.release("app:2")
        await world.until(lambda: route_weights(world.get(ROUTES, "app") or {})[1] == 10)
        as_in_git = http_route("app", namespace=world.namespace)
        stored = world.get(ROUTES, "app") or {}
        as_in_git["metadata"] = stored["metadata"]
        path = f"{ROUTES.format(ns=world.namespace)}/app"
        world.api.put(path, json=as_in_git).raise_for_status()
        await world.until(lambda: route_weights(world.get(ROUTES, "app") or {})[1] == 10, 15)
