"""The traffic simulator and workload exporters, seen the way the operator sees them.

The integration tests scrape the exporters with a real Prometheus and read ``increase()``, like
the operator. Shares and quantiles are ratios within one scrape target, so increase()'s
extrapolation cancels out of them; absolute increases are read exactly at the series' last
sample (:func:`exact_increase`). One traffic run feeds the split, latency and error tests (one
namespace each) to keep the module short. The rest needs no Prometheus: sampler means, knobs,
and seeded determinism through ``advance``.
"""

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tollgate.adapters.metrics.histograms import bucket_bound, quantile
from tollgate.adapters.metrics.queries import POD_SUFFIX, WORKLOAD_LABEL
from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.traffic import TrafficSimulator, binomial, poisson, register
from tollgate.testing.workload import WorkloadExporter, pod_name

WINDOW = "30s"  # longer than anything a test runs: windows start before the first sample
RATE = 200.0
SECONDS = 5.0


# -- Prometheus helpers ----------------------------------------------------------------------


def instant(prometheus: PrometheusServer, query: str, at: float | None = None) -> list[Any]:
    params = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
    response = httpx.get(f"{prometheus.url}/api/v1/query", params=params, timeout=5)
    response.raise_for_status()
    result: list[Any] = response.json()["data"]["result"]
    return result


def by(label: str, rows: list[Any]) -> dict[str, float]:
    return {row["metric"][label]: float(row["value"][1]) for row in rows}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def wait_scraped(prometheus: PrometheusServer, exporters: Sequence[WorkloadExporter]) -> None:
    """Until Prometheus' latest samples show every exporter's current request count."""
    want = {(e.namespace, e.pod): float(e.requests) for e in exporters}

    def seen() -> bool:
        rows = instant(prometheus, "sum by (namespace, pod) (http_requests_total)")
        got = {(r["metric"]["namespace"], r["metric"]["pod"]): float(r["value"][1]) for r in rows}
        return all(got.get(key) == value for key, value in want.items())

    wait_until(seen, f"Prometheus to scrape {sorted(want)}")


def selector(exporter: WorkloadExporter, metric: str = "http_requests_total") -> str:
    return f'{metric}{{namespace="{exporter.namespace}",pod="{exporter.pod}"}}'


def exact_increase(prometheus: PrometheusServer, series: str, at: float) -> float:
    """increase() evaluated at the series' last sample, over a window that starts before it.

    The first sample is a 0 (taken before any traffic), so increase() extrapolates neither
    towards the window's start (it stops at zero) nor towards its end (the last sample is the
    end): the answer is exactly what the counter gained, resets included.
    """
    last = instant(prometheus, f"max(timestamp({series}))", at)
    rows = instant(prometheus, f"sum(increase({series}[{WINDOW}]))", float(last[0]["value"][1]))
    return float(rows[0]["value"][1])


def local_buckets(exporter: WorkloadExporter, metric: str) -> dict[float, float]:
    prefix = f'{metric}_bucket{{le="'
    return {
        bucket_bound(key[len(prefix) : -2]): value
        for key, value in exporter.samples().items()
        if key.startswith(prefix)
    }


# -- one traffic run through a real Prometheus ---------------------------------------------


@dataclass
class Run:
    sims: dict[str, TrafficSimulator]
    at: float  # every series' last sample is in Prometheus by then


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    server = PrometheusServer(scrape_interval="1s")
    server.start()
    yield server
    server.close()


async def ten_percent() -> float:
    """A weight source as the operator's router would be read (async)."""
    return 10.0


async def drive(sims: Sequence[TrafficSimulator], seconds: float) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims:
            await stack.enter_async_context(sim)
        await asyncio.sleep(seconds)


Pods = dict[str, tuple[WorkloadExporter, WorkloadExporter]]  # namespace: (stable, canary)


@pytest.fixture(scope="module")
def pods(prometheus: PrometheusServer) -> Iterator[Pods]:
    """Every test's pods, registered at once: Prometheus takes 2-6 s to scrape new targets."""
    with contextlib.ExitStack() as stack:
        out: Pods = {}
        for namespace in ("split", "latency", "errors", "restart"):
            stable = WorkloadExporter(namespace, pod_name("app-primary", namespace))
            canary = WorkloadExporter(namespace, pod_name("app", namespace))
            out[namespace] = stack.enter_context(stable), stack.enter_context(canary)
        exporters = [e for pair in out.values() for e in pair]
        register(prometheus, exporters)
        wait_scraped(prometheus, exporters)  # a 0 for every series before any traffic
        yield out


@pytest.fixture(scope="module")
def run(prometheus: PrometheusServer, pods: Pods) -> Run:
    weights: dict[str, Callable[[], Any] | float] = {
        "split": ten_percent,
        "latency": 50,
        "errors": 50,
    }
    sims = {
        namespace: TrafficSimulator(RATE, weight, *pods[namespace], seed=seed)
        for seed, (namespace, weight) in enumerate(weights.items())
    }
    sims["latency"].canary.latency_factor = 2.0
    sims["errors"].canary.error_share = 0.2
    asyncio.run(drive(list(sims.values()), SECONDS))
    wait_scraped(prometheus, [e for sim in sims.values() for e in sim.exporters])
    return Run(sims, time.time())


@pytest.mark.integration
def test_canary_share_of_requests_follows_the_weight(
    prometheus: PrometheusServer, run: Run
) -> None:
    sim = run.sims["split"]
    canary = exact_increase(prometheus, selector(sim.canary), run.at)
    stable = exact_increase(prometheus, selector(sim.stable), run.at)
    # Nothing lost or invented between the draw and Prometheus' TSDB.
    assert (canary, stable) == (sim.sent.canary, sim.sent.stable)
    total = canary + stable
    assert 0.8 * RATE * SECONDS < total < 1.2 * RATE * SECONDS
    assert abs(canary / total - 0.10) < 4 * math.sqrt(0.10 * 0.90 / total)
    # The pod names resolve to the Deployments with the operator's own regex.
    workloads = by(
        WORKLOAD_LABEL,
        instant(
            prometheus,
            f"sum by ({WORKLOAD_LABEL}) (label_replace("
            f'increase(http_requests_total{{namespace="split"}}[{WINDOW}]),'
            f' "{WORKLOAD_LABEL}", "$1", "pod", "(.+){POD_SUFFIX}"))',
            run.at,
        ),
    )
    assert set(workloads) == {"app", "app-primary"}


@pytest.mark.integration
def test_latency_regression_doubles_p95(prometheus: PrometheusServer, run: Run) -> None:
    sim = run.sims["latency"]
    metric = "http_request_duration_seconds"
    p95 = by(
        "pod",
        instant(
            prometheus,
            "histogram_quantile(0.95, sum by (pod, le) ("
            f'increase({metric}_bucket{{namespace="latency"}}[{WINDOW}])))',
            run.at,
        ),
    )
    canary, stable = p95[sim.canary.pod], p95[sim.stable.pod]
    # True p95s are 0.193 s and 0.386 s; linear interpolation inside the buckets (0.1-0.2 and
    # 0.3-0.5) reads about 0.20 s and 0.45 s, a ratio of 2.0-2.4 over seeds at these counts.
    assert 0.1 < stable <= 0.2
    assert 1.7 < canary / stable < 2.7
    # Prometheus interpolates exactly like the operator's own quantile().
    assert canary == pytest.approx(quantile(0.95, local_buckets(sim.canary, metric)), rel=1e-9)
    assert stable == pytest.approx(quantile(0.95, local_buckets(sim.stable, metric)), rel=1e-9)


@pytest.mark.integration
def test_error_spike_shows_in_the_5xx_ratio(prometheus: PrometheusServer, run: Run) -> None:
    sim = run.sims["errors"]
    failed = f'increase(http_requests_total{{namespace="errors",code="500"}}[{WINDOW}])'
    every = f'increase(http_requests_total{{namespace="errors"}}[{WINDOW}])'
    ratio = by(
        "pod", instant(prometheus, f"sum by (pod) ({failed}) / sum by (pod) ({every})", run.at)
    )
    canary, stable = ratio[sim.canary.pod], ratio[sim.stable.pod]
    assert canary == pytest.approx(sim.canary.errors / sim.canary.requests, rel=1e-9)
    assert abs(canary - 0.2) < 4 * math.sqrt(0.2 * 0.8 / sim.canary.requests)
    assert stable < 0.005 + 4 * math.sqrt(0.005 * 0.995 / sim.stable.requests)


@pytest.mark.integration
def test_reset_restarts_counters_and_increase_stays_sane(
    prometheus: PrometheusServer, pods: Pods
) -> None:
    stable, canary = pods["restart"]
    sim = TrafficSimulator(RATE, 50, stable, canary, seed=4)
    began = time.time()
    before = sim.advance_at(2.0, 50)
    wait_scraped(prometheus, sim.exporters)
    canary.reset()
    assert canary.requests == 0
    assert set(canary.samples().values()) == {0.0}
    # Prometheus must see the drop: were the counter back above its old value by the next
    # scrape, increase() could not tell a restart from a slow period.
    wait_scraped(prometheus, sim.exporters)
    after = sim.advance_at(2.0, 50)
    wait_scraped(prometheus, sim.exporters)
    now = time.time()

    sent = before.canary + after.canary
    assert exact_increase(prometheus, selector(canary), now) == sent
    assert exact_increase(prometheus, selector(stable), now) == before.stable + after.stable
    ok = f'{{namespace="restart",pod="{canary.pod}",code="200"}}'
    assert by("pod", instant(prometheus, f"resets(http_requests_total{ok}[{WINDOW}])", now)) == {
        canary.pod: 1.0
    }
    plain = by("pod", instant(prometheus, f"sum by (pod) (increase({selector(canary)}[30s]))", now))
    assert sent <= plain[canary.pod] < 1.5 * sent  # extrapolated, never below the truth
    response = httpx.get(
        f"{prometheus.url}/api/v1/query_range",
        params={
            "query": f"sum(increase({selector(canary)}[3s]))",
            "start": f"{began:.3f}",
            "end": f"{now:.3f}",
            "step": "0.25",
        },
        timeout=5,
    )
    values = [float(v) for _, v in response.json()["data"]["result"][0]["values"]]
    assert values
    assert all(0 <= v < 2 * sent for v in values)


# -- without Prometheus --------------------------------------------------------------------


@pytest.mark.parametrize("mean", [0.3, 5.0, 20.0, 75.0])
def test_poisson_mean_and_variance(mean: float) -> None:
    rng = random.Random(f"poisson/{mean}")
    n = 4000
    draws = [poisson(rng, mean) for _ in range(n)]
    average = sum(draws) / n
    variance = sum((d - average) ** 2 for d in draws) / (n - 1)
    assert abs(average - mean) < 5 * math.sqrt(mean / n)
    assert variance == pytest.approx(mean, rel=0.2)


@pytest.mark.parametrize(("n", "p"), [(20, 0.1), (200, 0.5), (50, 0.97)])
def test_binomial_mean(n: int, p: float) -> None:
    rng = random.Random(f"binomial/{n}/{p}")
    trials = 3000
    average = sum(binomial(rng, n, p) for _ in range(trials)) / trials
    assert abs(average - n * p) < 5 * math.sqrt(n * p * (1 - p) / trials)


def test_sampler_edges() -> None:
    rng = random.Random(0)
    assert poisson(rng, 0.0) == 0
    assert binomial(rng, 10, 0.0) == 0
    assert binomial(rng, 10, 1.0) == 10
    with pytest.raises(ValueError, match="poisson"):
        poisson(rng, -1.0)
    with pytest.raises(ValueError, match="binomial"):
        binomial(rng, 3, 1.5)


def pair(seed: int, weight: float | Callable[[], Any] = 25.0) -> TrafficSimulator:
    stable = WorkloadExporter("ns", pod_name("app-primary"))
    canary = WorkloadExporter("ns", pod_name("app"))
    return TrafficSimulator(RATE, weight, stable, canary, seed=seed)


def recorded(sim: TrafficSimulator) -> tuple[dict[str, float], dict[str, float]]:
    return sim.stable.samples(), sim.canary.samples()


async def test_same_seed_records_the_same_counts() -> None:
    sims = [pair(7, ten_percent), pair(7, ten_percent), pair(8, ten_percent)]
    for sim in sims:
        await sim.advance(1.0)
        sim.canary.latency_factor = 2.0
        await sim.advance(2.0)
    same, twin, other = sims
    assert same.ticks == 30
    assert same.sent == twin.sent
    assert recorded(same) == recorded(twin)
    assert recorded(same) != recorded(other)


async def test_live_run_records_what_advance_records() -> None:
    live = pair(3)
    async with live:
        await asyncio.sleep(0.55)
    assert live.ticks >= 4
    replay = pair(3)
    replay.advance_at(live.ticks * live.tick, 25.0)
    assert replay.sent == live.sent
    assert recorded(replay) == recorded(live)


def test_advance_carries_partial_ticks() -> None:
    sim = pair(1)
    for _ in range(10):
        sim.advance_at(0.05, 25.0)
    assert sim.ticks == 5


def test_a_canary_regression_leaves_the_stable_draws_alone() -> None:
    plain, regressed = pair(5), pair(5)
    regressed.canary.latency_factor = 2.0
    regressed.canary.error_share = 0.5
    for sim in (plain, regressed):
        sim.advance_at(2.0, 50.0)
    assert recorded(plain)[0] == recorded(regressed)[0]
    assert recorded(plain)[1] != recorded(regressed)[1]


async def test_weight_source_failures_keep_the_last_weight() -> None:
    answers: list[float | Exception | None] = [40.0, None, RuntimeError("api down"), 250.0, 60.0]

    async def source() -> float | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sim = pair(2, source)
    seen = [await sim.read_weight() for _ in range(5)]
    assert seen == [40.0, 40.0, 40.0, 40.0, 60.0]
    assert sim.weight_errors == 2  # the exception and the out-of-range 250
    assert sim.advance_at(1.0, 0.0).canary == 0
    assert sim.advance_at(1.0, 100.0).stable == 0


def test_regression_knobs() -> None:
    rng = random.Random(11)
    base = WorkloadExporter("ns", pod_name("app-primary"))
    slow = WorkloadExporter("ns", pod_name("app"))
    slow.latency_factor = slow.ttft_factor = 2.0
    slow.cost_factor = 1.5
    slow.error_share = 0.3
    for exporter in (base, slow):
        exporter.record(5000, rng)

    def mean(e: WorkloadExporter, metric: str) -> float:
        return e.value(f"{metric}_sum") / e.value(f"{metric}_count")

    for metric in ("http_request_duration_seconds", "llm_time_to_first_token_seconds"):
        assert mean(slow, metric) / mean(base, metric) == pytest.approx(2.0, rel=0.05)
    cost_slow, cost_base = slow.cost_per_request(), base.cost_per_request()
    assert cost_slow is not None
    assert cost_base is not None
    assert cost_slow / cost_base == pytest.approx(
        (200 * 0.15 + 1200 * 0.6) / (200 * 0.15 + 800 * 0.6)
    )
    assert slow.errors / slow.requests == pytest.approx(0.3, abs=0.03)
    assert base.errors / base.requests < 0.02


def test_reset_is_a_fresh_process() -> None:
    exporter = WorkloadExporter("ns", pod_name("app"))
    exporter.record(100, random.Random(0))
    assert exporter.requests == 100
    exporter.reset()
    assert exporter.requests == 0
    assert exporter.cost_per_request() is None
    assert set(exporter.samples().values()) == {0.0}
    assert 'http_requests_total{code="500"}' in exporter.samples()  # both codes start at 0


async def test_metrics_are_served_without_the_callers_loop() -> None:
    with WorkloadExporter("ns", pod_name("app")) as exporter:
        exporter.record(3, random.Random(0))
        async with httpx.AsyncClient(base_url=f"http://{exporter.address}", timeout=5) as client:
            page = await client.get("/metrics")
            missing = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'http_request_duration_seconds_bucket{le="+Inf"} 3.0' in page.text
    assert "llm_output_tokens_total 2400.0" in page.text
    assert missing.status_code == 404
    assert exporter.scrapes == 1
    assert exporter.labels == {"namespace": "ns", "pod": exporter.pod}
