"""Metric names of each preset, and the families of series the built-in checks need.

A family is one metric (a histogram's buckets or a counter) with fixed extra matchers. The
batcher issues one query per family per tick for every rollout that needs it.
"""

from dataclasses import dataclass
from enum import StrEnum

from tollgate.api.metrics import MetricNames, MetricPreset


class Shape(StrEnum):
    """How a family's series are read."""

    BUCKETS = "buckets"  # histogram *_bucket series, grouped by le
    COUNTER = "counter"  # a counter (or a histogram's _count/_sum)


@dataclass(frozen=True)
class Family:
    """One metric with its extra matchers: what a single batched query reads."""

    metric: str
    shape: Shape
    matchers: tuple[str, ...] = ()

    def series(self) -> str:
        return f"{self.metric}_bucket" if self.shape is Shape.BUCKETS else self.metric


@dataclass(frozen=True)
class PresetFamilies:
    """The families behind each built-in SLI for one preset (None: the preset has none)."""

    duration: Family | None
    requests: Family | None
    errors: Family | None
    ttft: Family | None
    input_tokens: Family | None
    output_tokens: Family | None
    answer_lengths: Family | None = None  # histogram of output tokens per request


_PRESETS: dict[MetricPreset, PresetFamilies] = {
    MetricPreset.PROMETHEUS: PresetFamilies(
        duration=Family("http_request_duration_seconds", Shape.BUCKETS),
        requests=Family("http_requests_total", Shape.COUNTER),
        errors=Family("http_requests_total", Shape.COUNTER, ('code=~"5.."',)),
        ttft=Family("llm_time_to_first_token_seconds", Shape.BUCKETS),
        input_tokens=Family("llm_input_tokens_total", Shape.COUNTER),
        output_tokens=Family("llm_output_tokens_total", Shape.COUNTER),
    ),
    MetricPreset.VLLM: PresetFamilies(
        duration=Family("vllm:e2e_request_latency_seconds", Shape.BUCKETS),
        requests=Family("vllm:e2e_request_latency_seconds_count", Shape.COUNTER),
        errors=None,
        ttft=Family("vllm:time_to_first_token_seconds", Shape.BUCKETS),
        input_tokens=Family("vllm:prompt_tokens_total", Shape.COUNTER),
        output_tokens=Family("vllm:generation_tokens_total", Shape.COUNTER),
        answer_lengths=Family("vllm:request_generation_tokens", Shape.BUCKETS),
    ),
    MetricPreset.OTEL_GENAI: PresetFamilies(
        duration=Family("gen_ai_client_operation_duration_seconds", Shape.BUCKETS),
        requests=Family("gen_ai_client_operation_duration_seconds_count", Shape.COUNTER),
        errors=Family(
            "gen_ai_client_operation_duration_seconds_count", Shape.COUNTER, ('error_type!=""',)
        ),
        ttft=Family("gen_ai_server_time_to_first_token_seconds", Shape.BUCKETS),
        input_tokens=Family(
            "gen_ai_client_token_usage_sum", Shape.COUNTER, ('gen_ai_token_type="input"',)
        ),
        output_tokens=Family(
            "gen_ai_client_token_usage_sum", Shape.COUNTER, ('gen_ai_token_type="output"',)
        ),
        answer_lengths=Family(
            "gen_ai_client_token_usage", Shape.BUCKETS, ('gen_ai_token_type="output"',)
        ),
    ),
}


def families_for(preset: MetricPreset, names: MetricNames | None) -> PresetFamilies:
    """The preset's families with the user's name overrides applied."""
    base = _PRESETS[preset]
    if names is None:
        return base

    def pick(current: Family | None, override: str | None, shape: Shape) -> Family | None:
        return Family(override, shape) if override is not None else current

    return PresetFamilies(
        duration=pick(base.duration, names.request_duration, Shape.BUCKETS),
        requests=pick(base.requests, names.requests, Shape.COUNTER),
        errors=pick(base.errors, names.errors, Shape.COUNTER),
        ttft=pick(base.ttft, names.ttft, Shape.BUCKETS),
        input_tokens=pick(base.input_tokens, names.input_tokens, Shape.COUNTER),
        output_tokens=pick(base.output_tokens, names.output_tokens, Shape.COUNTER),
        answer_lengths=pick(base.answer_lengths, names.output_tokens_per_request, Shape.BUCKETS),
    )
