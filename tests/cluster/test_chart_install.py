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
import yaml

from tests.cluster.world import ON_A_CLUSTER
from tollgate.testing.cluster import ClusterAccess, prometheus_operator_crd, repo_root

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


def test_the_service_monitor_is_admitted_by_the_prometheus_operator_s_crd(
    tollgate_cluster: ClusterAccess,
) -> None:
    """The ServiceMonitor the chart renders, checked by the Prometheus operator's own CRD
    schema on the real server, and aimed at the metrics Service's port."""
    crd = prometheus_operator_crd("monitoring.coreos.com_servicemonitors.yaml")
    applied = tollgate_cluster.kubectl("apply", "--server-side", "-f", str(crd))
    assert applied.returncode == 0, applied.stderr
    established = tollgate_cluster.kubectl("wait", "--for=condition=Established",
                                           "crd/servicemonitors.monitoring.coreos.com")  # fmt: skip
    assert established.returncode == 0, established.stderr
    namespace = f"monitor-{secrets.token_hex(3)}"
    settings = ("--set", "metrics.serviceMonitor.enabled=true", "--set", "crds.install=false")
    chart = str(repo_root() / "charts" / "tollgate")
    rendered = helm(tollgate_cluster, "template", "tollgate", chart, "--namespace", namespace,
                    *settings)  # fmt: skip
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    wanted = [d for d in documents if d["kind"] in ("Service", "ServiceMonitor")]
    assert [d["kind"] for d in wanted] == ["Service", "ServiceMonitor"]
    service, monitor = wanted
    assert monitor["spec"]["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    created = tollgate_cluster.kubectl("create", "namespace", namespace)
    assert created.returncode == 0, created.stderr
    try:
        listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": wanted})
        done = tollgate_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                                        stdin=listed)  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        tollgate_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
