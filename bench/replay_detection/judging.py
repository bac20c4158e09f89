"""Every replay of a chunk judged in-process by ``tollgate analyze --replay``'s own code.

The replays of one chunk start at the same time, so all replays of a spec tick together; they
share that spec's readers, whose reads then form one batch per tick, as the operator's reads
do across rollouts. Each replay becomes a :class:`Judgement`: how it ended, when (seconds from
the canary's first request), why, and which checks caused a rollback.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bench.replay_detection.manifests import Manifest
from tollgate.adapters.outbound import Outbound
from tollgate.api.status import Verdict as CheckVerdict
from tollgate.cli.replay import (
    ReplayOutcome,
    ReplayReaders,
    ReplayResult,
    Target,
    replay,
    target_from_document,
)
from tollgate.runtime.wiring import OWN_CONNECTIONS

# Outcome groups of the report.
EVIDENCE, DEADLINE, PROMOTED, UNDECIDED, BROKEN = (
    "evidence",
    "deadline",
    "promoted",
    "undecided",
    "broken",
)
GROUPS = {
    ReplayOutcome.ROLLED_BACK: EVIDENCE,
    ReplayOutcome.INSUFFICIENT_EVIDENCE: DEADLINE,
    ReplayOutcome.PROMOTED: PROMOTED,
    ReplayOutcome.NO_ROLLBACK: UNDECIDED,
}


@dataclass(frozen=True)
class Replay:
    """One history judged by one manifest: where it lives and what it is."""

    traffic: str
    scenario: str
    index: int
    namespace: str
    manifest: Manifest


@dataclass(frozen=True)
class Judgement:
    """How one replay ended (``group``: evidence, deadline, promoted, undecided, broken)."""

    traffic: str
    scenario: str
    spec: str
    index: int
    group: str
    reason: str
    seconds: float | None
    causes: tuple[str, ...]
    objectives: dict[str, float]
    message: str


def causes(result: ReplayResult) -> tuple[str, ...]:
    """The checks behind a rollback: ``<check>:<how>`` (sequential, limit, burn, threshold)."""
    if result.outcome is not ReplayOutcome.ROLLED_BACK or not result.ticks:
        return ()
    status = result.ticks[-1].decision.status
    found: list[str] = []
    for e in status.evidence:
        if e.verdict is CheckVerdict.FAIL:
            check, _, part = e.name.partition(".")
            found.append(f"{check}:{'limit' if part else 'sequential'}")
    if status.budget is not None and status.budget.verdict is CheckVerdict.FAIL:
        found.append("errorBudget:burn")
    if not found and status.last_analysis_at == result.decided_at:
        found += [f"{c.name}:threshold" for c in status.checks if c.verdict is CheckVerdict.FAIL]
    if not found:
        found.append(f"provider:{result.reason}")
    return tuple(sorted(set(found)))


def objectives(result: ReplayResult) -> dict[str, float]:
    """The bucket bounds the tests counted bad events over (from the last tick's evidence)."""
    if not result.ticks:
        return {}
    evidence = result.ticks[-1].decision.status.evidence
    return {e.name: e.objective for e in evidence if e.objective is not None}


def judgement_of(job: Replay, result: ReplayResult, start: datetime) -> Judgement:
    seconds = (result.decided_at - start).total_seconds() if result.decided_at else None
    return Judgement(
        traffic=job.traffic,
        scenario=job.scenario,
        spec=job.manifest.name,
        index=job.index,
        group=GROUPS.get(result.outcome, BROKEN),
        reason=result.reason,
        seconds=seconds,
        causes=causes(result),
        objectives=objectives(result),
        message=result.message[:300],
    )


async def judge_chunk(
    prometheus: str, jobs: Sequence[Replay], start: datetime, horizon: float
) -> list[Judgement]:
    """Replay every job from ``start`` (the canary's first request) for ``horizon`` seconds."""
    end = start + timedelta(seconds=horizon)
    # the bench's Prometheus stands for the operator's own: its pool, not a tenant's share
    limits = httpx.Limits(max_connections=OWN_CONNECTIONS, max_keepalive_connections=16)
    async with httpx.AsyncClient(limits=limits) as http:
        calls = Outbound(http, per_endpoint=OWN_CONNECTIONS)
        readers = {
            m: ReplayReaders.over(calls, timeout=60.0) for m in {j.manifest.name for j in jobs}
        }

        async def one(job: Replay) -> Judgement:
            doc = job.manifest.for_history(job.namespace)
            target: Target = target_from_document(doc, prometheus, job.manifest.name)
            result = await replay(target, start, end, readers[job.manifest.name])
            return judgement_of(job, result, start)

        return list(await asyncio.gather(*(one(j) for j in jobs)))


def at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)
