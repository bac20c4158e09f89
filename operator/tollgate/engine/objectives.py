"""Where a latency, TTFT or answer-length test draws the line between good and bad requests.

Counts can only be read at the bucket bounds a workload exposes. An absolute limit uses the
smallest bound at or above it: the share over that bound is at most the share over the limit,
so the test never blames the canary for more than the limit says.

A relative limit ("p95 at most 10% above stable") is a question about the whole tail, and
the bound decides how much a regression shows: with the Python client's default buckets and a
stable p95 of 0.25 s, a x2 slowdown moves the share over the 0.5 s bound from 3.7% to 5%, but
the share over 0.25 s from 5% to 9%. So the bound is chosen from the stable's own histogram:
among the bounds whose stable share above lies within a factor of four of ``1 - quantile``
(near the quantile the user asked about), the one where a slowdown of ``SLOWDOWN`` times the
tolerance gives the canary's count above it the most information per request (the Poisson
Kullback-Leibler divergence between the slowed and the tolerated shares). The tolerance turns
into the test's null ratio at that bound: ``S(b / (1 + r)) / S(b)``, the share a version
slower by exactly the tolerance would have over ``b`` relative to the stable's, read from the
stable's histogram (linear within a bucket, as ``histogram_quantile`` reads it). A canary
identical to stable has ratio 1, inside every null, whatever the interpolation.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

SLOWDOWN = 1.5  # the regression beyond the tolerance the bound is chosen to show best
NEAR = 4.0  # candidate bounds: stable share above within this factor of 1 - quantile
MIN_STABLE_BAD = 10.0  # stable requests above a candidate, for its share to be worth reading


@dataclass(frozen=True)
class Objective:
    """A chosen bound and, for a relative test, the null ratio the tolerance allows there."""

    bound: float
    null_ratio: float = 1.0


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
    """The bound for a relative test, and its null ratio (module docstring: how and why).

    ``cumulative`` maps bucket bounds (with +Inf) to the stable's cumulative counts;
    ``increase`` is the tolerated increase as a fraction (0.1 for 10%).
    """
    bounds, counts, total = _survival(cumulative)
    if total <= 0 or not bounds:
        return None
    tolerance = 1.0 + increase
    target = 1.0 - quantile
    best: tuple[float, float, float] | None = None  # (information, bound, null ratio)
    nearest: tuple[float, float, float] | None = None  # (distance, bound, null ratio)
    for bound, count in zip(bounds, counts, strict=True):
        share = 1.0 - count / total
        if share <= 0 or share * total < 1:
            continue
        null = share_above(cumulative, bound / tolerance)
        ratio = max(1.0, null / share)
        distance = abs(math.log(share / target))
        if nearest is None or distance < nearest[0]:
            nearest = (distance, bound, ratio)
        if distance > math.log(NEAR) or share * total < MIN_STABLE_BAD:
            continue
        slowed = share_above(cumulative, bound / (tolerance * SLOWDOWN))
        information = slowed * math.log(slowed / null) - slowed + null if null > 0 else 0.0
        if best is None or information > best[0]:
            best = (information, bound, ratio)
    chosen = best if best is not None and best[0] > 0 else nearest
    if chosen is None:
        return None
    return Objective(chosen[1], round(chosen[2], 6))
