"""References to other Kubernetes objects, with Kubernetes' own name rules."""

from typing import Annotated, Literal

from pydantic import Field

from tollgate.api.base import ApiModel

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIGMAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

ObjectName = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
# Deployments and Services become DNS labels ("<name>-primary"), so 63 minus the suffix.
WorkloadName = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=55)]
ShortName = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
ConfigMapKey = Annotated[str, Field(pattern=CONFIGMAP_KEY_PATTERN, min_length=1, max_length=253)]


class TargetRef(ApiModel):
    """The user's Deployment: the workload whose new pod template is rolled out."""

    api_version: Literal["apps/v1"] = Field(
        default="apps/v1", description="API version of the target; only apps/v1 is supported."
    )
    kind: Literal["Deployment"] = Field(
        default="Deployment", description="Kind of the target; only Deployment is supported."
    )
    name: WorkloadName = Field(
        description="Name of the Deployment in the Canary's namespace. Tollgate creates "
        "'<name>-primary' beside it, so at most 55 characters."
    )


class NamespacedRef(ApiModel):
    """A named object, in the Canary's namespace unless another is given."""

    name: ObjectName = Field(description="Name of the object.")
    namespace: ShortName | None = Field(
        default=None, description="Namespace of the object; defaults to the resource's own."
    )


class LocalRef(ApiModel):
    """A named object in the resource's own namespace."""

    name: ObjectName = Field(description="Name of the object in the same namespace.")


class KeyRef(ApiModel):
    """One key of a ConfigMap or Secret in the resource's own namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap or Secret.")
    key: ConfigMapKey = Field(description="Key inside it.")
