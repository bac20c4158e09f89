"""The session's real Kubernetes cluster, as one fixture: ``kube_cluster``.

Tests that must meet a real API server (admission, RBAC, CRD validation and defaulting,
controllers) ask for ``kube_cluster`` and get a :class:`ClusterAccess`. The cluster starts once
per test run from the binaries ``make tools`` builds (about 10 s) and stops when the run ends;
its state lives in ``.tools/test-cluster``, apart from the one ``make cluster-up`` runs, so a
test run never stops a developer's cluster. ``TOLLGATE_KUBECONFIG=PATH`` reuses a running
cluster instead (``make cluster-up`` prints its kubeconfig), which the tests then leave running.
Without the binaries the tests skip, saying how to build them.

Registered for tests/ and e2e/ by ``pytest_plugins = ["tests.cluster_fixture"]`` in the
repository's conftest.py.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollgate.testing.cluster import (
    ClusterAccess,
    LocalCluster,
    ToolsNotBuiltError,
    install_tollgate,
    repo_root,
)

REUSE_ENV = "TOLLGATE_KUBECONFIG"


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterAccess]:
    configured = os.environ.get(REUSE_ENV)
    if configured:
        kubeconfig = Path(configured)
        if not kubeconfig.is_file():
            pytest.fail(f"{REUSE_ENV}={configured} names no file")
        yield ClusterAccess.from_kubeconfig(kubeconfig, tmp_path_factory.mktemp("kube-access"))
        return
    root = repo_root()
    cluster = LocalCluster(root, state=root / ".tools" / "test-cluster")
    missing = cluster.missing_tools()
    if missing:
        pytest.skip(f"a real cluster needs {', '.join(missing)} in .tools/bin: run `make tools`")
    try:
        access = cluster.start()
    except ToolsNotBuiltError as error:
        pytest.skip(f"a real cluster cannot start: {error}")
    try:
        yield access
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tollgate_cluster(kube_cluster: ClusterAccess) -> ClusterAccess:
    """The cluster with Tollgate's CRDs installed as README says (``kubectl apply``, here
    server-side) and established."""
    install_tollgate(kube_cluster)
    return kube_cluster
