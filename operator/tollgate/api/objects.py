"""The envelope every custom resource shares: apiVersion, kind, metadata, spec, status."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata the operator reads; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(default="", description="Object name.")
    namespace: str = Field(default="", description="Object namespace.")
    generation: int | None = Field(default=None, description="Spec generation.")
    uid: str | None = Field(default=None, description="Object UID.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")
    labels: dict[str, str] | None = Field(default=None, description="Labels.")


def empty_meta() -> ObjectMeta:
    """Default metadata for objects built in code (tests, examples)."""
    return ObjectMeta()


def meta_from(raw: dict[str, Any] | None) -> ObjectMeta:
    """Metadata from a raw object's ``metadata`` block."""
    return ObjectMeta.model_validate(raw or {})
