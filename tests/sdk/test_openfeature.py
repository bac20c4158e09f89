"""Through the real OpenFeature API, a prompt flag resolves to the version the router chooses."""

from collections.abc import Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason

from tests.sdk.builders import PROMPT, document
from tollgate.sdk import PromptRouter, StaticSource
from tollgate.sdk.openfeature import TollgateProvider


@pytest.fixture
def source() -> StaticSource:
    return StaticSource(document(30, revision=6))


@pytest.fixture
def router(source: StaticSource) -> Iterator[PromptRouter]:
    chooser = PromptRouter(source)
    api.set_provider_and_wait(TollgateProvider(chooser))
    yield chooser
    api.shutdown()
    api.clear_providers()


def user(key: str) -> EvaluationContext:
    return EvaluationContext(targeting_key=key)


def test_a_string_flag_is_the_version_the_router_chooses_for_the_targeting_key(
    router: PromptRouter,
) -> None:
    client = api.get_client()
    keys = [f"user-{i}" for i in range(300)]
    resolved = [client.get_string_value(PROMPT, "fallback", user(key)) for key in keys]
    assert resolved == [router.choose(PROMPT, key).version for key in keys]
    assert set(resolved) == {"v7", "v8"}

    details = client.get_string_details(PROMPT, "fallback", user(keys[resolved.index("v8")]))
    assert (details.value, details.variant, details.reason) == ("v8", "v8", Reason.SPLIT)
    assert details.flag_metadata == {"revision": 6, "role": "candidate", "weight": 30}
    assert details.error_code is None


def test_without_a_candidate_weight_the_resolution_is_static(source: StaticSource) -> None:
    source.publish(document(0, revision=7))
    api.set_provider_and_wait(TollgateProvider(PromptRouter(source)))
    try:
        details = api.get_client().get_string_details(PROMPT, "fallback", user("alice"))
        assert (details.value, details.reason) == ("v7", Reason.STATIC)
        assert details.flag_metadata["role"] == "stable"
    finally:
        api.clear_providers()


def test_an_object_flag_is_the_version_itself(router: PromptRouter) -> None:
    value = api.get_client().get_object_value(PROMPT, {}, user("alice"))
    choice = router.choose(PROMPT, "alice")
    assert value == {
        "version": choice.version,
        "role": choice.role,
        "template": choice.template,
        "model": choice.model,
        "parameters": dict(choice.parameters),
        "revision": 6,
    }


def test_an_unknown_prompt_is_flag_not_found_with_the_default(router: PromptRouter) -> None:
    details = api.get_client().get_string_details("no-such-prompt", "fallback", user("a"))
    assert (details.value, details.error_code, details.reason) == (
        "fallback",
        ErrorCode.FLAG_NOT_FOUND,
        Reason.ERROR,
    )
    assert details.error_message is not None
    assert "no source publishes it" in details.error_message


def test_a_prompt_not_read_yet_is_provider_not_ready() -> None:
    api.set_provider_and_wait(TollgateProvider(PromptRouter(StaticSource(prompt=PROMPT))))
    try:
        details = api.get_client().get_object_details(PROMPT, {"version": "v0"}, user("a"))
        assert details.value == {"version": "v0"}
        assert details.error_code == ErrorCode.PROVIDER_NOT_READY
    finally:
        api.clear_providers()


@pytest.mark.parametrize("kind", ["boolean", "integer", "float"])
def test_other_flag_types_are_type_mismatches(router: PromptRouter, kind: str) -> None:
    client = api.get_client()
    details: FlagEvaluationDetails[Any]
    if kind == "boolean":
        details = client.get_boolean_details(PROMPT, True, user("a"))
    elif kind == "integer":
        details = client.get_integer_details(PROMPT, 3, user("a"))
    else:
        details = client.get_float_details(PROMPT, 0.5, user("a"))
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert details.value in (True, 3, 0.5)


def test_a_new_publication_is_announced_as_a_configuration_change(
    router: PromptRouter, source: StaticSource
) -> None:
    heard: list[EventDetails] = []
    api.get_client().add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, heard.append)
    source.publish(document(50, revision=8))
    assert [event.flags_changed for event in heard] == [[PROMPT]]
    value = api.get_client().get_object_value(PROMPT, {}, user("a"))
    assert isinstance(value, dict)
    assert value["revision"] == 8
