"""Recording a rollout's status: one merge patch on /status, and none when nothing changed.

Comparison is on the parsed model, so formatting differences (timestamps, key order) never
cause a write. Fields that became empty are sent as null, since a merge patch would otherwise
keep their old values. With the resourceVersion of the object the decision was made from, the
write is conditional: a decision taken on a stale read loses with a 409 instead of landing.
"""

from typing import Any

from pydantic import ValidationError

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.fitting import fit, status_fields, status_schema, to_json
from tollgate.adapters.kube.resources import Resource
from tollgate.api.status import RolloutStatus


def wire(status: RolloutStatus) -> dict[str, Any]:
    """A status as stored: camelCase, empty optionals omitted, fitted to the CRD's schema."""
    dumped = status.model_dump(by_alias=True, exclude_none=True, mode="python")
    fitted: dict[str, Any] = to_json(fit(dumped, status_schema()))
    return fitted


def read_status(raw: Any) -> tuple[RolloutStatus, list[str]]:
    """The stored status, and the fields dropped because the model refused them.

    A field the model cannot read is dropped (the next write repairs it) rather than failing
    every reconcile on it; dropping ``phase`` starts the object over from Initializing, where
    the engine puts the weight back on the stable version.
    """
    doc = dict(raw) if isinstance(raw, dict) else {}
    dropped: list[str] = []
    while True:
        try:
            return RolloutStatus.model_validate(doc), dropped
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]} & set(doc)
            if not bad:
                return RolloutStatus(), [*dropped, *sorted(doc)]
            dropped.extend(sorted(bad))
            for key in bad:
                doc.pop(key, None)


def status_patch(old_raw: dict[str, Any] | None, new: RolloutStatus) -> dict[str, Any] | None:
    """The merge patch from the stored status to ``new``; None when they are equal.

    Both sides are compared as they would be stored, so a value that fitting changes (a cut
    string) does not count as a change on every tick.
    """
    old_raw = old_raw or {}
    body = wire(new)
    old, dropped = read_status(old_raw)
    if not dropped:  # a field the model refused is repaired by a write
        before = wire(old)
        if before == body:
            return None
        try:  # as it reads back: a dropped NaN comes back as its field's default
            if wire(RolloutStatus.model_validate(body)) == before:
                return None
        except ValidationError:
            pass
    known = status_fields()
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
