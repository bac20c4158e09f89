"""Seeded metric streams of a stable and a canary version, as a Prometheus would scrape them.

Each scrape (every ``scrape`` seconds) reads, per version, cumulative counters: requests,
errors, a request-latency histogram (the Prometheus client's default buckets), a
time-to-first-token histogram and an output-token histogram (vLLM's bucket layouts), and the
output and input token sums. Requests arrive as a Poisson process whose rate follows a daily
cycle (compressed to an hour, so that a rollout sees the rate move) and are split between the
versions by the rollout's step plan. Per-request values are lognormal; a scrape's bucket counts
are drawn as one multinomial, never request by request. A pod restart sets a version's counters
to zero in the middle of a scrape interval, losing what it had counted since the last scrape,
as a real restart does. docs/detection.md gives every number used here.

Everything is a function of the seed: one ``random.Random`` per replay and version, derived
from the benchmark seed, the traffic case, the replay index and the scenario, so a replay is
the same whichever process runs it and in whatever order.
"""

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from bench.detection.histograms import LogNormal, bucket_probabilities
from bench.detection.sampling import binomial, conditional_plan, multinomial, poisson

# The Prometheus Python client's default request-duration buckets (seconds).
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# vLLM's time-to-first-token buckets (seconds), up to 10 s.
TTFT_BOUNDS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
# vLLM's generation-token buckets: 1-2-5 steps up to the model's length.
TOKEN_BOUNDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
MAX_TOKENS = 2048.0  # the request's max_tokens: no answer is longer

LATENCY = LogNormal(median=0.08, sigma=0.5)  # seconds; p95 0.18 s
TTFT = LogNormal(median=0.2, sigma=0.6)  # seconds; p95 0.54 s
OUTPUT_TOKENS = LogNormal(median=220.0, sigma=0.8, cap=MAX_TOKENS)  # mean 300 per answer


class Layout:
    """Where each counter sits in a version's reading (one flat list of floats)."""

    REQUESTS = 0
    ERRORS = 1
    LATENCY = 2  # le buckets, +Inf last
    TTFT = LATENCY + len(LATENCY_BOUNDS) + 1
    TOKENS = TTFT + len(TTFT_BOUNDS) + 1
    OUTPUT_TOKENS = TOKENS + len(TOKEN_BOUNDS) + 1
    INPUT_TOKENS = OUTPUT_TOKENS + 1
    WIDTH = INPUT_TOKENS + 1


@dataclass(frozen=True)
class Profile:
    """How one version's requests behave."""

    error_rate: float = 0.01
    latency: LogNormal = LATENCY
    ttft: LogNormal = TTFT
    output_tokens: LogNormal = OUTPUT_TOKENS
    input_tokens_mean: float = 800.0
    input_tokens_sd: float = 400.0

    @cached_property
    def compiled(self) -> "_Compiled":
        return _Compiled(self)


class _Compiled:
    """A profile's multinomial plans and the token buckets' means and variances."""

    def __init__(self, profile: Profile) -> None:
        self.error_rate = profile.error_rate
        self.latency = conditional_plan(bucket_probabilities(profile.latency, LATENCY_BOUNDS))
        self.ttft = conditional_plan(bucket_probabilities(profile.ttft, TTFT_BOUNDS))
        self.tokens = conditional_plan(bucket_probabilities(profile.output_tokens, TOKEN_BOUNDS))
        edges = [0.0, *TOKEN_BOUNDS, math.inf]
        moments = [
            profile.output_tokens.bucket_moments(lo, hi) for lo, hi in itertools.pairwise(edges)
        ]
        self.token_mean = [m for _, m, _ in moments]
        self.token_var = [v for _, _, v in moments]
        self.token_lo = edges[:-1]
        self.token_hi = [min(hi, MAX_TOKENS) for hi in edges[1:]]
        self.input_mean = profile.input_tokens_mean
        self.input_sd = profile.input_tokens_sd


def _cumulate(counts: list[int]) -> list[float]:
    out: list[float] = []
    running = 0
    for c in counts:
        running += c
        out.append(float(running))
    return out


def draw_increment(rng: random.Random, profile: Profile, mean_requests: float) -> list[float]:
    """One scrape interval's new counts for a version (``le`` buckets already cumulative)."""
    n = poisson(rng, mean_requests)
    reading = [0.0] * Layout.WIDTH
    if n == 0:
        return reading
    c = profile.compiled
    reading[Layout.REQUESTS] = float(n)
    reading[Layout.ERRORS] = float(binomial(rng, n, c.error_rate))
    reading[Layout.LATENCY : Layout.TTFT] = _cumulate(multinomial(rng, n, c.latency))
    reading[Layout.TTFT : Layout.TOKENS] = _cumulate(multinomial(rng, n, c.ttft))
    tokens = multinomial(rng, n, c.tokens)
    reading[Layout.TOKENS : Layout.OUTPUT_TOKENS] = _cumulate(tokens)
    mean = var = lo = hi = 0.0
    for k, m, v, a, b in zip(
        tokens, c.token_mean, c.token_var, c.token_lo, c.token_hi, strict=True
    ):
        if k:
            mean += k * m
            var += k * v
            lo += k * a
            hi += k * b
    reading[Layout.OUTPUT_TOKENS] = float(round(min(hi, max(lo, rng.gauss(mean, math.sqrt(var))))))
    reading[Layout.INPUT_TOKENS] = float(
        round(max(0.0, rng.gauss(n * c.input_mean, math.sqrt(n) * c.input_sd)))
    )
    return reading


@dataclass(frozen=True)
class Traffic:
    """Total request rate with its daily cycle, and the canary's step plan."""

    rps: float = 100.0
    steps: tuple[float, ...] = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)  # canary percent
    step_seconds: float = 60.0
    cycle_amplitude: float = 0.5  # the rate swings +-50% around rps
    cycle_period: float = 3600.0  # a day compressed to an hour

    @property
    def promotion(self) -> float:
        """Seconds after the canary first takes traffic at which it is promoted."""
        return len(self.steps) * self.step_seconds

    def rate(self, t: float, phase: float) -> float:
        """Requests per second at ``t`` (seconds from the canary's start)."""
        angle = 2.0 * math.pi * (t + phase) / self.cycle_period
        return self.rps * (1.0 + self.cycle_amplitude * math.sin(angle))

    def weight(self, t: float) -> float:
        """The canary's share of requests at ``t``: 0 before it starts, the last step after."""
        if t < 0:
            return 0.0
        step = min(int(t // self.step_seconds), len(self.steps) - 1)
        return self.steps[step] / 100.0


@dataclass(frozen=True)
class Timeline:
    """Scrape interval, the stable-only warm-up before the canary, and how long to watch."""

    scrape: float = 15.0
    warmup: float = 300.0
    horizon: float = 1500.0

    def __post_init__(self) -> None:
        for name in ("warmup", "horizon"):
            ticks = getattr(self, name) / self.scrape
            if abs(ticks - round(ticks)) > 1e-9 or ticks < 1:
                raise ValueError(f"{name} must be a whole number of scrape intervals")

    @property
    def warmup_ticks(self) -> int:
        return round(self.warmup / self.scrape)

    def ticks(self, until: float) -> int:
        """Scrapes from the canary's start up to ``until`` seconds (inclusive)."""
        return math.floor(until / self.scrape + 1e-9)


@dataclass(frozen=True)
class Reset:
    """A restart: at rollout scrape ``tick``, ``fraction`` of the way through its interval."""

    tick: int
    fraction: float


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay's versions share in every scenario: the cycle's phase and the restarts."""

    phase: float
    stable_reset: Reset | None
    canary_reset: Reset | None


RESET_CHANCE = 0.5  # per version and replay
RESET_WINDOW = (120.0, 600.0)  # seconds after the canary's start (it has counted for a while)


def draw_plan(rng: random.Random, traffic: Traffic, timeline: Timeline) -> ReplayPlan:
    first, last = (timeline.ticks(s) for s in RESET_WINDOW)

    def reset() -> Reset | None:
        if rng.random() >= RESET_CHANCE:
            return None
        return Reset(rng.randrange(first, last), rng.random())

    phase = rng.uniform(0.0, traffic.cycle_period)
    return ReplayPlan(phase, reset(), reset())


def version_readings(
    rng: random.Random, profile: Profile, means: Sequence[float], reset: Reset | None
) -> list[list[float]]:
    """Cumulative readings after each scrape interval, from counters at 0, with a restart."""
    readings: list[list[float]] = []
    total = [0.0] * Layout.WIDTH
    for i, mean in enumerate(means):
        if reset is not None and i == reset.tick:
            total = draw_increment(rng, profile, mean * (1.0 - reset.fraction))
        else:
            step = draw_increment(rng, profile, mean)
            total = [a + b for a, b in zip(total, step, strict=True)]
        readings.append(total)
    return readings


@dataclass(frozen=True)
class Stream:
    """One replay's scrapes. ``stable`` starts with the warm-up; ``canary`` at the canary's start.

    ``canary[i]`` and ``stable[warmup_ticks + i]`` are read at ``(i + 1) * scrape`` seconds.
    """

    scrape: float
    warmup_ticks: int
    stable: list[list[float]]
    canary: list[list[float]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def tick_means(
    traffic: Traffic, timeline: Timeline, phase: float, ticks: int, canary: bool
) -> list[float]:
    """Expected requests per scrape interval for one version (rate at the interval's middle)."""
    dt = timeline.scrape
    start = 0 if canary else -timeline.warmup_ticks
    out = []
    for i in range(start, ticks):
        t = (i + 0.5) * dt
        w = traffic.weight(t)
        out.append(traffic.rate(t, phase) * dt * (w if canary else 1.0 - w))
    return out


def stable_stream(
    rng: random.Random,
    profile: Profile,
    traffic: Traffic,
    timeline: Timeline,
    plan: ReplayPlan,
    ticks: int,
) -> Stream:
    """The stable's readings through the warm-up and ``ticks`` scrapes of the rollout."""
    reset = plan.stable_reset
    if reset is not None:
        reset = replace(reset, tick=reset.tick + timeline.warmup_ticks)
    means = tick_means(traffic, timeline, plan.phase, ticks, canary=False)
    weights = [traffic.weight((i + 0.5) * timeline.scrape) for i in range(ticks)]
    return Stream(
        timeline.scrape,
        timeline.warmup_ticks,
        version_readings(rng, profile, means, reset),
        weights=weights,
    )


def with_canary(
    stable: Stream,
    rng: random.Random,
    profile: Profile,
    traffic: Traffic,
    timeline: Timeline,
    plan: ReplayPlan,
    ticks: int,
) -> Stream:
    """The stable's stream with a canary's readings for the first ``ticks`` scrapes."""
    means = tick_means(traffic, timeline, plan.phase, ticks, canary=True)
    canary = version_readings(rng, profile, means, plan.canary_reset)
    end = stable.warmup_ticks + ticks
    return Stream(
        stable.scrape, stable.warmup_ticks, stable.stable[:end], canary, stable.weights[:ticks]
    )


def replay_rng(seed: int, *parts: object) -> random.Random:
    """A generator for one part of one replay; string seeds hash the same in every process."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))
