"""Histories written as OpenMetrics, in the names and labels the judged specs query.

Two namings of the same draws, so that every spec judges the very same traffic:

- ``prometheus`` (the Canary manifests, preset ``prometheus``): ``http_request_duration_seconds``
  and ``llm_time_to_first_token_seconds`` histograms, ``http_requests_total{code}``,
  ``llm_input_tokens_total``, ``llm_output_tokens_total`` and the ``checkout_queue_depth``
  gauge that examples/canary.yaml's custom check reads; pods are told apart by name and every
  series carries ``service="checkout"`` (that manifest's selector);
- ``otel-genai`` (the PromptRelease, as the Tollgate SDK records it): the operation-duration,
  time-to-first-token and token-usage histograms, labelled ``prompt`` and ``prompt_version``;
  a failed request's duration goes to its ``error_type`` series.

Labelled series exist only once used (a pod's first error creates its ``code="500"`` series,
and a restart drops them until they are used again); unlabelled ones exist from the start.
A missed scrape writes nothing at that time. Namespaces keep replays apart.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from bench.replay_detection.distributions import SECONDS_BOUNDS, TOKEN_BOUNDS
from bench.replay_detection.history import History, Pod, Slot

PROMETHEUS = "prometheus"
OTEL = "otel-genai"
SERVICE_SELECTOR = {"service": "checkout"}
PROMPT = "support-answer"
MODEL = "gpt-4o-mini"
PROMPT_VERSIONS = {False: "v7", True: "v8"}  # stable, candidate (examples/promptrelease.yaml)

SECONDS_LE = [f"{b:g}" for b in SECONDS_BOUNDS] + ["+Inf"]
TOKENS_LE = [f"{b:g}" for b in TOKEN_BOUNDS] + ["+Inf"]

Reading = list[float]
Labels = Callable[[History, Pod], str]


def _always(_: Reading) -> bool:
    return True


def _used(r: Reading) -> bool:
    return r[Slot.OK] + r[Slot.FAILED] > 0


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"


@dataclass(frozen=True)
class Sampled:
    """One counter or gauge series of a pod: extra labels, its value, whether it exists yet."""

    extra: str
    value: Callable[[Reading], float]
    exists: Callable[[Reading], bool] = _always


@dataclass(frozen=True)
class Histogram:
    """One histogram series of a pod: cumulative bucket ``i``, the sum, whether it exists."""

    extra: str
    bucket: Callable[[Reading, int], float]
    total: Callable[[Reading], float]
    exists: Callable[[Reading], bool] = _always


def slots(*firsts: int) -> Callable[[Reading, int], float]:
    """Bucket ``i`` as the sum of the buckets starting at each of ``firsts``."""
    return lambda r, i: sum(r[f + i] for f in firsts)


def slot(*positions: int) -> Callable[[Reading], float]:
    return lambda r: sum(r[p] for p in positions)


def positive(position: int) -> Callable[[Reading], bool]:
    return lambda r: r[position] > 0


class Writer:
    """Writes families of many histories placed at ``base`` (unix seconds)."""

    def __init__(self, out: TextIO, histories: Sequence[History], base: float) -> None:
        self.out = out
        self.histories = histories
        self.base = base

    def _points(self, pod: Pod, exists: Callable[[Reading], bool]) -> Iterator[tuple[str, Reading]]:
        for t, reading in zip(pod.times, pod.readings, strict=True):
            if reading is not None and exists(reading):
                yield f"{self.base + t:.3f}", reading

    def histogram(
        self, name: str, labels: Labels, le: list[str], series: Sequence[Histogram]
    ) -> None:
        lines = [f"# TYPE {name} histogram"]
        top = len(le) - 1
        for history in self.histories:
            for pod in history.pods:
                for s in series:
                    base = labels(history, pod) + s.extra
                    buckets = [f'{name}_bucket{{{base},le="{b}"}} ' for b in le]
                    count, total = f"{name}_count{{{base}}} ", f"{name}_sum{{{base}}} "
                    for ts, r in self._points(pod, s.exists):
                        for i, prefix in enumerate(buckets):
                            lines.append(f"{prefix}{_number(s.bucket(r, i))} {ts}")
                        lines.append(f"{count}{_number(s.bucket(r, top))} {ts}")
                        lines.append(f"{total}{s.total(r):.3f} {ts}")
        self.out.write("\n".join(lines) + "\n")

    def sampled(
        self, family: str, sample: str, kind: str, labels: Labels, series: Sequence[Sampled]
    ) -> None:
        lines = [f"# TYPE {family} {kind}"]
        for history in self.histories:
            for pod in history.pods:
                for s in series:
                    prefix = f"{sample}{{{labels(history, pod)}{s.extra}}} "
                    for ts, r in self._points(pod, s.exists):
                        lines.append(f"{prefix}{_number(s.value(r))} {ts}")
        self.out.write("\n".join(lines) + "\n")


def prometheus_labels(history: History, pod: Pod) -> str:
    service = ",".join(f'{k}="{v}"' for k, v in SERVICE_SELECTOR.items())
    return f'namespace="{history.namespace}",pod="{pod.name}",{service}'


def otel_labels(history: History, pod: Pod) -> str:
    return (
        f'namespace="{history.namespace}",pod="{pod.name}",prompt="{PROMPT}",'
        f'prompt_version="{PROMPT_VERSIONS[pod.canary]}",gen_ai_request_model="{MODEL}"'
    )


def write_prometheus(w: Writer) -> None:
    labels = prometheus_labels
    every = slots(Slot.LATENCY_OK, Slot.LATENCY_FAILED)
    both = slot(Slot.LATENCY_SUM_OK, Slot.LATENCY_SUM_FAILED)
    w.histogram("http_request_duration_seconds", labels, SECONDS_LE, [Histogram("", every, both)])
    ttft = Histogram("", slots(Slot.TTFT), slot(Slot.TTFT_SUM))
    w.histogram("llm_time_to_first_token_seconds", labels, SECONDS_LE, [ttft])
    codes = [
        Sampled(',code="200"', slot(Slot.OK), positive(Slot.OK)),
        Sampled(',code="500"', slot(Slot.FAILED), positive(Slot.FAILED)),
    ]
    w.sampled("http_requests", "http_requests_total", "counter", labels, codes)
    tokens_in = [Sampled("", slot(Slot.INPUT_SUM))]
    w.sampled("llm_input_tokens", "llm_input_tokens_total", "counter", labels, tokens_in)
    tokens_out = [Sampled("", slot(Slot.OUTPUT_SUM))]
    w.sampled("llm_output_tokens", "llm_output_tokens_total", "counter", labels, tokens_out)
    queue = [Sampled("", slot(Slot.QUEUE))]
    w.sampled("checkout_queue_depth", "checkout_queue_depth", "gauge", labels, queue)


def write_otel(w: Writer) -> None:
    labels = otel_labels
    chat = ',gen_ai_operation_name="chat"'
    duration = [
        Histogram(chat, slots(Slot.LATENCY_OK), slot(Slot.LATENCY_SUM_OK), positive(Slot.OK)),
        Histogram(
            chat + ',error_type="500"',
            slots(Slot.LATENCY_FAILED),
            slot(Slot.LATENCY_SUM_FAILED),
            positive(Slot.FAILED),
        ),
    ]
    w.histogram("gen_ai_client_operation_duration_seconds", labels, SECONDS_LE, duration)
    ttft = Histogram("", slots(Slot.TTFT), slot(Slot.TTFT_SUM), _used)
    w.histogram("gen_ai_server_time_to_first_token_seconds", labels, SECONDS_LE, [ttft])
    tokens = [
        Histogram(',gen_ai_token_type="input"', slots(Slot.INPUT), slot(Slot.INPUT_SUM), _used),
        Histogram(',gen_ai_token_type="output"', slots(Slot.OUTPUT), slot(Slot.OUTPUT_SUM), _used),
    ]
    w.histogram("gen_ai_client_token_usage", labels, TOKENS_LE, tokens)


def write(out: TextIO, histories: Sequence[History], base: float, namings: set[str]) -> None:
    """Every family of ``namings`` for ``histories``, then ``# EOF``."""
    w = Writer(out, histories, base)
    if PROMETHEUS in namings:
        write_prometheus(w)
    if OTEL in namings:
        write_otel(w)
    out.write("# EOF\n")
