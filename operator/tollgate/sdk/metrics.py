"""Per-version request metrics, under the names the operator's ``otel-genai`` preset reads.

The operator decides a prompt rollout from these series alone: it compares the candidate's
latency, time to first token, errors and tokens with the stable version's, told apart by the
``prompt_version`` label (``metrics.versionLabel``) and narrowed to one prompt with a selector
on the ``prompt`` label. Names follow the OpenTelemetry GenAI conventions as Prometheus exports
them (dots become underscores), so the same dashboards work for both.

Requires ``prometheus_client``. Label children are cached per version, so recording a request
costs a few dictionary lookups and the histogram updates.
"""

import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tollgate.sdk.choice import Choice
from tollgate.sdk.router import PromptRouter

_annotate: Callable[..., bool] | None
try:
    from tollgate.sdk.tracing import annotate as _annotate
except ImportError:  # opentelemetry-api is optional
    _annotate = None

DURATION = "gen_ai_client_operation_duration_seconds"
TTFT = "gen_ai_server_time_to_first_token_seconds"
TOKENS = "gen_ai_client_token_usage"
COST = "tollgate_prompt_cost_usd"
CONFIG_ERRORS = "tollgate_sdk_config_errors"
REVISION = "tollgate_sdk_prompt_revision"

DURATION_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
    5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip
TTFT_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8,
    1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
TOKEN_BUCKETS = tuple(float(4**n) for n in range(11))  # 1 .. 1048576

VERSION_LABELS = ("prompt", "prompt_version", "gen_ai_request_model")


@dataclass
class _Instruments:
    duration: Histogram
    ttft: Histogram
    tokens: Histogram
    registry: CollectorRegistry
    cost: Counter | None = None
    tracked: "weakref.WeakSet[PromptRouter]" = field(default_factory=weakref.WeakSet)

    def cost_counter(self) -> Counter:
        if self.cost is None:
            self.cost = Counter(
                COST,
                "Cost of the requests in US dollars, from the token counts and the prices.",
                ("prompt", "prompt_version"),
                registry=self.registry,
            )
        return self.cost


_INSTRUMENTS: "weakref.WeakKeyDictionary[CollectorRegistry, _Instruments]" = (
    weakref.WeakKeyDictionary()
)


def _instruments(registry: CollectorRegistry) -> _Instruments:
    """One set of instruments per registry, however many PromptMetrics share it."""
    found = _INSTRUMENTS.get(registry)
    if found is None:
        found = _Instruments(
            duration=Histogram(
                DURATION,
                "Duration of GenAI operations, by prompt version; error_type is empty on success.",
                (*VERSION_LABELS, "gen_ai_operation_name", "error_type"),
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            ttft=Histogram(
                TTFT,
                "Time to the first token of the response, by prompt version.",
                VERSION_LABELS,
                buckets=TTFT_BUCKETS,
                registry=registry,
            ),
            tokens=Histogram(
                TOKENS,
                "Tokens per operation, by prompt version and token type (input or output).",
                (*VERSION_LABELS, "gen_ai_token_type"),
                buckets=TOKEN_BUCKETS,
                registry=registry,
            ),
            registry=registry,
        )
        _INSTRUMENTS[registry] = found
    return found


@dataclass
class _Series:
    """The label children of one prompt version, model and operation."""

    durations: dict[str, Histogram]
    ttft: Histogram
    input_tokens: Histogram
    output_tokens: Histogram
    cost: Counter | None


class PromptMetrics:
    """Records requests per prompt version.

    Prices are in US dollars per million tokens; with either given, the cost of each request
    is added to ``tollgate_prompt_cost_usd_total``. ``clock`` (seconds, monotonic) times
    :meth:`measure` blocks. ``operation`` is the ``gen_ai.operation.name`` by default.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        cost_per_million_input: float | None = None,
        cost_per_million_output: float | None = None,
        *,
        operation: str = "chat",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        self.operation = operation
        self.clock = clock
        self._instruments = _instruments(registry)
        self._priced = cost_per_million_input is not None or cost_per_million_output is not None
        self._input_price = (cost_per_million_input or 0.0) / 1e6
        self._output_price = (cost_per_million_output or 0.0) / 1e6
        if self._priced:
            self._instruments.cost_counter()
        self._series: dict[tuple[str, str, str | None, str], _Series] = {}

    def measure(self, choice: Choice, *, operation: str | None = None) -> "Measurement":
        """Time a block that serves ``choice``; see :class:`Measurement`."""
        return Measurement(self, choice, operation or self.operation)

    def observe(
        self,
        choice: Choice,
        *,
        duration: float | None = None,
        ttft: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        error: str | None = None,
        operation: str | None = None,
    ) -> None:
        """Record one finished request; ``error`` is its error type, None on success."""
        key = (choice.prompt, choice.version, choice.model, operation or self.operation)
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        if duration is not None:
            error_type = error or ""
            child = series.durations.get(error_type)
            if child is None:
                child = series.durations[error_type] = self._instruments.duration.labels(
                    choice.prompt, choice.version, choice.model or "", key[3], error_type
                )
            child.observe(duration)
        if ttft is not None:
            series.ttft.observe(ttft)
        if input_tokens is not None:
            series.input_tokens.observe(input_tokens)
        if output_tokens is not None:
            series.output_tokens.observe(output_tokens)
        if series.cost is not None and (input_tokens or output_tokens):
            series.cost.inc(
                (input_tokens or 0) * self._input_price + (output_tokens or 0) * self._output_price
            )

    def track(self, router: PromptRouter) -> None:
        """Also export the router's configuration state: the revision in use per prompt and
        the count of configuration errors per source (once per router and registry)."""
        if router in self._instruments.tracked:
            return
        self._instruments.tracked.add(router)
        self.registry.register(_RouterCollector(router))

    def _new_series(self, key: tuple[str, str, str | None, str]) -> _Series:
        prompt, version, model, _ = key
        labels = (prompt, version, model or "")
        tokens = self._instruments.tokens
        series = _Series(
            durations={},
            ttft=self._instruments.ttft.labels(*labels),
            input_tokens=tokens.labels(*labels, "input"),
            output_tokens=tokens.labels(*labels, "output"),
            cost=self._instruments.cost_counter().labels(prompt, version) if self._priced else None,
        )
        self._series[key] = series
        return series


class Measurement:
    """One request being served, as a context manager::

        with metrics.measure(choice) as m:
            m.first_token()  # when the first token arrives (or m.first_token(seconds))
            m.tokens(input=812, output=301)

    On exit it records the duration, and the error type: the exception's class name if one
    escapes the block, or the reason given to :meth:`fail`. The current OpenTelemetry span, if
    recording, gets the GenAI and prompt attributes.
    """

    __slots__ = ("_error", "_input", "_output", "_start", "_ttft", "choice", "metrics", "operation")

    def __init__(self, metrics: PromptMetrics, choice: Choice, operation: str) -> None:
        self.metrics = metrics
        self.choice = choice
        self.operation = operation
        self._start = 0.0
        self._ttft: float | None = None
        self._input: int | None = None
        self._output: int | None = None
        self._error: str | None = None

    def __enter__(self) -> Self:
        self._start = self.metrics.clock()
        return self

    def first_token(self, seconds: float | None = None) -> None:
        """The first token arrived now (or ``seconds`` after the start); later calls without
        ``seconds`` keep the first time."""
        if seconds is not None:
            self._ttft = seconds
        elif self._ttft is None:
            self._ttft = self.metrics.clock() - self._start

    def tokens(self, input: int | None = None, output: int | None = None) -> None:  # noqa: A002
        """The request's token counts (a later call replaces the counts it gives)."""
        if input is not None:
            self._input = input
        if output is not None:
            self._output = output

    def fail(self, reason: str = "error") -> None:
        """Count the request as failed with ``reason`` as its error type, without raising."""
        self._error = reason

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        duration = self.metrics.clock() - self._start
        error = self._error or (exc_type.__name__ if exc_type is not None else None)
        self.metrics.observe(
            self.choice,
            duration=duration,
            ttft=self._ttft,
            input_tokens=self._input,
            output_tokens=self._output,
            error=error,
            operation=self.operation,
        )
        if _annotate is not None:
            _annotate(
                self.choice,
                input_tokens=self._input,
                output_tokens=self._output,
                operation=self.operation,
                error_type=error,
            )


class _RouterCollector(Collector):
    """The router's configuration state, read at scrape time."""

    def __init__(self, router: PromptRouter) -> None:
        self._router = weakref.ref(router)

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics())

    def _metrics(self) -> Iterator[Metric]:
        router = self._router()
        errors = CounterMetricFamily(
            CONFIG_ERRORS,
            "Prompt documents the app could not use (unreadable, invalid, missing), per source; "
            "the last good document stays in use.",
            labels=("source",),
        )
        revision = GaugeMetricFamily(
            REVISION, "The published revision in use, per prompt.", labels=("prompt",)
        )
        if router is not None:
            for source in router.sources:
                errors.add_metric((source.description,), source.errors)
            for prompt in router.prompts():
                doc = router.document(prompt)
                if doc is not None:
                    revision.add_metric((prompt,), doc.revision)
        yield errors
        yield revision
