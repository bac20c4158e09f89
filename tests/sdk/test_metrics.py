"""The SDK's metrics are what the operator's ``otel-genai`` preset queries, per prompt version.

Everything is read back from the real prometheus_client exposition; one test scrapes it over
HTTP as Prometheus would.
"""

import itertools
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from tests.sdk.builders import PROMPT, corrupt, document
from tollgate.adapters.metrics.families import Shape, families_for
from tollgate.api.metrics import MetricPreset
from tollgate.sdk import Choice, PromptRouter, StaticSource
from tollgate.sdk.metrics import TOKEN_BUCKETS, PromptMetrics


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def candidate() -> Choice:
    return PromptRouter(StaticSource(document(100))).choose(PROMPT)


def labels(choice: Choice, **extra: str) -> dict[str, str]:
    """The labels every per-version series carries, and ``extra``."""
    return {
        "prompt": choice.prompt,
        "prompt_version": choice.version,
        "gen_ai_request_model": choice.model or "",
        **extra,
    }


def value(registry: CollectorRegistry, name: str, **labelset: str) -> float | None:
    return registry.get_sample_value(name, labelset)


def test_observe_records_duration_ttft_and_tokens_per_version(
    registry: CollectorRegistry, candidate: Choice
) -> None:
    metrics = PromptMetrics(registry)
    metrics.observe(candidate, duration=1.2, ttft=0.3, input_tokens=812, output_tokens=301)
    metrics.observe(candidate, duration=0.4, error="RateLimitError")

    ok = labels(candidate, gen_ai_operation_name="chat", error_type="")
    failed = labels(candidate, gen_ai_operation_name="chat", error_type="RateLimitError")
    duration = "gen_ai_client_operation_duration_seconds"
    assert value(registry, f"{duration}_count", **ok) == 1
    assert value(registry, f"{duration}_sum", **ok) == pytest.approx(1.2)
    assert value(registry, f"{duration}_bucket", **ok, le="1.5") == 1
    assert value(registry, f"{duration}_bucket", **ok, le="1.0") == 0
    assert value(registry, f"{duration}_count", **failed) == 1

    ttft = "gen_ai_server_time_to_first_token_seconds"
    assert value(registry, f"{ttft}_sum", **labels(candidate)) == pytest.approx(0.3)
    assert value(registry, f"{ttft}_count", **labels(candidate)) == 1  # not for the failed one

    tokens = "gen_ai_client_token_usage"
    assert value(registry, f"{tokens}_sum", **labels(candidate, gen_ai_token_type="input")) == 812
    assert value(registry, f"{tokens}_sum", **labels(candidate, gen_ai_token_type="output")) == 301
    assert value(registry, "tollgate_prompt_cost_usd_total", prompt=PROMPT) is None  # no prices


def test_the_series_are_the_ones_the_operator_preset_reads(
    registry: CollectorRegistry, candidate: Choice
) -> None:
    PromptMetrics(registry).observe(
        candidate, duration=1.0, ttft=0.2, input_tokens=10, output_tokens=20, error="Timeout"
    )
    exposed = {
        sample.name: sample.labels
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    preset = families_for(MetricPreset.OTEL_GENAI, None)
    families = [preset.duration, preset.requests, preset.errors, preset.ttft]
    families += [preset.input_tokens, preset.output_tokens]
    for family in families:
        assert family is not None
        series = family.series()
        assert series in exposed, series
        assert {"prompt", "prompt_version"} <= set(exposed[series])  # selector and versionLabel
        for matcher in family.matchers:  # e.g. error_type!="" or gen_ai_token_type="input"
            assert matcher.split("!=")[0].split("=")[0] in exposed[series]
        if family.shape is Shape.BUCKETS:
            assert "le" in exposed[series]


def test_measure_times_the_block_with_the_given_clock(
    registry: CollectorRegistry, candidate: Choice
) -> None:
    clock = Clock()
    metrics = PromptMetrics(
        registry, cost_per_million_input=0.15, cost_per_million_output=0.60, clock=clock
    )
    with metrics.measure(candidate) as m:
        clock.now += 0.25
        m.first_token()
        clock.now += 0.5
        m.first_token()  # later tokens do not move the first one
        clock.now += 1.0
        m.tokens(input=812, output=301)

    ok = labels(candidate, gen_ai_operation_name="chat", error_type="")
    assert value(registry, "gen_ai_client_operation_duration_seconds_sum", **ok) == pytest.approx(
        1.75
    )
    ttft = value(registry, "gen_ai_server_time_to_first_token_seconds_sum", **labels(candidate))
    assert ttft == pytest.approx(0.25)
    cost = value(registry, "tollgate_prompt_cost_usd_total", prompt=PROMPT, prompt_version="v8")
    assert cost == pytest.approx((812 * 0.15 + 301 * 0.60) / 1e6)


def test_measure_records_the_error_type_of_an_escaping_exception_or_a_failure(
    registry: CollectorRegistry, candidate: Choice
) -> None:
    clock = Clock()
    metrics = PromptMetrics(registry, clock=clock, operation="text_completion")

    def times_out() -> None:
        with metrics.measure(candidate) as m:
            m.first_token(0.9)
            raise TimeoutError

    with pytest.raises(TimeoutError):
        times_out()
    with metrics.measure(candidate, operation="chat") as m:
        m.fail("content_filter")

    count = "gen_ai_client_operation_duration_seconds_count"
    timeout = labels(candidate, gen_ai_operation_name="text_completion", error_type="TimeoutError")
    filtered = labels(candidate, gen_ai_operation_name="chat", error_type="content_filter")
    assert value(registry, count, **timeout) == 1
    assert value(registry, count, **filtered) == 1
    ttft = value(registry, "gen_ai_server_time_to_first_token_seconds_sum", **labels(candidate))
    assert ttft == pytest.approx(0.9)


def test_instruments_are_shared_by_metrics_on_one_registry(
    registry: CollectorRegistry, candidate: Choice
) -> None:
    first, second = PromptMetrics(registry), PromptMetrics(registry, cost_per_million_input=1)
    first.observe(candidate, duration=0.1)
    second.observe(candidate, duration=0.1, input_tokens=1_000_000)
    ok = labels(candidate, gen_ai_operation_name="chat", error_type="")
    assert value(registry, "gen_ai_client_operation_duration_seconds_count", **ok) == 2
    cost = value(registry, "tollgate_prompt_cost_usd_total", prompt=PROMPT, prompt_version="v8")
    assert cost == pytest.approx(1.0)


def test_token_buckets_are_powers_of_four_up_to_a_million() -> None:
    assert TOKEN_BUCKETS[0] == 1
    assert TOKEN_BUCKETS[-1] == 4**10
    assert all(b == a * 4 for a, b in itertools.pairwise(TOKEN_BUCKETS))


def test_the_router_state_is_exported(registry: CollectorRegistry) -> None:
    source = StaticSource(document(5, revision=7))
    router = PromptRouter(source)
    metrics = PromptMetrics(registry)
    metrics.track(router)
    metrics.track(router)  # once only
    source.publish(corrupt("weights"))
    assert value(registry, "tollgate_sdk_prompt_revision", prompt=PROMPT) == 7
    errors = value(registry, "tollgate_sdk_config_errors_total", source="static document")
    assert errors == 1


@pytest.fixture
def scrape_url(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.integration
def test_a_real_scrape_sees_the_series(
    registry: CollectorRegistry, candidate: Choice, scrape_url: str
) -> None:
    PromptMetrics(registry).observe(candidate, duration=2.0, ttft=0.5, output_tokens=64)
    with urllib.request.urlopen(scrape_url, timeout=5) as response:
        body = response.read().decode()
    assert (
        'gen_ai_client_operation_duration_seconds_bucket{error_type="",'
        'gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",le="2.0",'
        'prompt="support-answer",prompt_version="v8"} 1.0'
    ) in body
    assert (
        'gen_ai_client_token_usage_sum{gen_ai_request_model="gpt-4o",gen_ai_token_type="output",'
        'prompt="support-answer",prompt_version="v8"} 64.0'
    ) in body
