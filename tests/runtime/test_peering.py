"""The priority and lifetime ``tollgate run --peering`` gives kopf (runtime/peering.py)."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollgate.runtime.peering import (
    DEFAULT_LIFETIME,
    MIN_LIFETIME,
    lifetime_from,
    seniority_priority,
)

NOW = 1_796_000_000.0  # December 2026
starts = st.floats(min_value=NOW - 10 * 365 * 86400, max_value=NOW + 50 * 365 * 86400)


@given(starts, st.floats(min_value=0.001, max_value=86400.0), st.integers(), st.integers())
def test_a_replica_started_earlier_always_outranks_a_later_one(
    first: float, later_by: float, seed_a: int, seed_b: int
) -> None:
    senior = seniority_priority(first, random.Random(seed_a))
    junior = seniority_priority(first + later_by, random.Random(seed_b))
    assert senior > junior > 0
    assert senior < 2**53  # exact in JSON readers that use doubles


def test_replicas_started_in_the_same_millisecond_still_differ() -> None:
    rng = random.Random(1)
    pairs = [(seniority_priority(NOW, rng), seniority_priority(NOW, rng)) for _ in range(1000)]
    ties = sum(a == b for a, b in pairs)
    assert ties < 5  # 10 random bits: about 1 in 1024 pairs ties (then both wait: safe)


@pytest.mark.parametrize(
    ("raw", "lifetime"),
    [(None, DEFAULT_LIFETIME), ("", DEFAULT_LIFETIME), ("30", 30), ("5", MIN_LIFETIME),
     ("fifteen", DEFAULT_LIFETIME), (" 20 ", 20)],
)  # fmt: skip
def test_the_lifetime_asked_for_is_kept_above_kopf_s_keepalive_margin(
    raw: str | None, lifetime: int
) -> None:
    assert lifetime_from(raw) == lifetime
