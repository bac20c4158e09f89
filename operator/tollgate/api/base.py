"""Shared pydantic configuration for every API model.

Fields are snake_case in Python and camelCase on the wire, as Kubernetes users expect. Spec
models are frozen (the engine must not mutate its inputs) and forbid unknown fields, so a typo
in a spec is reported instead of silently ignored.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel

JsonDict = dict[str, JsonValue]


class ApiModel(BaseModel):
    """Base of every spec model: camelCase aliases, frozen, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it is stored in Kubernetes: camelCase keys, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(rule: str, message: str) -> JsonDict:
    """One ``x-kubernetes-validations`` entry (a CEL rule the API server evaluates)."""
    return {"rule": rule, "message": message}


def validations(*rules: JsonDict) -> JsonDict:
    """A ``json_schema_extra`` carrying CEL rules, for a model or a field."""
    entries: list[JsonValue] = [*rules]
    return {"x-kubernetes-validations": entries}
