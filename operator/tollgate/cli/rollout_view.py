"""How ``kubectl tollgate`` shows a rollout: a tree, a table, its history, and why.

Pure functions of the object (and its Events) as the API server returns them, so that what a
person reads is exactly what the operator recorded: phase, the step plan with the weight now,
each check canary against stable, the sequential evidence against its boundary, the budget's
burn, gates, and the last Events. Colour only when asked (on a terminal).
"""

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tollgate.api.status import Phase, RolloutStatus

JSON = dict[str, Any]
COLOURS = {"green": "32", "red": "31", "yellow": "33", "grey": "90", "bold": "1"}
PHASE_COLOUR = {
    Phase.SUCCEEDED: "green",
    Phase.ROLLED_BACK: "red",
    Phase.ROLLING_BACK: "red",
    Phase.PAUSED: "yellow",
    Phase.PROGRESSING: "yellow",
    Phase.PROMOTING: "yellow",
    Phase.INITIALIZING: "yellow",
}
VERDICT_COLOUR = {"Pass": "green", "Fail": "red", "Error": "red", "Inconclusive": "grey"}


def status_of(obj: JSON) -> RolloutStatus:
    """The recorded status; an unreadable one reads as none (the operator repairs it)."""
    try:
        return RolloutStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return RolloutStatus()


def paint(text: str, colour: str | None, on: bool) -> str:
    if not on or colour is None:
        return text
    return f"\033[{COLOURS[colour]}m{text}\033[0m"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3g}"


def plan_of(obj: JSON, status: RolloutStatus) -> list[int]:
    """The step weights as the spec lays them out (stepWeights, or stepWeight up to maxWeight)."""
    analysis = (obj.get("spec") or {}).get("analysis") or {}
    steps = analysis.get("stepWeights")
    if isinstance(steps, list) and all(isinstance(s, int) for s in steps):
        return list(steps)
    step, top = analysis.get("stepWeight", 5), analysis.get("maxWeight", 50)
    if not isinstance(step, int) or not isinstance(top, int) or step <= 0:
        return []
    weights = list(range(step, top + 1, step))
    if weights and weights[-1] != top:
        weights.append(top)
    return weights or ([top] if status.total_steps else [])


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def tree(obj: JSON, events: list[JSON], colour: bool = False, now: datetime | None = None) -> str:
    """``kubectl tollgate get``: the rollout as a tree."""
    now = now or datetime.now(UTC)
    meta, status = obj.get("metadata") or {}, status_of(obj)
    phase = status.phase.value if status.phase else "Pending"
    lines = [
        f"{paint(obj.get('kind', '?'), 'bold', colour)} {meta.get('namespace')}/{meta.get('name')}",
        f"├── phase     {paint(phase, PHASE_COLOUR.get(status.phase) if status.phase else None, colour)}"  # noqa: E501
        + (f" ({status.reason})" if status.reason else ""),
        f"├── message   {status.message or '-'}",
        f"├── revision  {status.revision or '-'} (stable {status.stable_revision or '-'})",
        f"├── weight    {status.canary_weight}% on the new version, step "
        f"{status.current_step}/{status.total_steps}",
    ]
    plan = plan_of(obj, status)
    if plan:
        marks = []
        for index, weight in enumerate(plan, start=1):
            mark = f"{weight}%"
            if index == status.current_step:
                mark = paint(f"[{mark}]", "bold", colour)
            marks.append(mark)
        lines.append(f"├── plan      {' → '.join(marks)} → promote")
    if status.checks:
        lines.append("├── checks    canary vs stable")
        for check in status.checks:
            verdict = paint(check.verdict.value, VERDICT_COLOUR.get(check.verdict.value), colour)
            lines.append(
                f"│   ├── {check.name:<16} {verdict:<12} {_number(check.canary_value)} vs "
                f"{_number(check.stable_value)}  ({check.threshold or 'no limit'}; "
                f"{check.canary_samples} vs {check.stable_samples} requests)"
            )
    if status.evidence:
        lines.append("├── evidence  e-value against its boundary (1/alpha)")
        for test in status.evidence:
            verdict = paint(test.verdict.value, VERDICT_COLOUR.get(test.verdict.value), colour)
            share = test.e_value / test.boundary if test.boundary else 0.0
            lines.append(
                f"│   ├── {test.name:<16} {verdict:<12} e={_number(test.e_value)} / "
                f"{_number(test.boundary)} ({share:.0%}); canary {_number(test.canary_bad)} of "
                f"{_number(test.canary_total)}, stable {_number(test.stable_bad)} of "
                f"{_number(test.stable_total)}"
            )
    if status.budget is not None:
        budget = status.budget
        lines.append(f"├── budget    {budget.verdict.value}: {budget.message or '-'}")
        for tier in budget.tiers:
            lines.append(
                f"│   ├── {tier.long}/{tier.short}: burn {_number(tier.long_burn)}/"
                f"{_number(tier.short_burn)} (fires above {_number(tier.max_burn_rate)})"
            )
    if status.pending_gates:
        lines.append(f"├── gates     waiting for {', '.join(status.pending_gates)}")
    recent = sorted(events, key=lambda e: _event_time(e) or now)[-5:]
    lines.append("└── events" + ("" if recent else "    none"))
    for index, event in enumerate(recent):
        branch = "└──" if index == len(recent) - 1 else "├──"
        warning = event.get("type") == "Warning"
        reason = paint(str(event.get("reason")), "red" if warning else None, colour)
        lines.append(
            f"    {branch} {_age(_event_time(event), now):>4} {reason}: "
            f"{(event.get('message') or '')[:160]}"
        )
    return "\n".join(lines) + "\n"


def _event_time(event: JSON) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(key) or (event.get("metadata") or {}).get("creationTimestamp")
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def table(objects: list[JSON], all_namespaces: bool, now: datetime | None = None) -> str:
    """``kubectl tollgate list``."""
    now = now or datetime.now(UTC)
    header = (["NAMESPACE"] if all_namespaces else []) + [
        "KIND", "NAME", "PHASE", "WEIGHT", "STEP", "REASON", "AGE"
    ]  # fmt: skip
    rows = [header]
    for obj in objects:
        meta, status = obj.get("metadata") or {}, status_of(obj)
        created = meta.get("creationTimestamp")
        born = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
        row = ([meta.get("namespace", "")] if all_namespaces else []) + [
            obj.get("kind", ""), meta.get("name", ""),
            status.phase.value if status.phase else "Pending", f"{status.canary_weight}%",
            f"{status.current_step}/{status.total_steps}", status.reason or "-", _age(born, now),
        ]  # fmt: skip
        rows.append([str(cell) for cell in row])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def history(obj: JSON) -> str:
    """``kubectl tollgate history``: every decision status kept, oldest first."""
    rows = [["TIME", "PHASE", "WEIGHT", "STEP", "REASON", "MESSAGE"]]
    for entry in status_of(obj).history:
        rows.append([entry.time.strftime("%Y-%m-%d %H:%M:%S"), entry.phase.value,
                     f"{entry.weight}%", str(entry.step), entry.reason, entry.message])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "   " + r[5] + "\n"
        for r in rows
    )


def explain(obj: JSON) -> str:
    """``kubectl tollgate explain``: the last decision in words, with the PromQL behind it."""
    status = status_of(obj)
    phase = status.phase.value if status.phase else "not yet reconciled"
    lines = [f"{obj.get('kind')} {obj['metadata']['name']} is {phase}"
             + (f" ({status.reason})" if status.reason else "") + "."]  # fmt: skip
    if status.message:
        lines.append(f"Why: {status.message}")
    failing = [c for c in status.checks if c.verdict.value in ("Fail", "Error")]
    rejected = [e for e in status.evidence if e.verdict.value == "Fail"]
    for check in failing:
        lines.append(f"- check {check.name}: {check.verdict.value}, {check.message or '-'} "
                     f"(canary {_number(check.canary_value)}, stable "
                     f"{_number(check.stable_value)}; {check.threshold})")  # fmt: skip
    for test in rejected:
        lines.append(f"- test {test.name}: e-value {_number(test.e_value)} reached its boundary "
                     f"{_number(test.boundary)}: {test.message or '-'}")  # fmt: skip
    if not failing and not rejected and status.checks:
        passing = ", ".join(f"{c.name} {c.verdict.value}" for c in status.checks)
        lines.append(f"Checks: {passing}.")
    queries = [(c.name, c.query) for c in status.checks if c.query]
    queries += [(e.name, e.query) for e in status.evidence if e.query]
    if status.budget is not None and status.budget.query:
        queries.append(("errorBudget", status.budget.query))
    if queries:
        lines.append("PromQL to paste into Prometheus:")
        seen = set()
        for name, query in queries:
            if (name, query) not in seen:
                seen.add((name, query))
                lines.append(f"  # {name}\n  {query}")
    return "\n".join(lines) + "\n"
