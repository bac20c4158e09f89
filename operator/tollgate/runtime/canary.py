"""One reconcile of a Canary: observe, decide, record the decision in status, then act.

Every failure of the world (a missing Deployment, a router that refuses a write, Prometheus
down) is turned into an observation or a condition; the status is always recorded, so the
engine's deadlines and aborts keep working whatever breaks. Nothing is written when nothing
changed.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollgate.adapters.kube.client import ConflictError, KubeError
from tollgate.adapters.kube.events import post_event
from tollgate.adapters.kube.resources import CANARIES
from tollgate.adapters.kube.status import write_status
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.adapters.notify.webhooks import ask_gates
from tollgate.adapters.routers.base import RouterError
from tollgate.adapters.routers.gatewayapi import GatewayApiRouter
from tollgate.adapters.workloads.deployment import DeploymentWorkload, WorkloadState
from tollgate.api.canary import CanarySpec, RouterProvider
from tollgate.api.durations import seconds
from tollgate.api.intents import REQUEST_ANNOTATION, parse_intent
from tollgate.api.status import ConditionStatus, RolloutStatus
from tollgate.api.validation import parse
from tollgate.engine import Decision, MetricReading, Observations, decide
from tollgate.engine.checks import rules_for
from tollgate.engine.conditions import merge, with_invalid_spec
from tollgate.engine.decision import Action, Notify, Promote, SetWeight
from tollgate.engine.schedule import needs_metrics
from tollgate.runtime.spec_checks import runtime_problems
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate.canary")
INVALID_SPEC_RESYNC = 60.0
CONFLICT_RETRY = 0.2


@dataclass
class Outcome:
    """What a reconcile did, for the daemon loop and for tests."""

    requeue_after: float
    decision: Decision | None
    status_written: bool
    weight_writes: int = 0


def router_for(spec: CanarySpec, namespace: str, wiring: Wiring) -> GatewayApiRouter:
    """The spec's traffic router (Gateway API today; Istio and NGINX come next)."""
    if spec.router.provider is not RouterProvider.GATEWAY_API or spec.router.http_route is None:
        raise RouterError(
            "UnsupportedRouter", f"router provider {spec.router.provider.value} is not built yet"
        )
    target = spec.target_ref.name
    return GatewayApiRouter(
        wiring.kube,
        namespace,
        spec.router.http_route.name,
        spec.router.http_route.namespace,
        primary=f"{target}-primary",
        canary=f"{target}-canary",
        port=spec.service.port,
    )


def _router_condition(
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


async def reconcile_canary(body: dict[str, Any], wiring: Wiring) -> Outcome:
    """Reconcile one Canary object (a full body as read from the API)."""
    meta = body.get("metadata", {})
    namespace, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    raw_status = body.get("status") or {}
    status = RolloutStatus.model_validate(raw_status)
    now = wiring.now()

    spec, problems = parse(CanarySpec, body.get("spec"))
    if spec is not None:
        problems += runtime_problems(spec, namespace)
    if spec is None or problems:
        stalled = with_invalid_spec(status, [str(p) for p in problems], generation, now)
        written = (
            await write_status(wiring.kube, CANARIES, namespace, name, raw_status, stalled)
            is not None
        )
        if written:
            wiring.count("status_writes")
            await post_event(
                wiring.kube,
                body,
                "InvalidSpec",
                "; ".join(map(str, problems)),
                warning=True,
                now=now,
            )
        return Outcome(INVALID_SPEC_RESYNC, None, written)

    workload = DeploymentWorkload(
        wiring.kube,
        namespace,
        spec.target_ref.name,
        spec.service.port,
        spec.service.target_port,
        spec.service.port_name,
    )
    try:
        state = await workload.ensure()
    except KubeError as exc:
        state = WorkloadState(None, False, None, f"cannot read workloads: {exc}")

    router_error: Exception | None = None
    weight: int | None = None
    try:
        router = router_for(spec, namespace, wiring)
        weight = await router.get_weight()
    except (RouterError, KubeError) as exc:
        router_error = exc

    intent = parse_intent((meta.get("annotations") or {}).get(REQUEST_ANNOTATION))
    gates = await ask_gates(
        wiring.http,
        spec.gates or (),
        status.pending_gates,
        {
            "namespace": namespace,
            "name": name,
            "phase": status.phase,
            "weight": status.canary_weight,
            "revision": status.revision,
        },
    )
    metrics = await _read_metrics(spec, status, namespace, now, wiring)
    observations = Observations(
        revision=state.revision,
        stable_revision=state.stable_revision,
        target_ready=state.target_ready,
        weight=weight,
        metrics=metrics,
        gates=gates,
        intent=intent,
    )
    decision = decide(spec, status, observations, now, generation)

    # Record first, then act: a crash between the two leaves status ahead of the world, and the
    # next reconcile finishes the same decision instead of undoing it.
    recorded = _router_condition(decision.status, router_error, generation, now)
    version = meta.get("resourceVersion")
    try:
        stored = await write_status(
            wiring.kube, CANARIES, namespace, name, raw_status, recorded, version
        )
    except ConflictError:
        log.info("%s/%s: decided on a stale read; reading again", namespace, name)
        return Outcome(CONFLICT_RETRY, decision, False)
    except KubeError as exc:
        log.warning(
            "%s/%s: status not recorded, only a rollback is applied: %s", namespace, name, exc
        )
        await _act(_safe_only(decision), spec, namespace, body, workload, wiring, now)
        return Outcome(5.0, decision, False)
    if stored is not None:
        wiring.count("status_writes")
        raw_status = stored.get("status") or {}
        version = stored["metadata"]["resourceVersion"]

    weight_writes, act_error = await _act(
        decision.actions, spec, namespace, body, workload, wiring, now
    )
    final = _router_condition(recorded, act_error, generation, now) if weight_writes else recorded
    if final != recorded:
        try:
            if await write_status(
                wiring.kube, CANARIES, namespace, name, raw_status, final, version
            ):
                wiring.count("status_writes")
        except KubeError as exc:  # the next reconcile sees the router again and says so
            log.warning("%s/%s: router condition not recorded: %s", namespace, name, exc)
    requeue = decision.requeue_after or wiring.settings.idle_resync
    if router_error is not None or act_error is not None:
        requeue = min(requeue, 5.0)
    return Outcome(requeue, decision, stored is not None, weight_writes)


def _safe_only(decision: Decision) -> tuple[Action, ...]:
    """The part of an unrecorded decision that is safe to apply anyway: traffic off the canary."""
    return tuple(a for a in decision.actions if isinstance(a, SetWeight) and a.weight == 0)


async def _act(
    actions: Sequence[Action],
    spec: CanarySpec,
    namespace: str,
    body: dict[str, Any],
    workload: DeploymentWorkload,
    wiring: Wiring,
    now: datetime,
) -> tuple[int, Exception | None]:
    """Carry out a recorded decision in order; the number of weight writes and the router error."""
    name = body["metadata"]["name"]
    weight_writes = 0
    router_error: Exception | None = None
    for action in actions:
        if isinstance(action, SetWeight):
            weight_writes += 1
            try:
                await router_for(spec, namespace, wiring).set_weight(action.weight)
                wiring.count("weight_writes")
                router_error = None
            except (RouterError, KubeError) as exc:
                router_error = exc
                log.warning("%s/%s: weight %s not applied: %s", namespace, name, action.weight, exc)
        elif isinstance(action, Promote):
            try:
                await workload.promote(action.revision)
            except KubeError as exc:
                log.warning("%s/%s: promotion write failed: %s", namespace, name, exc)
        elif isinstance(action, Notify):
            await post_event(
                wiring.kube, body, action.reason, action.message, warning=action.warning, now=now
            )
            wiring.count("events")
    return weight_writes, router_error


async def _read_metrics(
    spec: CanarySpec, status: RolloutStatus, namespace: str, now: datetime, wiring: Wiring
) -> tuple[MetricReading, ...] | None:
    if spec.checks is None or not needs_metrics(spec, status, now):
        return None
    target = spec.target_ref.name
    labelled = spec.metrics.version_label is not None
    request = AnalysisRequest(
        namespace=namespace,
        name=target,
        canary="canary" if labelled else target,
        stable="primary" if labelled else f"{target}-primary",
        window=seconds(spec.analysis.interval),
        metrics=spec.metrics,
        checks=spec.checks,
        address=spec.metrics.prometheus.address or wiring.settings.prometheus_url,
        version_label=spec.metrics.version_label,
        timeout=seconds(spec.metrics.prometheus.timeout),
    )
    try:
        return await wiring.metrics.read(request, now)
    except Exception as exc:  # a provider failure is an Error verdict
        return tuple(MetricReading(r.name, error=str(exc)) for r in rules_for(spec))
