"""A bound on detection speed: a likelihood-ratio test that knows the true bad shares.

For latency x2 and the error regressions, the canary's bad share before (``p0``, what the
stable version has) and after (``p1``) is known exactly from the generator. The likelihood
ratio of the canary's own counts, ``(p1/p0)^bad ((1-p1)/(1-p0))^(n-bad)``, is a martingale when
the canary is no worse, so rejecting when it reaches 1/alpha is a valid one-sided sequential
test (Wald's SPRT without its lower boundary) at the same alpha as the spec's. No real test can
know ``p0`` and ``p1`` in advance; this one shows how fast any test could be on these counts.

The counts are those an instant query returns at the spec's count readings: per pod, the
latest sample at or before the reading, differenced through restarts, summed per version,
from a snapshot when the canary starts. For latency the bad events are requests over a bucket
bound; the report uses the bound the engine chose in the same replay.
"""

import math
from collections.abc import Callable, Sequence

from bench.replay_detection.distributions import SECONDS_BOUNDS, Behaviour, bad_share
from bench.replay_detection.history import History, Pod, Slot, reading_at

NEVER = math.inf
BadAndTotal = Callable[[list[float]], tuple[float, float]]


def _errors(r: list[float]) -> tuple[float, float]:
    return r[Slot.FAILED], r[Slot.OK] + r[Slot.FAILED]


def _over(bound_index: int) -> BadAndTotal:
    """Requests over the bound: all of them minus both outcomes' buckets at the bound."""

    def count(r: list[float]) -> tuple[float, float]:
        total = r[Slot.OK] + r[Slot.FAILED]
        under = r[Slot.LATENCY_OK + bound_index] + r[Slot.LATENCY_FAILED + bound_index]
        return total - under, total

    return count


def rejection_time(
    history: History, every: float, counter: BadAndTotal, p0: float, p1: float, alpha: float
) -> float:
    """Seconds from the canary's start to the first reading at which the test rejects."""
    if not 0.0 < p0 < p1 < 1.0:
        return NEVER
    win, lose = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
    boundary = math.log(1.0 / alpha)
    canary = [p for p in history.pods if p.canary]
    start = history.timeline.warmup
    last: dict[str, tuple[float, float, int]] = {}

    def read(pod: Pod, t: float) -> tuple[float, float, int] | None:
        seen = reading_at(pod, t)
        return None if seen is None else (*counter(seen[0]), seen[1])

    for pod in canary:
        if (first := read(pod, start)) is not None:
            last[pod.name] = first
    llr = 0.0
    t = start + every
    while t <= history.timeline.end:
        for pod in canary:
            seen = read(pod, t)
            if seen is None:
                continue
            bad, total, life = seen
            before = last.get(pod.name)
            if before is None or before[2] != life:
                new_bad, new_total = bad, total  # first seen, or restarted: counted from 0
            else:
                new_bad, new_total = bad - before[0], total - before[1]
            last[pod.name] = seen
            llr += new_bad * win + (new_total - new_bad) * lose
        if llr >= boundary:
            return t - start
        t += every
    return NEVER


def oracle_key(every: float, alpha: float, bound: float | None = None) -> str:
    """Where a time is kept: per count cadence and alpha, and for latency per bucket bound."""
    return f"{every:g}s@{alpha:g}" + ("" if bound is None else f">{bound:g}")


def oracle_times(
    history: History,
    stable: Behaviour,
    canary: Behaviour,
    signal: str,
    cadences: Sequence[tuple[float, float]],
) -> dict[str, float]:
    """Rejection times per (count cadence, alpha) and, for latency, per bucket bound."""
    out: dict[str, float] = {}
    for every, alpha in cadences:
        if signal == "errors":
            p0, p1 = stable.error_rate, canary.error_rate
            out[oracle_key(every, alpha)] = rejection_time(history, every, _errors, p0, p1, alpha)
        elif signal == "latency":
            for i, bound in enumerate(SECONDS_BOUNDS):
                p0, p1 = bad_share(stable, signal, bound), bad_share(canary, signal, bound)
                key = oracle_key(every, alpha, bound)
                out[key] = rejection_time(history, every, _over(i), p0, p1, alpha)
    return out
