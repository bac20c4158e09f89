"""Exact Poisson, binomial and multinomial draws from ``random.Random``, in constant time.

A replay draws about a hundred thousand requests per version, a thousand replays per scenario:
one random number per request would take an hour in Python. These draw a whole scrape's counts
at once, exactly (no normal approximation, which would distort the tails that false-alarm rates
live in): small means by inversion, large ones by Hormann's transformed rejection with squeeze
(BTRS for the binomial, PTRS for the Poisson; W. Hormann, "The generation of binomial random
variates", J. Stat. Comput. Simul. 46, 1993, and "The transformed rejection method for
generating Poisson random variables", Insurance: Mathematics and Economics 12, 1993), the
algorithms behind NumPy's generators and Python 3.12's ``binomialvariate``.
"""

import math
import random
from collections.abc import Sequence

_SMALL = 10.0  # below this mean, inversion takes fewer steps than the rejection set-up


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw with the given mean."""
    if not (math.isfinite(mean) and mean >= 0.0):
        raise ValueError(f"poisson mean must be finite and >= 0, not {mean}")
    if mean < _SMALL:
        limit, product, count = math.exp(-mean), rng.random(), 0
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return _ptrs(rng, mean)


def _ptrs(rng: random.Random, lam: float) -> int:
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_inv_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_inv_alpha - math.log(a / (us * us) + b) <= (
            -lam + k * loglam - math.lgamma(k + 1.0)
        ):
            return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: successes among ``n`` trials of probability ``p``."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < _SMALL:
        return _inversion(rng, n, p)
    return _btrs(rng, n, p)


def _inversion(rng: random.Random, n: int, p: float) -> int:
    q = 1.0 - p
    s = p / q
    a = (n + 1) * s
    r = q**n
    u = rng.random()
    x = 0
    while u > r and x < n:
        u -= r
        x += 1
        r *= a / x - s
    return x


def _btrs(rng: random.Random, n: int, p: float) -> int:
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    exact: tuple[float, float, int, float] | None = None  # set up only if the squeeze fails
    while True:
        u = rng.random() - 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = rng.random()
        if us >= 0.07 and v <= vr:
            return k
        if exact is None:
            m = math.floor((n + 1) * p)
            exact = (
                (2.83 + 5.1 / b) * spq,
                math.log(p / (1.0 - p)),
                m,
                math.lgamma(m + 1.0) + math.lgamma(n - m + 1.0),
            )
        alpha, lpq, m, h = exact
        v *= alpha / (a / (us * us) + b)
        if math.log(v) <= h - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0) + (k - m) * lpq:
            return k


def conditional_plan(probabilities: Sequence[float]) -> tuple[tuple[int, float], ...]:
    """How to draw a multinomial as binomials: (cell, chance given the cells drawn before).

    Cells go largest first, so the count left shrinks fastest and the small cells, drawn last
    from what remains, cost little. The last cell takes what is left.
    """
    total = sum(probabilities)
    if total <= 0 or any(p < 0 for p in probabilities):
        raise ValueError("probabilities must be >= 0 and not all 0")
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    plan: list[tuple[int, float]] = []
    left = 1.0
    for i in order:
        share = probabilities[i] / total
        plan.append((i, min(1.0, share / left) if left > 0 else 1.0))
        left -= share
    return tuple(plan)


def multinomial(rng: random.Random, n: int, plan: tuple[tuple[int, float], ...]) -> list[int]:
    """Counts per cell of ``n`` draws, following a :func:`conditional_plan`."""
    counts = [0] * len(plan)
    left = n
    last = len(plan) - 1
    for position, (cell, chance) in enumerate(plan):
        if left <= 0:
            break
        drawn = left if position == last else binomial(rng, left, chance)
        counts[cell] = drawn
        left -= drawn
    return counts
