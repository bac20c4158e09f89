"""Span attributes saying which prompt version served a request.

A trace of a bad answer should say which prompt version and which publication produced it.
The attributes are the OpenTelemetry GenAI semantic conventions (operation, model, request
parameters, token usage, error type) plus ``tollgate.prompt.*``. Requires only
``opentelemetry-api``: without an SDK configured, spans do not record and this costs a check.
"""

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from tollgate.sdk.choice import Choice

#: Model parameters with a GenAI convention attribute, by their usual name in parameters.
PARAMETER_ATTRIBUTES: Mapping[str, str] = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "stop_sequences": "gen_ai.request.stop_sequences",
}


def _parameter(value: Any) -> AttributeValue | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def span_attributes(
    choice: Choice,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    *,
    operation: str = "chat",
    error_type: str | None = None,
    provider: str | None = None,
) -> dict[str, AttributeValue]:
    """The attributes for a span that served ``choice``."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "tollgate.prompt.name": choice.prompt,
        "tollgate.prompt.version": choice.version,
        "tollgate.prompt.role": choice.role,
        "tollgate.prompt.revision": choice.revision,
    }
    if provider is not None:
        attributes["gen_ai.provider.name"] = provider
    if choice.model is not None:
        attributes["gen_ai.request.model"] = choice.model
    for name, value in choice.parameters.items():
        attribute = PARAMETER_ATTRIBUTES.get(name)
        converted = None if attribute is None else _parameter(value)
        if attribute is not None and converted is not None:
            attributes[attribute] = converted
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    if error_type:
        attributes["error.type"] = error_type
    return attributes


def annotate(
    choice: Choice,
    span: Span | None = None,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    operation: str = "chat",
    error_type: str | None = None,
    provider: str | None = None,
) -> bool:
    """Set :func:`span_attributes` on ``span`` (default: the current span) if it is recording;
    returns whether it was."""
    target = span if span is not None else trace.get_current_span()
    if not target.is_recording():
        return False
    target.set_attributes(
        span_attributes(
            choice,
            input_tokens,
            output_tokens,
            operation=operation,
            error_type=error_type,
            provider=provider,
        )
    )
    return True
