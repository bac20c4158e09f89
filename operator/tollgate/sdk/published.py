"""The published prompt document: the one contract between the operator and apps.

The operator writes it (one JSON document per PromptRelease, under a key of a ConfigMap);
the SDK reads it. Both sides use this module, so the format is defined once. It is plain
standard-library code: apps import it without the operator's dependencies.

A document names the stable version and, during a rollout, the candidate; it carries their
templates, models and parameters, and their weights in percent (summing to 100). ``revision``
grows by one with every change the operator publishes, so apps and people can tell which
publication a request was served under.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "tollgate.dev/v1alpha1"
KIND = "PublishedPrompt"


MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # a ConfigMap holds at most 1 MiB; files a little more


class DocumentError(ValueError):
    """The published text is not a valid prompt document; the message says what is wrong."""


@dataclass(frozen=True)
class PublishedVersion:
    """One prompt version as apps see it."""

    name: str
    template: str
    model: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A short hash of the content: a version edited in place gets a new one."""
        canonical = json.dumps(
            {"template": self.template, "model": self.model, "parameters": self.parameters},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class PublishedPrompt:
    """What apps read: the versions in play and their weights."""

    prompt: str
    release: str
    revision: int
    stable: str
    candidate: str | None
    weights: Mapping[str, int]
    versions: Mapping[str, PublishedVersion]

    @property
    def candidate_weight(self) -> int:
        return self.weights.get(self.candidate, 0) if self.candidate else 0

    def same_content(self, other: "PublishedPrompt") -> bool:
        """Equal but for the revision: publishing it again would change nothing."""
        return to_json(self, revision=0) == to_json(other, revision=0)


def to_json(doc: PublishedPrompt, *, revision: int | None = None) -> str:
    """The document as published: stable key order, so equal documents are equal text."""
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "prompt": doc.prompt,
        "release": doc.release,
        "revision": doc.revision if revision is None else revision,
        "stable": doc.stable,
        "candidate": doc.candidate,
        "weights": dict(sorted(doc.weights.items())),
        "versions": {
            name: {
                "template": v.template,
                "model": v.model,
                "parameters": dict(v.parameters),
            }
            for name, v in sorted(doc.versions.items())
        },
    }
    return json.dumps(body, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise DocumentError(message)


def _text(value: Any, where: str) -> str:
    _need(isinstance(value, str) and value != "", f"{where} must be a non-empty string")
    text: str = value
    return text


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def parse(text: str | bytes) -> PublishedPrompt:
    """Parse and check a published document; raise DocumentError saying what is wrong."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"larger than {MAX_DOCUMENT_BYTES:,} bytes")
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentError(f"not JSON: {exc}") from exc
    except RecursionError as exc:  # nested past the interpreter's stack: not a document
        raise DocumentError("not a document: JSON nested too deeply") from exc
    _need(isinstance(raw, dict), "the document must be a JSON object")
    _need(raw.get("apiVersion") == API_VERSION, f"apiVersion must be {API_VERSION}")
    _need(raw.get("kind") == KIND, f"kind must be {KIND}")
    prompt = _text(raw.get("prompt"), "prompt")
    release = _text(raw.get("release"), "release")
    revision = raw.get("revision")
    _need(
        isinstance(revision, int) and not isinstance(revision, bool) and revision >= 1,
        "revision must be a positive integer",
    )
    stable = _text(raw.get("stable"), "stable")
    candidate = _optional_text(raw.get("candidate"), "candidate")
    versions_raw = raw.get("versions")
    _need(
        isinstance(versions_raw, dict) and bool(versions_raw), "versions must be a non-empty object"
    )
    versions: dict[str, PublishedVersion] = {}
    for name, body in versions_raw.items():
        _need(isinstance(body, dict), f"versions.{name} must be an object")
        template = _text(body.get("template"), f"versions.{name}.template")
        model = _optional_text(body.get("model"), f"versions.{name}.model")
        params = body.get("parameters") or {}
        _need(isinstance(params, dict), f"versions.{name}.parameters must be an object")
        versions[name] = PublishedVersion(name, template, model, params)
    weights_raw = raw.get("weights")
    _need(isinstance(weights_raw, dict) and bool(weights_raw), "weights must be a non-empty object")
    weights: dict[str, int] = {}
    for name, weight in weights_raw.items():
        _need(name in versions, f"weights.{name} names no published version")
        _need(
            isinstance(weight, int) and not isinstance(weight, bool) and 0 <= weight <= 100,
            f"weights.{name} must be an integer from 0 to 100",
        )
        weights[name] = weight
    _need(sum(weights.values()) == 100, "weights must sum to 100")
    _need(stable in versions, "stable names no published version")
    _need(candidate is None or candidate in versions, "candidate names no published version")
    _need(candidate != stable, "candidate and stable must differ")
    for name, weight in weights.items():
        _need(
            weight == 0 or name in (stable, candidate),
            f"weights.{name}: only the stable and the candidate version can have a weight",
        )
    return PublishedPrompt(prompt, release, revision, stable, candidate, weights, versions)
