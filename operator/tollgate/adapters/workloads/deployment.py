"""The Flagger model for a Canary: the user's Deployment is the candidate, Git owns it.

Tollgate creates and owns ``<name>-primary`` (the stable version) and the Services
``<name>-primary`` and ``<name>-canary`` (owner references to the Canary, so that GitOps tools
show them under it). A new pod template of the target is a new revision
(a hash of the template); promotion copies the template to primary; a rollback leaves the
target alone (Git still holds it) and sends all traffic to primary. Primary pods carry the
target's labels with every selector value suffixed ``-primary``, so the two Services (and the
metric queries, by pod name) never select each other's pods.

When the Canary is deleted, :meth:`DeploymentWorkload.release` leaves the three objects
running without owner references (the stable keeps serving), or :meth:`revert` hands the
traffic back to the user's Deployment, when it runs the stable revision.
"""

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tollgate.adapters.kube.client import ConflictError, KubeClient, NotFoundError
from tollgate.adapters.kube.recent import Recent
from tollgate.adapters.kube.resources import DEPLOYMENTS, SERVICES

JSON = dict[str, Any]
REVISION_ANNOTATION = "tollgate.dev/revision"
TRACK_LABEL = "tollgate.dev/track"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tollgate"}


def owner_reference(owner: JSON) -> JSON:
    """The reference that makes ``owner`` (the Canary) the controller of an object."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def _owned_by(obj: JSON, uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def ours(obj: JSON) -> bool:
    """Made by Tollgate (the managed-by label), so Tollgate may correct and adopt it."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


def template_revision(template: JSON) -> str:
    """A stable short hash of a pod template: the revision the rollout is about."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def deployment_ready(deployment: JSON) -> bool:
    """Rolled out and available: the controller saw the latest spec and every replica is up."""
    spec, status = deployment.get("spec", {}), deployment.get("status", {}) or {}
    replicas = spec.get("replicas", 1)
    generation = deployment.get("metadata", {}).get("generation", 0)
    return bool(
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", replicas) <= replicas
    )


@dataclass(frozen=True)
class WorkloadState:
    """What the engine needs to know about the two tracks."""

    revision: str | None
    target_ready: bool
    stable_revision: str | None
    problem: str | None = None
    missing: bool = False  # the target was read and does not exist


class DeploymentWorkload:
    """The target Deployment and its primary, in one namespace."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        target: str,
        port: int,
        target_port: int | None,
        port_name: str,
        owner: JSON | None = None,
        recent: Recent | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.target = target
        self.primary = f"{target}-primary"
        self.canary_service = f"{target}-canary"
        self.port = port
        self.target_port = target_port or port
        self.port_name = port_name
        self.owner = owner
        self.recent = recent  # Services seen lately are not read again every tick

    def _owned(self) -> JSON:
        return {"ownerReferences": [owner_reference(self.owner)]} if self.owner else {}

    async def _adopt(self, resource: Any, obj: JSON) -> None:
        """Give an object made before owner references (or by another Canary) ours."""
        if self.owner is None or _owned_by(obj, self.owner["metadata"]["uid"]) or not ours(obj):
            return
        name = obj["metadata"]["name"]
        await self.kube.patch(resource, self.namespace, name, {"metadata": self._owned()})

    async def _get(self, name: str) -> JSON | None:
        try:
            return await self.kube.get(DEPLOYMENTS, self.namespace, name)
        except NotFoundError:
            return None

    def _primary_labels(self, target: JSON, labels: dict[str, str]) -> dict[str, str]:
        keys = target["spec"]["selector"].get("matchLabels", {})
        out = {k: (f"{v}-primary" if k in keys else v) for k, v in labels.items()}
        out[TRACK_LABEL] = "primary"
        return out

    def _primary_from(self, target: JSON, revision: str) -> JSON:
        template = copy.deepcopy(target["spec"]["template"])
        meta = template.setdefault("metadata", {})
        meta["labels"] = self._primary_labels(target, meta.get("labels", {}))
        meta.setdefault("annotations", {})[REVISION_ANNOTATION] = revision
        selector = {
            k: f"{v}-primary" for k, v in target["spec"]["selector"].get("matchLabels", {}).items()
        }
        selector[TRACK_LABEL] = "primary"
        body: JSON = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.primary,
                "namespace": self.namespace,
                "labels": {**MANAGED_BY, TRACK_LABEL: "primary"},
                "annotations": {REVISION_ANNOTATION: revision},
                **self._owned(),
            },
            "spec": {
                "replicas": target["spec"].get("replicas", 1),
                "selector": {"matchLabels": selector},
                "template": template,
            },
        }
        return body

    def _service(self, name: str, selector: dict[str, str]) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(MANAGED_BY),
                **self._owned(),
            },
            "spec": {
                "selector": selector,
                "ports": [
                    {"name": self.port_name, "port": self.port, "targetPort": self.target_port}
                ],
            },
        }

    async def ensure(self) -> WorkloadState:
        """Create primary and the Services when missing; report both tracks."""
        target = await self._get(self.target)
        if target is None:
            return WorkloadState(
                None, False, None, f"Deployment {self.target} not found", missing=True
            )
        revision = template_revision(target["spec"]["template"])
        primary = await self._get(self.primary)
        if primary is None:
            primary = await self._create(DEPLOYMENTS, self._primary_from(target, revision))
        else:
            await self._adopt(DEPLOYMENTS, primary)
        match = target["spec"]["selector"].get("matchLabels", {})
        await self._ensure_service(self.canary_service, dict(match))
        await self._ensure_service(self.primary, self._primary_selector(match))
        stable = (primary.get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION)
        return WorkloadState(
            revision=revision,
            target_ready=deployment_ready(target),
            stable_revision=stable if deployment_ready(primary) else None,
        )

    async def _create(self, resource: Any, body: JSON) -> JSON:
        try:
            return await self.kube.create(resource, self.namespace, body)
        except ConflictError:  # created meanwhile (another replica, a retry)
            return await self.kube.get(resource, self.namespace, body["metadata"]["name"])

    @staticmethod
    def _primary_selector(match: dict[str, str]) -> dict[str, str]:
        return {**{k: f"{v}-primary" for k, v in match.items()}, TRACK_LABEL: "primary"}

    async def _ensure_service(self, name: str, selector: dict[str, str]) -> None:
        """Create the Service, or put its selector right: a primary Service that selected the
        target's pods (after a revert, or an edit) would serve an unanalysed revision."""
        key = ("services", self.namespace, name)
        if self.recent is not None and self.recent.fresh(key):
            return
        try:
            found = await self.kube.get(SERVICES, self.namespace, name)
        except NotFoundError:
            await self._create(SERVICES, self._service(name, selector))
        else:
            if ours(found):  # a Service the user made is theirs to get right
                await self._select(found, selector)
                await self._adopt(SERVICES, found)
        if self.recent is not None:
            self.recent.remember(key)

    async def release(self) -> list[str]:
        """Drop our owner references from primary and both Services, which keep running
        (deleting the Canary must not garbage-collect what serves its traffic)."""
        released = []
        uid = self.owner["metadata"]["uid"] if self.owner else None
        if self.recent is not None:  # the next Canary of this target checks them afresh
            names = {("services", self.namespace, n) for n in (self.primary, self.canary_service)}
            self.recent.forget(lambda key: key in names)
        for resource, name in (
            (DEPLOYMENTS, self.primary),
            (SERVICES, self.primary),
            (SERVICES, self.canary_service),
        ):
            try:
                obj = await self.kube.get(resource, self.namespace, name)
            except NotFoundError:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != uid]
            if len(kept) != len(refs):
                patch = {"metadata": {"ownerReferences": kept or None}}
                await self.kube.patch(resource, self.namespace, name, patch)
            released.append(f"{resource.kind} {name}")
        return released

    async def revertible(self) -> str | None:
        """Why traffic cannot go back to the target Deployment itself; None when it can: it
        exists, is ready and runs the revision primary runs (the last one analysed)."""
        target, primary = await self._get(self.target), await self._get(self.primary)
        if target is None:
            return f"Deployment {self.target} does not exist"
        if primary is None:
            return None  # nothing was ever moved off the target
        stable = (primary["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        revision = template_revision(target["spec"]["template"])
        if revision != stable:
            return (
                f"Deployment {self.target} runs revision {revision}, which was never promoted "
                f"(stable: {stable})"
            )
        if not deployment_ready(target):
            return f"Deployment {self.target} is not ready"
        return None

    async def revert(self) -> None:
        """Traffic back on the target's own pods: the primary Service selects them (so a
        route naming ``<name>-primary``, as GitOps keeps it, still serves), then primary goes.

        Call only when :meth:`revertible` says None, with the route's weight already on
        primary."""
        target = await self._get(self.target)
        if target is None:
            return
        match = dict(target["spec"]["selector"].get("matchLabels", {}))
        try:
            service = await self.kube.get(SERVICES, self.namespace, self.primary)
        except NotFoundError:
            pass
        else:
            await self._select(service, match)
        await self.kube.delete(DEPLOYMENTS, self.namespace, self.primary)

    async def _select(self, service: JSON, selector: dict[str, str]) -> None:
        """Set a Service's selector in one write (a merge patch nulls the keys that go)."""
        current = (service.get("spec") or {}).get("selector") or {}
        if current == selector:
            return
        change: dict[str, str | None] = {k: None for k in current if k not in selector}
        change.update(selector)
        name = service["metadata"]["name"]
        await self.kube.patch(SERVICES, self.namespace, name, {"spec": {"selector": change}})

    async def promote(self, revision: str) -> bool:
        """Copy the target's template to primary; False when the target moved on meanwhile."""
        target = await self._get(self.target)
        if target is None or template_revision(target["spec"]["template"]) != revision:
            return False
        primary = await self._get(self.primary)
        if primary is None:
            await self._create(DEPLOYMENTS, self._primary_from(target, revision))
            return True
        current = (primary["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        if current == revision:
            return True  # already done: no write
        desired = self._primary_from(target, revision)
        primary["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
        primary["spec"]["template"] = desired["spec"]["template"]
        primary["spec"]["replicas"] = desired["spec"]["replicas"]
        await self.kube.replace(DEPLOYMENTS, self.namespace, self.primary, primary)
        return True
