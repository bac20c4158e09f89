"""Where a latency, TTFT or answer-length test draws the line between good and bad requests.

Counts can only be read at the bucket bounds a workload exposes. An absolute limit uses the
smallest bound at or above it: the share over that bound is at most the share over the limit,
so the test never blames the canary for more than the limit says.

A relative limit ("p95 at most 10% above stable") is a question about the tail, answered with
two bounds, both read exactly, never interpolated: if the canary is at most ``t = 1 + r``
times slower than stable (its latencies those of stable stretched by at most ``t``), its share
over a bound ``hi`` is at most the stable's share over any ``lo <= hi / t``. So the test
compares the canary's requests over ``hi`` with the stable's over ``lo``, under the null "no
more often" (ratio 1): a canary within the tolerance, and an identical one, is inside the null
whatever the histogram's shape. Which pair decides how much a regression shows: with the
Python client's default buckets and a stable p95 of 0.25 s, a x2 slowdown moves the share over
0.5 s only from 3.7% to 5%, but over 0.25 s from 5% to 9%. Among the stable's bounds ``lo``
whose share above lies within a factor of four of ``1 - quantile`` (near the quantile the user
asked about), each paired with the smallest ``hi >= lo * t``, the pair where a slowdown of
``SLOWDOWN`` times the tolerance gives the canary's count the most information per request
(the Poisson Kullback-Leibler divergence; the slowed share read from the stable's histogram,
linear within a bucket, as ``histogram_quantile`` reads it: for ranking only) is chosen.

A bound with (almost) all of the stable's requests on one side of it, or a pair a slowdown
would not move, tells nothing; when every pair is like that (buckets much coarser than the
tolerance), there is no objective and the limit is judged on its window instead.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

SLOWDOWN = 1.5  # the regression beyond the tolerance the bound is chosen to show best
NEAR = 4.0  # candidate bounds: stable share above within this factor of 1 - quantile
MIN_STABLE_BAD = 10.0  # stable requests above a candidate, for its share to be worth reading


@dataclass(frozen=True)
class Objective:
    """The canary's bound and the stable's (equal when nothing is tolerated)."""

    bound: float
    stable_bound: float


STABLE_SUFFIX = ":stable"


def stable_key(test: str) -> str:
    """Where a relative test's stable bound travels beside its (canary) bound."""
    return test + STABLE_SUFFIX


def limit_bound(bounds: list[float], limit: float) -> float | None:
    """The smallest finite bound at or above an absolute limit; None when there is none."""
    return next((b for b in sorted(bounds) if b >= limit and math.isfinite(b)), None)


def _survival(cumulative: Mapping[float, float]) -> tuple[list[float], list[float], float]:
    bounds = sorted(b for b in cumulative if math.isfinite(b))
    total = cumulative.get(math.inf, max(cumulative.values(), default=0.0))
    return bounds, [cumulative[b] for b in bounds], total


def share_above(cumulative: Mapping[float, float], x: float) -> float:
    """The share of requests slower than ``x``, linear within the bucket holding ``x``."""
    bounds, counts, total = _survival(cumulative)
    if total <= 0:
        return 0.0
    below_bound, below_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if x <= bound:
            width = bound - below_bound
            part = (x - below_bound) / width if width > 0 else 1.0
            under = below_count + max(0.0, part) * (count - below_count)
            return max(0.0, 1.0 - under / total)
        below_bound, below_count = bound, count
    return max(0.0, 1.0 - (counts[-1] if counts else 0.0) / total)


def relative_objective(
    cumulative: Mapping[float, float], quantile: float, increase: float
) -> Objective | None:
    """The pair of bounds for a relative test (module docstring: how and why).

    ``cumulative`` maps bucket bounds (with +Inf) to the stable's cumulative counts;
    ``increase`` is the tolerated increase as a fraction (0.1 for 10%).
    """
    bounds, counts, total = _survival(cumulative)
    if total <= 0 or not bounds:
        return None
    tolerance = 1.0 + increase
    target = 1.0 - quantile
    best: tuple[float, float, float] | None = None  # (information, lo, hi)
    nearest: tuple[float, float, float] | None = None  # (distance, lo, hi)
    for lo, count in zip(bounds, counts, strict=True):
        share = 1.0 - count / total
        # a bound with (almost) every stable request on one side of it tells nothing
        if min(share * total, count) < MIN_STABLE_BAD:
            continue
        hi = next((b for b in bounds if b >= lo * tolerance * (1 - 1e-9)), None)
        if hi is None:
            continue
        slowed = share_above(cumulative, hi / (tolerance * SLOWDOWN))
        information = slowed * math.log(slowed / share) - slowed + share if slowed > share else 0.0
        if information <= 0:
            continue
        distance = abs(math.log(share / target))
        if nearest is None or distance < nearest[0]:
            nearest = (distance, lo, hi)
        if distance <= math.log(NEAR) and (best is None or information > best[0]):
            best = (information, lo, hi)
    chosen = best or nearest
    if chosen is None:
        return None
    return Objective(bound=chosen[2], stable_bound=chosen[1])
