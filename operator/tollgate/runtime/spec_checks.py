"""Spec rules that need more than the API models know: PromQL, presets and the tenancy rules.

They run before the engine sees a spec, next to :mod:`tollgate.api.validation`, and report in
the same form (a field path and what is wrong). The tenancy rules (docs/security.md) need the
operator's settings: a spec may name only the Prometheus addresses and webhook hosts the
operator allows, and its custom queries may read only its own namespace's series.
"""

import httpx
import promql_parser

from tollgate.adapters.metrics.families import families_for
from tollgate.adapters.metrics.queries import AnalysisRequest, render_custom
from tollgate.api.rollout import RolloutSpec
from tollgate.api.validation import SpecProblem
from tollgate.runtime.settings import Settings


def custom_query_problems(
    spec: RolloutSpec, namespace: str, settings: Settings | None = None
) -> list[SpecProblem]:
    """Custom PromQL templates must parse once their placeholders are filled, and (with the
    operator's settings) every series they select must be of the object's namespace."""
    out: list[SpecProblem] = []
    if spec.checks is None:
        return out
    probe = AnalysisRequest(
        namespace=namespace,
        name="probe",
        canary="probe",
        stable="probe-primary",
        window=30,
        metrics=spec.metrics,
        checks=spec.checks,
        address="http://probe",
    )
    for i, check in enumerate(spec.checks.custom or ()):
        text = render_custom(check.query, probe, probe.canary)
        where = f"spec.checks.custom[{i}].query"
        try:
            expr = promql_parser.parse(text)
        except ValueError as exc:
            out.append(SpecProblem(where, f"invalid PromQL: {exc}"))
            continue
        if settings is not None and not settings.cross_namespace_queries:
            out += [SpecProblem(where, why) for why in _foreign_selectors(expr, namespace)]
    return out


def _foreign_selectors(expr: promql_parser.Expr, namespace: str) -> list[str]:
    """Why each series selector of ``expr`` may read outside ``namespace`` (none: it cannot)."""
    found: list[str] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers
            pinned = any(
                m.name == "namespace"
                and m.op == promql_parser.MatchOp.Equal
                and m.value == namespace
                for m in matchers.matchers
            )
            if matchers.or_matchers or not pinned:
                found.append(
                    f'selector {node.name or "{...}"} does not pin namespace="{namespace}": '
                    "use {{ selector }} in every selector (queries read only their own "
                    "namespace unless the operator allows crossNamespaceQueries)"
                )
        return True

    promql_parser.walk(expr, visit)
    return found


def endpoint_problems(spec: RolloutSpec, settings: Settings) -> list[SpecProblem]:
    """Prometheus addresses and webhook URLs outside the operator's allow-lists."""
    out: list[SpecProblem] = []
    address = spec.metrics.prometheus.address
    if address is not None:
        why = prometheus_refusal(address, settings)
        if why:
            out.append(SpecProblem("spec.metrics.prometheus.address", why))
    for i, gate in enumerate(spec.gates or ()):
        if gate.webhook is not None:
            why = webhook_refusal(str(gate.webhook.url), settings)
            if why:
                out.append(SpecProblem(f"spec.gates[{i}].webhook.url", why))
    for i, target in enumerate(spec.notifications or ()):
        url = getattr(target, "url", None)
        if url is not None:
            why = webhook_refusal(str(url), settings)
            if why:
                out.append(SpecProblem(f"spec.notifications[{i}].url", why))
    return out


def _base(url: str) -> str | None:
    """scheme://host:port/path of an http(s) URL with nothing else in it; None otherwise."""
    if any(c in url for c in "?#@") or any(c.isspace() for c in url):
        return None
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host.lower()}:{port}{parsed.path.rstrip('/')}"


def prometheus_refusal(address: str, settings: Settings) -> str | None:
    """Why the operator will not query ``address``, or None when it may."""
    base = _base(address)
    if base is None:
        return "must be a plain http(s) base URL (no user, query or fragment)"
    allowed = {_base(a) for a in (settings.prometheus_url, *settings.allowed_prometheus)}
    if base in allowed:
        return None
    return (
        "not an address this operator may query (allowed: "
        f"{', '.join(sorted(a for a in allowed if a))}); ask its administrator to add it "
        "to TOLLGATE_ALLOWED_PROMETHEUS"
    )


def webhook_refusal(url: str, settings: Settings) -> str | None:
    """Why the operator will not call ``url``, or None when it may."""
    if _base(url) is None:
        return "must be a plain http(s) URL (no user, query or fragment)"
    host = (httpx.URL(url).host or "").lower()
    for pattern in settings.allowed_webhook_hosts:
        pattern = pattern.lower()
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return None
    allowed = ", ".join(settings.allowed_webhook_hosts) or "none"
    return (
        f"host {host} is not one this operator may call (allowed: {allowed}); ask its "
        "administrator to add it to TOLLGATE_ALLOWED_WEBHOOK_HOSTS"
    )


def preset_problems(spec: RolloutSpec) -> list[SpecProblem]:
    """Every built-in check must have the metrics it needs in the chosen preset."""
    out: list[SpecProblem] = []
    c = spec.checks
    if c is None:
        return out
    fam = families_for(spec.metrics.preset, spec.metrics.names)
    needs = {
        "latency": (c.latency, [("requestDuration", fam.duration)]),
        "ttft": (c.ttft, [("ttft", fam.ttft)]),
        "errorRate": (c.error_rate, [("requests", fam.requests), ("errors", fam.errors)]),
        "errorBudget": (c.error_budget, [("requests", fam.requests), ("errors", fam.errors)]),
        "costPerRequest": (
            c.cost_per_request,
            [
                ("requests", fam.requests),
                ("inputTokens", fam.input_tokens),
                ("outputTokens", fam.output_tokens),
            ],
        ),
    }
    for check, (present, families) in needs.items():
        if present is None:
            continue
        for name, family in families:
            if family is None:
                out.append(
                    SpecProblem(
                        f"spec.checks.{check}",
                        f"preset {spec.metrics.preset.value} has no {name} metric; "
                        f"set spec.metrics.names.{name}",
                    )
                )
    return out


def runtime_problems(
    spec: RolloutSpec, namespace: str, settings: Settings | None = None
) -> list[SpecProblem]:
    """All checks of this module; the tenancy rules only with the operator's settings."""
    out = [*custom_query_problems(spec, namespace, settings), *preset_problems(spec)]
    if settings is not None:
        out += endpoint_problems(spec, settings)
    return out
