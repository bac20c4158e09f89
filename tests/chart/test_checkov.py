"""checkov on everything Tollgate ships for a cluster: the chart's renders (default, namespaced,
hardened, HA, and with an image digest) and deploy/ (kustomize). No finding may fail, and every
skipped check is one the Deployment's ``checkov.io/skip`` annotations explain
(docs/install.md, "Security scan"); a skip that no longer applies is an error too.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.test_chart import VALUES, render
from tollgate.testing.cluster import kubectl, repo_root

CHECKOV = repo_root() / ".tools" / "checkov" / "bin" / "checkov"
EXPLAINED = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43"}
DIGEST = "image.digest=sha256:" + "0" * 64

pytestmark = pytest.mark.skipif(not CHECKOV.is_file(), reason="no checkov: run `make checkov`")


def scan(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--output", "json",
         "--compact", "--skip-download"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    return reports


def test_the_chart_and_deploy_pass_checkov_with_only_explained_skips(tmp_path: Path) -> None:
    for name, settings in {**VALUES, "digest": [DIGEST]}.items():
        (tmp_path / f"{name}.yaml").write_text(render(settings))
    built = subprocess.run([kubectl(), "kustomize", str(repo_root() / "deploy")],
                           capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / "kustomize.yaml").write_text(built.stdout)
    (report,) = scan(tmp_path)
    results = report["results"]
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert skipped == EXPLAINED
    digest_skips = {c["check_id"] for c in results["skipped_checks"] if "digest" in c["file_path"]}
    assert "CKV_K8S_43" not in digest_skips  # with a digest the image check passes outright
    assert report["summary"]["passed"] > 400
