"""An OpenFeature provider over the prompt router, for apps that choose variants through it.

The flag key is the prompt's name and the evaluation context's targeting key is the
stickiness key, so an OpenFeature client gets the same version the router would give. A string
flag resolves to the version's name; an object flag to the version itself (template, model,
parameters). Boolean and number flags are type mismatches: a prompt is neither.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagMetadata, FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from tollgate.sdk.choice import Choice
from tollgate.sdk.router import PromptRouter, PromptUnavailable

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


class TollgateProvider(AbstractProvider):
    """Resolves prompt flags with a :class:`~tollgate.sdk.router.PromptRouter`.

    Once registered it emits a configuration-changed event, naming the prompts, whenever a
    new document is read. Shutting the provider down leaves the router open.
    """

    def __init__(self, router: PromptRouter) -> None:
        super().__init__()
        self.router = router
        self._unsubscribe: Callable[[], None] | None = None

    def get_metadata(self) -> Metadata:
        return Metadata(name="tollgate")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.router.subscribe(self._changed)

    def shutdown(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _changed(self, prompts: tuple[str, ...]) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=list(prompts)))

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        choice = self._choose(flag_key, evaluation_context)
        if not isinstance(choice, Choice):
            return _error(default_value, *choice)
        return FlagResolutionDetails(
            value=choice.version,
            reason=_reason(choice),
            variant=choice.version,
            flag_metadata=_metadata(choice),
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        choice = self._choose(flag_key, evaluation_context)
        if not isinstance(choice, Choice):
            return _error(default_value, *choice)
        value: dict[str, Any] = {
            "version": choice.version,
            "role": choice.role,
            "template": choice.template,
            "model": choice.model,
            "parameters": dict(choice.parameters),
            "revision": choice.revision,
        }
        return FlagResolutionDetails(
            value=value,
            reason=_reason(choice),
            variant=choice.version,
            flag_metadata=_metadata(choice),
        )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return _mismatch(flag_key, default_value, "boolean")

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return _mismatch(flag_key, default_value, "integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return _mismatch(flag_key, default_value, "float")

    def _choose(
        self, prompt: str, context: EvaluationContext | None
    ) -> Choice | tuple[ErrorCode, str]:
        key = context.targeting_key if context is not None else None
        try:
            return self.router.choose(prompt, key)
        except PromptUnavailable as exc:
            code = ErrorCode.PROVIDER_NOT_READY if exc.pending else ErrorCode.FLAG_NOT_FOUND
            return code, str(exc)


def _reason(choice: Choice) -> Reason:
    split = choice.role == "candidate" or choice.weight < 100
    return Reason.SPLIT if split else Reason.STATIC


def _metadata(choice: Choice) -> FlagMetadata:
    return {"revision": choice.revision, "role": choice.role, "weight": choice.weight}


def _error(default_value: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default_value, reason=Reason.ERROR, error_code=code, error_message=message
    )


def _mismatch(flag_key: str, default_value: T, kind: str) -> FlagResolutionDetails[T]:
    return _error(
        default_value,
        ErrorCode.TYPE_MISMATCH,
        f"the flag {flag_key!r} is a prompt: resolve it as a string or an object, not {kind}",
    )
