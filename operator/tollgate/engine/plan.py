"""The step plan: which canary weights a rollout walks through, and where it pauses."""

from dataclasses import dataclass

from tollgate.api.analysis import DEFAULT_MAX_WEIGHT, AnalysisSpec
from tollgate.api.durations import seconds


@dataclass(frozen=True)
class StepPlan:
    """Weights in order (percent) and pauses keyed by weight (seconds, None = until resumed)."""

    weights: tuple[int, ...]
    pauses: dict[int, float | None]

    @property
    def max_weight(self) -> int:
        """The last (highest) weight before promotion."""
        return self.weights[-1]

    def weight_at(self, step: int) -> int:
        """Canary weight at a step: 0 before the first, then the step's weight."""
        return 0 if step <= 0 else self.weights[min(step, len(self.weights)) - 1]

    def has_pause(self, weight: int) -> bool:
        """Whether the plan pauses after the step at this weight."""
        return weight in self.pauses


def effective_max_weight(analysis: AnalysisSpec) -> int:
    """maxWeight as given, else the last explicit step, else the default."""
    if analysis.max_weight is not None:
        return analysis.max_weight
    if analysis.step_weights:
        return analysis.step_weights[-1]
    return DEFAULT_MAX_WEIGHT


def plan_for(analysis: AnalysisSpec) -> StepPlan:
    """The step plan of a (valid) analysis spec."""
    if analysis.step_weights:
        weights = tuple(analysis.step_weights)
    else:
        top = effective_max_weight(analysis)
        weights = tuple(range(analysis.step_weight, top + 1, analysis.step_weight))
        if not weights or weights[-1] != top:
            weights = (*weights, top)
    pauses = {
        p.weight: (seconds(p.duration) if p.duration is not None else None)
        for p in analysis.pauses or ()
    }
    return StepPlan(weights=weights, pauses=pauses)


def last_step_budget(analysis: AnalysisSpec) -> float:
    """Seconds the last step may wait for evidence: the progress deadline, or the evidence
    deadline when longer (engine/decide.py extends only while the traffic can make it)."""
    return max(seconds(analysis.progress_deadline), seconds(analysis.evidence_deadline))


def weighted_seconds_left(analysis: AnalysisSpec, step: int, spent: float) -> float:
    """What the rest of the plan can still show a canary: the sum over the remaining steps of
    weight (percent) x seconds, each step lasting its analyses (and timed pause), the last one
    up to its evidence budget, ``spent`` seconds of the current step already gone.

    Times the canary's requests per weight-percent-second, it is the most evidence the plan
    can still gather (pauses until resumed count as nothing).
    """
    plan = plan_for(analysis)
    interval = seconds(analysis.interval)
    total = 0.0
    for at in range(max(1, step), len(plan.weights) + 1):
        weight = plan.weight_at(at)
        last = at == len(plan.weights)
        length = max(
            interval * analysis.analyses_per_step,
            last_step_budget(analysis) if last else 0.0,
        )
        length += plan.pauses.get(weight) or 0.0
        if at == step:
            length = max(0.0, length - spent)
        total += weight * length
    return total
