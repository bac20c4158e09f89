"""Prometheus histograms as every policy sees them: cumulative ``le`` buckets and nothing finer.

The generator needs each bucket's probability (and, for token counts, each bucket's mean and
variance so that a sum counter agrees with its histogram). The policies need what PromQL gives
them: ``histogram_quantile`` with its linear interpolation inside a bucket, an objective bound
taken from bucket edges, and, for the naive test, a Mann-Whitney statistic computed from bucket
counts (ties within a bucket) instead of from raw requests, which no one has.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

INF = math.inf


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@dataclass(frozen=True)
class LogNormal:
    """A positive quantity with log-mean ``ln(median)`` and log-sd ``sigma``, capped at ``cap``."""

    median: float
    sigma: float
    cap: float = INF

    def scaled(self, factor: float) -> "LogNormal":
        """Every value multiplied by ``factor`` (the cap, a hard limit, stays)."""
        return LogNormal(self.median * factor, self.sigma, self.cap)

    def cdf(self, x: float) -> float:
        if x >= self.cap:
            return 1.0
        if x <= 0:
            return 0.0
        return _phi(math.log(x / self.median) / self.sigma)

    def _partial(self, lo: float, hi: float, power: int) -> float:
        """E[X^power; lo < X <= hi] for the uncapped law."""
        mu, s = math.log(self.median), self.sigma
        shift = mu + power * s * s

        def edge(x: float) -> float:
            if x <= 0:
                return 0.0
            return 1.0 if x == INF else _phi((math.log(x) - shift) / s)

        return math.exp(power * mu + power * power * s * s / 2.0) * (edge(hi) - edge(lo))

    def bucket_moments(self, lo: float, hi: float) -> tuple[float, float, float]:
        """Probability, mean and variance of the (capped) value within the bucket (lo, hi]."""
        top = min(hi, self.cap)
        prob = self.cdf(hi) - self.cdf(lo)
        if prob <= 0:
            return 0.0, 0.0, 0.0
        first = self._partial(lo, top, 1)
        second = self._partial(lo, top, 2)
        if hi >= self.cap > lo:
            tail = 1.0 - _phi(math.log(self.cap / self.median) / self.sigma)
            first += self.cap * tail
            second += self.cap * self.cap * tail
        mean = first / prob
        return prob, mean, max(0.0, second / prob - mean * mean)


def bucket_probabilities(law: LogNormal, bounds: Sequence[float]) -> list[float]:
    """Chance of each bucket (lower bound exclusive, upper inclusive); the last is +Inf."""
    edges = [0.0, *bounds, INF]
    return [law.cdf(hi) - law.cdf(lo) for lo, hi in itertools.pairwise(edges)]


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """PromQL's ``histogram_quantile``: ``cumulative`` holds the ``le`` buckets, +Inf last.

    NaN without observations; the highest finite bound when the rank falls in +Inf; otherwise
    linear interpolation within the bucket (from 0 for the first bucket).
    """
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    below = 0.0
    for i, count in enumerate(cumulative):
        if count >= rank:
            if i == len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            inside = count - below
            if inside <= 0:
                return bounds[i]
            return lower + (bounds[i] - lower) * (rank - below) / inside
        below = count
    return bounds[-1]


def objective_index(bounds: Sequence[float], value: float) -> int:
    """The first bucket bound >= ``value`` (its index); the last bound when none is."""
    if math.isnan(value):
        return len(bounds) - 1
    for i, bound in enumerate(bounds):
        if bound >= value:
            return i
    return len(bounds) - 1


def mann_whitney_z(canary: Sequence[float], stable: Sequence[float]) -> float:
    """One-sided Mann-Whitney z (canary larger), from cumulative bucket counts with ties.

    Both arguments are cumulative ``le`` counts over the same buckets. U counts, for every
    canary observation, the stable ones below it plus half those in its bucket; its variance
    carries the tie correction. 0 when either side is empty or all values tie.
    """
    n1, n2 = canary[-1], stable[-1]
    if n1 <= 0 or n2 <= 0:
        return 0.0
    u = 0.0
    ties = 0.0
    prev_c = prev_s = 0.0
    for c_cum, s_cum in zip(canary, stable, strict=True):
        c, s = c_cum - prev_c, s_cum - prev_s
        if c or s:
            u += c * (prev_s + 0.5 * s)
            t = c + s
            ties += t * (t * t - 1.0)
        prev_c, prev_s = c_cum, s_cum
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
    if variance <= 0:
        return 0.0
    return (u - n1 * n2 / 2.0) / math.sqrt(variance)
