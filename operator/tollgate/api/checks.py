"""SLO checks: built-in LLM and web SLIs, each absolute and/or relative to the stable version."""

from typing import Annotated

from pydantic import ConfigDict, Field

from tollgate.api.analysis import NoDataPolicy
from tollgate.api.base import ApiModel, cel
from tollgate.api.durations import Duration
from tollgate.api.refs import ShortName

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Quantile = Annotated[float, Field(ge=0.5, le=0.999)]

_ABSOLUTE_OR_RELATIVE = "{absolute} or {relative} must be set"


def _needs_one(absolute: str, relative: str) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"has(self.{absolute}) || has(self.{relative})",
                    _ABSOLUTE_OR_RELATIVE.format(absolute=absolute, relative=relative),
                )
            ]
        }
    )


class LatencyCheck(ApiModel):
    """A latency quantile (p95 by default) from the request-duration histogram."""

    model_config = _needs_one("maxMilliseconds", "maxIncreasePercent")

    quantile: Quantile = Field(default=0.95, description="Quantile to judge, 0.5 to 0.999.")
    max_milliseconds: PositiveFloat | None = Field(
        default=None, description="Absolute SLO: the canary's quantile must be at most this."
    )
    max_increase_percent: NonNegativeFloat | None = Field(
        default=None,
        description="Relative check: the canary's quantile may exceed the stable version's by "
        "at most this percent.",
    )
    no_data: NoDataPolicy | None = Field(
        default=None, description="Overrides analysis.noData for this check."
    )


class TTFTCheck(LatencyCheck):
    """Time to first token (streaming LLM responses), as a quantile of its histogram."""


class ErrorRateCheck(ApiModel):
    """Share of requests that failed."""

    model_config = _needs_one("maxPercent", "maxIncreasePoints")

    max_percent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None, description="Absolute SLO: at most this percent of canary requests fail."
    )
    max_increase_points: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="Relative check: the canary's error rate may exceed the stable version's by "
        "at most this many percentage points.",
    )
    no_data: NoDataPolicy | None = Field(
        default=None, description="Overrides analysis.noData for this check."
    )


class TokenPricing(ApiModel):
    """Prices used to turn token counters into cost."""

    input_per_million_tokens: NonNegativeFloat = Field(
        description="Price of one million input (prompt) tokens."
    )
    output_per_million_tokens: NonNegativeFloat = Field(
        description="Price of one million output (completion) tokens."
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(
        default="USD", description="ISO 4217 currency code, for display."
    )


class CostCheck(ApiModel):
    """Cost per request, computed from token counters and the prices given here."""

    model_config = _needs_one("maxPerRequest", "maxIncreasePercent")

    pricing: TokenPricing = Field(description="Token prices.")
    max_per_request: NonNegativeFloat | None = Field(
        default=None, description="Absolute limit on the canary's mean cost per request."
    )
    max_increase_percent: NonNegativeFloat | None = Field(
        default=None,
        description="Relative check: the canary's cost per request may exceed the stable "
        "version's by at most this percent.",
    )
    no_data: NoDataPolicy | None = Field(
        default=None, description="Overrides analysis.noData for this check."
    )


class BurnWindows(ApiModel):
    """One tier of the multi-window burn-rate check: both windows must burn too fast."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "duration(self.short) < duration(self.long)",
                    "short must be shorter than long",
                )
            ]
        }
    )

    long: Duration = Field(
        description="The window that shows the burn is sustained. Longer than the rollout so "
        "far means the whole rollout (the canary has no traffic before it)."
    )
    short: Duration = Field(
        description="The window that shows it is still happening, so the check stops firing "
        "soon after the burn ends. Shorter than one reading means the last reading."
    )
    max_burn_rate: PositiveFloat = Field(
        description="The tier fires when the burn rate over both windows exceeds this."
    )


# The Site Reliability Workbook's paging tiers (chapter 5, "Alerting on SLOs").
DEFAULT_BURN_WINDOWS = (
    BurnWindows(long="1h", short="5m", max_burn_rate=14.4),
    BurnWindows(long="6h", short="30m", max_burn_rate=6.0),
)


class ErrorBudgetCheck(ApiModel):
    """Error-budget burn rate of the canary's own traffic against an availability objective.

    Judged twice: per analysis against maxBurnRate, and on every reading of counts by the
    multi-window tiers in ``windows``, over the canary's own requests only.
    """

    objective_percent: Annotated[float, Field(gt=50, lt=100)] = Field(
        description="Availability objective, e.g. 99.9."
    )
    max_burn_rate: PositiveFloat = Field(
        default=14.4,
        description="Highest tolerated burn rate over one analysis interval (1 spends the "
        "budget exactly over the SLO period; 14.4 spends 2% of a 30-day budget in an hour).",
    )
    windows: Annotated[list[BurnWindows], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: [w.model_copy() for w in DEFAULT_BURN_WINDOWS],
        description="Multi-window, multi-burn-rate tiers over the canary's own requests; any "
        "tier firing rolls back. Default: 14.4x over 1h and 5m, 6x over 6h and 30m.",
    )
    no_data: NoDataPolicy | None = Field(
        default=None, description="Overrides analysis.noData for this check."
    )


class CustomCheck(ApiModel):
    """A user PromQL query evaluated once per version and compared with limits."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.max) || has(self.min) || has(self.maxIncreasePercent)",
                    "a custom check needs max, min or maxIncreasePercent",
                ),
                cel(
                    "!has(self.max) || !has(self.min) || self.min <= self.max",
                    "min must not exceed max",
                ),
            ]
        }
    )

    name: ShortName = Field(description="Name of the check, unique within the resource.")
    query: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="PromQL template returning one value per version. Placeholders: "
        "{{ selector }} (label matchers of the version being judged), {{ namespace }}, "
        "{{ version }}, {{ window }}."
    )
    max: float | None = Field(default=None, description="Upper limit on the canary's value.")
    min: float | None = Field(default=None, description="Lower limit on the canary's value.")
    max_increase_percent: NonNegativeFloat | None = Field(
        default=None,
        description="Relative check: the canary's value may exceed the stable version's by at "
        "most this percent.",
    )
    no_data: NoDataPolicy | None = Field(
        default=None, description="Overrides analysis.noData for this check."
    )


class ChecksSpec(ApiModel):
    """Every SLO the new version must keep. At least one is needed unless analysis is skipped."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.latency) || has(self.ttft) || has(self.errorRate) || "
                    "has(self.costPerRequest) || has(self.errorBudget) || "
                    "(has(self.custom) && size(self.custom) > 0)",
                    "checks must name at least one check",
                )
            ]
        }
    )

    latency: LatencyCheck | None = Field(default=None, description="Request latency quantile.")
    ttft: TTFTCheck | None = Field(default=None, description="Time to first token quantile.")
    error_rate: ErrorRateCheck | None = Field(default=None, description="Error rate.")
    cost_per_request: CostCheck | None = Field(default=None, description="Cost per request.")
    error_budget: ErrorBudgetCheck | None = Field(
        default=None, description="Error-budget burn rate of the canary alone."
    )
    custom: list[CustomCheck] | None = Field(
        default=None,
        max_length=20,
        description="Checks from user PromQL templates.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
