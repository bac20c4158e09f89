"""An in-process Kubernetes API test server and a Tollgate client pointed at it."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tollgate.adapters.kube.client import KubeClient
from tollgate.testing.kubeapi import KubeApiServer


@pytest.fixture
async def api() -> AsyncIterator[KubeApiServer]:
    async with KubeApiServer() as server:
        yield server


@pytest.fixture
async def kube(api: KubeApiServer) -> AsyncIterator[KubeClient]:
    client = KubeClient(httpx.AsyncClient(base_url=api.url, timeout=5.0))
    yield client
    await client.aclose()
