"""One replay's history: pods of both versions as Prometheus would have scraped them.

Requests arrive as a doubly stochastic Poisson process: the rate switches between a calm and a
burst level (a two-state Markov chain), so counts per scrape are over-dispersed the way real
traffic is. Each version runs two pods, one of them slower, behind an even load balancer; the
canary takes a fixed share of requests from ``warmup`` on. Each pod is scraped every 15 s at
its own offset, misses some scrapes, and may restart once (its counters start again from 0 and
what it counted since its last scrape is lost; labelled series disappear until they are used
again, so a pod's ``code="500"`` series appears only at its first error).

Per scrape interval and pod, the generator draws the number of requests, then the failures,
and each histogram's buckets as one multinomial, with sums that agree with the buckets. It
stores cumulative values per scrape; :mod:`openmetrics` writes them out.
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.detection.sampling import binomial, multinomial, poisson
from bench.replay_detection.distributions import SECONDS_BOUNDS, TOKEN_BOUNDS, Behaviour, Buckets

SECONDS_CELLS = len(SECONDS_BOUNDS) + 1
TOKEN_CELLS = len(TOKEN_BOUNDS) + 1


class Slot:
    """Where each cumulative value of a pod's reading sits (le buckets are cumulative)."""

    OK = 0  # successful requests
    FAILED = 1
    LATENCY_OK = 2  # le buckets of successful requests, +Inf last
    LATENCY_FAILED = LATENCY_OK + SECONDS_CELLS
    LATENCY_SUM_OK = LATENCY_FAILED + SECONDS_CELLS
    LATENCY_SUM_FAILED = LATENCY_SUM_OK + 1
    TTFT = LATENCY_SUM_FAILED + 1
    TTFT_SUM = TTFT + SECONDS_CELLS
    OUTPUT = TTFT_SUM + 1
    OUTPUT_SUM = OUTPUT + TOKEN_CELLS
    INPUT = OUTPUT_SUM + 1
    INPUT_SUM = INPUT + TOKEN_CELLS
    QUEUE = INPUT_SUM + 1  # a gauge: the pod's queue depth when scraped
    WIDTH = QUEUE + 1


@dataclass(frozen=True)
class Timeline:
    """Scrape interval, the stable-only warm-up, and how long the canary is watched."""

    scrape: float = 15.0
    warmup: float = 300.0
    horizon: float = 1800.0
    canary_lead: float = 30.0  # canary pods are up (and scraped) before they take traffic

    @property
    def end(self) -> float:
        return self.warmup + self.horizon


@dataclass(frozen=True)
class Bursts:
    """The rate's two levels and how long each lasts on average (exponentially distributed).

    The levels are ``ratio`` apart and average 1 over time, so ``Traffic.rps`` is the mean rate.
    """

    ratio: float = 2.5
    calm_seconds: float = 180.0
    burst_seconds: float = 20.0

    @property
    def share(self) -> float:
        """The long-run share of time in a burst."""
        return self.burst_seconds / (self.burst_seconds + self.calm_seconds)

    @property
    def calm(self) -> float:
        return 1.0 / (1.0 - self.share + self.ratio * self.share)

    @property
    def burst(self) -> float:
        return self.ratio * self.calm


MISSED_SCRAPE = 0.02  # chance that any one scrape of a pod fails
RESTART_CHANCE = 0.25  # per pod and history


@dataclass(frozen=True)
class Traffic:
    """The total request rate and the canary's fixed share of it."""

    name: str
    rps: float
    canary_share: float

    def describe(self) -> str:
        return f"{self.rps:g} req/s, canary {self.canary_share * 100:g}%"


@dataclass
class Pod:
    """One pod's scrapes: times (seconds from the history's start) and cumulative readings.

    ``readings[k]`` is None for a missed scrape. ``lives[k]`` counts the restarts before it.
    """

    canary: bool
    slow: bool
    name: str
    times: list[float] = field(default_factory=list)
    readings: list[list[float] | None] = field(default_factory=list)
    lives: list[int] = field(default_factory=list)


@dataclass
class History:
    """Everything one replay reads: its pods, and where the canary's traffic starts."""

    namespace: str
    traffic: Traffic
    timeline: Timeline
    pods: list[Pod]


class Load:
    """The burst path: the rate's level over time, and its integral between two times."""

    def __init__(self, rng: random.Random, bursts: Bursts, end: float) -> None:
        burst = rng.random() < bursts.share
        t = 0.0
        self.edges = [0.0]
        self.levels: list[float] = []
        while t < end:
            self.levels.append(bursts.burst if burst else bursts.calm)
            t += rng.expovariate(1.0 / (bursts.burst_seconds if burst else bursts.calm_seconds))
            self.edges.append(t)
            burst = not burst
        self.prefix = [0.0]
        for i, level in enumerate(self.levels):
            self.prefix.append(self.prefix[-1] + level * (self.edges[i + 1] - self.edges[i]))

    def _cumulative(self, t: float) -> float:
        lo, hi = 0, len(self.levels) - 1
        while lo < hi:  # the last edge at or before t
            mid = (lo + hi + 1) // 2
            if self.edges[mid] <= t:
                lo = mid
            else:
                hi = mid - 1
        return self.prefix[lo] + self.levels[lo] * (t - self.edges[lo])

    def integral(self, start: float, end: float) -> float:
        return self._cumulative(end) - self._cumulative(start) if end > start else 0.0

    def level(self, t: float) -> float:
        return self.integral(t - 0.5, t + 0.5)


def _draw_into(
    rng: random.Random, total: list[float], first: int, laws: Buckets, n: int, sum_slot: int
) -> None:
    """Add ``n`` requests' buckets (cumulative) and their sum, drawn from ``laws``."""
    if n <= 0:
        return
    cells = multinomial(rng, n, laws.plan)
    running = 0
    mean = var = 0.0
    for i, count in enumerate(cells):
        running += count
        total[first + i] += running
        if count:
            mean += count * laws.means[i]
            var += count * laws.variances[i]
    total[sum_slot] += max(0.0, rng.gauss(mean, math.sqrt(var)))


def draw_interval(
    rng: random.Random, total: list[float], behaviour: Behaviour, slow: bool, mean: float
) -> None:
    """One scrape interval of one pod, added to its cumulative reading ``total``."""
    n = poisson(rng, mean)
    if n == 0:
        return
    laws = behaviour.pod(slow)
    failed = binomial(rng, n, laws.error_rate)
    total[Slot.OK] += n - failed
    total[Slot.FAILED] += failed
    _draw_into(rng, total, Slot.LATENCY_OK, laws.latency, n - failed, Slot.LATENCY_SUM_OK)
    _draw_into(rng, total, Slot.LATENCY_FAILED, laws.latency, failed, Slot.LATENCY_SUM_FAILED)
    _draw_into(rng, total, Slot.TTFT, laws.ttft, n, Slot.TTFT_SUM)
    _draw_into(rng, total, Slot.OUTPUT, laws.output_tokens, n, Slot.OUTPUT_SUM)
    _draw_into(rng, total, Slot.INPUT, laws.input_tokens, n, Slot.INPUT_SUM)


def _token(rng: random.Random, length: int) -> str:
    """Characters of a pod-template hash or a pod suffix (Kubernetes' alphabet)."""
    return "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=length))


def generate(
    rng: random.Random,
    namespace: str,
    traffic: Traffic,
    canary: Behaviour,
    stable: Behaviour,
    workload: str,
    timeline: Timeline = Timeline(),
    bursts: Bursts = Bursts(),
    pods_per_version: int = 2,
) -> History:
    """A seeded history: ``pods_per_version`` pods per version, the last one slow.

    Pods are named ``<workload>-primary-<hash>-<id>`` (stable) and ``<workload>-<hash>-<id>``.
    """
    load = Load(rng, bursts, timeline.end)
    pods: list[Pod] = []
    for is_canary in (False, True):
        behaviour = canary if is_canary else stable
        prefix = (
            f"{workload}-{_token(rng, 9)}" if is_canary else f"{workload}-primary-{_token(rng, 9)}"
        )
        start = timeline.warmup - timeline.canary_lead if is_canary else 0.0
        share = (traffic.canary_share if is_canary else 1.0) / pods_per_version
        for index in range(pods_per_version):
            pod = Pod(is_canary, index == pods_per_version - 1, f"{prefix}-{_token(rng, 5)}")
            _scrape_pod(rng, pod, behaviour, load, traffic, timeline, start, share)
            pods.append(pod)
    return History(namespace, traffic, timeline, pods)


def _scrape_pod(
    rng: random.Random,
    pod: Pod,
    behaviour: Behaviour,
    load: Load,
    traffic: Traffic,
    timeline: Timeline,
    start: float,
    share: float,
) -> None:
    end = timeline.end
    offset = rng.uniform(0.0, timeline.scrape)
    first = start + offset
    restart = rng.uniform(start + 60.0, end - 60.0) if rng.random() < RESTART_CHANCE else None

    def expected(u: float, v: float) -> float:
        """Mean requests of this pod in (u, v]: the canary's share starts at the warm-up."""
        if pod.canary:
            u = max(u, timeline.warmup)
            if v <= u:
                return 0.0
            return traffic.rps * share * load.integral(u, v)
        before = load.integral(u, min(v, timeline.warmup)) if u < timeline.warmup else 0.0
        after = load.integral(max(u, timeline.warmup), v) if v > timeline.warmup else 0.0
        # the stable keeps what the canary does not take
        return traffic.rps * share * (before + (1.0 - traffic.canary_share) * after)

    total = [0.0] * Slot.WIDTH
    life = 0
    previous = start
    t = first
    while t <= end:
        if restart is not None and previous < restart <= t:
            total = [0.0] * Slot.WIDTH  # what it counted since the last scrape is lost too
            life += 1
            draw_interval(rng, total, behaviour, pod.slow, expected(restart, t))
        else:
            draw_interval(rng, total, behaviour, pod.slow, expected(previous, t))
        total[Slot.QUEUE] = float(poisson(rng, 2.0 * load.level(t)))
        pod.times.append(t)
        pod.lives.append(life)
        pod.readings.append(None if rng.random() < MISSED_SCRAPE else list(total))
        previous = t
        t += timeline.scrape


def reading_at(pod: Pod, t: float, lookback: float = 300.0) -> tuple[list[float], int] | None:
    """What an instant query at ``t`` sees of a pod: its latest reading and that reading's life.

    The latest scraped sample at or before ``t`` within the lookback (backfilled history has no
    staleness markers), or None.
    """
    k = _last_index(pod.times, t)
    while k >= 0 and t - pod.times[k] <= lookback:
        reading = pod.readings[k]
        if reading is not None:
            return reading, pod.lives[k]
        k -= 1
    return None


def _last_index(times: Sequence[float], t: float) -> int:
    lo, hi = 0, len(times) - 1
    if hi < 0 or times[0] > t:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if times[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo
