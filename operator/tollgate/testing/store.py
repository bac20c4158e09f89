"""Object storage with the API-server semantics kopf and our controllers depend on.

Stock kmock stores objects as plain dicts: no resourceVersion, uid, generation or timestamps.
kopf then never gets its finalizer JSON patch past ``test /metadata/resourceVersion`` and
re-handles stale watch events. This store adds what a real server guarantees:

* a global, increasing ``resourceVersion`` per write, a ``uid`` and a ``creationTimestamp``;
* ``metadata.generation`` bumped on spec changes only (not on metadata or status writes),
  and once more when deletion is marked, as ``kube-apiserver`` does;
* optimistic concurrency: a stale ``metadata.resourceVersion`` in a write is a 409 Conflict;
* the status subresource: for kinds that declare it, a main write keeps the stored status and
  a ``/status`` write changes nothing but status;
* ``generateName``; no-op writes change nothing (no new resourceVersion, no watch event);
* finalizers: deleting an object with finalizers only sets ``deletionTimestamp`` (MODIFIED),
  and the object goes (DELETED) when a write empties its finalizers;
* a namespace's deletion deletes what it contains; it lingers as Terminating while any of
  its objects wait on finalizers;
* an event log that watches replay from any ``resourceVersion`` still retained (else 410).

It knows nothing of HTTP, so tests can drive it directly and the server stays a thin layer.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import random
import string
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tollgate.testing import patches
from tollgate.testing.resources import ResourceSpec
from tollgate.testing.selection import Matcher

Body = dict[str, Any]
ObjectKey = tuple[str | None, str]  # (namespace or None for cluster-scoped, name)
ResourceKey = tuple[str, str, str]  # (group, version, plural)

_NAME_SUFFIX_ALPHABET = "".join(
    c for c in string.ascii_lowercase + string.digits if c not in "aeiou013"
)
_TOP_LEVEL_NON_SPEC = frozenset({"apiVersion", "kind", "metadata", "status"})
_SERVER_MANAGED_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


class ApiError(Exception):
    """A failure the server reports as a Kubernetes ``Status`` with this HTTP code."""

    def __init__(
        self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


def status_body(
    status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Kubernetes ``Status`` object, as error responses and watch ERROR events carry."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    if details:
        body["details"] = dict(details)
    return body


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change, as watch streams deliver it. ``object`` is never mutated after commit."""

    resource_version: int
    resource: ResourceKey
    namespace: str | None
    type: str  # ADDED, MODIFIED, DELETED
    object: Body
    #: The state before this change (None for ADDED), so selector watches see objects leave.
    old: Body | None = None


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _spec_part(body: Mapping[str, Any]) -> dict[str, Any]:
    """What ``generation`` tracks: everything but apiVersion, kind, metadata and status."""
    return {key: value for key, value in body.items() if key not in _TOP_LEVEL_NON_SPEC}


def _details(spec: ResourceSpec, name: str | None) -> dict[str, Any]:
    return {"name": name or "", "group": spec.group, "kind": spec.plural}


class ObjectStore:
    """All objects of all resources, plus the event log that feeds watch streams."""

    def __init__(
        self,
        *,
        history_limit: int = 10_000,
        clock: Callable[[], datetime.datetime] = _utcnow,
        seed: int | None = None,
    ) -> None:
        self._objects: dict[ResourceKey, dict[ObjectKey, Body]] = {}
        self._specs: dict[ResourceKey, ResourceSpec] = {}
        self._rv = 0
        self._log: list[WatchEvent] = []
        self._log_first_rv = 1
        self._history_limit = max(history_limit, 2)
        self._clock = clock
        self._random = random.Random(seed)
        self._wakeup = asyncio.Event()
        #: Called after every committed change (e.g. to register CRDs as they are created).
        self.hooks: list[Callable[[ResourceSpec, WatchEvent], None]] = []

    # -- reading ------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out (0 before any write)."""
        return self._rv

    @property
    def wakeup(self) -> asyncio.Event:
        """An event set (and replaced) on the next commit; take it before reading the log."""
        return self._wakeup

    def get(self, spec: ResourceSpec, namespace: str | None, name: str) -> Body:
        """A copy of the object, or 404."""
        return copy.deepcopy(self._get(spec, namespace, name))

    def find(self, spec: ResourceSpec, namespace: str | None, name: str) -> Body | None:
        bucket = self._objects.get(spec.key, {})
        found = bucket.get((namespace if spec.namespaced else None, name))
        return None if found is None else copy.deepcopy(found)

    def list_objects(
        self,
        spec: ResourceSpec,
        namespace: str | None = None,
        matchers: Iterable[Matcher] = (),
    ) -> list[Body]:
        """Stored objects (not copies: do not mutate), all namespaces when ``namespace`` is None."""
        checks = list(matchers)
        return [
            body
            for (ns, _), body in sorted(
                self._objects.get(spec.key, {}).items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
            )
            if (namespace is None or ns == namespace) and all(check(body) for check in checks)
        ]

    def events_since(self, resource_version: int) -> list[WatchEvent]:
        """Events newer than ``resource_version``; 410 Gone if some were already dropped."""
        index = resource_version + 1 - self._log_first_rv
        if index < 0:
            raise ApiError(
                410,
                "Expired",
                f"too old resource version: {resource_version} ({self._log_first_rv - 1})",
            )
        return self._log[index:]

    def poke(self) -> None:
        """Wake every watch stream (on commits, and when the server shuts down)."""
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    # -- writing ------------------------------------------------------------------------------

    def create(self, spec: ResourceSpec, namespace: str | None, body: Mapping[str, Any]) -> Body:
        """POST: a new object with server-assigned metadata; 409 if the name is taken."""
        new = self._checked_body(body)
        meta = new["metadata"]
        namespace = self._object_namespace(spec, namespace, meta)
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError(
                    422,
                    "Invalid",
                    f"{spec.kind}.{spec.group or 'core'} is invalid: metadata.name: "
                    "Required value: name or generateName is required",
                    _details(spec, None),
                )
            name = self._generate_name(spec, namespace, str(prefix))
        bucket = self._objects.setdefault(spec.key, {})
        if (namespace, name) in bucket:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{spec.qualified} "{name}" already exists',
                _details(spec, name),
            )
        meta["name"] = name
        if spec.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        meta["creationTimestamp"] = rfc3339(self._clock())
        meta["generation"] = 1
        new["apiVersion"] = spec.api_version
        new["kind"] = spec.kind
        if spec.has_status:
            new.pop("status", None)
        self._apply_defaults(spec, new)
        self._specs[spec.key] = spec
        return self._commit(spec, "ADDED", (namespace, name), new)

    def replace(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Body:
        """PUT: replace the object (or only its status via ``/status``)."""
        old = self._get(spec, namespace, name)
        new = self._checked_body(body)
        new["metadata"].setdefault("name", name)
        if spec.namespaced and namespace is not None:
            new["metadata"].setdefault("namespace", namespace)
        return self._write(spec, old, new, subresource)

    def patch(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = patches.MERGE_PATCH,
        subresource: str | None = None,
    ) -> Body:
        """PATCH: merge, strategic-merge (as merge) or JSON patch, by Content-Type."""
        old = self._get(spec, namespace, name)
        try:
            new = patches.apply_patch(old, content_type, patch)
        except patches.PatchError as exc:
            raise ApiError(exc.status, exc.reason, exc.message, _details(spec, name)) from exc
        return self._write(spec, old, self._checked_body(new), subresource)

    def delete(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
    ) -> Body:
        """DELETE: mark for deletion while finalizers remain, else remove (cascading namespaces)."""
        old = self._get(spec, namespace, name)
        meta = old["metadata"]
        for field in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != meta.get(field):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: {wanted}, "
                    f"{field} in object meta: {meta.get(field)}",
                    _details(spec, name),
                )
        key: ObjectKey = (meta.get("namespace") if spec.namespaced else None, name)
        if spec.key == ("", "v1", "namespaces"):
            self._delete_namespace_contents(name)
        if meta.get("finalizers") or (
            spec.key == ("", "v1", "namespaces") and self._has_objects(name)
        ):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = rfc3339(self._clock())
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if "generation" in new["metadata"]:  # as real servers do when marking deletion
                new["metadata"]["generation"] += 1
            if spec.key == ("", "v1", "namespaces"):
                new.setdefault("status", {})["phase"] = "Terminating"
            return self._commit(spec, "MODIFIED", key, new)
        return self._commit(spec, "DELETED", key, copy.deepcopy(old))

    # -- internals ----------------------------------------------------------------------------

    def _get(self, spec: ResourceSpec, namespace: str | None, name: str) -> Body:
        found = self._objects.get(spec.key, {}).get((namespace if spec.namespaced else None, name))
        if found is None:
            raise ApiError(
                404, "NotFound", f'{spec.qualified} "{name}" not found', _details(spec, name)
            )
        return found

    @staticmethod
    def _checked_body(body: Any) -> Body:
        if not isinstance(body, Mapping):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        new = copy.deepcopy(dict(body))
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be a JSON object")
        return new

    @staticmethod
    def _object_namespace(
        spec: ResourceSpec, namespace: str | None, meta: Mapping[str, Any]
    ) -> str | None:
        if not spec.namespaced:
            return None
        in_body = meta.get("namespace")
        if namespace and in_body and in_body != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        return str(namespace or in_body or "default")

    def _generate_name(self, spec: ResourceSpec, namespace: str | None, prefix: str) -> str:
        bucket = self._objects.get(spec.key, {})
        while True:
            name = prefix + "".join(self._random.choices(_NAME_SUFFIX_ALPHABET, k=5))
            if (namespace, name) not in bucket:
                return name

    @staticmethod
    def _apply_defaults(spec: ResourceSpec, body: Body) -> None:
        if spec.key == ("", "v1", "namespaces"):
            body["status"] = {"phase": "Active"}
        elif spec.key == ("apps", "v1", "deployments"):
            body.setdefault("spec", {}).setdefault("replicas", 1)

    def _write(self, spec: ResourceSpec, old: Body, new: Body, subresource: str | None) -> Body:
        old_meta: dict[str, Any] = old["metadata"]
        wanted_rv = new["metadata"].get("resourceVersion")
        name = old_meta["name"]
        if wanted_rv and str(wanted_rv) != old_meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {spec.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                _details(spec, name),
            )
        if new["metadata"].get("name", name) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({new['metadata'].get('name')}) does not match the name "
                f"on the URL ({name})",
            )
        if (
            spec.namespaced
            and new["metadata"].get("namespace", old_meta["namespace"]) != old_meta["namespace"]
        ):
            raise ApiError(400, "BadRequest", "the namespace of an object cannot be changed")

        if spec.has_status and subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif spec.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

        meta = new["metadata"]
        meta["name"] = name
        if spec.namespaced:
            meta["namespace"] = old_meta["namespace"]
        else:
            meta.pop("namespace", None)
        for field in _SERVER_MANAGED_META:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        spec_changed = _spec_part(old) != _spec_part(new)
        meta["generation"] = int(old_meta.get("generation", 1)) + (1 if spec_changed else 0)
        new["apiVersion"] = spec.api_version
        new["kind"] = spec.kind
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)

        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise ApiError(
                    422,
                    "Forbidden",
                    f"metadata.finalizers: Forbidden: no new finalizers can be added if the "
                    f"object is being deleted, found new finalizers {sorted(added)!r}",
                    _details(spec, name),
                )

        if new == old:
            return copy.deepcopy(old)  # a no-op: no new resourceVersion, no watch event
        key: ObjectKey = (old_meta.get("namespace") if spec.namespaced else None, name)
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit(spec, "DELETED", key, new)
        return self._commit(spec, "MODIFIED", key, new)

    def _commit(self, spec: ResourceSpec, event_type: str, key: ObjectKey, body: Body) -> Body:
        self._rv += 1
        body["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(spec.key, {})
        old = bucket.get(key) if event_type != "ADDED" else None
        if event_type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = body
        self._specs[spec.key] = spec
        event = WatchEvent(self._rv, spec.key, key[0], event_type, body, old)
        self._log.append(event)
        if len(self._log) > self._history_limit:
            del self._log[: len(self._log) // 2]
            self._log_first_rv = self._log[0].resource_version
        self.poke()
        for hook in list(self.hooks):
            hook(spec, event)
        if event_type == "DELETED" and key[0] is not None:
            self._finish_namespace(key[0])
        return copy.deepcopy(body)

    def _has_objects(self, namespace: str) -> bool:
        return any(ns == namespace for bucket in self._objects.values() for (ns, _) in bucket)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for resource, bucket in list(self._objects.items()):
            spec = self._specs.get(resource)
            if spec is None or not spec.namespaced:
                continue
            for ns, name in [key for key in bucket if key[0] == namespace]:
                if (ns, name) in bucket:
                    self.delete(spec, ns, name)

    def _finish_namespace(self, namespace: str) -> None:
        """Remove a Terminating namespace once its last object is gone."""
        ns_key: ResourceKey = ("", "v1", "namespaces")
        ns_body = self._objects.get(ns_key, {}).get((None, namespace))
        ns_spec = self._specs.get(ns_key)
        if ns_body is None or ns_spec is None or not ns_body["metadata"].get("deletionTimestamp"):
            return
        if ns_body["metadata"].get("finalizers") or self._has_objects(namespace):
            return
        self._commit(ns_spec, "DELETED", (None, namespace), copy.deepcopy(ns_body))
