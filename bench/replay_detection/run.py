"""Generate every history, backfill one Prometheus, judge every replay, print and save figures.

Histories are built in chunks by worker processes (draws, oracle, OpenMetrics, promtool). Each
chunk sits in its own time range, 30 days from the next, so that its promtool block is alone in
every compaction range Prometheus knows (up to 31 days) and Prometheus never compacts while it
answers. Inside a chunk, histories differ by namespace. Chunks are then judged in worker
processes against the one Prometheus. A history's draws depend only on the seed, its traffic
case, scenario and index, so the figures do not depend on the number of workers or chunks.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.replay_detection import openmetrics
from bench.replay_detection.history import Timeline, Traffic, generate
from bench.replay_detection.judging import Judgement, Replay, at, judge_chunk
from bench.replay_detection.manifests import WORKLOAD, Manifest, manifests
from bench.replay_detection.oracle import oracle_times
from bench.replay_detection.scenarios import SCENARIOS, STABLE, TRAFFIC, Scenario
from bench.replay_detection.summary import Row, cell_rows, print_overview, print_table
from tollgate.api.durations import seconds
from tollgate.cli.replay import target_from_document
from tollgate.testing.prometheus import PrometheusServer, binary

# httpcore tries `import sniffio` on every request; it is not installed here, and each failed
# import searches the whole path (half a millisecond per query). A None entry fails at once.
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

RESULTS = Path(__file__).resolve().parent.parent / "results"
BASE = 1_735_689_600  # 2025-01-01T00:00:00Z, on a 2-hour block boundary
SPACING = 30 * 86_400  # between chunks: one block per compaction range
TIMELINE = Timeline()
DEFAULT_REPLAYS = 30
QUICK_REPLAYS = 3


@dataclass(frozen=True)
class HistoryJob:
    traffic: Traffic
    scenario: Scenario
    index: int
    namespace: str


@dataclass(frozen=True)
class ChunkJob:
    number: int
    seed: int
    histories: tuple[HistoryJob, ...]
    namings: frozenset[str]
    cadences: tuple[tuple[float, float], ...]  # (every, alpha) of the judged specs
    workdir: Path

    @property
    def base(self) -> int:
        return BASE + self.number * SPACING


OracleTimes = dict[tuple[str, str, int], dict[str, float]]


def build_chunk(job: ChunkJob) -> tuple[OracleTimes, Path, float]:
    """Draw the chunk's histories and oracles, backfill them; the oracles and the block dir."""
    started = time.perf_counter()
    histories = []
    oracles: OracleTimes = {}
    for h in job.histories:
        rng = random.Random(f"{job.seed}:{h.traffic.name}:{h.scenario.name}:{h.index}")
        c = h.scenario.canary
        history = generate(rng, h.namespace, h.traffic, c, STABLE, WORKLOAD, TIMELINE)
        if h.scenario.oracle and h.scenario.signal is not None:
            times = oracle_times(history, STABLE, c, h.scenario.signal, job.cadences)
            oracles[(h.traffic.name, h.scenario.name, h.index)] = times
        histories.append(history)
    source = job.workdir / f"chunk-{job.number}.om"
    with source.open("w") as out:
        openmetrics.write(out, histories, job.base, set(job.namings))
    blocks = job.workdir / f"blocks-{job.number}"
    command = [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics"]
    subprocess.run([*command, str(source), str(blocks)], check=True, capture_output=True)
    source.unlink()
    return oracles, blocks, time.perf_counter() - started


@dataclass(frozen=True)
class JudgeJob:
    prometheus: str
    replays: tuple[Replay, ...]
    start: float  # unix seconds of the canary's first request


def judge(job: JudgeJob) -> tuple[list[Judgement], float]:
    started = time.perf_counter()
    verdicts = asyncio.run(
        judge_chunk(job.prometheus, job.replays, at(job.start), TIMELINE.horizon)
    )
    return verdicts, time.perf_counter() - started


def cadence(manifest: Manifest) -> tuple[float, float]:
    """The spec's count readings (seconds) and its sequential alpha."""
    spec = target_from_document(manifest.for_history("x"), "http://127.0.0.1:9").spec
    every = seconds(spec.analysis.sequential.every or spec.analysis.interval)
    return every, spec.analysis.sequential.alpha


def plan(
    traffics: Sequence[Traffic],
    scenarios: Sequence[Scenario],
    specs: Sequence[Manifest],
    replays: int,
    aa_replays: int,
) -> list[HistoryJob]:
    jobs: list[HistoryJob] = []
    for traffic in traffics:
        for scenario in scenarios:
            if not any(m.sees(scenario.signal) for m in specs):
                continue
            count = aa_replays if scenario.signal is None else replays
            for index in range(count):
                jobs.append(HistoryJob(traffic, scenario, index, f"r{len(jobs):05d}"))
    return jobs


def pick(names: str | None, available: Sequence[Any], what: str) -> list[Any]:
    if names is None:
        return list(available)
    wanted = names.split(",")
    known = {a.name: a for a in available}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in wanted]


def run(args: argparse.Namespace) -> dict[str, Any]:
    traffics = pick(args.traffic, TRAFFIC, "traffic")
    scenarios = pick(args.scenarios, SCENARIOS, "scenario")
    specs = pick(args.specs, manifests(), "spec")
    replays = QUICK_REPLAYS if args.quick else args.replays
    aa_replays = args.aa_replays or 2 * replays
    histories = plan(traffics, scenarios, specs, replays, aa_replays)
    cadences = tuple(sorted({cadence(m) for m in specs}))
    namings = frozenset(m.naming for m in specs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tollgate-replay-bench-") as tmp:
        work = Path(tmp)
        chunks = [
            ChunkJob(n, args.seed, tuple(histories[i : i + args.chunk]), namings, cadences, work)
            for n, i in enumerate(range(0, len(histories), args.chunk))
        ]
        server = PrometheusServer(workdir=work / "prometheus")
        oracles: OracleTimes = {}
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for n, (found, blocks, took) in enumerate(pool.map(build_chunk, chunks)):
                oracles.update(found)
                for block in blocks.iterdir():
                    shutil.move(str(block), server.data / block.name)
                note(f"chunk {n + 1}/{len(chunks)} generated and backfilled in {took:.0f}s")
        generated = time.perf_counter() - started
        server.start()
        try:
            jobs = [
                JudgeJob(
                    server.url,
                    tuple(
                        Replay(h.traffic.name, h.scenario.name, h.index, h.namespace, m)
                        for h in chunk.histories
                        for m in specs
                        if m.sees(h.scenario.signal)
                    ),
                    chunk.base + TIMELINE.warmup,
                )
                for chunk in chunks
            ]
            verdicts: list[Judgement] = []
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                for n, (found_verdicts, took) in enumerate(pool.map(judge, jobs)):
                    verdicts += found_verdicts
                    note(f"chunk {n + 1}/{len(jobs)}: {len(found_verdicts)} replays in {took:.0f}s")
        finally:
            server.close()
    elapsed = time.perf_counter() - started
    return report(
        traffics, scenarios, specs, verdicts, oracles, replays, aa_replays, generated, elapsed
    )


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(
    traffics: Sequence[Traffic],
    scenarios: Sequence[Scenario],
    specs: Sequence[Manifest],
    verdicts: Sequence[Judgement],
    oracles: OracleTimes,
    replays: int,
    aa_replays: int,
    generated: float,
    elapsed: float,
) -> dict[str, Any]:
    """Print one table per traffic case; the JSON document of every figure and verdict."""
    cells: list[dict[str, Any]] = []
    overview: dict[tuple[str, str, str], list[Row]] = {}
    for traffic in traffics:
        blocks: list[tuple[Scenario, str, list[Row]]] = []
        for scenario in scenarios:
            for m in specs:
                if not m.sees(scenario.signal):
                    continue
                mine = [
                    v
                    for v in verdicts
                    if (v.traffic, v.scenario, v.spec) == (traffic.name, scenario.name, m.name)
                ]
                every, alpha = cadence(m)
                rows = cell_rows(mine, m, scenario, oracles, every, alpha)
                blocks.append((scenario, m.name, rows))
                overview[(traffic.name, scenario.name, m.name)] = rows
                cells.append(
                    {
                        "traffic": traffic.name,
                        "scenario": scenario.name,
                        "spec": m.name,
                        "rows": [r.as_json() for r in rows],
                    }
                )
        title = (
            f"{traffic.name}: {traffic.describe()} (fixed), scrape every {TIMELINE.scrape:g}s, "
            f"{aa_replays} A/A and {replays} replays per scenario; seconds from the canary's "
            f"first request; never = not rolled back on evidence within {TIMELINE.horizon:g}s"
        )
        print_table(title, blocks)
    print_overview([t.name for t in traffics], scenarios, [m.name for m in specs], overview)
    print(f"\nhistories generated and backfilled in {generated:.0f}s; run time {elapsed:.0f}s")
    return {
        "settings": {
            "timeline": asdict(TIMELINE),
            "traffic": [asdict(t) for t in traffics],
            "scenarios": {s.name: s.label for s in scenarios},
            "specs": [m.name for m in specs],
            "replays": replays,
            "aa_replays": aa_replays,
        },
        "cells": cells,
        "verdicts": [asdict(v) for v in verdicts],
        "run_time_s": round(elapsed, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay_detection",
        description="Detection quality through the real path: generated history backfilled "
        "into Prometheus, judged by tollgate analyze --replay's code.",
    )
    parser.add_argument(
        "--replays", type=int, default=DEFAULT_REPLAYS, help="replays per scenario and case"
    )
    parser.add_argument("--aa-replays", type=int, help="A/A replays per case (default: 2x)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPLAYS} replays")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--chunk", type=int, default=40, help="histories per Prometheus block")
    parser.add_argument("--traffic", help="comma-separated cases (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenarios (default: all)")
    parser.add_argument("--specs", help="comma-separated specs (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "replay_detection.json")
    args = parser.parse_args(argv)
    if args.replays < 1 or args.chunk < 1 or args.workers < 1:
        parser.error("--replays, --chunk and --workers must be >= 1")
    document = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1))
    print(f"wrote {args.out}")
    return 0
