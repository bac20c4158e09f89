"""An async Kubernetes API client on httpx.

The official ``kubernetes`` package is synchronous; inside kopf's event loop it would block.
It is used here only to load the kubeconfig or in-cluster credentials once at start-up; every
request then goes through httpx. Errors come back as :class:`KubeError` subclasses carrying
the HTTP status, so callers can tell a conflict (409) from a missing object (404).
"""

import json
import ssl
from typing import Any

import httpx
from kubernetes import client, config

from tollgate.adapters.kube.resources import Resource

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
    def from_kubeconfig(cls, path: str | None = None, timeout: float = 10.0) -> "KubeClient":
        """Credentials from a kubeconfig (or KUBECONFIG / ~/.kube/config), else in-cluster."""
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, client_configuration=configuration
            )
        except config.ConfigException:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        headers = {"Accept": "application/json"}
        token = configuration.api_key.get("authorization") or configuration.api_key.get(
            "BearerToken"
        )
        if token:
            prefix = configuration.api_key_prefix.get("authorization", "")
            headers["Authorization"] = f"{prefix} {token}".strip()
        verify: ssl.SSLContext | bool = bool(configuration.verify_ssl)
        if configuration.host.startswith("https") and configuration.verify_ssl:
            context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            if configuration.cert_file:
                context.load_cert_chain(configuration.cert_file, configuration.key_file)
            verify = context
        http = httpx.AsyncClient(
            base_url=configuration.host, headers=headers, verify=verify, timeout=timeout
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
