"""A tenant's spec cannot make the operator call, or read, what it should not (docs/security.md).

Table-driven over the rules, then end to end: a Canary naming a foreign Prometheus is stalled
with a reason and the foreign endpoint never hears from the operator.
"""

import asyncio
from typing import Any

import pytest

from tests.runtime.world import stable_and_canary, world
from tollgate.api.canary import CanarySpec
from tollgate.api.status import Phase
from tollgate.runtime.settings import Settings
from tollgate.runtime.spec_checks import runtime_problems
from tollgate.testing import scenario
from tollgate.testing.scenario import CANARIES, NS

SETTINGS = Settings(
    prometheus_url="http://prometheus.monitoring.svc:9090",
    allowed_prometheus=("https://thanos.monitoring.svc:10902/prometheus",),
    allowed_webhook_hosts=("loadtester.shop.svc", "*.gates.svc"),
)


def spec(**over: Any) -> CanarySpec:
    body: dict[str, Any] = {
        "targetRef": {"name": "api"},
        "service": {"port": 80},
        "router": {"httpRoute": {"name": "api"}},
        "checks": {"errorRate": {"maxPercent": 1}},
        **over,
    }
    return CanarySpec.model_validate(body)


def custom(query: str) -> dict[str, Any]:
    return {"checks": {"custom": [{"name": "q", "query": query, "max": 1}]}}


def prom(address: str) -> dict[str, Any]:
    return {"metrics": {"prometheus": {"address": address}}}


def gate(url: str) -> dict[str, Any]:
    webhook = {"name": "g", "stage": "BeforeStep", "type": "Webhook", "webhook": {"url": url}}
    return {"gates": [webhook]}


@pytest.mark.parametrize(
    ("over", "refused"),
    [
        ({}, None),
        (prom("http://prometheus.monitoring.svc:9090/"), None),
        (
            prom("https://thanos.monitoring.svc:10902/prometheus"),
            None,
        ),
        (prom("http://10.0.0.1:8080"), "may query"),
        (prom("http://internal.svc/admin?"), "no user, query"),
        (prom("http://a:b@prometheus.monitoring.svc:9090"), "no user"),
        (gate("http://loadtester.shop.svc/gate"), None),
        (gate("http://one.gates.svc/x"), None),
        (gate("http://metadata.google.internal/computeMetadata/v1/"), "may call"),
        (gate("http://loadtester.shop.svc.evil.example/gate"), "may call"),
        (custom("sum(rate(http_requests_total{ {{ selector }} }[1m]))"), None),
        (custom('sum(rate(http_requests_total{namespace="team-b"}[1m]))'), "does not pin"),
        (custom("sum(up)"), "does not pin"),
        (custom('sum(x{ {{ selector }} }) / sum(y{namespace="team-b"})'), "selector y"),
        (custom('sum(x{namespace="shop" or namespace="team-b"})'), "does not pin"),
    ],
)  # fmt: skip
def test_tenancy_rules(over: dict[str, Any], refused: str | None) -> None:
    problems = [str(p) for p in runtime_problems(spec(**over), "shop", SETTINGS)]
    if refused is None:
        assert problems == []
    else:
        assert any(refused in p for p in problems), problems


def test_an_operator_can_allow_cross_namespace_queries() -> None:
    allowing = Settings(cross_namespace_queries=True)
    query = custom('sum(rate(http_requests_total{namespace="team-b"}[1m]))')
    assert runtime_problems(spec(**query), "shop", allowing) == []


async def test_a_foreign_prometheus_is_never_called_and_the_canary_says_why() -> None:
    asked: list[bytes] = []

    async def foreign(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(foreign, "127.0.0.1", 0)
    address = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with world(stable_and_canary()) as w:
        body = w.canary()
        body["spec"]["metrics"] = {"prometheus": {"address": address}}
        w.api.replace(CANARIES, NS, "app", body)
        w.release("app:2")
        for _ in range(3):
            await w.tick(30)
        status = w.status()
        assert status.phase is not Phase.PROGRESSING
        stalled = next(c for c in status.conditions if c.type == "Stalled")
        assert stalled.reason == "InvalidSpec"
        assert "spec.metrics.prometheus.address: not an address this operator may" in (
            stalled.message
        )
        assert scenario.route_weight(w.api, "app") == 0
    server.close()
    assert asked == []
