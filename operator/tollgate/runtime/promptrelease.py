"""One reconcile of a PromptRelease: the same engine as a Canary, with a document for a router.

The stable and candidate versions are resolved (templates from ConfigMaps), the published
document is read (and first published, stable only), the code the prompt needs is looked up,
metrics are read per version on the ``prompt_version`` label, and the engine decides. Actions
are publications: a step is one write of the document, a rollback one write that drops the
candidate, a promotion one write that makes the candidate stable.
"""

import logging
from collections.abc import Sequence
from typing import Any

from tollgate.adapters.kube.client import KubeError
from tollgate.adapters.kube.resources import PROMPTRELEASES
from tollgate.adapters.kube.status import read_status
from tollgate.adapters.metrics.queries import AnalysisRequest
from tollgate.adapters.notify.webhooks import ask_gates
from tollgate.adapters.routers.base import RouterError
from tollgate.adapters.routers.prompts import PromptPublisher, revision_of
from tollgate.adapters.workloads.prompts import TemplateNotFoundError, resolve
from tollgate.api.durations import seconds
from tollgate.api.intents import REQUEST_ANNOTATION, parse_intent
from tollgate.api.metrics import PROMPT_LABEL, PROMPT_VERSION_LABEL
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.validation import SpecProblem, parse
from tollgate.engine import Observations, decide
from tollgate.engine.decision import Action
from tollgate.runtime.dependencies import code_requirement
from tollgate.runtime.recording import (
    Outcome,
    act_in_order,
    read_analysis,
    record_invalid,
    record_then_act,
)
from tollgate.runtime.spec_checks import runtime_problems
from tollgate.runtime.wiring import Wiring
from tollgate.sdk.published import PublishedPrompt, PublishedVersion

log = logging.getLogger("tollgate.prompts")


def _version(spec: PromptReleaseSpec, name: str) -> Any:
    return next(v for v in spec.versions if v.name == name)


async def publisher_for(
    spec: PromptReleaseSpec, namespace: str, name: str, wiring: Wiring
) -> PromptPublisher:
    """The release's publisher; a version whose template is missing is None, with the reason."""
    resolved: list[PublishedVersion | None] = []
    missing: list[str] = []
    for version in (spec.stable, spec.candidate):
        try:
            resolved.append(await resolve(wiring.kube, namespace, _version(spec, version)))
        except TemplateNotFoundError as exc:
            resolved.append(None)
            missing.append(str(exc))
    return PromptPublisher(
        wiring.kube,
        namespace,
        spec.publish.config_map,
        spec.publish.key,
        prompt=spec.prompt,
        release=f"{namespace}/{name}",
        stable=resolved[0],
        candidate=resolved[1],
        missing="; ".join(missing) or None,
    )


def _same_name_problem(
    doc: PublishedPrompt, candidate: PublishedVersion | None
) -> list[SpecProblem]:
    """Metrics tell versions apart by name: a new content needs a new name."""
    if candidate is None:
        return []
    published = doc.versions.get(doc.stable)
    if doc.stable == candidate.name and published != candidate:
        return [
            SpecProblem(
                "spec.candidate",
                f"{candidate.name} is the published stable version with other content; give "
                "the changed template a new version name",
            )
        ]
    return []


async def reconcile_prompt_release(body: dict[str, Any], wiring: Wiring) -> Outcome:
    """Reconcile one PromptRelease object (a full body, freshly read from the API)."""
    meta = body.get("metadata", {})
    namespace, name = meta["namespace"], meta["name"]
    status, _dropped = read_status(body.get("status"))
    now = wiring.now()

    spec, problems = parse(PromptReleaseSpec, body.get("spec"))
    if spec is not None:
        problems += runtime_problems(spec, namespace, wiring.settings)
    if spec is None or problems:
        return await record_invalid(wiring, PROMPTRELEASES, body, problems, now)

    router_error: Exception | None = None
    doc: PublishedPrompt | None = None
    publisher = await publisher_for(spec, namespace, name, wiring)
    try:
        doc = await publisher.ensure()
    except (RouterError, KubeError) as exc:
        router_error = exc
    if doc is not None:
        problems = _same_name_problem(doc, publisher.candidate)
        if problems:
            return await record_invalid(wiring, PROMPTRELEASES, body, problems, now)

    requirement, _ = await code_requirement(wiring.kube, namespace, name, spec, status, now)
    gates = await ask_gates(
        wiring.tenant_calls,
        spec.gates or (),
        status.pending_gates,
        {
            "namespace": namespace,
            "name": name,
            "prompt": spec.prompt,
            "phase": status.phase,
            "weight": status.canary_weight,
            "revision": status.revision,
        },
    )
    stable_name = doc.stable if doc is not None else spec.stable
    analysis = await read_analysis(
        spec,
        status,
        lambda: analysis_request(
            spec, namespace, name, stable_name, wiring.settings.prometheus_url
        ),
        now,
        wiring,
    )
    world = Observations(
        revision=revision_of(publisher.candidate) if publisher.candidate is not None else None,
        stable_revision=revision_of(doc.versions[doc.stable]) if doc is not None else None,
        target_ready=publisher.candidate is not None,
        target_message=publisher.missing,
        weight=publisher.weight_of(doc) if doc is not None else None,
        gates=gates,
        intent=parse_intent((meta.get("annotations") or {}).get(REQUEST_ANNOTATION)),
        requirement=requirement,
    )
    decision = decide(spec, status, analysis.observed(world), now, meta.get("generation"))

    async def promote(_revision: str) -> None:
        await publisher.promote()

    async def act(actions: Sequence[Action]) -> tuple[int, Exception | None]:
        return await act_in_order(actions, body, wiring, now, publisher.set_weight, promote)

    return await record_then_act(wiring, PROMPTRELEASES, body, decision, router_error, now, act)


def analysis_request(
    spec: PromptReleaseSpec, namespace: str, name: str, stable: str, default_address: str
) -> AnalysisRequest:
    """What the metric adapters read for one PromptRelease (also used by ``tollgate analyze``)."""
    assert spec.checks is not None  # asked only when there are checks
    selector = {PROMPT_LABEL: spec.prompt, **(spec.metrics.selector or {})}
    return AnalysisRequest(
        namespace=namespace,
        name=name,
        canary=spec.candidate,
        stable=stable,
        window=seconds(spec.analysis.interval),
        metrics=spec.metrics.model_copy(update={"selector": selector}),
        checks=spec.checks,
        address=spec.metrics.prometheus.address or default_address,
        version_label=spec.metrics.version_label or PROMPT_VERSION_LABEL,
        timeout=seconds(spec.metrics.prometheus.timeout),
    )
