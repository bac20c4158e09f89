"""Published documents for the SDK tests, built the way the operator publishes them."""

import json
from typing import Any

from tollgate.sdk.published import PublishedPrompt, PublishedVersion, to_json
from tollgate.sdk.sources import Source

PROMPT = "support-answer"
STABLE_TEMPLATE = "You are a support agent for {product}. Answer briefly.\nQuestion: {question}"
CANDIDATE_TEMPLATE = "You support {product}. Be precise.\nQ: {question}\nA:"


def document(
    weight: int = 5,
    *,
    revision: int = 1,
    prompt: str = PROMPT,
    stable: str = "v7",
    candidate: str | None = "v8",
    stable_template: str = STABLE_TEMPLATE,
    candidate_template: str = CANDIDATE_TEMPLATE,
) -> PublishedPrompt:
    """A document with ``weight`` percent on the candidate (none without a candidate)."""
    versions = {
        stable: PublishedVersion(
            stable, stable_template, "gpt-4o-mini", {"temperature": 0.2, "max_tokens": 512}
        )
    }
    weights = {stable: 100}
    if candidate is not None:
        versions[candidate] = PublishedVersion(
            candidate, candidate_template, "gpt-4o", {"temperature": 0.1, "stop": ["\n\n"]}
        )
        weights = {stable: 100 - weight, candidate: weight}
    return PublishedPrompt(prompt, prompt, revision, stable, candidate, weights, versions)


def text(weight: int = 5, **changes: Any) -> str:
    return to_json(document(weight, **changes))


def corrupt(kind: str) -> str:
    """A broken publication: ``json``, ``weights`` (not summing to 100) or ``template``."""
    if kind == "json":
        return text()[:40]
    body = json.loads(text(revision=99))
    if kind == "weights":
        body["weights"] = {"v7": 90, "v8": 5}
    elif kind == "template":
        del body["versions"]["v8"]["template"]
    else:
        raise ValueError(kind)
    return json.dumps(body)


def health(source: Source) -> tuple[int, str | None]:
    """The source's error count and last error, read afresh (type checkers narrow attributes
    across the calls that change them)."""
    return source.errors, source.last_error
