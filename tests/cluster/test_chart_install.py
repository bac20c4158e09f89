"""``helm install``, ``helm upgrade`` and ``helm uninstall`` of charts/tollgate on the real
local control plane. (kwok's pods become Ready without pulling the image, so ``--wait`` means
what it means on a real cluster for everything but the container itself.)

The CRDs stay out of these releases (``crds.install=false``): the session installed them
server-side already, and Helm refuses to adopt objects another manager created.
"""

import json
import secrets
import subprocess

import pytest

from tests.cluster.world import ON_A_CLUSTER
from tollgate.testing.cluster import ClusterAccess, repo_root

pytestmark = ON_A_CLUSTER
HELM = repo_root() / ".tools" / "bin" / "helm"


def helm(access: ClusterAccess, *args: str) -> str:
    if not HELM.is_file():
        pytest.skip("no helm: run `make tools`")
    done = subprocess.run(
        [str(HELM), f"--kubeconfig={access.kubeconfig}", *args],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def get(access: ClusterAccess, namespace: str, *what: str) -> dict[str, object]:
    done = access.kubectl("get", "-n", namespace, *what, "-o", "json")
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_install_upgrade_uninstall(tollgate_cluster: ClusterAccess) -> None:
    namespace, release = f"chart-{secrets.token_hex(3)}", f"tg{secrets.token_hex(2)}"
    chart = str(repo_root() / "charts" / "tollgate")
    common = ("--namespace", namespace, "--set", "crds.install=false", "--wait", "--timeout=120s")
    try:
        helm(tollgate_cluster, "install", release, chart, "--create-namespace", *common)
        deployment = get(tollgate_cluster, namespace, "deployment", release)
        assert deployment["status"]["availableReplicas"] == 1  # type: ignore[index]
        upgrade = ("--set", "prometheus.url=http://prometheus.other:9090")
        helm(tollgate_cluster, "upgrade", release, chart, *common, *upgrade)
        deployment = get(tollgate_cluster, namespace, "deployment", release)
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
        assert {"name": "TOLLGATE_PROMETHEUS_URL", "value": "http://prometheus.other:9090"} in env
        assert deployment["status"]["availableReplicas"] == 1  # type: ignore[index]
        pdb = get(tollgate_cluster, namespace, "pdb", release)
        assert pdb["spec"]["maxUnavailable"] == 1  # type: ignore[index]
        helm(tollgate_cluster, "uninstall", release, "--namespace", namespace, "--wait")
        instance = f"app.kubernetes.io/instance={release}"
        left = tollgate_cluster.kubectl(
            "get", "-n", namespace, "deployment,serviceaccount,pdb", "-l", instance, "-o", "name"
        )
        assert left.stdout.strip() == ""
        bindings = tollgate_cluster.kubectl("get", "clusterrolebinding", release)
        assert bindings.returncode != 0  # cluster-scoped objects go with the release too
        crds = tollgate_cluster.kubectl("get", "crd", "canaries.tollgate.dev")
        assert crds.returncode == 0
    finally:
        tollgate_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
