"""The chart's RBAC, proven on the real API server rather than assumed.

``helm template`` renders the chart's ServiceAccount and roles, they are applied to the local
control plane, and the operator runs as the chart runs it (``tollgate run --peering``: its
keep-alives need their grants too) with a TokenRequest token of that
ServiceAccount (and nothing else: no client certificate) through a rollout. Not one request may
be refused. The negative side is asked of the same token: no Secrets, nothing outside the
watched namespaces in namespaced mode, no edits of its own RBAC.
"""

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.world import FAST, ON_A_CLUSTER, PROMOTED_WEIGHTS, World, operated
from tollgate.api.status import Phase
from tollgate.testing.cluster import ClusterAccess, repo_root
from tollgate.testing.clusterapi import ClusterApi

pytestmark = ON_A_CLUSTER
RELEASE_NAMESPACE = "tollgate-system"


def helm_template(name: str, *settings: str) -> list[dict[str, Any]]:
    helm = repo_root() / ".tools" / "bin" / "helm"
    if not helm.is_file():
        pytest.skip("no helm: run `make tools`")
    command = [str(helm), "template", name, str(repo_root() / "charts" / "tollgate"),
               "--namespace", RELEASE_NAMESPACE, *[f"--set={s}" for s in settings]]  # fmt: skip
    rendered = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


@pytest.fixture(scope="module")
def release_namespace(tollgate_cluster: ClusterAccess) -> str:
    with ClusterApi(tollgate_cluster) as api:
        if api.get("namespaces", None, RELEASE_NAMESPACE) is None:
            body = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": RELEASE_NAMESPACE}}  # fmt: skip
            api.create("namespaces", body)
    return RELEASE_NAMESPACE


def install_rbac(access: ClusterAccess, name: str, *settings: str) -> None:
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    objects = [d for d in helm_template(name, *settings) if d["kind"] in kinds]
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    done = access.kubectl("apply", "--server-side", "-f", "-", stdin=listed)
    assert done.returncode == 0, done.stderr


def token_kubeconfig(access: ClusterAccess, name: str, path: Path) -> tuple[Path, str]:
    """A kubeconfig holding only a TokenRequest token of ServiceAccount ``name``."""
    with ClusterApi(access) as api:
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        issued = api.create_subresource(
            "serviceaccounts", RELEASE_NAMESPACE, name, "token", request
        )
    token: str = issued["status"]["token"]
    cluster = {"server": access.server, "certificate-authority": str(access.ca_file)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path, token


def refused(access: ClusterAccess, token: str, path: str, method: str = "GET") -> bool:
    with access.client(token=token) as client:
        return client.request(method, path, json={} if method != "GET" else None).status_code == 403


def forbidden_lines(world: World) -> list[str]:
    text = world.operator.log.read_text()
    return [line for line in text.splitlines() if "403" in line or "orbidden" in line]


@pytest.fixture
def cluster_mode(
    tollgate_cluster: ClusterAccess, release_namespace: str, tmp_path: Path
) -> Iterator[tuple[Path, str]]:
    name = f"tg-{secrets.token_hex(2)}"
    install_rbac(tollgate_cluster, name)
    yield token_kubeconfig(tollgate_cluster, name, tmp_path / "sa.kubeconfig")
    for kind in ("clusterrolebinding", "clusterrole"):
        tollgate_cluster.kubectl("delete", kind, name, f"{name}-discovery", "--ignore-not-found")


async def test_the_chart_s_cluster_role_carries_a_rollout_with_no_refusal(
    tollgate_cluster: ClusterAccess, cluster_mode: tuple[Path, str], tmp_path: Path
) -> None:
    kubeconfig, token = cluster_mode
    async with operated(
        tollgate_cluster, tmp_path, FAST, kubeconfig=kubeconfig, peering=True
    ) as world:
        await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
        assert await world.promote_watched() == PROMOTED_WEIGHTS
        await world.delete_at_step(1)  # deletion (finalizer, release of owned objects) too
        assert not forbidden_lines(world)
    assert refused(tollgate_cluster, token, "/api/v1/namespaces/default/secrets")
    assert refused(tollgate_cluster, token, "/api/v1/secrets")
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    assert refused(tollgate_cluster, token, f"{rbac}/clusterroles", "POST")
    assert refused(tollgate_cluster, token, f"{rbac}/namespaces/default/roles", "POST")


async def test_the_chart_s_namespaced_roles_carry_a_rollout_and_reach_no_further(
    tollgate_cluster: ClusterAccess, release_namespace: str, tmp_path: Path
) -> None:
    name, watched = f"tg-{secrets.token_hex(2)}", f"ns-{secrets.token_hex(3)}"
    other = f"other-{secrets.token_hex(3)}"
    ok = tollgate_cluster.kubectl("create", "namespace", other)
    assert ok.returncode == 0, ok.stderr
    ok = tollgate_cluster.kubectl("create", "namespace", watched)  # its Role lives there
    assert ok.returncode == 0, ok.stderr
    install_rbac(tollgate_cluster, name, f"watch.namespaces={{{watched}}}")
    kubeconfig, token = token_kubeconfig(tollgate_cluster, name, tmp_path / "sa.kubeconfig")
    try:
        async with operated(
            tollgate_cluster, tmp_path, FAST, kubeconfig=kubeconfig, namespace=watched, peering=True
        ) as world:
            await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
            assert await world.promote_watched() == PROMOTED_WEIGHTS
            assert not forbidden_lines(world)
        for path in (
            f"/apis/apps/v1/namespaces/{other}/deployments",
            f"/apis/tollgate.dev/v1alpha1/namespaces/{other}/canaries",
            f"/api/v1/namespaces/{other}/configmaps",
            "/apis/apps/v1/deployments",
            f"/api/v1/namespaces/{watched}/secrets",
        ):
            assert refused(tollgate_cluster, token, path), path
    finally:
        tollgate_cluster.kubectl("delete", "namespace", other, "--wait=false")
        tollgate_cluster.kubectl("delete", "clusterrolebinding,clusterrole", f"{name}-discovery")
