"""Spec rules that need more than the API models know: PromQL syntax and metric presets.

They run before the engine sees a spec, next to :mod:`tollgate.api.validation`, and report in
the same form (a field path and what is wrong).
"""

import promql_parser

from tollgate.adapters.metrics.families import families_for
from tollgate.adapters.metrics.queries import AnalysisRequest, render_custom
from tollgate.api.rollout import RolloutSpec
from tollgate.api.validation import SpecProblem


def custom_query_problems(spec: RolloutSpec, namespace: str) -> list[SpecProblem]:
    """Custom PromQL templates must parse once their placeholders are filled."""
    out: list[SpecProblem] = []
    if spec.checks is None:
        return out
    probe = AnalysisRequest(
        namespace=namespace,
        name="probe",
        canary="probe",
        stable="probe-primary",
        window=30,
        metrics=spec.metrics,
        checks=spec.checks,
        address="http://probe",
    )
    for i, check in enumerate(spec.checks.custom or ()):
        text = render_custom(check.query, probe, probe.canary)
        try:
            promql_parser.parse(text)
        except ValueError as exc:
            out.append(SpecProblem(f"spec.checks.custom[{i}].query", f"invalid PromQL: {exc}"))
    return out


def preset_problems(spec: RolloutSpec) -> list[SpecProblem]:
    """Every built-in check must have the metrics it needs in the chosen preset."""
    out: list[SpecProblem] = []
    c = spec.checks
    if c is None:
        return out
    fam = families_for(spec.metrics.preset, spec.metrics.names)
    needs = {
        "latency": (c.latency, [("requestDuration", fam.duration)]),
        "ttft": (c.ttft, [("ttft", fam.ttft)]),
        "errorRate": (c.error_rate, [("requests", fam.requests), ("errors", fam.errors)]),
        "errorBudget": (c.error_budget, [("requests", fam.requests), ("errors", fam.errors)]),
        "costPerRequest": (
            c.cost_per_request,
            [
                ("requests", fam.requests),
                ("inputTokens", fam.input_tokens),
                ("outputTokens", fam.output_tokens),
            ],
        ),
    }
    for check, (present, families) in needs.items():
        if present is None:
            continue
        for name, family in families:
            if family is None:
                out.append(
                    SpecProblem(
                        f"spec.checks.{check}",
                        f"preset {spec.metrics.preset.value} has no {name} metric; "
                        f"set spec.metrics.names.{name}",
                    )
                )
    return out


def runtime_problems(spec: RolloutSpec, namespace: str) -> list[SpecProblem]:
    """All checks of this module."""
    return [*custom_query_problems(spec, namespace), *preset_problems(spec)]
