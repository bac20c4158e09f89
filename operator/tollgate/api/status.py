"""Observed state shared by both kinds: phase, weight, conditions and the evidence behind them.

Status is the operator's only memory: a restarted operator resumes a rollout from it, so every
counter and timestamp the engine needs lives here, not in process memory.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

HISTORY_LIMIT = 20
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
Reason = Annotated[str, Field(pattern=REASON_PATTERN, max_length=1024)]
Message = Annotated[str, Field(max_length=32768)]


class Phase(StrEnum):
    """Where a rollout is. Succeeded and RolledBack are terminal until a new revision."""

    INITIALIZING = "Initializing"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK})


class Verdict(StrEnum):
    """What one check concluded. Only Pass ever moves a rollout forward."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class EvidenceKind(StrEnum):
    """What a sequential test asks."""

    LIMIT = "Limit"  # is the canary's own bad share above what an absolute limit allows?
    RELATIVE = "Relative"  # is its bad rate above the stable's times the tolerated ratio?
    MEAN = "Mean"  # is its mean per request (cost) above an absolute limit?


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class StatusModel(BaseModel):
    """Status models: camelCase, frozen, tolerant of fields written by newer versions."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class Condition(StatusModel):
    """A Kubernetes condition in the kstatus form Flux and Argo CD read."""

    type: Annotated[str, Field(max_length=316)] = Field(
        description="Ready, Reconciling, Stalled, Promoted or RolledBack."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Reason = Field(description="CamelCase reason, for machines.")
    message: Message = Field(default="", description="What happened, for people.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, description="Spec generation this condition was computed from."
    )


class CheckStatus(StatusModel):
    """The last verdict of one check, with the evidence behind it."""

    name: Annotated[str, Field(max_length=100)] = Field(description="Check name.")
    verdict: Verdict = Field(description="Pass, Fail, Inconclusive or Error.")
    query: Annotated[str, Field(max_length=8192)] | None = Field(
        default=None, description="The resolved query that produced the values."
    )
    canary_value: float | None = Field(default=None, description="Value for the new version.")
    stable_value: float | None = Field(default=None, description="Value for the stable version.")
    threshold: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="The limit the value was judged against."
    )
    canary_samples: int = Field(default=0, description="Requests behind the canary value.")
    stable_samples: int = Field(default=0, description="Requests behind the stable value.")
    message: Message = Field(default="", description="Why this verdict.")


class EvidenceStatus(StatusModel):
    """The running sequential test of one limit: the evidence that the canary breaks it."""

    name: Annotated[str, Field(max_length=100)] = Field(
        description="The test: the check's name for its relative limit, <check>.max for its "
        "absolute one."
    )
    kind: EvidenceKind = Field(
        default=EvidenceKind.RELATIVE,
        description="Limit: the canary's bad share against an absolute limit; Relative: its bad "
        "rate against the stable's.",
    )
    verdict: Verdict = Field(
        default=Verdict.INCONCLUSIVE,
        description="Fail: the test rejected (rollback); Pass: no evidence so far of a breach; "
        "Inconclusive: fewer than minSamples requests so far.",
    )
    message: Message = Field(default="", description="Why this verdict, in words.")
    query: Annotated[str, Field(max_length=8192)] | None = Field(
        default=None, description="The resolved PromQL read for the counts (last reading)."
    )
    e_value: float = Field(description="Current e-value; the test rejects at the boundary.")
    boundary: float = Field(description="1/alpha for this check.")
    canary_bad: float = Field(
        default=0, description="Bad events of the new version so far (Mean: its total cost)."
    )
    canary_total: float = Field(default=0, description="Requests of the new version so far.")
    stable_bad: float = Field(
        default=0, description="Bad events of the stable version so far (Mean: its total cost)."
    )
    stable_total: float = Field(default=0, description="Requests of the stable version so far.")
    objective: float | None = Field(
        default=None,
        description="For latency, TTFT and cost: the bucket bound (seconds, or tokens) a "
        "request must exceed to count as bad, fixed at the rollout's first reading.",
    )
    stable_objective: float | None = Field(
        default=None,
        description="For a relative latency, TTFT or cost test with a tolerance: the stable's "
        "bound, at most the canary's bound divided by (1 + tolerance); the canary's requests "
        "over its bound are compared with the stable's over this one.",
    )
    null: float | None = Field(
        default=None,
        description="What the null hypothesis allows: the highest bad share (Limit), the "
        "highest ratio of the canary's bad rate to the stable's (Relative), or the highest "
        "mean per request (Mean).",
    )
    readings: int = Field(default=0, ge=0, description="Readings of counts fed to the test.")
    needed: float | None = Field(
        default=None,
        description="Canary requests after which a canary analysis.sequential.detect times "
        "worse is rejected with probability analysis.sequential.power; promotion waits for "
        "them. Absent: the traffic seen so far cannot resolve the limit.",
    )
    log_e: list[float] = Field(
        default_factory=list,
        max_length=16,
        description="Log e-value per alternative of the test (its state across restarts).",
    )
    carry: list[float] = Field(
        default_factory=list,
        max_length=4,
        description="Counts of readings in which one version served nothing, pooled into the "
        "next reading (canary requests, canary bad, stable requests, stable bad).",
    )


class BurnTierStatus(StatusModel):
    """One multi-window tier: the canary's burn rate over its long and its short window."""

    long: Annotated[str, Field(max_length=32)] = Field(description="The long window.")
    short: Annotated[str, Field(max_length=32)] = Field(description="The short window.")
    max_burn_rate: float = Field(description="The tier fires above this in both windows.")
    long_burn: float = Field(default=0, description="Burn rate over the long window.")
    short_burn: float = Field(default=0, description="Burn rate over the short window.")
    long_requests: float = Field(default=0, description="Canary requests in the long window.")
    short_requests: float = Field(default=0, description="Canary requests in the short window.")
    covered: float = Field(
        default=0,
        description="Seconds of data behind the long window: the rollout so far when it is "
        "shorter than the window.",
    )
    e_value: float = Field(
        default=1,
        description="The tier's test that the canary's error share exceeds the burn rate's "
        "allowance; the tier fires only at its boundary (and with both windows too fast).",
    )
    boundary: float = Field(default=0, description="1/alpha for this tier's test.")
    log_e: list[float] = Field(
        default_factory=list, max_length=16, description="The tier test's state across restarts."
    )


class BudgetStatus(StatusModel):
    """The canary's own error-budget burn, tier by tier, and the readings behind it."""

    verdict: Verdict = Field(
        default=Verdict.INCONCLUSIVE, description="Pass, Fail or Inconclusive."
    )
    message: Message = Field(default="", description="Why this verdict, in words.")
    query: Annotated[str, Field(max_length=8192)] | None = Field(
        default=None, description="The resolved PromQL read for the counts (last reading)."
    )
    canary_bad: float = Field(default=0, description="Failed canary requests in this rollout.")
    canary_total: float = Field(default=0, description="Canary requests in this rollout.")
    tiers: list[BurnTierStatus] = Field(
        default_factory=list, max_length=4, description="Each tier's windows and burn rates."
    )
    readings: list[list[float]] = Field(
        default_factory=list,
        max_length=128,
        description="The canary's readings as [end, span, failed, requests], seconds since the "
        "rollout started; older ones merged into coarser spans (the state across restarts).",
    )


class HistoryEntry(StatusModel):
    """One decision that changed the phase or the weight."""

    time: datetime = Field(description="When it was decided.")
    phase: "Phase" = Field(description="Phase after the decision.")
    weight: int = Field(description="Canary weight after the decision.")
    step: int = Field(description="Step after the decision.")
    reason: Reason = Field(description="CamelCase reason.")
    message: Message = Field(default="", description="Why.")


class RolloutStatus(StatusModel):
    """Observed state of a Canary or PromptRelease."""

    phase: Phase | None = Field(default=None, description="Current phase.")
    reason: Reason | None = Field(default=None, description="Reason of the last transition.")
    message: Message | None = Field(default=None, description="Explanation of the phase.")
    canary_weight: int = Field(
        default=0, ge=0, le=100, description="Percent of traffic the new version should get."
    )
    current_step: int = Field(
        default=0, ge=0, description="Steps reached: 0 before traffic, n at the n-th weight."
    )
    total_steps: int = Field(default=0, ge=0, description="Steps in the plan.")
    revision: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Revision under analysis (or last analysed)."
    )
    stable_revision: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Revision serving as stable."
    )
    observed_generation: int | None = Field(
        default=None, description="Spec generation last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Reconciling, Stalled, Promoted, RolledBack.",
    )
    checks: list[CheckStatus] = Field(
        default_factory=list, max_length=32, description="Last verdict of every check."
    )
    budget: BudgetStatus | None = Field(
        default=None,
        description="Error-budget burn of the canary's own traffic (with checks.errorBudget).",
    )
    evidence: list[EvidenceStatus] = Field(
        default_factory=list,
        max_length=32,
        description="Sequential tests of this rollout, one per check that takes part.",
    )
    failed_analyses: int = Field(default=0, ge=0, description="Failed analyses in this rollout.")
    consecutive_errors: int = Field(
        default=0, ge=0, description="Analyses in a row whose metric provider failed."
    )
    step_passed_analyses: int = Field(
        default=0, ge=0, description="Passing analyses at the current step."
    )
    step_samples: float = Field(
        default=0,
        ge=0,
        description="Canary requests counted since the current step began (analysis.minSamples "
        "of them before the step's analysis can pass).",
    )
    rollout_started_at: datetime | None = Field(
        default=None, description="When the current revision's rollout began."
    )
    step_started_at: datetime | None = Field(
        default=None,
        description="When the current step, or the promotion, began (restarted on resume); "
        "the progress deadline counts from here.",
    )
    step_completed_at: datetime | None = Field(
        default=None, description="When the current step passed its analyses."
    )
    last_analysis_at: datetime | None = Field(
        default=None, description="When an analysis was last counted."
    )
    last_count_at: datetime | None = Field(
        default=None,
        description="When counts were last read for the sequential tests and the burn rate.",
    )
    paused_by_user: bool = Field(
        default=False, description="True after a pause request, until resumed."
    )
    approved_gates: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="The gate stage a resume has approved (stage@step)."
    )
    pending_gates: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=20, description="Gates the rollout is waiting on."
    )
    last_intent: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Identifier of the last handled user request."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} decisions that changed phase or weight.",
    )
