"""Replays every scenario through every policy setting, summarises, checks the bars.

Work is split by replay index over worker processes; each replay derives its own seeds, so the
figures do not depend on the number of workers. The stable's stream of a replay is drawn once
and shared by all scenarios (same traffic cycle and restarts); each scenario draws its canary.
"""

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.detection.generator import (
    Profile,
    Timeline,
    Traffic,
    draw_plan,
    replay_rng,
    stable_stream,
    with_canary,
)
from bench.detection.policies import (
    Counts,
    Thresholds,
    Tollgate,
    WindowGrid,
    naive_rollbacks,
    tick_increments,
    window_rollbacks,
)
from bench.detection.report import Summary, print_report, summarise

RESULTS = Path(__file__).resolve().parent.parent / "results"
BASE = Profile()


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    canary: Profile
    doubling: bool = False  # a 2x (or worse) regression, for the catch-rate bar


SCENARIOS = (
    Scenario("aa", "A/A (no regression)", BASE),
    Scenario("latency_x2", "latency p95 x2", replace(BASE, latency=BASE.latency.scaled(2.0)), True),
    Scenario("ttft_x2", "TTFT x2", replace(BASE, ttft=BASE.ttft.scaled(2.0)), True),
    Scenario("errors_plus_1pt", "errors 1% -> 2%", replace(BASE, error_rate=0.02), True),
    Scenario("errors_x3", "errors x3 (1% -> 3%)", replace(BASE, error_rate=0.03), True),
    Scenario(
        "cost_x1_5",
        "cost/request x1.5",
        replace(BASE, output_tokens=BASE.output_tokens.scaled(1.5)),
    ),
)
TRAFFIC = {"100rps": Traffic(rps=100.0), "0.5rps": Traffic(rps=0.5)}

TOLLGATE = Tollgate()
TOLLGATE_TOKENS = Tollgate(cost_as_tokens=True)
FLAGGER_INTERVALS = (15.0, 30.0, 60.0)
FLAGGER_THRESHOLDS = (1, 2, 3, 5, 10)
FLAGGER_DEFAULT = (60.0, 10)  # Flagger's documented example: interval 1m, threshold 10
ARGO_INTERVALS = (15.0, 30.0, 60.0, 300.0)
ARGO_LIMITS = (0, 1, 2, 3, 5)
ARGO_DEFAULT = (300.0, 3)  # Argo Rollouts' documented example: interval 5m, failureLimit 3
NAIVE_LEVELS = (0.05, 0.01, 1e-3, 1e-4, 1e-5, 1e-6)
NAIVE_DEFAULT = 0.05
# Canary-against-stable thresholds of the Flagger- and Argo-style checks. The first set is the
# one the bars use (the tolerances of Tollgate's own examples); the others show how much the
# comparison depends on that choice.
TOLERANCES = {
    "": Thresholds(),
    "+1pt": Thresholds(error_points=0.01),
    "loose": Thresholds(latency_ratio=1.5, ttft_ratio=1.5, error_points=0.02),
}


def interval_label(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"


def family(name: str, tolerance: str = "") -> str:
    return f"{name}[{tolerance}]" if tolerance else name


def flagger_key(interval: float, threshold: int, tolerance: str = "") -> str:
    return f"{family('flagger', tolerance)} {interval_label(interval)} x{threshold}"


def argo_key(interval: float, limit: int, tolerance: str = "") -> str:
    return f"{family('argo', tolerance)} {interval_label(interval)} >{limit}"


def naive_key(level: float) -> str:
    return f"naive p<{level:g}"


TOLLGATE_KEY = "tollgate"
TOLLGATE_TOKENS_KEY = "tollgate cost-as-tokens"
# Bounds for the error scenarios: the true ratio known in advance, all of alpha on errors.
ORACLES = {"errors_plus_1pt": 2.0, "errors_x3": 3.0}
ORACLE_KEYS = {ratio: f"tollgate oracle errors x{ratio:g}" for ratio in ORACLES.values()}
TOLLGATE_ORACLES = {ratio: Tollgate(error_oracle=ratio) for ratio in ORACLES.values()}


def window_grids(scrape: float) -> list[WindowGrid]:
    intervals = sorted(set(FLAGGER_INTERVALS) | set(ARGO_INTERVALS))
    return [
        WindowGrid(
            i,
            FLAGGER_THRESHOLDS if i in FLAGGER_INTERVALS else (),
            ARGO_LIMITS if i in ARGO_INTERVALS else (),
        )
        for i in intervals
        if i >= scrape and abs(i / scrape - round(i / scrape)) < 1e-9
    ]


def evaluate(counts: Counts) -> dict[str, float]:
    """Rollback time (s from the canary's start) of every policy setting on one replay."""
    out = {
        TOLLGATE_KEY: TOLLGATE.rollback_at(counts),
        TOLLGATE_TOKENS_KEY: TOLLGATE_TOKENS.rollback_at(counts),
    }
    for ratio, oracle in TOLLGATE_ORACLES.items():
        out[ORACLE_KEYS[ratio]] = oracle.rollback_at(counts)
    windows = window_rollbacks(counts, window_grids(counts.scrape), TOLERANCES)
    for (name, tolerance, interval, n), at in windows.items():
        key = flagger_key if name == "flagger" else argo_key
        out[key(interval, n, tolerance)] = at
    for level, at in naive_rollbacks(counts, NAIVE_LEVELS).items():
        out[naive_key(level)] = at
    return out


@dataclass(frozen=True)
class Job:
    seed: int
    traffic: str
    first: int
    last: int
    timeline: Timeline


Times = dict[str, dict[str, list[float]]]  # scenario -> setting -> rollback time per replay


def run_job(job: Job) -> Times:
    traffic = TRAFFIC[job.traffic]
    timeline = job.timeline
    horizon = timeline.ticks(timeline.horizon)
    promotion = timeline.ticks(traffic.promotion)
    out: Times = {s.name: {} for s in SCENARIOS}
    for index in range(job.first, job.last):
        plan = draw_plan(replay_rng(job.seed, job.traffic, index, "plan"), traffic, timeline)
        stable = stable_stream(
            replay_rng(job.seed, job.traffic, index, "stable"),
            BASE,
            traffic,
            timeline,
            plan,
            horizon,
        )
        stable_counts = tick_increments(stable.stable)
        for scenario in SCENARIOS:
            ticks = promotion if scenario.name == "aa" else horizon
            stream = with_canary(
                stable,
                replay_rng(job.seed, job.traffic, index, "canary", scenario.name),
                scenario.canary,
                traffic,
                timeline,
                plan,
                ticks,
            )
            counts = Counts.of(stream, stable_counts)
            for key, at in evaluate(counts).items():
                out[scenario.name].setdefault(key, []).append(at)
    return out


def run_all(replays: int, seed: int, timeline: Timeline, workers: int) -> dict[str, Times]:
    chunk = max(1, min(25, math.ceil(replays / (4 * max(1, workers)))))
    jobs = [
        Job(seed, traffic, first, min(replays, first + chunk), timeline)
        for traffic in TRAFFIC
        for first in range(0, replays, chunk)
    ]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run_job, jobs))
    else:
        parts = [run_job(job) for job in jobs]
    merged: dict[str, Times] = {t: {s.name: {} for s in SCENARIOS} for t in TRAFFIC}
    for job, part in zip(jobs, parts, strict=True):
        for scenario, by_key in part.items():
            for key, times in by_key.items():
                merged[job.traffic][scenario].setdefault(key, []).extend(times)
    return merged


def settings_description(timeline: Timeline) -> dict[str, Any]:
    return {
        "scrape_interval_s": timeline.scrape,
        "warmup_s": timeline.warmup,
        "horizon_s": timeline.horizon,
        "traffic": {
            name: {
                "rps": t.rps,
                "canary_steps_percent": list(t.steps),
                "step_s": t.step_seconds,
                "promotion_s": t.promotion,
                "daily_cycle_amplitude": t.cycle_amplitude,
                "daily_cycle_period_s": t.cycle_period,
            }
            for name, t in TRAFFIC.items()
        },
        "scenarios": {s.name: s.label for s in SCENARIOS},
        "tollgate": {
            "alpha": TOLLGATE.alpha,
            "checks": 4,
            "min_samples": TOLLGATE.min_samples,
            "objective_quantiles": TOLLGATE.quantiles,
            "psi0": 1.0,
            "cost_as_tokens_psi0": TOLLGATE_TOKENS.cost_psi0,
        },
        "reference_tolerances": {
            (f"[{name}]" if name else "documented"): {
                "latency_p95_ratio": t.latency_ratio,
                "ttft_p95_ratio": t.ttft_ratio,
                "error_rate_points": round(t.error_points * 100, 3),
                "cost_ratio": t.cost_ratio,
            }
            for name, t in TOLERANCES.items()
        },
        "flagger": {
            "intervals_s": list(FLAGGER_INTERVALS),
            "thresholds": list(FLAGGER_THRESHOLDS),
            "default": flagger_key(*FLAGGER_DEFAULT),
        },
        "argo": {
            "intervals_s": list(ARGO_INTERVALS),
            "failure_limits": list(ARGO_LIMITS),
            "default": argo_key(*ARGO_DEFAULT),
        },
        "naive": {"levels": list(NAIVE_LEVELS), "default": naive_key(NAIVE_DEFAULT)},
    }


def defaults() -> dict[str, str]:
    return {
        "flagger": flagger_key(*FLAGGER_DEFAULT),
        "argo": argo_key(*ARGO_DEFAULT),
        "naive": naive_key(NAIVE_DEFAULT),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection",
        description="Detection quality of Tollgate against Flagger-, Argo- and naive-style "
        "rollback policies on the same seeded metric streams.",
    )
    parser.add_argument("--replays", type=int, default=1000, help="replays per scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 replays, for a smoke test")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scrape", type=float, default=15.0, help="scrape interval, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "detection.json")
    args = parser.parse_args(argv)
    replays = 20 if args.quick else args.replays
    if replays < 1:
        parser.error("--replays must be >= 1")
    steps = {t.step_seconds for t in TRAFFIC.values()} | {FLAGGER_DEFAULT[0], ARGO_DEFAULT[0]}
    if args.scrape <= 0 or any(abs(s / args.scrape - round(s / args.scrape)) > 1e-9 for s in steps):
        parser.error("--scrape must divide the 60 s step and the default intervals")
    timeline = Timeline(scrape=args.scrape)
    started = time.perf_counter()
    times = run_all(replays, args.seed, timeline, args.workers)
    summary: Summary = summarise(
        times,
        scenarios=[(s.name, s.label, s.doubling) for s in SCENARIOS],
        promotion={name: t.promotion for name, t in TRAFFIC.items()},
        defaults=defaults(),
        tollgate=TOLLGATE_KEY,
        tolerances=[family("", name) for name in TOLERANCES],
    )
    elapsed = time.perf_counter() - started
    print_report(summary, replays, timeline, TRAFFIC, elapsed)
    result = {
        "benchmark": "detection",
        "replays": replays,
        "seed": args.seed,
        "runtime_s": round(elapsed, 1),
        "settings": settings_description(timeline),
        **summary.as_json(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
