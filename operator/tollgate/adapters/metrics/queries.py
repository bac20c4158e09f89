"""Which queries a tick needs, and how their answers become the engine's MetricReadings.

Pure code (no I/O): :func:`plan` groups the analysis requests of every rollout into one query
per metric family (per Prometheus, window and selector), :func:`readings` turns the answers into
one reading per check. Keeping it pure makes the batching testable without a server.
"""

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tollgate.adapters.metrics.families import Family, Shape, families_for
from tollgate.adapters.metrics.histograms import bucket_bound, quantile
from tollgate.adapters.metrics.prometheus import Sample
from tollgate.adapters.metrics.promql import any_of, duration, matchers, pods_of, quote
from tollgate.api.checks import ChecksSpec, CostCheck
from tollgate.api.metrics import MetricsSpec
from tollgate.engine.observations import MetricReading

WORKLOAD_LABEL = "tollgate_workload"
# Pods of a Deployment are named <deployment>-<pod-template-hash>-<suffix>.
POD_SUFFIX = "-[a-z0-9]+-[a-z0-9]+"


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


@dataclass
class FamilyQuery:
    """One batched query: a family for every request of a group."""

    group: GroupKey
    family: Family
    members: list[AnalysisRequest] = field(default_factory=list)

    def text(self, only: AnalysisRequest | None = None) -> str:
        """The PromQL; with ``only``, the same query restricted to one rollout (for status)."""
        members = [only] if only is not None else self.members
        g = self.group
        extra = list(self.family.matchers)
        namespaces = [m.namespace for m in members]
        extra.append(f"{g.namespace_label}=~{any_of(namespaces)}")
        values = [v for m in members for v in (m.canary, m.stable)]
        if g.version_label is None:
            extra.append(f"pod=~{pods_of(values, POD_SUFFIX)}")
        else:
            extra.append(f"{g.version_label}=~{any_of(values)}")
        inner = f"increase({self.family.series()}{{{matchers(dict(g.selector), extra)}}}"
        inner += f"[{duration(g.window)}])"
        if g.version_label is None:
            inner = f'label_replace({inner}, "{WORKLOAD_LABEL}", "$1", "pod", "(.+){POD_SUFFIX}")'
        by = [g.namespace_label, g.version_label or WORKLOAD_LABEL]
        if self.family.shape is Shape.BUCKETS:
            by.append("le")
        return f"sum by ({', '.join(by)}) ({inner})"


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
        for family in _needed(request):
            query = queries.setdefault((group, family), FamilyQuery(group, family))
            query.members.append(request)
    return list(queries.values())


Answer = list[Sample] | Exception
Values = dict[tuple[str, str], dict[float, float]]


def _index(query: FamilyQuery, samples: list[Sample]) -> Values:
    """Answer rows by (namespace, version) -> {le bound or 0: value}."""
    out: Values = defaultdict(dict)
    label = query.group.version_label or WORKLOAD_LABEL
    for s in samples:
        key = (s.labels.get(query.group.namespace_label, ""), s.labels.get(label, ""))
        bound = bucket_bound(s.labels["le"]) if "le" in s.labels else 0.0
        out[key][bound] = out[key].get(bound, 0.0) + s.value
    return out


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
        self.indexed: dict[Family, Values] = {}
        for q in mine:
            answer = answers.get(id(q), KeyError("not queried"))
            if isinstance(answer, Exception):
                self.failures[q.family] = answer
            else:
                self.indexed[q.family] = _index(q, answer)
        self.shown = {q.family: q.text(only=request) for q in mine}
        self.fam = families_for(request.metrics.preset, request.metrics.names)

    def row(self, family: Family, version: str) -> dict[float, float] | None:
        table = self.indexed.get(family)
        return None if table is None else table.get((self.request.namespace, version))

    def counter(self, family: Family, version: str) -> float | None:
        row = self.row(family, version)
        return None if row is None else sum(row.values())

    def failed(self, *families: Family | None) -> str | None:
        for f in families:
            if f is None:
                return "the metric preset has no such metric; set it in metrics.names"
            if f in self.failures:
                return str(self.failures[f]) or type(self.failures[f]).__name__
        return None

    def quantile_reading(self, name: str, q: float, family: Family | None) -> MetricReading:
        error = self.failed(family)
        if error is not None or family is None:
            return MetricReading(name, error=error)
        cb = self.row(family, self.request.canary) or {}
        sb = self.row(family, self.request.stable) or {}
        return MetricReading(
            name,
            canary=quantile(q, cb),
            stable=quantile(q, sb),
            canary_samples=_count(cb),
            stable_samples=_count(sb),
            query=f"histogram_quantile({q:g}, {self.shown[family]})",
        )

    def ratio_reading(self, name: str) -> MetricReading:
        requests, errors = self.fam.requests, self.fam.errors
        error = self.failed(requests, errors)
        if error is not None or requests is None or errors is None:
            return MetricReading(name, error=error)
        r = self.request
        cr, sr = self.counter(requests, r.canary), self.counter(requests, r.stable)
        ce = self.counter(errors, r.canary) or 0.0
        se = self.counter(errors, r.stable) or 0.0
        return MetricReading(
            name,
            canary=_ratio(ce, cr),
            stable=_ratio(se, sr),
            canary_samples=_samples(cr),
            stable_samples=_samples(sr),
            query=f"{self.shown[errors]} / {self.shown[requests]}",
        )

    def cost_reading(self, check: CostCheck) -> MetricReading:
        requests, tin, tout = self.fam.requests, self.fam.input_tokens, self.fam.output_tokens
        error = self.failed(requests, tin, tout)
        if error is not None or requests is None or tin is None or tout is None:
            return MetricReading("costPerRequest", error=error)
        price = check.pricing

        def cost(version: str) -> float | None:
            spent = (
                (self.counter(tin, version) or 0.0) * price.input_per_million_tokens
                + (self.counter(tout, version) or 0.0) * price.output_per_million_tokens
            ) / 1e6
            return _ratio(spent, self.counter(requests, version))

        r = self.request
        return MetricReading(
            "costPerRequest",
            canary=cost(r.canary),
            stable=cost(r.stable),
            canary_samples=_samples(self.counter(requests, r.canary)),
            stable_samples=_samples(self.counter(requests, r.stable)),
            query=(
                f"({self.shown[tin]} * {price.input_per_million_tokens:g} + "
                f"{self.shown[tout]} * {price.output_per_million_tokens:g}) / 1e6"
                f" / {self.shown[requests]}"
            ),
        )

    def custom_reading(self, name: str, answers: tuple[Answer, Answer, str]) -> MetricReading:
        canary_answer, stable_answer, text = answers
        if isinstance(canary_answer, Exception):
            return MetricReading(name, query=text or None, error=str(canary_answer))
        if isinstance(stable_answer, Exception):
            return MetricReading(name, query=text or None, error=str(stable_answer))
        requests = self.fam.requests
        r = self.request
        return MetricReading(
            name,
            canary=_single(canary_answer),
            stable=_single(stable_answer),
            canary_samples=_samples(self.counter(requests, r.canary) if requests else None),
            stable_samples=_samples(self.counter(requests, r.stable) if requests else None),
            query=text,
        )


def readings(
    request: AnalysisRequest,
    queries: Sequence[FamilyQuery],
    answers: Mapping[int, Answer],
    custom: Mapping[str, tuple[Answer, Answer, str]] | None = None,
) -> tuple[MetricReading, ...]:
    """The engine's readings for one request from the answers of the tick's queries.

    ``answers`` maps ``id(query)`` to its samples or the exception it raised; ``custom`` maps a
    custom check name to (canary answer, stable answer, resolved canary query).
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


def _count(buckets: Mapping[float, float]) -> int:
    return _samples(buckets.get(math.inf))


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
