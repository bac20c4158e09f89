"""A tiny deterministic world for engine tests: it applies the engine's actions and feeds back
what a router and a workload would report, so transcripts and properties can run many ticks.
"""

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.api.canary import CanarySpec
from tollgate.api.intents import Intent, IntentKind
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import RolloutStatus
from tollgate.engine import Decision, MetricReading, Observations, decide
from tollgate.engine.decision import Action, Notify, Promote, Rollback, SetWeight
from tollgate.engine.observations import GateState, Requirement, RequirementState
from tollgate.engine.sequential import Batch

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The state machine's transcripts judge per window (the explicit opt-in, sequential tests off),
# so a tick's verdict is its metrics shorthand; transcripts of the tests turn them on.
BASE_SPEC: dict[str, Any] = {
    "targetRef": {"name": "app"},
    "service": {"port": 80},
    "router": {"httpRoute": {"name": "app"}},
    "analysis": {
        "interval": "30s",
        "stepWeight": 5,
        "maxWeight": 20,
        "minSamples": 50,
        "sequential": {"enabled": False},
    },
    "checks": {
        "latency": {"maxMilliseconds": 300, "maxIncreasePercent": 10},
        "errorRate": {"maxPercent": 1},
    },
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of plain dicts; ``None`` in ``over`` deletes the key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_spec(**overrides: Any) -> CanarySpec:
    """The base Canary spec with overrides (camelCase keys, deep-merged)."""
    return CanarySpec.model_validate(merge(BASE_SPEC, overrides))


def readings(kind: str) -> tuple[MetricReading, ...] | None:
    """Metric readings by shorthand: pass, fail, fail-errors, nodata, lowdata, error, none."""
    if kind == "none":
        return None
    good_latency = MetricReading("latency", 0.200, 0.200, 500, 5000, query="q_latency")
    good_errors = MetricReading("errorRate", 0.001, 0.001, 500, 5000, query="q_errors")
    table = {
        "pass": (good_latency, good_errors),
        "fail": (MetricReading("latency", 0.900, 0.200, 500, 5000, query="q_latency"), good_errors),
        "fail-errors": (good_latency, MetricReading("errorRate", 0.08, 0.001, 500, 5000)),
        "nodata": (MetricReading("latency"), MetricReading("errorRate")),
        "lowdata": (
            MetricReading("latency", 0.2, 0.2, 3, 5000),
            MetricReading("errorRate", 0.0, 0.001, 3, 5000),
        ),
        "error": (
            MetricReading("latency", error="connection refused"),
            MetricReading("errorRate", error="connection refused"),
        ),
    }
    return table[kind]


def render(action: Action) -> str:
    """An action as a short string for transcripts."""
    if isinstance(action, SetWeight):
        return f"SetWeight {action.weight}"
    if isinstance(action, Promote):
        return f"Promote {action.revision}"
    if isinstance(action, Rollback):
        return f"Rollback {action.revision} {action.reason}"
    assert isinstance(action, Notify)
    return f"Notify {action.event.value} {action.reason}"


@dataclass
class World:
    """What the cluster looks like: the engine's actions change it, ticks may disturb it."""

    spec: RolloutSpec
    revision: str = "rev1"
    stable: str | None = "rev1"
    ready: bool = True
    weight: int | None = 0
    status: RolloutStatus = field(default_factory=RolloutStatus)
    now: datetime = T0
    router_broken: bool = False
    promotion_stuck: bool = False
    gone: bool = False  # the target was deleted
    intents: int = 0
    requirement: str | None = None  # a RequirementState value: the code a prompt needs
    log: list[Decision] = field(default_factory=list)
    observations: list[Observations] = field(default_factory=list)

    def observe(
        self,
        metrics: str = "none",
        intent: str | None = None,
        gates: dict[str, str] | None = None,
        counts: dict[str, list[float]] | None = None,
    ) -> Observations:
        request = None
        if intent is not None:
            self.intents += 1
            request = Intent(IntentKind(intent), f"{intent}@{self.intents}")
        return Observations(
            revision=None if self.gone else self.revision,
            stable_revision=self.stable,
            target_gone=self.gone,
            target_message="Deployment app not found" if self.gone else None,
            target_ready=self.ready,
            weight=None if self.router_broken else self.weight,
            metrics=readings(metrics),
            gates={k: GateState(v) for k, v in (gates or {}).items()},
            intent=request,
            requirement=None
            if self.requirement is None
            else Requirement(RequirementState(self.requirement), f"code is {self.requirement}"),
            counts={name: Batch(*row) for name, row in (counts or {}).items()},
        )

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, SetWeight) and not self.router_broken:
                self.weight = action.weight
            elif (
                isinstance(action, Promote)
                and not self.promotion_stuck
                and not self.gone
                and action.revision == self.revision  # the adapter promotes only this template
            ):
                self.stable = action.revision
        self.status = decision.status
        self.log.append(decision)

    def tick(self, after: float = 0.0, **observe: Any) -> Decision:
        self.now += timedelta(seconds=after)
        obs = self.observe(**observe)
        decision = decide(self.spec, self.status, obs, self.now, generation=1)
        self.observations.append(obs)
        self.apply(decision)
        return decision
