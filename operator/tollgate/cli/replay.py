"""A rollout's analysis replayed on history with the operator's own schedule and code.

``tollgate analyze --replay`` prints it; benchmarks run thousands in-process and need the outcome
as data, not text. Both call :func:`replay`, which returns a :class:`ReplayResult`.

The replay is the operator's daemon loop with a simulated clock. It decides at ``start`` as if
the rollout had just reached its first step, then waits what each decision asks
(``requeue_after``), so it ticks at every analysis interval and every
``analysis.sequential.every`` in between, like the operator. At each tick the runtime's
``read_analysis`` asks Prometheus, as of that time, only for what is due (threshold readings at
an analysis, counts when counts are due), the readings become observations the way a reconcile
builds them, and the engine decides. The router is taken to follow every step.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.adapters.outbound import Outbound
from tollgate.api import API_VERSION
from tollgate.api.canary import CanarySpec
from tollgate.api.durations import seconds
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import Phase, RolloutStatus
from tollgate.api.validation import SpecProblem, parse
from tollgate.engine import Decision, Observations, decide
from tollgate.engine.decision import Promote
from tollgate.engine.plan import plan_for
from tollgate.runtime import canary as canary_runtime
from tollgate.runtime import promptrelease as prompt_runtime
from tollgate.runtime.recording import Analysis, Readers, read_analysis
from tollgate.runtime.spec_checks import runtime_problems

REPLAYED = "replayed"
STABLE = "stable"
GENERATION = 1
# Deadline endings that say the data was too thin for a verdict, not that the version is bad.
WITHOUT_EVIDENCE = frozenset({"InsufficientEvidence", "ProgressDeadlineExceeded"})


class UnusableError(Exception):
    """The file or its spec cannot be replayed; the message lists why."""


class ReplayOutcome(StrEnum):
    """How a replay ended; each has its exit status (see :attr:`exit_code`)."""

    PROMOTED = "promoted"  # every step passed: the operator would promote
    NO_ROLLBACK = "no-rollback"  # the period ended first, without a rollback
    ROLLED_BACK = "rolled-back"  # rolled back on evidence of harm (or provider failures)
    UNUSABLE = "unusable"  # the file, the spec or the period cannot be replayed
    UNREACHABLE = "unreachable"  # Prometheus did not answer
    NO_DATA = "no-data"  # no sample for either version in the whole period
    INSUFFICIENT_EVIDENCE = "insufficient-evidence"  # the deadline came before any verdict

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES = {
    ReplayOutcome.PROMOTED: 0,
    ReplayOutcome.NO_ROLLBACK: 0,
    ReplayOutcome.ROLLED_BACK: 1,
    ReplayOutcome.UNUSABLE: 2,
    ReplayOutcome.UNREACHABLE: 3,
    ReplayOutcome.NO_DATA: 4,
    ReplayOutcome.INSUFFICIENT_EVIDENCE: 5,
}


@dataclass(frozen=True)
class Target:
    """The rollout to replay: its spec and what the adapters read for it."""

    label: str
    spec: RolloutSpec
    request: AnalysisRequest


@dataclass(frozen=True)
class Tick:
    """One decision of the replay: what Prometheus said (only what was due) and the decision."""

    at: datetime
    analysis: Analysis
    decision: Decision

    @property
    def read(self) -> bool:
        """Whether Prometheus gave readings or counts at this tick."""
        return self.analysis.readings is not None or bool(self.analysis.counts)


@dataclass(frozen=True)
class ReplayResult:
    """How a replay ended, when and why, and every tick that led there."""

    outcome: ReplayOutcome
    decided_at: datetime | None  # the tick of the ending decision; None without one
    reason: str
    message: str
    ticks: tuple[Tick, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def analyses(self) -> int:
        """Ticks at which threshold readings were taken."""
        return sum(t.analysis.readings is not None for t in self.ticks)


def target_from_document(doc: dict[str, Any], prometheus: str | None, source: str = "") -> Target:
    """A Canary or PromptRelease object, validated as the operator would validate it."""
    where = f"{source}: " if source else ""
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION or kind not in ("Canary", "PromptRelease"):
        raise UnusableError(f"{where}not a Canary or PromptRelease ({API_VERSION})")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise UnusableError(f"{where}{kind}: metadata must be an object with a name")
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "?")
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


@dataclass(frozen=True)
class ReplayReaders:
    """The operator's two readers over one HTTP client, without a batching window.

    Replays sharing them still form one batch per tick: their reads for the same time are
    submitted before the batch is sent (a simulated clock needs no waiting window).
    """

    metrics: MetricsBatcher
    counts: CountReader

    @classmethod
    def over(cls, http: httpx.AsyncClient | Outbound, timeout: float = 10.0) -> "ReplayReaders":
        def client(address: str) -> PrometheusClient:
            return PrometheusClient(address, timeout, client=http)

        return cls(MetricsBatcher(client, window=0.0), CountReader(client, window=0.0))


def first_step(spec: RolloutSpec, start: datetime) -> RolloutStatus:
    """Status of a rollout that has just reached its first step at ``start``."""
    plan = plan_for(spec.analysis)
    return RolloutStatus(
        phase=Phase.PROGRESSING,
        revision=REPLAYED,
        stable_revision=STABLE,
        current_step=1,
        total_steps=len(plan.weights),
        canary_weight=plan.weights[0],
        rollout_started_at=start,
        step_started_at=start,
    )


async def replay(
    target: Target,
    start: datetime,
    end: datetime,
    readers: Readers | None = None,
    on_tick: Callable[[Tick], None] | None = None,
) -> ReplayResult:
    """Step the operator's loop through [start, end] on what Prometheus recorded.

    ``readers`` may be shared by concurrent replays (their reads then form batches, as the
    operator's do); without them the replay opens its own. ``on_tick`` sees every tick.
    """
    interval = seconds(target.spec.analysis.interval)
    if (end - start).total_seconds() < interval:
        return ReplayResult(
            ReplayOutcome.UNUSABLE,
            None,
            "PeriodTooShort",
            f"the period is shorter than one interval ({interval:g}s)",
        )
    if readers is None:
        async with httpx.AsyncClient() as http:
            return await _run(target, start, end, interval, ReplayReaders.over(http), on_tick)
    return await _run(target, start, end, interval, readers, on_tick)


async def _run(
    target: Target,
    start: datetime,
    end: datetime,
    interval: float,
    readers: Readers,
    on_tick: Callable[[Tick], None] | None,
) -> ReplayResult:
    spec, request = target.spec, target.request
    status = first_step(spec, start)
    ticks: list[Tick] = []
    at, analysed, seen_data = start, False, False
    while at <= end:
        analysis = await read_analysis(spec, status, lambda: request, at, readers)
        if analysis.readings is not None:
            errors = [r.error for r in analysis.readings if r.error]
            if not analysed and analysis.readings and len(errors) == len(analysis.readings):
                return ReplayResult(
                    ReplayOutcome.UNREACHABLE,
                    None,
                    "PrometheusUnreachable",
                    f"Prometheus at {request.address}: {errors[0]}",
                    tuple(ticks),
                )
            analysed = True
        seen_data = seen_data or _has_data(analysis)
        world = Observations(
            revision=REPLAYED,
            stable_revision=STABLE,
            target_ready=True,
            weight=status.canary_weight,
        )
        decision = decide(spec, status, analysis.observed(world), at, GENERATION)
        tick = Tick(at, analysis, decision)
        ticks.append(tick)
        if on_tick is not None:
            on_tick(tick)
        status = decision.status
        ending = _ending(decision, seen_data)
        if ending is ReplayOutcome.NO_DATA:
            break  # only the deadline spoke: say what is missing instead
        if ending is not None:
            return ReplayResult(ending, at, decision.reason, decision.message, tuple(ticks))
        at += timedelta(seconds=max(1.0, decision.requeue_after or interval))
    if not seen_data:
        return ReplayResult(
            ReplayOutcome.NO_DATA, None, "NoData", no_data_message(target, start, end), tuple(ticks)
        )
    return ReplayResult(
        ReplayOutcome.NO_ROLLBACK, None, status.reason or "", status.message or "", tuple(ticks)
    )


def _has_data(analysis: Analysis) -> bool:
    readings = analysis.readings or ()
    return any(r.canary_samples or r.stable_samples for r in readings) or any(
        b.canary_total or b.stable_total for b in analysis.counts.values()
    )


def _ending(decision: Decision, seen_data: bool) -> ReplayOutcome | None:
    """The outcome this decision ends the replay with; None while the rollout goes on."""
    phase = decision.status.phase
    if phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        if not seen_data:
            return ReplayOutcome.NO_DATA
        if decision.reason in WITHOUT_EVIDENCE:
            return ReplayOutcome.INSUFFICIENT_EVIDENCE
        return ReplayOutcome.ROLLED_BACK
    if phase in (Phase.PROMOTING, Phase.SUCCEEDED) or any(
        isinstance(a, Promote) for a in decision.actions
    ):
        return ReplayOutcome.PROMOTED
    if decision.reason in WITHOUT_EVIDENCE:  # held for a person: no verdict will come
        return ReplayOutcome.INSUFFICIENT_EVIDENCE
    return None


def no_data_message(target: Target, start: datetime, end: datetime) -> str:
    """What was looked for, with every label the queries match on."""
    r = target.request
    pairs = [(r.metrics.namespace_label, r.namespace), *sorted((r.metrics.selector or {}).items())]
    labels = [f'{k}="{v}"' for k, v in pairs]
    if r.version_label is None:
        versions = f"pods {r.canary}-<hash>-<id> and {r.stable}-<hash>-<id>"
    else:
        versions = f'{r.version_label}="{r.canary}" and {r.version_label}="{r.stable}"'
    return (
        f"no data for {target.label} between {start.isoformat()} and {end.isoformat()}: check "
        f"metrics.preset / metrics.names and the labels ({', '.join(labels)}; versions: "
        f"{versions})"
    )
