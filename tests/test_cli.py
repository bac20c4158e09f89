"""The tollgate command line, run in-process."""

import shutil
import subprocess
import sys
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
    assert "on a local control plane" in " ".join(capsys.readouterr().out.split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "tollgate.dev/v1alpha1" in capsys.readouterr().out


def test_validate_warns_when_the_plan_cannot_resolve_a_limit_at_the_traffic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    minimal = str(ROOT / "examples" / "canary-minimal.yaml")
    assert main(["validate", minimal, "--rps", "1"]) == 0  # a warning, not a problem
    out = capsys.readouterr().out
    # the steps, then the last step at 50% for up to evidenceDeadline (30m): 968 requests
    assert "warning: errorRate.max: at 1 req/s the plan shows the canary about 968 requests" in out
    assert "3,671 are needed to resolve this limit" in out
    assert main(["validate", minimal, "--rps", "20"]) == 0
    assert "warning" not in capsys.readouterr().out


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(8)
)
HOSTILE = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
    "kind-list": (b"apiVersion: tollgate.dev/v1alpha1\nkind: [Canary]\n", "kind: must be one of"),
    "metadata-list": (
        b"apiVersion: tollgate.dev/v1alpha1\nkind: Canary\nmetadata: [x]\nspec: {}\n",
        "metadata: must be an object",
    ),
    "misspelled-kind": (
        b"apiVersion: tollgate.dev/v1alpha1\nkind: Canery\nmetadata: {name: x}\n",
        "kind: must be one of Canary, PromptRelease, not 'Canery'",
    ),
    "alias-bomb": (BOMB.encode(), "expands to more than"),
    "deep": (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    "not-yaml": (b"a: [unclosed\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_validate_refuses_hostile_files_with_a_reason(tmp_path: Path, case: str) -> None:
    content, says = HOSTILE[case]
    path = tmp_path / "in.yaml"
    path.write_bytes(content)
    done = run_cli("validate", str(path))
    assert done.returncode == 1, done
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_analyze_refuses_hostile_files_with_a_reason(tmp_path: Path, case: str) -> None:
    content, _says = HOSTILE[case]
    path = tmp_path / "in.yaml"
    path.write_bytes(content)
    done = run_cli(
        "analyze", "--replay", str(path), "--prometheus", "http://127.0.0.1:9",
        "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z",
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr


def test_a_file_without_tollgate_objects_is_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 2
    assert "no Canary or PromptRelease" in done.stderr


@pytest.mark.parametrize("when", ["inf", "1e30", "nan", "yesterday"])
def test_analyze_refuses_impossible_times_as_a_usage_error(when: str) -> None:
    minimal = str(ROOT / "examples" / "canary-minimal.yaml")
    done = run_cli("analyze", "--replay", minimal, "--from", when, "--to", "2026-01-01T00:00:00Z")
    assert done.returncode == 2, done
    assert "not a time" in done.stderr
    assert "Traceback" not in done.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "uid", "user"),
    [
        ({}, 65532, "uid65532"),  # the image's user has no passwd entry: kopf needs a name
        ({"USER": "ops"}, 65532, "ops"),
        ({"POD_ID": "tollgate-0"}, 65532, None),  # the chart's downward API names the pod
        ({}, 0, None),  # root has a passwd entry
    ],
)
def test_the_operator_gets_a_name_where_the_user_has_none(
    env: dict[str, str], uid: int, user: str | None
) -> None:
    from tollgate.cli.main import operator_environment

    assert operator_environment(env, uid).get("USER") == user
