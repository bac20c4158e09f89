"""The generated CRDs on a real API server (1.28+): accepted, structural, CEL rules enforced.

Server-side dry runs leave no objects behind except the CRDs themselves.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.crd.corpus import Case, load_cases

ROOT = Path(__file__).resolve().parent.parent


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )


def in_default(document: dict[str, Any]) -> str:
    """The object moved to namespace default: kubectl refuses ``-n default`` for an object
    that names another namespace before the server sees it."""
    moved = {**document, "metadata": {**(document.get("metadata") or {}), "namespace": "default"}}
    return json.dumps(moved)


@pytest.fixture(scope="module")
def crds_installed() -> None:
    result = kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    assert result.returncode == 0, result.stderr
    for crd in ("canaries.tollgate.dev", "promptreleases.tollgate.dev"):
        waited = kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        assert waited.returncode == 0, waited.stderr


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem
)
def test_examples_are_accepted(example: Path) -> None:
    document = yaml.safe_load(example.read_text())
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=in_default(document))
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize(
    "case", [c for c in load_cases() if c.rejected_by in ("schema", "cel")], ids=lambda c: c.name
)
def test_invalid_objects_are_rejected(case: Case) -> None:
    """The same edits the offline tests apply (tests/crd/invalid_objects.yaml)."""
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=in_default(case.edit.build()))
    assert result.returncode != 0, f"{case.name} was accepted"
    assert case.expect.split(": ")[-1][:40] in result.stderr, result.stderr
