"""The operator's /metrics (runtime/telemetry.py): series per rollout that follow its status and
go with it, served over real HTTP, and named as promtool's linter wants."""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tollgate.api.status import CheckStatus, Phase, RolloutStatus, Verdict
from tollgate.runtime.telemetry import Telemetry
from tollgate.testing.cluster import free_port


def series(telemetry: Telemetry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in telemetry.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_a_rollout_s_series_follow_its_status_and_go_with_it() -> None:
    telemetry = Telemetry()
    progressing = RolloutStatus(phase=Phase.PROGRESSING, canary_weight=20, current_step=2)
    telemetry.observe("Canary", "shop", "cart", progressing)
    phases = series(telemetry, "tollgate_rollout_phase")
    lit = [dict(k)["phase"] for k, v in phases.items() if v == 1]
    assert lit == ["Progressing"]
    assert len(phases) == len(Phase)  # one series per phase, as kube-state-metrics does
    (weight,) = series(telemetry, "tollgate_rollout_canary_weight_percent").values()
    assert weight == 20
    telemetry.observe("Canary", "shop", "cart", RolloutStatus(phase=Phase.SUCCEEDED))
    lit = [dict(k)["phase"] for k, v in series(telemetry, "tollgate_rollout_phase").items() if v]
    assert lit == ["Succeeded"]
    telemetry.forget("Canary", "shop", "cart")
    telemetry.forget("Canary", "shop", "cart")  # twice: nothing left to drop, no error
    assert not series(telemetry, "tollgate_rollout_phase")
    assert not series(telemetry, "tollgate_rollout_step")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool: make prometheus")
async def test_metrics_are_served_over_http_and_pass_promtool() -> None:
    telemetry = Telemetry()
    telemetry.observe("PromptRelease", "support", "answer", RolloutStatus(phase=Phase.PAUSED))
    telemetry.decisions.labels("PromptRelease", "StepUp").inc()
    telemetry.reconciles.labels("PromptRelease").observe(0.03)
    telemetry.failures.labels("PromptRelease").inc()
    address = f"127.0.0.1:{free_port()}"
    await telemetry.serve(address)
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://{address}/metrics")
    finally:
        await telemetry.aclose()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'tollgate_decisions_total{kind="PromptRelease",reason="StepUp"} 1.0' in text
    linted = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


async def test_a_port_taken_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    first, second = Telemetry(), Telemetry()
    address = f"127.0.0.1:{free_port()}"
    await first.serve(address)
    try:
        await second.serve(address)
        assert "metrics not served" in caplog.text
    finally:
        await first.aclose()
        await second.aclose()


def test_checks_canary_against_stable_and_the_time_to_a_rollback() -> None:
    telemetry = Telemetry()
    started = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    latency = CheckStatus(name="latency", verdict=Verdict.FAIL, canary_value=0.6, stable_value=0.3)
    before = RolloutStatus(phase=Phase.PROGRESSING, rollout_started_at=started)
    after = RolloutStatus(phase=Phase.ROLLING_BACK, rollout_started_at=started, checks=[latency])
    telemetry.observe("Canary", "shop", "cart", after)
    values = {dict(k)["version"]: v for k, v in series(telemetry, "tollgate_check_value").items()}
    assert values == {"canary": 0.6, "stable": 0.3}
    verdicts = series(telemetry, "tollgate_check_verdict")
    assert [dict(k)["verdict"] for k, v in verdicts.items() if v] == ["Fail"]
    telemetry.ended("Canary", after, before, started + timedelta(seconds=42))
    telemetry.ended("Canary", after, after, started + timedelta(seconds=50))  # not again
    sums = series(telemetry, "tollgate_time_to_rollback_seconds_sum")
    assert sums[(("kind", "Canary"),)] == 42
    telemetry.observe("Canary", "shop", "cart", RolloutStatus(phase=Phase.ROLLED_BACK))
    assert not series(telemetry, "tollgate_check_value")  # a check no longer reported goes
