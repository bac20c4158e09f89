"""The Prometheus adapter against a real Prometheus with known history.

Expected values are computed by hand from the generated traffic, and cross-checked with
Prometheus' own histogram_quantile on the resolved query the adapter reports for status.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.adapters.conftest import T
from tests.engine.sim import merge
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.api.canary import CanarySpec
from tollgate.engine.observations import MetricReading
from tollgate.testing.prometheus import PrometheusServer, free_port

pytestmark = pytest.mark.integration
AT = datetime.fromtimestamp(T, tz=UTC)
SPEC: dict[str, Any] = {
    "targetRef": {"name": "app"},
    "service": {"port": 80},
    "router": {"httpRoute": {"name": "app"}},
    "checks": {
        "latency": {"maxMilliseconds": 500},
        "ttft": {"maxIncreasePercent": 10},
        "errorRate": {"maxPercent": 1},
        "errorBudget": {"objectivePercent": 99.9},
        "costPerRequest": {
            "pricing": {"inputPerMillionTokens": 2.0, "outputPerMillionTokens": 8.0},
            "maxIncreasePercent": 10,
        },
    },
}


def request(
    address: str, namespace: str = "shop", name: str = "app", **over: Any
) -> AnalysisRequest:
    spec = CanarySpec.model_validate(merge(SPEC, over))
    assert spec.checks is not None
    return AnalysisRequest(
        namespace=namespace,
        name=name,
        canary=name,
        stable=f"{name}-primary",
        window=60,
        metrics=spec.metrics,
        checks=spec.checks,
        address=address,
    )


def read(
    batcher: MetricsBatcher, *requests: AnalysisRequest
) -> dict[str, dict[str, MetricReading]]:
    async def go() -> dict[str, tuple[MetricReading, ...]]:
        return await batcher.query(list(requests), AT)

    out = asyncio.run(go())
    return {key: {r.check: r for r in readings} for key, readings in out.items()}


def batcher_for() -> MetricsBatcher:
    return MetricsBatcher(lambda address: PrometheusClient(address, timeout=2.0))


def test_readings_match_the_generated_traffic(prometheus: PrometheusServer) -> None:
    batcher = batcher_for()
    got = read(batcher, request(prometheus.url), request(prometheus.url, "blog", "web"))
    shop = got["shop/app"]
    assert shop["latency"].canary == pytest.approx(0.75)  # 0.5 + 0.5 * (0.95 - 0.9) / 0.1
    assert shop["latency"].stable == pytest.approx(0.40625)
    assert (shop["latency"].canary_samples, shop["latency"].stable_samples) == (600, 11400)
    assert shop["ttft"].canary == pytest.approx(0.25 + 0.25 * (0.95 - 0.5) / (0.96 - 0.5))
    assert shop["errorRate"].canary == pytest.approx(0.02)
    assert shop["errorRate"].stable == pytest.approx(0.005)
    assert shop["errorBudget"].canary == pytest.approx(0.02)
    assert shop["costPerRequest"].canary == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    assert shop["costPerRequest"].stable == pytest.approx((1000 * 2 + 400 * 8) / 1e6)
    blog = got["blog/web"]
    assert blog["errorRate"].canary == pytest.approx(0.0)
    assert blog["errorRate"].stable == pytest.approx(0.1)
    assert blog["latency"].canary_samples == 300
    # one query per metric family for both rollouts: duration, ttft, requests, errors, 2 tokens
    assert batcher.queries_sent == 6


def test_resolved_query_gives_the_same_number_in_prometheus(prometheus: PrometheusServer) -> None:
    reading = read(batcher_for(), request(prometheus.url))["shop/app"]["latency"]
    assert reading.query is not None
    answer = httpx.post(
        f"{prometheus.url}/api/v1/query", data={"query": reading.query, "time": str(T)}
    ).json()
    values = {
        r["metric"]["tollgate_workload"]: float(r["value"][1]) for r in answer["data"]["result"]
    }
    assert values == {"app": pytest.approx(0.75), "app-primary": pytest.approx(0.40625)}


def test_concurrent_reads_share_one_batch(prometheus: PrometheusServer) -> None:
    batcher = batcher_for()

    async def go() -> tuple[tuple[MetricReading, ...], tuple[MetricReading, ...]]:
        return await asyncio.gather(
            batcher.read(request(prometheus.url), AT),
            batcher.read(request(prometheus.url, "blog", "web"), AT),
        )

    shop, blog = asyncio.run(go())
    assert batcher.queries_sent == 6  # one per family for both; apart they would send 12
    assert {r.check for r in shop} == {r.check for r in blog}


def test_reads_with_their_own_clocks_share_one_batch(prometheus: PrometheusServer) -> None:
    """Each reconcile passes its own microsecond clock: they must still meet in one batch."""
    batcher = batcher_for()

    async def go() -> list[tuple[MetricReading, ...]]:
        return await asyncio.gather(
            *(
                batcher.read(request(prometheus.url), AT + timedelta(microseconds=1000 * i))
                for i in range(10)
            )
        )

    readings = asyncio.run(go())
    assert batcher.queries_sent == 6  # one per family; keyed by the microsecond it was 60
    assert len({tuple(r) for r in readings}) == 1


def test_a_member_with_a_short_timeout_gives_up_alone(silent_server: str) -> None:
    batcher = MetricsBatcher(lambda address: PrometheusClient(address, timeout=5.0))
    hasty = replace(request(silent_server, "a", "hasty"), timeout=0.2)
    patient = replace(request(silent_server, "b", "patient"), timeout=1.0)

    async def go() -> list[Any]:
        return list(
            await asyncio.gather(
                batcher.read(hasty, AT), batcher.read(patient, AT), return_exceptions=True
            )
        )

    started = time.monotonic()
    first, second = asyncio.run(go())
    assert isinstance(first, TimeoutError)
    assert "within 0.2s" in str(first)
    assert not isinstance(second, TimeoutError)  # the shared query waited the longer timeout
    assert all(r.error == "no complete answer within 1s" for r in second), second
    assert time.monotonic() - started < 3.0


def test_workload_names_with_dots_are_matched(prometheus: PrometheusServer) -> None:
    got = read(batcher_for(), request(prometheus.url, namespace="dots", name="api.v2"))[
        "dots/api.v2"
    ]
    assert all(r.error is None for r in got.values()), got
    assert got["errorRate"].canary == pytest.approx(0.25)
    assert got["errorRate"].stable == pytest.approx(0.0)


def test_hostile_selector_values_are_escaped(prometheus: PrometheusServer) -> None:
    evil = request(prometheus.url, metrics={"selector": {"service": 'x"} or vector(1) #\\'}})
    got = read(batcher_for(), evil)["shop/app"]
    assert all(r.error is None for r in got.values()), got
    assert got["latency"].canary is None  # matched nothing: no data, never a pass


def test_outage_is_an_error_for_every_check() -> None:
    got = read(batcher_for(), request(f"http://127.0.0.1:{free_port()}"))["shop/app"]
    assert set(got) == {"latency", "ttft", "errorRate", "errorBudget", "costPerRequest"}
    assert all(r.error and "ConnectError" in r.error for r in got.values()), got


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_timeout_is_an_error(silent_server: str) -> None:
    batcher = MetricsBatcher(lambda address: PrometheusClient(address, timeout=0.3))
    got = read(batcher, request(silent_server))["shop/app"]
    assert all(r.error == "no complete answer within 0.3s" for r in got.values()), got


def test_custom_queries_per_version_and_their_errors(prometheus: PrometheusServer) -> None:
    custom = [
        {
            "name": "rps",
            "query": "sum(rate(http_requests_total{ {{ selector }} }[{{ window }}]))",
            "min": 1,
        },
        {
            "name": "broken",
            "query": "sum(rate(http_requests_total{ {{ selector }} }[1m])",
            "max": 1,
        },
    ]
    got = read(batcher_for(), request(prometheus.url, checks={"custom": custom}))["shop/app"]
    assert got["rps"].canary == pytest.approx(10)
    assert got["rps"].stable == pytest.approx(190)
    assert got["rps"].canary_samples == 600
    assert got["rps"].query is not None
    assert 'namespace="shop"' in got["rps"].query
    assert got["broken"].error is not None
    assert "bad_data" in got["broken"].error


def test_one_members_broken_le_label_fails_only_that_member() -> None:
    from tollgate.adapters.metrics.prometheus import Sample
    from tollgate.adapters.metrics.queries import plan, readings

    good, broken = request("http://p", "shop", "app"), request("http://p", "blog", "web")
    queries = plan([good, broken])
    answers: dict[int, Any] = {}
    for query in queries:
        rows = []
        for namespace, name in (
            ("shop", "app"),
            ("shop", "app-primary"),
            ("blog", "web"),
            ("blog", "web-primary"),
        ):
            base = {"namespace": namespace, "tollgate_workload": name}
            if query.family.shape.name == "COUNTER":
                rows.append(Sample(base, 100.0))
                continue
            for le, value in (("0.1", 50.0), ("0.5", 90.0), ("+Inf", 100.0)):
                shown = "not-a-number" if name == "web" and le == "0.5" else le
                rows.append(Sample({**base, "le": shown}, value))
        answers[id(query)] = rows
    fine = {r.check: r for r in readings(good, queries, answers)}
    hurt = {r.check: r for r in readings(broken, queries, answers)}
    assert fine["latency"].error is None, fine["latency"]
    assert fine["latency"].canary is not None
    assert hurt["latency"].error is not None
    assert "impossible data" in hurt["latency"].error
