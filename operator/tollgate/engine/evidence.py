"""Which checks take part in the sequential tests, and how one reading moves their evidence.

A check takes part when its signal is a count of bad events among requests: errors for
errorRate; requests over the latency or TTFT objective for latency and ttft; requests whose
answer is longer than the token objective for costPerRequest (when the metrics have a token
histogram). Token totals themselves are not counts of independent events, so cost is judged
per request. The rollout's alpha is split evenly over the checks that take part (Bonferroni),
so the chance of any false rollback stays under alpha.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tollgate.api.analysis import SequentialSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import EvidenceStatus, Verdict
from tollgate.engine.sequential import Batch, Evidence, SequentialTest, grid_for

SEQUENTIAL_CHECKS = ("costPerRequest", "errorRate", "latency", "ttft")


def sequential_checks(spec: RolloutSpec) -> tuple[str, ...]:
    """The spec's checks that take part, in a fixed order.

    Cost counts even when the metrics have no token histogram to count it from: alpha is then
    split one way more than needed, which only makes the tests more careful.
    """
    c = spec.checks
    if c is None:
        return ()
    present = {
        "costPerRequest": c.cost_per_request,
        "errorRate": c.error_rate,
        "latency": c.latency,
        "ttft": c.ttft,
    }
    return tuple(n for n in SEQUENTIAL_CHECKS if present[n] is not None)


def test_for(settings: SequentialSpec, checks: int) -> SequentialTest:
    """One check's test: the rollout's alpha shared by ``checks`` checks."""
    return SequentialTest(
        alpha=settings.alpha / max(1, checks),
        grid=grid_for(settings.min_effect),
        min_samples=settings.min_samples,
    )


def _rate(bad: float, total: float) -> str:
    return f"{bad:g}/{total:g} ({100 * bad / total:.2f}%)" if total else f"{bad:g}/0"


def counts_text(e: EvidenceStatus) -> str:
    """Both versions' bad events over requests so far."""
    return (
        f"canary {_rate(e.canary_bad, e.canary_total)} vs stable "
        f"{_rate(e.stable_bad, e.stable_total)}"
    )


def explain_evidence(e: EvidenceStatus) -> str:
    """One line: the check, the counts on both sides, the statistic and its boundary."""
    return f"{e.name}: {counts_text(e)}, e-value {e.e_value:.3g} >= {e.boundary:.3g}"


@dataclass(frozen=True)
class Updated:
    """The evidence after one reading, and the checks whose test rejected."""

    evidence: list[EvidenceStatus]
    rejected: list[EvidenceStatus]


def _state(before: EvidenceStatus | None, test: SequentialTest) -> Evidence:
    if before is None:
        return Evidence.start(test.grid)
    c = before.carry if len(before.carry) == 4 else [0.0, 0.0, 0.0, 0.0]
    return Evidence(
        tuple(before.log_e),
        before.canary_total,
        before.canary_bad,
        before.stable_total,
        before.stable_bad,
        (c[0], c[1], c[2], c[3]),
    )


def _verdict(test: SequentialTest, state: Evidence, e_value: float) -> tuple[Verdict, str]:
    seen = min(state.canary_total, state.stable_total)
    boundary = f"{test.boundary:.3g} (1/alpha, alpha {test.alpha:.3g})"
    if test.rejects(state):
        return Verdict.FAIL, (
            f"failed: e-value {e_value:.3g} reached {boundary}: the canary's share of bad "
            "events is larger than its share of requests explains, at this false-alarm rate"
        )
    if seen < test.min_samples:
        return Verdict.INCONCLUSIVE, (
            f"waiting: {seen:g} of the {test.min_samples} requests per version needed before a "
            f"verdict (minSamples); e-value {e_value:.3g}, rollback at {boundary}"
        )
    return Verdict.PASS, (
        f"passing: e-value {e_value:.3g} is below {boundary}: no evidence so far that the "
        "canary is worse than stable"
    )


def update_evidence(
    spec: RolloutSpec,
    kept: Sequence[EvidenceStatus],
    counts: Mapping[str, Batch],
    queries: Mapping[str, str],
    objectives: Mapping[str, float],
) -> Updated:
    """Feed one reading's counts to every check's test (their state comes from status)."""
    taking_part = sequential_checks(spec)
    test = test_for(spec.analysis.sequential, len(taking_part))
    by_name = {e.name: e for e in kept}
    rejected: list[EvidenceStatus] = []
    for name in taking_part:
        batch = counts.get(name)
        if batch is None:
            continue
        before = by_name.get(name)
        state = test.update(_state(before, test), batch)
        e_value = round(test.e_value(state), 6)
        verdict, message = _verdict(test, state, e_value)
        objective = before.objective if before and before.objective else objectives.get(name)
        by_name[name] = EvidenceStatus(
            name=name,
            verdict=verdict,
            message=message,
            query=queries.get(name) or (before.query if before else None),
            e_value=e_value,
            boundary=round(test.boundary, 6),
            canary_bad=state.canary_bad,
            canary_total=state.canary_total,
            stable_bad=state.stable_bad,
            stable_total=state.stable_total,
            objective=objective,
            log_e=list(state.log_e),
            carry=list(state.carry) if any(state.carry) else [],
        )
        if verdict is Verdict.FAIL:
            rejected.append(by_name[name])
    return Updated([by_name[n] for n in sorted(by_name)], rejected)
