"""The Gateway API router against the API test server, over real HTTP."""

from typing import Any

import pytest

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.resources import HTTPROUTES, Resource
from tollgate.adapters.routers.base import RouterError
from tollgate.adapters.routers.gatewayapi import GatewayApiRouter
from tollgate.testing.kubeapi import KubeApiServer

ROUTES = "httproutes.gateway.networking.k8s.io"


def route(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": rules},
    }


OTHER_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
    "backendRefs": [{"name": "admin", "port": 80}],
}
OWNED_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
    "filters": [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"add": [{"name": "x", "value": "y"}]},
        }
    ],
    "backendRefs": [
        {"name": "app-primary", "port": 80},
        {"name": "mirror-sink", "port": 81, "weight": 0},
    ],
}


def router(kube: KubeClient) -> GatewayApiRouter:
    return GatewayApiRouter(kube, "default", "app", None, "app-primary", "app-canary", 80)


async def test_sets_only_the_owned_backend_refs(api: KubeApiServer, kube: KubeClient) -> None:
    api.create(ROUTES, route([OTHER_RULE, OWNED_RULE]))
    r = router(kube)
    assert await r.get_weight() == 0  # no canary backendRef yet: all on primary
    assert await r.set_weight(5) == 5
    stored = api.get(ROUTES, "default", "app")
    assert stored is not None
    rules = stored["spec"]["rules"]
    assert rules[0] == OTHER_RULE
    assert rules[1]["matches"] == OWNED_RULE["matches"]
    assert rules[1]["filters"] == OWNED_RULE["filters"]
    assert rules[1]["backendRefs"] == [
        {"name": "app-primary", "port": 80, "weight": 95},
        {"name": "app-canary", "port": 80, "weight": 5},
        {"name": "mirror-sink", "port": 81, "weight": 0},
    ]
    assert await r.get_weight() == 5


async def test_unchanged_weight_writes_nothing(api: KubeApiServer, kube: KubeClient) -> None:
    api.create(ROUTES, route([OWNED_RULE]))
    r = router(kube)
    await r.set_weight(10)
    api.clear_requests()
    assert await r.set_weight(10) == 10
    assert api.writes() == []


async def test_weights_are_proportions(api: KubeApiServer, kube: KubeClient) -> None:
    rule = {
        "backendRefs": [
            {"name": "app-primary", "port": 80, "weight": 3},
            {"name": "app-canary", "port": 80, "weight": 1},
        ]
    }
    api.create(ROUTES, route([rule]))
    assert await router(kube).get_weight() == 25


async def test_missing_weight_means_one(api: KubeApiServer, kube: KubeClient) -> None:
    rule = {
        "backendRefs": [{"name": "app-primary", "port": 80}, {"name": "app-canary", "port": 80}]
    }
    api.create(ROUTES, route([rule]))
    assert await router(kube).get_weight() == 50


def shares(stored: dict[str, Any]) -> dict[str, float]:
    refs = stored["spec"]["rules"][0]["backendRefs"]
    total = sum(int(r.get("weight", 1)) for r in refs)
    return {r["name"]: round(100 * int(r.get("weight", 1)) / total, 2) for r in refs}


def two(primary: int | None, legacy: int) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"name": "app-primary", "port": 80}
    if primary is not None:
        first["weight"] = primary
    return [first, {"name": "legacy", "port": 80, "weight": legacy}]


@pytest.mark.parametrize(
    ("refs", "other"),
    [(two(10, 90), 90.0), (two(1, 1), 50.0), (two(300, 700), 70.0), (two(None, 3), 75.0)],
)
async def test_other_backends_keep_their_share_at_every_step(
    api: KubeApiServer, kube: KubeClient, refs: list[dict[str, Any]], other: float
) -> None:
    api.create(ROUTES, route([{"backendRefs": refs}]))
    r = router(kube)
    ours = 100.0 - other
    for weight in (5, 10, 25, 50, 1, 0):
        assert await r.set_weight(weight) == weight
        stored = api.get(ROUTES, "default", "app")
        assert stored is not None
        got = shares(stored)
        assert got["legacy"] == pytest.approx(other, abs=0.01), got
        assert got["app-canary"] == pytest.approx(ours * weight / 100, abs=ours / 100), got
    api.clear_requests()
    assert await r.set_weight(0) == 0
    assert api.writes() == []  # stable: a second write of the same weight changes nothing


async def test_conflict_is_retried_on_a_fresh_read(api: KubeApiServer, kube: KubeClient) -> None:
    api.create(ROUTES, route([OWNED_RULE]))
    api.fail_next("PUT", f"{ROUTES}/app", status=409, times=2)
    r = router(kube)
    assert await r.set_weight(20) == 20
    assert r.writes == 3
    assert await r.get_weight() == 20


async def test_a_concurrent_edit_is_kept(api: KubeApiServer, kube: KubeClient) -> None:
    """A write based on a stale read gets 409 and is re-applied on top of the other edit."""
    api.create(ROUTES, route([OWNED_RULE]))
    r = router(kube)
    stale = await kube.get(r_resource(), "default", "app")
    api.patch(ROUTES, "default", "app", {"metadata": {"labels": {"edited": "by-someone"}}})
    with pytest.raises(Exception, match="409"):
        await kube.replace(r_resource(), "default", "app", r.with_weight(stale, 30))
    assert await r.set_weight(30) == 30
    stored = api.get(ROUTES, "default", "app")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"edited": "by-someone"}


def r_resource() -> Resource:
    return HTTPROUTES


async def test_endless_conflicts_give_up_with_a_reason(
    api: KubeApiServer, kube: KubeClient
) -> None:
    api.create(ROUTES, route([OWNED_RULE]))
    api.fail_next("PUT", f"{ROUTES}/app", status=409, times=10)
    with pytest.raises(RouterError) as info:
        await router(kube).set_weight(20)
    assert info.value.reason == "Conflict"


async def test_missing_route(kube: KubeClient) -> None:
    with pytest.raises(RouterError) as info:
        await router(kube).get_weight()
    assert info.value.reason == "RouteNotFound"


async def test_route_without_primary(api: KubeApiServer, kube: KubeClient) -> None:
    api.create(ROUTES, route([OTHER_RULE]))
    with pytest.raises(RouterError) as info:
        await router(kube).set_weight(5)
    assert info.value.reason == "NoPrimaryBackend"
    assert "app-primary" in info.value.message
