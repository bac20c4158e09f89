"""The rollback policies under comparison, each reading the same scrapes.

- Tollgate: the operator's anytime-valid sequential test (``tollgate.engine.sequential``), one
  per check at alpha/k, fed every scrape's increments, rollback at the first rejection.
- Flagger-style: every ``interval`` an analysis over the last ``interval`` of data; the
  analysis fails when any metric is over its threshold or has no value; rollback when the
  failed analyses reach ``threshold`` (Flagger's ``FailedChecks``, never reset by a pass).
- Argo-style: every ``interval`` a measurement per metric over the last ``interval``; rollback
  when a metric's failed measurements exceed ``failureLimit``. A NaN (no requests) passes, as
  Argo's documentation has users guard queries with ``isNaN(result[0]) || ...``.
- Naive: a fixed-sample test (two-proportion z on errors, Mann-Whitney on the latency, TTFT
  and token histograms) on everything since the canary started, repeated at every scrape.

Each reference policy is evaluated for a whole grid of settings in one pass over a replay:
a window's values do not depend on the threshold (they are computed once and judged by every
tolerance set), nor the test statistics on the level. Every counter is differenced with the
engine's ``increments`` (resets included), once per replay, which is what each policy would do
on its own.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from bench.detection.generator import (
    LATENCY_BOUNDS,
    MAX_TOKENS,
    TOKEN_BOUNDS,
    TTFT_BOUNDS,
    Layout,
    Stream,
)
from bench.detection.histograms import histogram_quantile, mann_whitney_z, objective_index
from tollgate.engine.sequential import Batch, Evidence, SequentialTest, increments

NEVER = math.inf
METRICS = ("errors", "latency", "ttft", "cost")
# (first le bucket, bounds) of each histogram in a reading
HISTOGRAMS = {
    "latency": (Layout.LATENCY, LATENCY_BOUNDS),
    "ttft": (Layout.TTFT, TTFT_BOUNDS),
    "cost": (Layout.TOKENS, TOKEN_BOUNDS),
}


def tick_increments(readings: Sequence[Sequence[float]]) -> list[list[float]]:
    """Per scrape, each counter's increase since the previous scrape (from 0 at the start)."""
    previous: Sequence[float] = [0.0] * Layout.WIDTH
    out = []
    for reading in readings:
        out.append([increments(p, c) for p, c in zip(previous, reading, strict=True)])
        previous = reading
    return out


@dataclass(frozen=True)
class Counts:
    """A replay's per-scrape increments, and the stable's totals over the warm-up."""

    scrape: float
    canary: list[list[float]]
    stable: list[list[float]]
    warmup: list[float]

    @classmethod
    def of(cls, stream: Stream, stable: list[list[float]] | None = None) -> "Counts":
        """From the readings; ``stable`` may hold the stable's increments already computed."""
        if stable is None:
            stable = tick_increments(stream.stable)
        stable = stable[: len(stream.stable)]
        warm = stable[: stream.warmup_ticks]
        warmup = [sum(col) for col in zip(*warm, strict=True)] if warm else [0.0] * Layout.WIDTH
        return cls(
            stream.scrape,
            tick_increments(stream.canary),
            stable[stream.warmup_ticks :],
            warmup,
        )

    @property
    def ticks(self) -> int:
        return len(self.canary)

    def seconds(self, tick: int) -> float:
        """When scrape ``tick`` (0-based) is read, from the canary's start."""
        return (tick + 1) * self.scrape


def objectives(warmup: Sequence[float], quantiles: dict[str, float]) -> dict[str, int]:
    """Per histogram, the le bucket (position in a reading) of its objective T: the first
    bound at or above the stable's quantile over the warm-up, fixed before the canary starts."""
    out = {}
    for name, (first, bounds) in HISTOGRAMS.items():
        q = histogram_quantile(quantiles[name], bounds, warmup[first : first + len(bounds) + 1])
        out[name] = first + objective_index(bounds, q)
    return out


# --- Tollgate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tollgate:
    """Tollgate's policy: one sequential test per check at alpha/k, rollback at the first
    rejection. ``cost_as_tokens`` is for diagnosis, not what the operator runs: it feeds output
    tokens as the cost check's bad events (totals scaled by the token cap, so that bad events
    never outnumber the total) against ``psi0 = cost_psi0``, instead of requests over the
    stable-derived token objective. ``error_oracle`` is a bound, not a policy: the error check
    alone with the full alpha and its one alternative set at the true ratio, which no real
    policy knows. A scrape in which one version served nothing is pooled into the next by the
    engine's test itself, as in the operator.
    """

    alpha: float = 0.01
    min_samples: int = 20
    latency_quantile: float = 0.95
    ttft_quantile: float = 0.95
    cost_quantile: float = 0.5
    cost_as_tokens: bool = False
    cost_psi0: float = 1.2
    error_oracle: float | None = None

    @property
    def quantiles(self) -> dict[str, float]:
        return {
            "latency": self.latency_quantile,
            "ttft": self.ttft_quantile,
            "cost": self.cost_quantile,
        }

    def tests(self) -> dict[str, SequentialTest]:
        if self.error_oracle is not None:
            grid = (self.error_oracle,)
            return {"errors": SequentialTest(self.alpha, grid=grid, min_samples=self.min_samples)}
        share = self.alpha / len(METRICS)
        plain = SequentialTest(alpha=share, min_samples=self.min_samples)
        tests = dict.fromkeys(METRICS, plain)
        if self.cost_as_tokens:
            tests["cost"] = SequentialTest(
                alpha=share,
                psi0=self.cost_psi0,
                min_samples=round(self.min_samples * MAX_TOKENS),
            )
        return tests

    def batches(
        self, c: Sequence[float], s: Sequence[float], bound: dict[str, int]
    ) -> dict[str, Batch]:
        """The batch of each check from canary and stable increments."""
        out = {
            "errors": _batch(
                c[Layout.REQUESTS], c[Layout.ERRORS], s[Layout.REQUESTS], s[Layout.ERRORS]
            )
        }
        for name, (first, bounds) in HISTOGRAMS.items():
            every, within = first + len(bounds), bound[name]  # +Inf bucket, bucket at T
            out[name] = _batch(c[every], c[every] - c[within], s[every], s[every] - s[within])
        if self.cost_as_tokens:
            out["cost"] = _batch(
                c[Layout.REQUESTS] * MAX_TOKENS,
                c[Layout.OUTPUT_TOKENS],
                s[Layout.REQUESTS] * MAX_TOKENS,
                s[Layout.OUTPUT_TOKENS],
            )
        return out

    def rollback_at(self, counts: Counts) -> float:
        """Seconds from the canary's start to the rollback, or NEVER."""
        tests = self.tests()
        states = {name: Evidence.start(test.grid) for name, test in tests.items()}
        bound = objectives(counts.warmup, self.quantiles)
        for tick in range(counts.ticks):
            c, s = counts.canary[tick], counts.stable[tick]
            for name, batch in self.batches(c, s, bound).items():
                if name not in tests:
                    continue
                test = tests[name]
                states[name] = test.update(states[name], batch)
                if test.rejects(states[name]):
                    return counts.seconds(tick)
        return NEVER


def _batch(canary_total: float, canary_bad: float, stable_total: float, stable_bad: float) -> Batch:
    """A batch with bad events kept within [0, total]: counters of one version are differenced
    one by one, and a restart that one of them does not show (it counted past its old value)
    could otherwise leave more bad events than requests."""
    return Batch(
        canary_total,
        min(canary_total, max(0.0, canary_bad)),
        stable_total,
        min(stable_total, max(0.0, stable_bad)),
    )


# --- Window analyses (Flagger- and Argo-style) ----------------------------------------------


@dataclass(frozen=True)
class WindowValues:
    """What a window's queries return for canary (c) and stable (s); NaN when there is no
    request on that side (PromQL's 0/0)."""

    errors_c: float
    errors_s: float
    latency_c: float
    latency_s: float
    ttft_c: float
    ttft_s: float
    cost_c: float
    cost_s: float

    @classmethod
    def of(cls, canary: Sequence[float], stable: Sequence[float]) -> "WindowValues":
        def rate(r: Sequence[float], index: int) -> float:
            n = r[Layout.REQUESTS]
            return r[index] / n if n > 0 else math.nan

        def p95(r: Sequence[float], name: str) -> float:
            first, bounds = HISTOGRAMS[name]
            return histogram_quantile(0.95, bounds, r[first : first + len(bounds) + 1])

        return cls(
            rate(canary, Layout.ERRORS),
            rate(stable, Layout.ERRORS),
            p95(canary, "latency"),
            p95(stable, "latency"),
            p95(canary, "ttft"),
            p95(stable, "ttft"),
            rate(canary, Layout.OUTPUT_TOKENS),
            rate(stable, Layout.OUTPUT_TOKENS),
        )


@dataclass(frozen=True)
class Thresholds:
    """Canary against stable over one window, as Flagger or Argo users write it in a query."""

    latency_ratio: float = 1.25  # canary p95 <= 1.25 x stable p95
    ttft_ratio: float = 1.25
    error_points: float = 0.005  # canary error rate <= stable + 0.5 points
    cost_ratio: float = 1.2  # canary cost per request <= 1.2 x stable

    def outcome(self, v: WindowValues) -> tuple[bool | None, ...]:
        """Per metric (errors, latency, ttft, cost): passed, failed (False) or no value (None)."""

        def check(canary: float, limit: float) -> bool | None:
            return None if math.isnan(canary) or math.isnan(limit) else canary <= limit

        return (
            check(v.errors_c, v.errors_s + self.error_points),
            check(v.latency_c, self.latency_ratio * v.latency_s),
            check(v.ttft_c, self.ttft_ratio * v.ttft_s),
            check(v.cost_c, self.cost_ratio * v.cost_s),
        )


def _prefix(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    out = [[0.0] * Layout.WIDTH]
    for row in rows:
        out.append([a + b for a, b in zip(out[-1], row, strict=True)])
    return out


@dataclass(frozen=True)
class WindowGrid:
    """Flagger thresholds and Argo failure limits evaluated at one interval."""

    interval: float
    flagger_thresholds: tuple[int, ...]
    argo_limits: tuple[int, ...]


class _Tally:
    """Failed Flagger analyses and Argo measurements of one tolerance set at one interval."""

    def __init__(self, grid: WindowGrid) -> None:
        self.grid = grid
        self.failed_checks: list[float] = []  # Flagger: time of each failed analysis
        self.argo_failed = [0] * len(METRICS)
        self.worst = 0  # Argo: most failed measurements of any one metric
        self.argo_first: dict[int, float] = {}  # worst count -> when it was reached

    @property
    def done(self) -> bool:
        return len(self.failed_checks) >= max(self.grid.flagger_thresholds, default=0) and (
            self.worst > max(self.grid.argo_limits, default=-1)
        )

    def add(self, result: tuple[bool | None, ...], now: float) -> None:
        if any(r is not True for r in result):
            self.failed_checks.append(now)
        for i, r in enumerate(result):
            if r is False:
                self.argo_failed[i] += 1
        worst = max(self.argo_failed)
        for failures in range(self.worst + 1, worst + 1):
            self.argo_first[failures] = now
        self.worst = worst

    def flagger(self, threshold: int) -> float:
        checks = self.failed_checks
        return checks[threshold - 1] if len(checks) >= threshold else NEVER

    def argo(self, limit: int) -> float:
        return self.argo_first.get(limit + 1, NEVER)


def window_rollbacks(
    counts: Counts, grids: Iterable[WindowGrid], tolerances: Mapping[str, Thresholds]
) -> dict[tuple[str, str, float, int], float]:
    """Rollback time of every (family, tolerance set, interval, threshold or limit), NEVER
    if none. A window's values are computed once and judged by every tolerance set."""
    canary, stable = _prefix(counts.canary), _prefix(counts.stable)
    out: dict[tuple[str, str, float, int], float] = {}
    for grid in grids:
        width = round(grid.interval / counts.scrape)
        if width < 1 or abs(width * counts.scrape - grid.interval) > 1e-9:
            raise ValueError(f"interval {grid.interval}s is not a whole number of scrapes")
        tallies = {name: _Tally(grid) for name in tolerances}
        for end in range(width, counts.ticks + 1, width):
            if all(t.done for t in tallies.values()):
                break
            start = end - width
            values = WindowValues.of(
                [a - b for a, b in zip(canary[end], canary[start], strict=True)],
                [a - b for a, b in zip(stable[end], stable[start], strict=True)],
            )
            for name, thresholds in tolerances.items():
                tallies[name].add(thresholds.outcome(values), end * counts.scrape)
        for name, tally in tallies.items():
            for h in grid.flagger_thresholds:
                out[("flagger", name, grid.interval, h)] = tally.flagger(h)
            for limit in grid.argo_limits:
                out[("argo", name, grid.interval, limit)] = tally.argo(limit)
    return out


# --- Naive repeated fixed-sample test -------------------------------------------------------


def critical_z(level: float) -> float:
    """The one-sided normal critical value at ``level``."""
    return NormalDist().inv_cdf(1.0 - level)


def two_proportion_z(bad_c: float, n_c: float, bad_s: float, n_s: float) -> float:
    """One-sided pooled two-proportion z (canary worse); 0 when undefined."""
    if n_c <= 0 or n_s <= 0:
        return 0.0
    pooled = (bad_c + bad_s) / (n_c + n_s)
    if not 0.0 < pooled < 1.0:
        return 0.0
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_s))
    return (bad_c / n_c - bad_s / n_s) / se


def naive_statistic(canary: Sequence[float], stable: Sequence[float]) -> float:
    """The largest of the checks' z statistics on cumulative counts since the canary started."""
    z = two_proportion_z(
        canary[Layout.ERRORS],
        canary[Layout.REQUESTS],
        stable[Layout.ERRORS],
        stable[Layout.REQUESTS],
    )
    for first, bounds in HISTOGRAMS.values():
        end = first + len(bounds) + 1
        z = max(z, mann_whitney_z(canary[first:end], stable[first:end]))
    return z


def naive_rollbacks(counts: Counts, levels: Sequence[float]) -> dict[float, float]:
    """Rollback time at each level (per look, per check), NEVER if none."""
    pending = sorted(((critical_z(level), level) for level in levels), reverse=True)
    out = dict.fromkeys(levels, NEVER)
    canary = [0.0] * Layout.WIDTH
    stable = [0.0] * Layout.WIDTH
    for tick in range(counts.ticks):
        canary = [a + b for a, b in zip(canary, counts.canary[tick], strict=True)]
        stable = [a + b for a, b in zip(stable, counts.stable[tick], strict=True)]
        z = naive_statistic(canary, stable)
        while pending and z > pending[-1][0]:
            out[pending.pop()[1]] = counts.seconds(tick)
        if not pending:
            break
    return out
