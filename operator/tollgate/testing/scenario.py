"""Objects of typical rollouts (a Deployment, an HTTPRoute to its primary, a Canary; a
PromptRelease) and readers of what the operator did, shared by integration tests, the demo and
the benchmarks."""

from typing import Any, Protocol

from tollgate.api.status import RolloutStatus
from tollgate.sdk.published import PublishedPrompt
from tollgate.sdk.published import parse as parse_published


class ObjectApi(Protocol):
    """What the helpers below need of an API: the in-memory test server (``KubeApiServer``)
    or a real cluster (``tollgate.testing.clusterapi.ClusterApi``)."""

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def patch(self, resource: str, namespace: str | None, name: str, patch: Any) -> Any: ...


NS = "default"
CANARIES = "canaries.tollgate.dev"
ROUTES = "httproutes.gateway.networking.k8s.io"
DEPLOYMENTS = "deployments.apps"
PROMPTS = "promptreleases.tollgate.dev"
CONFIGMAPS = "configmaps"


def fast_analysis(failure_limit: int = 0) -> dict[str, Any]:
    """Analysis for rollouts watched in real time: a 3 s interval, steps of 10% up to 30%."""
    return {
        "interval": "3s",
        "stepWeight": 10,
        "maxWeight": 30,
        "failureLimit": failure_limit,
        "minSamples": 20,
        "progressDeadline": "2m",
    }


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # pullable on any cluster (kwok's pods pull nothing)


def container(version: str) -> dict[str, Any]:
    """The app's container at ``version``: a new version is a new pod template (an env value),
    on an image every cluster can run."""
    return {"name": "app", "image": PAUSE_IMAGE, "env": [{"name": "VERSION", "value": version}]}


def version_of(deployment: dict[str, Any]) -> str | None:
    """The version a Deployment's pod template runs (see :func:`container`)."""
    first = deployment["spec"]["template"]["spec"]["containers"][0]
    return next((e["value"] for e in first.get("env") or () if e["name"] == "VERSION"), None)


def deployment(name: str, image: str, replicas: int = 1, namespace: str = NS) -> dict[str, Any]:
    """A Deployment whose pods are labelled app=<name>."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container(image)]},
            },
        },
    }


def http_route(name: str, namespace: str = NS) -> dict[str, Any]:
    """An HTTPRoute sending all traffic to <name>-primary, as a user writes it."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": f"{name}-primary", "port": 80}]}],
        },
    }


def canary(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    """A Canary of Deployment <name> behind HTTPRoute <name>, with ``spec`` merged on top."""
    body: dict[str, Any] = {
        "targetRef": {"name": name},
        "service": {"port": 80},
        "router": {"httpRoute": {"name": name}},
        **spec,
    }
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def release(api: ObjectApi, name: str, image: str, namespace: str = NS) -> None:
    """What GitOps does: a new image in the Deployment's pod template."""
    api.patch(
        DEPLOYMENTS,
        namespace,
        name,
        {"spec": {"template": {"spec": {"containers": [container(image)]}}}},
    )


def route_weight(api: ObjectApi, name: str, namespace: str = NS) -> int:
    """The canary percent the HTTPRoute carries now (proportions, as Gateway API reads them)."""
    found = api.get(ROUTES, namespace, name)
    if found is None:
        return 0
    refs: dict[str, int] = {
        r["name"]: int(r.get("weight", 1)) for r in found["spec"]["rules"][0]["backendRefs"]
    }
    total = refs.get(f"{name}-primary", 0) + refs.get(f"{name}-canary", 0)
    return round(100 * refs.get(f"{name}-canary", 0) / total) if total else 0


def rollout_status(
    api: ObjectApi, name: str, namespace: str = NS, resource: str = CANARIES
) -> RolloutStatus:
    """The Canary's (or, with ``resource=PROMPTS``, the PromptRelease's) recorded status."""
    found = api.get(resource, namespace, name) or {}
    return RolloutStatus.model_validate(found.get("status") or {})


def failing_checks(status: RolloutStatus) -> set[str]:
    """Checks that judged the new version bad: a failed threshold or a rejecting sequential test
    (a test of a check's absolute limit, ``<check>.max``, counts for its check)."""
    failed = {c.name for c in status.checks if c.verdict.value == "Fail"}
    tests = {e.name.removesuffix(".max") for e in status.evidence if e.e_value >= e.boundary}
    return failed | tests


TEMPLATE = "You answer questions about {product}.\nQuestion: {question}\n"


def prompt_version(name: str, **parameters: Any) -> dict[str, Any]:
    """A version of the test prompt; ``parameters`` also drive the simulated model."""
    return {
        "name": name,
        "model": "sim-1",
        "template": f"[{name}] {TEMPLATE}",
        "parameters": {"temperature": 0.2, **parameters},
    }


def prompt_release(
    name: str,
    spec: dict[str, Any],
    versions: list[dict[str, Any]] | None = None,
    namespace: str = NS,
) -> dict[str, Any]:
    """A PromptRelease of prompt <name> from v1 to v2, published in ConfigMap <name>-prompts."""
    body: dict[str, Any] = {
        "prompt": name,
        "versions": versions or [prompt_version("v1"), prompt_version("v2")],
        "stable": "v1",
        "candidate": "v2",
        "publish": {"configMap": f"{name}-prompts"},
        **spec,
    }
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "PromptRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def published(api: ObjectApi, name: str, namespace: str = NS) -> PublishedPrompt | None:
    """The document apps read for PromptRelease <name> (default ConfigMap and key)."""
    found = api.get(CONFIGMAPS, namespace, f"{name}-prompts")
    text = ((found or {}).get("data") or {}).get("prompts.json")
    return None if text is None else parse_published(text)


def prompt_weight(api: ObjectApi, name: str, namespace: str = NS) -> int:
    """The candidate's published percent (0 when nothing or no candidate is published)."""
    doc = published(api, name, namespace)
    return 0 if doc is None else doc.candidate_weight
