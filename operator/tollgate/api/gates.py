"""Human and webhook gates, notification targets and owners of a rollout."""

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from tollgate.api.base import ApiModel, cel
from tollgate.api.durations import CallTimeout
from tollgate.api.refs import KeyRef, ShortName

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]


class GateStage(StrEnum):
    """Where in a rollout a gate stands."""

    BEFORE_ROLLOUT = "BeforeRollout"
    BEFORE_STEP = "BeforeStep"
    BEFORE_PROMOTION = "BeforePromotion"


class GateType(StrEnum):
    """How a gate opens: by a person ('kubectl tollgate resume') or by a webhook's answer."""

    MANUAL = "Manual"
    WEBHOOK = "Webhook"


class WebhookSpec(ApiModel):
    """An HTTP endpoint asked with a POST; a 2xx answer opens the gate."""

    url: HttpUrl = Field(description="http(s) URL to POST the rollout's state to.")
    timeout: CallTimeout = Field(
        default="10s", description="Timeout of one call, its whole answer included (at most 60s)."
    )


class Gate(ApiModel):
    """A point where the rollout waits for approval. Analysis keeps running meanwhile."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(self.type == 'Webhook') == has(self.webhook)",
                    "a Webhook gate needs webhook, and only a Webhook gate may have one",
                )
            ]
        }
    )

    name: ShortName = Field(description="Name of the gate, unique within the resource.")
    stage: GateStage = Field(description="BeforeRollout, BeforeStep or BeforePromotion.")
    type: GateType = Field(default=GateType.MANUAL, description="Manual or Webhook.")
    webhook: WebhookSpec | None = Field(default=None, description="The webhook of a Webhook gate.")


class NotificationType(StrEnum):
    """Kinds of notification targets."""

    WEBHOOK = "Webhook"
    SLACK = "Slack"


class NotificationEvent(StrEnum):
    """Rollout events a target can subscribe to."""

    STARTED = "Started"
    STEP = "Step"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    STALLED = "Stalled"


class NotificationTarget(ApiModel):
    """Where to tell people about a rollout."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.url) != has(self.urlFrom)",
                    "exactly one of url and urlFrom must be set",
                )
            ]
        }
    )

    name: ShortName = Field(description="Name of the target, unique within the resource.")
    type: NotificationType = Field(description="Webhook (generic JSON) or Slack.")
    url: HttpUrl | None = Field(default=None, description="Endpoint URL, when not secret.")
    url_from: KeyRef | None = Field(
        default=None, description="Secret key holding the endpoint URL (e.g. a Slack webhook)."
    )
    events: list[NotificationEvent] | None = Field(
        default=None,
        max_length=6,
        description="Events to send; all when unset.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class Owner(ApiModel):
    """Someone to name in incident records."""

    name: Annotated[str, Field(min_length=1, max_length=200)] = Field(description="Person or team.")
    contact: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="How to reach them: e-mail, chat handle or pager service."
    )
