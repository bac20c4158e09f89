"""A live rollout and ``tollgate analyze --replay`` of its own history reach the same verdict.

The operator runs as ``kopf run`` on the real local control plane while Prometheus scrapes two
workload exporters every second and simulated traffic follows the weights the operator writes.
One healthy release is promoted, then a release failing half its requests is rolled back.
Each period is then replayed in-process against the same Prometheus: the replay must end the
same way, for the same reason, within one reading (``sequential.every``, equal to the scrape
interval here) of the live decision.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.chart.test_dashboard import expressions
from tests.runtime.live import Live, live_canary, until
from tollgate.api.status import HistoryEntry, Phase, RolloutStatus
from tollgate.cli.replay import ReplayOutcome, ReplayResult, replay, target_from_document
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.scenario import CANARIES

pytestmark = pytest.mark.integration
EVERY = 1.0  # seconds between readings of counts, and the scrape interval
SPEC = {
    "analysis": {**scenario.fast_analysis(), "sequential": {"every": "1s"}},
    "checks": {"latency": {"maxIncreasePercent": 50}, "errorRate": {"maxPercent": 5}},
}
ENDINGS = {Phase.PROMOTING: ReplayOutcome.PROMOTED, Phase.ROLLING_BACK: ReplayOutcome.ROLLED_BACK}


@pytest.fixture
async def live(tollgate_cluster: ClusterAccess, tmp_path: Path) -> AsyncIterator[Live]:
    async with live_canary(tollgate_cluster, tmp_path, SPEC, seed=5) as world:
        yield world


def status(live: Live) -> RolloutStatus:
    return live.status()


def period(history: list[HistoryEntry], after: datetime) -> tuple[HistoryEntry, HistoryEntry]:
    """The live rollout's first step and its ending decision (promotion or rollback)."""
    mine = [h for h in history if h.time > after]
    first = next(h for h in mine if h.phase is Phase.PROGRESSING and h.step == 1)
    ending = next(h for h in mine if h.phase in ENDINGS)
    return first, ending


async def replay_of(live: Live, first: HistoryEntry, ending: HistoryEntry) -> ReplayResult:
    body = live.api.get(CANARIES, live.namespace, "app")
    assert body is not None
    doc = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")}
    target = target_from_document(doc, live.prometheus.url)
    end = ending.time + timedelta(seconds=5 * EVERY)
    while datetime.now(end.tzinfo) < end + timedelta(seconds=EVERY):  # scraped past the end
        await asyncio.sleep(0.2)
    return await replay(target, first.time, end)


def assert_same(result: ReplayResult, ending: HistoryEntry) -> None:
    assert result.outcome is ENDINGS[ending.phase], result.message
    assert result.reason == ending.reason
    assert result.decided_at is not None
    apart = abs((result.decided_at - ending.time).total_seconds())
    assert apart <= EVERY + 0.5, f"replay decided {apart:.2f}s away from the live decision"


async def test_a_replay_of_live_history_reaches_the_live_verdicts(live: Live) -> None:
    await until(lambda: status(live).phase is Phase.SUCCEEDED, 60)
    began = datetime.now().astimezone()
    scenario.release(live.api, "app", "app:2", live.namespace)
    await until(lambda: status(live).reason == "Promoted", 60)
    good = period(status(live).history, began)

    live.canary.error_share = 0.5  # the next version fails half its requests from the start
    began = datetime.now().astimezone()
    scenario.release(live.api, "app", "app:3", live.namespace)
    await until(lambda: status(live).phase is Phase.ROLLED_BACK, 60)
    bad = period(status(live).history, began)

    assert_same(await replay_of(live, *good), good[1])
    assert_same(await replay_of(live, *bad), bad[1])
    # the same Prometheus scraped the operator: every query of the chart's dashboard has data
    # over the last ten minutes, asked as Grafana asks (a range query)
    now = time.time()
    for title, expr in expressions(live.namespace, "app"):
        asked: dict[str, str | float] = {"query": expr, "start": now - 600, "end": now, "step": 5}
        answer = httpx.get(f"{live.prometheus.url}/api/v1/query_range", params=asked).json()
        assert answer["status"] == "success", (title, answer)
        assert answer["data"]["result"], f"{title}: no data for {expr}"
