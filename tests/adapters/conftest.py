"""A real Prometheus with deterministic, backfilled history, shared by the adapter tests."""

from collections.abc import Iterator

import pytest

from tests.adapters.history import Workload, openmetrics
from tollgate.testing.prometheus import PrometheusServer

T = 1_767_225_600  # 2026-01-01T00:00:00Z, the evaluation time of every query
CANARY = Workload(
    "shop",
    "app-7d9f8c6b5-abcde",
    rps=10,
    error_share=0.02,
    latency_shares=(0.5, 0.8, 0.9, 1, 1),
    ttft_shares=(0.2, 0.5, 0.96, 1, 1),
    input_tokens_per_request=1000,
    output_tokens_per_request=500,
    answer_shares=(0.1, 0.3, 0.6, 0.9, 1),
)
STABLE = Workload(
    "shop",
    "app-primary-5f6d7c8b9-fghij",
    rps=190,
    error_share=0.005,
    latency_shares=(0.6, 0.9, 0.98, 1, 1),
    ttft_shares=(0.5, 0.9, 0.99, 1, 1),
    input_tokens_per_request=1000,
    output_tokens_per_request=400,
    answer_shares=(0.2, 0.5, 0.8, 1, 1),
)
OTHER = Workload(
    "blog",
    "web-6c7d8e9f0-zzzzz",
    rps=5,
    error_share=0.0,
    latency_shares=(1, 1, 1, 1, 1),
    ttft_shares=(1, 1, 1, 1, 1),
)
OTHER_STABLE = Workload(
    "blog",
    "web-primary-1a2b3c4d5-yyyyy",
    rps=5,
    error_share=0.1,
    latency_shares=(0.9, 1, 1, 1, 1),
    ttft_shares=(1, 1, 1, 1, 1),
)

# Kubernetes names may hold dots: the pod regex must survive PromQL's string escaping.
DOTTED = Workload(
    "dots",
    "api.v2-7d9f8c6b5-abcde",
    rps=4,
    error_share=0.25,
    latency_shares=(1, 1, 1, 1, 1),
    ttft_shares=(1, 1, 1, 1, 1),
)
DOTTED_STABLE = Workload(
    "dots",
    "api.v2-primary-5f6d7c8b9-fghij",
    rps=6,
    error_share=0.0,
    latency_shares=(1, 1, 1, 1, 1),
    ttft_shares=(1, 1, 1, 1, 1),
)


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    server = PrometheusServer()
    server.backfill(
        openmetrics([CANARY, STABLE, OTHER, OTHER_STABLE, DOTTED, DOTTED_STABLE], T - 3600, T)
    )
    server.start()
    yield server
    server.close()
