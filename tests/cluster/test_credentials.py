"""Tollgate's API client logs in like kopf and again when its login stops working.

On the real API server: an exec-plugin kubeconfig (as EKS and GKE write them) hands out a
service-account token bound to a Secret; deleting the Secret revokes the token, as expiry
would. The next request gets a 401, the client logs in again (the plugin runs again and hands
out the new token) and the request succeeds. And a client certificate is kept with
``insecure-skip-tls-verify``, which the old hand-written loader dropped.
"""

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.credentials import Credentials
from tollgate.adapters.kube.resources import CONFIGMAPS
from tollgate.testing.cluster import ClusterAccess

pytestmark = pytest.mark.integration

PLUGIN = """
import json, pathlib, sys
here = pathlib.Path(sys.argv[1])
(here / "calls").write_text(str(int((here / "calls").read_text() or 0) + 1))
token = (here / "token").read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def bound_token(admin: httpx.Client, namespace: str, secret: str) -> str:
    """A token of ServiceAccount ``probe``, valid as long as Secret ``secret`` exists."""
    created = ok(
        admin.post(
            f"/api/v1/namespaces/{namespace}/secrets",
            json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}},
        )
    )
    issued = ok(
        admin.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/probe/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "name": secret,
                        "uid": created["metadata"]["uid"],
                    },
                },
            },
        )
    )
    token: str = issued["status"]["token"]
    return token


@pytest.fixture
def namespace(kube_cluster: ClusterAccess) -> str:
    name = f"creds-{secrets.token_hex(3)}"
    with kube_cluster.client() as admin:
        ok(admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}))
        ok(
            admin.post(
                f"/api/v1/namespaces/{name}/serviceaccounts", json={"metadata": {"name": "probe"}}
            )
        )
        ok(
            admin.post(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/roles",
                json={
                    "metadata": {"name": "read-configmaps"},
                    "rules": [
                        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                    ],
                },
            )
        )
        ok(
            admin.post(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings",
                json={
                    "metadata": {"name": "probe"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "read-configmaps",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": name}],
                },
            )
        )
    return name


def write_kubeconfig(
    path: Path, cluster: ClusterAccess, user: dict[str, Any], **extra: Any
) -> None:
    entry: dict[str, Any] = {"server": cluster.server, **extra}
    if "insecure-skip-tls-verify" not in extra:
        entry["certificate-authority"] = str(cluster.ca_file)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": entry}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """What ``KUBECONFIG=path`` does for a process started with it (the client library reads
    the variable once, at import)."""
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


async def test_a_revoked_token_is_replaced_by_logging_in_again(
    kube_cluster: ClusterAccess, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with kube_cluster.client() as admin:
        first = bound_token(admin, namespace, "bind-a")
        (tmp_path / "token").write_text(first)
        (tmp_path / "calls").write_text("0")
        (tmp_path / "plugin.py").write_text(PLUGIN)
        exec_user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(tmp_path / "plugin.py"), str(tmp_path)],
                "interactiveMode": "Never",
            }
        }
        write_kubeconfig(tmp_path / "kubeconfig", kube_cluster, exec_user)
        use_kubeconfig(monkeypatch, tmp_path / "kubeconfig")

        credentials = Credentials()
        kube = await KubeClient.from_credentials(credentials)
        try:
            assert await kube.list_objects(CONFIGMAPS, namespace) is not None
            assert credentials.logins == 1

            (tmp_path / "token").write_text(bound_token(admin, namespace, "bind-b"))
            ok(admin.delete(f"/api/v1/namespaces/{namespace}/secrets/bind-a"))
            with kube_cluster.client(token=first) as revoked:
                deadline = time.monotonic() + 60
                while revoked.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code != 401:
                    assert time.monotonic() < deadline, "the first token was never revoked"
                    time.sleep(0.5)

            assert await kube.list_objects(CONFIGMAPS, namespace) is not None  # 401, login, retry
            assert credentials.logins == 2
            assert int((tmp_path / "calls").read_text()) >= 2
        finally:
            await kube.aclose()


async def test_a_client_certificate_is_kept_when_server_verification_is_off(
    kube_cluster: ClusterAccess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kube_cluster.cert_file is not None
    assert kube_cluster.key_file is not None
    user = {
        "client-certificate": str(kube_cluster.cert_file),
        "client-key": str(kube_cluster.key_file),
    }
    write_kubeconfig(
        tmp_path / "kubeconfig", kube_cluster, user, **{"insecure-skip-tls-verify": True}
    )
    use_kubeconfig(monkeypatch, tmp_path / "kubeconfig")
    kube = await KubeClient.from_credentials(Credentials())
    try:
        review = await kube.http.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            content=json.dumps(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            ),
            headers={"Content-Type": "application/json"},
        )
        assert review.status_code == 201, review.text
        assert review.json()["status"]["userInfo"]["username"] != "system:anonymous"
    finally:
        await kube.aclose()
