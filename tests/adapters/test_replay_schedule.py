"""``tollgate analyze --replay`` keeps the operator's schedule and says how a replay ended.

A real Prometheus holds backfilled history (5 s samples): in ``shift`` a canary whose error
share jumps from 0.5% to 50% at a known second; in ``thin`` an identical canary and stable at
1 req/s in total, too little traffic for any verdict before the deadline.
"""

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.adapters.shifting_history import Version, openmetrics
from tollgate.cli.replay import ReplayOutcome, replay, target_from_document
from tollgate.cli.tick_lines import describe_tick
from tollgate.testing.prometheus import PrometheusServer

pytestmark = pytest.mark.integration
START = 1_767_222_000  # 2025-12-31T23:00:00Z: the replays begin here
REGRESSION = START + 25  # between two 10 s readings, 35 s before the first 1-minute tick
LATER = START + 95  # after the first analysis: the second one sees it
HISTORY = [
    Version("shift", "app-7d9f8c6b5-abcde", 40, 0.005, error_share_after=1.0, change_at=REGRESSION),
    Version("shift", "app-primary-5f6d7c8b9-fghij", 360, 0.005),
    Version("later", "app-7d9f8c6b5-abcde", 40, 0.005, error_share_after=0.5, change_at=LATER),
    Version("later", "app-primary-5f6d7c8b9-fghij", 360, 0.005),
    Version("thin", "app-7d9f8c6b5-abcde", 0.1, 0.01),
    Version("thin", "app-primary-5f6d7c8b9-fghij", 0.9, 0.01),
]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    server = PrometheusServer()
    server.backfill(openmetrics(HISTORY, START - 600, START + 1200))
    server.start()
    yield server
    server.close()


def canary(namespace: str, analysis: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {
            "targetRef": {"name": "app"},
            "service": {"port": 80},
            "router": {"httpRoute": {"name": "app"}},
            "analysis": analysis,
            "checks": checks,
        },
    }


def at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


CHECKS = {
    "errorRate": {"maxPercent": 5},
    "latency": {"maxIncreasePercent": 50},
    "errorBudget": {"objectivePercent": 99},
}


async def test_the_replay_reads_counts_at_every_sequential_every(
    prometheus: PrometheusServer,
) -> None:
    doc = canary("shift", {"interval": "1m", "sequential": {"every": "10s"}}, CHECKS)
    target = target_from_document(doc, prometheus.url)
    result = await replay(target, at(START), at(START + 600))

    assert result.outcome is ReplayOutcome.ROLLED_BACK
    assert result.exit_code == 1
    assert result.reason == "AnalysisFailed"
    assert result.decided_at is not None
    late = (result.decided_at - at(REGRESSION)).total_seconds()
    assert 0 < late <= 10, f"rolled back {late:g}s after the regression"
    counted = [t.at for t in result.ticks if t.analysis.counts]
    analysed = [t.at for t in result.ticks if t.analysis.readings is not None]
    assert {b - a for a, b in itertools.pairwise(counted)} == {timedelta(seconds=10)}
    assert analysed == []  # thresholds only when an analysis is due, at START + 60
    assert result.ticks[-1].decision is not None
    assert result.ticks[-1].at == result.decided_at


async def test_tick_lines_use_the_engines_units(prometheus: PrometheusServer) -> None:
    doc = canary("later", {"interval": "1m"}, CHECKS)
    target = target_from_document(doc, prometheus.url)
    result = await replay(target, at(START), at(START + 600))
    assert result.decided_at == at(START + 120)  # counts only at the analyses here
    lines = [describe_tick(target.spec, t) for t in result.ticks if t.read]
    first, last = lines[0], lines[-1]
    assert re.search(r"latency Pass [\d.]+ms vs [\d.]+ms", first), first
    assert re.search(r"errorRate Pass 0\.5% vs 0\.5%", first), first
    assert re.search(r"errorBudget Pass 0\.5x vs 0\.5x", first), first  # burn, not 0.005
    assert re.search(r"latency\S* \w+ e=\S+ over [\d.]+ms", first), first  # the objective
    # The sequential test rejects before the thresholds are judged: its verdict is shown.
    assert re.search(r"errorRate Fail \(sequential\)", last), last
    assert " - vs" not in last


def analyze(path: Path, prometheus: str, start: int, end: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tollgate.cli.main", "analyze", "--replay", str(path)]
    command += ["--from", str(start), "--to", str(end), "--prometheus", prometheus]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_an_identical_canary_at_1_rps_ends_for_lack_of_evidence(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    path = tmp_path / "canary.yaml"
    doc = canary("thin", {"progressDeadline": "3m"}, {"errorRate": {"maxPercent": 5}})
    path.write_text(yaml.safe_dump(doc))
    done = analyze(path, prometheus.url, START, START + 1200)
    assert done.returncode == 5, done.stdout[-2000:] + done.stderr
    verdict = done.stdout.strip().splitlines()[-1]
    assert "lack of evidence, not evidence of harm" in verdict
    assert "verdict: rollback" not in done.stdout


def test_no_data_names_the_selector(prometheus: PrometheusServer, tmp_path: Path) -> None:
    doc = canary("nowhere", {}, {"errorRate": {"maxPercent": 5}})
    doc["spec"]["metrics"] = {"selector": {"service": "checkout"}}
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = analyze(path, prometheus.url, START, START + 1200)
    assert done.returncode == 4
    assert 'namespace="nowhere"' in done.stderr
    assert 'service="checkout"' in done.stderr
