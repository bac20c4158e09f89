"""Counts for the sequential tests, read from a real Prometheus with known history.

Counters in the history grow linearly, so the increase between two times is known exactly:
requests = rps x seconds, bad events = that x the share that fails or is slower than the bound.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.adapters.conftest import CANARY, STABLE, T
from tests.adapters.history import openmetrics
from tests.adapters.test_metrics_prometheus import request
from tollgate.adapters.metrics.counts import CountReader, CountReading, raw_query
from tollgate.adapters.metrics.families import families_for
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.testing.prometheus import PrometheusServer, free_port, with_dead_remote_read

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
    # ttft (relative, +10%): the bounds are 2x apart, too coarse to count a 10% tolerance
    # exactly: the limit goes to the window, and status says why
    assert "ttft" not in got.counts
    assert "buckets too coarse" in got.untestable["ttft"]
    assert got.counts["errorBudget"] == got.counts["errorRate"]  # the canary's own errors
    assert got.errors == {}


def test_a_tolerance_the_buckets_can_count_pairs_two_bounds(prometheus: PrometheusServer) -> None:
    got = read(
        reader(),
        prometheus.url,
        AT,
        AT - timedelta(seconds=600),
        checks={"ttft": {"maxIncreasePercent": 150}},
    )
    # a canary at most 2.5x slower has at most the stable's share over 0.1 s over 0.25 s
    assert got.objectives["ttft"] == 0.25
    assert got.objectives["ttft:stable"] == 0.1
    assert got.counts["ttft"].canary_bad == pytest.approx(0.5 * 6000)  # canary over 0.25 s
    assert got.counts["ttft"].stable_bad == pytest.approx(0.5 * 114_000)  # stable over 0.1 s


def test_cost_counts_answers_longer_than_a_pair_of_bounds(prometheus: PrometheusServer) -> None:
    names = {"names": {"outputTokensPerRequest": "llm_answer_tokens"}}
    pricing = {"inputPerMillionTokens": 2.0, "outputPerMillionTokens": 8.0}
    got = read(
        reader(),
        prometheus.url,
        AT,
        AT - timedelta(seconds=600),
        metrics=names,
        checks={"costPerRequest": {"pricing": pricing, "maxIncreasePercent": 150}},
    )
    # answers at most 2.5x longer than the stable's: over 250 tokens no more often than the
    # stable's over 100 (80% of them)
    assert got.objectives["costPerRequest"] == 250
    assert got.objectives["costPerRequest:stable"] == 100
    cost = got.counts["costPerRequest"]
    assert cost.canary_total == pytest.approx(6000)
    assert cost.canary_bad == pytest.approx(0.7 * 6000)
    assert cost.stable_bad == pytest.approx(0.8 * 114_000)
    assert 'llm_answer_tokens_bucket{namespace="shop"' in got.queries["costPerRequest"]
    assert got.queries["errorRate"].startswith('bad: label_replace(http_requests_total{code=~"5..')
    # a 10% tolerance is finer than buckets 2-2.5x apart can count: judged on the window
    tight = read(reader(), prometheus.url, AT, AT - timedelta(seconds=600), metrics=names)
    assert "costPerRequest" in tight.untestable


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


def test_a_partial_answer_gives_no_counts_and_says_why() -> None:
    """Thanos and Cortex answer with ``warnings`` when a store is down; so does a Prometheus
    whose remote read is: none of it may count as evidence (a missing error series is not 0)."""
    server = with_dead_remote_read(PrometheusServer())
    server.backfill(openmetrics([CANARY, STABLE], T - 3600, T))
    server.start()
    try:
        got = read(reader(), server.url, AT, AT - timedelta(seconds=600))
    finally:
        server.close()
    assert got.counts == {}
    assert got.amounts == {}
    assert got.errors
    assert all("partial" in why for why in got.errors.values()), got.errors


def test_workload_names_with_dots(prometheus: PrometheusServer) -> None:
    got = read(
        reader(), prometheus.url, AT, AT - timedelta(seconds=600), namespace="dots", name="api.v2"
    )
    assert got.errors == {}
    assert got.counts["errorRate"].canary_total == pytest.approx(2400)
    assert got.counts["errorRate"].canary_bad == pytest.approx(600)
    assert got.counts["errorRate"].stable_bad == pytest.approx(0)


def test_an_absolute_cost_limit_reads_what_the_requests_cost(prometheus: PrometheusServer) -> None:
    cost = {
        "pricing": {"inputPerMillionTokens": 2.0, "outputPerMillionTokens": 8.0},
        "maxPerRequest": 0.005,
    }
    got = read(
        reader(), prometheus.url, AT, AT - timedelta(seconds=600), checks={"costPerRequest": cost}
    )
    amount = got.amounts["costPerRequest.max"]
    # 6,000 canary requests of 1,000 input and 500 output tokens: 0.002 + 0.004 each
    assert amount.canary_requests == pytest.approx(6000)
    assert amount.canary_amount == pytest.approx(6000 * 0.006)
    # 114,000 stable requests of 1,000 and 400 tokens
    assert amount.stable_amount == pytest.approx(114_000 * (0.002 + 0.0032))
    assert "costPerRequest.max" not in got.counts
    assert got.queries["costPerRequest.max"].startswith("tokens and requests: ")


def test_a_failed_reading_does_not_make_the_next_count_a_lifetime(
    prometheus: PrometheusServer,
) -> None:
    r = reader()
    first = read(r, prometheus.url, AT - timedelta(seconds=300), AT - timedelta(seconds=600))
    assert first.counts["errorRate"].canary_total == pytest.approx(3000)
    dead = f"http://127.0.0.1:{free_port()}"
    failed = read(r, dead, AT - timedelta(seconds=150), None)  # Prometheus down this once
    assert failed.counts == {}
    assert failed.errors
    again = read(r, prometheus.url, AT, None, objectives=first.objectives)
    # the 300 s since the last good reading (10 req/s), not every request since the pod began
    assert again.counts["errorRate"].canary_total == pytest.approx(3000)
    assert again.counts["errorRate"].canary_bad == pytest.approx(60)
