"""Checks a spec must pass before the engine sees it, with the field path of every problem.

The CRD schema and its CEL rules reject most bad specs at the API server. This module repeats
each CEL rule in Python (an old CRD, a server that skipped validation, or a test server must not
let a bad spec through) and adds the rules a schema cannot state. A spec with problems is
reported as Stalled/InvalidSpec and never reaches the engine.
"""

import functools
import json
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tollgate.api.analysis import DEFAULT_MAX_WEIGHT, AnalysisSpec
from tollgate.api.canary import CanarySpec, RouterProvider
from tollgate.api.checks import ChecksSpec
from tollgate.api.durations import seconds
from tollgate.api.gates import GateType
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec

MIN_INTERVAL_SECONDS = 1.0

SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec: where (a field path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def parse(model: type[SpecT], raw: Any) -> tuple[SpecT | None, list[SpecProblem]]:
    """Parse a raw spec, returning it with its problems; None when it cannot be parsed.

    The spec is read as the JSON the API server validates, in strict mode: ``"5"`` is not an
    integer and ``"true"`` not a boolean there, so lax coercion would accept specs the CRD
    refuses.
    """
    raw = prune_nulls(raw, _schema(model))
    try:
        document = json.dumps(raw, default=str)
    except (TypeError, ValueError) as exc:
        return None, [SpecProblem("spec", f"not a JSON document: {exc}")]
    try:
        spec = model.model_validate_json(document, strict=True)
    except ValidationError as exc:
        return None, [
            SpecProblem(_path(err["loc"]), err["msg"]) for err in exc.errors(include_url=False)
        ]
    if isinstance(spec, CanarySpec):
        return spec, canary_problems(spec)
    if isinstance(spec, PromptReleaseSpec):
        return spec, promptrelease_problems(spec)
    return spec, []


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    from tollgate.api.crds import model_schema  # crds imports the models, which import this

    return model_schema(model)


def prune_nulls(raw: Any, schema: dict[str, Any]) -> Any:
    """``raw`` without the nulls the API server prunes before defaulting: a null for a field
    that is not nullable (every field here) is as if the field were absent, so
    ``analysis: null`` means the default analysis on the server, and here too. Free-form maps
    (``x-kubernetes-preserve-unknown-fields``) keep their nulls, as on the server."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return raw
    if isinstance(raw, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for key, value in raw.items():
            child = properties.get(key, extra if isinstance(extra, dict) else {})
            if value is None and not child.get("nullable"):
                continue
            out[key] = prune_nulls(value, child)
        return out
    if isinstance(raw, list):
        items = schema.get("items") or {}
        return [prune_nulls(item, items) for item in raw]
    return raw


def _path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{_camel(str(part))}"
    return path


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def analysis_problems(analysis: AnalysisSpec) -> list[SpecProblem]:
    """Step plan and timing rules."""
    out: list[SpecProblem] = []
    where = "spec.analysis"
    top = analysis.max_weight
    if top is not None and analysis.step_weight > top:
        out.append(SpecProblem(f"{where}.stepWeight", "stepWeight must not exceed maxWeight"))
    steps = analysis.step_weights
    if steps:
        if top is not None and any(w > top for w in steps):
            out.append(
                SpecProblem(
                    f"{where}.stepWeights", "every stepWeights entry must be at most maxWeight"
                )
            )
        if any(b <= a for a, b in pairwise(steps)):
            out.append(
                SpecProblem(f"{where}.stepWeights", "stepWeights must be strictly increasing")
            )
    interval = seconds(analysis.interval)
    deadline = seconds(analysis.progress_deadline)
    if interval < MIN_INTERVAL_SECONDS:
        out.append(SpecProblem(f"{where}.interval", "interval must be at least 1s"))
    every = analysis.sequential.every
    if every is not None and not MIN_INTERVAL_SECONDS <= seconds(every) <= interval:
        out.append(
            SpecProblem(
                f"{where}.sequential.every", "sequential.every must be between 1s and interval"
            )
        )
    if deadline <= interval:
        out.append(
            SpecProblem(
                f"{where}.progressDeadline", "progressDeadline must be longer than interval"
            )
        )
    elif deadline <= interval * analysis.analyses_per_step:
        out.append(
            SpecProblem(
                f"{where}.progressDeadline",
                f"progressDeadline ({analysis.progress_deadline}) must be longer than "
                f"interval x analysesPerStep ({interval * analysis.analyses_per_step:g}s), or "
                "every step would miss it",
            )
        )
    plan = set(steps or _default_weights(analysis))
    seen: set[int] = set()
    for i, pause in enumerate(analysis.pauses or ()):
        if pause.weight not in plan:
            out.append(
                SpecProblem(
                    f"{where}.pauses[{i}].weight",
                    f"{pause.weight}% is not a step of the plan ({sorted(plan)})",
                )
            )
        if pause.weight in seen:
            out.append(SpecProblem(f"{where}.pauses[{i}].weight", "duplicate pause weight"))
        seen.add(pause.weight)
    return out


def _default_weights(analysis: AnalysisSpec) -> list[int]:
    top = analysis.max_weight or DEFAULT_MAX_WEIGHT
    weights = list(range(analysis.step_weight, top + 1, analysis.step_weight))
    if not weights or weights[-1] != top:
        weights.append(top)
    return weights


def checks_problems(checks: ChecksSpec) -> list[SpecProblem]:
    """At least one check; each with a limit; unique custom names."""
    out: list[SpecProblem] = []
    where = "spec.checks"
    builtin = {
        "latency": (checks.latency, "maxMilliseconds or maxIncreasePercent must be set"),
        "ttft": (checks.ttft, "maxMilliseconds or maxIncreasePercent must be set"),
        "errorRate": (checks.error_rate, "maxPercent or maxIncreasePoints must be set"),
        "costPerRequest": (
            checks.cost_per_request,
            "maxPerRequest or maxIncreasePercent must be set",
        ),
    }
    for name, (check, message) in builtin.items():
        if check is None:
            continue
        limits = [
            getattr(check, f, None)
            for f in (
                "max_milliseconds",
                "max_increase_percent",
                "max_percent",
                "max_increase_points",
                "max_per_request",
            )
        ]
        if all(v is None for v in limits):
            out.append(SpecProblem(f"{where}.{name}", message))
    names: set[str] = set()
    for i, custom in enumerate(checks.custom or ()):
        path = f"{where}.custom[{i}]"
        if custom.max is None and custom.min is None and custom.max_increase_percent is None:
            out.append(SpecProblem(path, "a custom check needs max, min or maxIncreasePercent"))
        if custom.max is not None and custom.min is not None and custom.min > custom.max:
            out.append(SpecProblem(path, "min must not exceed max"))
        if custom.name in names or custom.name in builtin or custom.name == "errorBudget":
            out.append(SpecProblem(f"{path}.name", f"duplicate check name {custom.name!r}"))
        names.add(custom.name)
    budget = checks.error_budget
    for i, tier in enumerate(budget.windows if budget is not None else ()):
        if seconds(tier.short) >= seconds(tier.long):
            out.append(
                SpecProblem(f"{where}.errorBudget.windows[{i}]", "short must be shorter than long")
            )
    present = [*[c for c, _ in builtin.values()], checks.error_budget, *(checks.custom or ())]
    if all(c is None for c in present):
        out.append(SpecProblem(where, "checks must name at least one check"))
    return out


def rollout_problems(spec: RolloutSpec) -> list[SpecProblem]:
    """Rules shared by both kinds."""
    out = analysis_problems(spec.analysis)
    if spec.checks is None:
        if not spec.skip_analysis:
            out.append(
                SpecProblem("spec.checks", "checks are required unless skipAnalysis is true")
            )
    else:
        out.extend(checks_problems(spec.checks))
    out.extend(_unique("spec.gates", [g.name for g in spec.gates or ()]))
    for i, gate in enumerate(spec.gates or ()):
        if (gate.type is GateType.WEBHOOK) != (gate.webhook is not None):
            out.append(
                SpecProblem(
                    f"spec.gates[{i}]",
                    "a Webhook gate needs webhook, and only a Webhook gate may have one",
                )
            )
    out.extend(_unique("spec.notifications", [n.name for n in spec.notifications or ()]))
    for i, target in enumerate(spec.notifications or ()):
        if (target.url is None) == (target.url_from is None):
            out.append(
                SpecProblem(
                    f"spec.notifications[{i}]", "exactly one of url and urlFrom must be set"
                )
            )
        events = list(target.events or ())
        if len(set(events)) != len(events):
            out.append(SpecProblem(f"spec.notifications[{i}].events", "duplicate event"))
    return out


def _unique(path: str, names: list[str]) -> list[SpecProblem]:
    seen: set[str] = set()
    out: list[SpecProblem] = []
    for i, name in enumerate(names):
        if name in seen:
            out.append(SpecProblem(f"{path}[{i}].name", f"duplicate name {name!r}"))
        seen.add(name)
    return out


def canary_problems(spec: CanarySpec) -> list[SpecProblem]:
    """Every rule of a Canary spec that the schema alone may not have enforced."""
    out = rollout_problems(spec)
    router = spec.router
    needs = {
        RouterProvider.GATEWAY_API: ("httpRoute", router.http_route),
        RouterProvider.ISTIO: ("virtualService", router.virtual_service),
        RouterProvider.NGINX: ("ingress", router.ingress),
    }
    field, ref = needs[router.provider]
    if ref is None:
        out.append(SpecProblem("spec.router", f"provider {router.provider.value} needs {field}"))
    return out


def promptrelease_problems(spec: PromptReleaseSpec) -> list[SpecProblem]:
    """Every rule of a PromptRelease spec that the schema alone may not have enforced."""
    out = rollout_problems(spec)
    names = [v.name for v in spec.versions]
    out.extend(_unique("spec.versions", names))
    if spec.stable == spec.candidate:
        out.append(SpecProblem("spec", "stable and candidate must differ"))
    for field in ("stable", "candidate"):
        if getattr(spec, field) not in names:
            out.append(SpecProblem("spec", f"{field} must name one of versions"))
    for i, version in enumerate(spec.versions):
        if (version.template is None) == (version.template_from is None):
            out.append(
                SpecProblem(
                    f"spec.versions[{i}]", "exactly one of template and templateFrom must be set"
                )
            )
    return out
