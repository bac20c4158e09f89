"""Every status the engine can build is one the CRD's status schema admits once written.

Why: the engine builds status without validation, from user input (request ids, selectors
inside queries) and Prometheus answers (non-finite values). A single value the schema refuses
made every status write a 422 and froze the rollout. Fuzzed here against the committed CRD's
schema, with the offline checker that tests/cluster keeps honest against the real server.
"""

import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crd.corpus import crd_for
from tests.crd.kube_schema import openapi_schema, schema_errors
from tollgate.adapters.kube.status import status_patch, wire
from tollgate.api.intents import parse_intent
from tollgate.api.status import (
    BudgetStatus,
    BurnTierStatus,
    CheckStatus,
    Condition,
    ConditionStatus,
    EvidenceStatus,
    HistoryEntry,
    Phase,
    RolloutStatus,
    Verdict,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1.0]),
)
texts = st.one_of(
    st.text(max_size=40), st.sampled_from([300, 1100, 9000, 33_000]).map(lambda n: "q" * n)
)


def status_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = openapi_schema(crd_for(kind))["properties"]["status"]
    return schema


@st.composite
def hostile_statuses(draw: st.DrawFn) -> RolloutStatus:
    """Statuses with every kind of value the schema refuses, few draws each (repeated)."""
    x, y, t = draw(floats), draw(floats), draw(texts)
    many = draw(st.sampled_from([0, 1, 17, 34, 60]))
    evidence = [
        EvidenceStatus.model_construct(
            name=f"check{i}",
            verdict=Verdict.INCONCLUSIVE,
            message=t,
            query=t,
            e_value=x,
            boundary=y,
            canary_total=x,
            objective=y,
            null=x,
            needed=y,
            log_e=[x] * many,
            carry=[y] * min(many, 8),
        )
        for i in range(min(many, 34))
    ]
    checks = [
        CheckStatus.model_construct(
            name=f"c{i}",
            verdict=Verdict.PASS,
            query=t,
            canary_value=x,
            stable_value=y,
            threshold=t,
            message=t,
        )
        for i in range(min(many, 34))
    ]
    tier = BurnTierStatus.model_construct(
        long="6h" * draw(st.integers(1, 40)),
        short="30m",
        max_burn_rate=x,
        long_burn=y,
        e_value=x,
        log_e=[y] * many,
    )
    budget = BudgetStatus.model_construct(
        verdict=Verdict.PASS,
        message=t,
        query=t,
        canary_bad=x,
        tiers=[tier] * min(many, 8),
        readings=[[x, y]] * (many * 3),
    )
    history = [
        HistoryEntry(time=NOW, phase=Phase.PROGRESSING, weight=5, step=1, reason="StepUp")
    ] * many
    condition = Condition(
        type="Ready", status=ConditionStatus.FALSE, reason="X", last_transition_time=NOW
    )
    intent = parse_intent("pause@" + draw(texts))
    return RolloutStatus().model_copy(
        update={
            "phase": Phase.PROGRESSING,
            "message": draw(texts),
            "revision": t,
            "last_intent": intent.id if intent else None,
            "approved_gates": t,
            "pending_gates": [t] * many,
            "evidence": evidence,
            "checks": checks,
            "budget": budget,
            "history": history,
            "conditions": [condition.model_copy(update={"message": t})] * min(many, 30),
            "step_samples": x,
            "canary_weight": draw(st.integers(-5, 500)),
        }
    )


@settings(max_examples=60, deadline=None)
@given(hostile_statuses(), st.sampled_from(["Canary", "PromptRelease"]))
def test_every_status_written_is_admitted_by_the_schema(status: RolloutStatus, kind: str) -> None:
    written = wire(status)
    json.dumps(written, allow_nan=False)  # valid JSON: no Infinity, no NaN
    assert schema_errors(status_schema(kind), written) == []


@settings(max_examples=30, deadline=None)
@given(hostile_statuses())
def test_a_fitted_status_read_back_is_not_written_again(status: RolloutStatus) -> None:
    stored = wire(status)
    assert status_patch(stored, status) is None


def test_a_long_request_id_is_stored_as_it_is_compared() -> None:
    intent = parse_intent("promote@" + "x" * 1000)
    assert intent is not None
    assert len(intent.id) <= 256
    assert intent.id.startswith("promote@sha256:")
    assert parse_intent("promote@" + "x" * 1000) == intent
    assert wire(RolloutStatus(last_intent=intent.id))["lastIntent"] == intent.id
