"""An async Kubernetes API client on httpx.

The official ``kubernetes`` package is synchronous; inside kopf's event loop it would block.
Credentials come from kopf's own login, shared and renewed (``credentials.py``); every request
goes through httpx. Errors come back as :class:`KubeError` subclasses carrying
the HTTP status, so callers can tell a conflict (409) from a missing object (404).
"""

import asyncio
import json
import random
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


KUBE_CONNECTIONS = 16  # httpcore's pool scans every connection per request: keep it small
THROTTLE_RETRIES = 3
THROTTLE_CAP = 10.0  # seconds: the longest Retry-After honoured in a reconcile


def retry_after(header: str | None, attempt: int) -> float:
    """Seconds to wait before retrying a 429, jittered so that throttled callers spread out:
    the server's Retry-After (capped) plus up to 25%, never less than it asked; without one,
    an exponential backoff +-25%."""
    try:
        asked = float(header) if header is not None else None
    except ValueError:
        asked = None
    if asked is None:
        backoff: float = min(THROTTLE_CAP, 0.5 * 2**attempt)
        return backoff * random.uniform(0.75, 1.25)
    return min(THROTTLE_CAP, max(0.0, asked)) * random.uniform(1.0, 1.25)


def _asked_wait(response: httpx.Response) -> str | None:
    """The wait a 429 asks for: its Retry-After header, else the Status body's
    ``details.retryAfterSeconds`` (the API server sends both; some proxies drop the header)."""
    header: str | None = response.headers.get("Retry-After")
    if header is not None:
        return header
    try:
        seconds = (response.json().get("details") or {}).get("retryAfterSeconds")
    except (ValueError, AttributeError):
        return None
    return str(seconds) if isinstance(seconds, int | float) else None


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
            limits=httpx.Limits(max_connections=KUBE_CONNECTIONS),
        )
        return cls(http)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; a 429 (API priority and fairness) is retried after its Retry-After,
        capped, with jitter, a few times before it is reported like any refusal."""
        for attempt in range(THROTTLE_RETRIES + 1):
            response = await self.http.request(method, url, **kwargs)
            if response.status_code != 429 or attempt == THROTTLE_RETRIES:
                return response
            await asyncio.sleep(retry_after(_asked_wait(response), attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, resource: Resource, namespace: str | None, name: str) -> JSON:
        response = await self._send("GET", resource.path(namespace, name))
        _raise_for(response)
        body: JSON = response.json()
        return body

    async def list_objects(
        self, resource: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else None
        response = await self._send("GET", resource.path(namespace), params=params)
        _raise_for(response)
        items: list[JSON] = response.json().get("items", [])
        return items

    async def create(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        response = await self._send("POST", resource.path(namespace), json=body)
        _raise_for(response)
        created: JSON = response.json()
        return created

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: JSON
    ) -> JSON:
        """PUT: the body's metadata.resourceVersion makes it conditional (409 when stale)."""
        response = await self._send("PUT", resource.path(namespace, name), json=body)
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
        response = await self._send(
            "PATCH",
            resource.path(namespace, name, subresource),
            content=json.dumps(patch, allow_nan=False),
            headers={"Content-Type": content_type},
        )
        _raise_for(response)
        patched: JSON = response.json()
        return patched

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        response = await self._send("DELETE", resource.path(namespace, name))
        if response.status_code != 404:
            _raise_for(response)
