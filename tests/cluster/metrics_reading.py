"""Reading the operator's /metrics as a real Prometheus scraped them (every second) during a
live rollout: the fixture, queries, and what a promoted rollout must have left there."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.world import World
from tollgate.api.status import Phase
from tollgate.testing.prometheus import PrometheusServer


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    with PrometheusServer(scrape_interval="1s", workdir=tmp_path / "prom") as server:
        yield server


def query(prometheus: PrometheusServer, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(prometheus: PrometheusServer, promql: str) -> float | None:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


def assert_the_rollout_was_recorded(
    world: World, prometheus: PrometheusServer, sel: str, peak: int, steps: int
) -> None:
    """Prometheus saw the rollout climb to ``peak`` percent in ``steps`` steps, then promote."""
    top = value(prometheus, f"max_over_time(tollgate_rollout_canary_weight_percent{{{sel}}}[5m])")
    assert top == peak  # the last step, as the operator recorded it
    assert value(prometheus, f"max_over_time(tollgate_rollout_step{{{sel}}}[5m])") == steps
    reasons = {r["metric"]["reason"] for r in query(prometheus, "tollgate_decisions_total")}
    assert {"StepUp", "Promoted"} <= reasons
    assert value(prometheus, 'sum(tollgate_reconcile_duration_seconds_count{kind="Canary"})')
    assert value(prometheus, "sum(tollgate_reconcile_failures_total)") in (None, 0.0)
    assert world.status().phase is Phase.SUCCEEDED
