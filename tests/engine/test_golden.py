"""Golden transcripts: a sequence of observations per tick -> expected phase, weight, actions.

Each YAML file in golden/ is one scenario. A tick may change the world before it is observed
(revision, readiness, a broken router, a stuck promotion, a hand-edited router weight, the spec
itself), carries the tick's metrics shorthand, intent and gate answers, and states what the
decision must be. ``repeat`` runs a tick n times. The analysis Event every reading posts is
left out of ``actions`` and checked, where a transcript cares, by its reason under ``analysis``.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.sim import BASE_SPEC, World, make_spec, merge, render
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.engine.decision import Action, EventKind, Notify

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.yaml"))

PROMPT_BASE: dict[str, Any] = {
    "prompt": "answer",
    "versions": [{"name": "v1", "template": "a {q}"}, {"name": "v2", "template": "b {q}"}],
    "stable": "v1",
    "candidate": "v2",
    "publish": {"configMap": "answer-prompts"},
    "analysis": BASE_SPEC["analysis"],
    "checks": BASE_SPEC["checks"],
}


def build_spec(doc: dict[str, Any]) -> RolloutSpec:
    if doc.get("kind") == "PromptRelease":
        return PromptReleaseSpec.model_validate(merge(PROMPT_BASE, doc.get("spec", {})))
    return make_spec(**doc.get("spec", {}))


def test_there_are_transcripts() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    world = World(spec=build_spec(doc), **doc.get("world", {}))
    number = 0
    for tick in doc["ticks"]:
        for _ in range(tick.get("repeat", 1)):
            number += 1
            for key in (
                "revision",
                "ready",
                "router_broken",
                "promotion_stuck",
                "weight",
                "requirement",
            ):
                if key in tick:
                    setattr(world, key, tick[key])
            if "spec" in tick:
                world.spec = build_spec({**doc, "spec": merge(doc.get("spec", {}), tick["spec"])})
            decision = world.tick(
                after=tick.get("after", 0),
                metrics=tick.get("metrics", "none"),
                intent=tick.get("intent"),
                gates=tick.get("gates"),
                counts=tick.get("counts"),
            )
            expect = tick.get("expect", {})
            where = f"{path.name} tick {number} (t={world.now.isoformat()}): {decision.message}"
            got = {
                "phase": decision.status.phase.value if decision.status.phase else None,
                "weight": decision.status.canary_weight,
                "step": decision.status.current_step,
                "reason": decision.reason,
                "actions": [render(a) for a in decision.actions if not _reports(a)],
                "analysis": next(
                    (a.reason for a in decision.actions if isinstance(a, Notify) and _reports(a)),
                    None,
                ),
                "stable": decision.status.stable_revision,
                "failed": decision.status.failed_analyses,
                "errors": decision.status.consecutive_errors,
                "evidence": {e.name: round(e.e_value, 2) for e in decision.status.evidence},
            }
            for key, want in expect.items():
                assert got[key] == want, f"{where}: {key} = {got[key]!r}, expected {want!r}"


def _reports(action: Action) -> bool:
    """The analysis Event: checked by its own key, ``analysis`` (its reason)."""
    return isinstance(action, Notify) and action.event is EventKind.ANALYSIS
