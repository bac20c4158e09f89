"""PromptRelease reconciles against the API test server, on a clock the test moves.

The rollouts here skip analysis (metrics are the subject of the live tests): what is checked is
the publication (one write per step, revisions that only grow, a rollback and a promotion as
one write each), templates from ConfigMaps, invalid states, and the order of prompt and code.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.api.status import Phase, RolloutStatus
from tollgate.runtime.promptrelease import reconcile_prompt_release
from tollgate.runtime.recording import Outcome
from tollgate.runtime.settings import Settings
from tollgate.runtime.wiring import Wiring
from tollgate.sdk.published import PublishedPrompt
from tollgate.sdk.published import parse as parse_published
from tollgate.testing import scenario
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.scenario import CANARIES, CONFIGMAPS, NS, PROMPTS

pytestmark = pytest.mark.integration
FAST = {
    "skipAnalysis": True,
    "analysis": {"interval": "30s", "stepWeight": 25, "maxWeight": 50, "progressDeadline": "5m"},
}


class PromptWorld:
    def __init__(self, api: KubeApiServer, wiring: Wiring) -> None:
        self.api = api
        self.wiring = wiring
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        wiring.now = lambda: self.now

    def body(self, name: str = "answer") -> dict[str, Any]:
        found = self.api.get(PROMPTS, NS, name)
        assert found is not None
        return found

    def status(self, name: str = "answer") -> RolloutStatus:
        return scenario.rollout_status(self.api, name, resource=PROMPTS)

    def doc(self, name: str = "answer") -> PublishedPrompt:
        found = scenario.published(self.api, name)
        assert found is not None
        return found

    def publications(self) -> list[PublishedPrompt]:
        """Every document written to the ConfigMap, in order."""
        out = []
        for record in self.api.writes(CONFIGMAPS):
            text = (record.body.get("data") or {}).get("prompts.json")
            if text is not None:
                out.append(parse_published(text))
        return out

    async def tick(self, seconds: float = 0.0, name: str = "answer") -> Outcome:
        self.now += timedelta(seconds=seconds)
        return await reconcile_prompt_release(self.body(name), self.wiring)

    async def run_until(self, done: Any, step: float = 5.0, limit: int = 200) -> None:
        for _ in range(limit):
            if done(self):
                return
            await self.tick(step)
        raise AssertionError(f"not reached: {self.status().phase} {self.status().message}")

    def request(self, what: str, name: str = "answer") -> None:
        self.api.patch(
            PROMPTS, NS, name, {"metadata": {"annotations": {"tollgate.dev/request": what}}}
        )

    def code(self, name: str, **status: Any) -> None:
        """A Canary of the code, with the status its own reconcile would have written."""
        if self.api.get(CANARIES, NS, name) is None:
            self.api.create(CANARIES, scenario.canary(name, {}))
        self.api.patch_status(CANARIES, NS, name, status)


@pytest.fixture
async def world() -> AsyncIterator[PromptWorld]:
    async with KubeApiServer() as api:
        http = httpx.AsyncClient()
        wiring = Wiring(
            settings=Settings(prometheus_url="http://127.0.0.1:9"),
            kube=KubeClient(httpx.AsyncClient(base_url=api.url, timeout=5.0)),
            http=http,
            metrics=MetricsBatcher(lambda url: PrometheusClient(url, 1.0, client=http), window=0.0),
            counts=CountReader(lambda url: PrometheusClient(url, 1.0, client=http)),
        )
        try:
            yield PromptWorld(api, wiring)
        finally:
            await wiring.aclose()


def PROGRESSING(w: PromptWorld) -> bool:  # noqa: N802 - reads as a condition
    return w.status().phase is Phase.PROGRESSING


async def test_steps_publish_once_each_and_promotion_flips_the_pointer(world: PromptWorld) -> None:
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST))
    await world.run_until(
        lambda w: w.status().phase is Phase.SUCCEEDED and w.status().reason == "Promoted"
    )
    docs = world.publications()
    shapes = [(d.stable, d.candidate, dict(d.weights)) for d in docs]
    assert shapes == [
        ("v1", None, {"v1": 100}),  # first publication: the stable version only
        ("v1", "v2", {"v1": 75, "v2": 25}),
        ("v1", "v2", {"v1": 50, "v2": 50}),
        ("v2", None, {"v2": 100}),  # promotion: one pointer flip
    ]
    assert [d.revision for d in docs] == [1, 2, 3, 4]
    assert docs[-1].versions["v2"].template.startswith("[v2]")
    status = world.status()
    assert status.stable_revision == status.revision
    assert str(status.stable_revision).startswith("v2@")
    reasons = [e["reason"] for e in world.api.list_objects("events", NS)]
    assert reasons.count("StepUp") == 2
    assert "Promoted" in reasons
    world.api.clear_requests()
    for _ in range(3):
        outcome = await world.tick(0)
        assert not outcome.status_written
    assert world.api.writes() == []


async def test_abort_is_one_write_back_to_stable(world: PromptWorld) -> None:
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST))
    await world.run_until(lambda w: scenario.prompt_weight(w.api, "answer") == 25)
    world.api.clear_requests()
    world.request("abort@1")
    await world.run_until(lambda w: w.status().phase is Phase.ROLLED_BACK)
    docs = world.publications()
    assert [(d.stable, d.candidate, dict(d.weights)) for d in docs] == [("v1", None, {"v1": 100})]
    assert world.status().reason == "Aborted"
    assert world.doc().revision == 3


async def test_a_template_from_a_configmap_is_waited_for_and_published(world: PromptWorld) -> None:
    versions = [
        scenario.prompt_version("v1"),
        {"name": "v2", "model": "sim-1", "templateFrom": {"name": "texts", "key": "v2.txt"}},
    ]
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST, versions))
    await world.tick()
    await world.tick(5)
    status = world.status()
    assert (status.phase, status.reason) == (Phase.SUCCEEDED, "TargetNotFound")
    assert "version v2: ConfigMap default/texts not found" in (status.message or "")
    assert world.doc().candidate is None
    world.api.create(
        CONFIGMAPS,
        {"metadata": {"name": "texts", "namespace": NS}, "data": {"v2.txt": "Hi {name}"}},
    )
    await world.run_until(lambda w: scenario.prompt_weight(w.api, "answer") == 25)
    assert world.doc().versions["v2"].template == "Hi {name}"


async def test_an_unreadable_template_configmap_is_reported_not_a_crash(
    world: PromptWorld,
) -> None:
    versions = [
        scenario.prompt_version("v1"),
        {"name": "v2", "model": "sim-1", "templateFrom": {"name": "texts", "key": "v2.txt"}},
    ]
    world.api.create(
        CONFIGMAPS,
        {"metadata": {"name": "texts", "namespace": NS}, "data": {"v2.txt": "Hi {name}"}},
    )
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST, versions))
    await world.run_until(lambda w: scenario.prompt_weight(w.api, "answer") == 25)
    world.api.fail_next("GET", f"{CONFIGMAPS}/texts", status=403, times=1000)
    outcome = await world.tick(5)
    assert outcome.status_written
    status = world.status()
    assert "ConfigMap default/texts" in (status.message or ""), status.message
    await world.run_until(lambda w: w.status().phase is Phase.ROLLED_BACK, limit=200)
    assert scenario.prompt_weight(world.api, "answer") == 0


async def test_editing_the_candidate_mid_rollout_starts_again(world: PromptWorld) -> None:
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST))
    await world.run_until(lambda w: scenario.prompt_weight(w.api, "answer") == 50)
    first = world.status().revision
    edited = scenario.prompt_version("v2")
    edited["template"] = "[v2, edited] " + edited["template"]
    world.api.patch(
        PROMPTS, NS, "answer", {"spec": {"versions": [scenario.prompt_version("v1"), edited]}}
    )
    world.api.clear_requests()
    await world.tick(1)
    status = world.status()
    assert status.revision != first
    # The edited content had no traffic yet, so step 1 follows at once: first the old content
    # is withdrawn, then the new one gets the first step.
    assert (status.current_step, status.canary_weight) == (1, 25)
    docs = world.publications()
    assert [(d.candidate, dict(d.weights)) for d in docs] == [
        (None, {"v1": 100}),
        ("v2", {"v1": 75, "v2": 25}),
    ]
    assert docs[-1].versions["v2"].template.startswith("[v2, edited]")


async def test_reusing_the_stable_name_for_new_content_is_stalled(world: PromptWorld) -> None:
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST))
    await world.run_until(lambda w: w.status().reason == "Promoted")
    changed = scenario.prompt_version("v2")
    changed["template"] = "something else"
    world.api.patch(
        PROMPTS,
        NS,
        "answer",
        {"spec": {"versions": [scenario.prompt_version("v1"), changed], "stable": "v1"}},
    )
    world.api.clear_requests()
    await world.tick(5)
    stalled = next(c for c in world.status().conditions if c.type == "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "InvalidSpec")
    assert "spec.candidate" in stalled.message
    assert world.publications() == []


async def test_someone_elses_publication_is_never_overwritten(world: PromptWorld) -> None:
    world.api.create(PROMPTS, scenario.prompt_release("answer", FAST))
    await world.tick()
    foreign = world.doc()
    text = world.api.get(CONFIGMAPS, NS, "answer-prompts")["data"]["prompts.json"]  # type: ignore[index]
    world.api.patch(
        CONFIGMAPS,
        NS,
        "answer-prompts",
        {"data": {"prompts.json": text.replace('"default/answer"', '"default/other"')}},
    )
    world.api.clear_requests()
    await world.tick(5)
    await world.tick(5)
    routed = next(c for c in world.status().conditions if c.type == "TrafficRouted")
    assert (routed.status.value, routed.reason) == ("False", "PublicationConflict")
    assert world.publications() == []
    assert foreign.release == "default/answer"


@pytest.mark.parametrize("declared_by", ["prompt", "canary"])
async def test_the_prompt_waits_for_its_code_and_goes_back_with_it(
    world: PromptWorld, declared_by: str
) -> None:
    spec: dict[str, Any] = dict(FAST)
    if declared_by == "prompt":
        spec["requires"] = {"canary": "api", "revision": "r2"}
        world.code("api", phase="Progressing", revision="r2", stableRevision="r1", canaryWeight=10)
    else:
        world.code("api", phase="Progressing", revision="r2", stableRevision="r1", canaryWeight=10)
        world.api.patch(CANARIES, NS, "api", {"spec": {"prompts": ["answer"]}})
    world.api.create(PROMPTS, scenario.prompt_release("answer", spec))
    await world.run_until(PROGRESSING)
    await world.tick(600)  # far past the progress deadline
    status = world.status()
    assert (status.phase, status.reason) == (Phase.PROGRESSING, "WaitingForCode")
    assert "Canary api" in (status.message or "")
    assert world.doc().candidate is None
    world.code("api", phase="Succeeded", revision="r2", stableRevision="r2", canaryWeight=0)
    await world.run_until(lambda w: scenario.prompt_weight(w.api, "answer") == 25)
    # The next code release fails while the prompt is in flight: the prompt goes back with it.
    world.code("api", phase="Progressing", revision="r3", stableRevision="r2", canaryWeight=10)
    rolled_back = {
        "phase": "RolledBack",
        "revision": "r3",
        "stableRevision": "r2",
        "canaryWeight": 0,
        "message": "p95 latency failed",
        "conditions": [
            {
                "type": "RolledBack",
                "status": "True",
                "reason": "AnalysisFailed",
                "message": "",
                "lastTransitionTime": (world.now + timedelta(seconds=1)).isoformat(),
            }
        ],
    }
    await world.tick(1)
    if declared_by == "prompt":  # pinned to r2, which stays stable: r3 does not concern it
        world.code("api", **rolled_back)
        await world.tick(5)
        assert world.status().phase is Phase.PROGRESSING
        return
    world.code("api", **rolled_back)
    await world.run_until(lambda w: w.status().phase is Phase.ROLLED_BACK)
    status = world.status()
    assert status.reason == "RequiredCodeRolledBack"
    assert "rolled back revision r3" in (status.message or "")
    assert scenario.prompt_weight(world.api, "answer") == 0
