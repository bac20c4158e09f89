"""An async Kubernetes API client on httpx.

The official ``kubernetes`` package is synchronous; inside kopf's event loop it would block.
Credentials come from kopf's own login, shared and renewed (``credentials.py``); every request
goes through httpx. Errors come back as :class:`KubeError` subclasses carrying
the HTTP status, so callers can tell a conflict (409) from a missing object (404).
"""

import json
from typing import TYPE_CHECKING, Any

import httpx

from tollgate.adapters.kube.resources import Resource

if TYPE_CHECKING:
    from tollgate.adapters.kube.credentials import Credentials

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """The API server refused or failed a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(KubeError):
    """404: the object (or its resource type) does not exist."""


class ConflictError(KubeError):
    """409: a write lost a race (stale resourceVersion) or the object already exists."""


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        reason, message = body.get("reason", ""), body.get("message", response.text)
    except ValueError:
        reason, message = "", response.text
    kind = {404: NotFoundError, 409: ConflictError}.get(response.status_code, KubeError)
    raise kind(response.status_code, reason or response.reason_phrase, message)


class KubeClient:
    """A few verbs over the Kubernetes REST API, async."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    @classmethod
    async def from_credentials(
        cls, credentials: "Credentials", timeout: float = 10.0
    ) -> "KubeClient":
        """A client signed by ``credentials`` (kopf's login), renewed on expiry and on 401."""
        from tollgate.adapters.kube.credentials import CredentialsAuth, client_options

        login = await credentials.current()
        http = httpx.AsyncClient(
            **client_options(login),
            headers={"Accept": "application/json"},
            auth=CredentialsAuth(credentials),
            timeout=timeout,
        )
        return cls(http)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, resource: Resource, namespace: str | None, name: str) -> JSON:
        response = await self.http.get(resource.path(namespace, name))
        _raise_for(response)
        body: JSON = response.json()
        return body

    async def list_objects(
        self, resource: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else None
        response = await self.http.get(resource.path(namespace), params=params)
        _raise_for(response)
        items: list[JSON] = response.json().get("items", [])
        return items

    async def create(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        response = await self.http.post(resource.path(namespace), json=body)
        _raise_for(response)
        created: JSON = response.json()
        return created

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: JSON
    ) -> JSON:
        """PUT: the body's metadata.resourceVersion makes it conditional (409 when stale)."""
        response = await self.http.put(resource.path(namespace, name), json=body)
        _raise_for(response)
        replaced: JSON = response.json()
        return replaced

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: JSON | list[JSON],
        *,
        subresource: str | None = None,
        content_type: str = MERGE,
    ) -> JSON:
        """A merge patch (or JSON patch); a resourceVersion inside makes it conditional."""
        response = await self.http.patch(
            resource.path(namespace, name, subresource),
            content=json.dumps(patch),
            headers={"Content-Type": content_type},
        )
        _raise_for(response)
        patched: JSON = response.json()
        return patched

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        response = await self.http.delete(resource.path(namespace, name))
        if response.status_code != 404:
            _raise_for(response)
