"""Both checkers on objects of a live run made here: the operator (``kopf run``) on the real local
cluster walks a Canary and a PromptRelease through every state (tests/gitops/capture.py, about
30 s), and Argo CD's health and kstatus must tell each state as docs/argocd.md and docs/flux.md
say. Then what Flux sees polling the Deployment and the Canary together during a rollout, the
route rules on the routes the server returned, and the examples and the argocd-cm snippet
against the real API server."""

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.world import ON_A_CLUSTER, ok
from tests.gitops.capture import Recording, capture, promoted
from tests.gitops.checkers import HEALTH, KSTATUS, REQUIRED, kstatus, mismatches
from tests.gitops.ignore import EXAMPLES, has_jq, hiding_problems, published_rules
from tollgate.testing.cluster import ClusterAccess, repo_root

pytestmark = [
    *ON_A_CLUSTER,
    pytest.mark.skipif(not KSTATUS.is_file(), reason="run `make tools` (kstatus)"),
]


@pytest.fixture(scope="module")
def live(tollgate_cluster: ClusterAccess, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return asyncio.run(capture(tollgate_cluster, tmp_path_factory.mktemp("gitops")))


@pytest.fixture
def namespace(tollgate_cluster: ClusterAccess) -> Iterator[str]:
    name = f"gitops-{secrets.token_hex(3)}"
    ok(tollgate_cluster.kubectl("create", "namespace", name))
    yield name
    tollgate_cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_each_live_state_gets_its_verdict_from_both(live: Recording) -> None:
    for kind, states in REQUIRED.items():
        assert {f"{kind.lower()}-{s}" for s in states} <= set(live.objects), kind
    assert mismatches(live.objects) == []


def test_a_flux_check_of_deployment_and_canary_never_passes_mid_rollout(
    live: Recording,
) -> None:
    """A release changes the Deployment, not the Canary, so kstatus calls the Canary Current
    until Tollgate notices the new revision; from then on it is InProgress until promoted. The
    Deployment (minReadySeconds 2, as docs/flux.md advises) is Current only after that, so the
    two, polled together, are never both Current before the promotion."""
    verdicts = iter(kstatus([obj for _t, target, canary in live.pairs for obj in (target, canary)]))
    polls = [  # (seconds since the release, Deployment, Canary, promoted)
        (t, next(verdicts).status, next(verdicts).status, promoted(canary))
        for t, _target, canary in live.pairs
    ]
    noticed = next(i for i, p in enumerate(polls) if p[2] != "Current")
    done = next(i for i, p in enumerate(polls) if p[3])
    assert [p for p in polls[:done] if p[1] == p[2] == "Current"] == []
    assert [p for p in polls[noticed:done] if p[2] == "Current"] == []
    assert polls[-1][1:] == ("Current", "Current", True)
    ready = next(p[0] for p in polls if p[1] == "Current")
    print(f"Tollgate noticed at {polls[noticed][0]:.2f} s, Deployment Current at {ready:.2f} s, "
          f"promoted at {polls[done][0]:.2f} s")  # fmt: skip


def test_the_route_rules_hide_exactly_tollgates_weights_on_live_routes(live: Recording) -> None:
    before, during = live.routes["before"], live.routes["during"]
    for where, rule in published_rules().items():
        if rule.get("jqPathExpressions") and not has_jq():
            continue
        assert hiding_problems(rule, before, during) == [], where


def test_the_example_app_is_accepted_by_the_api_server(
    tollgate_cluster: ClusterAccess, namespace: str
) -> None:
    rendered = ok(tollgate_cluster.kubectl("kustomize", str(EXAMPLES / "app")))
    docs = [d for d in yaml.safe_load_all(rendered) if d["kind"] != "Namespace"]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    applied = tollgate_cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=listing
    )
    assert ok(applied).count("serverside-applied") == len(docs), applied.stdout


def test_the_argocd_cm_snippet_is_a_working_merge_patch(
    tollgate_cluster: ClusterAccess, namespace: str
) -> None:
    """Applied as docs/argocd.md says, to a stand-in argocd-cm (never a real Argo CD's)."""
    ok(tollgate_cluster.kubectl("create", "configmap", "argocd-cm", "-n", namespace))
    snippet: dict[str, Any] = yaml.safe_load(
        (repo_root() / "deploy" / "argocd" / "argocd-cm.yaml").read_text()
    )
    snippet["metadata"]["namespace"] = namespace
    patch = ("patch", "configmap", "argocd-cm", "-n", namespace, "--type", "merge")
    ok(tollgate_cluster.kubectl(*patch, "-p", json.dumps(snippet)))
    stored = json.loads(
        ok(tollgate_cluster.kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "json"))
    )
    for kind in REQUIRED:
        script = (HEALTH / kind / "health.lua").read_text()
        assert stored["data"][f"resource.customizations.health.tollgate.dev_{kind}"] == script
