"""Judging one check: canary value against absolute SLOs and against the stable version.

A check passes only on enough data that is inside every limit. Missing or thin data is
Inconclusive and a provider failure is Error: neither is ever a pass.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from tollgate.api.analysis import NoDataPolicy
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import CheckStatus, EvidenceStatus, Verdict
from tollgate.engine.evidence import LIMIT, PlannedTest
from tollgate.engine.observations import MetricReading

PARTIAL = "partial answer from the metric provider"
IMPOSSIBLE = "impossible data"


class Unit(StrEnum):
    """How a check's values are shown."""

    SECONDS = "s"
    RATIO = "ratio"
    MONEY = "money"
    BURN = "burn"
    PLAIN = ""


@dataclass(frozen=True)
class CheckRule:
    """Limits of one check, in the units of its readings (seconds, ratios, money)."""

    name: str
    unit: Unit
    no_data: NoDataPolicy
    max_value: float | None = None
    min_value: float | None = None
    max_increase_ratio: float | None = None
    max_increase_abs: float | None = None
    scale: float = 1.0

    @property
    def relative(self) -> bool:
        """Whether the check compares with the stable version."""
        return self.max_increase_ratio is not None or self.max_increase_abs is not None

    def describe(self) -> str:
        """The threshold in words, as shown in status."""
        parts: list[str] = []
        if self.max_value is not None:
            parts.append(f"<= {fmt(self.max_value, self.unit)}")
        if self.min_value is not None:
            parts.append(f">= {fmt(self.min_value, self.unit)}")
        if self.max_increase_ratio is not None:
            parts.append(f"<= stable +{self.max_increase_ratio * 100:g}%")
        if self.max_increase_abs is not None:
            parts.append(f"<= stable +{fmt(self.max_increase_abs, self.unit)}")
        return " and ".join(parts)


def fmt(value: float, unit: Unit) -> str:
    """A value in its unit, for people."""
    if unit is Unit.SECONDS:
        return f"{value * 1000:.4g}ms"
    if unit is Unit.RATIO:
        return f"{value * 100:.4g}%"
    if unit is Unit.BURN:
        return f"{value:.4g}x"
    return f"{value:.6g}"


def rules_for(spec: RolloutSpec) -> tuple[CheckRule, ...]:
    """Every check of a spec as a rule, in a fixed order."""
    checks = spec.checks
    if checks is None:
        return ()
    default = spec.analysis.no_data
    rules: list[CheckRule] = []
    for name, latency in (("latency", checks.latency), ("ttft", checks.ttft)):
        if latency is not None:
            rules.append(
                CheckRule(
                    name=name,
                    unit=Unit.SECONDS,
                    no_data=latency.no_data or default,
                    max_value=_div(latency.max_milliseconds, 1000),
                    max_increase_ratio=_div(latency.max_increase_percent, 100),
                )
            )
    if checks.error_rate is not None:
        er = checks.error_rate
        rules.append(
            CheckRule(
                name="errorRate",
                unit=Unit.RATIO,
                no_data=er.no_data or default,
                max_value=_div(er.max_percent, 100),
                max_increase_abs=_div(er.max_increase_points, 100),
            )
        )
    if checks.cost_per_request is not None:
        cost = checks.cost_per_request
        rules.append(
            CheckRule(
                name="costPerRequest",
                unit=Unit.MONEY,
                no_data=cost.no_data or default,
                max_value=cost.max_per_request,
                max_increase_ratio=_div(cost.max_increase_percent, 100),
            )
        )
    if checks.error_budget is not None:
        budget = checks.error_budget
        rules.append(
            CheckRule(
                name="errorBudget",
                unit=Unit.BURN,
                no_data=budget.no_data or default,
                max_value=budget.max_burn_rate,
                scale=1.0 / (1.0 - budget.objective_percent / 100.0),
            )
        )
    for custom in checks.custom or ():
        rules.append(
            CheckRule(
                name=custom.name,
                unit=Unit.PLAIN,
                no_data=custom.no_data or default,
                max_value=custom.max,
                min_value=custom.min,
                max_increase_ratio=_div(custom.max_increase_percent, 100),
            )
        )
    return tuple(rules)


def _div(value: float | None, by: float) -> float | None:
    return None if value is None else value / by


def _scaled(value: float | None, scale: float) -> float | None:
    """The value in the rule's units, or None when there is no usable number (None, NaN, inf)."""
    if value is None or not math.isfinite(value):
        return None
    return value * scale


def impossible(rule: CheckRule, value: float | None) -> str | None:
    """Why a reading's value cannot be real for the check's kind, or None.

    A latency, a cost or a burn rate is never negative, and a share lies within [0, 1]; a
    custom query may return anything. Such data is a fault upstream (a counter summed across
    a reset, a broken recording rule), never evidence that the version is fine.
    """
    if value is None or not math.isfinite(value) or rule.unit is Unit.PLAIN:
        return None
    if value < 0:
        return f"{rule.name} is {value:g}, below 0"
    if rule.unit is Unit.RATIO and value > 1:
        return f"{rule.name} share is {value:g}, above 1"
    return None


def judge(rule: CheckRule, reading: MetricReading | None, min_samples: int) -> CheckStatus:
    """The verdict of one check on one reading, with the evidence behind it."""

    def result(verdict: Verdict, message: str, **values: float | None) -> CheckStatus:
        if reading is not None and reading.warning:
            message += f" (warning: {reading.warning})"  # explain.check_line splits it off
        return CheckStatus(
            name=rule.name,
            verdict=verdict,
            query=reading.query if reading else None,
            canary_value=values.get("canary"),
            stable_value=values.get("stable"),
            threshold=rule.describe(),
            canary_samples=reading.canary_samples if reading else 0,
            stable_samples=reading.stable_samples if reading else 0,
            message=message,
        )

    if reading is None:
        return result(Verdict.INCONCLUSIVE, "no reading was taken for this check")
    if reading.partial is not None:
        return result(Verdict.INCONCLUSIVE, f"{PARTIAL}: {reading.partial}")
    if reading.error is not None:
        return result(Verdict.ERROR, f"metric provider failed: {reading.error}")
    canary = _scaled(reading.canary, rule.scale)
    stable = _scaled(reading.stable, rule.scale)
    for version, raw in (("new", reading.canary), ("stable", reading.stable)):
        why = impossible(rule, raw)
        if why:
            return result(Verdict.INCONCLUSIVE, f"{IMPOSSIBLE}: the {version} version's {why}")
    if canary is None:
        return result(Verdict.INCONCLUSIVE, "no data for the new version", stable=stable)
    if reading.canary_samples < min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            f"new version served {reading.canary_samples} requests, {min_samples} needed",
            canary=canary,
            stable=stable,
        )
    breaches: list[str] = []
    if rule.max_value is not None and canary > rule.max_value:
        breaches.append(f"{fmt(canary, rule.unit)} > {fmt(rule.max_value, rule.unit)}")
    if rule.min_value is not None and canary < rule.min_value:
        breaches.append(f"{fmt(canary, rule.unit)} < {fmt(rule.min_value, rule.unit)}")
    waiting = ""
    if rule.relative:
        if stable is None or reading.stable_samples < min_samples:
            waiting = f"stable version has too little data ({reading.stable_samples} requests)"
        else:
            limit = _relative_limit(rule, stable)
            if canary > limit:
                breaches.append(
                    f"{fmt(canary, rule.unit)} > {fmt(limit, rule.unit)} "
                    f"(stable {fmt(stable, rule.unit)})"
                )
    if breaches:
        return result(Verdict.FAIL, "; ".join(breaches), canary=canary, stable=stable)
    if waiting:
        return result(Verdict.INCONCLUSIVE, waiting, canary=canary, stable=stable)
    against = f" vs stable {fmt(stable, rule.unit)}" if stable is not None else ""
    return result(
        Verdict.PASS,
        f"{fmt(canary, rule.unit)}{against} is within {rule.describe()}",
        canary=canary,
        stable=stable,
    )


def _relative_limit(rule: CheckRule, stable: float) -> float:
    limits: list[float] = []
    if rule.max_increase_ratio is not None:
        limits.append(stable * (1.0 + rule.max_increase_ratio))
    if rule.max_increase_abs is not None:
        limits.append(stable + rule.max_increase_abs)
    return min(limits)


def judge_all(
    rules: Sequence[CheckRule], readings: Sequence[MetricReading], min_samples: int
) -> tuple[CheckStatus, ...]:
    """Judge every rule on its reading (matched by check name)."""
    by_name = {r.check: r for r in readings}
    return tuple(judge(rule, by_name.get(rule.name), min_samples) for rule in rules)


def untested(rule: CheckRule, tests: Sequence[PlannedTest]) -> CheckRule | None:
    """The part of a rule no test covers (judged on its window), or None when tests cover all.

    A limit test covers the absolute limit, a relative test the limits against stable.
    """
    names = {t.name for t in tests}
    rest = replace(
        rule,
        max_value=None if rule.name + LIMIT in names else rule.max_value,
        max_increase_ratio=None if rule.name in names else rule.max_increase_ratio,
        max_increase_abs=None if rule.name in names else rule.max_increase_abs,
    )
    limits = (rest.max_value, rest.min_value, rest.max_increase_ratio, rest.max_increase_abs)
    return None if all(v is None for v in limits) else rest


def judge_by_tests(
    rule: CheckRule,
    window: CheckStatus,
    reading: MetricReading | None,
    tests: Sequence[PlannedTest],
    evidence: Sequence[EvidenceStatus],
    step_samples: float,
    min_samples: int,
) -> CheckStatus:
    """A check judged by its tests; the window's values stay for people to read.

    Fail when a test rejected (or a limit no test covers failed on the window), Error when the
    provider failed, Inconclusive until every test has counts and the step has counted
    ``min_samples`` canary requests, Pass otherwise.
    """
    if window.verdict is Verdict.ERROR:
        return window
    by_name = {e.name: e for e in evidence}
    mine = [by_name[t.name] for t in tests if t.name in by_name]
    shown = _estimate(rule, window)
    rest = untested(rule, tests)
    rest_status = judge(rest, reading, min_samples) if rest is not None else None
    failed = [e.name for e in mine if e.verdict is Verdict.FAIL]
    missing = [t.name for t in tests if t.name not in by_name]

    def result(verdict: Verdict, why: str) -> CheckStatus:
        tested = "; ".join(f"{e.name} {e.verdict.value}" for e in mine)
        parts = [why, f"tests: {tested}" if tested else "", shown]
        return window.model_copy(
            update={"verdict": verdict, "message": "; ".join(p for p in parts if p)}
        )

    if failed:
        return result(Verdict.FAIL, f"rejected by {', '.join(failed)}")
    if rest_status is not None and rest_status.verdict is Verdict.FAIL:
        return result(Verdict.FAIL, f"window: {rest_status.message}")
    if missing:
        return result(Verdict.INCONCLUSIVE, f"no counts yet for {', '.join(missing)}")
    if step_samples < min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            f"waiting: {step_samples:g} of the {min_samples} canary requests this step needs",
        )
    if rest_status is not None and rest_status.verdict is not Verdict.PASS:
        return result(rest_status.verdict, f"window: {rest_status.message}")
    return result(Verdict.PASS, "no test finds a breach")


def _estimate(rule: CheckRule, window: CheckStatus) -> str:
    """The window's values, marked as an estimate the tests do not decide on."""
    if window.canary_value is None:
        return "window estimate: no data"
    against = (
        f" vs stable {fmt(window.stable_value, rule.unit)}"
        if window.stable_value is not None
        else ""
    )
    return f"window estimate {fmt(window.canary_value, rule.unit)}{against} (shown, not judged)"


def outcome(rules: Sequence[CheckRule], results: Sequence[CheckStatus]) -> Verdict:
    """One analysis' overall verdict: any failure fails; then errors; then missing data.

    With no rules at all nothing was shown to be safe, so the outcome is Inconclusive.
    """
    policy = {rule.name: rule.no_data for rule in rules}
    verdicts = [r.verdict for r in results]
    no_data_fails = any(
        r.verdict is Verdict.INCONCLUSIVE
        and policy.get(r.name) is NoDataPolicy.FAIL
        and not r.message.startswith((PARTIAL, IMPOSSIBLE))  # data came, unusable
        for r in results
    )
    if Verdict.FAIL in verdicts or no_data_fails:
        return Verdict.FAIL
    if Verdict.ERROR in verdicts:
        return Verdict.ERROR
    if not verdicts or Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS
