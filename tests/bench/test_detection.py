"""The detection benchmark's parts: reference rules on hand-made streams, the generator, a run.

The reference policies are only worth comparing against if they do what the anchors document,
so each rule is pinned on streams whose outcome is known: Flagger rolls back at the check that
brings its failed-check count to ``threshold`` (a pass does not reset it, no value is a
failure), Argo when one metric's failed measurements exceed ``failureLimit``, the naive test
when its statistic passes the critical value.
"""

import json
import math
import random
from pathlib import Path
from statistics import NormalDist

import pytest
from bench.detection.generator import (
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    TTFT_BOUNDS,
    Layout,
    Profile,
    ReplayPlan,
    Reset,
    Timeline,
    Traffic,
    draw_increment,
    replay_rng,
    stable_stream,
    version_readings,
    with_canary,
)
from bench.detection.histograms import histogram_quantile, mann_whitney_z
from bench.detection.policies import (
    NEVER,
    Counts,
    Thresholds,
    Tollgate,
    WindowGrid,
    naive_rollbacks,
    tick_increments,
    two_proportion_z,
    window_rollbacks,
)
from bench.detection.run import SCENARIOS, main
from bench.detection.sampling import binomial, conditional_plan, multinomial, poisson


def reading(
    requests: float,
    errors: float = 0.0,
    latency: float = 0.05,
    ttft: float = 0.1,
    tokens: float = 100.0,
) -> list[float]:
    """A scrape interval's increments where every request has the same values."""
    r = [0.0] * Layout.WIDTH
    r[Layout.REQUESTS] = requests
    r[Layout.ERRORS] = errors
    for first, bounds, value in (
        (Layout.LATENCY, LATENCY_BOUNDS, latency),
        (Layout.TTFT, TTFT_BOUNDS, ttft),
        (Layout.TOKENS, TOKEN_BOUNDS, tokens),
    ):
        for i, bound in enumerate(bounds):
            r[first + i] = requests if value <= bound else 0.0
        r[first + len(bounds)] = requests
    r[Layout.OUTPUT_TOKENS] = tokens * requests
    return r


GOOD = reading(50)
SLOW = reading(50, latency=0.5)
ERRORS = reading(50, errors=10)
SILENT = reading(0)
STABLE = reading(950)


def counts(canary: list[list[float]], scrape: float = 15.0) -> Counts:
    return Counts(scrape, canary, [STABLE] * len(canary), reading(10_000))


def rollbacks(canary: list[list[float]], grid: WindowGrid) -> dict[tuple[str, float, int], float]:
    out = window_rollbacks(counts(canary), [grid], {"": Thresholds()})
    return {(family, interval, n): at for (family, _, interval, n), at in out.items()}


# --- Flagger-style --------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_flagger_rolls_back_after_threshold_failed_checks(threshold: int) -> None:
    out = rollbacks([SLOW] * 24, WindowGrid(60.0, (threshold,), ()))
    assert out[("flagger", 60.0, threshold)] == 60.0 * threshold


def test_flagger_needs_enough_failed_checks() -> None:
    out = rollbacks([SLOW] * 8, WindowGrid(60.0, (3,), ()))
    assert out[("flagger", 60.0, 3)] == NEVER


def test_flagger_failed_checks_are_not_reset_by_a_pass() -> None:
    out = rollbacks([SLOW, GOOD, GOOD, ERRORS, GOOD], WindowGrid(15.0, (2,), ()))
    assert out[("flagger", 15.0, 2)] == 4 * 15.0


def test_flagger_counts_no_values_as_a_failed_check() -> None:
    out = rollbacks([GOOD, SILENT, GOOD], WindowGrid(15.0, (1,), ()))
    assert out[("flagger", 15.0, 1)] == 30.0


def test_a_window_averages_its_scrapes() -> None:
    """One slow scrape among four does not move a 1m window's p95 past 1.25x."""
    out = rollbacks([GOOD, GOOD, GOOD, reading(1, latency=0.5)] * 2, WindowGrid(60.0, (1,), ()))
    assert out[("flagger", 60.0, 1)] == NEVER


def test_every_tolerance_set_judges_the_same_windows() -> None:
    one_error = reading(50, errors=1)  # 2% against the stable's 0%
    tolerances = {"tight": Thresholds(), "loose": Thresholds(error_points=0.02)}
    out = window_rollbacks(counts([one_error] * 4), [WindowGrid(15.0, (1,), (0,))], tolerances)
    assert out[("flagger", "tight", 15.0, 1)] == 15.0
    assert out[("argo", "tight", 15.0, 0)] == 15.0
    assert out[("flagger", "loose", 15.0, 1)] == NEVER
    assert out[("argo", "loose", 15.0, 0)] == NEVER


# --- Argo-style -----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_argo_fails_when_failed_measurements_exceed_the_limit(limit: int) -> None:
    out = rollbacks([SLOW] * 40, WindowGrid(60.0, (), (limit,)))
    assert out[("argo", 60.0, limit)] == 60.0 * (limit + 1)


def test_argo_counts_failures_per_metric() -> None:
    out = rollbacks([ERRORS, SLOW, GOOD, GOOD], WindowGrid(15.0, (), (0, 1)))
    assert out[("argo", 15.0, 0)] == 15.0
    assert out[("argo", 15.0, 1)] == NEVER  # one failure each, never two of one metric


def test_argo_passes_a_nan_measurement() -> None:
    out = rollbacks([SILENT] * 8, WindowGrid(15.0, (), (0,)))
    assert out[("argo", 15.0, 0)] == NEVER


# --- Naive repeated test --------------------------------------------------------------------


def test_two_proportion_z_by_hand() -> None:
    pooled = 20 / 1100
    se = math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 1000))
    assert two_proportion_z(10, 100, 10, 1000) == pytest.approx((0.1 - 0.01) / se)
    assert two_proportion_z(0, 100, 0, 1000) == 0.0
    assert two_proportion_z(1, 0, 1, 10) == 0.0


def test_naive_rejects_when_z_exceeds_the_critical_value() -> None:
    canary = reading(100, errors=10)
    stable = reading(1000, errors=10)
    z = two_proportion_z(10, 100, 10, 1000)
    just_below = 1 - NormalDist().cdf(z - 0.01)  # critical value z - 0.01: rejects
    just_above = 1 - NormalDist().cdf(z + 0.01)  # critical value z + 0.01: does not
    out = naive_rollbacks(Counts(15.0, [canary], [stable], reading(1000)), [just_below, just_above])
    assert out == {just_below: 15.0, just_above: NEVER}


def test_mann_whitney_from_buckets() -> None:
    same = [0.0, 10.0, 30.0, 40.0]
    assert mann_whitney_z(same, same) == pytest.approx(0.0)
    assert mann_whitney_z([0.0, 0.0, 0.0, 40.0], same) > 5
    assert mann_whitney_z([0.0, 0.0, 0.0, 0.0], same) == 0.0


# --- Tollgate -------------------------------------------------------------------------------


def test_tollgate_rolls_back_a_clear_regression_at_the_first_scrape() -> None:
    assert Tollgate().rollback_at(counts([SLOW] * 4)) == 15.0
    assert Tollgate().rollback_at(counts([GOOD] * 40)) == NEVER


def test_tollgate_waits_for_minimum_samples() -> None:
    few = reading(5, latency=0.5)
    assert Tollgate(min_samples=20).rollback_at(counts([few] * 8)) == 4 * 15.0


def test_carrying_increments_keeps_what_a_one_sided_batch_would_lose() -> None:
    """Slow canary requests arrive only in scrapes where the stable served none: the engine
    pools such a reading into the next one instead of dropping it."""
    canary = [reading(30, latency=0.5), SILENT] * 4
    stable = [SILENT, STABLE] * 4
    c = Counts(15.0, canary, stable, reading(10_000))
    assert Tollgate().rollback_at(c) == 30.0


def test_the_error_oracle_judges_errors_alone_with_all_of_alpha() -> None:
    oracle = Tollgate(error_oracle=2.0)
    ((name, test),) = oracle.tests().items()
    assert name == "errors"
    assert test.alpha == 0.01
    assert test.grid == (2.0,)
    assert oracle.rollback_at(counts([SLOW] * 8)) == math.inf  # latency is not its business
    # errors at 20% against none on stable: the oracle is sure sooner than the 4-check policy
    assert oracle.rollback_at(counts([ERRORS] * 8)) <= Tollgate().rollback_at(counts([ERRORS] * 8))


def test_histogram_quantile_follows_promql() -> None:
    bounds = (1.0, 2.0)
    assert histogram_quantile(0.5, bounds, [10, 20, 20]) == pytest.approx(1.0)
    assert histogram_quantile(0.75, bounds, [10, 20, 20]) == pytest.approx(1.5)
    assert histogram_quantile(0.5, bounds, [0, 0, 5]) == 2.0  # +Inf: the highest bound
    assert math.isnan(histogram_quantile(0.5, bounds, [0, 0, 0]))


@pytest.mark.parametrize(("n", "p"), [(40, 0.05), (1500, 0.01), (1500, 0.3), (1500, 0.8)])
def test_binomial_mean_and_variance(n: int, p: float) -> None:
    rng = random.Random(3)
    xs = [binomial(rng, n, p) for _ in range(4000)]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    assert mean == pytest.approx(n * p, rel=0.03, abs=0.05)
    assert var == pytest.approx(n * p * (1 - p), rel=0.1)
    assert all(0 <= x <= n for x in xs)


@pytest.mark.parametrize("mean", [0.4, 7.0, 75.0, 1425.0])
def test_poisson_mean_and_variance(mean: float) -> None:
    rng = random.Random(4)
    xs = [poisson(rng, mean) for _ in range(4000)]
    m = sum(xs) / len(xs)
    assert m == pytest.approx(mean, rel=0.03)
    assert sum((x - m) ** 2 for x in xs) / len(xs) == pytest.approx(mean, rel=0.1)


def test_multinomial_places_every_draw() -> None:
    rng = random.Random(5)
    plan = conditional_plan([0.5, 0.0, 0.3, 0.2])
    for n in (0, 1, 17, 5000):
        drawn = multinomial(rng, n, plan)
        assert sum(drawn) == n
        assert drawn[1] == 0


# --- Generator ------------------------------------------------------------------------------


def stream(seed: int, ticks: int = 12) -> list[list[float]]:
    traffic, timeline = Traffic(), Timeline()
    plan = ReplayPlan(phase=0.0, stable_reset=None, canary_reset=None)
    stable = stable_stream(replay_rng(seed, "s"), Profile(), traffic, timeline, plan, ticks)
    full = with_canary(stable, replay_rng(seed, "c"), Profile(), traffic, timeline, plan, ticks)
    return full.stable + full.canary


def test_the_generator_is_seeded() -> None:
    assert stream(1) == stream(1)
    assert stream(1) != stream(2)


def test_a_counter_reset_drops_the_readings() -> None:
    rng = random.Random(6)
    readings = version_readings(rng, Profile(), [1000.0] * 8, Reset(tick=5, fraction=0.5))
    assert readings[5][Layout.REQUESTS] < readings[4][Layout.REQUESTS]
    assert all(a <= b for a, b in zip(readings[3], readings[4], strict=True))
    after = tick_increments(readings)[5]
    assert after == readings[5]  # counted since the restart; the first half is lost
    assert 400 < after[Layout.REQUESTS] < 600


def test_a_reading_is_consistent() -> None:
    r = draw_increment(random.Random(7), Profile(), 500.0)
    n = r[Layout.REQUESTS]
    for first, bounds in ((Layout.LATENCY, LATENCY_BOUNDS), (Layout.TTFT, TTFT_BOUNDS)):
        block = r[first : first + len(bounds) + 1]
        assert block == sorted(block)
        assert block[-1] == n
    assert 0 <= r[Layout.ERRORS] <= n
    assert 100 * n < r[Layout.OUTPUT_TOKENS] < 600 * n  # mean 300 per answer


def test_canary_shares_follow_the_step_plan() -> None:
    traffic, timeline = Traffic(), Timeline()
    plan = ReplayPlan(phase=900.0, stable_reset=None, canary_reset=None)
    ticks = timeline.ticks(traffic.promotion)
    stable = stable_stream(replay_rng(8, "s"), Profile(), traffic, timeline, plan, ticks)
    full = with_canary(stable, replay_rng(8, "c"), Profile(), traffic, timeline, plan, ticks)
    c = Counts.of(full)
    per_step = round(traffic.step_seconds / timeline.scrape)
    for step, weight in enumerate(traffic.steps):
        rows = range(step * per_step, (step + 1) * per_step)
        canary = sum(c.canary[i][Layout.REQUESTS] for i in rows)
        total = canary + sum(c.stable[i][Layout.REQUESTS] for i in rows)
        share, w = canary / total, weight / 100
        assert abs(share - w) <= 5 * math.sqrt(w * (1 - w) / total), (step, share)


def test_the_timeline_needs_whole_scrapes() -> None:
    with pytest.raises(ValueError, match="whole number"):
        Timeline(scrape=7.0)


# --- End to end -----------------------------------------------------------------------------


def test_a_quick_run_writes_the_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "detection.json"
    assert main(["--quick", "--workers", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "detection"
    assert result["replays"] == 20
    assert result["runtime_s"] > 0
    row_keys = {
        "traffic",
        "scenario",
        "setting",
        "median_s",
        "p95_s",
        "catch_rate",
        "false_rollback_rate",
        "false_rollback_upper95",
    }
    assert all(set(row) == row_keys for row in result["results"])
    seen = {(r["traffic"], r["scenario"]) for r in result["results"]}
    assert seen == {(t, s.name) for t in ("100rps", "0.5rps") for s in SCENARIOS}
    settings = {r["setting"] for r in result["results"]}
    assert {"tollgate", "flagger 1m x10", "argo 5m >3", "naive p<0.05"} <= settings
    assert result["bars"]
    assert all(isinstance(b["passed"], bool) for b in result["bars"])
    printed = capsys.readouterr().out
    assert "PASS" in printed or "FAIL" in printed
    assert "run time" in printed
