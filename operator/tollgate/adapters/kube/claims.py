"""One rollout per target: a Canary claims its Deployment and its HTTPRoute.

Two Canaries on one Deployment (or one route) each set the weight every tick and flip it back
and forth, silently. So the first one writes ``tollgate.dev/claimed-by: <namespace>/<name>/<uid>``
on each object it drives, as Argo Rollouts does; a second one finds the claim, is refused with
a reason, and touches nothing. A claim whose holder no longer exists (deleted while the
operator was down, or re-created with a new uid) is taken over.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tollgate.adapters.kube.client import KubeClient, NotFoundError
from tollgate.adapters.kube.recent import Recent
from tollgate.adapters.kube.resources import Resource

CLAIM_ANNOTATION = "tollgate.dev/claimed-by"


@dataclass(frozen=True)
class Claimant:
    """The rollout object that holds a claim."""

    namespace: str
    name: str
    uid: str

    def text(self) -> str:
        return f"{self.namespace}/{self.name}/{self.uid}"

    @classmethod
    def parse(cls, text: str | None) -> "Claimant | None":
        parts = (text or "").split("/")
        return cls(*parts) if len(parts) == 3 and all(parts) else None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


async def claim(
    kube: KubeClient,
    resource: Resource,
    namespace: str,
    name: str,
    me: Claimant,
    holds: Callable[[Claimant], Awaitable[bool]],
    claimed: Recent | None = None,
) -> Claimant | None:
    """Claim one object for ``me``: None when it is ours (or absent), else who holds it.

    ``holds`` tells whether another claimant still exists. The write is conditional on the
    object as read, so two claimants racing for it cannot both win. A claim seen to be ours is
    not read again for ``Recent``'s time (a GET per object per tick was a sixth of the
    operator's CPU at 200 Canaries).
    """
    if claimed is not None and claimed.fresh((resource.plural, namespace, name, me.uid)):
        return None
    try:
        obj = await kube.get(resource, namespace, name)
    except NotFoundError:
        return None  # nothing to drive yet; claimed once it exists
    meta: dict[str, Any] = obj.get("metadata") or {}
    current = Claimant.parse((meta.get("annotations") or {}).get(CLAIM_ANNOTATION))
    if current == me:
        if claimed is not None:
            claimed.remember((resource.plural, namespace, name, me.uid))
        return None
    if current is not None and await holds(current):
        return current
    patch = {
        "metadata": {
            "annotations": {CLAIM_ANNOTATION: me.text()},
            "resourceVersion": meta.get("resourceVersion"),
        }
    }
    await kube.patch(resource, namespace, name, patch)
    if claimed is not None:
        claimed.remember((resource.plural, namespace, name, me.uid))
    return None


async def release(
    kube: KubeClient, resource: Resource, namespace: str, name: str, me: Claimant
) -> None:
    """Drop ``me``'s claim on one object (when the rollout object goes)."""
    try:
        obj = await kube.get(resource, namespace, name)
    except NotFoundError:
        return
    meta: dict[str, Any] = obj.get("metadata") or {}
    if Claimant.parse((meta.get("annotations") or {}).get(CLAIM_ANNOTATION)) != me:
        return
    patch = {
        "metadata": {
            "annotations": {CLAIM_ANNOTATION: None},
            "resourceVersion": meta.get("resourceVersion"),
        }
    }
    await kube.patch(resource, namespace, name, patch)
