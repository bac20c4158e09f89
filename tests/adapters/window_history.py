"""History for the threshold-window tests: bursty pods, series born mid-window, restarts.

Every pod serves a known number of requests in each 15 s scrape interval (a cycled pattern, so
no two intervals need look alike), so the requests, failures, bucket counts and tokens of any
window are known exactly: the sum over the pod's scrapes inside it. As client libraries do, a
pod's series appear at its first scrape, its ``code="500"`` series only at its first failure,
and a restart sets every counter back to zero (and drops the 500 series until the next
failure). Restarts happen right after a scrape, so no request goes unscraped.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

STEP = 15
BOUNDS = ("0.1", "0.25", "0.5", "1", "+Inf")


@dataclass(frozen=True)
class Pod:
    """One pod's traffic; times are unix seconds on the 15 s scrape grid."""

    namespace: str
    name: str
    born: int
    end: int
    requests: tuple[int, ...]  # per scrape interval, cycled by the interval's index
    failures: tuple[tuple[int, int], ...] = ()  # (scrape time, failures in the interval)
    failure_every: int = 0  # and one failure in every n-th interval
    restarts: tuple[int, ...] = ()  # counters restart from zero right after these scrapes
    latency_shares: tuple[float, ...] = (0.5, 0.8, 0.9, 1.0, 1.0)
    ttft_shares: tuple[float, ...] = (0.2, 0.5, 0.95, 1.0, 1.0)
    input_tokens: int = 1000  # per request
    output_tokens: int = 400
    negative_failures: bool = False  # a broken "counter" (weird_failures) that goes down

    @property
    def workload(self) -> str:
        return self.name.rsplit("-", 2)[0]

    def scrapes(self) -> range:
        return range(self.born, self.end + 1, STEP)

    def served(self, t: int) -> "Traffic":
        """What the pod served in the scrape interval ending at ``t``."""
        n = self.requests[(t // STEP) % len(self.requests)]
        failed = dict(self.failures).get(t, 0)
        if self.failure_every and (t - self.born) // STEP % self.failure_every == 0:
            failed += 1
        assert failed <= n, (self.name, t)
        return Traffic(
            requests=n,
            failures=failed,
            latency=tuple(math.floor(n * s) for s in self.latency_shares),
            ttft=tuple(math.floor(n * s) for s in self.ttft_shares),
            input_tokens=n * self.input_tokens,
            output_tokens=n * self.output_tokens,
        )


@dataclass
class Traffic:
    """Counts over an interval or a window (bucket counts cumulative over BOUNDS)."""

    requests: int = 0
    failures: int = 0
    latency: tuple[int, ...] = field(default_factory=lambda: (0,) * len(BOUNDS))
    ttft: tuple[int, ...] = field(default_factory=lambda: (0,) * len(BOUNDS))
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Traffic") -> "Traffic":
        return Traffic(
            self.requests + other.requests,
            self.failures + other.failures,
            tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
            tuple(a + b for a, b in zip(self.ttft, other.ttft, strict=True)),
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    def buckets(self, which: str) -> dict[float, float]:
        counts = self.latency if which == "latency" else self.ttft
        return {
            math.inf if b == "+Inf" else float(b): c for b, c in zip(BOUNDS, counts, strict=True)
        }


def window(pods: Sequence[Pod], namespace: str, workload: str, at: int, seconds: int) -> Traffic:
    """What a version served in the window (at - seconds, at]: every scrape inside it."""
    total = Traffic()
    for pod in pods:
        if pod.namespace == namespace and pod.workload == workload:
            for t in pod.scrapes():
                if at - seconds < t <= at:
                    total = total + pod.served(t)
    return total


def _cumulative(pod: Pod) -> Iterator[tuple[int, Traffic]]:
    """The pod's counters at each scrape (since its start or last restart)."""
    running = Traffic()
    for t in pod.scrapes():
        running = running + pod.served(t)
        yield t, running
        if t in pod.restarts:
            running = Traffic()


def openmetrics(pods: Sequence[Pod]) -> str:
    """OpenMetrics text for promtool backfill."""

    def labels(pod: Pod, **extra: str) -> str:
        pairs = {"namespace": pod.namespace, "pod": pod.name, **extra}
        return ",".join(f'{k}="{v}"' for k, v in pairs.items())

    lines: list[str] = []
    for name, which in (
        ("http_request_duration_seconds", "latency"),
        ("llm_time_to_first_token_seconds", "ttft"),
    ):
        lines.append(f"# TYPE {name} histogram")
        for pod in pods:
            for t, c in _cumulative(pod):
                for bound, count in zip(BOUNDS, getattr(c, which), strict=True):
                    lines.append(f"{name}_bucket{{{labels(pod, le=bound)}}} {count} {t}")
                lines.append(f"{name}_count{{{labels(pod)}}} {c.requests} {t}")
                lines.append(f"{name}_sum{{{labels(pod)}}} {c.requests * 0.2:.6f} {t}")
    lines.append("# TYPE http_requests counter")
    for pod in pods:
        for t, c in _cumulative(pod):
            lines.append(
                f"http_requests_total{{{labels(pod, code='200')}}} {c.requests - c.failures} {t}"
            )
    for pod in pods:
        for t, c in _cumulative(pod):
            if c.failures > 0:  # the series is born at the first failure
                lines.append(f"http_requests_total{{{labels(pod, code='500')}}} {c.failures} {t}")
    for name, attribute in (
        ("llm_input_tokens", "input_tokens"),
        ("llm_output_tokens", "output_tokens"),
    ):
        lines.append(f"# TYPE {name} counter")
        for pod in pods:
            for t, c in _cumulative(pod):
                lines.append(f"{name}_total{{{labels(pod)}}} {getattr(c, attribute)} {t}")
    lines.append("# TYPE weird_failures gauge")
    for pod in pods:
        for t, c in _cumulative(pod):
            value = -c.failures - c.requests if pod.negative_failures else c.failures
            lines.append(f"weird_failures{{{labels(pod)}}} {value} {t}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
