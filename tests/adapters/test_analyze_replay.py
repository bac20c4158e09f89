"""``tollgate analyze --replay`` against a real Prometheus holding known history.

The history (tests/adapters/conftest.py) has, in namespace ``shop``, a canary failing 2% of
requests against 0.5% for stable; in ``blog`` a canary better than its stable; nothing in
``empty``. Each case runs the real command in a subprocess and checks its exit status and text.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.adapters.conftest import T
from tollgate.testing.prometheus import PrometheusServer, free_port

pytestmark = pytest.mark.integration
FROM, TO = str(T - 1800), str(T)


def canary_file(tmp_path: Path, namespace: str, name: str, **spec: Any) -> Path:
    body = {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"name": name},
            "service": {"port": 80},
            "router": {"httpRoute": {"name": name}},
            "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 30},
            "checks": {"errorRate": {"maxPercent": 1}},
            **spec,
        },
    }
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def analyze(path: Path, prometheus: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tollgate.cli.main", "analyze", "--replay", str(path)]
    command += ["--from", FROM, "--to", TO, "--prometheus", prometheus, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_bad_canary_gets_a_rollback_verdict(prometheus: PrometheusServer, tmp_path: Path) -> None:
    done = analyze(canary_file(tmp_path, "shop", "app"), prometheus.url)
    assert done.returncode == 1, done.stderr
    assert "verdict: rollback (AnalysisFailed)" in done.stdout
    assert "errorRate" in done.stdout
    assert "sequential test: errorRate" in done.stdout  # the counts caught it first


def test_a_good_canary_walks_the_plan(prometheus: PrometheusServer, tmp_path: Path) -> None:
    path = canary_file(tmp_path, "blog", "web", checks={"errorRate": {"maxIncreasePoints": 1}})
    done = analyze(path, prometheus.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "StepUp" in done.stdout
    assert "verdict: would promote" in done.stdout


def test_no_data_is_said_plainly(prometheus: PrometheusServer, tmp_path: Path) -> None:
    done = analyze(canary_file(tmp_path, "empty", "nothing"), prometheus.url)
    assert done.returncode == 4
    assert "no data for Canary/empty/nothing" in done.stderr


def test_an_unreachable_prometheus_is_said_plainly(tmp_path: Path) -> None:
    done = analyze(canary_file(tmp_path, "shop", "app"), f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert "ConnectError" in done.stderr


def test_a_malformed_query_is_rejected_before_any_query(tmp_path: Path) -> None:
    path = canary_file(
        tmp_path,
        "shop",
        "app",
        checks={"custom": [{"name": "broken", "query": "sum(rate(x[1m])", "max": 1}]},
    )
    done = analyze(path, "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "spec.checks.custom[0].query" in done.stderr
    assert "invalid PromQL" in done.stderr
