"""One query per metric family per tick for every rollout: the batching front of the adapter.

kopf reconciles each object in its own task. Each task asks :meth:`MetricsBatcher.read` for its
readings; calls that arrive within a short window join one batch (:mod:`coalesce`), which is
planned once (:func:`queries.plan`), queried concurrently, and answered to every caller.
Prometheus load therefore grows with the number of metric families, not with the number of rollouts.

A family whose answer flags a counter reset inside the window (a restarted pod) is read once
more as raw samples, only for the rollouts concerned, and their counts are differenced sample
by sample (:func:`queries.corrected`): restarts are rare, exact counts are not optional.
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from tollgate.adapters.metrics.coalesce import BATCH_WINDOW, Coalescer
from tollgate.adapters.metrics.prometheus import PrometheusClient, Series
from tollgate.adapters.metrics.queries import (
    AnalysisRequest,
    Answer,
    FamilyQuery,
    corrected,
    plan,
    readings,
    render_custom,
    reset_members,
    restarts,
)
from tollgate.engine.observations import MetricReading

ClientFactory = Callable[[str], PrometheusClient]


class MetricsBatcher:
    """Coalesces concurrent reads into batched queries."""

    def __init__(self, clients: ClientFactory, window: float = BATCH_WINDOW) -> None:
        self._clients = clients
        self._coalescer: Coalescer[AnalysisRequest, tuple[MetricReading, ...]] = Coalescer(
            self._answer, window
        )
        self.queries_sent = 0

    async def read(self, request: AnalysisRequest, at: datetime) -> tuple[MetricReading, ...]:
        """This rollout's readings, from a batch shared with concurrent callers."""
        return await self._coalescer.submit(request, at, request.timeout)

    async def _answer(
        self, requests: list[AnalysisRequest], at: datetime | None
    ) -> list[tuple[MetricReading, ...]]:
        assert at is not None
        results = await self.query(requests, at)
        return [results[r.key] for r in requests]

    async def query(
        self, requests: list[AnalysisRequest], at: datetime
    ) -> dict[str, tuple[MetricReading, ...]]:
        """Plan, send and distribute one batch (also usable directly, e.g. by replays)."""
        queries = plan(requests)
        answers: dict[int, Answer] = {}

        async def ask(address: str, text: str, timeout: float | None) -> Answer:
            self.queries_sent += 1
            try:
                return await self._clients(address).instant(text, at, timeout)
            except Exception as exc:
                return exc

        first = await asyncio.gather(
            *(ask(q.group.address, q.text(), _timeout(q.members)) for q in queries)
        )
        for query, answer in zip(queries, first, strict=True):
            answers[id(query)] = answer
        await self._correct_resets(queries, answers, at)
        out: dict[str, tuple[MetricReading, ...]] = {}
        for request in requests:
            custom: dict[str, tuple[Answer, Answer, str]] = {}
            for check in request.checks.custom or ():
                canary_q = render_custom(check.query, request, request.canary)
                stable_q = render_custom(check.query, request, request.stable)
                canary_a, stable_a = await asyncio.gather(
                    ask(request.address, canary_q, request.timeout),
                    ask(request.address, stable_q, request.timeout),
                )
                custom[check.name] = (canary_a, stable_a, canary_q)
            out[request.key] = readings(request, queries, answers, custom)
        return out

    async def _correct_resets(
        self, queries: list[FamilyQuery], answers: dict[int, Answer], at: datetime
    ) -> None:
        """Re-read as raw samples every family of the rollouts where a counter was reset.

        Every family of such a rollout, not only the one that showed it: a restart resets all
        counters of a pod, and some (its 500s) may not show it themselves.
        """
        flagged = {
            m.key
            for q in queries
            if isinstance(answer := answers[id(q)], list)
            for m in reset_members(q, answer)
        }
        redo = [
            (q, [m for m in q.members if m.key in flagged])
            for q in queries
            if isinstance(answers[id(q)], list) and any(m.key in flagged for m in q.members)
        ]
        if not redo:
            return

        async def raw(
            query: FamilyQuery, members: list[AnalysisRequest]
        ) -> list[Series] | Exception:
            self.queries_sent += 1
            try:
                return await self._clients(query.group.address).matrix(
                    query.raw(members), at, _timeout(members)
                )
            except Exception as exc:
                return exc

        read = await asyncio.gather(*(raw(q, members) for q, members in redo))
        seen = restarts(
            ((q, r) for (q, _), r in zip(redo, read, strict=True) if not isinstance(r, Exception)),
            at,
        )
        for (query, members), series in zip(redo, read, strict=True):
            answer = answers[id(query)]
            assert isinstance(answer, list)
            answers[id(query)] = (
                series
                if isinstance(series, Exception)
                else corrected(query, answer, members, series, at, seen)
            )


def _timeout(requests: Sequence[AnalysisRequest]) -> float | None:
    """The longest timeout any member asked for (None: the client's default): a shared query
    must not fail members that would wait longer; each member gives up at its own."""
    limits = [r.timeout for r in requests if r.timeout is not None]
    return max(limits) if limits else None
