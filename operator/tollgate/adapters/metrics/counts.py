"""Counts for the sequential tests: cumulative counters per series, differenced between readings.

No rate window and no extrapolation: the adapter reads each series' cumulative value (requests,
errors, histogram buckets) as Prometheus last scraped it, keeps the previous value of every
series in memory, and sums the increases per version. A series whose value went down was reset
(its process restarted) and counted its current value since. The first reading of a rollout
is only a snapshot; a series that appears later (a new pod) counts from zero. After an operator
restart the first reading is a snapshot again, which loses at most one reading's evidence.

Latency and TTFT become counts of requests over an objective, a bucket bound fixed at the
rollout's first reading: for the absolute limit's test (``latency.max``) the smallest bound at
or above the limit; for the relative test a pair, the canary's bound and the stable's, chosen
from the stable's histogram where a slowdown shows most (engine/objectives.py). The stable
bound travels in the objectives under ``stable_key(check)``.
Cost becomes requests whose answer is longer than a bound near the stable's median (from a
histogram of output tokens per request, when the metrics have one). Any objective fixed
independently of what the canary does next keeps the test valid.
"""

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tollgate.adapters.metrics.coalesce import BATCH_WINDOW, Coalescer
from tollgate.adapters.metrics.families import Family, Shape, families_for
from tollgate.adapters.metrics.histograms import bucket_bound
from tollgate.adapters.metrics.prometheus import PrometheusClient, Sample
from tollgate.adapters.metrics.promql import any_of, matchers, pods_of, quote
from tollgate.adapters.metrics.queries import (
    POD_SUFFIX,
    WORKLOAD_LABEL,
    AnalysisRequest,
    GroupKey,
)
from tollgate.engine.evidence import LIMIT
from tollgate.engine.objectives import limit_bound, relative_objective, stable_key
from tollgate.engine.sequential import Amount, Batch, increments

COST = "costPerRequest" + LIMIT
TOKENS = (COST + ":input", COST + ":output")  # requests and each kind of token, for the cost

SeriesKey = frozenset[tuple[str, str]]


@dataclass
class CountReading:
    """One reading: per check the increments since the previous one, and the objectives used."""

    counts: dict[str, Batch] = field(default_factory=dict)
    objectives: dict[str, float] = field(default_factory=dict)
    amounts: dict[str, Amount] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    untestable: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)


def raw_query(request: AnalysisRequest, family: Family) -> str:
    """The family's cumulative series for both versions of one rollout (no sum, no window)."""
    return family_query([request], family)


def family_query(members: Sequence[AnalysisRequest], family: Family) -> str:
    """The family's cumulative series for both versions of every member (one batched query).

    Members share Prometheus, namespace label, version label and selector; rows that match
    one member's namespace and another's version are dropped when the answer is split.
    """
    first = members[0]
    namespaces = sorted({m.namespace for m in members})
    label = first.metrics.namespace_label
    in_namespaces = (
        f"{label}={quote(namespaces[0])}"
        if len(namespaces) == 1
        else f"{label}=~{any_of(namespaces)}"
    )
    extra = [*family.matchers, in_namespaces]
    versions = [v for m in members for v in (m.canary, m.stable)]
    if first.version_label is None:
        extra.append(f"pod=~{pods_of(versions, POD_SUFFIX)}")
    else:
        extra.append(f"{first.version_label}=~{any_of(versions)}")
    text = f"{family.series()}{{{matchers(dict(first.metrics.selector or {}), extra)}}}"
    if first.version_label is None:
        text = f'label_replace({text}, "{WORKLOAD_LABEL}", "$1", "pod", "(.+){POD_SUFFIX}")'
    return text


def _group(request: AnalysisRequest) -> GroupKey:
    """What rollouts must share to share a query: Prometheus, labels and selector (no window)."""
    selector = tuple(sorted((request.metrics.selector or {}).items()))
    return GroupKey(
        request.address, 0.0, request.metrics.namespace_label, request.version_label, selector
    )


def _share(request: AnalysisRequest, answer: list[Sample] | Exception) -> list[Sample] | Exception:
    """The rows of a batched answer that belong to ``request`` (an error belongs to all)."""
    if isinstance(answer, Exception):
        return answer
    ns, label = request.metrics.namespace_label, request.version_label or WORKLOAD_LABEL
    versions = (request.canary, request.stable)
    return [
        s
        for s in answer
        if s.labels.get(ns) == request.namespace and s.labels.get(label) in versions
    ]


Tables = dict[str, tuple[dict[SeriesKey, float], dict[SeriesKey, float]]]
Answers = dict[Family, list[Sample] | Exception]


class CountReader:
    """Reads counts for rollouts and remembers each series' last value between readings.

    Values are read in batches: concurrent reads for the same time within ``window`` seconds
    share one query per family (per Prometheus, labels and selector), so Prometheus sees the
    same number of queries per tick for one rollout or a thousand. A snapshot at a past time
    (the first reading of a rollout) is usually a batch of its own.
    """

    def __init__(
        self, clients: Callable[[str], PrometheusClient], window: float = BATCH_WINDOW
    ) -> None:
        self._clients = clients
        self._last: dict[str, tuple[str, dict[SeriesKey, float]]] = {}
        self._reads: Coalescer[tuple[AnalysisRequest, list[Family]], Answers] = Coalescer(
            self._answer, window
        )
        self.queries_sent = 0

    def forget(self, rollout: str) -> None:
        self._last.pop(rollout, None)

    async def read(
        self,
        request: AnalysisRequest,
        revision: str,
        objectives: Mapping[str, float],
        at: datetime | None = None,
        baseline_at: datetime | None = None,
    ) -> CountReading:
        """Increments per check since this rollout's previous reading of the same revision.

        Without a previous reading in memory (the first one, or after a restart), the values
        at ``baseline_at`` (the start of the step, or the last counted analysis) are the
        snapshot; without that either, this reading is only a snapshot.
        """
        wanted = _wanted(request)
        out = CountReading(queries=_described(request, wanted))
        answers = await self._batched(request, wanted, at)
        tables = _tables(request, wanted, answers, objectives, out)
        current = {
            k: v for totals, bads in tables.values() for k, v in (*totals.items(), *bads.items())
        }
        known_revision, last = self._last.get(request.key, ("", {}))
        previous: dict[SeriesKey, float] | None = last if known_revision == revision else None
        if previous is None and baseline_at is not None:
            then = await self._batched(request, wanted, baseline_at)
            fixed = CountReading(objectives=dict(out.objectives))
            before = _tables(request, wanted, then, out.objectives, fixed)
            previous = {
                k: v
                for totals, bads in before.values()
                for k, v in (*totals.items(), *bads.items())
            }
        # Series of a family that failed this time keep their last value: the next reading
        # then counts from it, not from zero (which would count their whole history at once).
        kept = last if known_revision == revision else {}
        self._last[request.key] = (revision, {**kept, **current})
        if previous is None:
            return out
        label = request.version_label or WORKLOAD_LABEL
        tokens: dict[str, tuple[float, float, float, float]] = {}
        for check, (totals, bads) in tables.items():
            by_version: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for key, value in totals.items():
                by_version[_version(key, label)][0] += _increase(previous, key, value)
            for key, value in bads.items():
                by_version[_version(key, label)][1] += _increase(previous, key, value)
            cn, cb = by_version.get(request.canary, [0.0, 0.0])
            sn, sb = by_version.get(request.stable, [0.0, 0.0])
            if check in TOKENS:
                tokens[check] = (cn, cb, sn, sb)
            else:
                out.counts[check] = Batch(cn, min(cb, cn), sn, min(sb, sn))
        cost = request.checks.cost_per_request
        if cost is not None and all(t in tokens for t in TOKENS):
            (cn, cin, sn, sin), (_, cout, _, sout) = tokens[TOKENS[0]], tokens[TOKENS[1]]
            price_in = cost.pricing.input_per_million_tokens / 1e6
            price_out = cost.pricing.output_per_million_tokens / 1e6
            out.amounts[COST] = Amount(
                cn, cin * price_in + cout * price_out, sn, sin * price_in + sout * price_out
            )
        return out

    async def _batched(
        self,
        request: AnalysisRequest,
        wanted: Mapping[str, tuple[Family | None, Family | None]],
        at: datetime | None,
    ) -> Answers:
        """This rollout's share of a batch of values at ``at`` read with concurrent callers."""
        families = sorted(
            {f for pair in wanted.values() for f in pair if f is not None},
            key=lambda f: (f.metric, f.matchers),
        )
        return await self._reads.submit((request, families), at, request.timeout)

    async def _answer(
        self, batch: list[tuple[AnalysisRequest, list[Family]]], at: datetime | None
    ) -> list[Answers]:
        """One query per group and family for the whole batch, split back per rollout."""
        groups: dict[tuple[GroupKey, Family], list[AnalysisRequest]] = defaultdict(list)
        for request, families in batch:
            for family in families:
                groups[_group(request), family].append(request)

        async def ask(
            key: tuple[GroupKey, Family], members: list[AnalysisRequest]
        ) -> list[Sample] | Exception:
            self.queries_sent += 1
            limits = [m.timeout for m in members if m.timeout is not None]
            try:
                return await self._clients(key[0].address).instant(
                    family_query(members, key[1]), at, max(limits) if limits else None
                )
            except Exception as exc:  # reported per check; never evidence
                return exc

        keys = list(groups)
        results = dict(
            zip(keys, await asyncio.gather(*(ask(k, groups[k]) for k in keys)), strict=True)
        )
        return [
            {family: _share(request, results[_group(request), family]) for family in families}
            for request, families in batch
        ]


def _wanted(request: AnalysisRequest) -> dict[str, tuple[Family | None, Family | None]]:
    """Per check taking part: (family of requests or histogram, family of bad events)."""
    fam = families_for(request.metrics.preset, request.metrics.names)
    c = request.checks
    wanted: dict[str, tuple[Family | None, Family | None]] = {}
    if c.error_rate is not None:
        wanted["errorRate"] = (fam.requests, fam.errors)
    if c.error_budget is not None:
        wanted["errorBudget"] = (fam.requests, fam.errors)
    for name, check, family in (("latency", c.latency, fam.duration), ("ttft", c.ttft, fam.ttft)):
        if check is None:
            continue
        if check.max_increase_percent is not None:
            wanted[name] = (family, None)
        if check.max_milliseconds is not None:
            wanted[name + LIMIT] = (family, None)
    cost = c.cost_per_request
    if cost is not None and cost.max_increase_percent is not None and fam.answer_lengths:
        wanted["costPerRequest"] = (fam.answer_lengths, None)
    if (
        cost is not None
        and cost.max_per_request is not None
        and fam.input_tokens
        and fam.output_tokens
    ):
        wanted[TOKENS[0]] = (fam.requests, fam.input_tokens)
        wanted[TOKENS[1]] = (fam.requests, fam.output_tokens)
    return wanted


def _described(
    request: AnalysisRequest, wanted: Mapping[str, tuple[Family | None, Family | None]]
) -> dict[str, str]:
    """Per check, the queries its counts come from, as status shows them."""
    out: dict[str, str] = {}
    for check, (total, bad) in wanted.items():
        if total is None:
            continue
        if total.shape is Shape.BUCKETS:
            out[check] = f"{raw_query(request, total)} (bad: +Inf minus the objective's bucket)"
        elif bad is not None:
            out[check] = f"bad: {raw_query(request, bad)}; total: {raw_query(request, total)}"
    if all(t in out for t in TOKENS):
        requests = wanted[TOKENS[0]][0]
        used = [f for f in (wanted[TOKENS[0]][1], wanted[TOKENS[1]][1], requests) if f]
        out[COST] = "tokens and requests: " + "; ".join(raw_query(request, f) for f in used)
        for t in TOKENS:
            del out[t]
    return out


def _tables(
    request: AnalysisRequest,
    wanted: Mapping[str, tuple[Family | None, Family | None]],
    answers: Answers,
    objectives: Mapping[str, float],
    out: CountReading,
) -> Tables:
    """Per check: cumulative requests and bad events per series; objectives and errors in out."""
    label = request.version_label or WORKLOAD_LABEL
    tables: Tables = {}
    for check, (total_family, bad_family) in wanted.items():
        failed = [
            f
            for f in (total_family, bad_family)
            if f is not None and isinstance(answers[f], Exception)
        ]
        if total_family is None or failed:
            out.errors[check] = str(answers[failed[0]]) if failed else "no such metric"
            continue
        total_samples = answers[total_family]
        assert not isinstance(total_samples, Exception)
        if total_family.shape is Shape.BUCKETS:
            objective = objectives.get(check)
            if objective is None:
                objective = _objective(request, check, total_samples, label, out)
            if objective is None:
                continue
            stable_bound = objectives.get(stable_key(check), out.objectives.get(stable_key(check)))
            out.objectives[check] = objective
            if stable_bound is not None:
                out.objectives[stable_key(check)] = stable_bound
            bounds = {request.canary: objective, request.stable: stable_bound or objective}
            tables[check] = _over_objective(total_samples, bounds, label, check)
        else:
            bad_samples = answers.get(bad_family) if bad_family is not None else []
            assert isinstance(bad_samples, list)
            tables[check] = (
                _series(total_samples, f"total:{check}"),
                _series(bad_samples, f"bad:{check}"),
            )
    return tables


def _increase(last: Mapping[SeriesKey, float], key: SeriesKey, value: float) -> float:
    """Since the previous reading; a series first seen now (a new pod) counts from zero."""
    previous = last.get(key)
    return value if previous is None else increments(previous, value)


def _series(samples: list[Sample], role: str) -> dict[SeriesKey, float]:
    return {
        frozenset({**s.labels, "__role__": role}.items()): s.value
        for s in samples
        if math.isfinite(s.value)
    }


def _version(key: SeriesKey, label: str) -> str:
    return dict(key).get(label, "")


def _objective(
    request: AnalysisRequest, check: str, samples: list[Sample], label: str, out: CountReading
) -> float | None:
    """The test's bucket bound, chosen at its first reading (engine/objectives.py says how).

    A relative test's stable bound goes to ``out.objectives[stable_key(check)]``; a limit the
    buckets cannot count says why in ``out.untestable``.
    """
    stable: dict[float, float] = defaultdict(float)
    bounds: set[float] = set()
    for s in samples:
        if "le" not in s.labels:
            continue
        bound = bucket_bound(s.labels["le"])
        if math.isnan(bound):
            continue
        bounds.add(bound)
        if s.labels.get(label) == request.stable:
            stable[bound] += s.value
    c = request.checks
    base = check.removesuffix(LIMIT)
    if check.endswith(LIMIT):
        limit = c.latency if base == "latency" else c.ttft
        if limit is None or limit.max_milliseconds is None:
            return None
        over = limit_bound(sorted(bounds), limit.max_milliseconds / 1000.0)
        if over is None:
            out.untestable[check] = (
                f"no bucket bound at or above {limit.max_milliseconds:g}ms: add one to the "
                "histogram to count requests over the limit"
            )
        return over
    if check == "costPerRequest":
        cost = c.cost_per_request
        quantile_, increase = 0.5, (cost.max_increase_percent or 0.0) if cost else 0.0
    else:
        latency = c.latency if check == "latency" else c.ttft
        if latency is None:
            return None
        quantile_, increase = latency.quantile, latency.max_increase_percent or 0.0
    chosen = relative_objective(stable, quantile_, increase / 100.0)
    if chosen is None:
        out.untestable[check] = (
            "no bucket bound separates the stable's requests where a change would show "
            "(too few stable requests, or buckets too coarse): finer buckets make it countable"
        )
        return None
    out.objectives[stable_key(check)] = chosen.stable_bound
    return chosen.bound


def _over_objective(
    samples: list[Sample], bounds: Mapping[str, float], label: str, check: str
) -> tuple[dict[SeriesKey, float], dict[SeriesKey, float]]:
    """Per series: requests (the +Inf bucket) and requests over its version's bound (+Inf -
    le=bound). Roles carry the check, so two tests of one histogram never share a series."""
    totals: dict[SeriesKey, float] = {}
    under: dict[SeriesKey, float] = {}
    total_role, bad_role = ("__role__", f"total:{check}"), ("__role__", f"bad:{check}")
    for s in samples:
        le = s.labels.get("le")
        bound = bounds.get(s.labels.get(label, ""))
        if le is None or bound is None or not math.isfinite(s.value):
            continue
        base = frozenset((k, v) for k, v in s.labels.items() if k != "le")
        at = bucket_bound(le)
        if math.isnan(at):
            continue
        if math.isinf(at):
            totals[base | {total_role}] = s.value
        elif math.isclose(at, bound):
            under[base] = s.value
    bads = {
        key - {total_role} | {bad_role}: max(0.0, value - under.get(key - {total_role}, value))
        for key, value in totals.items()
    }
    return totals, bads
