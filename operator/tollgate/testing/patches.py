"""PATCH bodies as the API server applies them, chosen by the request's Content-Type.

kopf writes with merge patches and guards finalizer changes with a JSON patch whose first op
is ``test /metadata/resourceVersion``; our own client may use either. A strategic merge patch
is applied as a merge patch (lists are replaced, never merged by key), and server-side apply is
refused with 415, the way a server without that feature would.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES: frozenset[str] = frozenset({MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH})


class PatchError(Exception):
    """A patch that cannot apply; ``status`` is the HTTP code the server answers with."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def normalize_content_type(content_type: str | None) -> str:
    """The media type alone, lower-cased, without ``; charset=...``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def apply_patch(body: Mapping[str, Any], content_type: str | None, patch: Any) -> dict[str, Any]:
    """Apply a PATCH body of a given Content-Type to an object; never mutates ``body``."""
    kind = normalize_content_type(content_type)
    if kind in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(patch, Mapping):
            raise PatchError(400, "BadRequest", "a merge patch must be a JSON object")
        result = merge_patch(copy.deepcopy(dict(body)), patch)
        assert isinstance(result, dict)
        return result
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError(400, "BadRequest", "a JSON patch must be a JSON array of operations")
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(dict(body)), patch, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise PatchError(
                422, "Invalid", f"the JSON patch test operation failed: {exc}"
            ) from exc
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            KeyError,
            TypeError,
        ) as exc:
            raise PatchError(422, "Invalid", f"the JSON patch cannot be applied: {exc}") from exc
        if not isinstance(patched, dict):
            raise PatchError(422, "Invalid", "the JSON patch replaced the whole object")
        return patched
    raise PatchError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(sorted(PATCH_TYPES))}; got {kind or 'none'!r}",
    )
