"""Prompt and code released together: where the code a PromptRelease needs stands.

A PromptRelease depends on a Canary when it names it (``spec.requires.canary``, optionally with
the exact ``revision``) or when the Canary lists it (``spec.prompts``). The order is code first:

1. the prompt gets no traffic, and is not promoted, until the code it needs is stable (the
   Canary promoted it). With a revision, that revision; without one, the Canary's latest
   release, whatever it is, so a prompt shipped next to a code release waits for it;
2. when that code is rolled back, the prompt rolls back too (without a revision: only when the
   rollback happened during the prompt's rollout; a release rolled back earlier left the code
   on its stable version, which is what the prompt is then tested on);
3. rolling back a prompt never touches its code.
Waiting on the code does not count against the prompt's progress deadline.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tollgate.adapters.kube.client import KubeClient, KubeError
from tollgate.adapters.kube.resources import CANARIES
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.status import ConditionStatus, Phase, RolloutStatus
from tollgate.engine.observations import Requirement, RequirementState


def dependency_names(name: str, spec: PromptReleaseSpec, canaries: Sequence[Any]) -> list[str]:
    """The Canaries a PromptRelease depends on: the one it names and those that list it."""
    names = {spec.requires.canary} if spec.requires is not None else set()
    for canary in canaries:
        if name in ((canary.get("spec") or {}).get("prompts") or ()):
            names.add(canary["metadata"]["name"])
    return sorted(names)


def _rolled_back_at(status: RolloutStatus) -> datetime | None:
    for c in status.conditions:
        if c.type == "RolledBack" and c.status is ConditionStatus.TRUE:
            return c.last_transition_time
    return None


def canary_requirement(
    canary: dict[str, Any] | None, name: str, revision: str | None, since: datetime
) -> Requirement:
    """One Canary's state for a prompt whose rollout (or its wait) began at ``since``."""
    if canary is None:
        return Requirement(RequirementState.WAITING, f"Canary {name} not found")
    status = RolloutStatus.model_validate(canary.get("status") or {})
    wanted = revision or status.revision
    if wanted is None:
        return Requirement(RequirementState.WAITING, f"Canary {name} has no release yet")
    if status.stable_revision == wanted:
        return Requirement(RequirementState.MET, f"Canary {name} runs revision {wanted} as stable")
    if status.revision == wanted and status.phase is Phase.ROLLED_BACK:
        at = _rolled_back_at(status)
        if revision is not None or (at is not None and at >= since):
            return Requirement(
                RequirementState.FAILED,
                f"Canary {name} rolled back revision {wanted}: {status.message or ''}".strip(),
            )
        return Requirement(
            RequirementState.MET,
            f"Canary {name} is on its stable revision {status.stable_revision}",
        )
    if status.revision == wanted:
        phase = status.phase.value if status.phase else "Initializing"
        return Requirement(
            RequirementState.WAITING,
            f"waiting for Canary {name} to promote revision {wanted} ({phase}, "
            f"{status.canary_weight}%)",
        )
    return Requirement(
        RequirementState.WAITING, f"Canary {name} has not started revision {wanted} yet"
    )


def combine(requirements: Sequence[Requirement]) -> Requirement | None:
    """Failed beats waiting beats met; None when nothing is required."""
    for state in (RequirementState.FAILED, RequirementState.WAITING):
        found = [r.message for r in requirements if r.state is state]
        if found:
            return Requirement(state, "; ".join(found))
    if requirements:
        return Requirement(RequirementState.MET, "; ".join(r.message for r in requirements))
    return None


async def code_requirement(
    kube: KubeClient,
    namespace: str,
    name: str,
    spec: PromptReleaseSpec,
    status: RolloutStatus,
    now: datetime,
) -> tuple[Requirement | None, list[str]]:
    """The combined requirement and the Canaries it came from (for wake-ups)."""
    try:
        canaries = await kube.list_objects(CANARIES, namespace)
    except KubeError as exc:
        return Requirement(RequirementState.WAITING, f"cannot read Canaries: {exc}"), []
    names = dependency_names(name, spec, canaries)
    by_name = {c["metadata"]["name"]: c for c in canaries}
    in_flight = status.phase in (Phase.PROGRESSING, Phase.PAUSED)
    since = status.rollout_started_at if in_flight and status.rollout_started_at else now
    pinned = spec.requires.revision if spec.requires is not None else None
    pinned_on = spec.requires.canary if spec.requires is not None else None
    found = [
        canary_requirement(by_name.get(n), n, pinned if n == pinned_on else None, since)
        for n in names
    ]
    return combine(found), names
