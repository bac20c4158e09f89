"""The Canary kind: a new pod template of the user's Deployment, rolled out behind a router."""

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from tollgate.api.base import ApiModel, cel
from tollgate.api.objects import ObjectMeta, empty_meta
from tollgate.api.refs import LocalRef, NamespacedRef, ObjectName, ShortName, TargetRef
from tollgate.api.rollout import ROLLOUT_RULES, RolloutSpec
from tollgate.api.status import RolloutStatus


class RouterProvider(StrEnum):
    """Traffic routers Tollgate can drive."""

    GATEWAY_API = "gatewayapi"
    ISTIO = "istio"
    NGINX = "nginx"


class RouterSpec(ApiModel):
    """The traffic router and the object of it Tollgate adjusts."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.provider != 'gatewayapi' || has(self.httpRoute)",
                    "provider gatewayapi needs httpRoute",
                ),
                cel(
                    "self.provider != 'istio' || has(self.virtualService)",
                    "provider istio needs virtualService",
                ),
                cel(
                    "self.provider != 'nginx' || has(self.ingress)",
                    "provider nginx needs ingress",
                ),
            ]
        }
    )

    provider: RouterProvider = Field(
        default=RouterProvider.GATEWAY_API, description="gatewayapi, istio or nginx."
    )
    http_route: NamespacedRef | None = Field(
        default=None,
        description="Gateway API HTTPRoute whose backendRefs to the primary and canary Services "
        "Tollgate owns; other backendRefs and rules are never touched.",
    )
    virtual_service: NamespacedRef | None = Field(default=None, description="Istio VirtualService.")
    ingress: LocalRef | None = Field(default=None, description="NGINX Ingress of the service.")


class ServiceSpec(ApiModel):
    """The port the app serves on; Tollgate makes '<name>-primary' and '<name>-canary' Services."""

    port: int = Field(ge=1, le=65535, description="Service port.")
    target_port: int | None = Field(
        default=None, ge=1, le=65535, description="Container port; defaults to port."
    )
    port_name: ShortName = Field(default="http", description="Name of the Service port.")


class CanarySpec(RolloutSpec):
    """A rollout of the user's Deployment: GitOps owns it, Tollgate owns '<name>-primary'."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": ROLLOUT_RULES})

    target_ref: TargetRef = Field(description="The Deployment to roll out.")
    service: ServiceSpec = Field(description="Service port of the workload.")
    router: RouterSpec = Field(description="Traffic router.")
    prompts: list[ObjectName] | None = Field(
        default=None,
        max_length=32,
        description="PromptReleases (same namespace) that depend on this code: they wait for "
        "its release to be promoted and are rolled back when it is rolled back.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    revert_on_deletion: bool = Field(
        default=False,
        description="What deleting the Canary does. false: all traffic on '<name>-primary' (the "
        "last analysed revision), which keeps running with its Services, no longer owned. true: "
        "traffic back on the target Deployment itself ('<name>-primary' Service selects its "
        "pods, '<name>-primary' Deployment deleted), only when the target runs the stable "
        "revision and is ready; otherwise as false, with a NotReverted Event.",
    )


class Canary(ApiModel):
    """A whole Canary object as stored in Kubernetes."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_version: Literal["tollgate.dev/v1alpha1"] = Field(
        default="tollgate.dev/v1alpha1", description="API version."
    )
    kind: Literal["Canary"] = Field(default="Canary", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=empty_meta, description="Object metadata.")
    spec: CanarySpec = Field(description="Desired rollout.")
    status: RolloutStatus | None = Field(default=None, description="Observed state.")
