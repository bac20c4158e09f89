"""The test API server keeps the promises kopf and our client rely on, over real HTTP.

Each test names the API-server behaviour it pins: the harness is only worth something if the
operator, run against it, meets the same semantics a real cluster would give it. The last tests
run kopf itself, in-process and as ``kopf run``, and the server as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest

from tollgate.testing.kubeapi import READY_MARKER, KubeApiServer
from tollgate.testing.resources import ResourceSpec

ROOT = Path(__file__).resolve().parents[2]
CANARIES = "/apis/tollgate.dev/v1alpha1/namespaces/default/canaries"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
FINALIZER = "tollgate.dev/test"

Event = dict[str, Any]


@pytest.fixture
async def api() -> AsyncIterator[KubeApiServer]:
    async with KubeApiServer() as server:
        yield server


@pytest.fixture
async def client(api: KubeApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as http:
        yield http


def canary(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec or {"replicas": 1}}


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def merge_patch(
    client: httpx.AsyncClient, path: str, patch: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    response = await client.patch(path, content=json.dumps(patch), headers=MERGE)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def watching(
    client: httpx.AsyncClient, path: str, **params: str
) -> AsyncIterator[list[Event]]:
    """Stream a watch into a list in the background, for as long as the block runs."""
    events: list[Event] = []
    started = asyncio.Event()

    async def reader() -> None:
        query = {"watch": "true", **params}
        async with client.stream("GET", path, params=query, timeout=None) as response:
            assert response.status_code == 200
            started.set()
            async for line in response.aiter_lines():
                if line.strip():
                    events.append(json.loads(line))

    task = asyncio.create_task(reader())
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def phase_of(api: KubeApiServer, name: str) -> str | None:
    body = api.get("canaries", "default", name) or {}
    phase = (body.get("status") or {}).get("phase")
    return None if phase is None else str(phase)


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(event["type"], event["object"]["metadata"].get("name", "")) for event in events]


# -- discovery ------------------------------------------------------------------------------------


async def test_discovery_serves_builtins_and_the_repo_crds(client: httpx.AsyncClient) -> None:
    core = (await client.get("/api/v1")).json()
    assert core["groupVersion"] == "v1"
    by_name = {resource["name"]: resource for resource in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False
    assert {"list", "watch", "patch"} <= set(by_name["configmaps"]["verbs"])
    assert {"events", "secrets", "services", "namespaces/status"} <= set(by_name)

    groups = {group["name"] for group in (await client.get("/apis")).json()["groups"]}
    assert {
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "gateway.networking.k8s.io",
        "kopf.dev",
        "tollgate.dev",
    } <= groups
    custom = (await client.get("/apis/tollgate.dev/v1alpha1")).json()
    names = {resource["name"] for resource in custom["resources"]}
    assert {"canaries", "canaries/status", "promptreleases", "promptreleases/status"} <= names
    kopf_group = (await client.get("/apis/kopf.dev/v1")).json()["resources"]
    scopes = {resource["name"]: resource["namespaced"] for resource in kopf_group}
    assert scopes == {"clusterkopfpeerings": False, "kopfpeerings": True}


# -- metadata and generation ---------------------------------------------------------------------


async def test_create_assigns_server_metadata(client: httpx.AsyncClient) -> None:
    first = await create(client, CANARIES, canary("a"))
    second = await create(client, CANARIES, canary("b"))
    meta = first["metadata"]
    assert (first["apiVersion"], first["kind"]) == ("tollgate.dev/v1alpha1", "Canary")
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert second["metadata"]["uid"] != meta["uid"]

    again = await client.post(CANARIES, json=canary("a"))
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    missing = await client.get(f"{CANARIES}/nope")
    assert missing.status_code == 404
    assert missing.json()["kind"] == "Status"


async def test_generate_name_gives_unique_names(client: httpx.AsyncClient) -> None:
    body = {"metadata": {"generateName": "web-"}, "data": {"k": "v"}}
    names = {(await create(client, CONFIGMAPS, body))["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3
    assert all(re.fullmatch(r"web-[a-z0-9]{5}", name) for name in names)
    nameless = await client.post(CONFIGMAPS, json={"metadata": {}})
    assert nameless.status_code == 422


async def test_generation_follows_spec_changes_only(
    api: KubeApiServer, client: httpx.AsyncClient
) -> None:
    created = await create(client, CANARIES, canary("a", replicas=1))
    path = f"{CANARIES}/a"
    spec_changed = await merge_patch(client, path, {"spec": {"replicas": 2}})
    labelled = await merge_patch(client, path, {"metadata": {"labels": {"team": "x"}}})
    status = await merge_patch(client, f"{path}/status", {"status": {"phase": "Progressing"}})
    assert [created["metadata"]["generation"], spec_changed["metadata"]["generation"]] == [1, 2]
    assert labelled["metadata"]["generation"] == 2
    assert status["metadata"]["generation"] == 2
    writes = (spec_changed, labelled, status)
    versions = [int(body["metadata"]["resourceVersion"]) for body in writes]
    assert versions == sorted(set(versions))

    # A write that changes nothing gets no new resourceVersion (and no watch event).
    no_op = await merge_patch(client, path, {"spec": {"replicas": 2}})
    assert no_op["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
    assert api.store.resource_version == versions[-1]


# -- optimistic concurrency and patch types ------------------------------------------------------


async def test_stale_resource_version_conflicts(client: httpx.AsyncClient) -> None:
    created = await create(client, CANARIES, canary("a"))
    stale = created["metadata"]["resourceVersion"]
    path = f"{CANARIES}/a"
    fresh = await merge_patch(client, path, {"spec": {"replicas": 3}})

    conflict = await client.patch(
        path,
        content=json.dumps({"metadata": {"resourceVersion": stale}, "spec": {"replicas": 4}}),
        headers=MERGE,
    )
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"

    stale_put = dict(fresh, metadata=dict(fresh["metadata"], resourceVersion=stale))
    assert (await client.put(path, json=stale_put)).status_code == 409
    replaced = await client.put(path, json=dict(fresh, spec={"replicas": 5}))
    assert replaced.status_code == 200
    assert replaced.json()["spec"] == {"replicas": 5}
    assert replaced.json()["metadata"]["generation"] == 3

    preconditions = {"preconditions": {"resourceVersion": stale}}
    stale_delete = await client.request("DELETE", path, json=preconditions)
    assert stale_delete.status_code == 409


async def test_json_patch_test_op_guards_like_kopf_finalizers(client: httpx.AsyncClient) -> None:
    created = await create(client, CANARIES, canary("a"))
    path = f"{CANARIES}/a"
    current = created["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": current},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
    ]
    patched = await client.patch(path, content=json.dumps(ops), headers=JSON_PATCH)
    assert patched.status_code == 200
    assert patched.json()["metadata"]["finalizers"] == [FINALIZER]

    # The same guard with the now-stale resourceVersion fails with 422, as kopf expects.
    failed = await client.patch(path, content=json.dumps(ops), headers=JSON_PATCH)
    assert failed.status_code == 422
    removed = [{"op": "remove", "path": "/metadata/finalizers/0"}]
    cleared = await client.patch(path, content=json.dumps(removed), headers=JSON_PATCH)
    assert "finalizers" not in cleared.json()["metadata"]

    strategic = await client.patch(
        path,
        content=json.dumps({"spec": {"replicas": None, "paused": True}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert strategic.json()["spec"] == {"paused": True}  # null deletes, as in a merge patch
    apply = await client.patch(
        path, content=b"{}", headers={"Content-Type": "application/apply-patch+yaml"}
    )
    assert apply.status_code == 415


# -- the status subresource ----------------------------------------------------------------------


async def test_status_subresource_is_isolated_both_ways(client: httpx.AsyncClient) -> None:
    created = await create(client, CANARIES, {**canary("a"), "status": {"phase": "Injected"}})
    assert "status" not in created  # status is not settable on create either
    path = f"{CANARIES}/a"

    via_status = await merge_patch(
        client, f"{path}/status", {"spec": {"replicas": 9}, "status": {"phase": "Progressing"}}
    )
    assert via_status["spec"] == {"replicas": 1}
    assert via_status["status"] == {"phase": "Progressing"}

    via_main = await merge_patch(client, path, {"spec": {"replicas": 2}, "status": {"phase": "X"}})
    assert via_main["spec"] == {"replicas": 2}
    assert via_main["status"] == {"phase": "Progressing"}

    put_status = await client.put(f"{path}/status", json=dict(via_main, status={"phase": "Done"}))
    assert put_status.json()["status"] == {"phase": "Done"}

    # Kinds without the subresource have no /status; their status is ordinary data.
    await create(client, CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {}})
    missing = await client.patch(f"{CONFIGMAPS}/cm/status", content=b"{}", headers=MERGE)
    assert missing.status_code == 404


# -- finalizers, deletion, watches ---------------------------------------------------------------


async def test_finalizers_hold_deletion_until_removed(client: httpx.AsyncClient) -> None:
    path = f"{CANARIES}/a"
    async with watching(client, CANARIES) as events:
        body = canary("a")
        body["metadata"]["finalizers"] = [FINALIZER]
        await create(client, CANARIES, body)

        deleting = await client.delete(path)
        assert deleting.status_code == 200
        assert deleting.json()["metadata"]["deletionTimestamp"]
        still_there = (await client.get(path)).json()
        assert still_there["metadata"]["deletionTimestamp"]

        more = {"metadata": {"finalizers": [FINALIZER, "more"]}}
        extra = await client.patch(path, content=json.dumps(more), headers=MERGE)
        assert extra.status_code == 422  # no new finalizers on a deleting object

        released = await merge_patch(client, path, {"metadata": {"finalizers": None}})
        assert "finalizers" not in released["metadata"]
        assert (await client.get(path)).status_code == 404
        await wait_until(lambda: len(events) >= 3)

    assert kinds(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[1]["object"]["metadata"]["deletionTimestamp"]
    assert events[1]["object"]["metadata"]["generation"] == 2  # marking deletion bumps it
    assert "finalizers" not in events[2]["object"]["metadata"]


async def test_watch_from_a_resource_version_sends_only_newer_events(
    client: httpx.AsyncClient,
) -> None:
    first = await create(client, CANARIES, canary("a"))
    await create(client, CANARIES, canary("b"))
    since = first["metadata"]["resourceVersion"]

    async with watching(client, CANARIES, resourceVersion=since) as events:
        await merge_patch(client, f"{CANARIES}/a", {"spec": {"replicas": 2}})
        await wait_until(lambda: len(events) >= 2)
    assert kinds(events) == [("ADDED", "b"), ("MODIFIED", "a")]
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert all(version > int(since) for version in versions)

    # Without a resourceVersion, the watch starts with the current objects as ADDED.
    async with watching(client, CANARIES) as fresh:
        await wait_until(lambda: len(fresh) >= 2)
    assert sorted(kinds(fresh)) == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_ends_on_timeout_and_reports_expired_versions() -> None:
    async with (
        KubeApiServer(crds_dir=None, history_limit=4, bookmark_interval=0.05) as small,
        httpx.AsyncClient(base_url=small.url, timeout=5) as client,
    ):
        params = {"watch": "true", "timeoutSeconds": "1", "allowWatchBookmarks": "true"}
        response = await client.get(CONFIGMAPS, params=params)  # returns when the server ends it
        lines = [json.loads(line) for line in response.text.splitlines() if line]
        assert lines
        assert {line["type"] for line in lines} == {"BOOKMARK"}

        for index in range(10):
            await create(client, CONFIGMAPS, {"metadata": {"name": f"cm{index}"}})
        expired = await client.get(CONFIGMAPS, params={"watch": "true", "resourceVersion": "1"})
        (event,) = [json.loads(line) for line in expired.text.splitlines() if line]
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410


async def test_label_selectors_filter_lists_and_watches(client: httpx.AsyncClient) -> None:
    for name, app in (("a", "web"), ("b", "api"), ("c", "web")):
        await create(client, CONFIGMAPS, {"metadata": {"name": name, "labels": {"app": app}}})
    await create(client, CONFIGMAPS, {"metadata": {"name": "d"}})

    async def names(selector: str) -> list[str]:
        listing = await client.get(CONFIGMAPS, params={"labelSelector": selector})
        return [item["metadata"]["name"] for item in listing.json()["items"]]

    assert await names("app=web") == ["a", "c"]
    assert await names("app!=web") == ["b", "d"]
    assert await names("app in (api,web),app") == ["a", "b", "c"]
    assert await names("!app") == ["d"]
    assert (await client.get(CONFIGMAPS, params={"labelSelector": "a in b"})).status_code == 400

    async with watching(client, CONFIGMAPS, labelSelector="app=web") as events:
        await wait_until(lambda: len(events) >= 2)
        await merge_patch(client, f"{CONFIGMAPS}/b", {"metadata": {"labels": {"app": "web"}}})
        await merge_patch(client, f"{CONFIGMAPS}/a", {"metadata": {"labels": {"app": "old"}}})
        await wait_until(lambda: len(events) >= 4)
    assert kinds(events)[2:] == [("ADDED", "b"), ("DELETED", "a")]


# -- namespaces ----------------------------------------------------------------------------------


async def test_namespaces_list_and_namespaced_vs_cluster_wide(
    api: KubeApiServer, client: httpx.AsyncClient
) -> None:
    await create(client, "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    listing = (await client.get("/api/v1/namespaces")).json()
    assert listing["kind"] == "NamespaceList"
    names = [item["metadata"]["name"] for item in listing["items"]]
    assert {"default", "kube-system", "team-a"} <= set(names)
    assert (await client.get("/api/v1/namespaces/team-a")).json()["status"]["phase"] == "Active"

    await create(client, CONFIGMAPS, {"metadata": {"name": "here"}})
    await create(client, "/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": "there"}})
    namespaced = (await client.get(CONFIGMAPS)).json()["items"]
    cluster_wide = (await client.get("/api/v1/configmaps")).json()["items"]
    assert [item["metadata"]["name"] for item in namespaced] == ["here"]
    assert {item["metadata"]["name"] for item in cluster_wide} == {"here", "there"}
    first_page = (await client.get("/api/v1/configmaps", params={"limit": "1"})).json()
    token = first_page["metadata"]["continue"]
    params = {"limit": "1", "continue": token}
    second_page = (await client.get("/api/v1/configmaps", params=params)).json()
    assert len(first_page["items"]) == len(second_page["items"]) == 1
    assert "continue" not in second_page["metadata"]

    # Deleting a namespace deletes its content; it lingers while finalizers hold an object.
    api.patch("configmaps", "team-a", "there", {"metadata": {"finalizers": [FINALIZER]}})
    assert (await client.delete("/api/v1/namespaces/team-a")).json()["status"]["phase"] == (
        "Terminating"
    )
    api.patch("configmaps", "team-a", "there", {"metadata": {"finalizers": []}})
    assert api.get("configmaps", "team-a", "there") is None
    assert api.get("namespaces", None, "team-a") is None


async def test_kubernetes_client_reads_the_written_kubeconfig(
    api: KubeApiServer, tmp_path: Path
) -> None:
    import kubernetes
    from kubernetes.client import V1ConfigMap, V1ObjectMeta

    path = api.write_kubeconfig(tmp_path / "kubeconfig")

    def calls() -> tuple[list[str], str, dict[str, str]]:
        # KUBECONFIG was read when `kubernetes` was imported, so the file is passed explicitly.
        http = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path)
        )
        with http:
            core = kubernetes.client.CoreV1Api(http)
            namespaces = [
                str(ns.metadata.name) for ns in core.list_namespace().items if ns.metadata
            ]
            meta = V1ObjectMeta(name="settings", labels={"app": "web"})
            created = core.create_namespaced_config_map("default", V1ConfigMap(metadata=meta))
            patched = core.patch_namespaced_config_map("settings", "default", {"data": {"b": "2"}})
            assert created.metadata is not None
            return namespaces, str(created.metadata.resource_version), dict(patched.data or {})

    namespaces, version, data = await asyncio.to_thread(calls)
    assert "default" in namespaces
    assert int(version) > 0
    assert data == {"b": "2"}


# -- test helpers --------------------------------------------------------------------------------


async def test_fault_injection_and_the_write_log(
    api: KubeApiServer, client: httpx.AsyncClient
) -> None:
    await create(client, CANARIES, canary("a"))
    path = f"{CANARIES}/a"
    api.fail_next("PATCH", "canaries/a", status=409)
    api.fail_next("PATCH", "canaries/a/status", status=500, times=2)

    conflict = await client.patch(path, content=b'{"spec":{"weight":5}}', headers=MERGE)
    assert conflict.status_code == 409
    assert (api.get("canaries", "default", "a") or {})["spec"] == {"replicas": 1}
    await merge_patch(client, path, {"spec": {"weight": 5}})
    for _ in range(2):
        failed = await client.patch(f"{path}/status", content=b'{"status":{}}', headers=MERGE)
        assert failed.status_code == 500
    await merge_patch(client, f"{path}/status", {"status": {"canaryWeight": 5}})

    weight_writes = [
        record
        for record in api.writes("canaries", "a", subresource=None)
        if "weight" in (record.body or {}).get("spec", {})
    ]
    assert len(weight_writes) == 1
    assert weight_writes[0].content_type == "application/merge-patch+json"
    faults = [record.status for record in api.requests if record.fault]
    assert faults == [409, 500, 500]
    assert len(api.writes("canaries", subresource="status")) == 1
    assert len(api.writes("canaries", subresource="status", successful=False)) == 3

    # kmock's own reactions still work, and take precedence over the stored objects.
    api.handler[f"get {path}"] << 418
    assert (await client.get(path)).status_code == 418

    # after_write stores the change and still answers with the error (a lost response).
    api.fail_next("DELETE", "canaries/a", status=503, after_write=True)
    assert (await client.delete(path)).status_code == 503
    assert api.get("canaries", "default", "a") is None


async def test_events_and_deployment_readiness_helpers(
    api: KubeApiServer, client: httpx.AsyncClient
) -> None:
    event = {"metadata": {"generateName": "kopf-event-"}, "reason": "Test", "message": "hi"}
    core_event = await create(client, "/api/v1/namespaces/default/events", event)
    new_event = await create(client, "/apis/events.k8s.io/v1/namespaces/default/events", event)
    assert core_event["metadata"]["name"].startswith("kopf-event-")
    assert new_event["apiVersion"] == "events.k8s.io/v1"

    deployments = "/apis/apps/v1/namespaces/default/deployments"
    await create(client, deployments, {"metadata": {"name": "web"}, "spec": {"replicas": 3}})
    await merge_patch(client, f"{deployments}/web", {"spec": {"template": {"x": 1}}})
    ready = api.mark_deployment_ready("default", "web")
    assert ready["metadata"]["generation"] == 2
    status = ready["status"]
    assert status["observedGeneration"] == 2
    assert status["readyReplicas"] == status["updatedReplicas"] == status["availableReplicas"] == 3
    assert (await client.get(f"{deployments}/web")).json()["status"] == status


async def test_crds_created_over_the_api_become_served(
    api: KubeApiServer, client: httpx.AsyncClient
) -> None:
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    await create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    widget = await create(client, "/apis/example.com/v1/widgets", {"metadata": {"name": "w"}})
    assert widget["kind"] == "Widget"
    assert "namespace" not in widget["metadata"]
    expected = ResourceSpec("example.com", "v1", "widgets", "Widget", False, "widget")
    assert api.resource("widgets") == expected


# -- the subprocess CLI and kopf -----------------------------------------------------------------


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    paths = [str(ROOT / "operator"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


async def test_server_runs_as_a_subprocess_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tollgate.testing.kubeapi",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        env=_subprocess_env(),
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith(READY_MARKER)
        url = re.search(r"url=(\S+)", line)
        assert url is not None
        assert url[1] in kubeconfig.read_text()
        async with httpx.AsyncClient(base_url=url[1], timeout=5) as client:
            canaries = (await client.get("/apis/tollgate.dev/v1alpha1/canaries")).json()
            assert canaries["kind"] == "CanaryList"
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0


def _fast_kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 15
    settings.networking.error_backoffs = [0.1, 0.2]
    return settings


@pytest.mark.parametrize("mode", ["namespaced-standalone", "clusterwide-peering-streaming"])
async def test_kopf_operator_handles_each_change_exactly_once(
    api: KubeApiServer, mode: str
) -> None:
    clusterwide = mode.startswith("clusterwide")
    settings = _fast_kopf_settings()
    settings.watching.initial_streaming = mode.endswith("streaming")
    if not clusterwide:
        peering: dict[str, Any] = {"standalone": True, "namespaces": ["default"]}
    else:
        api.create("clusterkopfpeerings", {"metadata": {"name": "default"}})
        peering = {"standalone": False, "clusterwide": True, "peering_name": "default"}
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, Any]] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return api.kopf_connection_info()

    @kopf.on.create("tollgate.dev", "v1alpha1", "canaries", registry=registry)
    def created(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("create", spec["replicas"]))
        patch.status["phase"] = "Seen"
        kopf.info(body, reason="Seen", message="posted as a core v1 Event with generateName")

    @kopf.on.update("tollgate.dev", "v1alpha1", "canaries", field="spec", registry=registry)
    def updated(new: Any, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("update", new["replicas"]))
        patch.status["phase"] = "Updated"

    @kopf.on.delete("tollgate.dev", "v1alpha1", "canaries", registry=registry)
    def deleted(**_: Any) -> None:
        calls.append(("delete", None))

    def phase() -> str | None:
        return phase_of(api, "c1")

    stop, ready = asyncio.Event(), asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry, settings=settings, stop_flag=stop, ready_flag=ready, **peering
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        if clusterwide:  # kopf announces itself in the peering object's status
            await api.wait_for(
                lambda: (api.get("clusterkopfpeerings", None, "default") or {}).get("status")
            )
        api.create("canaries", canary("c1", replicas=1), namespace="default")
        await api.wait_for(lambda: phase() == "Seen")
        body = api.get("canaries", "default", "c1")
        assert body is not None
        assert "kopf.zalando.org/KopfFinalizerMarker" in body["metadata"]["finalizers"]

        api.patch("canaries", "default", "c1", {"spec": {"replicas": 2}})
        await api.wait_for(lambda: phase() == "Updated")
        api.delete("canaries", "default", "c1")
        await api.wait_for(lambda: api.get("canaries", "default", "c1") is None)
        events = await api.wait_for(lambda: api.list_objects("events", "default"))
        assert events[0]["reason"] == "Seen"
        await asyncio.sleep(0.3)  # room for any duplicate handling to show up
    finally:
        stop.set()
        await asyncio.wait_for(operator, 10)

    assert calls == [("create", 1), ("update", 2), ("delete", None)]
    assert not [record for record in api.requests if record.status >= 400]
    assert not api.server_errors
    watches = [record for record in api.requests if record.is_watch]
    streamed = [record for record in watches if record.query.get("sendInitialEvents") == "true"]
    assert bool(streamed) == settings.watching.initial_streaming
    assert {record.path for record in watches} >= {
        "/apis/tollgate.dev/v1alpha1/canaries"
        if clusterwide
        else "/apis/tollgate.dev/v1alpha1/namespaces/default/canaries"
    }


OPERATOR_SOURCE = """
import kopf

@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.watching.server_timeout = 10
    settings.posting.enabled = False

@kopf.on.create("tollgate.dev", "v1alpha1", "canaries")
def created(patch, **_):
    patch.status["phase"] = "SeenBySubprocess"
"""


async def test_kopf_run_subprocess_uses_the_kubeconfig(api: KubeApiServer, tmp_path: Path) -> None:
    (tmp_path / "operator_main.py").write_text(textwrap.dedent(OPERATOR_SOURCE))
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--namespace=default",
        str(tmp_path / "operator_main.py"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=_subprocess_env(KUBECONFIG=str(kubeconfig)),
        cwd=tmp_path,
    )
    try:
        api.create("canaries", canary("c1"), namespace="default")

        await api.wait_for(lambda: phase_of(api, "c1") == "SeenBySubprocess", timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
