"""Label and field selectors for list and watch requests (``?labelSelector=``, ``?fieldSelector=``).

Operators scope their watches with selectors, and a server that ignored them would hand kopf
objects a real cluster never sends. Label selectors follow the Kubernetes grammar (``a=b``,
``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x,y)``); field selectors support
``=``, ``==`` and ``!=`` on any dotted path, which covers ``metadata.name`` and
``metadata.namespace``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")


class SelectorError(ValueError):
    """The selector does not parse; the server answers 400 Bad Request."""


@dataclasses.dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        present = self.key in labels
        value = str(labels[self.key]) if present else None
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return value in self.values
        # "!=" and "notin" also match objects that lack the label, as in Kubernetes.
        return value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _parse_requirement(text: str) -> _Requirement:
    if match := _SET_RE.match(text):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        return _Requirement(match["key"], match["op"], values)
    for op in ("!=", "==", "="):
        if op in text:
            key, _, value = text.partition(op)
            if not key.strip():
                raise SelectorError(f"invalid selector requirement: {text!r}")
            return _Requirement(
                key.strip(), "!=" if op == "!=" else "=", frozenset({value.strip()})
            )
    if text.startswith("!"):
        return _Requirement(text[1:].strip(), "!exists")
    if re.fullmatch(r"[A-Za-z0-9._/-]+", text):
        return _Requirement(text, "exists")
    raise SelectorError(f"invalid selector requirement: {text!r}")


def label_matcher(selector: str | None) -> Matcher:
    """A predicate on an object body for a ``labelSelector`` (empty: everything matches)."""
    requirements = [_parse_requirement(part) for part in _split_top_level(selector or "")]

    def matches(body: Mapping[str, Any]) -> bool:
        labels = (body.get("metadata") or {}).get("labels") or {}
        return all(requirement.matches(labels) for requirement in requirements)

    return matches


def _lookup(body: Mapping[str, Any], path: str) -> str | None:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def field_matcher(selector: str | None) -> Matcher:
    """A predicate on an object body for a ``fieldSelector`` (empty: everything matches)."""
    checks: list[tuple[str, bool, str]] = []
    for part in _split_top_level(selector or ""):
        for op in ("!=", "==", "="):
            if op in part:
                path, _, value = part.partition(op)
                checks.append((path.strip(), op == "!=", value.strip()))
                break
        else:
            raise SelectorError(f"invalid field selector requirement: {part!r}")

    def matches(body: Mapping[str, Any]) -> bool:
        for path, negated, value in checks:
            actual = _lookup(body, path) or ""
            if (actual == value) == negated:
                return False
        return True

    return matches
