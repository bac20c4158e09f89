"""Verdicts of single checks and of a whole analysis, table-driven."""

import math

import pytest

from tests.engine.sim import make_spec
from tollgate.api.status import CheckStatus, Verdict
from tollgate.engine.checks import judge, outcome, rules_for
from tollgate.engine.observations import MetricReading

SPEC = make_spec(
    checks={
        "latency": {"maxMilliseconds": 300, "maxIncreasePercent": 10},
        "ttft": {"maxIncreasePercent": 20, "noData": "Fail"},
        "errorRate": {"maxPercent": 1, "maxIncreasePoints": 0.5},
        "costPerRequest": {
            "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2},
            "maxPerRequest": 0.01,
        },
        "errorBudget": {"objectivePercent": 99.9, "maxBurnRate": 14.4},
        "custom": [{"name": "queue", "query": "q", "min": 1, "max": 10}],
    }
)
RULES = {r.name: r for r in rules_for(SPEC)}
MIN = 50


def r(
    check: str,
    canary: float | None,
    stable: float | None = None,
    n: int = 100,
    sn: int = 1000,
    error: str | None = None,
) -> MetricReading:
    return MetricReading(check, canary, stable, n, sn, query=f"query-{check}", error=error)


@pytest.mark.parametrize(
    ("check", "reading", "verdict", "says"),
    [
        ("latency", r("latency", 0.25, 0.24), Verdict.PASS, "is within"),
        ("latency", r("latency", 0.31, 0.30), Verdict.FAIL, "310ms > 300ms"),
        ("latency", r("latency", 0.28, 0.20), Verdict.FAIL, "stable 200ms"),
        ("latency", r("latency", 0.22, 0.20), Verdict.PASS, "is within"),
        (
            "latency",
            r("latency", 0.25, None),
            Verdict.INCONCLUSIVE,
            "stable version has too little",
        ),
        ("latency", r("latency", 0.35, None), Verdict.FAIL, "350ms > 300ms"),
        ("latency", r("latency", 0.25, 0.24, sn=10), Verdict.INCONCLUSIVE, "too little data"),
        ("latency", r("latency", 0.25, 0.24, n=49), Verdict.INCONCLUSIVE, "49 requests, 50 needed"),
        ("latency", r("latency", 9.9, 0.24, n=49), Verdict.INCONCLUSIVE, "49 requests"),
        ("latency", r("latency", None, 0.2), Verdict.INCONCLUSIVE, "no data for the new version"),
        ("latency", r("latency", math.nan, 0.2), Verdict.INCONCLUSIVE, "no data"),
        ("latency", r("latency", math.inf, 0.2), Verdict.INCONCLUSIVE, "no data"),
        ("latency", r("latency", 0.2, 0.2, error="timeout after 5s"), Verdict.ERROR, "timeout"),
        ("latency", None, Verdict.INCONCLUSIVE, "no reading"),
        ("errorRate", r("errorRate", 0.004, 0.001), Verdict.PASS, "is within"),
        ("errorRate", r("errorRate", 0.007, 0.001), Verdict.FAIL, "0.7% > 0.6%"),
        ("errorRate", r("errorRate", 0.011, 0.009), Verdict.FAIL, "1.1% > 1%"),
        ("errorRate", r("errorRate", 0.0, 0.0), Verdict.PASS, "is within"),
        ("costPerRequest", r("costPerRequest", 0.009), Verdict.PASS, "is within"),
        ("costPerRequest", r("costPerRequest", 0.012), Verdict.FAIL, "0.012 > 0.01"),
        ("errorBudget", r("errorBudget", 0.0100), Verdict.PASS, "is within"),  # burn 10x
        ("errorBudget", r("errorBudget", 0.0150), Verdict.FAIL, "15x > 14.4x"),
        ("queue", r("queue", 5.0), Verdict.PASS, "is within"),
        ("queue", r("queue", 0.5), Verdict.FAIL, "0.5 < 1"),
        ("queue", r("queue", 11.0), Verdict.FAIL, "11 > 10"),
        ("ttft", r("ttft", 0.5, 0.45), Verdict.PASS, "is within"),
        ("ttft", r("ttft", 0.6, 0.45), Verdict.FAIL, "stable 450ms"),
        # impossible data is never a pass (a counter summed across a reset, a broken rule)
        ("errorRate", r("errorRate", -0.02, 0.001), Verdict.INCONCLUSIVE, "impossible data"),
        ("errorRate", r("errorRate", 0.001, -0.5), Verdict.INCONCLUSIVE, "stable version's"),
        ("errorRate", r("errorRate", 1.5, 0.001), Verdict.INCONCLUSIVE, "above 1"),
        ("latency", r("latency", -0.1, 0.2), Verdict.INCONCLUSIVE, "below 0"),
        ("costPerRequest", r("costPerRequest", -0.001), Verdict.INCONCLUSIVE, "below 0"),
        ("errorBudget", r("errorBudget", -0.01), Verdict.INCONCLUSIVE, "impossible data"),
        ("queue", r("queue", -5.0), Verdict.FAIL, "-5 < 1"),  # a custom query may go below 0
    ],
)
def test_judge(check: str, reading: MetricReading | None, verdict: Verdict, says: str) -> None:
    result = judge(RULES[check], reading, MIN)
    assert result.verdict is verdict, result.message
    assert says in result.message
    assert result.name == check
    assert result.threshold  # every verdict says what it was judged against
    if reading is not None:
        assert result.query == reading.query
        assert result.canary_samples == reading.canary_samples


def test_threshold_is_explained_in_units() -> None:
    assert RULES["latency"].describe() == "<= 300ms and <= stable +10%"
    assert RULES["errorRate"].describe() == "<= 1% and <= stable +0.5%"
    assert RULES["errorBudget"].describe() == "<= 14.4x"
    assert RULES["queue"].describe() == "<= 10 and >= 1"


def _results(*verdicts: tuple[str, Verdict]) -> list[CheckStatus]:
    return [CheckStatus(name=n, verdict=v) for n, v in verdicts]


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((("latency", Verdict.PASS), ("errorRate", Verdict.PASS)), Verdict.PASS),
        ((("latency", Verdict.PASS), ("errorRate", Verdict.FAIL)), Verdict.FAIL),
        ((("latency", Verdict.ERROR), ("errorRate", Verdict.FAIL)), Verdict.FAIL),
        ((("latency", Verdict.ERROR), ("errorRate", Verdict.PASS)), Verdict.ERROR),
        ((("latency", Verdict.ERROR), ("errorRate", Verdict.INCONCLUSIVE)), Verdict.ERROR),
        ((("latency", Verdict.INCONCLUSIVE), ("errorRate", Verdict.PASS)), Verdict.INCONCLUSIVE),
        (
            (("ttft", Verdict.INCONCLUSIVE), ("errorRate", Verdict.PASS)),
            Verdict.FAIL,
        ),  # noData: Fail
        ((), Verdict.INCONCLUSIVE),
    ],
)
def test_outcome(verdicts: tuple[tuple[str, Verdict], ...], expected: Verdict) -> None:
    assert outcome(tuple(RULES.values()), _results(*verdicts)) is expected


def test_no_rules_never_pass() -> None:
    assert outcome((), []) is Verdict.INCONCLUSIVE


def test_a_partial_answer_is_inconclusive_even_where_no_data_fails() -> None:
    from tollgate.api.analysis import NoDataPolicy
    from tollgate.engine.checks import CheckRule, Unit, judge, outcome

    rule = CheckRule("errorRate", Unit.RATIO, NoDataPolicy.FAIL, max_value=0.01)
    partial = MetricReading("errorRate", 0.0, 0.0, 500, 5000, partial="store gateway down")
    got = judge(rule, partial, 50)
    assert got.verdict is Verdict.INCONCLUSIVE
    assert "partial answer" in got.message
    assert outcome([rule], [got]) is Verdict.INCONCLUSIVE  # never Pass, and not "no data"
    warned = judge(rule, MetricReading("errorRate", 0.0, 0.0, 500, 5000, warning="coarse"), 50)
    assert warned.verdict is Verdict.PASS
    assert warned.message.endswith("(warning: coarse)")


def test_impossible_data_is_inconclusive_even_where_no_data_fails() -> None:
    from tollgate.api.analysis import NoDataPolicy
    from tollgate.engine.checks import CheckRule, Unit

    rule = CheckRule("errorRate", Unit.RATIO, NoDataPolicy.FAIL, max_value=0.01)
    got = judge(rule, MetricReading("errorRate", -0.01, 0.0, 500, 5000), 50)
    assert got.verdict is Verdict.INCONCLUSIVE
    assert outcome([rule], [got]) is Verdict.INCONCLUSIVE
