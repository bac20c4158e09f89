"""One namespace on a real cluster with a Deployment, its HTTPRoute and a Canary, the operator
running as ``kopf run``, and readers of what it did (the server's view: GETs and a watch)."""

import asyncio
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess, has_kubectl
from tollgate.testing.operator_process import OperatorProcess
from tollgate.testing.prometheus import free_port
from tollgate.testing.scenario import canary, deployment, http_route

# the marks of a module whose tests run the operator on a real cluster
ON_A_CLUSTER = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_kubectl(), reason="no kubectl: run `make tools`"),
]
FAST = {
    "skipAnalysis": True,
    "analysis": {"interval": "1s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "1m"},
}
PROMOTED_WEIGHTS = [10, 20, 30, 40, 50, 0]  # FAST's plan, then promotion
# a minute between ticks: anything put right sooner was woken by a watch
SLOW = {
    "skipAnalysis": True,
    "analysis": {"interval": "60s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "5m"},
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
    replicas: list[OperatorProcess] = field(default_factory=list)

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
        patch = {"spec": {"template": {"spec": {"containers": [scenario.container(image)]}}}}
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

    async def promote_watched(self, timeout: float = 120.0) -> list[int]:
        """Release app:2 until promoted; the last canary weights the route was written with
        (as many as FAST's plan writes)."""
        watch = RouteWatch(self.access, self.namespace).start()
        try:
            self.release("app:2")
            await self.until(lambda: self.status().reason == "Promoted", timeout)
            await self.until(lambda: bool(watch.weights) and watch.weights[-1] == 0)
        finally:
            watch.stop()
        return watch.weights[-len(PROMOTED_WEIGHTS) :]

    async def route_reapplied_is_put_right(
        self, within: float, before: Callable[[], None] = lambda: None
    ) -> None:
        """At 10%, GitOps re-applies the HTTPRoute as Git has it (no canary backendRef); the
        operator must write its weight back ``within`` seconds. ``before`` runs just before."""
        await self.until(lambda: self.status().phase is Phase.SUCCEEDED)
        self.release("app:2")
        await self.until(lambda: route_weights(self.get(ROUTES, "app") or {})[1] == 10)
        before()
        as_in_git = http_route("app", namespace=self.namespace)
        as_in_git["metadata"] = (self.get(ROUTES, "app") or {})["metadata"]
        path = f"{ROUTES.format(ns=self.namespace)}/app"
        self.api.put(path, json=as_in_git).raise_for_status()
        await self.until(lambda: route_weights(self.get(ROUTES, "app") or {})[1] == 10, within)

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
    access: ClusterAccess,
    tmp_path: Path,
    spec: dict[str, Any],
    kubeconfig: Path | None = None,
    namespace: str | None = None,
    replicas: int = 1,
    peering: bool | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[World]:
    """The world, with the operator reaching the API server through ``kubeconfig`` (a fault
    proxy's, a ServiceAccount's) or, by default, directly as the admin. With ``replicas``
    above 1 (or ``peering``), so many ``tollgate run --peering`` replicas, as the chart runs
    them, started a second apart (the first is the senior, which acts); ``world.operator`` is
    the first."""
    namespace = namespace or f"op-{secrets.token_hex(3)}"
    made = access.kubectl("create", "namespace", namespace)
    assert made.returncode == 0 or "AlreadyExists" in made.stderr, made.stderr
    with access.client() as api:
        for path, body in (
            (DEPLOYMENTS, deployment("app", "app:1", replicas=2, namespace=namespace)),
            (ROUTES, http_route("app", namespace=namespace)),
            (CANARIES, canary("app", spec, namespace=namespace)),
        ):
            created = api.post(path.format(ns=namespace), json=body)
            assert created.status_code == 201, created.text
        prometheus, extra = f"http://127.0.0.1:{free_port()}", env or {}
        operators = [
            OperatorProcess(
                kubeconfig or access.kubeconfig,
                tmp_path / ("operator.log" if i == 0 else f"operator-{i}.log"),
                namespace=namespace,
                env={"TOLLGATE_PROMETHEUS_URL": prometheus, "POD_ID": f"tollgate-{i}", **extra},
                peering="tollgate" if (replicas > 1 if peering is None else peering) else None,
            )
            for i in range(replicas)
        ]
        world = World(access, api, namespace, operators[0].start(), operators)
        for standby in operators[1:]:
            await asyncio.sleep(1.0)
            standby.start()
        try:
            yield world
        finally:
            if not any(o.process for o in operators):
                operators[0].start()
            api.delete(f"{CANARIES.format(ns=namespace)}/app")
            try:
                await world.until(lambda: world.get(CANARIES, "app") is None, 30)
            finally:
                for operator in operators:
                    operator.stop()
                access.kubectl("delete", "namespace", namespace, "--wait=false")


def owners(obj: dict[str, Any] | None) -> list[str]:
    assert obj is not None
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]
