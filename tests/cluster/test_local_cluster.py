"""The local cluster is a real one: what the in-memory API server can only imitate happens here.

Controllers turn a Deployment into ready Pods on kwok's fake Nodes and a Service into
EndpointSlices; the Gateway API CRDs from the Go module admit and default an HTTPRoute; RBAC
refuses a ServiceAccount's token until a Role grants it.
"""

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tollgate.testing.cluster import SERVICE_CIDR, ClusterAccess, has_kubectl

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_kubectl(), reason="no kubectl: run `make tools`"),
]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.k8s.io/pause:3.10, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

HTTPROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs:
    - {name: web-stable, port: 80, weight: 90}
    - {name: web-canary, port: 80}
"""


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def get_json(cluster: ClusterAccess, namespace: str, *what: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        ok(cluster.kubectl("get", "-n", namespace, *what, "-o", "json"))
    )
    return document


def eventually(probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def namespace(kube_cluster: ClusterAccess) -> Iterator[str]:
    name = f"smoke-{secrets.token_hex(3)}"
    ok(kube_cluster.kubectl("create", "namespace", name))
    eventually(
        lambda: kube_cluster.kubectl("get", "-n", name, "serviceaccount", "default").returncode == 0
    )
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_a_deployment_becomes_available_behind_a_service(
    kube_cluster: ClusterAccess, namespace: str
) -> None:
    ok(kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=DEPLOYMENT))
    ok(
        kube_cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Available", "deployment/web", "--timeout=60s"
        )
    )

    deployment = get_json(kube_cluster, namespace, "deployment", "web")
    assert deployment["status"]["availableReplicas"] == 2
    pods = get_json(kube_cluster, namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("kwok-node-")
        assert pod["status"]["podIP"]
        assert pod["spec"]["serviceAccountName"] == "default"

    service = get_json(kube_cluster, namespace, "service", "web")
    assert service["spec"]["clusterIP"].startswith(SERVICE_CIDR.split(".0.0/")[0] + ".")

    def two_ready_endpoints() -> bool:
        slices = get_json(
            kube_cluster, namespace, "endpointslices", "-l", "kubernetes.io/service-name=web"
        )["items"]
        ready = [
            endpoint
            for piece in slices
            for endpoint in piece.get("endpoints") or []
            if endpoint["conditions"].get("ready")
        ]
        return len(ready) == 2

    eventually(two_ready_endpoints)


def test_an_httproute_with_two_backends_is_admitted_and_defaulted(
    kube_cluster: ClusterAccess, namespace: str
) -> None:
    ok(kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=HTTPROUTE))

    route = get_json(kube_cluster, namespace, "httproute", "web")
    parent = route["spec"]["parentRefs"][0]
    assert (parent["group"], parent["kind"], parent["name"]) == (
        "gateway.networking.k8s.io",
        "Gateway",
        "edge",
    )
    rule = route["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 90},
        {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 1},
    ]


def test_rbac_refuses_a_service_account_token_until_a_role_allows(
    kube_cluster: ClusterAccess, namespace: str
) -> None:
    with kube_cluster.client() as admin:
        created = admin.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        )
        assert created.status_code == 201, created.text
        issued = admin.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/reader/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        )
        assert issued.status_code == 201, issued.text
        token = issued.json()["status"]["token"]

    with kube_cluster.client(token=token) as reader:
        refused = reader.get(f"/api/v1/namespaces/{namespace}/secrets")
        assert refused.status_code == 403, refused.text
        assert f"system:serviceaccount:{namespace}:reader" in refused.json()["message"]

        ok(
            kube_cluster.kubectl(
                "create", "role", "secret-reader", "-n", namespace,
                "--verb=list", "--resource=secrets",
            )
        )  # fmt: skip
        ok(
            kube_cluster.kubectl(
                "create", "rolebinding", "reader", "-n", namespace,
                "--role=secret-reader", f"--serviceaccount={namespace}:reader",
            )
        )  # fmt: skip
        eventually(lambda: reader.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 200)
        assert reader.get("/api/v1/namespaces/default/secrets").status_code == 403
