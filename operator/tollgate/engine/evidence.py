"""The tests behind every built-in check, and how one reading moves their evidence.

Every limit a user sets on a count-shaped check becomes one anytime-valid test:
- an absolute limit (``latency.maxMilliseconds``, ``errorRate.maxPercent``,
  ``errorBudget.maxBurnRate``) asks whether the canary's own share of bad requests is above
  what the limit allows (a ``LimitTest``; test name ``<check>.max``);
- a relative limit (``maxIncreasePercent``, ``maxIncreasePoints``) asks whether the canary's
  bad rate is above the stable's times the tolerated ratio (a ``SequentialTest``; test name
  ``<check>``).
Bad means: an error; a request slower than the test's objective (latency, TTFT); an answer
longer than the objective (cost, with a token histogram). The rollout's alpha is split evenly
over every test and every burn-rate tier (Bonferroni), so the chance that a version within
every limit is ever rolled back by the analysis stays under alpha, however often it looks.
"""

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from tollgate.api.analysis import SequentialSpec
from tollgate.api.metrics import MetricPreset
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import EvidenceKind, EvidenceStatus, Verdict
from tollgate.engine.objectives import stable_key
from tollgate.engine.plan import weighted_seconds_left
from tollgate.engine.sequential import (
    Amount,
    Batch,
    Evidence,
    LimitTest,
    MeanTest,
    SequentialTest,
    grid_for,
)

LIMIT = ".max"


@dataclass(frozen=True)
class PlannedTest:
    """One test of the spec: its name in status, its check, the counts it reads, its null."""

    name: str
    check: str
    counts: str
    share: float | None = None  # a limit test: the highest bad share the limit allows
    points: float | None = None  # errorRate relative: tolerated increase of the error share
    mean: float | None = None  # a mean test: the highest mean per request (cost)

    @property
    def kind(self) -> EvidenceKind:
        if self.mean is not None:
            return EvidenceKind.MEAN
        return EvidenceKind.RELATIVE if self.share is None else EvidenceKind.LIMIT


def planned_tests(spec: RolloutSpec) -> tuple[PlannedTest, ...]:
    """Every test the spec's limits call for, in a fixed order."""
    c = spec.checks
    if c is None:
        return ()
    tests: list[PlannedTest] = []
    cost = c.cost_per_request
    if cost is not None and cost.max_increase_percent is not None and answer_lengths(spec):
        tests.append(PlannedTest("costPerRequest", "costPerRequest", "costPerRequest"))
    if cost is not None and cost.max_per_request is not None and cost.max_per_request > 0:
        name = "costPerRequest" + LIMIT
        tests.append(PlannedTest(name, "costPerRequest", name, mean=cost.max_per_request))
    if c.error_budget is not None:
        b = c.error_budget
        allowed = min(1.0, b.max_burn_rate * (1 - b.objective_percent / 100))
        tests.append(PlannedTest("errorBudget" + LIMIT, "errorBudget", "errorBudget", allowed))
    if c.error_rate is not None:
        er = c.error_rate
        if er.max_increase_points is not None:
            tests.append(
                PlannedTest(
                    "errorRate", "errorRate", "errorRate", None, er.max_increase_points / 100
                )
            )
        if er.max_percent is not None:
            tests.append(
                PlannedTest("errorRate" + LIMIT, "errorRate", "errorRate", er.max_percent / 100)
            )
    for name, latency in (("latency", c.latency), ("ttft", c.ttft)):
        if latency is None:
            continue
        if latency.max_increase_percent is not None:
            tests.append(PlannedTest(name, name, name))
        if latency.max_milliseconds is not None:
            tests.append(PlannedTest(name + LIMIT, name, name + LIMIT, 1 - latency.quantile))
    return tuple(tests)


def answer_lengths(spec: RolloutSpec) -> bool:
    """Whether the metrics have a histogram of output tokens per request, which cost's test
    counts: every preset but plain `prometheus` has one, and `names` can name it (the adapter's
    families say the same; a test keeps them in step). Without it cost is judged per window."""
    names = spec.metrics.names
    named = names is not None and names.output_tokens_per_request is not None
    return named or spec.metrics.preset is not MetricPreset.PROMETHEUS


def tests_of(spec: RolloutSpec, check: str) -> tuple[PlannedTest, ...]:
    """The tests that judge one check."""
    return tuple(t for t in planned_tests(spec) if t.check == check)


def looks(spec: RolloutSpec) -> int:
    """How many tests share the rollout's alpha: every planned test and every burn tier."""
    budget = spec.checks.error_budget if spec.checks else None
    return len(planned_tests(spec)) + (len(budget.windows) if budget is not None else 0)


def split_alpha(spec: RolloutSpec) -> float:
    """Each test's false-alarm rate: the rollout's alpha over all tests and tiers."""
    return spec.analysis.sequential.alpha / max(1, looks(spec))


def limit_test(settings: SequentialSpec, alpha: float, share: float) -> LimitTest:
    return LimitTest(
        p0=share, alpha=alpha, grid=grid_for(settings.min_effect), min_samples=settings.min_samples
    )


def relative_test(settings: SequentialSpec, alpha: float, psi0: float) -> SequentialTest:
    return SequentialTest(
        alpha=alpha,
        psi0=psi0,
        grid=grid_for(settings.min_effect),
        min_samples=settings.min_samples,
    )


def _rate(bad: float, total: float) -> str:
    return f"{bad:g}/{total:g} ({100 * bad / total:.2f}%)" if total else f"{bad:g}/0"


def counts_text(e: EvidenceStatus) -> str:
    """The counts the test has seen: the canary's, and for a relative test the stable's."""
    if e.kind is EvidenceKind.MEAN:
        each = f" ({e.canary_bad / e.canary_total:.4g} per request)" if e.canary_total else ""
        return f"canary cost {e.canary_bad:.4g} over {e.canary_total:g} requests{each}"
    canary = f"canary {_rate(e.canary_bad, e.canary_total)}"
    if e.kind is EvidenceKind.LIMIT:
        return canary
    return f"{canary} vs stable {_rate(e.stable_bad, e.stable_total)}"


def null_text(e: EvidenceStatus) -> str:
    """What the test's null hypothesis allows, in words."""
    if e.null is None:
        return ""
    if e.kind is EvidenceKind.LIMIT:
        return f"bad share <= {100 * e.null:.4g}%"
    if e.kind is EvidenceKind.MEAN:
        return f"mean cost per request <= {e.null:.4g}"
    return f"canary/stable bad rate <= {e.null:.4g}"


def objective_text(e: EvidenceStatus) -> str:
    """Which requests count as bad: over the canary's bound (and the stable's, when apart)."""
    if e.objective is None:
        return ""
    tokens = e.name.startswith("costPerRequest")

    def bound(value: float) -> str:
        return f"{value:g} tokens" if tokens else f"{1000 * value:.4g}ms"

    what = "answers" if tokens else "requests"
    if e.stable_objective is None:
        return f"{what} over {bound(e.objective)}"
    return f"canary {what} over {bound(e.objective)} vs stable's over {bound(e.stable_objective)}"


def e_text(e_value: float, boundary: float) -> str:
    """The e-value against its boundary, with the digits that tell them apart."""
    for digits in (3, 6, 9):
        shown, limit = f"{e_value:.{digits}g}", f"{boundary:.{digits}g}"
        if shown != limit or e_value == boundary:
            break
    sign = ">=" if e_value >= boundary else "<"
    return f"e-value {shown} {sign} {limit}"


def explain_evidence(e: EvidenceStatus) -> str:
    """One line: the test, what it counts, the counts, the statistic and its boundary."""
    what = ", ".join(x for x in (objective_text(e), null_text(e)) if x)
    return (
        f"{e.name}{f' ({what})' if what else ''}: {counts_text(e)}, {e_text(e.e_value, e.boundary)}"
    )


@dataclass(frozen=True)
class Updated:
    """The evidence after one reading, and the tests that rejected."""

    evidence: list[EvidenceStatus]
    rejected: list[EvidenceStatus]


def _state(before: EvidenceStatus | None, grid: Sequence[float]) -> Evidence:
    if before is None or len(before.log_e) != len(grid):
        return Evidence.start(grid)
    c = before.carry if len(before.carry) == 4 else [0.0, 0.0, 0.0, 0.0]
    return Evidence(
        tuple(before.log_e),
        before.canary_total,
        before.canary_bad,
        before.stable_total,
        before.stable_bad,
        (c[0], c[1], c[2], c[3]),
    )


def _psi0(planned: PlannedTest, before: EvidenceStatus | None) -> float:
    """The ratio of bad rates the tolerance allows, fixed before this reading's counts.

    For errorRate's tolerated points it is ``1 + points / stable share`` at the stable's share
    seen so far (a predictable plug-in; an A/A canary is always inside it). For latency, TTFT
    and cost it is 1: the tolerance lives in the pair of bounds (engine/objectives.py).
    """
    if planned.points is None or planned.points <= 0:
        return 1.0
    bad, total = (before.stable_bad, before.stable_total) if before else (0.0, 0.0)
    return 1.0 + planned.points / ((bad + 0.5) / (total + 1.0))


def fixed_objectives(evidence: Sequence[EvidenceStatus]) -> dict[str, float]:
    """The bounds the tests were fixed at, as the count reader takes them back."""
    out = {e.name: e.objective for e in evidence if e.objective is not None}
    out |= {stable_key(e.name): e.stable_objective for e in evidence if e.stable_objective}
    return out


def _verdict(
    rejects: bool, seen: float, needed: float, min_samples: int, e: str
) -> tuple[Verdict, str]:
    if rejects:
        return Verdict.FAIL, f"failed: {e}: more bad requests than the null allows, at this alpha"
    if seen < min_samples:
        return Verdict.INCONCLUSIVE, (
            f"waiting: {seen:g} of the {min_samples} requests needed before a verdict "
            f"(minSamples); {e}"
        )
    resolved = "" if seen >= needed else f"; {_needed_text(needed)} to resolve the limit"
    return Verdict.PASS, f"passing: {e}: no evidence so far of a breach{resolved}"


def _needed_text(needed: float) -> str:
    return "no sample size" if math.isinf(needed) else f"{needed:,.0f} canary requests needed"


def update_evidence(
    spec: RolloutSpec,
    kept: Sequence[EvidenceStatus],
    counts: Mapping[str, Batch],
    queries: Mapping[str, str],
    objectives: Mapping[str, float],
    amounts: Mapping[str, Amount] | None = None,
    untestable: Mapping[str, str] | None = None,
) -> Updated:
    """Feed one reading's counts (and amounts) to every test (their state comes from status)."""
    settings = spec.analysis.sequential
    alpha = split_alpha(spec)
    grid = grid_for(settings.min_effect)
    by_name = {e.name: e for e in kept}
    rejected: list[EvidenceStatus] = []
    for planned in planned_tests(spec):
        why = (untestable or {}).get(planned.name)
        if why is not None and planned.name not in by_name:
            by_name[planned.name] = EvidenceStatus(
                name=planned.name,
                kind=planned.kind,
                verdict=Verdict.INCONCLUSIVE,
                message=f"not counted: {why}; this limit is judged on the analysis window",
                e_value=1.0,
                boundary=round(1 / alpha, 6),
            )
            continue
        amount = (amounts or {}).get(planned.counts)
        batch = counts.get(planned.counts)
        if batch is None and amount is None:
            continue
        before = by_name.get(planned.name)
        if planned.mean is not None:
            if amount is None:
                continue
            null = planned.mean
            mt = MeanTest(null, alpha, min_samples=settings.min_samples)
            state = mt.update(_state(before, mt.bets), amount)
            rejects, boundary = mt.rejects(state), mt.boundary
            e_value, seen = mt.e_value(state), state.canary_total
            readings = mt.readings_needed(settings.detect)
            fed = (before.readings if before else 0) + 1
            needed = readings * state.canary_total / fed
        elif batch is None:
            continue
        elif planned.share is not None:
            state = _state(before, grid)
            null = planned.share
            lt = limit_test(settings, alpha, null)
            state = lt.update(state, batch)
            rejects, boundary = lt.rejects(state), lt.boundary
            e_value, seen = lt.e_value(state), state.canary_total
            needed = lt.needed(settings.detect, settings.power)
        else:
            state = _state(before, grid)
            null = _psi0(planned, before)
            rt = relative_test(settings, alpha, null)
            state = rt.update(state, batch)
            rejects, boundary = rt.rejects(state), rt.boundary
            e_value, seen = rt.e_value(state), min(state.canary_total, state.stable_total)
            needed = rt.needed(settings.detect, *_shares(state), settings.power)
        e_value = round(e_value, 6)
        verdict, message = _verdict(
            rejects, seen, needed, settings.min_samples, e_text(e_value, boundary)
        )
        objective = (
            before.objective if before and before.objective else objectives.get(planned.counts)
        )
        stable_objective = (
            before.stable_objective
            if before and before.stable_objective
            else objectives.get(stable_key(planned.counts))
        )
        by_name[planned.name] = EvidenceStatus(
            name=planned.name,
            kind=planned.kind,
            verdict=verdict,
            message=message,
            query=queries.get(planned.counts) or (before.query if before else None),
            e_value=e_value,
            boundary=round(boundary, 6),
            canary_bad=state.canary_bad,
            canary_total=state.canary_total,
            stable_bad=state.stable_bad,
            stable_total=state.stable_total,
            objective=objective,
            stable_objective=stable_objective if stable_objective != objective else None,
            null=round(null, 6),
            readings=(before.readings if before else 0) + 1,
            needed=None if math.isinf(needed) else math.ceil(needed),
            log_e=list(state.log_e),
            carry=list(state.carry) if any(state.carry) else [],
        )
        if verdict is Verdict.FAIL:
            rejected.append(by_name[planned.name])
    wanted = {t.name for t in planned_tests(spec)}
    return Updated([by_name[n] for n in sorted(by_name) if n in wanted], rejected)


def _shares(state: Evidence) -> tuple[float, float]:
    """The stable's bad share and the canary's share of requests seen so far."""
    n = state.canary_total + state.stable_total
    stable = (state.stable_bad + 0.5) / (state.stable_total + 1.0)
    return stable, (state.canary_total / n if n > 0 else 0.0)


def unresolved(
    spec: RolloutSpec, evidence: Sequence[EvidenceStatus], skip: Collection[str] = ()
) -> list[str]:
    """The tests that have not yet seen the sample that resolves their limit, in words
    (``skip``: tests the metrics cannot count, whose limits the window judges)."""
    by_name = {e.name: e for e in evidence}
    out: list[str] = []
    for planned in planned_tests(spec):
        if planned.name in skip:
            continue
        e = by_name.get(planned.name)
        if e is None:
            out.append(f"{planned.name}: no counts yet")
        elif e.needed is None:
            out.append(f"{planned.name}: the traffic so far cannot resolve it")
        elif e.canary_total < e.needed:
            out.append(f"{planned.name}: {e.canary_total:,.0f} of {e.needed:,.0f} canary requests")
    return out


def shortfall(
    spec: RolloutSpec, evidence: Sequence[EvidenceStatus], skip: Collection[str] = ()
) -> float | None:
    """The most canary requests any test still needs before its limit is resolved (0 when
    none does); None when some test has no counts yet or no sample can resolve it."""
    by_name = {e.name: e for e in evidence}
    most = 0.0
    for planned in planned_tests(spec):
        if planned.name in skip:
            continue
        e = by_name.get(planned.name)
        if e is None or e.needed is None:
            return None
        most = max(most, e.needed - e.canary_total)
    return most


@dataclass(frozen=True)
class Resolution:
    """Whether a limit test can be resolved by the plan at a given traffic."""

    name: str
    needed: float  # canary requests (inf: none suffice)
    reachable: float  # canary requests the whole plan shows at that traffic

    @property
    def enough(self) -> bool:
        return self.needed <= self.reachable


def resolutions(spec: RolloutSpec, requests_per_second: float) -> list[Resolution]:
    """For each limit test: the sample it needs and what the plan gives at this total traffic.

    Relative tests are left out: what they need depends on the stable's rate, which only the
    rollout sees (status shows it as ``needed``).
    """
    settings = spec.analysis.sequential
    alpha = split_alpha(spec)
    per_weight_second = requests_per_second / 100.0
    reachable = per_weight_second * weighted_seconds_left(spec.analysis, 1, 0.0)
    return [
        Resolution(
            t.name,
            limit_test(settings, alpha, t.share).needed(settings.detect, settings.power),
            reachable,
        )
        for t in planned_tests(spec)
        if t.share is not None
    ]
