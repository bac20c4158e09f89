"""Counts for the sequential tests, read from a real Prometheus with known history.

Counters in the history grow linearly, so the increase between two times is known exactly:
requests = rps x seconds, bad events = that x the share that fails or is slower than the bound.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.adapters.conftest import T
from tests.adapters.test_metrics_prometheus import request
from tollgate.adapters.metrics.counts import CountReader, CountReading, raw_query
from tollgate.adapters.metrics.families import families_for
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.testing.prometheus import PrometheusServer, free_port

pytestmark = pytest.mark.integration
AT = datetime.fromtimestamp(T, tz=UTC)


def reader() -> CountReader:
    return CountReader(lambda url: PrometheusClient(url, 5.0))


def read(r: CountReader, address: str, at: datetime, baseline: datetime | None, **kw: Any) -> Any:
    objectives = kw.pop("objectives", {})
    revision = kw.pop("revision", "rev2")
    return asyncio.run(r.read(request(address, **kw), revision, objectives, at, baseline))


def test_increments_since_the_step_began(prometheus: PrometheusServer) -> None:
    got = read(reader(), prometheus.url, AT, AT - timedelta(seconds=600))
    errors = got.counts["errorRate"]
    assert errors.canary_total == pytest.approx(6000)
    assert errors.canary_bad == pytest.approx(120)
    assert errors.stable_total == pytest.approx(114_000)
    assert errors.stable_bad == pytest.approx(570)
    # latency: the absolute limit (500 ms) is a bucket bound; 10% of canary requests are over it
    assert "latency" not in got.counts  # no relative limit, no relative test
    assert got.objectives["latency.max"] == 0.5
    assert got.counts["latency.max"].canary_bad == pytest.approx(600)
    assert got.counts["latency.max"].stable_bad == pytest.approx(2280)
    # ttft (relative, +10%): of the stable's bounds, 0.25 s (10% over it) is the one near its
    # p95 (within 4x of 5%); 0.5 s, the first bound over p95 x 1.1 (1% over it), is too far out.
    # 50% of the canary's requests and 10% of the stable's are over 0.25 s
    assert got.objectives["ttft"] == 0.25
    assert got.counts["ttft"].canary_bad == pytest.approx(3000)
    assert got.counts["ttft"].stable_bad == pytest.approx(11_400)
    # a version 10% slower would have 16.1% over 0.25 s (linear within the 0.1-0.25 bucket)
    assert got.tolerances["ttft"] == pytest.approx(
        (1 - (0.5 + 0.4 * (0.25 / 1.1 - 0.1) / 0.15)) / 0.1, rel=1e-4
    )
    assert got.counts["errorBudget"] == got.counts["errorRate"]  # the canary's own errors
    assert got.errors == {}


def test_cost_counts_answers_longer_than_a_bound_near_the_stable_median(
    prometheus: PrometheusServer,
) -> None:
    got = read(
        reader(),
        prometheus.url,
        AT,
        AT - timedelta(seconds=600),
        metrics={"names": {"outputTokensPerRequest": "llm_answer_tokens"}},
    )
    # the stable's answers: 80%, 50% and 20% over 100, 250 and 500 tokens (all near its
    # median); longer answers show most over 500 (20% -> 40% for this canary, against 50% ->
    # 70% over 250), so 500 is the bound
    assert got.objectives["costPerRequest"] == 500
    cost = got.counts["costPerRequest"]
    assert cost.canary_total == pytest.approx(6000)
    assert cost.canary_bad == pytest.approx(0.4 * 6000)
    assert cost.stable_bad == pytest.approx(0.2 * 114_000)
    assert 'llm_answer_tokens_bucket{namespace="shop"' in got.queries["costPerRequest"]
    assert got.queries["errorRate"].startswith('bad: label_replace(http_requests_total{code=~"5..')


def test_without_a_token_histogram_cost_is_not_counted(prometheus: PrometheusServer) -> None:
    got = read(reader(), prometheus.url, AT, AT - timedelta(seconds=600))  # prometheus preset
    assert "costPerRequest" not in got.counts
    assert "costPerRequest" not in got.errors


def test_later_readings_difference_against_the_previous_one(prometheus: PrometheusServer) -> None:
    r = reader()
    first = read(r, prometheus.url, AT - timedelta(seconds=300), AT - timedelta(seconds=600))
    assert first.counts["errorRate"].canary_total == pytest.approx(3000)
    second = read(r, prometheus.url, AT, None, objectives=first.objectives)
    assert second.counts["errorRate"].canary_total == pytest.approx(3000)
    assert second.counts["latency.max"].canary_bad == pytest.approx(300)


def test_without_a_snapshot_the_first_reading_is_only_one(prometheus: PrometheusServer) -> None:
    r = reader()
    assert read(r, prometheus.url, AT - timedelta(seconds=300), None).counts == {}
    # a new revision forgets the old series: its first reading needs a snapshot again
    assert read(r, prometheus.url, AT, None, revision="rev3").counts == {}
    assert read(r, prometheus.url, AT, None, revision="rev3").counts["errorRate"].canary_total == 0


def test_queries_stay_in_the_namespace_and_escape_values(prometheus: PrometheusServer) -> None:
    req = request(prometheus.url, namespace='we"ird', name="a.b")
    fam = families_for(req.metrics.preset, req.metrics.names)
    assert fam.requests is not None
    text = raw_query(req, fam.requests)
    assert 'namespace="we\\"ird"' in text
    assert "a\\\\.b" in text
    got = read(
        reader(), prometheus.url, AT, AT - timedelta(seconds=600), namespace="blog", name="web"
    )
    assert got.counts["errorRate"].canary_total == pytest.approx(3000)  # 5 rps x 600 s
    assert got.counts["errorRate"].stable_bad == pytest.approx(300)  # 10% of 3000


def test_concurrent_rollouts_share_one_query_per_family(prometheus: PrometheusServer) -> None:
    places = [("shop", "app"), ("blog", "web"), ("dots", "api.v2")]
    baseline = AT - timedelta(seconds=600)
    alone = {}
    for namespace, name in places:
        r = reader()
        alone[name] = read(r, prometheus.url, AT, baseline, namespace=namespace, name=name)
        single = r.queries_sent

    async def together() -> tuple[int, list[CountReading]]:
        r = reader()
        requests = [request(prometheus.url, namespace=ns, name=n) for ns, n in places]
        # the snapshots first (batched too), then one batched reading for all three
        await asyncio.gather(*(r.read(q, "rev2", {}, baseline) for q in requests))
        before = r.queries_sent
        got = await asyncio.gather(*(r.read(q, "rev2", {}, AT) for q in requests))
        return r.queries_sent - before, list(got)

    batched, got = asyncio.run(together())
    assert batched == single // 2  # one query per family for all three; alone: also a snapshot
    for (_, name), reading in zip(places, got, strict=True):
        assert reading.counts == alone[name].counts
        assert reading.errors == {}


def test_an_outage_gives_no_counts_and_says_why() -> None:
    got = read(reader(), f"http://127.0.0.1:{free_port()}", AT, AT - timedelta(seconds=600))
    assert got.counts == {}
    assert set(got.errors) == {"errorRate", "errorBudget", "latency.max", "ttft"}


def test_workload_names_with_dots(prometheus: PrometheusServer) -> None:
    got = read(
        reader(), prometheus.url, AT, AT - timedelta(seconds=600), namespace="dots", name="api.v2"
    )
    assert got.errors == {}
    assert got.counts["errorRate"].canary_total == pytest.approx(2400)
    assert got.counts["errorRate"].canary_bad == pytest.approx(600)
    assert got.counts["errorRate"].stable_bad == pytest.approx(0)
