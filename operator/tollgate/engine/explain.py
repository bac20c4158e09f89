"""How one reading of Prometheus reads to people: a Kubernetes Event with every verdict.

Status holds the full evidence (queries, values, statistics, messages); the Event is the
short form a `kubectl describe` or an alert shows: per check its verdict, the values on both
sides, the statistic against its boundary, the samples, and the reason for the whole reading.
"""

from collections.abc import Collection, Sequence
from typing import NamedTuple

from tollgate.api.durations import seconds
from tollgate.api.status import BudgetStatus, CheckStatus, EvidenceStatus, RolloutStatus, Verdict
from tollgate.engine.burn import span_text
from tollgate.engine.evidence import LIMIT, counts_text, e_text, null_text, objective_text

EVENT_LIMIT = 1024


class Report(NamedTuple):
    """An Event's reason, message and type."""

    reason: str
    message: str
    warning: bool


WARNING = " (warning: "


def check_line(c: CheckStatus) -> str:
    """A check's verdict and values; a reading's warning is said once for the whole Event."""
    samples = f" [{c.canary_samples} vs {c.stable_samples} requests]"
    message = c.message.split(WARNING, 1)[0]
    return f"{c.name} {c.verdict.value}: {message}{samples}"


def warning_of(checks: Sequence[CheckStatus]) -> str:
    """The first reading warning among the checks (they describe the same window)."""
    for c in checks:
        if WARNING in c.message:
            return c.message.split(WARNING, 1)[1].removesuffix(")")
    return ""


def evidence_line(e: EvidenceStatus) -> str:
    what = "".join(f", {x}" for x in (null_text(e), objective_text(e)) if x)
    return (
        f"{e.name} sequential {e.verdict.value}: {counts_text(e)}{what}, "
        f"{e_text(e.e_value, e.boundary)}"
    )


def budget_line(b: BudgetStatus) -> str:
    """Each tier's long/short burn and its test, over the data the windows actually hold."""
    tiers = ", ".join(
        f"{t.max_burn_rate:g}x tier {t.long_burn:.3g}x/{t.short_burn:.3g}x "
        f"({t.long}/{t.short}), {e_text(t.e_value, t.boundary)}"
        for t in b.tiers
    )
    covered = max((t.covered for t in b.tiers), default=0.0)
    longest = max((seconds(t.long) for t in b.tiers), default=0.0)
    over = f" over the rollout's {span_text(covered)}" if b.tiers and covered < longest else ""
    return f"errorBudget burn {b.verdict.value}{over}: {tiers or b.message}"


def analysis_report(
    status: RolloutStatus, judged: bool, counted: Collection[str], weight: int
) -> Report:
    """The Event for one reading: thresholds when they were judged, tests that were fed."""
    verdicts: list[Verdict] = []
    lines: list[str] = []
    note = ""
    if judged:
        lines += [check_line(c) for c in status.checks]
        verdicts += [c.verdict for c in status.checks]
        note = warning_of(status.checks)
    fed = [e for e in status.evidence if e.name in counted or e.name.removesuffix(LIMIT) in counted]
    lines += [evidence_line(e) for e in fed]
    verdicts += [e.verdict for e in fed]
    if status.budget is not None and "errorBudget" in counted:
        lines.append(budget_line(status.budget))
        verdicts.append(status.budget.verdict)
    if Verdict.FAIL in verdicts:
        reason, warning = "AnalysisFailed", True
    elif Verdict.ERROR in verdicts:
        reason, warning = "MetricsError", True
    elif Verdict.INCONCLUSIVE in verdicts or not verdicts:
        reason, warning = "WaitingForData", False
    else:
        reason, warning = "AnalysisPassed", False
    message = f"analysis at {weight}%: " + ("; ".join(lines) or "no check had data")
    if note:
        message += f"; note: {note}"
    if len(message) > EVENT_LIMIT:
        message = message[: EVENT_LIMIT - 30] + " ... (all of it in status)"
    return Report(reason, message, warning)
