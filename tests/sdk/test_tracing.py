"""Spans say which prompt version served the request, in GenAI semantic-convention terms.

Only opentelemetry-api is installed: its no-op spans do not record, so a minimal recording span
(the API's own ``Span`` interface, storing what it is given) stands in for an SDK's.
"""

from collections.abc import Mapping

import pytest
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, Status, StatusCode
from opentelemetry.util import types
from prometheus_client import CollectorRegistry

from tests.sdk.builders import PROMPT, document
from tollgate.sdk import Choice, PromptRouter, StaticSource
from tollgate.sdk.metrics import PromptMetrics
from tollgate.sdk.tracing import annotate, span_attributes


class RecordingSpan(trace.Span):
    """Keeps the attributes set on it; everything else is accepted and ignored."""

    def __init__(self) -> None:
        self.attributes: dict[str, types.AnyValue] = {}

    def end(self, end_time: int | None = None) -> None:
        pass

    def get_span_context(self) -> SpanContext:
        return INVALID_SPAN_CONTEXT

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        self.attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def is_recording(self) -> bool:
        return True

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        pass

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        pass


@pytest.fixture
def candidate() -> Choice:
    return PromptRouter(StaticSource(document(100, revision=4))).choose(PROMPT, "alice")


def test_span_attributes_follow_the_genai_conventions(candidate: Choice) -> None:
    assert span_attributes(candidate, 812, 301) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.1,
        "gen_ai.request.stop_sequences": ["\n\n"],
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 301,
        "tollgate.prompt.name": PROMPT,
        "tollgate.prompt.version": "v8",
        "tollgate.prompt.role": "candidate",
        "tollgate.prompt.revision": 4,
    }
    stable = PromptRouter(StaticSource(document(0))).choose(PROMPT)
    attributes = span_attributes(stable, error_type="RateLimitError", provider="openai")
    assert attributes["error.type"] == "RateLimitError"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.max_tokens"] == 512
    assert "gen_ai.usage.input_tokens" not in attributes


def test_without_an_sdk_spans_do_not_record_and_annotate_does_nothing(
    candidate: Choice,
) -> None:
    assert not trace.get_current_span().is_recording()
    assert annotate(candidate) is False
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("chat") as span:
        assert not span.is_recording()
        assert annotate(candidate) is False


def test_annotate_sets_the_attributes_on_a_recording_span(candidate: Choice) -> None:
    span = RecordingSpan()
    assert annotate(candidate, span, input_tokens=5)
    assert span.attributes["tollgate.prompt.version"] == "v8"
    assert span.attributes["gen_ai.usage.input_tokens"] == 5


def test_measure_annotates_the_current_span(candidate: Choice) -> None:
    span = RecordingSpan()
    metrics = PromptMetrics(CollectorRegistry())

    def fails() -> None:
        with trace.use_span(span), metrics.measure(candidate) as m:
            m.tokens(input=812, output=301)
            raise ConnectionError

    with pytest.raises(ConnectionError):
        fails()
    assert span.attributes["tollgate.prompt.role"] == "candidate"
    assert span.attributes["gen_ai.usage.output_tokens"] == 301
    assert span.attributes["error.type"] == "ConnectionError"
