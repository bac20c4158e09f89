"""The CRDs as shipped, on a real API server: installed as the README says, then judged by it.

Why: tests/crd checks the CRDs with an offline imitation of kube-apiserver, which once filled
nested defaults before checking a default against the CEL rules; the server does not, and it
refused both CRDs. Here the server itself installs them, admits every example, refuses every
invalid object of tests/crd/invalid_objects.yaml that the offline checker refuses (with the
same message), admits the ones only the operator's code rejects, and defaults an object the
way the offline checker does.
"""

import copy
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.crd.corpus import CRD_DIR, Case, crd_for, example, example_paths, load_cases
from tests.crd.kube_schema import apply_defaults, openapi_schema
from tollgate.testing.cluster import ClusterAccess

pytestmark = pytest.mark.integration

GROUP, VERSION = "tollgate.dev", "v1alpha1"
PLURALS = {"Canary": "canaries", "PromptRelease": "promptreleases"}
CASES = load_cases()


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


@pytest.fixture(scope="module")
def installed(kube_cluster: ClusterAccess) -> ClusterAccess:
    """``kubectl apply -f crds/``, the README's install step, then both CRDs established."""
    ok(kube_cluster.kubectl("apply", "-f", str(CRD_DIR)))
    names = [f"{plural}.{GROUP}" for plural in PLURALS.values()]
    ok(
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *[f"crd/{name}" for name in names],
        )
    )  # fmt: skip
    return kube_cluster


@pytest.fixture(scope="module")
def api(installed: ClusterAccess) -> Iterator[httpx.Client]:
    with installed.client() as client:
        yield client


@pytest.fixture(scope="module")
def namespace(installed: ClusterAccess, api: httpx.Client) -> Iterator[str]:
    name = f"crds-{secrets.token_hex(3)}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    created = api.post("/api/v1/namespaces", json=body)
    assert created.status_code == 201, created.text
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


def create(
    api: httpx.Client, namespace: str, obj: dict[str, Any], *, dry_run: bool = True
) -> httpx.Response:
    """A create as kubectl sends it (strict field validation), in ``namespace``."""
    obj = copy.deepcopy(obj)
    obj["metadata"] = {**obj.get("metadata", {}), "namespace": namespace}
    params = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURALS[obj['kind']]}"
    return api.post(path, params=params, content=json.dumps(obj))


def test_the_server_installs_both_crds(installed: ClusterAccess, api: httpx.Client) -> None:
    for plural in PLURALS.values():
        crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{GROUP}")
        assert crd.status_code == 200, crd.text
        conditions = {c["type"]: c["status"] for c in crd.json()["status"]["conditions"]}
        assert conditions.get("Established") == "True"
        assert conditions.get("NonStructuralSchema") is None


@pytest.mark.parametrize("name", [path.name for path in example_paths()])
def test_every_example_is_admitted(api: httpx.Client, namespace: str, name: str) -> None:
    response = create(api, namespace, example(name))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_server_judges_invalid_objects_as_the_offline_checker(
    api: httpx.Client, namespace: str, case: Case
) -> None:
    response = create(api, namespace, case.edit.build())
    if case.rejected_by == "code":
        assert response.status_code == 201, f"the server refuses it: {response.text}"
        return
    # 422 from validation; 400 from strict field validation (an unknown field)
    assert response.status_code in (400, 422), f"the server admits it ({response.status_code})"
    message = response.json()["message"]
    assert case.expect in message, message


def test_the_server_fills_the_defaults_the_offline_checker_fills(
    api: httpx.Client, namespace: str
) -> None:
    obj = example("canary-minimal.yaml")
    obj["metadata"]["name"] = f"defaults-{secrets.token_hex(2)}"
    created = create(api, namespace, obj, dry_run=False)
    assert created.status_code == 201, created.text
    stored = created.json()
    offline = apply_defaults(openapi_schema(crd_for("Canary")), obj)
    assert stored["spec"] == offline["spec"]
    again = api.get(
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/canaries/{obj['metadata']['name']}"
    )
    assert again.json()["spec"] == offline["spec"]


@pytest.mark.parametrize(
    "nulls",
    [{"analysis": None}, {"analysis": {"stepWeights": None}}, {"metrics": {"prometheus": None}}],
    ids=["analysis", "stepWeights", "prometheus"],
)
def test_nulls_mean_absent_on_the_server_and_in_the_operator(
    api: httpx.Client, namespace: str, nulls: dict[str, Any]
) -> None:
    from tollgate.api.canary import CanarySpec
    from tollgate.api.validation import parse

    obj = example("canary-minimal.yaml")
    obj["spec"].update(nulls)
    response = create(api, namespace, obj)
    assert response.status_code == 201, response.text
    spec, problems = parse(CanarySpec, obj["spec"])
    assert problems == []
    assert spec is not None
    offline = apply_defaults(openapi_schema(crd_for("Canary")), example("canary-minimal.yaml"))
    assert response.json()["spec"] == offline["spec"]  # the server filled the defaults in
