"""How a rollout advances: the step plan, the analysis cadence and the limits that end it."""

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from tollgate.api.base import ApiModel, cel
from tollgate.api.durations import Duration

Percent = Annotated[int, Field(ge=1, le=100)]

DEFAULT_MAX_WEIGHT = 50


class NoDataPolicy(StrEnum):
    """What an analysis with too little data means. It never means "pass"."""

    HOLD = "Hold"
    FAIL = "Fail"


class ErrorPolicy(StrEnum):
    """What to do once a metric provider has failed consecutiveErrorLimit times in a row."""

    ROLLBACK = "Rollback"
    HOLD = "Hold"


class EvidencePolicy(StrEnum):
    """What a rollout does when its deadline comes before enough evidence did."""

    ROLLBACK = "Rollback"  # traffic back on stable; reported as InsufficientEvidence
    HOLD = "Hold"  # paused at the weight it has, analysis running, until a person acts
    PROMOTE = "Promote"  # promote anyway: an explicit opt-in, never the default


class StepPause(ApiModel):
    """A hold after the step at ``weight`` passed its analysis: timed, or until resumed."""

    weight: Percent = Field(description="Canary weight (percent) of the step to pause after.")
    duration: Duration | None = Field(
        default=None,
        description="How long to hold; analysis keeps running and can still roll back. "
        "Without a duration the rollout waits for 'kubectl tollgate resume'.",
    )


class SequentialSpec(ApiModel):
    """Anytime-valid tests of canary against stable on counts, fed at every reading.

    Errors, requests over the latency or TTFT objective and cost units are compared as they
    arrive; a rollout is rolled back as soon as the evidence crosses 1/alpha, and the chance of
    that happening to a version no worse than stable stays under alpha however often it is
    looked at. Threshold analyses still decide promotion.
    """

    enabled: bool = Field(default=True, description="Run the sequential tests.")
    alpha: float = Field(
        default=0.01,
        gt=0,
        le=0.2,
        description="Highest chance of rolling back a version no worse than stable, for the "
        "whole rollout; split evenly over the checks that take part.",
    )
    min_samples: int = Field(
        default=20,
        ge=0,
        le=10_000_000,
        description="Requests each version must have served before a sequential rejection.",
    )
    min_effect: float = Field(
        default=1.25,
        gt=1,
        le=10,
        description="Smallest ratio of the canary's bad-event rate to stable's that the test is "
        "tuned to find (its alternatives span this to 8 times it); larger is faster on big "
        "regressions and slower on small ones. The false-rollback guarantee holds either way.",
    )
    detect: float = Field(
        default=2.0,
        gt=1,
        le=100,
        description="Promotion waits until every test has seen enough canary requests to "
        "catch, with probability `power`, a canary this many times worse than its limit "
        "(relative limits: than the stable's rate times the tolerance).",
    )
    power: float = Field(
        default=0.9,
        ge=0.5,
        le=0.999,
        description="The chance of catching a canary `detect` times worse before promotion.",
    )
    every: Duration | None = Field(
        default=None,
        description="How often counts are read and the tests (and the error-budget burn) "
        "updated, between analyses too; default: the analysis interval. Looking more often "
        "keeps the false-rollback guarantee and catches a bad version sooner, at one status "
        "write per reading.",
    )


class AnalysisSpec(ApiModel):
    """The step plan and the analysis that gates every step."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.maxWeight) || self.stepWeight <= self.maxWeight",
                    "stepWeight must not exceed maxWeight",
                ),
                cel(
                    "!has(self.stepWeights) || !has(self.maxWeight) || "
                    "self.stepWeights.all(w, w <= self.maxWeight)",
                    "every stepWeights entry must be at most maxWeight",
                ),
                # The server checks a default as written, without its nested defaults: a rule
                # over defaulted fields must hold where they are absent (they never are in an
                # admitted object, which is defaulted before the rules run).
                cel(
                    "!has(self.progressDeadline) || !has(self.interval) || "
                    "duration(self.progressDeadline) > duration(self.interval)",
                    "progressDeadline must be longer than interval",
                ),
                cel(
                    "!has(self.sequential) || !has(self.sequential.every) || "
                    "(duration(self.sequential.every) >= duration('1s') && "
                    "duration(self.sequential.every) <= duration(self.interval))",
                    "sequential.every must be between 1s and interval",
                ),
            ]
        }
    )

    interval: Duration = Field(
        default="30s",
        description="How often the analysis is evaluated; each step lasts at least one interval.",
    )
    step_weight: Percent = Field(
        default=5,
        description="Percent of traffic added at each step when stepWeights is not given.",
    )
    max_weight: Percent | None = Field(
        default=None,
        description="Highest canary weight (percent) before promotion. Defaults to "
        f"{DEFAULT_MAX_WEIGHT} with stepWeight, or to the last of stepWeights.",
    )
    step_weights: list[Percent] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Explicit canary weights (percent), strictly increasing; overrides stepWeight.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                cel("self.isSorted()", "stepWeights must be strictly increasing"),
            ],
        },
    )
    pauses: list[StepPause] | None = Field(
        default=None,
        max_length=100,
        description="Holds after chosen steps, each at a weight that is on the step plan.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["weight"],
        },
    )
    analyses_per_step: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Passing analyses needed at each step before the weight goes up.",
    )
    failure_limit: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Failed analyses tolerated during a rollout; one more rolls back.",
    )
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        le=100,
        description="Consecutive analyses whose metric provider failed before "
        "onConsecutiveErrors applies.",
    )
    on_consecutive_errors: ErrorPolicy = Field(
        default=ErrorPolicy.ROLLBACK,
        description="Rollback, or Hold the current weight, once consecutiveErrorLimit is passed. "
        "A provider error never counts as a pass.",
    )
    min_samples: int = Field(
        default=50,
        ge=0,
        le=10_000_000,
        description="Canary requests a step must have counted before its analysis can pass "
        "(with the sequential tests); without them, requests each version must have served "
        "in one analysis window. Fewer make the check Inconclusive.",
    )
    no_data: NoDataPolicy = Field(
        default=NoDataPolicy.HOLD,
        description="Default for checks without data: Hold (wait; the progress deadline still "
        "applies) or Fail (count a failed analysis). No data never promotes.",
    )
    without_evidence: EvidencePolicy = Field(
        default=EvidencePolicy.ROLLBACK,
        description="When the progress deadline passes while the rollout only waits for "
        "evidence (too few requests for a verdict, or for the sample that resolves a limit): "
        "Rollback (reason InsufficientEvidence, not a verdict on the version), Hold (paused at "
        "the current weight with the analysis still running, until a person resumes, promotes "
        "or aborts), or Promote (an explicit opt-in).",
    )
    sequential: SequentialSpec = Field(
        default_factory=SequentialSpec,
        json_schema_extra={"default": {}},
        description="Anytime-valid sequential tests that roll back early on clear evidence.",
    )
    progress_deadline: Duration = Field(
        default="10m",
        description="Longest a step may wait for readiness, data or gates before the rollout is "
        "rolled back (time in a requested pause does not count).",
    )
    evidence_deadline: Duration = Field(
        default="30m",
        description="Longest the last step may wait for the sample that resolves every limit "
        "(reason WaitingForEvidence), counted like progressDeadline: past progressDeadline the "
        "wait is extended (reason DeadlineExtended) only while the canary's traffic at this step "
        "is projected to reach that sample within evidenceDeadline; otherwise withoutEvidence "
        "applies at progressDeadline. No longer than progressDeadline: never extended.",
    )
