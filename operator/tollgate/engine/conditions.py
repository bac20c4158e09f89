"""Conditions in the kstatus form that Flux, Argo CD and kubectl wait understand.

Ready / Reconciling / Stalled follow kstatus (Reconciling=True while a rollout is in flight,
Stalled=True when it ended badly and needs a person); Promoted and RolledBack say how the last
rollout ended. A condition's lastTransitionTime only moves when its status flips, so an
unchanged rollout yields an identical status and the operator writes nothing.
"""

from collections.abc import Sequence
from datetime import datetime

from tollgate.api.status import (
    Condition,
    ConditionStatus,
    Phase,
    RolloutStatus,
)

T, F = ConditionStatus.TRUE, ConditionStatus.FALSE
IN_FLIGHT = frozenset(
    {Phase.INITIALIZING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK}
)
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "Promoted", "RolledBack")


def _wanted(status: RolloutStatus) -> dict[str, tuple[ConditionStatus, str, str]]:
    phase = status.phase or Phase.INITIALIZING
    reason = status.reason or phase.value
    message = status.message or ""
    previous = {c.type: c.status for c in status.conditions}
    ended_promoted = phase is Phase.SUCCEEDED and (
        reason == "Promoted" or previous.get("Promoted") is T
    )
    rolled_back = phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    return {
        "Ready": (T, reason, message) if phase is Phase.SUCCEEDED else (F, phase.value, message),
        "Reconciling": (T, phase.value, message) if phase in IN_FLIGHT else (F, reason, ""),
        "Stalled": (T, reason, message) if phase is Phase.ROLLED_BACK else (F, phase.value, ""),
        "Promoted": (T, "Promoted", message) if ended_promoted else (F, phase.value, ""),
        "RolledBack": (T, reason, message) if rolled_back else (F, phase.value, ""),
    }


def merge(
    previous: Sequence[Condition],
    wanted: dict[str, tuple[ConditionStatus, str, str]],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """New conditions, keeping lastTransitionTime wherever the status did not flip."""
    old = {c.type: c for c in previous}
    merged: list[Condition] = []
    for ctype, (cstatus, reason, message) in wanted.items():
        before = old.get(ctype)
        since = now if before is None or before.status != cstatus else before.last_transition_time
        merged.append(
            Condition(
                type=ctype,
                status=cstatus,
                reason=reason,
                message=message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return merged


def conditions_for(status: RolloutStatus, generation: int | None, now: datetime) -> list[Condition]:
    """The conditions that match a status' phase; others (the runtime's TrafficRouted) kept.

    Dropping them made the runtime add them back with a new lastTransitionTime on every tick,
    and so write status every tick while a route was missing.
    """
    wanted = _wanted(status)
    kept = [c for c in status.conditions if c.type not in wanted]
    return [*merge(status.conditions, wanted, generation, now), *kept]


def with_invalid_spec(
    status: RolloutStatus,
    problems: Sequence[str],
    generation: int | None,
    now: datetime,
    reason: str = "InvalidSpec",
) -> RolloutStatus:
    """Status for a spec only the operator can see is invalid: Stalled, nothing else changes.

    Phase, weight and counters are kept as they are: traffic stays where it was, and the
    rollout resumes from here once the spec is fixed.
    """
    message = ("invalid spec: " if reason == "InvalidSpec" else "") + "; ".join(problems)
    wanted = _wanted(status)
    wanted["Ready"] = (F, reason, message)
    wanted["Reconciling"] = (F, reason, message)
    wanted["Stalled"] = (T, reason, message)
    return status.model_copy(
        update={
            "conditions": merge(status.conditions, wanted, generation, now),
            "observed_generation": generation,
        }
    )


def with_reconcile_failure(
    status: RolloutStatus, message: str, generation: int | None, now: datetime
) -> RolloutStatus:
    """Status for a reconcile that failed: Ready=False (ReconcileFailed), the rest by phase.

    The next reconcile that works recomputes every condition from the phase, which clears it.
    """
    wanted = _wanted(status)
    wanted["Ready"] = (F, "ReconcileFailed", message)
    return status.model_copy(
        update={"conditions": merge(status.conditions, wanted, generation, now)}
    )


def condition(status: RolloutStatus, ctype: str) -> Condition | None:
    """One condition of a status by type."""
    return next((c for c in status.conditions if c.type == ctype), None)
