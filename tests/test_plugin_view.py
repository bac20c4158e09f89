"""What ``kubectl tollgate`` prints (cli/rollout_view.py), on objects recorded from live runs
of the operator (tests/gitops/objects) and on a status with checks, evidence and a budget."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tollgate.api.status import (
    BudgetStatus,
    BurnTierStatus,
    CheckStatus,
    EvidenceKind,
    EvidenceStatus,
    Phase,
    RolloutStatus,
    Verdict,
)
from tollgate.cli import rollout_view

OBJECTS = Path(__file__).parent / "gitops" / "objects"
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def recorded(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((OBJECTS / f"{name}.json").read_text())
    return found


@pytest.mark.parametrize(
    ("name", "phase", "plan"),
    [
        ("canary-progressing", "Progressing (StepUp)", "[10%] → 20% → 30% → 40% → 50% → promote"),
        ("canary-promoted", "Succeeded (Promoted)", "10% → 20% → 30% → 40% → [50%] → promote"),
        ("canary-rolled-back", "RolledBack", None),
        ("promptrelease-paused", "Paused", None),
        ("canary-created", "Pending", None),
    ],
)
def test_the_tree_shows_what_the_operator_recorded(name: str, phase: str, plan: str | None) -> None:
    obj = recorded(name)
    text = rollout_view.tree(obj, [], now=NOW)
    assert f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}" in text
    assert f"phase     {phase}" in text
    if plan is not None:
        assert f"plan      {plan}" in text
    assert "\033[" not in text  # no colour unless asked


def analysed() -> dict[str, Any]:
    status = RolloutStatus(
        phase=Phase.ROLLED_BACK, reason="AnalysisFailed", message="latency failed",
        canary_weight=0, current_step=2, total_steps=5,
        checks=[CheckStatus(name="latency", verdict=Verdict.FAIL, canary_value=0.61,
                            stable_value=0.3, threshold="p95 <= stable x 1.2",
                            canary_samples=480, stable_samples=4100, message="p95 x2",
                            query='histogram_quantile(0.95, sum by (le) (rate(x[30s])))')],
        evidence=[EvidenceStatus(name="latency", kind=EvidenceKind.RELATIVE,
                                 verdict=Verdict.FAIL, e_value=412.0, boundary=200.0,
                                 canary_bad=60, canary_total=480, stable_bad=205,
                                 stable_total=4100, message="slow share 12.5% vs 5%",
                                 query="sum(increase(slow[30s]))")],
        budget=BudgetStatus(verdict=Verdict.PASS, message="burn 0.4x",
                            tiers=[BurnTierStatus(long="1h", short="5m", max_burn_rate=14.4,
                                                  long_burn=0.4, short_burn=0.5)]),
    )  # fmt: skip
    return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "Canary",
            "metadata": {"namespace": "shop", "name": "cart"},
            "spec": {"analysis": {"stepWeights": [5, 10, 25, 50, 75]}},
            "status": status.model_dump(mode="json", by_alias=True, exclude_none=True)}  # fmt: skip


def test_checks_evidence_and_budget_read_canary_against_stable() -> None:
    event = {"type": "Warning", "reason": "RolledBack", "message": "latency failed",
             "lastTimestamp": "2026-12-04T02:58:00Z"}  # fmt: skip
    text = rollout_view.tree(analysed(), [event], now=NOW)
    assert "5% → [10%] → 25% → 50% → 75% → promote" in text
    assert "latency          Fail         0.61 vs 0.3  (p95 <= stable x 1.2; 480 vs 4100" in text
    assert "e=412 / 200 (206%)" in text
    assert "1h/5m: burn 0.4/0.5 (fires above 14.4)" in text
    assert "  2m RolledBack: latency failed" in text
    coloured = rollout_view.tree(analysed(), [event], colour=True, now=NOW)
    assert "\033[31mRolledBack\033[0m" in coloured


def test_explain_says_why_and_gives_the_queries_to_paste() -> None:
    text = rollout_view.explain(analysed())
    assert text.startswith("Canary cart is RolledBack (AnalysisFailed).")
    assert "- check latency: Fail, p95 x2" in text
    assert "- test latency: e-value 412 reached its boundary 200" in text
    assert "histogram_quantile(0.95, sum by (le) (rate(x[30s])))" in text
    assert "sum(increase(slow[30s]))" in text


def test_the_table_and_the_history() -> None:
    objects = [recorded("canary-promoted"), recorded("promptrelease-progressing")]
    table = rollout_view.table(objects, all_namespaces=True, now=NOW).splitlines()
    assert table[0].split() == ["NAMESPACE", "KIND", "NAME", "PHASE", "WEIGHT", "STEP", "REASON",
                                "AGE"]  # fmt: skip
    assert table[1].split()[1:6] == ["Canary", "app", "Succeeded", "0%", "5/5"]
    history = rollout_view.history(recorded("canary-promoted")).splitlines()
    assert history[0].split()[:5] == ["TIME", "PHASE", "WEIGHT", "STEP", "REASON"]
    assert history[-1].split()[2:6] == ["Succeeded", "0%", "5", "Promoted"]
