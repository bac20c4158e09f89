"""Backfill history whose canary changes at a known time, for replay timing tests.

Counters grow linearly with a slope that may change once (``change_at``), so when a regression
starts, and what each reading must see, is known to the second.
"""

from collections.abc import Iterator
from dataclasses import dataclass

BOUNDS = ("0.05", "0.1", "0.25", "0.5", "+Inf")


@dataclass(frozen=True)
class Version:
    """One pod's traffic: rate, error share before and after ``change_at`` (unix seconds)."""

    namespace: str
    pod: str
    rps: float
    error_share: float
    latency_shares: tuple[float, float, float, float, float] = (0.5, 0.9, 1, 1, 1)
    error_share_after: float | None = None
    change_at: float | None = None

    def errors(self, start: float, t: float) -> float:
        """Failed requests counted from ``start`` to ``t``."""
        if self.change_at is None or self.error_share_after is None or t <= self.change_at:
            return self.rps * (t - start) * self.error_share
        before = self.rps * (self.change_at - start) * self.error_share
        return before + self.rps * (t - self.change_at) * self.error_share_after


def _labels(v: Version, **extra: str) -> str:
    pairs = {"namespace": v.namespace, "pod": v.pod, **extra}
    return ",".join(f'{k}="{value}"' for k, value in pairs.items())


def openmetrics(versions: list[Version], start: int, end: int, step: int = 5) -> str:
    """Requests by code and a latency histogram from ``start`` to ``end``, every ``step`` s."""
    times = range(start, end + 1, step)

    def histogram() -> Iterator[str]:
        yield "# TYPE http_request_duration_seconds histogram"
        for v in versions:
            for t in times:
                n = v.rps * (t - start)
                for bound, share in zip(BOUNDS, v.latency_shares, strict=True):
                    labels = _labels(v, le=bound)
                    yield f"http_request_duration_seconds_bucket{{{labels}}} {n * share:.6f} {t}"
                yield f"http_request_duration_seconds_count{{{_labels(v)}}} {n:.6f} {t}"
                yield f"http_request_duration_seconds_sum{{{_labels(v)}}} {n * 0.05:.6f} {t}"

    def requests() -> Iterator[str]:
        yield "# TYPE http_requests counter"
        for v in versions:
            for t in times:
                failed = v.errors(start, t)
                ok = v.rps * (t - start) - failed
                yield f"http_requests_total{{{_labels(v, code='200')}}} {ok:.6f} {t}"
                yield f"http_requests_total{{{_labels(v, code='500')}}} {failed:.6f} {t}"

    return "\n".join([*histogram(), *requests(), "# EOF"]) + "\n"
