"""Recording a rollout's status: one merge patch on /status, and none when nothing changed.

Comparison is on the parsed model, so formatting differences (timestamps, key order) never
cause a write. Fields that became empty are sent as null, since a merge patch would otherwise
keep their old values. With the resourceVersion of the object the decision was made from, the
write is conditional: a decision taken on a stale read loses with a 409 instead of landing.
"""

from typing import Any

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.resources import Resource
from tollgate.api.status import RolloutStatus


def wire(status: RolloutStatus) -> dict[str, Any]:
    """A status as stored: camelCase, empty optionals omitted."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def status_patch(old_raw: dict[str, Any] | None, new: RolloutStatus) -> dict[str, Any] | None:
    """The merge patch from the stored status to ``new``; None when they are equal."""
    old_raw = old_raw or {}
    if RolloutStatus.model_validate(old_raw) == new:
        return None
    body = wire(new)
    known = set(RolloutStatus.model_json_schema(by_alias=True)["properties"])
    for key in old_raw:
        if key in known and key not in body:
            body[key] = None
    return body


async def write_status(
    kube: KubeClient,
    resource: Resource,
    namespace: str,
    name: str,
    old_raw: dict[str, Any] | None,
    new: RolloutStatus,
    resource_version: str | None = None,
) -> dict[str, Any] | None:
    """Patch /status when it changed; the object as written, or None when nothing was sent."""
    patch = status_patch(old_raw, new)
    if patch is None:
        return None
    body: dict[str, Any] = {"status": patch}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return await kube.patch(resource, namespace, name, body, subresource="status")
