"""What one request looks like: multimodal latency and TTFT, answer and prompt lengths.

Every per-request quantity is a mixture of lognormals, so that a histogram's buckets (and the
token sums that must agree with them) can be drawn per scrape interval from exact bucket
probabilities and moments, never request by request. The parameters are the ones
docs/detection.md lists; :data:`SLOW_POD` is how much slower one pod of each version is.
"""

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

from bench.detection.histograms import LogNormal
from bench.detection.sampling import conditional_plan

# prometheus_client's default buckets (seconds), for request latency and TTFT.
SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# The Tollgate SDK's token-usage buckets (tollgate.sdk.metrics.TOKEN_BUCKETS): 1, 4, ... 4^10.
TOKEN_BOUNDS = tuple(float(4**n) for n in range(11))
MAX_TOKENS = 512.0  # examples/promptrelease.yaml's max_tokens: no answer is longer
SLOW_POD = 1.3  # latency and TTFT of the slow pod of each version


@dataclass(frozen=True)
class Mixture:
    """A mixture of lognormals, ``(weight, law)``; weights sum to 1."""

    parts: tuple[tuple[float, LogNormal], ...]

    def scaled(self, factor: float) -> "Mixture":
        """Every value times ``factor`` (caps stay: they are hard limits)."""
        return Mixture(tuple((w, law.scaled(factor)) for w, law in self.parts))

    def cdf(self, x: float) -> float:
        return sum(w * law.cdf(x) for w, law in self.parts)

    def quantile(self, q: float) -> float:
        lo, hi = 1e-9, 1e9
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if self.cdf(mid) < q else (lo, mid)
        return hi

    def buckets(self, bounds: tuple[float, ...]) -> "Buckets":
        return Buckets(self, bounds)


@dataclass(frozen=True)
class Buckets:
    """A mixture seen through histogram buckets: cell chances and each cell's mean and sd."""

    law: Mixture
    bounds: tuple[float, ...]

    @cached_property
    def cells(self) -> list[tuple[float, float, float]]:
        """(probability, mean, variance) of each bucket, ``+Inf`` last."""
        out = []
        for lo, hi in itertools.pairwise([0.0, *self.bounds, math.inf]):
            moments = [(w, *law.bucket_moments(lo, hi)) for w, law in self.law.parts]
            prob = sum(w * p for w, p, _, _ in moments)
            if prob <= 0:
                out.append((0.0, 0.0, 0.0))
                continue
            mean = sum(w * p * m for w, p, m, _ in moments) / prob
            second = sum(w * p * (v + m * m) for w, p, m, v in moments) / prob
            out.append((prob, mean, max(0.0, second - mean * mean)))
        return out

    @cached_property
    def plan(self) -> tuple[tuple[int, float], ...]:
        return conditional_plan([p for p, _, _ in self.cells])

    @cached_property
    def means(self) -> list[float]:
        return [m for _, m, _ in self.cells]

    @cached_property
    def variances(self) -> list[float]:
        return [v for _, _, v in self.cells]

    def over(self, bound: float) -> float:
        """The chance of a value above ``bound`` (a bad event at that objective)."""
        return 1.0 - self.law.cdf(bound)


LATENCY = Mixture(((0.88, LogNormal(0.04, 0.35)), (0.12, LogNormal(0.14, 0.45))))
TTFT = Mixture(((0.9, LogNormal(0.18, 0.35)), (0.1, LogNormal(0.42, 0.4))))
OUTPUT_TOKENS = Mixture(((1.0, LogNormal(180.0, 0.6, cap=MAX_TOKENS)),))
INPUT_TOKENS = Mixture(((1.0, LogNormal(780.0, 0.25)),))


@dataclass(frozen=True)
class Behaviour:
    """How one version's requests behave (a regression changes one of these)."""

    error_rate: float = 0.01
    latency_factor: float = 1.0
    ttft_factor: float = 1.0
    token_factor: float = 1.0  # prompt and answer lengths: cost per request follows

    def pod(self, slow: bool) -> "PodLaws":
        return _pod_laws(self, slow)


@dataclass(frozen=True)
class PodLaws:
    """The bucket laws of one pod of a version."""

    error_rate: float
    latency: Buckets
    ttft: Buckets
    output_tokens: Buckets
    input_tokens: Buckets


_CACHE: dict[tuple[Behaviour, bool], PodLaws] = {}


def _pod_laws(behaviour: Behaviour, slow: bool) -> PodLaws:
    key = (behaviour, slow)
    if key not in _CACHE:
        pace = SLOW_POD if slow else 1.0
        _CACHE[key] = PodLaws(
            behaviour.error_rate,
            LATENCY.scaled(behaviour.latency_factor * pace).buckets(SECONDS_BOUNDS),
            TTFT.scaled(behaviour.ttft_factor * pace).buckets(SECONDS_BOUNDS),
            OUTPUT_TOKENS.scaled(behaviour.token_factor).buckets(TOKEN_BOUNDS),
            INPUT_TOKENS.scaled(behaviour.token_factor).buckets(TOKEN_BOUNDS),
        )
    return _CACHE[key]


def bad_share(behaviour: Behaviour, signal: str, bound: float) -> float:
    """The true share of a version's requests over ``bound`` (its pods take equal traffic)."""
    laws = [behaviour.pod(slow) for slow in (False, True)]
    buckets = [law.latency if signal == "latency" else law.ttft for law in laws]
    return sum(b.over(bound) for b in buckets) / len(buckets)
