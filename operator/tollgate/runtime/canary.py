"""One reconcile of a Canary: observe the Deployments and the HTTPRoute, decide, record, act.

Every failure of the world (a missing Deployment, a router that refuses a write, Prometheus
down) is turned into an observation or a condition; the status is always recorded, so the
engine's deadlines and aborts keep working whatever breaks. Nothing is written when nothing
changed. Recording before acting is :mod:`tollgate.runtime.recording`'s job.
"""

import logging
from collections.abc import Sequence
from typing import Any

from tollgate.adapters.kube.claims import Claimant, claim
from tollgate.adapters.kube.client import KubeError, NotFoundError
from tollgate.adapters.kube.resources import CANARIES, DEPLOYMENTS, HTTPROUTES
from tollgate.adapters.kube.status import read_status
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.adapters.notify.webhooks import ask_gates
from tollgate.adapters.routers.base import RouterError
from tollgate.adapters.routers.gatewayapi import GatewayApiRouter
from tollgate.adapters.workloads.deployment import DeploymentWorkload, WorkloadState
from tollgate.api.canary import CanarySpec, RouterProvider
from tollgate.api.durations import seconds
from tollgate.api.intents import REQUEST_ANNOTATION, parse_intent
from tollgate.api.validation import SpecProblem, parse
from tollgate.engine import Observations, decide
from tollgate.engine.decision import Action
from tollgate.runtime.recording import (
    Outcome,
    act_in_order,
    read_analysis,
    record_invalid,
    record_then_act,
)
from tollgate.runtime.spec_checks import runtime_problems
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate.canary")
__all__ = [
    "Outcome",
    "analysis_request",
    "claimant",
    "raw_restore",
    "reconcile_canary",
    "router_for",
]


def router_for(spec: CanarySpec, namespace: str, wiring: Wiring) -> GatewayApiRouter:
    """The spec's traffic router (Gateway API today; Istio and NGINX come next)."""
    if spec.router.provider is not RouterProvider.GATEWAY_API or spec.router.http_route is None:
        raise RouterError(
            "UnsupportedRouter", f"router provider {spec.router.provider.value} is not built yet"
        )
    route = spec.router.http_route
    return route_router(
        wiring, namespace, route.name, route.namespace, spec.target_ref.name, spec.service.port
    )


def route_router(
    wiring: Wiring,
    namespace: str,
    route: str,
    route_namespace: str | None,
    target: str,
    port: int,
) -> GatewayApiRouter:
    """The weights of ``<target>-primary`` and ``<target>-canary`` in one HTTPRoute."""
    return GatewayApiRouter(
        wiring.kube,
        namespace,
        route,
        route_namespace,
        primary=f"{target}-primary",
        canary=f"{target}-canary",
        port=port,
    )


async def reconcile_canary(body: dict[str, Any], wiring: Wiring) -> Outcome:
    """Reconcile one Canary object (a full body, freshly read from the API)."""
    meta = body.get("metadata", {})
    namespace, name = meta["namespace"], meta["name"]
    status, _dropped = read_status(body.get("status"))
    now = wiring.now()

    spec, problems = parse(CanarySpec, body.get("spec"))
    if spec is not None:
        problems += runtime_problems(spec, namespace, wiring.settings)
    if spec is None or problems:
        return await record_invalid(
            wiring, CANARIES, body, problems, now, restore=lambda: raw_restore(body, wiring)
        )
    try:
        conflicts = await claim_targets(spec, body, wiring)
    except KubeError as exc:  # unclaimed: drive nothing this tick
        conflicts = [SpecProblem("spec.targetRef", f"cannot claim the target: {exc}")]
    if conflicts:
        return await record_invalid(wiring, CANARIES, body, conflicts, now, "TargetClaimed")

    workload = DeploymentWorkload(
        wiring.kube,
        namespace,
        spec.target_ref.name,
        spec.service.port,
        spec.service.target_port,
        spec.service.port_name,
        owner=body,
        recent=wiring.recent,
    )
    try:
        state = await workload.ensure()
    except KubeError as exc:
        state = WorkloadState(None, False, None, f"cannot read workloads: {exc}")

    router_error: Exception | None = None
    weight: int | None = None
    try:
        weight = await router_for(spec, namespace, wiring).get_weight()
    except (RouterError, KubeError) as exc:
        router_error = exc

    gates = await ask_gates(
        wiring.tenant_calls,
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
    analysis = await read_analysis(
        spec,
        status,
        lambda: analysis_request(spec, namespace, wiring.settings.prometheus_url),
        now,
        wiring,
    )
    observations = analysis.observed(
        Observations(
            revision=state.revision,
            stable_revision=state.stable_revision,
            target_ready=state.target_ready,
            target_message=state.problem,
            target_gone=state.missing,
            weight=weight,
            gates=gates,
            intent=parse_intent((meta.get("annotations") or {}).get(REQUEST_ANNOTATION)),
        )
    )
    decision = decide(spec, status, observations, now, meta.get("generation"))

    async def act(actions: Sequence[Action]) -> tuple[int, Exception | None]:
        router = router_for(spec, namespace, wiring)
        return await act_in_order(actions, body, wiring, now, router.set_weight, workload.promote)

    return await record_then_act(wiring, CANARIES, body, decision, router_error, now, act)


async def raw_restore(body: dict[str, Any], wiring: Wiring) -> None:
    """All traffic on primary, from what an invalid spec still says about its route."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    route = ((spec.get("router") or {}).get("httpRoute") or {}) if spec else {}
    target = (spec.get("targetRef") or {}).get("name")
    port = (spec.get("service") or {}).get("port")
    if not (
        isinstance(route.get("name"), str) and isinstance(target, str) and isinstance(port, int)
    ):
        raise RouterError("RouteUnknown", "the invalid spec does not say which route to restore")
    route_namespace = route.get("namespace") if isinstance(route.get("namespace"), str) else None
    router = route_router(
        wiring, body["metadata"]["namespace"], route["name"], route_namespace, target, port
    )
    await router.set_weight(0)


def claimant(body: dict[str, Any]) -> Claimant:
    meta = body.get("metadata") or {}
    return Claimant(meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")


async def claim_targets(
    spec: CanarySpec, body: dict[str, Any], wiring: Wiring
) -> list[SpecProblem]:
    """Claim the target Deployment and the HTTPRoute; a problem for each held by another."""
    me = claimant(body)

    async def holds(other: Claimant) -> bool:
        try:
            found = await wiring.kube.get(CANARIES, other.namespace, other.name)
        except NotFoundError:
            return False
        return bool((found.get("metadata") or {}).get("uid") == other.uid)

    wanted = [("spec.targetRef.name", DEPLOYMENTS, me.namespace, spec.target_ref.name)]
    if spec.router.http_route is not None:
        route = spec.router.http_route
        wanted.append(
            ("spec.router.httpRoute", HTTPROUTES, route.namespace or me.namespace, route.name)
        )
    problems = []
    for path, resource, namespace, name in wanted:
        holder = await claim(wiring.kube, resource, namespace, name, me, holds, wiring.recent)
        if holder is not None:
            problems.append(
                SpecProblem(
                    path,
                    f"{resource.kind} {namespace}/{name} is driven by Canary {holder}: one "
                    "Canary per target; delete one of them",
                )
            )
    return problems


def analysis_request(spec: CanarySpec, namespace: str, default_address: str) -> AnalysisRequest:
    """What the metric adapters read for one Canary (also used by ``tollgate analyze``)."""
    assert spec.checks is not None  # asked only when there are checks
    target = spec.target_ref.name
    labelled = spec.metrics.version_label is not None
    return AnalysisRequest(
        namespace=namespace,
        name=target,
        canary="canary" if labelled else target,
        stable="primary" if labelled else f"{target}-primary",
        window=seconds(spec.analysis.interval),
        metrics=spec.metrics,
        checks=spec.checks,
        address=spec.metrics.prometheus.address or default_address,
        version_label=spec.metrics.version_label,
        timeout=seconds(spec.metrics.prometheus.timeout),
    )
