"""When the next analysis, and the next reading of counts, of a rollout is due: shared by the
engine and by the runtime, which only asks Prometheus when the answer will be used."""

from datetime import datetime

from tollgate.api.durations import seconds
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import Phase, RolloutStatus

ANALYSED_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})


def analysis_due(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """A full interval at the current weight has passed since the step began or was judged."""
    if status.current_step == 0 or status.step_started_at is None:
        return False
    interval = seconds(spec.analysis.interval)
    base = status.step_started_at
    if status.last_analysis_at is not None and status.last_analysis_at > base:
        base = status.last_analysis_at
    slack = min(1.0, 0.05 * interval)
    return (now - base).total_seconds() >= interval - slack


def needs_metrics(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """Whether the next decision will count an analysis, so metrics should be read."""
    return (
        not spec.skip_analysis
        and not spec.suspend
        and status.phase in ANALYSED_PHASES
        and analysis_due(spec, status, now)
    )


def counts_every(spec: RolloutSpec) -> float | None:
    """Seconds between readings of counts; None when nothing uses them."""
    if spec.checks is None or spec.skip_analysis:
        return None
    if not (spec.analysis.sequential.enabled or spec.checks.error_budget is not None):
        return None
    return seconds(spec.analysis.sequential.every or spec.analysis.interval)


def counts_due(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """Counts are read at every analysis and every ``sequential.every`` in between."""
    every = counts_every(spec)
    if every is None or spec.suspend or status.phase not in ANALYSED_PHASES:
        return False
    if analysis_due(spec, status, now):
        return True
    if status.current_step == 0 or status.step_started_at is None:
        return False
    base = max(status.step_started_at, status.last_count_at or status.step_started_at)
    return (now - base).total_seconds() >= every - min(1.0, 0.05 * every)
