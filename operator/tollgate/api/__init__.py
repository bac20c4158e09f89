"""The contract users write: pydantic models of the custom resources.

The CRDs in ``crds/`` are generated from these models (``make crds``), so the schema the API
server enforces and the objects the operator parses can never disagree.
"""

from tollgate.api.canary import Canary, CanarySpec
from tollgate.api.promptrelease import PromptRelease, PromptReleaseSpec
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import RolloutStatus

GROUP = "tollgate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Canary",
    "CanarySpec",
    "PromptRelease",
    "PromptReleaseSpec",
    "RolloutSpec",
    "RolloutStatus",
]
