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
from statistics import NormalDist

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


class _Mixture:
    """What every test here shares: the average of its alternatives' wealth against 1/alpha."""

    alpha: float
    min_samples: int

    @property
    def boundary(self) -> float:
        """The e-value at which the null is rejected: 1/alpha."""
        return 1.0 / self.alpha

    def log_e_value(self, state: Evidence) -> float:
        """The log of the mixture e-value (the plain average), without overflow."""
        return _log_mean_exp(state.log_e)

    def e_value(self, state: Evidence) -> float:
        """The mixture e-value, capped at about 1e304 for display (a float cannot go further)."""
        return math.exp(min(self.log_e_value(state), 700.0))

    def seen(self, state: Evidence) -> float:
        """Requests behind the evidence, for ``min_samples``: the canary's."""
        return state.canary_total

    def rejects(self, state: Evidence) -> bool:
        """The null is rejected at false-alarm rate alpha (after ``min_samples`` requests)."""
        enough = self.seen(state) >= self.min_samples
        return enough and self.log_e_value(state) >= -math.log(self.alpha)


def _counted(
    state: Evidence, canary: float, bad: float, stable: float, stable_bad: float
) -> Evidence:
    return replace(
        state,
        canary_total=state.canary_total + canary,
        canary_bad=state.canary_bad + bad,
        stable_total=state.stable_total + stable,
        stable_bad=state.stable_bad + stable_bad,
    )


@dataclass(frozen=True)
class SequentialTest(_Mixture):
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

    def update(self, state: Evidence, batch: Batch) -> Evidence:
        """The state after one more batch."""
        if len(state.log_e) != len(self.grid):
            state = Evidence.start(self.grid)
        seen = replace(_counted(state, *_row(batch)), carry=(0.0, 0.0, 0.0, 0.0))
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

    def seen(self, state: Evidence) -> float:
        """Requests per version behind the evidence: the fewer side's."""
        return min(state.canary_total, state.stable_total)

    def needed(self, ratio: float, stable_share: float, theta: float, power: float) -> float:
        """Canary requests after which a canary whose bad rate is ``ratio`` times psi0 times
        the stable's is rejected with probability ``power``, at a stable bad share and a canary
        share of traffic ``theta`` like those seen so far; ``inf`` when no sample can tell.

        Bad events are Poisson: per canary request, ``rate_c`` of the canary's, each adding
        log(q1/q0), and ``rate_s`` of the stable's, each adding log((1-q1)/(1-q0)).
        """
        if not (0 < theta < 1) or stable_share <= 0 or stable_share * self.psi0 >= 1:
            return math.inf
        # the canary's bad share under the alternative, closing in on 1 where ratio x psi0 x
        # the stable's share would pass it
        rate_c = _above(stable_share * self.psi0, ratio)
        rate_s = stable_share * (1 - theta) / theta
        q0 = _share(self.psi0, theta)
        moments = []
        for m in self.grid:
            q1 = _share(self.psi0 * m, theta)
            a, b = math.log(q1 / q0), math.log((1 - q1) / (1 - q0))
            moments.append((rate_c * a + rate_s * b, rate_c * a * a + rate_s * b * b))
        return _needed(moments, self.alpha, power)


@dataclass(frozen=True)
class LimitTest(_Mixture):
    """An absolute limit as a question about the canary's own traffic: is its bad share > p0?

    Each canary request is bad (an error, slower than the objective, over the burn rate's
    allowance) with probability ``p``; the null hypothesis is ``p <= p0``. For an alternative
    ``p1 > p0`` the likelihood ratio of a batch with ``e`` bad of ``n`` requests,
    ``(p1/p0)^e ((1-p1)/(1-p0))^(n-e)``, has expectation at most 1 under every ``p <= p0``
    (per request it is linear in the true ``p`` and equals 1 at ``p0``; requests of unequal
    pods with an average share ``<= p0`` keep the product's expectation under 1 by AM-GM). The
    average over a fixed grid of alternatives is a nonnegative supermartingale, so by Ville's
    inequality it ever reaches ``1/alpha`` with probability at most ``alpha``. The window
    estimate of the same share is shown to people; this test decides.
    """

    p0: float
    alpha: float = 0.01
    grid: tuple[float, ...] = DEFAULT_GRID
    min_samples: int = 0  # canary requests before a rejection may be reported

    def __post_init__(self) -> None:
        if not 0 <= self.p0 <= 1:
            raise ValueError("p0 must be a share within [0, 1]")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be within (0, 1)")
        if not self.grid or any(g <= 1 for g in self.grid):
            raise ValueError("grid multipliers must be > 1")

    def alternatives(self) -> tuple[float, ...]:
        """The alternative shares: p0 times each multiplier, closing in on 1 past it."""
        return tuple(_above(self.p0, m) for m in self.grid)

    def update(self, state: Evidence, batch: Batch) -> Evidence:
        """The state after one more batch (only the canary's side counts)."""
        if len(state.log_e) != len(self.grid):
            state = Evidence.start(self.grid)
        n, e = batch.canary_total, batch.canary_bad
        seen = _counted(state, n, e, batch.stable_total, batch.stable_bad)
        if n <= 0 or self.p0 >= 1:
            return seen
        log_e = tuple(
            min(LOG_CAP, value + _log_ratio(self.p0, p1, e, n))
            for value, p1 in zip(state.log_e, self.alternatives(), strict=True)
        )
        return replace(seen, log_e=log_e)

    def needed(self, ratio: float, power: float) -> float:
        """Canary requests after which a canary ``ratio`` times worse than p0 is rejected with
        probability ``power``: the smallest sample that can resolve the limit (``inf``: none).
        """
        if self.p0 >= 1:
            return math.inf
        p = _above(self.p0, ratio)
        moments = []
        for p1 in self.alternatives():
            a, b = _log_ratio(self.p0, p1, 1.0, 1.0), _log_ratio(self.p0, p1, 0.0, 1.0)
            moments.append((p * a + (1 - p) * b, p * (1 - p) * (a - b) ** 2))
        return _needed(moments, self.alpha, power)


@dataclass(frozen=True)
class Amount:
    """One reading's requests and what they cost, for both versions (money, not counts)."""

    canary_requests: float
    canary_amount: float
    stable_requests: float = 0.0
    stable_amount: float = 0.0

    def __post_init__(self) -> None:
        for name in ("canary_requests", "canary_amount", "stable_requests", "stable_amount"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite amount >= 0, not {value}")


BETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7)


@dataclass(frozen=True)
class MeanTest(_Mixture):
    """A limit on a mean (cost per request <= m) as a test of the canary's own requests.

    A cost is not a count of independent bad events (an answer brings hundreds of tokens), so
    it is tested by betting: each reading's mean cost per request ``x`` (the batch's cost over
    its requests; each request's expected cost is at most ``m`` under the null, whatever their
    number) multiplies the wealth by ``1 + lam * (x/m - 1)``. That factor is nonnegative for
    any ``x >= 0`` and ``lam < 1`` and has expectation at most 1 under the null, so the average
    over a fixed set of bets is a nonnegative supermartingale (Waudby-Smith and Ramdas, "
    Estimating means of bounded random variables by betting", JRSS B 2024, for the method;
    here only nonnegativity is needed). One bet per reading: the test gains with the number of
    readings, not of requests.
    """

    limit: float
    alpha: float = 0.01
    bets: tuple[float, ...] = BETS
    min_samples: int = 0

    def __post_init__(self) -> None:
        if not self.limit > 0:
            raise ValueError("the limit must be > 0")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be within (0, 1)")
        if not self.bets or any(not 0 < b < 1 for b in self.bets):
            raise ValueError("bets must be within (0, 1)")

    def update(self, state: Evidence, amount: Amount) -> Evidence:
        """The state after one reading (canary_bad holds the canary's cost so far)."""
        if len(state.log_e) != len(self.bets):
            state = Evidence.start(self.bets)
        n, cost = amount.canary_requests, amount.canary_amount
        seen = _counted(state, n, cost, amount.stable_requests, amount.stable_amount)
        if n <= 0:
            return seen
        x = cost / n / self.limit
        log_e = tuple(
            min(LOG_CAP, v + math.log1p(b * (x - 1)))
            for v, b in zip(state.log_e, self.bets, strict=True)
        )
        return replace(seen, log_e=log_e)

    def readings_needed(self, ratio: float) -> float:
        """Readings after which a canary costing ``ratio`` times the limit, with no noise, is
        rejected: a lower bound on what noise will take (shown as an estimate)."""
        target = -math.log(self.alpha) + math.log(len(self.bets))
        gains = [math.log1p(b * (ratio - 1)) for b in self.bets]
        best = max(gains)
        return math.inf if best <= 0 else math.ceil(target / best)


LOG_CAP = 1e6  # a log e-value past any boundary; keeps a zero-share limit finite


def _above(p0: float, ratio: float) -> float:
    """A share ``ratio`` times p0, or, where that passes 1, as far towards 1."""
    if p0 <= 0:
        return min(1.0, 1e-6 * ratio)
    return p0 * ratio if p0 * ratio < 1 else 1 - (1 - p0) / ratio


def _log_ratio(p0: float, p1: float, bad: float, total: float) -> float:
    """log of (p1/p0)^bad ((1-p1)/(1-p0))^(total-bad)."""
    good = total - bad
    if p0 <= 0:
        return LOG_CAP if bad > 0 else good * math.log(1 - p1)
    return bad * math.log(p1 / p0) + (good * math.log((1 - p1) / (1 - p0)) if good else 0.0)


def _log_mean_exp(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _needed(moments: Sequence[tuple[float, float]], alpha: float, power: float) -> float:
    """The smallest n at which the mixture rejects with probability ``power``.

    Per alternative, the log likelihood ratio after n requests is about normal with mean
    ``n*g`` and variance ``n*v`` (the moments per request). The mixture's log e-value is at
    least one alternative's minus log(len(grid)), so n solves ``n*g - z*sqrt(n*v) = T`` with
    ``T = log(1/alpha) + log(len(grid))``; the best alternative's n is taken. Conservative:
    the mixture itself rejects a little sooner.
    """
    target = -math.log(alpha) + math.log(max(1, len(moments)))
    z = NormalDist().inv_cdf(power)
    best = math.inf
    for g, v in moments:
        if g <= 0:
            continue
        root = (z * math.sqrt(v) + math.sqrt(z * z * v + 4 * g * target)) / (2 * g)
        best = min(best, math.ceil(root * root))
    return best


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
