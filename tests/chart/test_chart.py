"""charts/tollgate: lint, golden renders, its CRDs equal crds/, and the values schema refuses
what it does not know. (Installing it on the real cluster: tests/cluster/test_chart_install.py.)

Regenerate the goldens after an intended change: TOLLGATE_UPDATE_GOLDEN=1 pytest tests/chart
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollgate.testing.cluster import repo_root

CHART = repo_root() / "charts" / "tollgate"
GOLDEN = Path(__file__).parent / "golden"
HELM = repo_root() / ".tools" / "bin" / "helm"
VALUES = {
    "default": [],
    "namespaced": ["watch.namespaces={shop,support}"],
    "hardened": [
        "networkPolicy.enabled=true",
        "prometheus.allowed={http://prom.team:9090}",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.team=sre",
    ],
    "ha": ["replicas=2"],
}

pytestmark = pytest.mark.skipif(not HELM.is_file(), reason="no helm: run `make tools`")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


def render(settings: list[str]) -> str:
    done = helm("template", "tollgate", str(CHART), "--namespace", "tollgate-system",
                *[f"--set={s}" for s in settings])  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", list(VALUES))
def test_the_chart_lints_strictly(name: str) -> None:
    done = helm("lint", "--strict", str(CHART), *[f"--set={s}" for s in VALUES[name]])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", list(VALUES))
def test_the_render_matches_its_golden(name: str) -> None:
    rendered = render(VALUES[name])
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("TOLLGATE_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"render of {name} changed: see {golden}"


def by_name(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d for d in documents if d.get("kind") == "CustomResourceDefinition"
    }


def test_the_chart_s_crds_are_the_generated_ones_kept_on_uninstall() -> None:
    shipped = by_name(
        [yaml.safe_load(p.read_text()) for p in (repo_root() / "crds").glob("**/*.yaml")]
    )
    charted = by_name([d for d in yaml.safe_load_all(render([])) if d])
    assert set(charted) == set(shipped)
    for name, crd in charted.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["spec"] == shipped[name]["spec"]
    assert not by_name([d for d in yaml.safe_load_all(render(["crds.install=false"])) if d])
    standalone = by_name([d for d in yaml.safe_load_all(render(["peering.enabled=false"])) if d])
    assert set(standalone) == set(shipped) - {n for n in shipped if n.endswith(".kopf.dev")}


@pytest.mark.parametrize(
    "setting",
    ["unknown=1", "image.unknown=x", "replicas=0", "replicas=6", "watch.namespaces={Not_A_Name}",
     "prometheus.url=http://user@host", "replicas=2,peering.enabled=false", "peering.lifetime=5",
     "metrics.port=8080"],
)  # fmt: skip
def test_the_values_schema_refuses_what_it_does_not_know(setting: str) -> None:
    done = helm("template", "tollgate", str(CHART), f"--set={setting}")
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr


def test_the_operator_pod_meets_the_restricted_pod_security_profile() -> None:
    (deployment,) = [d for d in yaml.safe_load_all(render([])) if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    rules = [r for d in yaml.safe_load_all(render([])) if d and "rules" in d for r in d["rules"]]
    assert not [r for r in rules if "*" in r["verbs"] or "*" in r["resources"]]
    assert not [r for r in rules if "secrets" in r["resources"]]
