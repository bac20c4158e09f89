"""The cluster a benchmark runs the operator against: the one ``TOLLGATE_KUBECONFIG`` names, or
a local control plane of its own (``make tools``), with Tollgate's CRDs installed."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tollgate.testing.cluster import ClusterAccess, LocalCluster, install_tollgate, repo_root
from tollgate.testing.clusterapi import ClusterApi


@contextmanager
def bench_cluster(workdir: Path) -> Iterator[ClusterAccess]:
    configured = os.environ.get("TOLLGATE_KUBECONFIG")
    if configured:
        access = ClusterAccess.from_kubeconfig(Path(configured), workdir / "kube-access")
        install_tollgate(access)
        yield access
        return
    with LocalCluster(state=repo_root() / ".tools" / "bench-cluster") as access:
        install_tollgate(access)
        yield access


def fresh_namespace(api: ClusterApi, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
