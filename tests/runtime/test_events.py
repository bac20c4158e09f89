"""Events over real HTTP: repeats of an object's latest reason update that Event."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.events import EventSeries
from tollgate.testing.kubeapi import KubeApiServer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CANARY: dict[str, Any] = {
    "apiVersion": "tollgate.dev/v1alpha1",
    "kind": "Canary",
    "metadata": {"name": "app", "namespace": "default", "uid": "u-1", "resourceVersion": "7"},
}


def events(api: KubeApiServer) -> list[tuple[str, int, str]]:
    rows = api.list_objects("events", "default")
    return sorted((e["reason"], e["count"], e["message"]) for e in rows)


async def test_a_repeated_analysis_updates_the_latest_event(
    api: KubeApiServer, kube: KubeClient
) -> None:
    series = EventSeries()

    async def post(reason: str, message: str, at: int, repeat: bool = True) -> None:
        now = T0 + timedelta(seconds=at)
        assert await series.post(
            kube, CANARY, reason, message, warning=False, now=now, repeat=repeat
        )

    await post("AnalysisPassed", "analysis at 5%: first", 0)
    await post("AnalysisPassed", "analysis at 5%: second", 10)
    assert events(api) == [("AnalysisPassed", 2, "analysis at 5%: second")]
    (only,) = api.list_objects("events", "default")
    assert only["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert only["lastTimestamp"] == "2026-01-01T00:00:10Z"
    # another reason in between starts a new Event; so does a reason posted without repeat
    await post("StepUp", "step 2", 11, repeat=False)
    await post("AnalysisPassed", "analysis at 10%: first", 20)
    await post("AnalysisPassed", "analysis at 10%: again", 30, repeat=False)
    assert events(api) == [
        ("AnalysisPassed", 1, "analysis at 10%: again"),
        ("AnalysisPassed", 1, "analysis at 10%: first"),
        ("AnalysisPassed", 2, "analysis at 5%: second"),
        ("StepUp", 1, "step 2"),
    ]


async def test_an_analysis_never_overwrites_a_one_off_event_of_the_same_reason(
    api: KubeApiServer, kube: KubeClient
) -> None:
    series = EventSeries()
    await series.post(kube, CANARY, "AnalysisFailed", "rolling back", warning=True, now=T0)
    await series.post(
        kube, CANARY, "AnalysisFailed", "analysis at 10%: ...", warning=True, now=T0, repeat=True
    )
    assert events(api) == [
        ("AnalysisFailed", 1, "analysis at 10%: ..."),
        ("AnalysisFailed", 1, "rolling back"),
    ]


async def test_an_expired_event_is_posted_again(api: KubeApiServer, kube: KubeClient) -> None:
    series = EventSeries()
    await series.post(kube, CANARY, "AnalysisPassed", "one", warning=False, now=T0, repeat=True)
    for event in api.list_objects("events", "default"):
        api.delete("events", "default", event["metadata"]["name"])
    later = T0 + timedelta(seconds=10)
    assert await series.post(
        kube, CANARY, "AnalysisPassed", "two", warning=False, now=later, repeat=True
    )
    assert events(api) == [("AnalysisPassed", 1, "two")]
