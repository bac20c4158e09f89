"""Where metrics come from and how the two versions are told apart in them."""

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from tollgate.api.base import ApiModel
from tollgate.api.durations import CallTimeout

PROMETHEUS_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"

MetricName = Annotated[str, Field(pattern=PROMETHEUS_NAME_PATTERN, max_length=200)]
LabelName = Annotated[str, Field(pattern=LABEL_NAME_PATTERN, max_length=100)]


class MetricPreset(StrEnum):
    """Families of metric names the built-in checks know."""

    PROMETHEUS = "prometheus"
    VLLM = "vllm"
    OTEL_GENAI = "otel-genai"


class MetricNames(ApiModel):
    """Overrides of the preset's metric names; unset ones keep the preset's."""

    request_duration: MetricName | None = Field(
        default=None, description="Histogram of request duration in seconds."
    )
    requests: MetricName | None = Field(default=None, description="Counter of requests.")
    errors: MetricName | None = Field(default=None, description="Counter of failed requests.")
    ttft: MetricName | None = Field(
        default=None, description="Histogram of time to first token in seconds."
    )
    input_tokens: MetricName | None = Field(default=None, description="Counter of input tokens.")
    output_tokens: MetricName | None = Field(default=None, description="Counter of output tokens.")
    output_tokens_per_request: MetricName | None = Field(
        default=None,
        description="Histogram of output tokens per request (lets the sequential tests judge "
        "costPerRequest).",
    )


class PrometheusSource(ApiModel):
    """A Prometheus-compatible query endpoint."""

    address: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = Field(
        default=None,
        description="Base URL of the Prometheus HTTP API; defaults to the operator's setting.",
    )
    timeout: CallTimeout = Field(
        default="5s", description="Timeout of one query, its whole answer included (at most 60s)."
    )


class MetricsSpec(ApiModel):
    """Metric source, names and the label that tells the versions apart."""

    prometheus: PrometheusSource = Field(
        default_factory=PrometheusSource,
        json_schema_extra={"default": {}},
        description="The Prometheus to query.",
    )
    preset: MetricPreset = Field(
        default=MetricPreset.PROMETHEUS,
        description="Metric name family: plain Prometheus histograms, vLLM, or OpenTelemetry "
        "GenAI semantic-convention names.",
    )
    names: MetricNames | None = Field(default=None, description="Overrides of the preset's names.")
    version_label: LabelName | None = Field(
        default=None,
        description="Label whose value tells the versions apart. Unset for a Canary: pods are "
        "matched by name on the 'pod' label (<target>-<hash>-<id> is the new version, "
        "<target>-primary-<hash>-<id> the stable one); set, its values are 'canary'/'primary'. "
        "A PromptRelease defaults to 'prompt_version' with version names as values.",
    )
    namespace_label: LabelName = Field(
        default="namespace", description="Label holding the Kubernetes namespace."
    )
    selector: dict[LabelName, Annotated[str, Field(max_length=1024)]] | None = Field(
        default=None,
        max_length=16,
        description="Extra label equality matchers added to every built-in query.",
    )


PROMPT_VERSION_LABEL = "prompt_version"
PROMPT_LABEL = "prompt"


class PromptMetricsSpec(MetricsSpec):
    """A PromptRelease's metrics: by default the names the Tollgate SDK records.

    The SDK labels every series with ``prompt`` and ``prompt_version``; built-in queries of a
    PromptRelease always match ``prompt="<spec.prompt>"`` besides the selector.
    """

    preset: MetricPreset = Field(
        default=MetricPreset.OTEL_GENAI,
        description="Metric name family; otel-genai is what the Tollgate SDK records.",
    )
    version_label: LabelName | None = Field(
        default=PROMPT_VERSION_LABEL,
        description="Label whose values are the prompt version names.",
    )
