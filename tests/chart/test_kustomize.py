"""deploy/ installs with ``kubectl apply -k`` what charts/tollgate installs with Helm.

.ci/deploy_manifests.py writes deploy/ from the chart (``make deploy``); these tests build it
with the kubectl ``make tools`` builds (its kustomize) and compare each object with ``helm
template``: the same kinds, namespaces, names and content, once Helm's own metadata is removed
from the chart's side. The base adds the Namespace that ``helm install --create-namespace``
would create. The overlays docs/install.md shows are built as written there, and the real
server accepts the base (a server-side dry run).
"""

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.chart.test_chart import CHART, HELM, VALUES, helm
from tests.cluster.world import ON_A_CLUSTER
from tollgate.testing.cluster import ClusterAccess, has_kubectl, kubectl, repo_root

DEPLOY = repo_root() / "deploy"
NAMESPACE = "tollgate-system"
Key = tuple[str, str, str]
Objects = dict[Key, dict[str, Any]]
Test = TypeVar("Test", bound=Callable[..., object])
HELM_ANNOTATIONS = {"helm.sh/resource-policy"}  # the CRDs' keep, which only Helm reads
# what the overlay in docs/install.md ("With kustomize") sets
DOCUMENTED_VALUES = ["image.repository=registry.example/tollgate", "image.tag=1.2.3",
                     "watch.namespaces={billing,search}",
                     "prometheus.url=http://prometheus.monitoring.svc:9090"]  # fmt: skip

needs_tools = pytest.mark.skipif(
    not HELM.is_file() or not has_kubectl(), reason="no helm or kubectl: run `make tools`"
)


def on_a_cluster(test: Test) -> Test:
    for mark in ON_A_CLUSTER:
        test = mark(test)
    return test


def kustomize(directory: Path) -> str:
    done = subprocess.run([kubectl(), "kustomize", str(directory)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects(text: str) -> Objects:
    found = {}
    for obj in yaml.safe_load_all(text):
        if obj:
            meta = obj["metadata"]
            found[obj["kind"], meta.get("namespace", ""), meta["name"]] = obj
    return found


def helm_label(key: str, value: str) -> bool:
    return key == "helm.sh/chart" or (key, value) == ("app.kubernetes.io/managed-by", "Helm")


def without_helm_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj["metadata"])
    labels = {k: v for k, v in meta.pop("labels", {}).items() if not helm_label(k, v)}
    notes = {k: v for k, v in meta.pop("annotations", {}).items() if k not in HELM_ANNOTATIONS}
    meta |= {"labels": labels} if labels else {}
    meta |= {"annotations": notes} if notes else {}
    return {**obj, "metadata": meta}


def the_chart(settings: list[str], namespace: str = NAMESPACE) -> Objects:
    done = helm("template", "tollgate", str(CHART), "--namespace", namespace,
                *[f"--set={s}" for s in settings])  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {key: without_helm_metadata(obj) for key, obj in objects(done.stdout).items()}


def built(directory: Path, namespace: str = NAMESPACE) -> Objects:
    """The objects kustomize builds, but for the Namespace, which must be a bare one."""
    text = kustomize(directory)
    assert "helm.sh/" not in text
    assert "managed-by: Helm" not in text
    found = objects(text)
    made = found.pop(("Namespace", "", namespace))
    assert made == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    return found


def same_objects(kustomized: Objects, charted: Objects) -> None:
    assert sorted(kustomized) == sorted(charted)
    for key, obj in charted.items():
        assert kustomized[key] == obj, f"{key} differs from the chart's"


def test_deploy_is_what_the_script_writes_from_the_chart() -> None:
    done = subprocess.run(
        [sys.executable, str(repo_root() / ".ci" / "deploy_manifests.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@needs_tools
@pytest.mark.parametrize(
    ("directory", "values"),
    [("", "default"), ("base", "default"), ("overlays/namespaced", "namespaced")],
)
def test_kustomize_builds_the_objects_the_chart_renders(directory: str, values: str) -> None:
    same_objects(built(DEPLOY / directory), the_chart(VALUES[values]))


def documented_overlay(into: Path) -> Path:
    """The overlay docs/install.md shows, written as it says: ``my-tollgate/`` next to a
    checkout of Tollgate (this one, linked)."""
    (into / "tollgate").symlink_to(repo_root())
    section = (repo_root() / "docs" / "install.md").read_text().split("## With kustomize")[1]
    for path, text in re.findall(r"```yaml\n# (my-tollgate/\S+).*?\n(.*?)```", section, re.S):
        files = {path: text}
        if "/billing/" in path:  # the docs show billing's and say search's is the same
            files[path.replace("billing", "search")] = text.replace("billing", "search")
        for name, content in files.items():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_text(content)
    return into / "my-tollgate"


def args_in_any_order(found: Objects) -> Objects:
    (container,) = found["Deployment", NAMESPACE, "tollgate"]["spec"]["template"]["spec"][
        "containers"
    ]
    container["args"] = sorted(container["args"])
    return found


@needs_tools
def test_the_documented_overlay_sets_the_image_prometheus_and_the_watched_namespaces(
    tmp_path: Path,
) -> None:
    """The chart with the same values, but for where the overlay's arguments go (appended:
    ``tollgate run`` takes them in any order)."""
    kustomized = args_in_any_order(built(documented_overlay(tmp_path)))
    same_objects(kustomized, args_in_any_order(the_chart(DOCUMENTED_VALUES)))


@needs_tools
def test_an_overlay_of_the_base_moves_the_operator_to_another_namespace(tmp_path: Path) -> None:
    (tmp_path / "tollgate").symlink_to(repo_root())
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "kustomization.yaml").write_text(
        "namespace: ops\nresources:\n  - ../tollgate/deploy/base\n"
    )
    same_objects(built(tmp_path / "ops", namespace="ops"), the_chart([], namespace="ops"))


@needs_tools
@on_a_cluster
def test_the_server_accepts_kubectl_apply_k(tollgate_cluster: ClusterAccess) -> None:
    """A dry run: a real apply would fight other tests over the CRDs and tollgate-system. The
    server refuses even a dry run in a namespace that does not exist, so tollgate-system is
    made when missing, and left, as tests/cluster/test_chart_rbac.py does."""
    made = tollgate_cluster.kubectl("create", "namespace", NAMESPACE)
    assert made.returncode == 0 or "AlreadyExists" in made.stderr, made.stderr
    done = tollgate_cluster.kubectl("apply", "-k", str(DEPLOY), "--server-side", "--dry-run=server")
    assert done.returncode == 0, done.stderr
    applied = done.stdout.splitlines()
    assert len(applied) == len(objects(kustomize(DEPLOY))), applied
    assert all(line.endswith("serverside-applied (server dry run)") for line in applied), applied
