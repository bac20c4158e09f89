"""What a Canary and a PromptRelease share: analysis, checks, metrics, gates and people.

The engine decides on this common part only, so both kinds roll out by the same rules.
"""

from pydantic import ConfigDict, Field, JsonValue

from tollgate.api.analysis import AnalysisSpec
from tollgate.api.base import ApiModel, cel
from tollgate.api.checks import ChecksSpec
from tollgate.api.gates import Gate, NotificationTarget, Owner
from tollgate.api.metrics import MetricsSpec

ROLLOUT_RULES: list[JsonValue] = [
    cel(
        "self.skipAnalysis || has(self.checks)",
        "checks are required unless skipAnalysis is true",
    ),
]


class RolloutSpec(ApiModel):
    """The rollout policy common to both kinds."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": ROLLOUT_RULES})

    analysis: AnalysisSpec = Field(
        default_factory=AnalysisSpec,
        json_schema_extra={"default": {}},
        description="Step plan, analysis cadence and limits.",
    )
    checks: ChecksSpec | None = Field(default=None, description="SLO checks that judge every step.")
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec,
        json_schema_extra={"default": {}},
        description="Metric source and names.",
    )
    gates: list[Gate] | None = Field(
        default=None,
        max_length=20,
        description="Manual and webhook approvals at chosen stages.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    notifications: list[NotificationTarget] | None = Field(
        default=None,
        max_length=20,
        description="Where rollout events are sent.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    owners: list[Owner] | None = Field(
        default=None, max_length=20, description="People named in incident records."
    )
    suspend: bool = Field(
        default=False,
        description="Freeze the rollout where it is: no weight changes, no promotion. An abort "
        "still rolls back.",
    )
    skip_analysis: bool = Field(
        default=False,
        description="Walk the steps without judging metrics. Use only for emergencies.",
    )
