"""What every reconcile shares after the decision: record it, then act, then note router errors.

The decision is recorded before it is acted on, conditionally on the resourceVersion it was
made from. A crash between the two leaves status ahead of the world, and the next reconcile
finishes the same decision (the engine re-asserts the weight status holds) instead of undoing
it; a decision made on a stale read loses with a 409 and is made again from a fresh read. When
status cannot be written for another reason, only taking traffic off the canary is applied.
"""

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tollgate.adapters.kube.client import ConflictError, KubeError
from tollgate.adapters.kube.resources import Resource
from tollgate.adapters.kube.status import read_status, write_status
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.adapters.routers.base import RouterError
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import ConditionStatus, Phase, RolloutStatus
from tollgate.api.validation import SpecProblem
from tollgate.engine import Decision, MetricReading, Observations
from tollgate.engine.checks import rules_for
from tollgate.engine.conditions import merge, with_invalid_spec
from tollgate.engine.decision import Action, EventKind, Notify, Promote, SetWeight
from tollgate.engine.evidence import fixed_objectives
from tollgate.engine.schedule import counts_due, needs_metrics
from tollgate.engine.sequential import Amount, Batch
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate.reconcile")
INVALID_SPEC_RESYNC = 60.0
INVALID_SPEC_GRACE = 300.0  # seconds a rollout in flight keeps its traffic under an invalid spec
CONFLICT_RETRY = 0.2
ERROR_RESYNC = 5.0

# Carries out a recorded decision's actions: (weight writes attempted, last router error).
Act = Callable[[Sequence[Action]], Awaitable[tuple[int, Exception | None]]]


@dataclass
class Outcome:
    """What a reconcile did, for the daemon loop and for tests."""

    requeue_after: float
    decision: Decision | None
    status_written: bool
    weight_writes: int = 0


def router_condition(
    status: RolloutStatus, error: Exception | None, generation: int | None, now: datetime
) -> RolloutStatus:
    """Add the TrafficRouted condition: the router accepted and verified our weight."""
    if error is None:
        wanted = (ConditionStatus.TRUE, "WeightVerified", "")
    else:
        reason = error.reason if isinstance(error, RouterError) else "RouterUnavailable"
        wanted = (ConditionStatus.FALSE, reason, str(error))
    previous = [c for c in status.conditions if c.type == "TrafficRouted"]
    others = [c for c in status.conditions if c.type != "TrafficRouted"]
    routed = merge(previous, {"TrafficRouted": wanted}, generation, now)
    return status.model_copy(update={"conditions": [*others, *routed]})


async def record_invalid(
    wiring: Wiring,
    resource: Resource,
    body: dict[str, Any],
    problems: Sequence[SpecProblem],
    now: datetime,
    reason: str = "InvalidSpec",
    restore: Callable[[], Awaitable[object]] | None = None,
) -> Outcome:
    """Stalled/InvalidSpec (or ``reason``) with every problem; phase and weight stay put.

    For a while: a rollout in flight whose spec stays invalid for ``INVALID_SPEC_GRACE`` has no
    analysis behind its traffic, so (with ``restore``) the traffic goes back to the stable
    version and the rollout is paused at step 0, to start its steps again once fixed and resumed.
    """
    meta = body["metadata"]
    raw_status = body.get("status") or {}
    status, _dropped = read_status(raw_status)
    stalled = with_invalid_spec(
        status, [str(p) for p in problems], meta.get("generation"), now, reason
    )
    since = next((c.last_transition_time for c in stalled.conditions if c.type == "Stalled"), now)
    in_flight = status.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)
    overdue = (now - since).total_seconds() >= INVALID_SPEC_GRACE
    if restore is not None and in_flight and status.canary_weight > 0 and overdue:
        message = (
            f"the spec has been invalid for {INVALID_SPEC_GRACE:g}s with traffic on the new "
            "version and no analysis: traffic is back on the stable version; fix the spec and "
            "resume to start the steps again"
        )
        try:
            await restore()
        except (RouterError, KubeError) as exc:
            log.warning("%s/%s: %s; but: %s", meta["namespace"], meta["name"], message, exc)
        else:
            stalled = stalled.model_copy(
                update={
                    "phase": Phase.PAUSED,
                    "canary_weight": 0,
                    "current_step": 0,
                    "paused_by_user": True,
                    "reason": reason,
                    "message": message,
                }
            )
            await wiring.events.post(
                wiring.kube, body, "TrafficRestored", message, warning=True, now=now
            )
    stored = await write_status(
        wiring.kube, resource, meta["namespace"], meta["name"], raw_status, stalled
    )
    if stored is not None:
        wiring.count("status_writes")
        message = "; ".join(map(str, problems))
        await wiring.events.post(wiring.kube, body, reason, message, warning=True, now=now)
    return Outcome(INVALID_SPEC_RESYNC, None, stored is not None)


def safe_only(decision: Decision) -> tuple[Action, ...]:
    """The part of an unrecorded decision that is safe to apply anyway: traffic off the canary."""
    return tuple(a for a in decision.actions if isinstance(a, SetWeight) and a.weight == 0)


async def record_then_act(
    wiring: Wiring,
    resource: Resource,
    body: dict[str, Any],
    decision: Decision,
    router_error: Exception | None,
    now: datetime,
    act: Act,
) -> Outcome:
    """Record ``decision`` (conditionally), carry out its actions, record a router failure."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    raw_status = body.get("status") or {}
    recorded = router_condition(decision.status, router_error, generation, now)
    version = meta.get("resourceVersion")
    try:
        stored = await write_status(
            wiring.kube, resource, namespace, name, raw_status, recorded, version
        )
    except ConflictError:
        log.info("%s/%s: decided on a stale read; reading again", namespace, name)
        return Outcome(CONFLICT_RETRY, decision, False)
    except KubeError as exc:
        log.warning("%s/%s: status not recorded, only a rollback applies: %s", namespace, name, exc)
        await act(safe_only(decision))
        return Outcome(ERROR_RESYNC, decision, False)
    if stored is not None:
        wiring.count("status_writes")
        raw_status = stored.get("status") or {}
        version = stored["metadata"]["resourceVersion"]

    weight_writes, act_error = await act(decision.actions)
    final = router_condition(recorded, act_error, generation, now) if weight_writes else recorded
    if final != recorded:
        try:
            if await write_status(
                wiring.kube, resource, namespace, name, raw_status, final, version
            ):
                wiring.count("status_writes")
        except KubeError as exc:  # the next reconcile reads the router again and says so
            log.warning("%s/%s: router condition not recorded: %s", namespace, name, exc)
    requeue = decision.requeue_after or wiring.settings.idle_resync
    if router_error is not None or act_error is not None:
        requeue = min(requeue, ERROR_RESYNC)
    return Outcome(requeue, decision, stored is not None, weight_writes)


@dataclass
class Analysis:
    """What Prometheus said this tick: threshold readings and sequential counts."""

    readings: tuple[MetricReading, ...] | None = None
    counts: dict[str, Batch] = field(default_factory=dict)
    objectives: dict[str, float] = field(default_factory=dict)
    amounts: dict[str, Amount] = field(default_factory=dict)
    untestable: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)

    def observed(self, world: Observations) -> Observations:
        """``world`` (workloads, router, gates, request) with this tick's readings added.

        The one place readings become observations: reconciles and ``tollgate analyze`` use it.
        """
        return dataclasses.replace(
            world,
            metrics=self.readings,
            counts=self.counts,
            objectives=self.objectives,
            amounts=self.amounts,
            untestable=self.untestable,
            count_queries=self.queries,
        )


class Readers(Protocol):
    """The two Prometheus readers an analysis needs (a :class:`Wiring` has both)."""

    @property
    def metrics(self) -> MetricsBatcher: ...

    @property
    def counts(self) -> CountReader: ...


async def read_analysis(
    spec: RolloutSpec,
    status: RolloutStatus,
    request: Callable[[], AnalysisRequest],
    now: datetime,
    readers: Readers,
) -> Analysis:
    """This tick's readings when an analysis is due, and counts when they are due.

    A provider failure is an Error verdict for the thresholds and no evidence for the tests.
    """
    if spec.checks is None:
        return Analysis()
    out = Analysis()
    asked: AnalysisRequest | None = None
    if needs_metrics(spec, status, now):
        asked = request()
        try:
            out.readings = await readers.metrics.read(asked, now)
        except Exception as exc:
            out.readings = tuple(MetricReading(r.name, error=str(exc)) for r in rules_for(spec))
    if counts_due(spec, status, now) and status.revision:
        asked = asked or request()
        starts = [status.step_started_at, status.last_analysis_at, status.last_count_at]
        baseline = max((t for t in starts if t is not None), default=None)
        objectives = fixed_objectives(status.evidence)
        try:
            counted = await readers.counts.read(asked, status.revision, objectives, now, baseline)
        except Exception as exc:  # no evidence this tick; the thresholds still judge
            log.warning("%s: counts not read: %s", asked.key, exc)
        else:
            out.counts, out.objectives = counted.counts, counted.objectives
            out.queries = counted.queries
            out.amounts, out.untestable = counted.amounts, counted.untestable
    return out


async def act_in_order(
    actions: Sequence[Action],
    body: dict[str, Any],
    wiring: Wiring,
    now: datetime,
    set_weight: Callable[[int], Awaitable[object]],
    promote: Callable[[str], Awaitable[object]],
) -> tuple[int, Exception | None]:
    """Carry out a recorded decision in order; the weight writes tried and the router error.

    A failed promotion is only logged: the engine stays in Promoting and asks again.
    """
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    weight_writes = 0
    router_error: Exception | None = None
    for action in actions:
        if isinstance(action, SetWeight):
            weight_writes += 1
            try:
                await set_weight(action.weight)
                wiring.count("weight_writes")
                router_error = None
            except (RouterError, KubeError) as exc:
                router_error = exc
                log.warning("%s/%s: weight %s not applied: %s", namespace, name, action.weight, exc)
        elif isinstance(action, Promote):
            try:
                await promote(action.revision)
            except (RouterError, KubeError) as exc:
                log.warning("%s/%s: promotion failed: %s", namespace, name, exc)
        elif isinstance(action, Notify):
            await wiring.events.post(
                wiring.kube,
                body,
                action.reason,
                action.message,
                warning=action.warning,
                now=now,
                repeat=action.event is EventKind.ANALYSIS,
            )
            wiring.count("events")
    return weight_writes, router_error
