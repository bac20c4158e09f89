"""Which queries a tick needs, and how their answers become the engine's MetricReadings.

Pure code (no I/O): :func:`plan` groups the analysis requests of every rollout into one query
per metric family (per Prometheus, window and selector), :func:`readings` turns the answers into
one reading per check. Keeping it pure makes the batching testable without a server.

A window's counts are exact, not ``increase()``: that extrapolates each series over the window
on its own (so two checks of one window disagree on how many requests they saw, by up to a
third at a 15 s scrape and a 30 s interval), and it cannot count a series born inside the
window (a pod's ``code="500"`` series appears at its first failure: the failures before its
second sample are lost). Per series, the window (at - W, at] counts its last value in the
window minus its value at the window's start (the last sample up to 5 minutes before it), or
its last value when it has none (born in the window: counted from zero) or when it went down
(restarted: counted from zero). A series reset inside the window (or between the start and
its first sample in it) is flagged by the same query, and the families with one are read
again as raw samples and differenced sample by sample (:func:`corrected`). Every built-in
family (requests, errors, histogram buckets, tokens) is read this way, so the samples of every
check are the requests of the same scrapes; they come from one family per rollout (the
requests counter, else the latency or TTFT histogram), the same for every check.

What cannot be a count is not passed on as one: a negative or non-finite count is an error
(impossible data), and a partial answer (Prometheus' ``warnings``) is flagged on the reading
(:class:`MetricReading`). A window shorter than four scrape intervals is flagged as well: its
counts are those of one to a few scrapes, not of the interval.
"""

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tollgate.adapters.metrics.families import Family, Shape, families_for
from tollgate.adapters.metrics.histograms import bucket_bound, quantile
from tollgate.adapters.metrics.prometheus import PartialResponseError, Sample, Series
from tollgate.adapters.metrics.promql import any_of, duration, matchers, pods_of, quote
from tollgate.api.checks import ChecksSpec, CostCheck
from tollgate.api.metrics import MetricsSpec
from tollgate.engine.observations import MetricReading

WORKLOAD_LABEL = "tollgate_workload"
# Pods of a Deployment are named <deployment>-<pod-template-hash>-<suffix>.
POD_SUFFIX = "-[a-z0-9]+-[a-z0-9]+"
# How far before the window a series' value at the window's start is looked for: Prometheus'
# default lookback. A series without a sample there is new and counts from zero.
START_LOOKBACK = 300.0
# Fewer scrapes than this per window: the reading carries a warning.
SCRAPES_PER_WINDOW = 4
# The scrape interval is estimated over this many windows (at most an hour) before ``at``.
SCRAPE_HISTORY_WINDOWS = 10
SCRAPE_HISTORY_MAX = 3600.0
# Extra rows of a family's answer, told apart by this label: series reset in the window, and
# scrapes counted for the interval estimate.
ROW_LABEL = "tollgate_row"
RESETS_ROW, SCRAPES_ROW = "resets", "scrapes"


@dataclass(frozen=True)
class AnalysisRequest:
    """What one rollout needs measured this tick.

    ``canary``/``stable`` are the values that tell the versions apart: Deployment names matched
    on the pod label when ``version_label`` is None, else values of that label.
    """

    namespace: str
    name: str
    canary: str
    stable: str
    window: float
    metrics: MetricsSpec
    checks: ChecksSpec
    address: str
    version_label: str | None = None
    timeout: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def label(self) -> str:
        return self.version_label or WORKLOAD_LABEL


@dataclass(frozen=True)
class GroupKey:
    """Requests that can share one query per family."""

    address: str
    window: float
    namespace_label: str
    version_label: str | None
    selector: tuple[tuple[str, str], ...]


def exact_increase(selector: str, window: float) -> str:
    """Per series, what it counted in the window (at - W, at], from zero when born in it.

    Its last value in the window minus its value at the start, or its last value when it has
    no value at the start (new) or went below it (restarted). Exact without a reset inside the
    window; :func:`resets_in` flags the series with one.
    """
    w = duration(window)
    end = f"last_over_time({selector}[{w}])"
    start = f"last_over_time({selector}[{duration(START_LOOKBACK)}] offset {w})"
    return f"({end} - {start} >= 0 or {end})"


def resets_in(selector: str, window: float) -> str:
    """The series reset inside the window, or between their start value and the window."""
    w = duration(window)
    start = f"last_over_time({selector}[{duration(START_LOOKBACK)}] offset {w})"
    return f"(resets({selector}[{w}]) > 0 or min_over_time({selector}[{w}]) < {start})"


def scrape_range(window: float) -> float:
    """The time before ``at`` over which scrapes are counted to estimate the interval."""
    return float(
        max(1, round(min(window * SCRAPE_HISTORY_WINDOWS, max(window, SCRAPE_HISTORY_MAX))))
    )


@dataclass
class FamilyQuery:
    """One batched query: a family for every request of a group.

    ``scrapes``: the family is some member's request total, so its answer also counts scrapes
    per version (for the short-window warning).
    """

    group: GroupKey
    family: Family
    members: list[AnalysisRequest] = field(default_factory=list)
    scrapes: bool = False

    def selector(self, members: Sequence[AnalysisRequest] | None = None, *more: str) -> str:
        """The family's series for both versions of ``members`` (default: every member)."""
        chosen = self.members if members is None else members
        g = self.group
        extra = list(self.family.matchers)
        extra.append(f"{g.namespace_label}=~{any_of(m.namespace for m in chosen)}")
        values = [v for m in chosen for v in (m.canary, m.stable)]
        if g.version_label is None:
            extra.append(f"pod=~{pods_of(values, POD_SUFFIX)}")
        else:
            extra.append(f"{g.version_label}=~{any_of(values)}")
        extra.extend(more)
        return f"{self.family.series()}{{{matchers(dict(g.selector), extra)}}}"

    def _versioned(self, expression: str) -> str:
        if self.group.version_label is not None:
            return expression
        return f'label_replace({expression}, "{WORKLOAD_LABEL}", "$1", "pod", "(.+){POD_SUFFIX}")'

    def _by(self, buckets: bool) -> str:
        by = [self.group.namespace_label, self.group.version_label or WORKLOAD_LABEL]
        if buckets:
            by.append("le")
        return ", ".join(by)

    def shown(self, only: AnalysisRequest | None = None) -> str:
        """The window's counts per version (and bucket) in PromQL, as status shows them.

        Run in Prometheus it gives the adapter's numbers whenever no counter was reset in the
        window (with a reset, the adapter differences the raw samples instead).
        """
        members = [only] if only is not None else self.members
        inner = self._versioned(exact_increase(self.selector(members), self.group.window))
        return f"sum by ({self._by(self.family.shape is Shape.BUCKETS)}) ({inner})"

    def text(self) -> str:
        """The PromQL sent: the counts, plus rows flagging resets and counting scrapes."""
        window = self.group.window
        flags = self._versioned(resets_in(self.selector(), window))
        parts = [
            self.shown(),
            f'label_replace(count by ({self._by(False)}) ({flags}), "{ROW_LABEL}", '
            f'"{RESETS_ROW}", "", "")',
        ]
        if self.scrapes:
            total = self.selector(None, 'le="+Inf"') if self.family.shape is Shape.BUCKETS else None
            counted = self._versioned(
                f"count_over_time({total or self.selector()}[{duration(scrape_range(window))}])"
            )
            parts.append(
                f'label_replace(max by ({self._by(False)}) ({counted}), "{ROW_LABEL}", '
                f'"{SCRAPES_ROW}", "", "")'
            )
        return " or ".join(parts)

    def raw(self, members: Sequence[AnalysisRequest]) -> str:
        """The raw samples of ``members``' series from the start lookback to ``at``."""
        span = max(1, round(self.group.window)) + START_LOOKBACK
        return f"{self.selector(members)}[{duration(span)}]"


def _needed(request: AnalysisRequest) -> list[Family]:
    fam = families_for(request.metrics.preset, request.metrics.names)
    c = request.checks
    wanted: list[Family | None] = []
    if c.latency is not None:
        wanted.append(fam.duration)
    if c.ttft is not None:
        wanted.append(fam.ttft)
    if c.error_rate is not None or c.error_budget is not None or c.cost_per_request is not None:
        wanted += [fam.requests, fam.errors]
    if c.cost_per_request is not None:
        wanted += [fam.input_tokens, fam.output_tokens]
    if c.custom:
        wanted.append(fam.requests)
    out: list[Family] = []
    for f in wanted:
        if f is not None and f not in out:
            out.append(f)
    return out


def total_family(request: AnalysisRequest) -> Family | None:
    """Where a rollout's request count comes from, for every check: one family per rollout.

    The requests counter when the checks read it anyway, else the latency histogram, else the
    TTFT histogram (its +Inf bucket). Never a family the checks do not need: a latency-only
    rollout may have no requests counter at all.
    """
    fam = families_for(request.metrics.preset, request.metrics.names)
    needed = _needed(request)
    for candidate in (fam.requests, fam.duration, fam.ttft):
        if candidate is not None and candidate in needed:
            return candidate
    return None


def plan(requests: Sequence[AnalysisRequest]) -> list[FamilyQuery]:
    """One query per (group, family) for all requests; deterministic order."""
    queries: dict[tuple[GroupKey, Family], FamilyQuery] = {}
    for request in sorted(requests, key=lambda r: r.key):
        group = GroupKey(
            address=request.address,
            window=request.window,
            namespace_label=request.metrics.namespace_label,
            version_label=request.version_label,
            selector=tuple(sorted((request.metrics.selector or {}).items())),
        )
        total = total_family(request)
        for family in _needed(request):
            query = queries.setdefault((group, family), FamilyQuery(group, family))
            query.members.append(request)
            query.scrapes = query.scrapes or family == total
    return list(queries.values())


Answer = list[Sample] | Exception
Values = dict[tuple[str, str], dict[float, float]]
Version = tuple[str, str]  # (namespace, version)


@dataclass
class Parsed:
    """One family's answer: counts per version and bucket, versions with a reset, scrapes."""

    values: Values = field(default_factory=lambda: defaultdict(dict))
    resets: set[Version] = field(default_factory=set)
    scrapes: dict[Version, float] = field(default_factory=dict)


def parse(query: FamilyQuery, samples: Iterable[Sample]) -> Parsed:
    """Answer rows by (namespace, version) -> {le bound or 0: value}, and the extra rows."""
    out = Parsed()
    label = query.group.version_label or WORKLOAD_LABEL
    for s in samples:
        key = (s.labels.get(query.group.namespace_label, ""), s.labels.get(label, ""))
        row = s.labels.get(ROW_LABEL)
        if row == RESETS_ROW:
            if s.value > 0:
                out.resets.add(key)
        elif row == SCRAPES_ROW:
            out.scrapes[key] = max(out.scrapes.get(key, 0.0), s.value)
        elif row is None:
            bound = bucket_bound(s.labels["le"]) if "le" in s.labels else 0.0
            if math.isnan(bound):  # this member's exporter is broken: its row, not the batch
                out.values[key][math.inf] = math.nan
                continue
            out.values[key][bound] = out.values[key].get(bound, 0.0) + s.value
    return out


def reset_members(query: FamilyQuery, samples: Iterable[Sample]) -> list[AnalysisRequest]:
    """The members with a series reset in the window: their counts need the raw samples."""
    resets = parse(query, samples).resets
    return [
        m
        for m in query.members
        if (m.namespace, m.canary) in resets or (m.namespace, m.stable) in resets
    ]


Restarts = dict[object, set[tuple[int, int]]]


def _points(series: Series, at: datetime) -> list[tuple[int, float]]:
    ends = round(at.timestamp() * 1000)
    return [(round(t * 1000), v) for t, v in series.points if round(t * 1000) <= ends]


def restarts(raw: Iterable[tuple[FamilyQuery, Sequence[Series]]], at: datetime) -> Restarts:
    """When each scrape target restarted: (after, by) in ms, where a counter went down.

    Collected over every family read raw this tick: a restart resets every counter of its
    target (pod, instance, job), so one seen on any of them applies to all, also to a sparse
    series that cannot show its own (a pod's 500s: 1 before the restart, 1 after). A series
    with a gap (a 500 series absent until the next failure) only says the restart was
    somewhere between its two samples, so a restart applies to a pair of samples only when it
    certainly happened between them. A value below zero is no counter's: it restarts nothing.
    """
    out: Restarts = defaultdict(set)
    for query, series_list in raw:
        for series in series_list:
            points = _points(series, at)
            target = _target(query.group, series.labels)
            for (after, before), (ms, value) in itertools.pairwise(points):
                if 0 <= value < before:
                    out[target].add((after, ms))
    return out


def corrected(
    query: FamilyQuery,
    samples: list[Sample],
    members: Sequence[AnalysisRequest],
    raw: Sequence[Series],
    at: datetime,
    restarted: Restarts,
) -> list[Sample]:
    """The answer with the counts of ``members`` recomputed from their raw samples.

    Per series the rule of :func:`exact_increase` applied to every pair of successive samples:
    the increase, or the new value counted from zero when its target restarted in between
    (``restarted``, from :func:`restarts`). A series without a sample at the window's start
    counts from zero.
    """
    g = query.group
    label = g.version_label or WORKLOAD_LABEL
    boundary = round(at.timestamp() * 1000) - max(1, round(g.window)) * 1000
    mine = {(m.namespace, v) for m in members for v in (m.canary, m.stable)}
    pod = re.compile(f"(.+){POD_SUFFIX}")
    sums: dict[tuple[str, str, str | None], float] = defaultdict(float)
    for series in raw:
        labels = series.labels
        if g.version_label is None:
            matched = pod.fullmatch(labels.get("pod", ""))
            version = matched.group(1) if matched else ""
        else:
            version = labels.get(g.version_label, "")
        key = (labels.get(g.namespace_label, ""), version)
        if key in mine:
            resets = restarted.get(_target(g, labels), set())
            sums[(*key, labels.get("le"))] += _counted(_points(series, at), boundary, resets)
    kept = [
        s
        for s in samples
        if ROW_LABEL in s.labels
        or (s.labels.get(g.namespace_label, ""), s.labels.get(label, "")) not in mine
    ]
    for (namespace, version, le), value in sorted(sums.items(), key=str):
        labels = {g.namespace_label: namespace, label: version}
        if le is not None:
            labels["le"] = le
        kept.append(Sample(labels, value))
    return kept


TARGET_LABELS = ("pod", "instance", "job")


def _target(group: GroupKey, labels: Mapping[str, str]) -> object:
    """What restarts as one: the scrape target (by its labels), else the series alone."""
    present = tuple((k, labels[k]) for k in TARGET_LABELS if k in labels)
    if not present:
        return (group.address, frozenset(labels.items()))
    return (group.address, labels.get(group.namespace_label, ""), present)


def _counted(
    points: Sequence[tuple[int, float]], boundary: int, restarts: set[tuple[int, int]]
) -> float:
    """A series' count over the samples after ``boundary`` (ms), from zero when new."""
    counted = 0.0
    previous, previous_ms = 0.0, None
    for ms, value in points:
        if ms > boundary:
            restarted = previous_ms is not None and (
                value < previous or any(previous_ms <= a and b <= ms for a, b in restarts)
            )
            counted += value if restarted else value - previous
        previous, previous_ms = value, ms
    return counted


def _impossible(family: Family, version: str, row: Mapping[float, float]) -> str | None:
    """Why a row of counts cannot be real, or None: a count is finite and never negative."""
    for bound, value in sorted(row.items()):
        if not math.isfinite(value) or value < 0:
            where = "" if family.shape is Shape.COUNTER else f' (le="{bound:g}")'
            return (
                f"impossible data: {family.series()}{where} counted {value:g} for {version} "
                "in the window (a count is finite and never negative)"
            )
    return None


class _Reader:
    """Answers of one tick, seen from one request."""

    def __init__(
        self,
        request: AnalysisRequest,
        queries: Sequence[FamilyQuery],
        answers: Mapping[int, Answer],
    ) -> None:
        self.request = request
        mine = [q for q in queries if request in q.members]
        self.failures: dict[Family, Exception] = {}
        self.parsed: dict[Family, Parsed] = {}
        for q in mine:
            answer = answers.get(id(q), KeyError("not queried"))
            if isinstance(answer, Exception):
                self.failures[q.family] = answer
            else:
                self.parsed[q.family] = parse(q, answer)
        self.shown = {q.family: q.shown(only=request) for q in mine}
        self.fam = families_for(request.metrics.preset, request.metrics.names)
        self.total = total_family(request)
        self.warning = self._warning()

    def row(self, family: Family, version: str) -> dict[float, float] | None:
        parsed = self.parsed.get(family)
        return None if parsed is None else parsed.values.get((self.request.namespace, version))

    def counter(self, family: Family, version: str) -> float | None:
        row = self.row(family, version)
        return None if row is None else sum(row.values())

    def samples(self, version: str, own: Family | None = None) -> int:
        """The version's requests in the window: from the rollout's total family.

        ``own``: the family to count on instead when the total cannot be read.
        """
        for family in (self.total, own):
            if family is None or family not in self.parsed or self._bad(family) is not None:
                continue
            row = self.row(family, version) or {}
            value = row.get(math.inf) if family.shape is Shape.BUCKETS else sum(row.values())
            return _samples(value)
        return 0

    def _bad(self, family: Family) -> str | None:
        for version in (self.request.canary, self.request.stable):
            row = self.row(family, version)
            why = None if row is None else _impossible(family, version, row)
            if why is not None:
                return why
        return None

    def _warning(self) -> str | None:
        """A warning when the window is shorter than SCRAPES_PER_WINDOW scrape intervals."""
        parsed = self.parsed.get(self.total) if self.total is not None else None
        if parsed is None:
            return None
        r = self.request
        counted = max(
            parsed.scrapes.get((r.namespace, r.canary), 0.0),
            parsed.scrapes.get((r.namespace, r.stable), 0.0),
        )
        if counted < 1:
            return None
        span = scrape_range(r.window)
        interval = span / counted
        if r.window >= SCRAPES_PER_WINDOW * interval:
            return None
        return (
            f"the analysis interval ({duration(r.window)}) is shorter than "
            f"{SCRAPES_PER_WINDOW} scrape intervals (about {interval:.3g}s each: {counted:g} "
            f"scrapes in the last {duration(span)}), so a window counts the requests of "
            f"about {r.window / interval:.2g} scrapes, not of the interval"
        )

    def reading(
        self,
        name: str,
        canary: float | None,
        stable: float | None,
        query: str,
        own: Family | None,
    ) -> MetricReading:
        """A reading with values; its samples are the rollout's request total."""
        r = self.request
        return MetricReading(
            name,
            canary=canary,
            stable=stable,
            canary_samples=self.samples(r.canary, own),
            stable_samples=self.samples(r.stable, own),
            query=query,
            warning=self.warning,
        )

    def failed_reading(self, name: str, *families: Family | None) -> MetricReading | None:
        """A reading without values when a family is missing, failed, partial or impossible."""
        for f in families:
            if f is None:
                return MetricReading(
                    name, error="the metric preset has no such metric; set it in metrics.names"
                )
            failure = self.failures.get(f)
            if isinstance(failure, PartialResponseError):
                return MetricReading(name, partial=str(failure))
            if failure is not None:
                return MetricReading(name, error=str(failure) or type(failure).__name__)
        for f in families:
            assert f is not None
            why = self._bad(f)
            if why is not None:
                return MetricReading(name, query=self.shown.get(f), error=why)
        return None

    def quantile_reading(self, name: str, q: float, family: Family | None) -> MetricReading:
        failed = self.failed_reading(name, family)
        if failed is not None or family is None:
            return failed or MetricReading(name)
        r = self.request
        cb = self.row(family, r.canary) or {}
        sb = self.row(family, r.stable) or {}
        return self.reading(
            name,
            quantile(q, cb),
            quantile(q, sb),
            f"histogram_quantile({q:g}, {self.shown[family]})",
            family,
        )

    def ratio_reading(self, name: str) -> MetricReading:
        requests, errors = self.fam.requests, self.fam.errors
        failed = self.failed_reading(name, requests, errors)
        if failed is not None or requests is None or errors is None:
            return failed or MetricReading(name)
        r = self.request
        cr, sr = self.counter(requests, r.canary), self.counter(requests, r.stable)
        ce = self.counter(errors, r.canary) or 0.0
        se = self.counter(errors, r.stable) or 0.0
        return self.reading(
            name,
            _ratio(ce, cr),
            _ratio(se, sr),
            f"{self.shown[errors]} / {self.shown[requests]}",
            requests,
        )

    def cost_reading(self, check: CostCheck) -> MetricReading:
        requests, tin, tout = self.fam.requests, self.fam.input_tokens, self.fam.output_tokens
        failed = self.failed_reading("costPerRequest", requests, tin, tout)
        if failed is not None or requests is None or tin is None or tout is None:
            return failed or MetricReading("costPerRequest")
        price = check.pricing

        def cost(version: str) -> float | None:
            spent = (
                (self.counter(tin, version) or 0.0) * price.input_per_million_tokens
                + (self.counter(tout, version) or 0.0) * price.output_per_million_tokens
            ) / 1e6
            return _ratio(spent, self.counter(requests, version))

        r = self.request
        return self.reading(
            "costPerRequest",
            cost(r.canary),
            cost(r.stable),
            (
                f"({self.shown[tin]} * {price.input_per_million_tokens:g} + "
                f"{self.shown[tout]} * {price.output_per_million_tokens:g}) / 1e6"
                f" / {self.shown[requests]}"
            ),
            requests,
        )

    def custom_reading(self, name: str, answers: tuple[Answer, Answer, str]) -> MetricReading:
        canary_answer, stable_answer, text = answers
        for answer in (canary_answer, stable_answer):
            if isinstance(answer, PartialResponseError):
                return MetricReading(name, query=text or None, partial=str(answer))
            if isinstance(answer, Exception):
                return MetricReading(name, query=text or None, error=str(answer))
        assert not isinstance(canary_answer, Exception)
        assert not isinstance(stable_answer, Exception)
        return self.reading(
            name, _single(canary_answer), _single(stable_answer), text, self.fam.requests
        )


def readings(
    request: AnalysisRequest,
    queries: Sequence[FamilyQuery],
    answers: Mapping[int, Answer],
    custom: Mapping[str, tuple[Answer, Answer, str]] | None = None,
) -> tuple[MetricReading, ...]:
    """The engine's readings for one request from the answers of the tick's queries.

    ``answers`` maps ``id(query)`` to its samples (resets already :func:`corrected`) or the
    exception it raised; ``custom`` maps a custom check name to (canary answer, stable answer,
    resolved canary query).
    """
    reader = _Reader(request, queries, answers)
    c = request.checks
    out: list[MetricReading] = []
    if c.latency is not None:
        out.append(reader.quantile_reading("latency", c.latency.quantile, reader.fam.duration))
    if c.ttft is not None:
        out.append(reader.quantile_reading("ttft", c.ttft.quantile, reader.fam.ttft))
    if c.error_rate is not None:
        out.append(reader.ratio_reading("errorRate"))
    if c.error_budget is not None:
        out.append(reader.ratio_reading("errorBudget"))
    if c.cost_per_request is not None:
        out.append(reader.cost_reading(c.cost_per_request))
    missing: tuple[Answer, Answer, str] = (KeyError("not queried"), KeyError("not queried"), "")
    for check in c.custom or ():
        out.append(reader.custom_reading(check.name, (custom or {}).get(check.name, missing)))
    return tuple(out)


def _samples(value: float | None) -> int:
    return 0 if value is None or not math.isfinite(value) else max(0, round(value))


def _ratio(part: float, whole: float | None) -> float | None:
    if whole is None or not math.isfinite(whole) or whole <= 0:
        return None
    return part / whole


def _single(samples: list[Sample]) -> float | None:
    return samples[0].value if len(samples) == 1 else None


def render_custom(template: str, request: AnalysisRequest, version: str) -> str:
    """A custom check's template with its placeholders filled for one version."""
    label = request.version_label
    if label is None:
        version_matcher = f"pod=~{pods_of([version], POD_SUFFIX)}"
    else:
        version_matcher = f"{label}={quote(version)}"
    selector = matchers(
        {request.metrics.namespace_label: request.namespace, **(request.metrics.selector or {})},
        [version_matcher],
    )
    values = {
        "selector": selector,
        "namespace": request.namespace,
        "version": version,
        "window": duration(request.window),
    }
    text = template
    for key, value in values.items():
        for spelling in (f"{{{{ {key} }}}}", f"{{{{{key}}}}}"):
            text = text.replace(spelling, value)
    return text
