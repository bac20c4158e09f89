"""Threshold windows against a real Prometheus: every request of the window counted, once.

The history (window_history.py) is bursty and has what real rollouts have: a canary pod whose
``code="500"`` series is born at its first failure inside the window, a canary pod started
inside the window, restarts inside the window and at its edge, and a broken "counter" that
goes down. A window (at - W, at] counts the requests of the scrapes inside it; the generator
knows them exactly, so every expectation below is exact.
"""

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.adapters.test_metrics_prometheus import SPEC, batcher_for, request
from tests.adapters.window_history import Pod, Traffic, openmetrics, window
from tests.engine.sim import merge
from tollgate.adapters.metrics.histograms import quantile
from tollgate.api.canary import CanarySpec
from tollgate.api.status import Verdict
from tollgate.engine.checks import judge, rules_for
from tollgate.engine.observations import MetricReading
from tollgate.testing.prometheus import PrometheusServer, with_dead_remote_read

pytestmark = pytest.mark.integration
T = 1_767_225_600
HOUR = T - 3600
BURSTY = (13, 2, 27, 8, 1, 21)
PODS = [
    # a canary pod failing for the first time 45 s before the end of the window
    Pod("late", "app-7d9f8c6b5-aaaaa", HOUR, T, BURSTY, failures=((T - 45, 2), (T - 15, 1))),
    # a canary pod started 30 s before the end, failing once at its last scrape
    Pod("late", "app-7d9f8c6b5-bbbbb", T - 30, T, (5, 9, 3), failures=((T, 1),)),
    Pod("late", "app-primary-5f6d7c8b9-ccccc", HOUR, T, (90, 40, 120, 75), failure_every=2),
    Pod("late", "app-primary-5f6d7c8b9-ddddd", HOUR, T, (60, 110, 30), failure_every=5),
    # restarted inside the window (and its 500 series gone until the next failure)
    Pod("restart", "svc-7d9f8c6b5-eeeee", HOUR, T, BURSTY, failure_every=3, restarts=(T - 45,)),
    # restarted at the window's edge, then grown past the value it had there
    Pod("restart", "svc-7d9f8c6b5-fffff", T - 75, T, (4,), failure_every=2, restarts=(T - 60,)),
    Pod("restart", "svc-primary-5f6d7c8b9-ggggg", HOUR, T, (50, 70), failure_every=4),
    # a "counter" (metrics.names.errors) that goes down: impossible data
    Pod("neg", "api-7d9f8c6b5-hhhhh", HOUR, T, (10,), negative_failures=True),
    Pod("neg", "api-primary-5f6d7c8b9-iiiii", HOUR, T, (10,)),
]
CHECKS = ("latency", "ttft", "errorRate", "errorBudget", "costPerRequest")
PRICE_IN, PRICE_OUT = 2.0, 8.0  # per million tokens, as in test_metrics_prometheus.SPEC


@pytest.fixture(scope="module")
def history() -> Iterator[PrometheusServer]:
    server = PrometheusServer()
    server.backfill(openmetrics(PODS))
    server.start()
    yield server
    server.close()


def at_(offset: int) -> datetime:
    return datetime.fromtimestamp(T - offset, tz=UTC)


def ask(
    server: str, namespace: str, name: str, seconds: int, offset: int = 0, **over: Any
) -> dict[str, MetricReading]:
    asked = dataclasses.replace(request(server, namespace, name, **over), window=seconds)
    got = asyncio.run(batcher_for().query([asked], at_(offset)))
    return {r.check: r for r in got[asked.key]}


def served(namespace: str, workload: str, seconds: int, offset: int = 0) -> Traffic:
    return window(PODS, namespace, workload, T - offset, seconds)


def test_failures_of_a_series_born_in_the_window_are_all_counted(
    history: PrometheusServer,
) -> None:
    got = ask(history.url, "late", "app", 60)
    canary, stable = served("late", "app", 60), served("late", "app-primary", 60)
    assert canary.failures == 4  # 2 + 1 on the new 500 series, 1 on the new pod's
    reading = got["errorRate"]
    assert reading.error is None, reading
    assert reading.canary == pytest.approx(canary.failures / canary.requests)
    assert reading.stable == pytest.approx(stable.failures / stable.requests)
    assert got["errorBudget"].canary == pytest.approx(canary.failures / canary.requests)
    # the status query, run in Prometheus, gives the same ratio
    assert reading.query is not None
    answer = httpx.post(
        f"{history.url}/api/v1/query", data={"query": reading.query, "time": str(T)}
    ).json()
    rows = {
        r["metric"]["tollgate_workload"]: float(r["value"][1]) for r in answer["data"]["result"]
    }
    assert rows["app"] == pytest.approx(canary.failures / canary.requests)


@pytest.mark.parametrize(("seconds", "offset"), [(60, 0), (60, 5), (30, 5), (120, 0), (45, 10)])
def test_every_check_of_a_window_counts_the_requests_served(
    history: PrometheusServer, seconds: int, offset: int
) -> None:
    got = ask(history.url, "late", "app", seconds, offset)
    assert set(got) == set(CHECKS)
    for version, attribute in (("app", "canary_samples"), ("app-primary", "stable_samples")):
        expected = served("late", version, seconds, offset)
        samples = {check: getattr(got[check], attribute) for check in CHECKS}
        assert samples == dict.fromkeys(CHECKS, expected.requests), version
    canary = served("late", "app", seconds, offset)
    assert got["latency"].canary == pytest.approx(quantile(0.95, canary.buckets("latency")))
    assert got["errorRate"].canary == pytest.approx(canary.failures / canary.requests)
    cost = (canary.input_tokens * PRICE_IN + canary.output_tokens * PRICE_OUT) / 1e6
    assert got["costPerRequest"].canary == pytest.approx(cost / canary.requests)


@pytest.mark.parametrize("offset", [0, 5])
def test_restarts_in_the_window_and_at_its_edge_are_counted(
    history: PrometheusServer, offset: int
) -> None:
    got = ask(history.url, "restart", "svc", 60, offset)
    canary = served("restart", "svc", 60, offset)
    stable = served("restart", "svc-primary", 60, offset)
    for check in CHECKS:
        assert got[check].error is None, got[check]
        assert (got[check].canary_samples, got[check].stable_samples) == (
            canary.requests,
            stable.requests,
        ), check
    assert got["errorRate"].canary == pytest.approx(canary.failures / canary.requests)
    assert got["latency"].canary == pytest.approx(quantile(0.95, canary.buckets("latency")))
    assert got["ttft"].canary == pytest.approx(quantile(0.95, canary.buckets("ttft")))


def test_a_window_shorter_than_four_scrapes_carries_a_warning(
    history: PrometheusServer,
) -> None:
    short = ask(history.url, "late", "app", 30)
    for reading in short.values():
        warning = getattr(reading, "warning", None)
        assert warning is not None, reading
        assert "analysis interval (30s)" in warning, warning
        estimate = re.search(r"about ([0-9.]+)s each", warning)
        assert estimate is not None, warning
        assert float(estimate.group(1)) == pytest.approx(15, rel=0.1)
    for seconds in (60, 120):  # four scrapes or more
        assert all(
            getattr(r, "warning", None) is None
            for r in ask(history.url, "late", "app", seconds).values()
        )


def test_negative_counts_are_impossible_data_not_zero(history: PrometheusServer) -> None:
    got = ask(history.url, "neg", "api", 60, metrics={"names": {"errors": "weird_failures"}})
    for check in ("errorRate", "errorBudget"):
        reading = got[check]
        assert reading.error is not None, reading
        assert "impossible" in reading.error, reading
        assert reading.canary is None
    # the other families are fine, and their counts are not disturbed by the broken one
    canary, stable = served("neg", "api", 60), served("neg", "api-primary", 60)
    for check in ("latency", "ttft", "costPerRequest"):
        assert got[check].error is None, got[check]
        assert (got[check].canary_samples, got[check].stable_samples) == (
            canary.requests,
            stable.requests,
        )


@pytest.fixture(scope="module")
def partial() -> Iterator[PrometheusServer]:
    """A Prometheus whose remote read is down: it answers with data and ``warnings``."""
    server = with_dead_remote_read(PrometheusServer())
    server.backfill(openmetrics(PODS))
    server.start()
    yield server
    server.close()


def test_a_partial_answer_is_never_a_pass(partial: PrometheusServer) -> None:
    rps = "sum(rate(http_requests_total{ {{ selector }} }[1m]))"
    over: dict[str, Any] = {"checks": {"custom": [{"name": "rps", "query": rps, "min": 0}]}}
    got = ask(partial.url, "late", "app", 60, **over)
    spec = CanarySpec.model_validate(merge(SPEC, over))
    rules = rules_for(spec)
    assert {rule.name for rule in rules} == set(got)
    for rule in rules:
        reading = got[rule.name]
        flag = getattr(reading, "partial", None)
        assert flag is not None, reading
        assert "remote_read" in flag, reading
        assert reading.canary is None
        assert reading.stable is None
        assert judge(rule, reading, 1).verdict is not Verdict.PASS
