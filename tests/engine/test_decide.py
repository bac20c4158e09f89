"""Single decisions from chosen states, table-driven; plus conditions and status bookkeeping."""

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.engine.sim import T0, World, make_spec
from tollgate.api.status import (
    HISTORY_LIMIT,
    ConditionStatus,
    EvidenceKind,
    Phase,
    RolloutStatus,
    Verdict,
)
from tollgate.engine import Observations, decide
from tollgate.engine.conditions import condition, with_invalid_spec
from tollgate.engine.decision import EventKind, Notify, Promote, SetWeight
from tollgate.engine.sequential import Amount, Batch


def at_step_one(**spec: Any) -> World:
    """A world whose rollout of rev2 just reached step 1 (5%)."""
    world = World(spec=make_spec(**spec))
    world.tick()
    world.revision = "rev2"
    world.tick(after=10)
    assert world.status.current_step == 1, world.status.message
    return world


def test_initializing_waits_for_the_stable_version() -> None:
    d = decide(make_spec(), RolloutStatus(), Observations(revision="r1"), T0)
    assert d.status.phase is None or d.status.phase is Phase.INITIALIZING
    assert d.actions == ()
    assert d.reason == "Initializing"
    assert d.requeue_after is not None


def test_initializing_adopts_the_stable_version() -> None:
    d = decide(make_spec(), RolloutStatus(), Observations(revision="r1", stable_revision="r1"), T0)
    assert d.status.phase is Phase.SUCCEEDED
    assert d.status.stable_revision == "r1"
    assert d.actions == ()
    assert d.requeue_after is None


def test_unready_canary_gets_no_traffic_and_the_deadline_applies() -> None:
    world = World(spec=make_spec(analysis={"progressDeadline": "2m"}))
    world.tick()
    world.revision, world.ready = "rev2", False
    d = world.tick(after=1)
    assert (d.status.phase, d.status.canary_weight, d.reason) == (
        Phase.PROGRESSING,
        0,
        "WaitingForCanary",
    )
    d = world.tick(after=119)
    assert d.status.phase is Phase.PROGRESSING
    d = world.tick(after=2)
    assert d.status.phase is Phase.ROLLED_BACK  # weight was already 0: done at once
    assert d.reason == "ProgressDeadlineExceeded"


def test_webhook_gate_before_rollout() -> None:
    world = World(
        spec=make_spec(
            gates=[
                {
                    "name": "hook",
                    "stage": "BeforeRollout",
                    "type": "Webhook",
                    "webhook": {"url": "http://hook.test/x"},
                }
            ]
        )
    )
    world.tick()
    world.revision = "rev2"
    d = world.tick(after=1)
    assert (d.status.canary_weight, d.reason, d.status.pending_gates) == (
        0,
        "WaitingForGate",
        ["hook"],
    )
    d = world.tick(after=5, gates={"hook": "Error"})
    assert d.status.canary_weight == 0
    d = world.tick(after=5, gates={"hook": "Closed"})
    assert d.status.canary_weight == 0
    d = world.tick(after=5, gates={"hook": "Open"})
    assert d.status.canary_weight == 5
    assert d.status.pending_gates == []


@pytest.mark.parametrize(
    ("spec", "metrics", "phase", "weight", "reason"),
    [
        ({"analysis": {"failureLimit": 0}}, "fail", Phase.ROLLING_BACK, 0, "AnalysisFailed"),
        ({"analysis": {"failureLimit": 1}}, "fail", Phase.PROGRESSING, 5, "AnalysisFailed"),
        ({"analysis": {"failureLimit": 0}}, "fail-errors", Phase.ROLLING_BACK, 0, "AnalysisFailed"),
        (
            {"analysis": {"consecutiveErrorLimit": 0}},
            "error",
            Phase.ROLLING_BACK,
            0,
            "MetricsUnavailable",
        ),
        (
            {"analysis": {"consecutiveErrorLimit": 0, "onConsecutiveErrors": "Hold"}},
            "error",
            Phase.PROGRESSING,
            5,
            "MetricsUnavailable",
        ),
        ({}, "error", Phase.PROGRESSING, 5, "MetricsError"),
        ({}, "nodata", Phase.PROGRESSING, 5, "WaitingForData"),
        (
            {"analysis": {"noData": "Fail", "failureLimit": 0}},
            "nodata",
            Phase.ROLLING_BACK,
            0,
            "AnalysisFailed",
        ),
        ({}, "lowdata", Phase.PROGRESSING, 5, "WaitingForData"),
        ({}, "pass", Phase.PROGRESSING, 10, "StepUp"),
        ({"analysis": {"analysesPerStep": 2}}, "pass", Phase.PROGRESSING, 5, "AnalysisPassed"),
        ({}, "none", Phase.PROGRESSING, 5, "StepUp"),
    ],
)
def test_one_analysis(
    spec: dict[str, Any], metrics: str, phase: Phase, weight: int, reason: str
) -> None:
    world = at_step_one(**spec)
    d = world.tick(after=30, metrics=metrics)
    assert (d.status.phase, d.status.canary_weight, d.reason) == (phase, weight, reason)


def test_an_early_reading_is_not_counted() -> None:
    world = at_step_one()
    d = world.tick(after=10, metrics="fail")
    assert d.status.failed_analyses == 0
    assert d.status.last_analysis_at is None


def test_a_reading_is_counted_once_per_interval() -> None:
    world = at_step_one(analysis={"failureLimit": 5})
    world.tick(after=30, metrics="fail")
    d = world.tick(after=0, metrics="fail")
    d = world.tick(after=5, metrics="fail")
    assert d.status.failed_analyses == 1
    d = world.tick(after=25, metrics="fail")
    assert d.status.failed_analyses == 2


def test_a_failure_resets_the_passes_of_the_step() -> None:
    world = at_step_one(analysis={"analysesPerStep": 2, "failureLimit": 3})
    assert world.tick(after=30, metrics="pass").status.step_passed_analyses == 1
    assert world.tick(after=30, metrics="fail").status.step_passed_analyses == 0
    assert world.tick(after=30, metrics="pass").status.canary_weight == 5
    assert world.tick(after=30, metrics="pass").status.canary_weight == 10


def test_timed_pause_holds_then_steps() -> None:
    world = at_step_one(analysis={"pauses": [{"weight": 5, "duration": "2m"}]})
    d = world.tick(after=30, metrics="pass")
    assert (d.status.canary_weight, d.reason) == (5, "StepPause")
    d = world.tick(after=60, metrics="pass")
    assert d.status.canary_weight == 5
    d = world.tick(after=61)
    assert d.status.canary_weight == 10


def test_skip_analysis_steps_on_time_alone() -> None:
    world = at_step_one(skipAnalysis=True, checks=None)
    d = world.tick(after=29)
    assert d.status.canary_weight == 5
    d = world.tick(after=1)
    assert d.status.canary_weight == 10


def test_target_reverted_to_stable_mid_rollout() -> None:
    world = at_step_one()
    world.revision = "rev1"
    d = world.tick(after=5)
    assert (d.status.phase, d.status.canary_weight, d.reason) == (
        Phase.SUCCEEDED,
        0,
        "RevertedToStable",
    )
    assert SetWeight(0) in d.actions


def test_stuck_promotion_keeps_asking_and_keeps_the_weight() -> None:
    world = at_step_one(analysis={"stepWeights": [5], "maxWeight": None})
    world.promotion_stuck = True
    d = world.tick(after=30, metrics="pass")
    assert d.status.phase is Phase.PROMOTING
    for _ in range(3):
        d = world.tick(after=5)
        assert d.actions == (Promote("rev2"),)
        assert d.status.canary_weight == 5
    world.promotion_stuck = False
    world.tick(after=5)
    d = world.tick(after=5)
    assert (d.status.phase, d.status.stable_revision) == (Phase.SUCCEEDED, "rev2")


def test_a_new_revision_during_a_stuck_promotion_gets_no_traffic_and_starts_over() -> None:
    world = at_step_one(analysis={"stepWeights": [5], "maxWeight": None})
    world.promotion_stuck = True
    world.tick(after=30, metrics="pass")
    world.revision = "rev3"  # GitOps moved the target on: the canary Service now selects rev3
    world.promotion_stuck = False
    d = world.tick(after=5)
    assert (d.status.phase, d.status.revision, d.status.canary_weight) == (
        Phase.PROGRESSING,
        "rev3",
        0,
    )
    assert SetWeight(0) in d.actions
    assert Promote("rev2") not in d.actions
    assert "rev2 was not promoted" in d.message
    assert world.stable == "rev1"


def test_a_promotion_that_landed_completes_although_the_target_moved_on() -> None:
    world = at_step_one(analysis={"stepWeights": [5], "maxWeight": None})
    d = world.tick(after=30, metrics="pass")
    assert d.status.phase is Phase.PROMOTING
    assert world.stable == "rev2"
    world.revision = "rev3"
    d = world.tick(after=5)
    assert (d.status.phase, d.status.stable_revision, d.status.canary_weight) == (
        Phase.SUCCEEDED,
        "rev2",
        0,
    )
    d = world.tick(after=5)
    assert (d.status.phase, d.status.revision) == (Phase.PROGRESSING, "rev3")


def test_a_promotion_that_never_lands_is_rolled_back_at_the_deadline() -> None:
    world = at_step_one(analysis={"stepWeights": [5], "maxWeight": None, "progressDeadline": "2m"})
    world.promotion_stuck = True
    d = world.tick(after=30, metrics="pass")
    assert d.status.phase is Phase.PROMOTING
    d = world.tick(after=119)
    assert d.status.phase is Phase.PROMOTING
    d = world.tick(after=2)
    assert (d.status.phase, d.reason, d.status.canary_weight) == (
        Phase.ROLLING_BACK,
        "PromotionStalled",
        0,
    )
    assert SetWeight(0) in d.actions
    assert any(isinstance(a, Notify) and a.warning for a in d.actions)
    assert world.tick(after=5).status.phase is Phase.ROLLED_BACK


@pytest.mark.parametrize("promoting", [False, True])
def test_a_deleted_target_is_rolled_back_at_once(promoting: bool) -> None:
    world = at_step_one(analysis={"stepWeights": [5], "maxWeight": None})
    if promoting:
        world.promotion_stuck = True
        assert world.tick(after=30, metrics="pass").status.phase is Phase.PROMOTING
    world.gone = True
    d = world.tick(after=5)
    assert (d.status.phase, d.reason, d.status.canary_weight) == (
        Phase.ROLLING_BACK,
        "TargetNotFound",
        0,
    )
    assert SetWeight(0) in d.actions
    assert "Deployment app not found" in d.message
    assert world.tick(after=5).status.phase is Phase.ROLLED_BACK


def test_an_unreadable_target_holds_and_is_bounded_by_the_deadline() -> None:
    world = at_step_one(analysis={"progressDeadline": "2m"})
    world.revision = None  # type: ignore[assignment]  # read failed: no revision, not gone
    for _ in range(3):
        d = world.tick(after=30, metrics="pass")
        assert (d.status.phase, d.status.canary_weight, d.reason) == (
            Phase.PROGRESSING,
            5,
            "TargetUnavailable",
        )
    d = world.tick(after=35, metrics="pass")
    assert (d.status.phase, d.reason) == (Phase.ROLLING_BACK, "ProgressDeadlineExceeded")


@pytest.mark.parametrize(
    ("ticks", "ready", "reconciling", "stalled", "promoted", "rolled_back"),
    [
        (None, "True", "False", "False", "False", "False"),  # initialised, nothing in flight
        ([], "False", "True", "False", "False", "False"),  # progressing at step 1
        ([{"intent": "pause"}], "False", "True", "False", "False", "False"),
        ([{"intent": "abort"}], "False", "True", "False", "False", "True"),
        ([{"intent": "abort"}, {}], "False", "False", "True", "False", "True"),
        ([{"intent": "promote"}], "False", "True", "False", "False", "False"),
        ([{"intent": "promote"}, {}], "True", "False", "False", "True", "False"),
        ([{"intent": "promote"}, {}, {"after": 600}], "True", "False", "False", "True", "False"),
    ],
)
def test_kstatus_conditions(
    ticks: list[dict[str, Any]] | None,
    ready: str,
    reconciling: str,
    stalled: str,
    promoted: str,
    rolled_back: str,
) -> None:
    if ticks is None:
        world = World(spec=make_spec())
        world.tick()
    else:
        world = at_step_one()
        for tick in ticks:
            world.tick(**{"after": 1, **tick})
    got = {c.type: c.status.value for c in world.status.conditions}
    want = {
        "Ready": ready,
        "Reconciling": reconciling,
        "Stalled": stalled,
        "Promoted": promoted,
        "RolledBack": rolled_back,
    }
    assert got == want, world.status.message
    assert all(c.observed_generation == 1 for c in world.status.conditions)


def test_condition_transition_time_only_moves_on_a_flip() -> None:
    world = at_step_one()
    ready = condition(world.status, "Ready")
    assert ready is not None
    assert ready.status is ConditionStatus.FALSE
    world.tick(after=30, metrics="pass")
    again = condition(world.status, "Ready")
    assert again is not None
    assert again.last_transition_time == ready.last_transition_time


def test_invalid_spec_status_keeps_traffic_and_phase() -> None:
    world = at_step_one()
    before = world.status
    stalled = with_invalid_spec(before, ["spec.analysis.interval: too short"], 2, T0)
    assert (stalled.phase, stalled.canary_weight, stalled.current_step) == (
        before.phase,
        before.canary_weight,
        before.current_step,
    )
    cond = condition(stalled, "Stalled")
    assert cond is not None
    assert cond.status is ConditionStatus.TRUE
    assert cond.reason == "InvalidSpec"
    assert "spec.analysis.interval" in cond.message
    assert stalled.observed_generation == 2
    assert with_invalid_spec(stalled, ["spec.analysis.interval: too short"], 2, T0) == stalled


def test_history_is_bounded() -> None:
    world = World(spec=make_spec(analysis={"failureLimit": 0}))
    world.tick()
    for i in range(30):
        world.revision = f"rev{i + 2}"
        world.tick(after=10)
        world.tick(after=30, metrics="fail")
        world.tick(after=1)
    assert len(world.status.history) == HISTORY_LIMIT
    assert world.status.history[-1].phase is Phase.ROLLED_BACK


def test_requeue_follows_the_analysis_clock() -> None:
    world = at_step_one()
    d = world.tick(after=10)
    assert d.requeue_after == pytest.approx(20.0)
    d = world.tick(after=20, metrics="pass")
    assert d.requeue_after == pytest.approx(30.0)


def test_counts_are_read_between_analyses_at_sequential_every() -> None:
    world = at_step_one(
        analysis={"interval": "60s", "sequential": {"enabled": True, "every": "10s"}}
    )
    d = world.tick(after=10, counts={"errorRate": [300, 3, 5700, 57]})
    assert d.status.last_count_at == world.now
    assert d.status.last_analysis_at is None  # the thresholds wait for their interval
    assert d.requeue_after == pytest.approx(10.0)
    assert [e.name for e in d.status.evidence] == ["errorRate.max"]
    bad = world.tick(after=10, counts={"errorRate": [300, 60, 5700, 57]})
    assert bad.status.phase is Phase.ROLLING_BACK  # 20 s into a 60 s interval


def test_requests_are_handled_once() -> None:
    world = at_step_one()
    obs = world.observe(intent="pause")
    d1 = decide(world.spec, world.status, obs, world.now + timedelta(seconds=1), 1)
    assert d1.status.phase is Phase.PAUSED
    d2 = decide(
        world.spec,
        d1.status.model_copy(update={"phase": Phase.PROGRESSING, "paused_by_user": False}),
        obs,
        world.now + timedelta(seconds=2),
        1,
    )
    assert d2.status.phase is Phase.PROGRESSING


def test_the_canary_error_budget_rollback_names_the_tier_and_both_burn_rates() -> None:
    world = at_step_one(
        checks={"errorBudget": {"objectivePercent": 99.9}},
        analysis={"sequential": {"enabled": False}},
    )
    d = world.tick(after=10, counts={"errorBudget": [400, 12, 7600, 4]})
    assert d.status.phase is Phase.ROLLING_BACK
    budget = d.status.budget
    assert budget is not None
    assert budget.verdict is Verdict.FAIL
    assert [t.long_burn for t in budget.tiers] == [pytest.approx(30.0), pytest.approx(30.0)]
    assert "error budget: failed: the canary burns its error budget too fast" in d.message
    # 12 of 400 is evidence against the 6x tier's 0.6%, not yet against the 14.4x tier's 1.44%
    assert (
        "6x tier: 30x over the rollout's 10s (window 6h) (400 requests), "
        "30x over the rollout's 10s (window 30m)"
    ) in d.message
    assert "12 of 400 requests failed" in d.message
    event = next(a for a in d.actions if isinstance(a, Notify) and a.event is EventKind.ANALYSIS)
    assert event.reason == "AnalysisFailed"
    assert event.warning
    assert "errorBudget burn Fail over the rollout's 10s: 14.4x tier 30x/30x" in event.message
    said = [a.event for a in d.actions if isinstance(a, Notify)]
    assert said == [EventKind.ANALYSIS, EventKind.ROLLING_BACK]  # the analysis, then the decision


def test_a_passing_analysis_is_explained_in_an_event() -> None:
    world = at_step_one(
        checks={"errorRate": {"maxIncreasePoints": 1}},
        analysis={"sequential": {"enabled": True, "minSamples": 20}},
    )
    counts = {
        "errorRate": [300, 3, 5700, 57],
        "latency": [300, 15, 5700, 285],
        "latency.max": [300, 0, 5700, 0],
    }
    d = world.tick(after=30, metrics="pass", counts=counts)
    events = [a for a in d.actions if isinstance(a, Notify) and a.event is EventKind.ANALYSIS]
    assert len(events) == 1
    event = events[0]
    assert event.reason == "AnalysisPassed"
    assert not event.warning
    assert event.message.startswith("analysis at 5%: latency Pass: no test finds a breach")
    assert "window estimate 200ms vs stable 200ms (shown, not judged)" in event.message
    assert "; errorRate Pass: " in event.message
    assert "errorRate sequential Pass: canary 3/300 (1.00%) vs stable 57/5700 (1.00%)" in (
        event.message
    )
    assert "errorRate.max sequential Pass: canary 3/300 (1.00%), bad share <= 1%" in (event.message)
    evidence = d.status.evidence[0]
    assert evidence.name == "errorRate"
    assert evidence.verdict is Verdict.PASS
    assert evidence.message.startswith("passing: e-value")
    again = decide(world.spec, d.status, world.observe(), world.now + timedelta(seconds=1), 1)
    assert not [a for a in again.actions if isinstance(a, Notify)]  # nothing new, nothing said


def test_evidence_waits_for_min_samples_and_says_so() -> None:
    world = at_step_one(
        checks={"errorRate": {"maxIncreasePoints": 1}},
        analysis={"sequential": {"enabled": True, "minSamples": 50}},
    )
    d = world.tick(after=30, counts={"errorRate": [10, 9, 190, 1]})
    evidence = d.status.evidence[0]
    assert evidence.verdict is Verdict.INCONCLUSIVE
    assert evidence.message.startswith("waiting: 10 of the 50 requests needed before a verdict")
    assert d.status.phase is Phase.PROGRESSING


def test_a_plan_that_cannot_resolve_a_limit_at_the_traffic_seen_says_so() -> None:
    world = at_step_one(checks={"latency": None}, analysis={"sequential": {"enabled": True}})
    # 2 canary requests per 30 s at 5%: the plan (5..20%, 10-minute deadline at the top) can
    # show about 100 more; a 1% limit needs 3,397
    d = world.tick(after=30, metrics="lowdata", counts={"errorRate": [2, 0, 38, 0]})
    evidence = {e.name: e for e in d.status.evidence}["errorRate.max"]
    assert evidence.needed == 3397
    assert "the plan can reach about " in evidence.message
    assert "3,397 are needed to resolve this limit" in evidence.message
    # with traffic enough for the plan, nothing is said
    busy = at_step_one(checks={"latency": None}, analysis={"sequential": {"enabled": True}})
    d = busy.tick(after=30, metrics="pass", counts={"errorRate": [500, 0, 9500, 95]})
    evidence = {e.name: e for e in d.status.evidence}["errorRate.max"]
    assert "the plan can reach" not in evidence.message


def test_an_absolute_cost_limit_is_a_test_on_what_requests_cost() -> None:
    cost = {
        "pricing": {"inputPerMillionTokens": 2, "outputPerMillionTokens": 8},
        "maxPerRequest": 0.005,
    }
    world = at_step_one(
        checks={"latency": None, "errorRate": None, "costPerRequest": cost},
        analysis={"sequential": {"enabled": True}},
    )
    cheap = Observations(
        revision="rev2",
        stable_revision="rev1",
        weight=5,
        counts={"errorRate": Batch(100, 0, 1900, 0)},
        amounts={"costPerRequest.max": Amount(100, 0.4, 1900, 7.6)},
    )
    d = decide(world.spec, world.status, cheap, world.now + timedelta(seconds=10), 1)
    evidence = {e.name: e for e in d.status.evidence}["costPerRequest.max"]
    assert evidence.kind is EvidenceKind.MEAN
    assert evidence.verdict is Verdict.PASS
    assert evidence.null == 0.005
    status = d.status
    dear = Observations(
        revision="rev2",
        stable_revision="rev1",
        weight=5,
        amounts={"costPerRequest.max": Amount(100, 1.5, 1900, 7.6)},  # 3x the limit
        counts={"errorRate": Batch(100, 0, 1900, 0)},
    )
    for i in range(20):
        d = decide(world.spec, status, dear, world.now + timedelta(seconds=20 + 10 * i), 1)
        status = d.status
        if status.phase is Phase.ROLLING_BACK:
            break
    assert status.phase is Phase.ROLLING_BACK
    assert "costPerRequest.max (mean cost per request <= 0.005)" in d.message
    assert "per request" in d.message


def test_a_limit_the_metrics_cannot_count_is_judged_on_its_window() -> None:
    world = at_step_one(checks={"errorRate": None}, analysis={"sequential": {"enabled": True}})
    why = "no bucket bound separates the stable's requests"
    obs = world.observe(metrics="fail", counts={"latency.max": [500, 10, 9500, 190]})
    obs = replace(obs, untestable={"latency": why})
    d = decide(world.spec, world.status, obs, world.now + timedelta(seconds=30), 1)
    evidence = {e.name: e for e in d.status.evidence}
    assert evidence["latency"].verdict is Verdict.INCONCLUSIVE
    assert evidence["latency"].message.startswith(f"not counted: {why}")
    checks = {c.name: c for c in d.status.checks}
    # latency.max is counted and passes; the relative limit falls to the window: 900 vs 200 ms
    assert checks["latency"].verdict is Verdict.FAIL
    assert "window: " in checks["latency"].message
