"""The API test server's object methods, over HTTP to a real API server.

Scenario helpers (``tollgate.testing.scenario``) and whole-system tests read and write objects
through ``get``, ``create``, ``patch`` and friends. :class:`ClusterApi` gives them the same
calls against any cluster a kubeconfig names, so that the same scenario runs on the local
control plane, on kind, or on the in-memory server where only it can produce the case.
"""

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from tollgate.testing.cluster import ClusterAccess

# resource reference -> (API group, version); core resources have the group ""
KNOWN: dict[str, tuple[str, str]] = {
    "canaries.tollgate.dev": ("tollgate.dev", "v1alpha1"),
    "promptreleases.tollgate.dev": ("tollgate.dev", "v1alpha1"),
    "httproutes.gateway.networking.k8s.io": ("gateway.networking.k8s.io", "v1"),
    "deployments.apps": ("apps", "v1"),
    "replicasets.apps": ("apps", "v1"),
    "configmaps": ("", "v1"),
    "services": ("", "v1"),
    "events": ("", "v1"),
    "pods": ("", "v1"),
    "namespaces": ("", "v1"),
    "serviceaccounts": ("", "v1"),
    "secrets": ("", "v1"),
    "roles.rbac.authorization.k8s.io": ("rbac.authorization.k8s.io", "v1"),
    "rolebindings.rbac.authorization.k8s.io": ("rbac.authorization.k8s.io", "v1"),
}
MERGE_PATCH = "application/merge-patch+json"


class ClusterApiError(RuntimeError):
    """The API server refused a request."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        super().__init__(f"{response.request.method} {response.request.url.path}: "
                         f"{response.status_code} {response.text[:300]}")  # fmt: skip


def path_of(resource: str, namespace: str | None, name: str | None = None) -> str:
    """The URL path of a resource (``plural.group`` or a core plural), as the server serves it."""
    if resource not in KNOWN:
        raise KeyError(f"no API path known for {resource}")
    group, version = KNOWN[resource]
    plural = resource.split(".", 1)[0]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is not None and plural != "namespaces":
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name is not None else base


class ClusterApi:
    """Objects of a real cluster, as the kubeconfig's user (synchronous, for tests and tools)."""

    def __init__(self, access: ClusterAccess) -> None:
        self.access = access
        self.http = access.client(timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ClusterApi":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _checked(self, response: httpx.Response) -> dict[str, Any]:
        if not response.is_success:
            raise ClusterApiError(response)
        body: dict[str, Any] = response.json()
        return body

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None."""
        response = self.http.get(path_of(resource, namespace, name))
        if response.status_code == 404:
            return None
        return self._checked(response)

    def list_objects(
        self, resource: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        listed = self._checked(self.http.get(path_of(resource, namespace), params=params))
        items: list[dict[str, Any]] = listed.get("items") or []
        return items

    def create(
        self, resource: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        namespace = namespace or (body.get("metadata") or {}).get("namespace")
        return self._checked(self.http.post(path_of(resource, namespace), json=dict(body)))

    def create_subresource(
        self, resource: str, namespace: str | None, name: str, sub: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST to a subresource (``serviceaccounts/<name>/token``, ``pods/<name>/eviction``)."""
        path = f"{path_of(resource, namespace, name)}/{sub}"
        return self._checked(self.http.post(path, json=dict(body)))

    def replace(
        self, resource: str, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._checked(self.http.put(path_of(resource, namespace, name), json=dict(body)))

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        response = self.http.patch(
            path_of(resource, namespace, name),
            content=json.dumps(patch),
            headers={"Content-Type": content_type},
        )
        return self._checked(response)

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        response = self.http.delete(path_of(resource, namespace, name))
        if response.status_code != 404:
            self._checked(response)

    def configmap_reader_token(self, namespace: str, configmap: str, name: str = "app") -> str:
        """A token of ServiceAccount ``name``, allowed to read and watch ``configmap`` only
        (what an app on the SDK's ConfigMapSource needs, and nothing more)."""
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
        self.create("serviceaccounts", sa, namespace)
        rule = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [configmap],
                "verbs": ["get", "list", "watch"]}  # fmt: skip
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": name}, "rules": [rule]}  # fmt: skip
        self.create("roles.rbac.authorization.k8s.io", role, namespace)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        self.create("rolebindings.rbac.authorization.k8s.io", binding, namespace)
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        issued = self.create_subresource("serviceaccounts", namespace, name, "token", request)
        token: str = issued["status"]["token"]
        return token
