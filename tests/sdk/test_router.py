"""The router's promises: the candidate gets its share, users stick to their version, a weight
change moves the fewest users, and a prompt once served is never lost to a bad publication.

Bucket positions are computed here from the published formula, not with the SDK's helper, so
the tests pin the hashing itself (apps in other languages must reproduce it).
"""

import hashlib
import math
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sdk.builders import PROMPT, corrupt, document, health, text
from tollgate.sdk import (
    Choice,
    MissingVariableError,
    PromptRouter,
    PromptUnavailable,
    StaticSource,
    TemplateError,
    bucket,
)

KEYS = st.text(min_size=1, max_size=40)
CANDIDATES = st.from_regex(r"v[0-9]{1,3}-[a-z]{1,4}", fullmatch=True)


def u(prompt: str, candidate: str, key: str) -> int:
    digest = hashlib.blake2b(f"{prompt}\0{candidate}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000


def router(weight: int, candidate: str | None = "v8", **changes: Any) -> PromptRouter:
    source = StaticSource(document(weight, candidate=candidate, **changes))
    return PromptRouter(source, rng=random.Random(7))


def within_binomial_bounds(observed: int, n: int, p: float) -> bool:
    """Fails for a correct implementation with probability far below 1e-6 (a 5-sigma bound)."""
    return abs(observed - p * n) <= 5 * math.sqrt(n * p * (1 - p)) + 1


# -- the split ----------------------------------------------------------------------------------


@settings(max_examples=40)
@given(weight=st.integers(1, 99), candidate=CANDIDATES, salt=st.text(max_size=8))
def test_the_candidate_share_follows_its_weight(weight: int, candidate: str, salt: str) -> None:
    chooser = router(weight, candidate)
    n = 4000
    served = sum(chooser.choose(PROMPT, f"{salt}user-{i}").is_candidate for i in range(n))
    assert within_binomial_bounds(served, n, weight / 100)


@settings(max_examples=20)
@given(weight=st.integers(1, 99), seed=st.integers(0, 2**32))
def test_requests_without_a_key_are_drawn_at_random_with_the_seeded_rng(
    weight: int, seed: int
) -> None:
    source = StaticSource(document(weight))
    first = PromptRouter(source, rng=random.Random(seed))
    again = PromptRouter(source, rng=random.Random(seed))
    n = 4000
    draws = [first.choose(PROMPT).version for _ in range(n)]
    assert draws == [again.choose(PROMPT).version for _ in range(n)]
    assert within_binomial_bounds(draws.count("v8"), n, weight / 100)


@given(weight=st.integers(0, 100), candidate=CANDIDATES, key=KEYS)
def test_the_candidate_serves_exactly_the_keys_below_its_threshold(
    weight: int, candidate: str, key: str
) -> None:
    choice = router(weight, candidate).choose(PROMPT, key)
    assert choice.is_candidate == (u(PROMPT, candidate, key) < weight * 100)
    assert bucket(PROMPT, candidate, key) == u(PROMPT, candidate, key)
    assert choice.version == (candidate if choice.is_candidate else "v7")


@given(keys=st.lists(KEYS, min_size=1, max_size=50))
def test_weight_zero_serves_only_stable_and_one_hundred_only_the_candidate(
    keys: list[str],
) -> None:
    none, everyone = router(0), router(100)
    assert {none.choose(PROMPT, key).role for key in keys} == {"stable"}
    assert {everyone.choose(PROMPT, key).role for key in keys} == {"candidate"}
    assert {none.choose(PROMPT).role for _ in keys} == {"stable"}
    assert {everyone.choose(PROMPT).role for _ in keys} == {"candidate"}


def test_without_a_candidate_everyone_gets_stable() -> None:
    chooser = router(0, candidate=None)
    assert {chooser.choose(PROMPT, f"u{i}").version for i in range(200)} == {"v7"}


# -- stickiness and movement --------------------------------------------------------------------


@given(weight=st.integers(0, 100), keys=st.lists(KEYS, min_size=1, max_size=50))
def test_a_key_sticks_to_its_version_across_calls_and_reloads(weight: int, keys: list[str]) -> None:
    source = StaticSource(document(weight, revision=1))
    chooser = PromptRouter(source)
    before = {key: chooser.choose(PROMPT, key).version for key in keys}
    assert before == {key: chooser.choose(PROMPT, key).version for key in keys}
    assert source.publish(document(weight, revision=2))
    after = {key: chooser.choose(PROMPT, key) for key in keys}
    assert {key: choice.version for key, choice in after.items()} == before
    assert {choice.revision for choice in after.values()} == {2}


@settings(max_examples=60)
@given(
    weights=st.lists(st.integers(0, 100), min_size=2, max_size=2, unique=True).map(sorted),
    candidate=CANDIDATES,
)
def test_raising_the_weight_moves_only_the_keys_between_the_thresholds(
    weights: list[int], candidate: str
) -> None:
    w1, w2 = weights
    source = StaticSource(document(w1, candidate=candidate, revision=1))
    chooser = PromptRouter(source)
    keys = [f"user-{i}" for i in range(2000)]
    before = {key: chooser.choose(PROMPT, key).is_candidate for key in keys}
    source.publish(document(w2, candidate=candidate, revision=2))
    after = {key: chooser.choose(PROMPT, key).is_candidate for key in keys}

    assert not [key for key in keys if before[key] and not after[key]]  # nobody leaves
    moved = {key for key in keys if before[key] != after[key]}
    assert moved == {key for key in keys if w1 * 100 <= u(PROMPT, candidate, key) < w2 * 100}


def test_a_new_candidate_is_tried_on_a_different_slice_of_users() -> None:
    keys = [f"user-{i}" for i in range(20000)]
    with_v8, with_v9 = router(10, "v8"), router(10, "v9")
    first = {key for key in keys if with_v8.choose(PROMPT, key).is_candidate}
    second = {key for key in keys if with_v9.choose(PROMPT, key).is_candidate}
    overlap = len(first & second)
    assert within_binomial_bounds(overlap, len(keys), 0.01)  # independent: 10% of 10%


# -- choices and rendering ----------------------------------------------------------------------


def test_a_choice_carries_the_version_and_renders_its_template() -> None:
    choice = router(100).choose(PROMPT, "alice")
    assert (choice.prompt, choice.version, choice.role) == (PROMPT, "v8", "candidate")
    assert (choice.model, choice.revision, choice.weight) == ("gpt-4o", 1, 100)
    assert dict(choice.parameters) == {"temperature": 0.1, "stop": ["\n\n"]}
    assert choice.render(product="Acme", question="Why?") == (
        "You support Acme. Be precise.\nQ: Why?\nA:"
    )
    assert choice.render_map({"product": "Acme", "question": "Why?"}) == choice.render(
        product="Acme", question="Why?"
    )
    with pytest.raises(TypeError):
        choice.parameters["temperature"] = 1.0  # type: ignore[index]


def test_a_missing_variable_names_the_field_the_version_and_the_prompt() -> None:
    choice = router(0).choose(PROMPT, "bob")
    with pytest.raises(KeyError) as caught:
        choice.render(product="Acme")
    assert isinstance(caught.value, MissingVariableError)
    assert (caught.value.field, caught.value.version, caught.value.prompt) == (
        "question",
        "v7",
        PROMPT,
    )
    assert str(caught.value) == (
        "the template of prompt 'support-answer' version 'v7' needs the variable 'question', "
        "which was not given"
    )


def test_a_broken_template_is_served_and_fails_clearly_when_rendered() -> None:
    # Rejecting the document would also reject the rollback that fixes it: the request fails,
    # is measured as an error on the candidate, and the operator rolls it back.
    chooser = router(100, candidate_template="Hello {name")
    with pytest.raises(TemplateError, match="prompt 'support-answer' version 'v8'"):
        chooser.choose(PROMPT, "carol").render(name="x")


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
LITERALS = st.text(max_size=20).map(lambda t: t.replace("{", "{{").replace("}", "}}"))
VALUES = st.one_of(st.text(max_size=10), st.integers(), st.floats(allow_nan=False), st.none())


@settings(max_examples=100)
@given(
    pieces=st.lists(st.tuples(LITERALS, NAMES), max_size=6),
    tail=LITERALS,
    values=st.dictionaries(NAMES, VALUES),
)
def test_rendering_is_str_format_map(
    pieces: list[tuple[str, str]], tail: str, values: dict[str, object]
) -> None:
    template = ">" + "".join(f"{literal}{{{name}}}" for literal, name in pieces) + tail
    values = {name: values.get(name, name.upper()) for _, name in pieces} | values
    choice = Choice(PROMPT, "v7", "stable", template, None, {}, revision=1, weight=100)
    assert choice.render_map(values) == template.format_map(values)


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{user.__init__.__globals__}", "not {user.__init__.__globals__}"),  # the app's globals
        ("{user.__class__}", "only plain {name} fields"),
        ("{items[0]}", "not {items[0]}"),
        ("{question:>200000000}", "not {question:>200000000}"),  # 200 MB per request
        ("{name!r}", "not {name!r}"),
        ("{0}", "not {0}"),
        ("Hello {name", "not a template"),
    ],
)
def test_templates_are_data_only_plain_fields_are_filled(template: str, says: str) -> None:
    class User:
        secret = "hunter2"

    choice = router(0, stable_template=template).choose(PROMPT)
    with pytest.raises(TemplateError, match=re.escape(says)):
        choice.render(user=User(), items=["a"], question="q", name="n")


def test_a_rendered_prompt_is_capped_in_size() -> None:
    choice = router(0, stable_template="{a}{a}{a}").choose(PROMPT)
    assert choice.render(a="x" * 1000) == "x" * 3000
    with pytest.raises(TemplateError, match="rendered to more than 1,000,000 characters"):
        choice.render(a="x" * 400_000)


def test_a_variable_may_be_called_self() -> None:
    chooser = router(0, stable_template="{self} and {other}")
    assert chooser.choose(PROMPT).render(self="a", other="b") == "a and b"


# -- availability -------------------------------------------------------------------------------


def test_a_prompt_without_any_good_document_is_unavailable_with_the_reason() -> None:
    source = StaticSource(corrupt("weights"), prompt=PROMPT)
    chooser = PromptRouter(source)
    with pytest.raises(PromptUnavailable) as caught:
        chooser.choose(PROMPT, "dave")
    assert caught.value.pending == (source,)
    assert str(caught.value) == (
        "prompt 'support-answer' is unavailable, no good document read yet: static document: "
        "invalid document: weights must sum to 100"
    )


def test_an_unknown_prompt_is_unavailable_naming_the_known_ones() -> None:
    with pytest.raises(PromptUnavailable, match=r"no source publishes it \(known: 'support-"):
        router(5).choose("other-prompt")
    with pytest.raises(PromptUnavailable, match="the router has no source"):
        PromptRouter().choose(PROMPT)


@pytest.mark.parametrize("kind", ["json", "weights", "template"])
def test_after_one_good_document_bad_ones_never_make_the_prompt_unavailable(kind: str) -> None:
    source = StaticSource(document(5, revision=3))
    chooser = PromptRouter(source)
    assert not source.publish(corrupt(kind))
    assert not source.publish(text(5, prompt="another-prompt", revision=4))
    assert chooser.choose(PROMPT, "erin").revision == 3
    assert source.errors == 2
    assert source.last_error == (
        "the document is for prompt 'another-prompt', expected 'support-answer'"
    )
    assert source.publish(document(50, revision=5))
    assert health(source) == (2, None)
    assert chooser.choose(PROMPT, "erin").revision == 5


def test_several_prompts_route_independently_and_subscribers_hear_of_changes() -> None:
    support, summary = StaticSource(document(0)), StaticSource(document(100, prompt="summary"))
    chooser = PromptRouter(support, summary)
    heard: list[tuple[str, ...]] = []
    unsubscribe = chooser.subscribe(heard.append)
    assert chooser.prompts() == (PROMPT, "summary")
    assert chooser.choose(PROMPT, "k").role == "stable"
    assert chooser.choose("summary", "k").role == "candidate"

    support.publish(document(100, revision=2))
    assert heard == [(PROMPT,)]
    assert chooser.choose(PROMPT, "k").role == "candidate"
    assert chooser.document("summary") == document(100, prompt="summary")

    unsubscribe()
    summary.publish(document(0, prompt="summary", revision=2))
    assert heard == [(PROMPT,)]


def test_a_second_source_for_the_same_prompt_is_ignored() -> None:
    chooser = PromptRouter(StaticSource(document(0)), StaticSource(document(100)))
    assert chooser.choose(PROMPT, "k").role == "stable"
