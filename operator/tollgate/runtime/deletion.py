"""What a deleted Canary lets go of: its traffic, primary and both Services, its claims.

Read from the spec when it parses, else from the names the stored object still carries: a
Canary stored under a looser CRD (before an upgrade tightened a bound) must not, on deletion,
leave its owner references for the garbage collector to take primary, which serves the
traffic. A spec that does not parse never reverts: nothing says which revision is safe.
"""

from dataclasses import dataclass
from typing import Any

from tollgate.adapters.kube.claims import release
from tollgate.adapters.kube.resources import DEPLOYMENTS, HTTPROUTES
from tollgate.adapters.workloads.deployment import DeploymentWorkload
from tollgate.api.canary import CanarySpec
from tollgate.api.validation import parse
from tollgate.runtime.canary import claimant, raw_restore, router_for
from tollgate.runtime.wiring import Wiring


@dataclass(frozen=True)
class Holdings:
    """What one Canary holds, by name."""

    body: dict[str, Any]
    target: str
    route: tuple[str, str] | None  # (namespace, name) of the HTTPRoute
    spec: CanarySpec | None  # None: the stored spec no longer parses
    unreadable: str = ""  # why it does not parse

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Holdings | None":
        """None when not even the target's name can be read (then nothing is ours to find)."""
        namespace = (body.get("metadata") or {}).get("namespace") or ""
        spec, problems = parse(CanarySpec, body.get("spec"))
        if spec is not None:
            route = spec.router.http_route
            named = (route.namespace or namespace, route.name) if route is not None else None
            return cls(body, spec.target_ref.name, named, spec)
        raw = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(raw, dict)
        target = (raw.get("targetRef") or {}).get("name")
        if not isinstance(target, str) or not target:
            return None
        raw_route = (raw.get("router") or {}).get("httpRoute") or {}
        route_name, route_namespace = raw_route.get("name"), raw_route.get("namespace")
        if not isinstance(route_namespace, str) or not route_namespace:
            route_namespace = namespace
        named = (route_namespace, route_name) if isinstance(route_name, str) else None
        why = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
        return cls(body, target, named, None, why)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    async def restore(self, wiring: Wiring) -> None:
        """All traffic on primary."""
        if self.spec is None:
            await raw_restore(self.body, wiring)
        else:
            await router_for(self.spec, self.namespace, wiring).set_weight(0)

    def workload(self, wiring: Wiring) -> DeploymentWorkload:
        service = self.spec.service if self.spec is not None else None
        return DeploymentWorkload(
            wiring.kube,
            self.namespace,
            self.target,
            service.port if service else 0,  # releasing and reverting write no port
            service.target_port if service else None,
            service.port_name if service else "",
            owner=self.body,
            recent=wiring.recent,
        )


async def hand_over(holdings: Holdings, wiring: Wiring, restored: bool) -> None:
    """What the deleted Canary leaves behind (``revertOnDeletion``), said in an Event.

    ``restored``: the route's traffic is all on primary already. Without it nothing is
    reverted: the target's pods may run a revision never analysed.
    """
    body, target, spec = holdings.body, holdings.target, holdings.spec
    workload = holdings.workload(wiring)
    why: str | None = None
    if spec is None:
        why = f"its spec no longer parses: {holdings.unreadable}"
    elif spec.revert_on_deletion:
        why = await workload.revertible() if restored else "the route could not be restored"
        if why is None:
            await workload.revert()
            await workload.release()
            await wiring.events.post(
                wiring.kube,
                body,
                "Reverted",
                f"deleted: traffic back on Deployment {target} (Service {target}-primary selects "
                f"its pods; Deployment {target}-primary deleted)",
                warning=False,
                now=wiring.now(),
            )
            return
    await workload.release()
    traffic = f"all traffic on {target}-primary" if restored else "traffic not restored"
    kept = (
        f"{traffic}; {target}-primary keeps running with Services {target}-primary and "
        f"{target}-canary, no longer owned by the Canary"
    )
    if spec is None:
        reason, message, warning = "Released", f"deleted, not reverted ({why}): {kept}", True
    elif why is not None:
        reason, message, warning = "NotReverted", f"deleted, not reverted ({why}): {kept}", True
    else:
        reason, message, warning = "Released", f"deleted: {kept}", not restored
    await wiring.events.post(wiring.kube, body, reason, message, warning=warning, now=wiring.now())


async def release_targets(holdings: Holdings, wiring: Wiring) -> None:
    """Drop this Canary's claims on its Deployment and HTTPRoute."""
    me = claimant(holdings.body)
    await release(wiring.kube, DEPLOYMENTS, me.namespace, holdings.target, me)
    if holdings.route is not None:
        await release(wiring.kube, HTTPROUTES, *holdings.route, me)
