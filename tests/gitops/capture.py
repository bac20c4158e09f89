"""Walk a Canary and a PromptRelease through every state a GitOps tool must tell apart, with the
real operator on the real cluster, and keep each object as the API server returned it.

One operator and one namespace (``tests.cluster.world.operated``) serve both walks, run side by
side: created (a server-side dry run: as stored before any operator saw it), initialized,
progressing, promoted, stalled (a spec only the operator's validation rejects), suspended,
paused and rolled back (by request annotations), and unobserved (a spec change while the
operator is stopped). The HTTPRoute, applied as docs/argocd.md keeps it in Git, is kept before
and during a rollout (for the ignore rules of docs/argocd.md and docs/flux.md); during the
Canary's first rollout the Deployment and the Canary are read in pairs, as a Flux health check
polling both sees them.
"""

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tests.cluster.world import (
    CANARIES,
    DEPLOYMENTS,
    FAST,
    ROUTES,
    World,
    operated,
    route_weights,
)
from tollgate.api.intents import REQUEST_ANNOTATION
from tollgate.testing import scenario
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.scenario import http_route

PROMPTS = "/apis/tollgate.dev/v1alpha1/namespaces/{ns}/promptreleases"
Obj = dict[str, Any]
ANALYSIS = cast(Obj, FAST["analysis"])
MIN_READY_SECONDS = 2
INVALID = {"analysis": {**ANALYSIS, "interval": "500ms"}}  # the CRD allows it; Tollgate not


@dataclass
class Recording:
    objects: dict[str, Obj] = field(default_factory=dict)  # <kind>-<state> -> object
    routes: dict[str, Obj] = field(default_factory=dict)  # "before", "during" a rollout
    # (seconds since the release, Deployment, Canary), one per poll of the first rollout
    pairs: list[tuple[float, Obj, Obj]] = field(default_factory=list)


def status(obj: Obj) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def observed(obj: Obj) -> bool:
    return bool(status(obj).get("observedGeneration") == obj["metadata"]["generation"])


def stalled_by(obj: Obj, reason: str) -> bool:
    return any(
        c["type"] == "Stalled" and c["status"] == "True" and c["reason"] == reason
        for c in status(obj).get("conditions") or ()
    )


def stepping(obj: Obj) -> bool:
    return status(obj).get("phase") == "Progressing" and status(obj).get("currentStep", 0) >= 1


def promoted(obj: Obj) -> bool:
    return status(obj).get("reason") == "Promoted"


def merge_patch(world: World, path: str, name: str, change: Obj) -> None:
    response = world.api.patch(
        f"{path.format(ns=world.namespace)}/{name}",
        content=json.dumps(change),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()


@dataclass
class Subject:
    """One rollout of the walk: where it lives and how a new version reaches it."""

    world: World
    kind: str
    path: str
    name: str
    body: Obj
    release: Callable[[int], None]  # version 2 is the first rollout, 3 the second
    recording: Recording

    def get(self) -> Obj | None:
        return self.world.get(self.path, self.name)

    def record(self, state: str, obj: Obj) -> None:
        self.recording.objects[f"{self.kind.lower()}-{state}"] = obj

    def patch(self, change: Obj) -> None:
        merge_patch(self.world, self.path, self.name, change)

    def request(self, kind: str) -> None:
        """What ``kubectl tollgate <kind>`` writes: the request annotation with a fresh id."""
        value = f"{kind}@{secrets.token_hex(4)}"
        self.patch({"metadata": {"annotations": {REQUEST_ANNOTATION: value}}})

    async def reach(
        self, wanted: Callable[[Obj], bool], timeout: float = 30.0, state: str | None = None
    ) -> Obj:
        """Poll until the object is as ``wanted``; that very object (recorded as ``state``)."""
        async with asyncio.timeout(timeout):
            while True:
                found = self.get()
                if found is not None and wanted(found):
                    if state is not None:
                        self.record(state, found)
                    return found
                await asyncio.sleep(0.1)

    def dry_run_create(self) -> None:
        body = {**self.body, "metadata": {**self.body["metadata"], "name": f"{self.name}-new"}}
        path = self.path.format(ns=self.world.namespace)
        created = self.world.api.post(path, params={"dryRun": "All"}, json=body)
        assert created.status_code == 201, created.text
        self.record("created", created.json())


async def first_rollout(subject: Subject) -> None:
    subject.release(2)
    await subject.reach(stepping, state="progressing")
    await subject.reach(promoted, state="promoted")


async def watched_first_rollout(subject: Subject) -> None:
    """The Canary's first rollout, polled as a Flux health check of the Deployment and the
    Canary sees it (the Deployment read first: the Canary read after it is never older), and the
    HTTPRoute kept once it carries canary traffic."""
    world, recording = subject.world, subject.recording
    subject.release(2)
    released = time.monotonic()
    async with asyncio.timeout(60):
        while True:
            target, now = world.get(DEPLOYMENTS, "app"), subject.get()
            assert target is not None
            assert now is not None
            recording.pairs.append((time.monotonic() - released, target, now))
            if stepping(now) and "canary-progressing" not in recording.objects:
                subject.record("progressing", now)
            route = world.get(ROUTES, "app") or {}
            if "during" not in recording.routes and route_weights(route)[1] > 0:
                recording.routes["during"] = route
            if promoted(now):
                subject.record("promoted", now)
                return
            await asyncio.sleep(0.1)


async def walk(subject: Subject, first: Callable[[Subject], Awaitable[None]]) -> None:
    """From the first rollout to a rollback, recording each state on the way."""
    subject.dry_run_create()
    await first(subject)
    subject.patch({"spec": INVALID})
    await subject.reach(lambda o: observed(o) and stalled_by(o, "InvalidSpec"), state="stalled")
    subject.patch({"spec": {"analysis": ANALYSIS}})
    await subject.reach(lambda o: observed(o) and not stalled_by(o, "InvalidSpec"))
    subject.release(3)
    await subject.reach(stepping)
    subject.patch({"spec": {"suspend": True}})
    await subject.reach(
        lambda o: observed(o) and status(o).get("reason") == "Suspended", state="suspended"
    )
    subject.patch({"spec": {"suspend": None}})
    await subject.reach(observed)
    subject.request("pause")
    await subject.reach(lambda o: status(o).get("phase") == "Paused", state="paused")
    subject.request("abort")

    def rolled_back(obj: Obj) -> bool:
        if status(obj).get("phase") == "RollingBack":
            subject.record("rolling-back", obj)
        return status(obj).get("phase") == "RolledBack"

    await subject.reach(rolled_back, state="rolled-back")


def canary_subject(world: World, recording: Recording) -> Subject:
    return Subject(
        world,
        "Canary",
        CANARIES,
        "app",
        scenario.canary("app", FAST, namespace=world.namespace),
        lambda version: world.release(f"app:{version}"),
        recording,
    )


def prompt_subject(world: World, recording: Recording) -> Subject:
    versions = [scenario.prompt_version(f"v{n}") for n in (1, 2, 3)]
    body = scenario.prompt_release("answer", FAST, versions[:2], namespace=world.namespace)

    def release(version: int) -> None:  # v2 is the candidate from the start
        if version > 2:
            change = {"spec": {"versions": versions[:version], "candidate": f"v{version}"}}
            merge_patch(world, PROMPTS, "answer", change)

    return Subject(world, "PromptRelease", PROMPTS, "answer", body, release, recording)


def route_in_git(namespace: str) -> Obj:
    """The HTTPRoute as docs/argocd.md keeps it in Git: both backendRefs Tollgate weighs, all
    traffic on primary, so a rollout changes nothing but their weights."""
    route = http_route("app", namespace=namespace)
    route["spec"]["rules"][0]["backendRefs"] = [
        {"name": "app-primary", "port": 80, "weight": 100},
        {"name": "app-canary", "port": 80, "weight": 0},
    ]
    return route


def apply_route_as_in_git(world: World) -> None:
    path = f"{ROUTES.format(ns=world.namespace)}/app"
    route = route_in_git(world.namespace)
    route["metadata"] = (world.get(ROUTES, "app") or {})["metadata"]
    world.api.put(path, json=route).raise_for_status()


async def capture(access: ClusterAccess, tmp_path: Path) -> Recording:
    """Both walks on the cluster, then the unobserved state of each; the operator cleans up."""
    recording = Recording()
    async with operated(access, tmp_path, FAST) as world:
        canary, prompt = canary_subject(world, recording), prompt_subject(world, recording)
        created = world.api.post(PROMPTS.format(ns=world.namespace), json=prompt.body)
        assert created.status_code == 201, created.text
        await canary.reach(lambda o: status(o).get("reason") == "Initialized", state="initialized")
        apply_route_as_in_git(world)
        # as docs/flux.md advises: the Deployment is Current only this long after its new pods
        # are ready, so it outlasts the moment the Canary, not yet aware, still looks Current
        merge_patch(world, DEPLOYMENTS, "app", {"spec": {"minReadySeconds": MIN_READY_SECONDS}})
        recording.routes["before"] = world.get(ROUTES, "app") or {}
        await asyncio.gather(walk(canary, watched_first_rollout), walk(prompt, first_rollout))
        world.operator.stop()
        for subject in (canary, prompt):
            subject.patch({"spec": {"analysis": {**ANALYSIS, "interval": "3s"}}})
            subject.record("unobserved", subject.get() or {})
        world.operator.start()
        world.api.delete(f"{PROMPTS.format(ns=world.namespace)}/answer").raise_for_status()
        await world.until(lambda: prompt.get() is None, 30)
    return recording
