"""Gateway API HTTPRoute router.

The user's HTTPRoute (GitOps may own it) sends traffic to the Service ``<name>-primary``;
Tollgate owns the backendRefs to ``<name>-primary`` and ``<name>-canary`` in those rules and
nothing else: other rules, matches, filters and backendRefs are left exactly as they are. A
missing canary backendRef is added next to the primary one. Weights are proportions (Gateway
API, not percents): Tollgate splits the primary's share of a rule, and only that share, between
primary and canary (a rule of 10 to ``<name>-primary`` and 90 to ``legacy`` keeps legacy at 90%
of its traffic at every step). A share under 100 is first scaled up, with every other backend
of the rule, so that a 1% step is exact. Writes are PUTs of the
object read just before, so the resourceVersion precondition turns a concurrent edit into a
409, after which the route is read again and the change re-applied.
"""

import copy
import math
from typing import Any

from tollgate.adapters.kube.client import ConflictError, KubeClient, NotFoundError
from tollgate.adapters.kube.resources import HTTPROUTES
from tollgate.adapters.routers.base import RouterError

JSON = dict[str, Any]
DEFAULT_WEIGHT = 1  # Gateway API: a backendRef without weight has weight 1
MAX_WEIGHT = 1_000_000  # Gateway API: the largest backendRef weight


def _is_service(ref: JSON, name: str, namespace: str | None) -> bool:
    return (
        ref.get("name") == name
        and ref.get("group", "") in ("", "core")
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", namespace) == namespace
    )


class GatewayApiRouter:
    """Canary weight in the rules of one HTTPRoute that send traffic to the primary Service."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        route: str,
        route_namespace: str | None,
        primary: str,
        canary: str,
        port: int,
        retries: int = 3,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.route = route
        self.route_namespace = route_namespace or namespace
        self.primary = primary
        self.canary = canary
        self.port = port
        self.retries = retries
        self.writes = 0

    def _backend_namespace(self) -> str | None:
        # backendRefs without a namespace point into the route's own namespace.
        return None if self.route_namespace == self.namespace else self.namespace

    async def _read(self) -> JSON:
        try:
            return await self.kube.get(HTTPROUTES, self.route_namespace, self.route)
        except NotFoundError as exc:
            raise RouterError(
                "RouteNotFound", f"HTTPRoute {self.route_namespace}/{self.route} not found"
            ) from exc

    def _owned(self, route: JSON) -> list[tuple[JSON | None, JSON | None, list[JSON]]]:
        """For each rule that targets the primary: (primary ref, canary ref, backendRefs)."""
        owned = []
        namespace = self._backend_namespace()
        for rule in route.get("spec", {}).get("rules", []) or []:
            refs = rule.get("backendRefs") or []
            primary = next((r for r in refs if _is_service(r, self.primary, namespace)), None)
            canary = next((r for r in refs if _is_service(r, self.canary, namespace)), None)
            if primary is not None:
                owned.append((primary, canary, refs))
        if not owned:
            raise RouterError(
                "NoPrimaryBackend",
                f"HTTPRoute {self.route_namespace}/{self.route} has no rule with a backendRef "
                f"to Service {self.primary}; point the route at it",
            )
        return owned

    def weight_of(self, route: JSON) -> int | None:
        """The canary percent in a route; None when the owned rules disagree."""
        weights = set()
        for primary, canary, _ in self._owned(route):
            pw = int((primary or {}).get("weight", DEFAULT_WEIGHT))
            cw = int(canary.get("weight", DEFAULT_WEIGHT)) if canary is not None else 0
            if pw + cw <= 0:
                raise RouterError("ZeroWeights", "both owned backendRefs have weight 0")
            weights.add(round(100 * cw / (pw + cw)))
        return weights.pop() if len(weights) == 1 else None

    def with_weight(self, route: JSON, weight: int) -> JSON:
        """A copy of the route with the owned backendRefs set to ``weight`` percent."""
        updated = copy.deepcopy(route)
        namespace = self._backend_namespace()
        for primary, canary, refs in self._owned(updated):
            assert primary is not None
            share = int(primary.get("weight", DEFAULT_WEIGHT))
            share += int(canary.get("weight", DEFAULT_WEIGHT)) if canary is not None else 0
            if share <= 0:
                raise RouterError("ZeroWeights", "both owned backendRefs have weight 0")
            if share < 100:
                factor = math.ceil(100 / share)
                for ref in refs:
                    if ref is not primary and ref is not canary:
                        ref["weight"] = int(ref.get("weight", DEFAULT_WEIGHT)) * factor
                share *= factor
            if any(int(r.get("weight", DEFAULT_WEIGHT)) > MAX_WEIGHT for r in refs) or (
                share > MAX_WEIGHT
            ):
                raise RouterError(
                    "WeightsTooLarge",
                    f"a backendRef weight would pass the Gateway API's {MAX_WEIGHT:,}",
                )
            if canary is None:
                canary = {"name": self.canary, "port": self.port}
                if namespace is not None:
                    canary["namespace"] = namespace
                refs.insert(refs.index(primary) + 1, canary)
            canary["weight"] = round(share * weight / 100)
            primary["weight"] = share - canary["weight"]
        return updated

    async def get_weight(self) -> int | None:
        return self.weight_of(await self._read())

    async def set_weight(self, weight: int) -> int:
        if not 0 <= weight <= 100:
            raise ValueError(f"weight {weight} out of range")
        for _ in range(self.retries + 1):
            route = await self._read()
            if self.weight_of(route) == weight and self._complete(route):
                return weight
            try:
                self.writes += 1
                await self.kube.replace(
                    HTTPROUTES, self.route_namespace, self.route, self.with_weight(route, weight)
                )
            except ConflictError:
                continue
            seen = await self.get_weight()
            if seen != weight:
                raise RouterError(
                    "VerifyFailed", f"wrote canary weight {weight}% but read back {seen}"
                )
            return weight
        raise RouterError(
            "Conflict", f"HTTPRoute changed under every one of {self.retries + 1} writes"
        )

    def _complete(self, route: JSON) -> bool:
        return all(canary is not None for _, canary, _ in self._owned(route))
