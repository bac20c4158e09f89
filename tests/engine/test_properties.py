"""Properties of the decision core, checked on random specs and random tick streams.

Each stream drives the engine through a simulated world (router weight follows SetWeight,
stable follows Promote) with random time steps, revisions, readiness, metric outcomes,
user requests, gate answers and router outages.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from tests.engine.sim import World, make_spec
from tollgate.api.canary import CanarySpec
from tollgate.api.status import TERMINAL_PHASES, Phase, Verdict
from tollgate.engine import decide
from tollgate.engine.decision import Promote, SetWeight
from tollgate.engine.plan import plan_for


@st.composite
def specs(draw: st.DrawFn) -> CanarySpec:
    analysis: dict[str, Any] = {
        "interval": "30s",
        "analysesPerStep": draw(st.integers(1, 3)),
        "failureLimit": draw(st.integers(0, 3)),
        "consecutiveErrorLimit": draw(st.integers(0, 4)),
        "onConsecutiveErrors": draw(st.sampled_from(["Rollback", "Hold"])),
        "progressDeadline": draw(st.sampled_from(["5m", "10m"])),
    }
    if draw(st.booleans()):
        weights = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=6)))
        analysis["stepWeights"] = weights
        plan = weights
    else:
        step = draw(st.integers(1, 50))
        top = draw(st.integers(step, 100))
        analysis.update(stepWeight=step, maxWeight=top)
        plan = list(range(step, top + 1, step))
        plan = plan if plan[-1] == top else [*plan, top]
    if draw(st.booleans()):
        pauses = draw(st.sets(st.sampled_from(plan), max_size=2))
        analysis["pauses"] = [
            {"weight": w, **({"duration": "1m"} if draw(st.booleans()) else {})} for w in pauses
        ]
    overrides: dict[str, Any] = {"analysis": analysis}
    if draw(st.booleans()):
        overrides["gates"] = [
            {"name": "manual", "stage": draw(st.sampled_from(["BeforeStep", "BeforePromotion"]))},
            {
                "name": "hook",
                "stage": "BeforeRollout",
                "type": "Webhook",
                "webhook": {"url": "http://hook.test/gate"},
            },
        ]
    overrides["skipAnalysis"] = draw(st.booleans()) and draw(st.booleans())
    return make_spec(**overrides)


@dataclass(frozen=True)
class TickInput:
    after: float
    revision: str
    ready: bool
    metrics: str
    intent: str | None
    hook: str
    router_broken: bool
    requirement: str | None
    counts: dict[str, list[float]] | None


ticks = st.builds(
    TickInput,
    after=st.sampled_from([0.0, 1.0, 5.0, 29.0, 30.0, 31.0, 45.0, 60.0, 120.0, 400.0]),
    revision=st.sampled_from(["rev1", "rev2", "rev2", "rev2", "rev3"]),
    ready=st.booleans() | st.just(True),
    metrics=st.sampled_from(
        [
            "pass",
            "pass",
            "pass",
            "pass",
            "fail",
            "fail-errors",
            "nodata",
            "lowdata",
            "error",
            "none",
        ]
    ),
    intent=st.none()
    | st.none()
    | st.none()
    | st.sampled_from(["pause", "resume", "promote", "abort", "retry"]),
    hook=st.sampled_from(["Open", "Open", "Closed", "Error"]),
    router_broken=st.booleans().map(lambda b: b and False) | st.just(False) | st.booleans(),
    requirement=st.none() | st.none() | st.sampled_from(["Met", "Met", "Waiting", "Failed"]),
    counts=st.none()
    | st.sampled_from(
        [
            {"errorRate": [50, 1, 950, 19]},
            {"errorRate": [50, 8, 950, 10], "latency": [50, 2, 950, 40]},
            {"latency": [0, 0, 950, 40]},
        ]
    ),
)


def run(spec: CanarySpec, stream: list[TickInput]) -> World:
    world = World(spec=spec)
    world.tick()  # initialise: rev1 becomes stable
    for t in stream:
        world.revision, world.ready, world.router_broken = t.revision, t.ready, t.router_broken
        world.requirement = t.requirement
        before = world.status
        obs = world.observe(
            metrics=t.metrics, intent=t.intent, gates={"hook": t.hook}, counts=t.counts
        )
        world.now += timedelta(seconds=t.after)
        decision = decide(world.spec, before, obs, world.now, generation=1)
        again = decide(world.spec, before, obs, world.now, generation=1)
        assert decision == again, "the same inputs must give the same decision"
        world.observations.append(obs)
        world.apply(decision)
        event(f"phase {decision.status.phase}")
    return world


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_weight_stays_on_the_step_grid(spec: CanarySpec, stream: list[TickInput]) -> None:
    grid = {0, *plan_for(spec.analysis).weights}
    world = run(spec, stream)
    for d in world.log:
        assert d.status.canary_weight in grid
        assert all(w in grid for w in d.weight_writes)
        assert 0 <= d.status.canary_weight <= plan_for(spec.analysis).max_weight


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_weight_only_rises_while_progressing(spec: CanarySpec, stream: list[TickInput]) -> None:
    world = run(spec, stream)
    previous = 0
    for d in world.log:
        if d.status.canary_weight > previous:
            assert d.status.phase is Phase.PROGRESSING
        previous = d.status.canary_weight


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_rollback_writes_weight_zero_in_the_same_decision(
    spec: CanarySpec, stream: list[TickInput]
) -> None:
    world = run(spec, stream)
    back = {Phase.ROLLING_BACK, Phase.ROLLED_BACK}
    for before, d in zip(world.log, world.log[1:], strict=False):
        if d.status.phase in back and before.status.phase not in back:
            assert d.status.canary_weight == 0
            assert SetWeight(0) in d.actions


@given(specs(), st.lists(ticks, min_size=1, max_size=80))
def test_no_promotion_without_passing_analyses(spec: CanarySpec, stream: list[TickInput]) -> None:
    """Every step's weight saw analysesPerStep passing analyses before an automatic promotion."""
    world = run(spec, stream)
    plan = plan_for(spec.analysis)
    passes: Counter[int] = Counter()
    for before, d in zip(world.log, world.log[1:], strict=False):
        if d.status.rollout_started_at != before.status.rollout_started_at:
            passes.clear()
        counted = d.status.last_analysis_at != before.status.last_analysis_at
        if counted and d.status.checks and all(c.verdict is Verdict.PASS for c in d.status.checks):
            passes[before.status.canary_weight] += 1
        entered = d.status.phase is Phase.PROMOTING and before.status.phase is not Phase.PROMOTING
        if entered and d.reason != "ManualPromotion" and not spec.skip_analysis:
            for weight in plan.weights:
                assert passes[weight] >= spec.analysis.analyses_per_step, (weight, passes)
        if any(isinstance(a, Promote) for a in d.actions):
            assert d.status.phase is Phase.PROMOTING


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_terminal_phase_holds_until_new_revision(spec: CanarySpec, stream: list[TickInput]) -> None:
    world = run(spec, stream)
    for before, obs, d in zip(world.log, world.observations[1:], world.log[1:], strict=False):
        if before.status.phase in TERMINAL_PHASES and obs.revision == before.status.revision:
            retried = obs.intent is not None and obs.intent.kind.value == "retry"
            if not retried:
                assert d.status.phase is before.status.phase
                assert d.status.canary_weight == 0 or d.status.phase is Phase.SUCCEEDED
                assert not d.weight_writes or d.weight_writes == (0,)


@given(specs(), st.lists(ticks, min_size=1, max_size=40))
def test_reconciles_at_a_fixed_time_settle_and_then_write_nothing(
    spec: CanarySpec, stream: list[TickInput]
) -> None:
    """Repeating a reconcile with unchanged inputs converges: no actions, identical status.

    A broken router keeps the engine re-sending its weight (by design), so the world is healed
    before settling.
    """
    world = run(spec, stream)
    world.router_broken = False
    for _ in range(4):
        world.tick()
    settled = world.log[-1]
    again = decide(world.spec, settled.status, world.observe(), world.now, generation=1)
    assert again.actions == ()
    assert again.status == settled.status


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_no_progress_unless_the_router_confirms_the_weight(
    spec: CanarySpec, stream: list[TickInput]
) -> None:
    """A step up or an automatic promotion needs the router to read back the current weight."""
    world = run(spec, stream)
    for before, obs, d in zip(world.log, world.observations[1:], world.log[1:], strict=False):
        rose = d.status.canary_weight > before.status.canary_weight
        promoted = d.status.phase is Phase.PROMOTING and before.status.phase is not Phase.PROMOTING
        if (rose and before.status.revision == d.status.revision) or (
            promoted and d.reason != "ManualPromotion"
        ):
            assert obs.weight == before.status.canary_weight


@given(specs(), st.lists(ticks, min_size=1, max_size=60))
def test_required_code_gates_traffic_and_promotion(
    spec: CanarySpec, stream: list[TickInput]
) -> None:
    """No first step and no promotion unless the required code is stable; a failed one rolls
    back an active rollout in the same decision."""
    world = run(spec, stream)
    active = {Phase.PROGRESSING, Phase.PAUSED}
    for before, obs, d in zip(world.log, world.observations[1:], world.log[1:], strict=False):
        state = obs.requirement.state.value if obs.requirement is not None else None
        promoted = d.status.phase is Phase.PROMOTING and before.status.phase is not Phase.PROMOTING
        first_step = before.status.current_step == 0 and d.status.current_step == 1
        if promoted or (
            first_step and d.status.rollout_started_at == before.status.rollout_started_at
        ):
            assert state in (None, "Met"), (state, d.reason)
        same_target = obs.revision == before.status.revision  # a revert to stable wins
        if state == "Failed" and before.status.phase in active and same_target:
            assert d.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), d.reason
