"""README's install path on a real cluster: the CRDs applied server-side, every example in
examples/ applied for real and read back as the server stored it (defaults filled in by the
CRD's schema, as the operator will read them), and edited in place.

The cluster is the one ``TOLLGATE_KUBECONFIG`` names (``make e2e`` passes KUBECONFIG), else the
local control plane.
"""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollgate.api.canary import Canary
from tollgate.api.promptrelease import PromptRelease
from tollgate.testing.cluster import ClusterAccess, has_kubectl, repo_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_kubectl(), reason="no kubectl: run `make tools`"),
]
EXAMPLES = sorted((repo_root() / "examples").glob("*.yaml"))
MODELS: dict[str, type[Canary] | type[PromptRelease]] = {
    "Canary": Canary,
    "PromptRelease": PromptRelease,
}


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


@pytest.fixture(scope="module")
def namespace(tollgate_cluster: ClusterAccess) -> Iterator[str]:
    name = f"examples-{secrets.token_hex(3)}"
    ok(tollgate_cluster.kubectl("create", "namespace", name))
    yield name
    tollgate_cluster.kubectl("delete", "namespace", name, "--wait=false")


def documents(path: Path, namespace: str) -> list[dict[str, Any]]:
    """The example's Tollgate objects, moved to ``namespace``."""
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("kind") in MODELS:
            doc["metadata"]["namespace"] = namespace
            out.append(doc)
    return out


def lost(written: Any, stored: Any, at: str = "spec") -> list[str]:
    """Where the stored object differs from what was written (defaults added are fine)."""
    if isinstance(written, dict) and isinstance(stored, dict):
        return [p for k, v in written.items() for p in lost(v, stored.get(k), f"{at}.{k}")]
    if isinstance(written, list) and isinstance(stored, list) and len(written) == len(stored):
        return [p for i, (w, s) in enumerate(zip(written, stored, strict=True))
                for p in lost(w, s, f"{at}[{i}]")]  # fmt: skip
    return [] if written == stored else [at]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_is_stored_as_written_with_its_defaults(
    tollgate_cluster: ClusterAccess, namespace: str, example: Path
) -> None:
    for doc in documents(example, namespace):
        ok(tollgate_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(doc)))
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        stored = json.loads(
            ok(tollgate_cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json"))
        )
        assert stored["spec"]["analysis"]["interval"]  # filled in by the server if not written
        model = MODELS[doc["kind"]].model_validate(stored)
        assert (
            model.spec.analysis.evidence_deadline == stored["spec"]["analysis"]["evidenceDeadline"]
        )
        assert not lost(doc["spec"], stored["spec"]), lost(doc["spec"], stored["spec"])


def test_an_invalid_edit_of_a_stored_object_is_refused_and_loses_nothing(
    tollgate_cluster: ClusterAccess, namespace: str
) -> None:
    doc = documents(repo_root() / "examples" / "canary-minimal.yaml", namespace)[0]
    ok(tollgate_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(doc)))
    name = doc["metadata"]["name"]
    patch = json.dumps({"spec": {"analysis": {"stepWeight": 0}}})
    refused = tollgate_cluster.kubectl(
        "patch", "-n", namespace, "canary", name, "--type=merge", "-p", patch
    )
    assert refused.returncode != 0
    assert "stepWeight" in refused.stderr
    stored = json.loads(
        ok(tollgate_cluster.kubectl("get", "-n", namespace, "canary", name, "-o", "json"))
    )
    assert stored["spec"]["analysis"]["stepWeight"] != 0
