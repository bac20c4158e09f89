"""The PromptRelease kind: a new prompt version chosen per request by apps, no pod restart."""

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from tollgate.api.base import ApiModel, cel
from tollgate.api.metrics import PromptMetricsSpec
from tollgate.api.objects import ObjectMeta, empty_meta
from tollgate.api.refs import ConfigMapKey, KeyRef, ObjectName, ShortName
from tollgate.api.rollout import ROLLOUT_RULES, RolloutSpec
from tollgate.api.status import RolloutStatus

VERSION_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"
VersionName = Annotated[str, Field(pattern=VERSION_NAME_PATTERN, min_length=1, max_length=63)]


class PromptVersion(ApiModel):
    """One immutable version of the prompt: its template, model and parameters."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.template) != has(self.templateFrom)",
                    "exactly one of template and templateFrom must be set",
                )
            ]
        }
    )

    name: VersionName = Field(description="Version name, e.g. v7; unique within the release.")
    template: Annotated[str, Field(max_length=65536)] | None = Field(
        default=None, description="The template text inline (Python str.format / {name} fields)."
    )
    template_from: KeyRef | None = Field(
        default=None, description="ConfigMap key holding the template text."
    )
    model: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Model the version runs on, e.g. gpt-4o-mini."
    )
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Model parameters (temperature, max_tokens, ...) passed to the app as given.",
    )


class PublishSpec(ApiModel):
    """Where apps read the versions and their weights."""

    config_map: ObjectName = Field(
        description="ConfigMap (in the same namespace) that Tollgate owns and apps mount or watch."
    )
    key: ConfigMapKey = Field(default="prompts.json", description="Key of the published JSON.")


class CodeRequirement(ApiModel):
    """The code version a prompt version needs (released together, rolled back together)."""

    canary: ObjectName = Field(description="Canary (same namespace) that releases the code.")
    revision: Annotated[str, Field(max_length=128)] | None = Field(
        default=None,
        description="Revision of that Canary the prompt needs; the prompt is not promoted "
        "before it is stable, and is rolled back when it is rolled back.",
    )


class PromptReleaseSpec(RolloutSpec):
    """A rollout of a candidate prompt version against the stable one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *ROLLOUT_RULES,
                cel("self.stable != self.candidate", "stable and candidate must differ"),
                cel(
                    "self.versions.exists(v, v.name == self.stable)",
                    "stable must name one of versions",
                ),
                cel(
                    "self.versions.exists(v, v.name == self.candidate)",
                    "candidate must name one of versions",
                ),
            ]
        }
    )

    prompt: ShortName = Field(description="Name of the prompt, as apps ask for it.")
    versions: list[PromptVersion] = Field(
        min_length=2,
        max_length=16,
        description="The prompt versions known to apps; names are unique.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    stable: VersionName = Field(description="Version serving all traffic before this release.")
    candidate: VersionName = Field(description="Version being rolled out.")
    publish: PublishSpec = Field(description="Where the weights are published for apps.")
    requires: CodeRequirement | None = Field(
        default=None, description="Code version this prompt version needs."
    )
    metrics: PromptMetricsSpec = Field(
        default_factory=PromptMetricsSpec,
        json_schema_extra={"default": {}},
        description="Metric source and names; defaults read what the Tollgate SDK records.",
    )


class PromptRelease(ApiModel):
    """A whole PromptRelease object as stored in Kubernetes."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_version: Literal["tollgate.dev/v1alpha1"] = Field(
        default="tollgate.dev/v1alpha1", description="API version."
    )
    kind: Literal["PromptRelease"] = Field(default="PromptRelease", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=empty_meta, description="Object metadata.")
    spec: PromptReleaseSpec = Field(description="Desired rollout.")
    status: RolloutStatus | None = Field(default=None, description="Observed state.")
