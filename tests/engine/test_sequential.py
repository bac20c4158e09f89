"""The sequential test: false alarms bounded under continuous monitoring, power, edge cases.

Simulations are seeded; each bound is loose enough that a correct test fails it with
negligible probability, and tight enough that a repeated fixed-sample test fails it.
"""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollgate.engine.sequential import (
    DEFAULT_GRID,
    Batch,
    Evidence,
    SequentialTest,
    grid_for,
    increments,
)
from tollgate.testing.traffic import poisson


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw by inversion: O(n p), fast for the small rates simulated here."""
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n == 0 or p == 0.0:
        return 0
    q = 1.0 - p
    s, r = p / q, q**n
    a = (n + 1) * s
    u, x = rng.random(), 0
    while u > r and x < n:
        u -= r
        x += 1
        r *= a / x - s
    return x


def stream(
    rng: random.Random,
    ticks: int,
    canary_rate: float,
    stable_rate: float,
    rps: float = 100.0,
    share: float = 0.05,
    seconds: float = 10.0,
) -> list[Batch]:
    out = []
    for _ in range(ticks):
        n = poisson(rng, rps * seconds)
        nc = binomial(rng, n, share)
        ns = n - nc
        out.append(Batch(nc, binomial(rng, nc, canary_rate), ns, binomial(rng, ns, stable_rate)))
    return out


def first_rejection(test: SequentialTest, batches: list[Batch]) -> int | None:
    state = Evidence.start(test.grid)
    for i, batch in enumerate(batches):
        state = test.update(state, batch)
        if test.rejects(state):
            return i
    return None


def wilson_upper(hits: int, n: int, z: float = 3.0) -> float:
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def naive_z_rejection(batches: list[Batch], z: float = 1.645) -> bool:
    """A one-sided two-proportion z-test repeated at every tick (what not to do)."""
    nc = ec = ns = es = 0.0
    for b in batches:
        nc, ec, ns, es = (
            nc + b.canary_total,
            ec + b.canary_bad,
            ns + b.stable_total,
            es + b.stable_bad,
        )
        if nc == 0 or ns == 0:
            continue
        pooled = (ec + es) / (nc + ns)
        se = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / ns)) if 0 < pooled < 1 else 0
        if se > 0 and (ec / nc - es / ns) / se > z:
            return True
    return False


def test_false_alarms_stay_under_alpha_however_often_one_looks() -> None:
    rng = random.Random(7)
    test = SequentialTest(alpha=0.05)
    runs, alarms, naive = 800, 0, 0
    for _ in range(runs):
        batches = stream(rng, 60, 0.02, 0.02)
        alarms += first_rejection(test, batches) is not None
        naive += naive_z_rejection(batches)
    assert wilson_upper(alarms, runs) <= 0.05 + 0.01, alarms
    assert naive / runs > 2 * test.alpha, "the repeated fixed-sample test should over-reject"


def test_the_null_is_composite_a_canary_within_tolerance_is_not_rejected() -> None:
    rng = random.Random(8)
    test = SequentialTest(alpha=0.05, psi0=1.5)
    alarms = sum(first_rejection(test, stream(rng, 60, 0.03, 0.02)) is not None for _ in range(500))
    assert wilson_upper(alarms, 500) <= 0.06, alarms


@pytest.mark.parametrize(("ratio", "within_ticks"), [(2.0, 45), (3.0, 20)])
def test_a_regression_is_caught_quickly(ratio: float, within_ticks: int) -> None:
    """At 5% of 100 req/s with a 2% stable error rate, 10 s ticks."""
    rng = random.Random(9)
    test = SequentialTest(alpha=0.01)
    times = []
    for _ in range(300):
        hit = first_rejection(test, stream(rng, 60, 0.02 * ratio, 0.02))
        times.append(hit if hit is not None else 10**6)
    times.sort()
    assert times[int(0.95 * len(times))] <= within_ticks, times[int(0.95 * len(times))]


def test_changing_traffic_shares_keep_the_guarantee() -> None:
    """The canary's share grows step by step, as in a rollout."""
    rng = random.Random(10)
    test = SequentialTest(alpha=0.05)
    alarms = 0
    for _ in range(500):
        batches: list[Batch] = []
        for share in (0.05, 0.10, 0.15, 0.20, 0.25, 0.30):
            batches += stream(rng, 10, 0.01, 0.01, share=share)
        alarms += first_rejection(test, batches) is not None
    assert wilson_upper(alarms, 500) <= 0.06, alarms


def test_batches_without_information_change_nothing() -> None:
    test = SequentialTest()
    state = Evidence.start()
    after = test.update(state, Batch(50, 0, 950, 0))  # no bad events on either side
    assert after.log_e == state.log_e
    assert (after.canary_total, after.stable_total) == (50, 950)


def test_a_reading_with_one_side_empty_is_pooled_into_the_next() -> None:
    """Dropping it would lose its bad events; pooling batches keeps the test valid."""
    test = SequentialTest()
    state = test.update(Evidence.start(), Batch(0, 0, 100, 3))
    assert state.log_e == Evidence.start().log_e
    assert state.carry == (0.0, 0.0, 100.0, 3.0)
    pooled = test.update(state, Batch(50, 0, 0, 0))
    alone = test.update(Evidence.start(), Batch(50, 0, 100, 3))
    assert pooled.log_e == pytest.approx(alone.log_e)
    assert pooled.carry == (0.0, 0.0, 0.0, 0.0)
    assert (pooled.canary_total, pooled.stable_total, pooled.stable_bad) == (50, 100, 3)


def test_overwhelming_evidence_rejects_without_overflow() -> None:
    """A large regression at high traffic gives log e-values far beyond a float's exp range."""
    test = SequentialTest(alpha=0.0025)
    state = test.update(Evidence.start(), Batch(15_000, 6_000, 285_000, 5_700))
    assert max(state.log_e) > 1000
    assert test.rejects(state)
    assert math.isfinite(test.e_value(state))


@given(
    st.lists(
        st.tuples(
            st.integers(1, 500), st.integers(0, 50), st.integers(1, 5000), st.integers(0, 50)
        ),
        max_size=30,
    )
)
def test_the_e_value_is_positive_and_order_free(rows: list[tuple[int, int, int, int]]) -> None:
    test = SequentialTest(alpha=0.01)
    batches = [Batch(nc, min(ec, nc), ns, min(es, ns)) for nc, ec, ns, es in rows]
    forward = Evidence.start()
    for b in batches:
        forward = test.update(forward, b)
    backward = Evidence.start()
    for b in reversed(batches):
        backward = test.update(backward, b)
    assert test.e_value(forward) > 0
    assert forward.log_e == pytest.approx(backward.log_e, rel=1e-9, abs=1e-9)


def test_minimum_samples_delay_a_rejection() -> None:
    strict = SequentialTest(alpha=0.05, min_samples=1000)
    state = strict.update(Evidence.start(), Batch(100, 40, 1900, 20))
    assert strict.e_value(state) >= strict.boundary
    assert not strict.rejects(state)


def test_counter_increments_survive_resets() -> None:
    assert increments(None, 50) == 0
    assert increments(50, 80) == 30
    assert increments(80, 12) == 12  # the process restarted and counted 12 since


@pytest.mark.parametrize(
    "bad",
    [
        {"alpha": 0},
        {"alpha": 1},
        {"psi0": 0},
        {"grid": ()},
        {"grid": (1.0,)},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SequentialTest(**bad)  # type: ignore[arg-type]


def test_invalid_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="outnumber"):
        Batch(10, 11, 10, 0)
    with pytest.raises(ValueError, match="finite count"):
        Batch(-1, 0, 10, 0)


def test_the_smallest_effect_sets_the_alternatives() -> None:
    assert grid_for(1.25) == pytest.approx(DEFAULT_GRID)
    assert grid_for(2.0) == pytest.approx((2.0, 2.4, 3.2, 4.8, 8.0, 16.0))
    big = SequentialTest(alpha=0.01, grid=grid_for(3.0))
    small = SequentialTest(alpha=0.01, grid=grid_for(1.1))
    strong = Batch(50, 6, 950, 10)  # about 11 times stable's rate
    assert big.e_value(big.update(Evidence.start(big.grid), strong)) > small.e_value(
        small.update(Evidence.start(small.grid), strong)
    )
