"""End-to-end tests against a real Kubernetes cluster (kind on a laptop or in CI, or any cluster).

They use the cluster named by KUBECONFIG (or ~/.kube/config) through kubectl, and skip with a
clear message when none is reachable. Run them with `make e2e`.
"""

import shutil
import subprocess

import pytest


def _cluster_problem() -> str | None:
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    probe = subprocess.run(
        ["kubectl", "version", "--request-timeout=5s", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return "no Kubernetes cluster reachable (set KUBECONFIG): " + probe.stderr.strip()[:300]
    return None


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    problem = _cluster_problem()
    if problem is not None:
        pytest.skip(f"e2e needs a real cluster: {problem}")
