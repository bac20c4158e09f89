"""The health checks and kstatus on objects recorded from a live run (tests/gitops/objects,
re-recorded by ``python -m tests.gitops.record``), so every state's verdict is tested where no
cluster runs; and what ships for Argo CD and Flux (deploy/argocd, examples/gitops) kept whole.
test_live.py repeats the verdicts on objects of the same run it makes."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from lupa.lua51 import LuaError

from tests.gitops.checkers import (
    HEALTH,
    KSTATUS,
    REQUIRED,
    argo_health,
    argo_mismatches,
    kstatus,
    kstatus_mismatches,
)
from tests.gitops.ignore import EXAMPLES, documents, has_jq, hiding_problems, published_rules
from tollgate.api.canary import CanarySpec
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.api.validation import parse
from tollgate.testing.cluster import repo_root

OBJECTS = Path(__file__).resolve().parent / "objects"
RECORDED: dict[str, dict[str, Any]] = {
    p.stem: json.loads(p.read_text())
    for p in sorted(OBJECTS.glob("*.json"))
    if p.stem.split("-", 1)[0] in ("canary", "promptrelease")
}
ROUTES: dict[str, dict[str, Any]] = {
    p.stem: json.loads(p.read_text()) for p in sorted(OBJECTS.glob("httproute-*.json"))
}
needs_kstatus = pytest.mark.skipif(not KSTATUS.is_file(), reason="run `make tools` (kstatus)")


def edited(name: str, **status: Any) -> dict[str, Any]:
    """A recorded object with some status fields replaced (for states a live run rarely shows)."""
    obj = copy.deepcopy(RECORDED[name])
    obj["status"].update(status)
    return obj


def with_condition(obj: dict[str, Any], kind: str, **fields: str) -> dict[str, Any]:
    for c in obj["status"]["conditions"]:
        if c["type"] == kind:
            c.update(fields)
    return obj


def test_every_state_was_recorded_from_the_server() -> None:
    for kind, states in REQUIRED.items():
        assert {f"{kind.lower()}-{s}" for s in states} <= set(RECORDED), kind
    for name, obj in RECORDED.items():
        assert obj["metadata"].get("uid"), name  # the server's, not written by hand
        assert obj["metadata"]["generation"] >= 1, name


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_argo_cd_health_of_each_recorded_state(name: str) -> None:
    assert argo_mismatches(name, RECORDED[name]) == []


@needs_kstatus
def test_kstatus_of_each_recorded_state() -> None:
    assert kstatus_mismatches(RECORDED) == []


@needs_kstatus
def test_states_a_live_run_rarely_shows() -> None:
    failed = with_condition(
        edited("canary-promoted"), "Ready", status="False", reason="ReconcileFailed",
        message="HTTPRoute app: 503 from the API server",
    )  # fmt: skip
    suspended = copy.deepcopy(RECORDED["canary-promoted"])
    suspended["spec"]["suspend"] = True
    restored = edited("canary-stalled", phase="Paused", canaryWeight=0, currentStep=0)
    deleted = copy.deepcopy(RECORDED["canary-promoted"])
    deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cases = {  # object: (Argo CD, kstatus)
        "reconcile failed": (failed, ("Progressing", "InProgress")),
        "suspended when Succeeded": (suspended, ("Suspended", "Current")),
        "invalid spec past its grace (paused at 0%)": (restored, ("Degraded", "Failed")),
        "being deleted": (deleted, (None, "Terminating")),  # Argo CD decides before the check
    }
    verdicts = kstatus([obj for obj, _ in cases.values()])
    for (what, (obj, (argo, flux))), answer in zip(cases.items(), verdicts, strict=True):
        assert answer.status == flux, what
        if argo is not None:
            assert argo_health(obj).status == argo, what
    assert argo_health(failed).message == "HTTPRoute app: 503 from the API server"


def test_a_check_sees_only_the_libraries_argo_cd_opens(tmp_path: Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text('return {status = "Healthy", message = string.format("%d", 1)}')
    with pytest.raises(LuaError, match="string"):
        argo_health(RECORDED["canary-promoted"], script)


def test_the_argocd_cm_snippet_carries_the_shipped_scripts() -> None:
    (config,) = documents(repo_root() / "deploy" / "argocd" / "argocd-cm.yaml")
    assert config["kind"] == "ConfigMap"
    assert config["metadata"]["name"] == "argocd-cm"
    scripts = {kind: (HEALTH / kind / "health.lua").read_text() for kind in REQUIRED}
    assert config["data"] == {
        f"resource.customizations.health.tollgate.dev_{kind}": text
        for kind, text in scripts.items()
    }


def test_every_published_route_rule_hides_exactly_tollgates_weights() -> None:
    rules = published_rules()
    assert len(rules) >= 4, rules  # jq and pointers in docs/argocd.md, each example, docs/flux.md
    before, during = ROUTES["httproute-before"], ROUTES["httproute-during"]
    for where, rule in rules.items():
        if rule.get("jqPathExpressions") and not has_jq():
            continue
        assert hiding_problems(rule, before, during) == [], where


def app_documents() -> list[dict[str, Any]]:
    """The Kubernetes objects of examples/gitops/app (its kustomization.yaml aside)."""
    paths = sorted((EXAMPLES / "app").glob("*.yaml"))
    return [d for p in paths if p.name != "kustomization.yaml" for d in documents(p)]


def test_the_examples_hold_together() -> None:
    app = {(d["kind"], d["metadata"]["name"]) for d in app_documents()}
    (kustomization,) = documents(EXAMPLES / "app" / "kustomization.yaml")
    listed = {"kustomization.yaml", *kustomization["resources"]}
    assert {p.name for p in (EXAMPLES / "app").glob("*.yaml")} == listed
    flux = [d for p in (EXAMPLES / "flux").glob("*.yaml") for d in documents(p)]
    steps = {d["metadata"]["name"]: d["spec"] for d in flux if d["kind"] == "Kustomization"}
    for name, spec in steps.items():  # both sources are laid out as this repository
        assert {d["name"] for d in spec.get("dependsOn") or ()} <= set(steps), name
        assert (repo_root() / spec["path"]).is_dir(), name
    assert [d["name"] for d in steps["checkout"]["dependsOn"]] == ["tollgate"]
    assert [d["name"] for d in steps["tollgate"]["dependsOn"]] == ["tollgate-crds"]
    checked = {(c["kind"], c["name"]) for c in steps["checkout"]["healthChecks"]}
    assert checked == {a for a in app if a[0] in ("Deployment", "Canary", "PromptRelease")}
    (argo,) = documents(EXAMPLES / "argocd" / "checkout.yaml")
    assert (repo_root() / argo["spec"]["source"]["path"]).is_dir()
    assert "RespectIgnoreDifferences=true" in argo["spec"]["syncPolicy"]["syncOptions"]
    (target,) = documents(EXAMPLES / "app" / "deployment.yaml")
    assert target["spec"]["minReadySeconds"] > 0  # docs/flux.md, "Why the Deployment too"
    (route,) = documents(EXAMPLES / "app" / "httproute.yaml")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "checkout-primary", "port": 80, "weight": 100},
        {"name": "checkout-canary", "port": 80, "weight": 0},
    ]


def test_the_example_rollouts_pass_tollgates_validation() -> None:
    models: dict[str, type[RolloutSpec]] = {
        "Canary": CanarySpec,
        "PromptRelease": PromptReleaseSpec,
    }
    rollouts = [d for d in app_documents() if d["kind"] in models]
    assert sorted(d["kind"] for d in rollouts) == ["Canary", "PromptRelease"]
    for doc in rollouts:
        spec, problems = parse(models[doc["kind"]], doc["spec"])
        assert spec is not None, doc["kind"]
        assert problems == [], doc["kind"]
