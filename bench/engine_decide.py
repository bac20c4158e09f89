"""Cost of one decision, the part of a reconcile that runs for every canary at every tick.

The operator's CPU budget is 0.2 core for 500 canaries (docs/performance). This measures the pure
engine over whole simulated rollouts (start, steps, analysis, promotion, rollback) and reports
the time per decide() call, the resulting CPU share for N canaries at a 30 s interval, and the
size of the status it writes (what every status patch carries).
"""

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollgate.api.canary import CanarySpec
from tollgate.api.status import RolloutStatus
from tollgate.engine import MetricReading, Observations, decide
from tollgate.engine.decision import Promote, SetWeight

RESULTS = Path(__file__).parent / "results"
SPEC = CanarySpec.model_validate(
    {
        "targetRef": {"name": "app"},
        "service": {"port": 80},
        "router": {"httpRoute": {"name": "app"}},
        "analysis": {"interval": "30s", "stepWeight": 5, "maxWeight": 50},
        "checks": {
            "latency": {"maxMilliseconds": 300, "maxIncreasePercent": 10},
            "ttft": {"maxMilliseconds": 800},
            "errorRate": {"maxPercent": 1, "maxIncreasePoints": 0.5},
            "errorBudget": {"objectivePercent": 99.9},
        },
    }
)
GOOD = (
    MetricReading("latency", 0.2, 0.2, 500, 9000, query="q"),
    MetricReading("ttft", 0.4, 0.4, 500, 9000, query="q"),
    MetricReading("errorRate", 0.0005, 0.0005, 500, 9000, query="q"),
    MetricReading("errorBudget", 0.0005, 0.0005, 500, 9000, query="q"),
)
BAD = (MetricReading("latency", 0.9, 0.2, 500, 9000, query="q"), *GOOD[1:])


def one_rollout(bad_at: int | None) -> tuple[list[float], int]:
    """Drive one rollout to its end; returns per-call seconds and the largest status size."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status, weight, stable, revision = RolloutStatus(), 0, "r1", "r1"
    timings: list[float] = []
    largest = 0
    for tick in range(200):
        if tick == 2:
            revision = "r2"
        metrics = BAD if bad_at is not None and tick >= bad_at else GOOD
        obs = Observations(
            revision=revision, stable_revision=stable, weight=weight, metrics=metrics
        )
        start = time.perf_counter()
        decision = decide(SPEC, status, obs, now, generation=1)
        timings.append(time.perf_counter() - start)
        for action in decision.actions:
            if isinstance(action, SetWeight):
                weight = action.weight
            elif isinstance(action, Promote):
                stable = action.revision
        status = decision.status
        largest = max(largest, len(json.dumps(status.model_dump(mode="json", by_alias=True))))
        now += timedelta(seconds=30)
        if (
            tick > 3
            and status.phase is not None
            and status.phase.value in ("Succeeded", "RolledBack")
        ):
            break
    return timings, largest


def main() -> int:
    calls: list[float] = []
    largest = 0
    for run in range(60):
        timings, size = one_rollout(bad_at=None if run % 2 == 0 else 6 + run % 7)
        calls.extend(timings)
        largest = max(largest, size)
    calls.sort()
    median = statistics.median(calls)
    p99 = calls[int(len(calls) * 0.99)]
    rows = []
    for n in (10, 100, 500, 1000):
        core_share = n / 30.0 * median
        rows.append(
            {"canaries": n, "decisions_per_s": round(n / 30.0, 2), "core_share": core_share}
        )
    result = {
        "benchmark": "engine_decide",
        "calls": len(calls),
        "median_us": median * 1e6,
        "p99_us": p99 * 1e6,
        "min_us": calls[0] * 1e6,
        "max_us": calls[-1] * 1e6,
        "largest_status_bytes": largest,
        "cpu_at_30s_interval": rows,
    }
    print(f"decide(): {len(calls)} calls over 60 rollouts (half of them rolled back)")
    print(
        f"  median {result['median_us']:.0f} us   p99 {result['p99_us']:.0f} us   "
        f"min {result['min_us']:.0f} us   max {result['max_us']:.0f} us"
    )
    print(f"  largest status written: {largest} bytes of JSON")
    print(f"  {'canaries':>9} {'decisions/s':>12} {'core share (engine only)':>26}")
    for row in rows:
        print(f"  {row['canaries']:>9} {row['decisions_per_s']:>12} {row['core_share']:>26.5f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine_decide.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'engine_decide.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
