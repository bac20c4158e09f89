"""The window queries without a server: what each rollout queries and where its samples come from.

The counts themselves are checked against a real Prometheus (test_window_readings.py); here,
that every rollout's request total is one family it reads anyway (a latency-only rollout may
have no requests counter), that only that family counts scrapes, and that everything sent is
PromQL a parser accepts.
"""

import dataclasses
from datetime import UTC, datetime

import promql_parser
import pytest

from tests.adapters.test_metrics_prometheus import request
from tollgate.adapters.metrics.prometheus import Sample, Series
from tollgate.adapters.metrics.queries import (
    ROW_LABEL,
    corrected,
    parse,
    plan,
    restarts,
    total_family,
)

ADDRESS = "http://prometheus:9090"


ONLY_LATENCY = {"ttft": None, "errorRate": None, "errorBudget": None, "costPerRequest": None}
ONLY_TTFT = {**ONLY_LATENCY, "latency": None, "ttft": {"maxIncreasePercent": 10}}


def test_the_request_total_is_a_family_the_checks_read_anyway() -> None:
    full = request(ADDRESS)
    latency = request(ADDRESS, "blog", "web", checks=ONLY_LATENCY)
    ttft = request(ADDRESS, "dots", "api", checks=ONLY_TTFT)
    totals = [total_family(r) for r in (full, latency, ttft)]
    assert [(f.metric, f.matchers) if f else None for f in totals] == [
        ("http_requests_total", ()),
        ("http_request_duration_seconds", ()),
        ("llm_time_to_first_token_seconds", ()),
    ]
    queries = plan([full, latency, ttft])
    assert {(q.family.metric, q.family.matchers) for q in queries if q.scrapes} == {
        ("http_requests_total", ()),
        ("http_request_duration_seconds", ()),
        ("llm_time_to_first_token_seconds", ()),
    }
    # the latency-only rollout reads no requests counter (it may have none)
    assert all(latency not in q.members for q in queries if q.family.metric.endswith("_total"))


@pytest.mark.parametrize("version_label", [None, "prompt_version"])
def test_every_query_sent_is_promql(version_label: str | None) -> None:
    r = dataclasses.replace(request(ADDRESS), version_label=version_label)
    for q in plan([r]):
        for text in (q.text(), q.shown(r), q.raw(q.members)):
            promql_parser.parse(text)
        assert "increase(" not in q.text()  # extrapolated: never for a window's counts


def test_a_restart_seen_on_one_series_resets_its_pods_other_series() -> None:
    """A sparse 500 series (1 before the restart, 1 after) counts its failure after it."""
    r = request(ADDRESS)
    errors = next(q for q in plan([r]) if q.family.matchers == ('code=~"5.."',))
    requests = next(
        q for q in plan([r]) if q.family.metric == "http_requests_total" and not q.family.matchers
    )
    at = datetime.fromtimestamp(1000, tz=UTC)
    pod = {"namespace": "shop", "pod": "app-7d9f8c6b5-abcde"}
    ok = Series({**pod, "code": "200"}, ((925.0, 50.0), (940.0, 60.0), (955.0, 4.0), (985.0, 9.0)))
    failed = Series({**pod, "code": "500"}, ((925.0, 1.0), (940.0, 1.0), (970.0, 1.0)))
    seen = restarts([(requests, [ok, failed])], at)
    answer = [Sample({"namespace": "shop", "tollgate_workload": "app"}, 0.0)]
    fixed = parse(errors, corrected(errors, answer, [r], [failed], at, seen))
    assert fixed.values[("shop", "app")] == {0.0: 1.0}
    total = parse(requests, corrected(requests, answer, [r], [ok, failed], at, seen))
    # 940 is the start (1000 - 60): 4 from zero at 955, +5 at 985; the 500 series +1
    assert total.values[("shop", "app")] == {0.0: 10.0}
    # re-read: both versions of the rollout (the stable has no series: no row); the rows of
    # a rollout not re-read, and the extra rows, stay as they were
    other = Sample({"namespace": "blog", "tollgate_workload": "web"}, 7.0)
    stable = Sample({"namespace": "shop", "tollgate_workload": "app-primary"}, 7.0)
    flagged = Sample({"namespace": "shop", "tollgate_workload": "app", ROW_LABEL: "resets"}, 1.0)
    kept = corrected(requests, [other, stable, flagged], [r], [ok], at, seen)
    assert other in kept
    assert flagged in kept
    assert stable not in kept
