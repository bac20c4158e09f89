"""Quantiles from histogram bucket increases, the way Prometheus' histogram_quantile does it.

The adapter asks Prometheus for ``increase()`` of every bucket over the analysis window and
computes quantiles here, so one query serves every rollout and the sample count (the +Inf
bucket) comes with the value.
"""

import math
from collections.abc import Mapping


def bucket_bound(le: str) -> float:
    """The upper bound of a bucket from its ``le`` label; NaN when it is not a number (a
    broken exporter), which callers treat as that series' data being unusable."""
    if le in ("+Inf", "Inf", "inf"):
        return math.inf
    try:
        return float(le)
    except ValueError:
        return math.nan


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts ``{upper bound: count}``; None without data.

    Linear interpolation inside the bucket (as histogram_quantile); a quantile in the +Inf
    bucket returns the highest finite bound. Non-monotonic counts (from extrapolated increases)
    are made monotonic first, as Prometheus does.
    """
    if not buckets or math.inf not in buckets:
        return None
    bounds = sorted(buckets)
    counts: list[float] = []
    running = 0.0
    for bound in bounds:
        running = max(running, buckets[bound])
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        if count >= rank:
            if math.isinf(bound):
                return bounds[-2] if len(bounds) > 1 else None
            lower = bounds[i - 1] if i > 0 else 0.0
            below = counts[i - 1] if i > 0 else 0.0
            if i == 0 and bound <= 0:
                return bound
            in_bucket = count - below
            if in_bucket <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / in_bucket
    return None
