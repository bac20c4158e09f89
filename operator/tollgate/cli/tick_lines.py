"""How one replayed tick reads: every check's verdict and values, the evidence, the decision.

Values are shown in the units the engine's own messages use (milliseconds for latency and TTFT,
percent for error rates, burn rate for the error budget), so a tick line and the Event of the
same reading agree.
"""

import math
from datetime import datetime

from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import EvidenceStatus, RolloutStatus, Verdict
from tollgate.cli.replay import Tick
from tollgate.engine.checks import CheckRule, Unit, fmt, rules_for

OBJECTIVE_UNITS = {"latency": Unit.SECONDS, "ttft": Unit.SECONDS}


def timestamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def value_text(value: float | None, rule: CheckRule | None) -> str:
    """A reading's value in its check's unit (the error budget as a burn rate)."""
    if value is None or not math.isfinite(value):
        return "-"
    if rule is None:
        return f"{value:.4g}"
    return fmt(value * rule.scale, rule.unit)


def _check_of(test: str) -> str:
    """The check a test belongs to (``latency.max`` is the latency check's absolute limit)."""
    return test.split(".", 1)[0]


def objective_text(e: EvidenceStatus) -> str:
    if e.objective is None:
        return ""
    unit = OBJECTIVE_UNITS.get(_check_of(e.name))
    shown = fmt(e.objective, unit) if unit is not None else f"{e.objective:g} tokens"
    return f" over {shown}"


def verdict_text(check: str, status: RolloutStatus, judged: bool) -> str:
    """The threshold verdict when this tick judged one; else what the tests or burn say."""
    if judged:
        for c in status.checks:
            if c.name == check:
                return c.verdict.value
    tests = [e for e in status.evidence if _check_of(e.name) == check]
    if tests:
        worst = next((e for e in tests if e.verdict is Verdict.FAIL), tests[0])
        return f"{worst.verdict.value} (sequential)"
    if check == "errorBudget" and status.budget is not None:
        return f"{status.budget.verdict.value} (burn)"
    return "not judged"


def describe_tick(spec: RolloutSpec, tick: Tick) -> str:
    """One tick: the checks' verdicts and values, the running evidence, the decision."""
    decision = tick.decision
    status = decision.status
    judged = status.last_analysis_at == tick.at
    rules = {r.name: r for r in rules_for(spec)}
    parts = []
    for r in tick.analysis.readings or ():
        if r.error:
            parts.append(f"{r.check} Error ({r.error})")
            continue
        rule = rules.get(r.check)
        parts.append(
            f"{r.check} {verdict_text(r.check, status, judged)} "
            f"{value_text(r.canary, rule)} vs {value_text(r.stable, rule)} "
            f"(n={r.canary_samples}/{r.stable_samples})"
        )
    phase = status.phase.value if status.phase else "-"
    read = "; ".join(parts) if tick.analysis.readings is not None else "counts only"
    line = f"{timestamp(tick.at)}  {phase} {status.canary_weight}%  {read}"
    if tick.analysis.counts and status.evidence:
        line += "  | sequential " + ", ".join(
            f"{e.name} {e.verdict.value} e={e.e_value:.3g}/{e.boundary:.3g}{objective_text(e)}"
            for e in status.evidence
        )
    if tick.analysis.counts and status.budget is not None and status.budget.tiers:
        tiers = ", ".join(
            f"{t.long_burn:.3g}x/{t.short_burn:.3g}x over {t.long}/{t.short}"
            for t in status.budget.tiers
        )
        line += f"  | burn {tiers}"
    return f"{line.rstrip()}\n    -> {decision.reason}: {decision.message}"
