"""The operator's /metrics as a real Prometheus sees them, through a live rollout: ``tollgate
run`` (as the chart runs it) on the real control plane, scraped every second."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.world import FAST, ON_A_CLUSTER, PROMOTED_WEIGHTS, World, operated
from tollgate.api.status import Phase
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.prometheus import PrometheusServer

pytestmark = ON_A_CLUSTER


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    with PrometheusServer(scrape_interval="1s", workdir=tmp_path / "prom") as server:
        yield server.start()


def query(prometheus: PrometheusServer, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(prometheus: PrometheusServer, promql: str) -> float | None:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


async def test_a_rollout_is_seen_in_prometheus_from_start_to_promotion(
    tollgate_cluster: ClusterAccess, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    async with operated(tollgate_cluster, tmp_path, FAST, peering=True) as world:
        scrape = (f"127.0.0.1:{world.operator.metrics_port}", {"job": "tollgate"})
        prometheus.set_targets([scrape])
        await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
        assert await world.promote_watched() == PROMOTED_WEIGHTS
        ns = world.namespace
        selector = f'kind="Canary",namespace="{ns}",name="app"'

        def promoted_seen() -> bool:
            return value(prometheus, f'tollgate_rollout_phase{{{selector},phase="Succeeded"}}') == 1

        await world.until(promoted_seen, 15)
        assert_the_rollout_was_recorded(world, prometheus, selector)


def assert_the_rollout_was_recorded(world: World, prometheus: PrometheusServer, sel: str) -> None:
    peak = value(prometheus, f"max_over_time(tollgate_rollout_canary_weight_percent{{{sel}}}[5m])")
    assert peak == 50  # FAST's last step, as the operator recorded it
    steps = value(prometheus, f"max_over_time(tollgate_rollout_step{{{sel}}}[5m])")
    assert steps == 5
    reasons = {r["metric"]["reason"] for r in query(prometheus, "tollgate_decisions_total")}
    assert {"StepUp", "Promoted"} <= reasons
    assert value(prometheus, 'sum(tollgate_reconcile_duration_seconds_count{kind="Canary"})')
    assert value(prometheus, "sum(tollgate_reconcile_failures_total)") in (None, 0.0)
    assert world.status().phase is Phase.SUCCEEDED
