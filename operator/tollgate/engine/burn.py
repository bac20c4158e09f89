"""Multi-window, multi-burn-rate error-budget checks on the canary's own requests.

The Site Reliability Workbook pages when the budget burns too fast over a long window (the burn
is real) and a short one (it is still going on). Computed on the whole service, a canary at 5%
of traffic dilutes its own burn 20 times, so here every window holds only the canary's
requests. The windows are sums of the canary's readings kept in status. A reading covers the
time since the one before; a reading that straddles a window's edge counts in proportion to
its overlap, so a short window shorter than one reading is that reading's burn rate. Readings
are merged as they age, each to a span at most a quarter of its age: a few dozen entries cover
hours, and a window's edge is placed within a quarter of the window.

Two windows above a rate on a few dozen requests are noise, not a burn: each tier is also an
anytime-valid test (``LimitTest``) that the canary's error share is above the share the tier's
rate allows, over every canary request of the rollout. A tier fires only when its test rejects
and both windows burn too fast, so its false-alarm rate is the test's share of alpha. A window
longer than the rollout so far is reported as what it covered, never as the window's length.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from tollgate.api.checks import ErrorBudgetCheck
from tollgate.api.durations import seconds
from tollgate.api.status import BudgetStatus, BurnTierStatus, Verdict
from tollgate.engine.sequential import Batch, Evidence, LimitTest

MERGE_FRACTION = 0.25


@dataclass(frozen=True)
class Slice:
    """Failed and total canary requests counted over (end - span, end], seconds since start."""

    end: float
    span: float
    bad: float
    total: float

    def row(self) -> list[float]:
        return [round(self.end, 3), round(self.span, 3), self.bad, self.total]

    @classmethod
    def of(cls, row: Sequence[float]) -> "Slice":
        end, span, bad, total = [*row, 0.0, 0.0, 0.0, 0.0][:4]
        return cls(end, max(0.0, span), bad, total)


def burn(bad: float, total: float, objective_percent: float) -> float:
    """Error-budget burn rate: the error ratio over the ratio the objective allows."""
    return 0.0 if total <= 0 else (bad / total) / (1 - objective_percent / 100.0)


def add(slices: Sequence[Slice], new: Slice, keep: float) -> list[Slice]:
    """The readings with ``new`` appended, merged by age and cut to the last ``keep`` seconds."""
    now = new.end
    kept = [s for s in slices if s.end > now - keep - s.span and s.end <= now] + [new]
    out: list[Slice] = []
    for s in kept:
        if out:
            last = out[-1]
            span = s.end - (last.end - last.span)
            if s.end < now and span <= MERGE_FRACTION * (now - s.end):
                out[-1] = Slice(s.end, span, last.bad + s.bad, last.total + s.total)
                continue
        out.append(s)
    return out


def window(slices: Sequence[Slice], now: float, seconds: float) -> tuple[float, float]:
    """(failed, total) over the last ``seconds``; a slice on the edge counts by its overlap."""
    start = now - seconds
    bad = total = 0.0
    for s in slices:
        if s.end <= start:
            continue
        begin = s.end - s.span
        share = 1.0 if s.span <= 0 or begin >= start else (s.end - start) / s.span
        bad += s.bad * share
        total += s.total * share
    return bad, total


@dataclass(frozen=True)
class BudgetUpdate:
    """The budget status after one reading, and the tier that fired (None: none did)."""

    status: BudgetStatus
    fired: BurnTierStatus | None


def span_text(seconds_: float) -> str:
    """A span of seconds as people write it: 45s, 4m30s, 2h5m."""
    total = round(seconds_)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def _over(window_: str, covered: float) -> str:
    """A window as far as data covers it: never longer than the rollout so far."""
    if covered >= seconds(window_):
        return window_
    return f"the rollout's {span_text(covered)} (window {window_})"


def _tier_text(t: BurnTierStatus) -> str:
    return (
        f"{t.max_burn_rate:g}x tier: {t.long_burn:.3g}x over {_over(t.long, t.covered)} "
        f"({t.long_requests:g} requests), {t.short_burn:.3g}x over {_over(t.short, t.covered)}, "
        f"e-value {t.e_value:.3g} vs {t.boundary:.3g}"
    )


def tier_test(check: ErrorBudgetCheck, rate: float, test: LimitTest) -> LimitTest:
    """The tier's test: the canary's error share against what burning at ``rate`` allows."""
    share = min(1.0, rate * (1 - check.objective_percent / 100.0))
    return LimitTest(p0=share, alpha=test.alpha, grid=test.grid, min_samples=test.min_samples)


def update_budget(
    check: ErrorBudgetCheck,
    before: BudgetStatus | None,
    batch: Batch,
    elapsed: float,
    test: LimitTest,
    query: str | None,
) -> BudgetUpdate:
    """Add the canary's reading at ``elapsed`` seconds into the rollout and judge every tier.

    ``test`` carries the alpha, grid and minimum sample each tier's test uses (its share comes
    from the tier). A tier fires when its test rejects and both windows burn faster than its
    rate, with some canary requests in the short window.
    """
    before = before or BudgetStatus()
    slices = [Slice.of(r) for r in before.readings]
    start = slices[-1].end if slices else 0.0
    new = Slice(elapsed, max(0.0, elapsed - start), batch.canary_bad, batch.canary_total)
    windows = [(w, seconds(w.long), seconds(w.short)) for w in check.windows]
    slices = add(slices, new, max(long for _, long, _ in windows))
    tiers: list[BurnTierStatus] = []
    fired: BurnTierStatus | None = None
    kept = {(t.long, t.short, t.max_burn_rate): t for t in before.tiers}
    for w, long, short in windows:
        long_bad, long_total = window(slices, elapsed, long)
        short_bad, short_total = window(slices, elapsed, short)
        guard = tier_test(check, w.max_burn_rate, test)
        old = kept.get((w.long, w.short, w.max_burn_rate))
        state = Evidence.start(guard.grid)
        if old is not None and len(old.log_e) == len(guard.grid):
            state = Evidence(tuple(old.log_e), canary_total=before.canary_total)
        state = guard.update(state, batch)
        tier = BurnTierStatus(
            long=w.long,
            short=w.short,
            max_burn_rate=w.max_burn_rate,
            long_burn=round(burn(long_bad, long_total, check.objective_percent), 4),
            short_burn=round(burn(short_bad, short_total, check.objective_percent), 4),
            long_requests=round(long_total, 3),
            short_requests=round(short_total, 3),
            covered=round(min(long, elapsed), 3),
            e_value=round(guard.e_value(state), 6),
            boundary=round(guard.boundary, 6),
            log_e=list(state.log_e),
        )
        tiers.append(tier)
        too_fast = short_total > 0 and min(tier.long_burn, tier.short_burn) > w.max_burn_rate
        if guard.rejects(state) and too_fast and fired is None:
            fired = tier
    bad, total = before.canary_bad + batch.canary_bad, before.canary_total + batch.canary_total
    objective = f"objective {check.objective_percent:g}%"
    if fired is not None:
        verdict = Verdict.FAIL
        message = (
            f"failed: the canary burns its error budget too fast: {_tier_text(fired)}, both "
            f"above {fired.max_burn_rate:g}x ({objective}; {bad:g} of {total:g} requests failed)"
        )
    elif total < test.min_samples:
        verdict = Verdict.INCONCLUSIVE
        message = (
            f"waiting: {total:g} of the {test.min_samples} canary requests needed (minSamples)"
        )
    else:
        verdict = Verdict.PASS
        message = "passing: " + "; ".join(map(_tier_text, tiers)) + f" ({objective})"
    status = BudgetStatus(
        verdict=verdict,
        message=message,
        query=query or before.query,
        canary_bad=bad,
        canary_total=total,
        tiers=tiers,
        readings=[s.row() for s in slices],
    )
    return BudgetUpdate(status, fired)
