"""Canary reconciles end to end against the API test server and a real Prometheus.

History is backfilled (healthy or regressed canary), the clock is simulated, and each tick is
one real reconcile: observe over HTTP, query Prometheus, decide, write the HTTPRoute, record
status.
"""

from datetime import timedelta
from typing import Any

import pytest

from tests.runtime.world import World, stable_and_canary, world
from tests.runtime.world import canary as canary_body
from tollgate.adapters.kube.resources import CANARIES as CANARY_RESOURCE
from tollgate.api.status import ConditionStatus, Phase
from tollgate.engine.conditions import condition
from tollgate.runtime.canary import reconcile_canary
from tollgate.runtime.failures import Streak, report_failure
from tollgate.runtime.handlers import canary_restore
from tollgate.testing import scenario
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, NS, ROUTES

pytestmark = pytest.mark.integration


def PROMOTED(w: World) -> bool:  # noqa: N802 - reads as a condition
    return w.status().phase is Phase.SUCCEEDED and w.status().reason == "Promoted"


def ROLLED_BACK(w: World) -> bool:  # noqa: N802
    return w.status().phase is Phase.ROLLED_BACK


async def start_rollout(w: World) -> None:
    await w.run_until(lambda w: w.status().phase is Phase.SUCCEEDED)
    assert w.status().reason == "Initialized"
    assert w.api.get("deployments.apps", NS, "app-primary") is not None
    assert w.api.get("services", NS, "app-primary") is not None
    assert w.api.get("services", NS, "app-canary") is not None
    w.release("app:2")
    await w.tick(1)
    assert w.status().phase is Phase.PROGRESSING
    assert w.route_weight() == 5


async def test_healthy_canary_walks_the_steps_and_promotes() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        weights: list[int] = []

        def record(w: World) -> bool:
            weight = w.route_weight()
            if not weights or weights[-1] != weight:
                weights.append(weight)
            return PROMOTED(w)

        await w.run_until(record)
        assert weights == [5, 10, 15, 20, 0]
        status = w.status()
        assert status.stable_revision == status.revision
        primary = w.api.get("deployments.apps", NS, "app-primary")
        assert primary is not None
        assert scenario.version_of(primary) == "app:2"
        checks = {c.name: c for c in status.checks}
        assert checks["latency"].verdict.value == "Pass"
        assert checks["latency"].query
        assert "histogram_quantile" in checks["latency"].query
        assert checks["latency"].canary_samples >= 50
        events = w.api.list_objects("events", NS)
        reasons = [e["reason"] for e in events]
        assert reasons.count("StepUp") == 4
        assert "Promoted" in reasons
        passed = [
            e["message"]
            for e in events
            if e["reason"] == "AnalysisPassed" and e["message"].startswith("analysis at ")
        ]
        assert len(passed) >= 4  # at least one per step, each explained
        assert all("latency Pass: no test finds a breach" in m for m in passed)
        assert all("window estimate " in m and "(shown, not judged)" in m for m in passed)
        assert any("latency.max sequential Pass: canary " in m for m in passed)
        evidence = {e.name: e for e in status.evidence}
        assert evidence["latency.max"].verdict.value == "Pass"
        assert evidence["latency.max"].query is not None
        assert "_bucket" in evidence["latency.max"].query
        assert evidence["latency.max"].message.startswith("passing: e-value")
        # the history's buckets are 2x apart: a 25% tolerance is judged on the window
        assert evidence["latency"].message.startswith("not counted: no bucket bound separates")


@pytest.mark.parametrize(
    ("regression", "check"),
    [
        ({"latency_shares": (0.2, 0.4, 0.6, 0.8, 1)}, "latency"),
        ({"error_share": 0.08}, "errorRate"),
        ({"ttft_shares": (0.2, 0.4, 0.6, 0.8, 1)}, "ttft"),
        ({"output_tokens_per_request": 600}, "costPerRequest"),
    ],
    ids=["p95", "errors", "ttft", "cost"],
)
async def test_regression_rolls_back(regression: dict[str, Any], check: str) -> None:
    async with world(stable_and_canary(**regression)) as w:
        await start_rollout(w)
        await w.run_until(ROLLED_BACK)
        status = w.status()
        assert status.reason == "AnalysisFailed"
        assert w.route_weight() == 0
        failing = scenario.failing_checks(status)
        assert check in failing
        assert status.stable_revision != status.revision
        conditions = {c.type: c.status.value for c in status.conditions}
        assert conditions["Stalled"] == "True"
        assert conditions["Ready"] == "False"


async def test_unchanged_inputs_write_nothing() -> None:
    async with world(stable_and_canary()) as w:
        await w.run_until(lambda w: w.status().phase is Phase.SUCCEEDED)
        w.api.clear_requests()
        for _ in range(3):
            outcome = await w.tick(0)
            assert not outcome.status_written
        assert w.api.writes() == []


async def test_prometheus_outage_holds_then_rolls_back() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.prometheus.kill()
        seen_weights = set()

        def watch(w: World) -> bool:
            seen_weights.add(w.route_weight())
            assert w.status().phase is not Phase.PROMOTING
            return ROLLED_BACK(w)

        await w.run_until(watch)
        assert seen_weights <= {5, 0}
        status = w.status()
        assert status.reason == "MetricsUnavailable"
        assert all(c.verdict.value == "Error" for c in status.checks)


async def test_invalid_spec_is_stalled_and_changes_no_traffic() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.api.patch(
            CANARIES,
            NS,
            "app",
            {
                "spec": {
                    "checks": {"custom": [{"name": "broken", "query": "sum(rate(x[1m])", "max": 1}]}
                }
            },
        )
        w.api.clear_requests()
        await w.tick(30)
        await w.tick(30)
        status = w.status()
        stalled = next(c for c in status.conditions if c.type == "Stalled")
        assert stalled.status.value == "True"
        assert stalled.reason == "InvalidSpec"
        assert "spec.checks.custom[0].query" in stalled.message
        assert status.phase is Phase.PROGRESSING
        assert w.route_weight() == 5
        assert w.api.writes(ROUTES) == []


async def test_route_conflicts_and_a_missing_route_still_record_status() -> None:
    async with world(
        stable_and_canary(),
        analysis={"interval": "30s", "stepWeight": 5, "maxWeight": 20, "progressDeadline": "2m"},
    ) as w:
        await start_rollout(w)
        w.api.fail_next("PUT", f"{ROUTES}/app", status=409, times=2)
        await w.run_until(lambda w: w.route_weight() == 10)
        w.api.delete(ROUTES, NS, "app")
        await w.tick(5)
        routed = next(c for c in w.status().conditions if c.type == "TrafficRouted")
        assert routed.status.value == "False"
        assert routed.reason == "RouteNotFound"
        await w.run_until(lambda w: w.status().phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK))
        assert w.status().reason == "ProgressDeadlineExceeded"


async def test_new_revision_mid_analysis_restarts_from_step_zero() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        await w.run_until(lambda w: w.route_weight() == 10)
        first = w.status().revision
        w.controller.hold.add((NS, "app"))  # the new pods are not ready yet
        w.release("app:3")
        await w.tick(1)
        status = w.status()
        assert status.revision != first
        assert (status.current_step, status.canary_weight, w.route_weight()) == (0, 0, 0)
        assert status.reason == "WaitingForCanary"
        w.controller.hold.clear()
        await w.tick(1)
        await w.tick(1)
        assert (w.status().current_step, w.route_weight()) == (1, 5)
        await w.run_until(PROMOTED)


def route_weights_written(w: World) -> list[int]:
    out = []
    for record in w.api.writes(ROUTES, "app"):
        if "spec" not in record.body:
            continue  # the claim: a metadata-only patch
        refs = record.body["spec"]["rules"][0]["backendRefs"]
        out.append(next(r["weight"] for r in refs if r["name"] == "app-canary"))
    return out


@pytest.mark.parametrize("after_write", [False, True], ids=["write-lost", "response-lost"])
async def test_a_step_recorded_but_not_applied_is_finished_not_undone(after_write: bool) -> None:
    """The state a crash between the status write and the route write leaves behind."""
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.api.clear_requests()
        w.api.fail_next("PUT", f"{ROUTES}/app", status=500, after_write=after_write)
        await w.run_until(lambda w: w.status().canary_weight == 10)
        assert w.status().current_step == 2
        await w.run_until(lambda w: w.route_weight() == 10 and w.status().canary_weight == 10)
        await w.run_until(lambda w: w.route_weight() == 15)
        # 5 is never re-asserted; 10 is written once (a lost response already stored it)
        assert route_weights_written(w) == ([15] if after_write else [10, 15])


async def test_a_decision_on_a_stale_read_is_neither_recorded_nor_acted_on() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        stale = w.canary()
        await w.run_until(lambda w: w.route_weight() == 10)
        w.api.clear_requests()
        outcome = await reconcile_canary(stale, w.wiring)
        assert not outcome.status_written
        assert w.api.writes(ROUTES) == []
        assert w.api.writes(CANARIES) == []
        assert (w.route_weight(), w.status().canary_weight) == (10, 10)


async def test_a_step_whose_status_write_fails_is_not_applied() -> None:
    """Applying a step that status does not hold would be undone as drift on the next tick."""
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.api.clear_requests()
        w.api.fail_next("PATCH", "canaries/app/status", status=500, times=1000)
        stepped = False
        for _ in range(20):
            outcome = await w.tick(5)
            assert outcome.decision is not None
            if any(getattr(a, "weight", None) == 10 for a in outcome.decision.actions):
                stepped = True
                break
        assert stepped
        assert not outcome.status_written
        assert w.route_weight() == 5
        w.api.clear_faults()
        await w.run_until(lambda w: w.route_weight() == 15)
        assert route_weights_written(w) == [10, 15]


def patient(sequential: bool) -> dict[str, object]:
    """Thresholds that need four failed analyses before they roll back."""
    return {
        "interval": "30s",
        "stepWeight": 5,
        "maxWeight": 20,
        "failureLimit": 3,
        "progressDeadline": "5m",
        "sequential": {"enabled": sequential},
    }


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "thresholds-only"])
async def test_clear_evidence_rolls_back_at_the_first_analysis(sequential: bool) -> None:
    """With failureLimit 3 the thresholds need four failed analyses; the counts need one."""
    async with world(stable_and_canary(error_share=0.08), analysis=patient(sequential)) as w:
        await start_rollout(w)
        began = w.now
        await w.run_until(ROLLED_BACK)
        status = w.status()
        rolled_back_after = (
            next(h.time for h in status.history if h.phase is Phase.ROLLING_BACK) - began
        )
        if sequential:
            assert rolled_back_after.total_seconds() <= 35
            assert (status.message or "").startswith("sequential test: errorRate")
            evidence = {e.name: e for e in status.evidence}
            assert evidence["errorRate"].e_value >= evidence["errorRate"].boundary
            assert evidence["errorRate"].canary_total > 0
        else:
            assert rolled_back_after.total_seconds() >= 4 * 30
            assert status.evidence == []
        assert w.route_weight() == 0


async def test_counts_between_analyses_roll_back_before_the_interval_ends() -> None:
    """A 2-minute interval with counts every 10 s: the evidence does not wait for the interval."""
    analysis = {**patient(sequential=True), "interval": "2m", "sequential": {"every": "10s"}}
    async with world(stable_and_canary(error_share=0.08), analysis=analysis) as w:
        await start_rollout(w)
        began = w.now
        await w.run_until(ROLLED_BACK)
        status = w.status()
        rolled_back = next(h.time for h in status.history if h.phase is Phase.ROLLING_BACK)
        assert (rolled_back - began).total_seconds() <= 25
        assert status.last_analysis_at is None
        assert (status.message or "").startswith("sequential test: errorRate")
        assert w.route_weight() == 0


async def test_the_canary_burning_its_error_budget_is_rolled_back() -> None:
    """8% of the canary's requests fail: an 8x burn of a 99% objective, in both windows."""
    checks = {
        "errorBudget": {
            "objectivePercent": 99,
            "windows": [{"long": "1h", "short": "1m", "maxBurnRate": 5}],
        }
    }
    analysis = patient(sequential=False)
    async with world(stable_and_canary(error_share=0.08), analysis=analysis, checks=checks) as w:
        await start_rollout(w)
        await w.run_until(ROLLED_BACK)
        status = w.status()
        assert (status.message or "").startswith("error budget: failed: the canary burns its")
        assert status.budget is not None
        assert status.budget.tiers[0].long_burn == pytest.approx(8.0, rel=0.01)
        assert status.budget.query is not None
        assert status.budget.query.startswith('bad: label_replace(http_requests_total{code=~"5.."')
        assert status.failed_analyses == 0  # the thresholds had not failed four times yet


async def test_a_deleted_target_takes_the_canary_weight_back_at_once() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        await w.run_until(lambda w: w.route_weight() == 10)
        w.api.delete(DEPLOYMENTS, NS, "app")
        await w.tick(1)
        assert w.route_weight() == 0
        await w.tick(1)
        status = w.status()
        assert (status.phase, status.reason) == (Phase.ROLLED_BACK, "TargetNotFound")
        assert "Deployment app not found" in (status.message or "")
        reasons = [e["reason"] for e in w.api.list_objects("events", NS)]
        assert "TargetNotFound" in reasons


async def test_a_revision_landing_during_a_failed_promotion_gets_no_traffic() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        analysed = w.status().revision
        w.api.fail_next("PUT", f"{DEPLOYMENTS}/app-primary", status=500, times=100)
        await w.run_until(lambda w: w.status().phase is Phase.PROMOTING)
        assert w.route_weight() == 20
        w.release("app:3")  # GitOps lands a new revision; the canary Service selects it
        await w.tick(5)
        status = w.status()
        assert status.revision != analysed
        assert (status.phase, status.canary_weight, w.route_weight()) == (Phase.PROGRESSING, 0, 0)
        assert f"{analysed} was not promoted" in (status.message or "")
        primary = w.api.get(DEPLOYMENTS, NS, "app-primary")
        assert primary is not None
        assert scenario.version_of(primary) != "app:2"


async def test_a_reconcile_failing_every_tick_surfaces_and_ends_with_traffic_on_stable() -> None:
    """The safety net under causes nobody found yet: a reconcile that raises on every tick."""
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        await w.run_until(lambda w: w.route_weight() == 10)
        streak = Streak()
        bug = RuntimeError("a bug nobody found yet")
        for tick in range(6):  # consecutiveErrorLimit is 4: the 5th failure, 30s on, restores
            w.now += timedelta(seconds=10)
            await report_failure(
                CANARY_RESOURCE, w.canary(), w.wiring, bug, streak, canary_restore(w.canary())
            )
            status = w.status()
            ready = condition(status, "Ready")
            assert ready is not None
            assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "ReconcileFailed")
            assert "a bug nobody found yet" in ready.message
            if tick < 4:
                assert (status.phase, w.route_weight()) == (Phase.PROGRESSING, 10)
        assert (status.phase, status.reason, w.route_weight()) == (
            Phase.ROLLED_BACK,
            "ReconcileFailed",
            0,
        )
        events = [e for e in w.api.list_objects("events", NS) if e["reason"] == "ReconcileFailed"]
        assert len(events) == 1
        assert events[0]["type"] == "Warning"
        assert events[0]["count"] == 6
        await w.tick(5)  # the bug is gone: the engine resumes from status, traffic stays back
        status = w.status()
        assert (status.phase, w.route_weight()) == (Phase.ROLLED_BACK, 0)
        ready = condition(status, "Ready")
        assert ready is not None
        assert ready.reason != "ReconcileFailed"


async def test_a_stored_status_the_model_refuses_is_repaired_not_a_freeze() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.api.patch_status(CANARIES, NS, "app", {"stepSamples": -5, "checks": "garbage"})
        outcome = await w.tick(5)
        assert outcome.status_written
        status = w.status()
        assert status.phase is Phase.PROGRESSING
        assert w.canary()["status"]["checks"] != "garbage"


async def test_a_request_id_longer_than_status_allows_acts_once_and_is_recorded() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        request = {"metadata": {"annotations": {"tollgate.dev/request": "pause@" + "x" * 300}}}
        w.api.patch(CANARIES, NS, "app", request)
        outcome = await w.tick(1)
        assert outcome.status_written
        status = w.status()
        assert status.phase is Phase.PAUSED
        assert status.last_intent is not None
        assert status.last_intent.startswith("pause@sha256:")
        w.api.patch(
            CANARIES, NS, "app", {"metadata": {"annotations": {"tollgate.dev/request": "resume@2"}}}
        )
        await w.tick(1)
        await w.tick(1)  # the long pause is not handled again
        assert w.status().phase is Phase.PROGRESSING


async def test_a_second_canary_on_the_same_target_is_refused_and_touches_nothing() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        await w.run_until(lambda w: w.route_weight() == 10)
        second = canary_body()
        second["metadata"]["name"] = "app-again"
        w.api.create(CANARIES, second)
        w.api.clear_requests()
        for _ in range(3):
            await reconcile_canary(w.api.get(CANARIES, NS, "app-again") or {}, w.wiring)
        assert w.api.writes(ROUTES) == []
        assert w.api.writes(DEPLOYMENTS) == []
        theirs = scenario.rollout_status(w.api, "app-again")
        stalled = condition(theirs, "Stalled")
        assert stalled is not None
        assert (stalled.status, stalled.reason) == (ConditionStatus.TRUE, "TargetClaimed")
        assert "is driven by Canary default/app" in stalled.message
        reasons = [e["reason"] for e in w.api.list_objects("events", NS)]
        assert "TargetClaimed" in reasons
        await w.tick(5)
        assert w.status().phase is Phase.PROGRESSING  # the first one goes on undisturbed
        assert w.route_weight() == 10
        w.api.delete(CANARIES, NS, "app")  # the holder goes: its claim is stale, taken over
        await reconcile_canary(w.api.get(CANARIES, NS, "app-again") or {}, w.wiring)
        deployment = w.api.get(DEPLOYMENTS, NS, "app") or {}
        claim = deployment["metadata"]["annotations"]["tollgate.dev/claimed-by"]
        assert claim.startswith("default/app-again/")


async def test_an_invalid_spec_mid_rollout_puts_traffic_back_after_a_bound() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        await w.run_until(lambda w: w.route_weight() == 10)
        broken = {"name": "broken", "query": "sum(rate(x[1m])", "max": 1}
        w.api.patch(CANARIES, NS, "app", {"spec": {"checks": {"custom": [broken]}}})
        await w.tick(1)
        for _ in range(4):  # within the grace: a typo being fixed keeps the rollout as it was
            await w.tick(60)
            assert w.route_weight() == 10
        await w.tick(60)
        status = w.status()
        assert (w.route_weight(), status.phase, status.reason) == (0, Phase.PAUSED, "InvalidSpec")
        assert "traffic is back on the stable version" in (status.message or "")
        reasons = [e["reason"] for e in w.api.list_objects("events", NS)]
        assert "TrafficRestored" in reasons
        fixed = w.canary()
        fixed["spec"]["checks"].pop("custom")
        w.api.replace(CANARIES, NS, "app", fixed)
        await w.tick(30)
        assert w.route_weight() == 0  # paused until someone resumes
        w.api.patch(
            CANARIES, NS, "app", {"metadata": {"annotations": {"tollgate.dev/request": "resume@1"}}}
        )
        await w.tick(1)
        await w.tick(1)
        assert (w.status().current_step, w.route_weight()) == (1, 5)  # the steps start again


async def test_a_missing_route_is_recorded_once_not_every_tick() -> None:
    async with world(stable_and_canary()) as w:
        await start_rollout(w)
        w.api.delete(ROUTES, NS, "app")
        await w.tick(1)
        routed = condition(w.status(), "TrafficRouted")
        assert routed is not None
        assert (routed.status, routed.reason) == (ConditionStatus.FALSE, "RouteNotFound")
        w.api.clear_requests()
        for _ in range(3):
            outcome = await w.tick(1)
            assert not outcome.status_written  # nothing changed: nothing written
        assert w.api.writes(CANARIES) == []
