"""The tollgate command line, run in-process."""

import shutil
from pathlib import Path

import pytest

from tollgate.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    assert main(["validate", *files]) == 0
    assert f"{len(files)} Tollgate object(s) checked, 0 invalid" in capsys.readouterr().out


def test_validate_reports_every_problem_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "examples" / "canary-minimal.yaml").read_text()
    bad.write_text(
        text.replace("maxPercent: 1", "maxPercent: 1\n  analysis:\n    stepWeights: [10, 5]")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"
    )
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "Canary/api: spec.analysis.stepWeights: stepWeights must be strictly increasing" in (
        captured.err
    )
    assert "1 Tollgate object(s) checked, 1 invalid" in captured.out


def test_validate_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_crds_check_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    shutil.copytree(ROOT / "crds", out)
    assert main(["crds", "--check", "--out", str(out)]) == 0
    target = out / "tollgate.dev_canaries.yaml"
    target.write_text(target.read_text().replace("default: 5", "default: 10"))
    (out / "stray.yaml").write_text("{}")
    assert main(["crds", "--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "tollgate.dev_canaries.yaml: differs" in err
    assert "stray.yaml: not generated" in err
    assert main(["crds", "--out", str(out)]) == 0
    (out / "stray.yaml").unlink()
    assert main(["crds", "--check", "--out", str(out)]) == 0


def test_demo_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo itself runs in tests/test_demo.py."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "no cluster needed" in " ".join(capsys.readouterr().out.split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "tollgate.dev/v1alpha1" in capsys.readouterr().out


def test_validate_warns_when_the_plan_cannot_resolve_a_limit_at_the_traffic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    minimal = str(ROOT / "examples" / "canary-minimal.yaml")
    assert main(["validate", minimal, "--rps", "1"]) == 0  # a warning, not a problem
    out = capsys.readouterr().out
    assert "warning: errorRate.max: at 1 req/s the plan shows the canary about 368 requests" in out
    assert "3,671 are needed to resolve this limit" in out
    assert main(["validate", minimal, "--rps", "20"]) == 0
    assert "warning" not in capsys.readouterr().out
