"""``tollgate analyze --replay``: a rollout's analysis run against history, before the rollout.

The Canary or PromptRelease in the file is replayed from ``--from`` to ``--to``: at every
analysis interval the operator's own adapters query Prometheus as of that time (threshold
readings over the interval, counter increments for the sequential tests), and the engine
decides as if the rollout had started at ``--from`` with the router following every step. Each
tick prints the verdicts with their values and the decision. It answers "would this release,
with these checks, have been rolled back?" and "are these limits too tight for our noise?".

Exit status: 0 no rollback; 1 a rollback verdict; 2 the file or the spec is unusable (with
every problem); 3 Prometheus cannot be reached; 4 no data for the rollout in that period.
"""

import argparse
import asyncio
import dataclasses
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.api import API_VERSION
from tollgate.api.canary import CanarySpec
from tollgate.api.durations import seconds
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import Phase, RolloutStatus
from tollgate.api.validation import SpecProblem, parse
from tollgate.engine import Observations, decide
from tollgate.engine.decision import Decision, Promote
from tollgate.engine.observations import MetricReading
from tollgate.engine.plan import plan_for
from tollgate.runtime import canary as canary_runtime
from tollgate.runtime import promptrelease as prompt_runtime
from tollgate.runtime.spec_checks import runtime_problems

OK, ROLLBACK, UNUSABLE, UNREACHABLE, NO_DATA = 0, 1, 2, 3, 4
REPLAYED = "replayed"


class UnusableError(Exception):
    """The file or its spec cannot be replayed; the message lists why."""


@dataclass(frozen=True)
class Target:
    """The rollout to replay: its spec and what the adapters read for it."""

    label: str
    spec: RolloutSpec
    request: AnalysisRequest


def parse_time(text: str) -> datetime:
    """RFC 3339 / ISO 8601 (``Z`` allowed) or unix seconds; naive times are UTC."""
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_target(path: Path, prometheus: str | None) -> Target:
    """The first Canary or PromptRelease in the file, validated as the operator would."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise UnusableError(f"{path}: cannot read: {exc}") from exc
    ours = [
        d
        for d in docs
        if d.get("apiVersion") == API_VERSION and d.get("kind") in ("Canary", "PromptRelease")
    ]
    if not ours:
        raise UnusableError(f"{path}: no Canary or PromptRelease ({API_VERSION}) in the file")
    doc = ours[0]
    meta = doc.get("metadata") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name") or "?"
    label = f"{doc['kind']}/{namespace}/{name}"
    spec: CanarySpec | PromptReleaseSpec | None
    problems: list[SpecProblem]
    if doc["kind"] == "Canary":
        spec, problems = parse(CanarySpec, doc.get("spec"))
    else:
        spec, problems = parse(PromptReleaseSpec, doc.get("spec"))
    if spec is not None:
        problems += runtime_problems(spec, namespace)
    if spec is None or problems:
        raise UnusableError("\n".join(f"{label}: {p}" for p in problems))
    if spec.checks is None:
        raise UnusableError(f"{label}: spec.checks: there is nothing to analyse")
    address = prometheus or spec.metrics.prometheus.address
    if address is None:
        raise UnusableError(f"{label}: no Prometheus: pass --prometheus or set metrics.prometheus")
    if isinstance(spec, CanarySpec):
        request = canary_runtime.analysis_request(spec, namespace, address)
    else:
        request = prompt_runtime.analysis_request(spec, namespace, name, spec.stable, address)
    if prometheus:  # the command line wins over the spec
        request = dataclasses.replace(request, address=prometheus)
    return Target(label, spec, request)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def describe_tick(at: datetime, decision: Decision, readings: tuple[MetricReading, ...]) -> str:
    """One tick: the checks' verdicts and values, the running evidence, the decision."""
    status = decision.status
    verdicts = {c.name: c for c in status.checks} if status.last_analysis_at == at else {}
    parts = []
    for r in readings:
        c = verdicts.get(r.check)
        verdict = c.verdict.value if c is not None else "-"
        if r.error:
            parts.append(f"{r.check} Error ({r.error})")
        else:
            parts.append(
                f"{r.check} {verdict} {_fmt(r.canary)} vs {_fmt(r.stable)} "
                f"(n={r.canary_samples}/{r.stable_samples})"
            )
    evidence = ", ".join(f"{e.name} e={e.e_value:.3g}/{e.boundary:.3g}" for e in status.evidence)
    phase = status.phase.value if status.phase else "-"
    line = f"{at.isoformat().replace('+00:00', 'Z')}  {phase} {status.canary_weight}%  "
    line += "; ".join(parts)
    if evidence:
        line += f"  | {evidence}"
    if status.budget is not None and status.budget.tiers:
        tiers = ", ".join(f"{t.long_burn:.3g}x/{t.short_burn:.3g}x" for t in status.budget.tiers)
        line += f"  | burn {tiers}"
    return f"{line}\n    -> {decision.reason}: {decision.message}"


async def replay(target: Target, start: datetime, end: datetime, out: TextIO, err: TextIO) -> int:
    """Step the engine through [start, end]; the exit status."""
    spec, request = target.spec, target.request
    interval = seconds(spec.analysis.interval)
    plan = plan_for(spec.analysis)
    status = RolloutStatus(
        phase=Phase.PROGRESSING,
        revision=REPLAYED,
        stable_revision="stable",
        current_step=1,
        total_steps=len(plan.weights),
        canary_weight=plan.weights[0],
        rollout_started_at=start,
        step_started_at=start,
    )
    async with httpx.AsyncClient() as http:

        def client(address: str) -> PrometheusClient:
            return PrometheusClient(address, 10.0, client=http)

        batcher, counts = MetricsBatcher(client, window=0.0), CountReader(client, window=0.0)
        print(f"replaying {target.label} from {start.isoformat()} to {end.isoformat()}", file=out)
        at, ticks, seen_data = start, 0, False
        while at + timedelta(seconds=interval) <= end:
            previous, at = at, at + timedelta(seconds=interval)
            ticks += 1
            readings = (await batcher.query([request], at))[request.key]
            if ticks == 1 and readings and all(r.error for r in readings):
                print(f"Prometheus at {request.address}: {readings[0].error}", file=err)
                return UNREACHABLE
            seen_data = seen_data or any(r.canary_samples or r.stable_samples for r in readings)
            objectives = {e.name: e.objective for e in status.evidence if e.objective is not None}
            counted = await counts.read(request, REPLAYED, objectives, at, previous)
            obs = Observations(
                revision=REPLAYED,
                stable_revision="stable",
                target_ready=True,
                weight=status.canary_weight,
                metrics=readings,
                counts=counted.counts,
                objectives=counted.objectives,
                count_queries=counted.queries,
            )
            decision = decide(spec, status, obs, at, 1)
            print(describe_tick(at, decision, readings), file=out)
            status = decision.status
            if status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
                if not seen_data:  # only the deadline spoke: say what is missing instead
                    break
                print(f"verdict: rollback ({decision.reason}) at {at.isoformat()}", file=out)
                return ROLLBACK
            if any(isinstance(a, Promote) for a in decision.actions):
                print(f"verdict: would promote at {at.isoformat()}", file=out)
                return OK
        if ticks == 0:
            print(f"the period is shorter than one interval ({interval:g}s)", file=err)
            return UNUSABLE
        if not seen_data:
            print(
                f"no data for {target.label} between {start.isoformat()} and {end.isoformat()}: "
                f"check metrics.preset / metrics.names and the labels "
                f"({request.metrics.namespace_label}={request.namespace}, versions "
                f"{request.canary!r} and {request.stable!r})",
                file=err,
            )
            return NO_DATA
        print(f"verdict: no rollback in {ticks} analyses (last: {status.reason})", file=out)
        return OK


def run(args: argparse.Namespace) -> int:
    """The ``analyze`` command."""
    if args.to <= getattr(args, "from"):
        print("--to must be after --from", file=sys.stderr)
        return UNUSABLE
    try:
        target = load_target(Path(args.replay), args.prometheus)
    except UnusableError as exc:
        print(exc, file=sys.stderr)
        return UNUSABLE
    return asyncio.run(replay(target, getattr(args, "from"), args.to, sys.stdout, sys.stderr))


def add_parser(sub: Any) -> None:
    analyze = sub.add_parser(
        "analyze", help="replay a rollout's analysis against historical Prometheus data"
    )
    analyze.add_argument("--replay", required=True, metavar="FILE", help="Canary/PromptRelease")
    analyze.add_argument("--from", required=True, type=parse_time, help="start (RFC 3339)")
    analyze.add_argument("--to", required=True, type=parse_time, help="end (RFC 3339)")
    analyze.add_argument("--prometheus", help="Prometheus base URL (default: from the spec)")
    analyze.set_defaults(func=run)
