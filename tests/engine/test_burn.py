"""The canary's multi-window burn rate: windows over merged readings, and the tiers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollgate.api.checks import ErrorBudgetCheck
from tollgate.api.status import BudgetStatus, Verdict
from tollgate.engine.burn import Slice, add, burn, update_budget, window
from tollgate.engine.sequential import Batch, LimitTest

GUARD = LimitTest(0.0, alpha=0.01, min_samples=20)  # the tiers' alpha, grid and minSamples

SIX_HOURS = 6 * 3600.0


def stream(gaps: list[float], rate: float = 10.0) -> list[Slice]:
    """Readings at the given gaps, each with ``rate`` requests per second, 1% failed."""
    slices: list[Slice] = []
    now = 0.0
    for gap in gaps:
        now += gap
        slices = add(slices, Slice(now, gap, 0.01 * rate * gap, rate * gap), SIX_HOURS)
    return slices


@pytest.mark.parametrize(
    ("bad", "total", "objective", "expected"),
    [
        (0, 0, 99.9, 0.0),
        (1, 1000, 99.9, 1.0),
        (12, 400, 99.9, 30.0),
        (1, 100, 99.0, 1.0),
        (8, 100, 99.0, 8.0),
    ],
)
def test_burn_rate(bad: float, total: float, objective: float, expected: float) -> None:
    assert burn(bad, total, objective) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5.0, (0.5, 5.0)),  # half of the last reading, same ratio
        (10.0, (1.0, 10.0)),  # the last reading
        (15.0, (1.0 + 0.25, 10.0 + 12.5)),  # and a quarter of the one before
        (100.0, (3.0, 110.0)),  # longer than the rollout: all of it
    ],
)
def test_a_window_counts_an_edge_reading_by_its_overlap(
    seconds: float, expected: tuple[float, float]
) -> None:
    slices = [Slice(10.0, 10.0, 1.0, 50.0), Slice(30.0, 20.0, 1.0, 50.0)]
    slices.append(Slice(40.0, 10.0, 1.0, 10.0))
    bad, total = window(slices, 40.0, seconds)
    assert (bad, total) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=60.0), min_size=1, max_size=1500))
def test_merging_keeps_every_request_and_stays_small(gaps: list[float]) -> None:
    slices = stream(gaps)
    elapsed = sum(gaps)
    _, total = window(slices, elapsed, elapsed + 1)
    kept_from = max(0.0, elapsed - SIX_HOURS)
    assert total == pytest.approx(10.0 * (elapsed - kept_from), rel=1e-6, abs=60 * 10.0)
    assert len(slices) <= 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=60.0), min_size=1, max_size=800),
    st.floats(min_value=1.0, max_value=SIX_HOURS),
)
def test_a_steady_rate_gives_its_rate_over_any_window(gaps: list[float], seconds: float) -> None:
    slices = stream(gaps)
    elapsed = sum(gaps)
    bad, total = window(slices, elapsed, seconds)
    assert total == pytest.approx(10.0 * min(seconds, elapsed), rel=1e-6)
    assert burn(bad, total, 99.0) == pytest.approx(1.0)


def budget(**windows: object) -> ErrorBudgetCheck:
    return ErrorBudgetCheck.model_validate({"objectivePercent": 99.0, **windows})


def test_the_default_tiers_are_the_workbooks() -> None:
    tiers = [(w.long, w.short, w.max_burn_rate) for w in budget().windows]
    assert tiers == [("1h", "5m", 14.4), ("6h", "30m", 6.0)]


def test_a_burst_fires_a_tier_only_when_its_test_has_the_evidence() -> None:
    check = budget(windows=[{"long": "10m", "short": "1m", "maxBurnRate": 5}])
    # ten quiet minutes at 1%, then a minute at 50%: the short window burns 50x, the long one
    # 5.9x, but 60 failures in 1,100 requests are no evidence of a share above 5%: holds
    status: BudgetStatus | None = None
    for minute in range(1, 11):
        quiet = update_budget(check, status, Batch(100, 1, 1900, 19), 60.0 * minute, GUARD, None)
        assert quiet.fired is None
        status = quiet.status
    first = update_budget(check, status, Batch(100, 50, 1900, 19), 660.0, GUARD, "q")
    assert first.fired is None
    assert first.status.tiers[0].long_burn == pytest.approx(59 / 1000 * 100)
    # a second minute at 50%: 110 of 1,200 is evidence, and both windows burn too fast: fires
    burst = update_budget(check, first.status, Batch(100, 50, 1900, 19), 720.0, GUARD, "q")
    assert burst.fired is not None
    assert burst.status.verdict is Verdict.FAIL
    assert burst.fired.short_burn == pytest.approx(50.0)
    assert burst.fired.e_value >= burst.fired.boundary == pytest.approx(100)
    assert burst.status.query == "q"


def test_a_few_seconds_of_data_never_claim_a_long_window() -> None:
    # 64 requests in 30 s, 4 failed (6.25%) at objective 99%: 6.25x over "6h" was the old claim
    got = update_budget(budget(), None, Batch(64, 4, 1216, 12), 30.0, GUARD, None)
    assert got.fired is None  # 4 of 64 is no evidence of a share above 6%
    assert "over the rollout's 30s (window 6h)" in got.status.message
    assert "over 6h" not in got.status.message


def test_a_short_window_that_recovered_holds_the_tier() -> None:
    check = budget(windows=[{"long": "1h", "short": "1m", "maxBurnRate": 5}])
    bad = update_budget(check, None, Batch(600, 60, 3800, 38), 60.0, GUARD, None)
    assert bad.fired is not None  # 10x in both, on 600 requests
    calm = update_budget(check, bad.status, Batch(600, 1, 3800, 38), 120.0, GUARD, None)
    assert calm.fired is None  # the evidence stays, but the short window stopped burning
    tier = calm.status.tiers[0]
    assert tier.long_burn == pytest.approx(61 / 1200 * 100, abs=1e-4)
    assert tier.short_burn == pytest.approx(1 / 600 * 100, abs=1e-4)
    assert calm.status.verdict is Verdict.PASS
    assert calm.status.message.startswith(
        "passing: 5x tier: 5.08x over the rollout's 2m (window 1h) (1200 requests)"
    )


def test_too_few_requests_wait() -> None:
    got = update_budget(budget(), None, Batch(5, 5, 95, 0), 30.0, GUARD, None)
    assert got.fired is None
    assert got.status.verdict is Verdict.INCONCLUSIVE
    assert got.status.message == "waiting: 5 of the 20 canary requests needed (minSamples)"


def test_readings_round_trip_through_status() -> None:
    first = update_budget(budget(), None, Batch(100, 1, 1900, 19), 15.0, GUARD, None).status
    assert first.readings == [[15.0, 15.0, 1.0, 100.0]]
    second = update_budget(budget(), first, Batch(100, 2, 1900, 19), 30.0, GUARD, None).status
    assert [Slice.of(r) for r in second.readings] == [
        Slice(15.0, 15.0, 1.0, 100.0),
        Slice(30.0, 15.0, 2.0, 100.0),
    ]
