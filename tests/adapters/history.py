"""Deterministic Prometheus history for adapter tests: OpenMetrics text for promtool backfill.

Counters grow linearly, so every increase() over a window is known in advance.
"""

from collections.abc import Iterator
from dataclasses import dataclass

BOUNDS = ("0.1", "0.25", "0.5", "1", "+Inf")
TOKEN_BOUNDS = ("100", "250", "500", "1000", "+Inf")


@dataclass(frozen=True)
class Workload:
    """One version's traffic: request rate, share failing, cumulative latency shares, tokens."""

    namespace: str
    pod: str
    rps: float
    error_share: float
    latency_shares: tuple[float, float, float, float, float]
    ttft_shares: tuple[float, float, float, float, float]
    input_tokens_per_request: float = 0.0
    output_tokens_per_request: float = 0.0
    answer_shares: tuple[float, float, float, float, float] = (1, 1, 1, 1, 1)  # TOKEN_BOUNDS


def _labels(w: Workload, **extra: str) -> str:
    pairs = {"namespace": w.namespace, "pod": w.pod, **extra}
    return ",".join(f'{k}="{v}"' for k, v in pairs.items())


def openmetrics(workloads: list[Workload], start: int, end: int, step: int = 15) -> str:
    """History from ``start`` to ``end`` (unix seconds) sampled every ``step`` seconds."""
    times = list(range(start, end + 1, step))

    def histogram(name: str, shares_of: str, bounds: tuple[str, ...] = BOUNDS) -> Iterator[str]:
        yield f"# TYPE {name} histogram"
        for w in workloads:
            shares = getattr(w, shares_of)
            for t in times:
                n = w.rps * (t - start)
                for bound, share in zip(bounds, shares, strict=True):
                    yield f"{name}_bucket{{{_labels(w, le=bound)}}} {n * share:.6f} {t}"
                yield f"{name}_count{{{_labels(w)}}} {n:.6f} {t}"
                yield f"{name}_sum{{{_labels(w)}}} {n * 0.2:.6f} {t}"

    def counter(name: str, per_request: str | None, code: str | None = None) -> Iterator[str]:
        for w in workloads:
            for t in times:
                n = w.rps * (t - start)
                if code is not None:
                    value = n * (w.error_share if code == "500" else 1 - w.error_share)
                    labels = _labels(w, code=code)
                else:
                    value = n * getattr(w, per_request or "")
                    labels = _labels(w)
                yield f"{name}_total{{{labels}}} {value:.6f} {t}"

    lines: list[str] = []
    lines += histogram("http_request_duration_seconds", "latency_shares")
    lines += histogram("llm_time_to_first_token_seconds", "ttft_shares")
    lines += histogram("llm_answer_tokens", "answer_shares", TOKEN_BOUNDS)
    lines.append("# TYPE http_requests counter")
    for code in ("200", "500"):
        lines += counter("http_requests", None, code)
    lines.append("# TYPE llm_input_tokens counter")
    lines += counter("llm_input_tokens", "input_tokens_per_request")
    lines.append("# TYPE llm_output_tokens counter")
    lines += counter("llm_output_tokens", "output_tokens_per_request")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
