"""Anytime-valid sequential tests of canary against stable on counts of bad events.

A fixed-sample test repeated at every analysis tick raises false alarms far above its nominal
rate (each look is another chance). An e-process does not: it is a nonnegative supermartingale
under the null hypothesis, so by Ville's inequality the chance that it *ever* reaches 1/alpha,
however often it is looked at, is at most alpha. The operator may therefore look after every
scrape and stop at the first crossing (Lindon and Malek, "Anytime-valid inference for
multinomial count data", NeurIPS 2022; Lindon et al., "Rapid regression detection in software
deployments through sequential testing", KDD 2022). docs/analysis.md derives what is here.

The test conditions on where bad events land. Each batch (one tick's increments) brings
``canary_total``/``stable_total`` requests and ``canary_bad``/``stable_bad`` bad events (errors,
or requests over a latency objective). With Poisson counts, given the number of bad events in a
batch, each one is the canary's with probability ``q = psi*theta / (psi*theta + 1 - theta)``,
where ``theta`` is the canary's share of the batch's requests and ``psi`` the ratio of the
canary's bad-event rate to the stable's. The null hypothesis is ``psi <= psi0`` (the canary is
at most ``psi0`` times as bad; ``psi0 = 1`` is "no worse"). For each alternative ``psi`` on a
grid above ``psi0`` the likelihood ratio of the batch against ``psi0`` is a supermartingale
factor under every null ``psi``; their average with fixed weights is one too. Batches with no
bad events or no requests on a side carry no information and leave the e-value unchanged.
Nothing here reads a clock or draws a random number.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

# Alternatives, as multiples of the smallest effect: from it to 8 times it.
SPREAD: tuple[float, ...] = (1.0, 1.2, 1.6, 2.4, 4.0, 8.0)
DEFAULT_GRID: tuple[float, ...] = tuple(1.25 * m for m in SPREAD)  # 25% worse .. 10x worse


def grid_for(min_effect: float) -> tuple[float, ...]:
    """The alternatives for a smallest effect of interest (a ratio > 1)."""
    return tuple(min_effect * m for m in SPREAD)


@dataclass(frozen=True)
class Batch:
    """One tick's increments for both versions (counts may be fractional after resets)."""

    canary_total: float
    canary_bad: float
    stable_total: float
    stable_bad: float

    def __post_init__(self) -> None:
        for name in ("canary_total", "canary_bad", "stable_total", "stable_bad"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite count >= 0, not {value}")
        if self.canary_bad > self.canary_total or self.stable_bad > self.stable_total:
            raise ValueError("bad events cannot outnumber requests")


@dataclass(frozen=True)
class Evidence:
    """What carries over between ticks: the log e-value per alternative and the totals seen."""

    log_e: tuple[float, ...]
    canary_total: float = 0.0
    canary_bad: float = 0.0
    stable_total: float = 0.0
    stable_bad: float = 0.0
    # Increments of readings in which a version served no request: they wait for the next
    # reading that has both (pooling batches keeps the test valid; dropping them loses data).
    carry: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @classmethod
    def start(cls, grid: Sequence[float] = DEFAULT_GRID) -> "Evidence":
        return cls(log_e=tuple(0.0 for _ in grid))


@dataclass(frozen=True)
class SequentialTest:
    """The test's settings: false-alarm rate, tolerated ratio, alternatives, minimum samples."""

    alpha: float = 0.01
    psi0: float = 1.0
    grid: tuple[float, ...] = DEFAULT_GRID
    min_samples: int = 0  # requests per version before a rejection may be reported

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be within (0, 1)")
        if self.psi0 <= 0:
            raise ValueError("psi0 must be > 0")
        if not self.grid or any(g <= 1 for g in self.grid):
            raise ValueError("grid multipliers must be > 1")

    @property
    def boundary(self) -> float:
        """The e-value at which the null is rejected: 1/alpha."""
        return 1.0 / self.alpha

    def update(self, state: Evidence, batch: Batch) -> Evidence:
        """The state after one more batch."""
        if len(state.log_e) != len(self.grid):
            state = Evidence.start(self.grid)
        seen = Evidence(
            state.log_e,
            state.canary_total + batch.canary_total,
            state.canary_bad + batch.canary_bad,
            state.stable_total + batch.stable_total,
            state.stable_bad + batch.stable_bad,
        )
        pooled = Batch(*(c + b for c, b in zip(state.carry, _row(batch), strict=True)))
        if pooled.canary_total <= 0 or pooled.stable_total <= 0:
            return replace(seen, carry=_row(pooled))
        batch = pooled
        n = batch.canary_total + batch.stable_total
        if batch.canary_bad + batch.stable_bad <= 0:
            return seen
        theta = batch.canary_total / n
        q0 = _share(self.psi0, theta)
        log_e = tuple(
            value
            + batch.canary_bad * math.log(_share(self.psi0 * m, theta) / q0)
            + batch.stable_bad * math.log((1 - _share(self.psi0 * m, theta)) / (1 - q0))
            for value, m in zip(state.log_e, self.grid, strict=True)
        )
        return replace(seen, log_e=log_e)

    def log_e_value(self, state: Evidence) -> float:
        """The log of the mixture e-value (the plain average over the grid), without overflow."""
        if not state.log_e:
            return 0.0
        top = max(state.log_e)
        mean = sum(math.exp(v - top) for v in state.log_e) / len(state.log_e)
        return top + math.log(mean)

    def e_value(self, state: Evidence) -> float:
        """The mixture e-value, capped at about 1e304 for display (a float cannot go further)."""
        return math.exp(min(self.log_e_value(state), 700.0))

    def rejects(self, state: Evidence) -> bool:
        """The canary is worse than psi0 times stable, at false-alarm rate alpha."""
        enough = min(state.canary_total, state.stable_total) >= self.min_samples
        return enough and self.log_e_value(state) >= -math.log(self.alpha)


def _row(batch: Batch) -> tuple[float, float, float, float]:
    return (batch.canary_total, batch.canary_bad, batch.stable_total, batch.stable_bad)


def _share(psi: float, theta: float) -> float:
    """The chance that a bad event is the canary's when its rate is psi times stable's."""
    return psi * theta / (psi * theta + 1.0 - theta)


def increments(previous: float | None, current: float) -> float:
    """A cumulative counter's increase since the previous reading, through resets.

    A counter that went down was reset (its process restarted) and counted ``current`` since.
    """
    if previous is None:
        return 0.0
    return current - previous if current >= previous else current
