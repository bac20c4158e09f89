"""The operator on short-lived ServiceAccount tokens that are rotated under it mid-rollout.

As in a pod: the chart's ServiceAccount and RBAC, ``tollgate run --peering`` (the chart's
command), and a token file the kubelet swaps for a fresh TokenRequest token (10-minute expiry,
the shortest the API server issues). The suite cannot wait ten minutes for an expiry, so each
old token is revoked the moment its successor is written (its bound Secret deleted), which is
what expiry does to it, only sooner and more often: every few seconds, so that one rollout
outlives several tokens. Once with the token file in the kubeconfig, once through an exec
credential plugin (as EKS and GKE write kubeconfigs). Every weight must be written in order,
and no reconcile may fail: a 401 never outlives the rotation that caused it.
"""

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.test_chart_rbac import RELEASE_NAMESPACE, install_rbac, release_namespace
from tests.cluster.world import ON_A_CLUSTER, PROMOTED_WEIGHTS, operated
from tollgate.api.status import Phase
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.clusterapi import ClusterApi

pytestmark = ON_A_CLUSTER
__all__ = ["release_namespace"]  # the fixture, shared with the RBAC tests
ROTATE_EVERY = 3.0
# 5 steps of 3 s: a rollout of about 15 s; the server may go on accepting a revoked token for
# up to 10 s (its authentication cache), so some, not all, are met with a 401 mid-rollout
SLOWER = {
    "skipAnalysis": True,
    "analysis": {"interval": "3s", "stepWeight": 10, "maxWeight": 50, "progressDeadline": "2m"},
}
PLUGIN = """
import json, pathlib, sys
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


class Kubelet:
    """Keeps ``path`` holding a live token of ServiceAccount ``account``, swapped atomically."""

    def __init__(self, access: ClusterAccess, account: str, path: Path) -> None:
        self.api = ClusterApi(access)
        self.account = account
        self.path = path
        self.rotations = 0
        self.bound: str | None = None

    def rotate(self) -> None:
        """A new token in the file, then the old one revoked (its bound Secret deleted)."""
        secret = f"{self.account}-token-{self.rotations}"
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}}
        created = self.api.create("secrets", body, namespace=RELEASE_NAMESPACE)
        bound = {"apiVersion": "v1", "kind": "Secret", "name": secret,
                 "uid": created["metadata"]["uid"]}  # fmt: skip
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 600, "boundObjectRef": bound}}  # fmt: skip
        issued = self.api.create_subresource(
            "serviceaccounts", RELEASE_NAMESPACE, self.account, "token", request
        )
        fresh = self.path.with_suffix(".new")
        fresh.write_text(issued["status"]["token"])
        os.replace(fresh, self.path)
        if self.bound is not None:
            self.api.delete("secrets", RELEASE_NAMESPACE, self.bound)
        self.bound = secret
        self.rotations += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(ROTATE_EVERY)
            await asyncio.to_thread(self.rotate)

    def close(self) -> None:
        if self.bound is not None:
            self.api.delete("secrets", RELEASE_NAMESPACE, self.bound)
        self.api.close()


def kubeconfig(access: ClusterAccess, user: dict[str, Any], path: Path) -> Path:
    cluster = {"server": access.server, "certificate-authority": str(access.ca_file)}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": user}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }))  # fmt: skip
    return path


@pytest.fixture
async def kubelet(
    tollgate_cluster: ClusterAccess, release_namespace: str, tmp_path: Path
) -> AsyncIterator[Kubelet]:
    account = f"tg-{secrets.token_hex(2)}"
    install_rbac(tollgate_cluster, account)
    rotating = Kubelet(tollgate_cluster, account, tmp_path / "token")
    rotating.rotate()
    try:
        yield rotating
    finally:
        rotating.close()
        for kind in ("clusterrolebinding", "clusterrole"):
            tollgate_cluster.kubectl("delete", kind, account, f"{account}-discovery",
                                     "--ignore-not-found")  # fmt: skip


@pytest.mark.parametrize("source", ["tokenFile", "exec"])
async def test_a_rollout_outlives_several_rotated_tokens(
    tollgate_cluster: ClusterAccess, kubelet: Kubelet, tmp_path: Path, source: str
) -> None:
    if source == "tokenFile":
        user: dict[str, Any] = {"tokenFile": str(kubelet.path)}
    else:
        (tmp_path / "plugin.py").write_text(PLUGIN)
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                         "command": sys.executable, "interactiveMode": "Never",
                         "args": [str(tmp_path / "plugin.py"), str(kubelet.path)]}}  # fmt: skip
    config = kubeconfig(tollgate_cluster, user, tmp_path / "sa.kubeconfig")
    async with operated(tollgate_cluster, tmp_path, SLOWER, kubeconfig=config, peering=True) as w:
        rotations = asyncio.create_task(kubelet.run())
        try:
            await w.until(lambda: w.status().phase is Phase.SUCCEEDED)
            first = kubelet.rotations
            assert await w.promote_watched() == PROMOTED_WEIGHTS
            assert kubelet.rotations - first >= 4  # the rollout outlived four tokens
        finally:
            rotations.cancel()
        relogins = w.operator.log.read_text().count("Re-authentication has been initiated")
        assert relogins >= 1  # a revoked token was met with a 401 and replaced
        reasons = {h.reason for h in w.status().history}
        assert "ReconcileFailed" not in reasons
        assert not w.events("ReconcileFailed")
