"""The ConfigMap watch against the in-process API test server, over real HTTP.

The source is synchronous and threaded while the server runs on this test's event loop: every
blocking call (construction, ``refresh``, ``close``) goes through ``asyncio.to_thread`` and the
waits poll with ``asyncio.sleep``, so the loop keeps serving.
"""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.sdk.builders import PROMPT, corrupt, health, text
from tollgate.sdk import ConfigMapSource, PromptRouter, PromptUnavailable
from tollgate.testing.kubeapi import KubeApiServer

NS = "default"
NAME = "support-answer-prompts"
KEY = "prompts.json"


def configmap(content: str, key: str = KEY) -> dict[str, Any]:
    return {"metadata": {"name": NAME}, "data": {key: content, "unrelated": "x"}}


def publish(api: KubeApiServer, content: str) -> None:
    api.patch("configmaps", NS, NAME, {"data": {KEY: content}})


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def revision(source: ConfigMapSource) -> int | None:
    return None if source.document is None else source.document.revision


@pytest.fixture
async def api() -> AsyncIterator[KubeApiServer]:
    async with KubeApiServer(crds_dir=None) as server:
        yield server


async def opened(server: str, **options: Any) -> ConfigMapSource:
    options = {"backoff_initial": 0.05, "backoff_cap": 0.2, "request_timeout": 1.0, **options}
    return await asyncio.to_thread(ConfigMapSource, NS, NAME, KEY, server, **options)


@pytest.fixture
async def source(api: KubeApiServer) -> AsyncIterator[ConfigMapSource]:
    api.create("configmaps", configmap(text(5, revision=1)), NS)
    watching = await opened(api.url)
    yield watching
    await asyncio.to_thread(watching.close)


@pytest.mark.integration
async def test_the_document_is_read_at_start_and_updates_arrive_through_the_watch(
    api: KubeApiServer, source: ConfigMapSource
) -> None:
    created = api.get("configmaps", NS, NAME)
    assert created is not None
    router = PromptRouter(source)
    assert router.choose(PROMPT, "alice").revision == 1

    publish(api, text(100, revision=2))
    await until(lambda: revision(source) == 2)
    assert router.choose(PROMPT, "alice").version == "v8"
    assert (source.errors, source.last_error) == (0, None)

    api.patch("configmaps", NS, NAME, {"data": {"unrelated": "y"}})  # another key changed
    publish(api, text(100, revision=3))
    await until(lambda: revision(source) == 3)

    await asyncio.to_thread(source.close)
    await until(lambda: any(r.is_watch for r in api.requests))  # logged once it has ended
    (watch,) = [r for r in api.requests if r.is_watch]  # one stream saw every change
    assert watch.path == f"/api/v1/namespaces/{NS}/configmaps"
    assert watch.query["fieldSelector"] == f"metadata.name={NAME}"
    assert watch.query["resourceVersion"] == created["metadata"]["resourceVersion"]


@pytest.mark.integration
async def test_refresh_reads_the_object_once(api: KubeApiServer, source: ConfigMapSource) -> None:
    assert not await asyncio.to_thread(source.refresh)
    gets = [r for r in api.requests if r.method == "GET" and not r.is_watch]
    assert [r.path for r in gets] == [f"/api/v1/namespaces/{NS}/configmaps/{NAME}"] * 2


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["json", "weights", "template"])
async def test_a_corrupt_update_keeps_the_last_good_document(
    api: KubeApiServer, source: ConfigMapSource, kind: str
) -> None:
    publish(api, corrupt(kind))
    await until(lambda: source.errors == 1)
    assert revision(source) == 1
    assert source.last_error is not None
    assert source.last_error.startswith("invalid document: ")
    assert PromptRouter(source).choose(PROMPT).revision == 1

    publish(api, text(5, revision=4))
    await until(lambda: revision(source) == 4)
    assert source.last_error is None


@pytest.mark.integration
async def test_deletion_keeps_the_last_good_document_and_a_new_configmap_is_taken(
    api: KubeApiServer, source: ConfigMapSource
) -> None:
    api.delete("configmaps", NS, NAME)
    await until(lambda: source.errors == 1)
    assert source.last_error == f"the configmap {NS}/{NAME} was deleted"
    assert PromptRouter(source).choose(PROMPT).revision == 1

    api.create("configmaps", configmap(text(5, revision=2)), NS)
    await until(lambda: revision(source) == 2)


@pytest.mark.integration
async def test_a_configmap_missing_at_start_is_waited_for(api: KubeApiServer) -> None:
    source = await opened(api.url, prompt=PROMPT)
    try:
        router = PromptRouter(source)
        with pytest.raises(PromptUnavailable, match=f"the configmap {NS}/{NAME} does not exist"):
            router.choose(PROMPT)
        api.create("configmaps", configmap(text(5, revision=1)), NS)
        await until(lambda: revision(source) == 1)
        assert router.choose(PROMPT).revision == 1
    finally:
        await asyncio.to_thread(source.close)


@pytest.mark.integration
async def test_a_missing_key_is_an_error(api: KubeApiServer) -> None:
    api.create("configmaps", configmap(text(5), key="other.json"), NS)
    source = await opened(api.url)
    try:
        assert source.document is None
        assert source.last_error == f"the configmap {NS}/{NAME} has no key {KEY!r}"
    finally:
        await asyncio.to_thread(source.close)


@pytest.mark.integration
async def test_a_router_on_a_binary_data_key(api: KubeApiServer) -> None:
    encoded = base64.b64encode(text(5).encode()).decode()
    api.create("configmaps", {"metadata": {"name": NAME}, "binaryData": {KEY: encoded}}, NS)
    router = await asyncio.to_thread(
        PromptRouter.from_configmap, NS, NAME, KEY, server=api.url, prompt=PROMPT
    )
    try:
        assert router.choose(PROMPT, "alice").prompt == PROMPT
    finally:
        await asyncio.to_thread(router.close)


@pytest.mark.integration
async def test_after_410_gone_the_watch_restarts_from_now() -> None:
    # A tiny event history and no bookmarks: when the stream ends (timeoutSeconds) and the
    # source resumes from the ConfigMap's resourceVersion, the server has forgotten it. This is
    # routine for a ConfigMap that has not changed for a while.
    async with KubeApiServer(crds_dir=None, history_limit=3, bookmark_interval=3600) as api:
        created = api.create("configmaps", configmap(text(5, revision=1)), NS)
        source = await opened(api.url, watch_timeout=1)
        try:
            for n in range(6):
                api.create("configmaps", {"metadata": {"name": f"other-{n}"}}, NS)
            await until(
                lambda: any(r.is_watch and "resourceVersion" not in r.query for r in api.requests)
            )
            publish(api, text(5, revision=2))
            await until(lambda: revision(source) == 2)
            assert (source.errors, source.last_error) == (0, None)  # a 410 is not an error
        finally:
            await asyncio.to_thread(source.close)
        first_watch = next(r for r in api.requests if r.is_watch)
        assert first_watch.query["resourceVersion"] == created["metadata"]["resourceVersion"]


@pytest.mark.integration
async def test_an_api_server_away_keeps_the_document_and_recovery_is_automatic() -> None:
    first = KubeApiServer(crds_dir=None)
    await first.start()
    port = first.port
    first.create("configmaps", configmap(text(5, revision=1)), NS)
    source = await opened(first.url)
    try:
        await first.stop()
        await until(lambda: source.errors >= 2, timeout=10)
        assert source.last_error is not None
        assert source.last_error.startswith(f"cannot reach the API server http://127.0.0.1:{port}")
        assert PromptRouter(source).choose(PROMPT).revision == 1

        async with KubeApiServer(crds_dir=None, port=port) as second:
            second.create("configmaps", configmap(text(50, revision=2)), NS)
            await until(lambda: revision(source) == 2)
            assert health(source)[1] is None
            publish(second, text(50, revision=3))
            await until(lambda: revision(source) == 3)
    finally:
        await asyncio.to_thread(source.close)


@pytest.mark.integration
async def test_an_error_answer_is_reported_with_the_servers_message(
    api: KubeApiServer,
) -> None:
    api.create("configmaps", configmap(text(5, revision=1)), NS)
    api.fail_next("GET", f"configmaps/{NAME}", 403, message="configmaps is forbidden")
    source = await opened(api.url)
    try:
        await until(lambda: source.errors >= 1)
        assert source.last_error == "the API server answered 403: configmaps is forbidden"
        await until(lambda: revision(source) == 1)  # retried with backoff
    finally:
        await asyncio.to_thread(source.close)


def test_outside_a_cluster_without_a_server_the_source_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    source = ConfigMapSource(NS, NAME)
    assert source.document is None
    assert source.last_error is not None
    assert "KUBERNETES_SERVICE_HOST is unset" in source.last_error
    assert not source.refresh()
    source.close()
