"""The API client under throttling and lost races: it waits as told, and backs off with jitter.

A real API server sends 429 with Retry-After under API priority and fairness only when it is
overloaded, which a test cannot arrange on demand: the API test server sends it here.
"""

import asyncio
import time
from typing import Any

import httpx
import kopf
import pytest

from tollgate.adapters.kube.client import THROTTLE_CAP, KubeClient, KubeError, retry_after
from tollgate.adapters.kube.resources import CANARIES as CANARY_RESOURCE
from tollgate.adapters.kube.resources import CONFIGMAPS
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.runtime.handlers import (
    CONFLICT_BACKOFF_CAP,
    MEMO_PROMPTS,
    MEMO_SEEN,
    MEMO_TARGETS,
    MEMO_WAKE,
    MEMO_WIRING,
    _loop,
    conflict_backoff,
)
from tollgate.runtime.recording import CONFLICT_RETRY, Outcome
from tollgate.runtime.settings import Settings
from tollgate.runtime.wiring import Wiring
from tollgate.testing import scenario
from tollgate.testing.kubeapi import KubeApiServer
from tollgate.testing.scenario import CANARIES as CANARIES_PATH

pytestmark = pytest.mark.integration
MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default"}}


async def test_a_throttled_request_waits_its_retry_after_then_succeeds(
    api: KubeApiServer, kube: KubeClient
) -> None:
    api.create("configmaps", MAP)
    api.fail_next("GET", "configmaps/m", status=429, times=2, retry_after=1)
    started = time.monotonic()
    got = await kube.get(CONFIGMAPS, "default", "m")
    assert got["metadata"]["name"] == "m"
    assert time.monotonic() - started >= 2.0  # twice at least the 1 s the server asked


async def test_throttling_that_does_not_end_is_reported(
    api: KubeApiServer, kube: KubeClient
) -> None:
    api.create("configmaps", MAP)
    api.fail_next("GET", "configmaps/m", status=429, times=10, retry_after=0)
    with pytest.raises(KubeError) as raised:
        await kube.get(CONFIGMAPS, "default", "m")
    assert raised.value.status == 429


@pytest.mark.parametrize(
    ("header", "attempt", "low", "high"),
    [
        ("2", 0, 2.0, 2.5),  # the server's Retry-After is a minimum: jitter only adds
        ("3600", 0, THROTTLE_CAP, 1.25 * THROTTLE_CAP),  # capped: a reconcile goes on
        (None, 0, 0.375, 0.625),
        (None, 3, 3.0, 5.0),
        ("soon", 1, 0.75, 1.25),
        ("-5", 0, 0.0, 0.0),
    ],
)
def test_retry_after_is_capped_and_jittered(
    header: str | None, attempt: int, low: float, high: float
) -> None:
    waits = [retry_after(header, attempt) for _ in range(200)]
    assert all(low <= w <= high for w in waits)


def test_lost_races_back_off_exponentially_with_jitter_up_to_a_cap() -> None:
    first = [conflict_backoff(1) for _ in range(200)]
    assert all(0.5 * CONFLICT_RETRY <= w <= 1.5 * CONFLICT_RETRY for w in first)
    assert len(set(first)) > 100  # jittered: racing replicas do not retry in lockstep
    later = [conflict_backoff(12) for _ in range(200)]
    assert all(0.5 * CONFLICT_BACKOFF_CAP <= w <= 1.5 * CONFLICT_BACKOFF_CAP for w in later)


class Stopped:
    """kopf's DaemonStopped as the loop uses it: falsy until set, and awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


async def test_a_deleted_object_leaves_nothing_behind_in_the_operator(
    api: KubeApiServer, kube: KubeClient
) -> None:
    """Per-object memory (change detection, counter readings) is dropped with the object, so a
    re-created Canary for the same target starts from nothing."""
    body = scenario.canary("app", {})
    created = api.create(CANARIES_PATH, body)
    uid = created["metadata"]["uid"]
    wiring = Wiring(
        settings=Settings(),
        kube=kube,
        http=httpx.AsyncClient(),
        metrics=MetricsBatcher(lambda url: PrometheusClient(url, 1.0)),
        counts=CountReader(lambda url: PrometheusClient(url, 1.0)),
    )
    memo = kopf.Memo()
    memo.update(
        {MEMO_WIRING: wiring, MEMO_WAKE: {}, MEMO_SEEN: {}, MEMO_TARGETS: {}, MEMO_PROMPTS: {}}
    )
    memo[MEMO_SEEN][uid] = ("gen", None)
    memo[MEMO_SEEN][(uid, "app")] = ("deployment",)
    wiring.counts._last["default/app"] = ("rev", {})  # what a reading leaves
    stopped = Stopped()

    async def reconcile(fresh: dict[str, Any], _: Wiring) -> Outcome:
        stopped.event.set()  # one tick, then the object "goes"
        return Outcome(1.0, None, False)

    await _loop(
        CANARY_RESOURCE,
        reconcile,
        kopf.Body(created),  # type: ignore[arg-type]
        stopped,  # type: ignore[arg-type]
        memo,
        lambda _: None,
        lambda _: None,
        lambda _: ["default/app"],
    )
    assert memo[MEMO_SEEN] == {}
    assert "default/app" not in wiring.counts._last
    await wiring.http.aclose()


@pytest.mark.parametrize("delay", [1.0, 2.3, 9.999, 30.0])
def test_wake_ups_land_on_whole_seconds_so_rollouts_read_together(delay: float) -> None:
    from tollgate.runtime.handlers import on_the_second

    before = time.time()
    waited = on_the_second(delay)
    due = before + waited
    assert delay <= waited < delay + 1.0
    assert abs(due - round(due)) < 0.01
    assert on_the_second(0.2) == 0.2  # a retry that is due now is not held back
