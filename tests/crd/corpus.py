"""The objects the CRD tests run on: committed CRDs, examples, and edits of the examples.

Why a module: the tests are parametrized at collection time, so the CRDs, the examples and the
invalid-object cases are loaded by plain functions (cached) rather than by fixtures, and the
small "edit an example at a dotted path" language of invalid_objects.yaml lives in one place.
"""

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tollgate.api.canary import CanarySpec
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.validation import SpecProblem, parse

JSON = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLE_DIR = ROOT / "examples"
CASES_FILE = Path(__file__).with_name("invalid_objects.yaml")

SPEC_MODELS: dict[str, type[CanarySpec] | type[PromptReleaseSpec]] = {
    "Canary": CanarySpec,
    "PromptRelease": PromptReleaseSpec,
}
REJECTERS = ("schema", "cel", "code")


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


@functools.cache
def _crds() -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = load_yaml(path)
        out[doc["spec"]["names"]["kind"]] = doc
    return out


def crd_for(kind: str) -> JSON:
    """The committed CRD of a kind (a fresh copy: tests may edit it)."""
    return copy.deepcopy(_crds()[kind])


def crd_kinds() -> list[str]:
    """Kinds with a committed CRD."""
    return sorted(_crds())


def example_paths() -> list[Path]:
    """Every example manifest."""
    return sorted(EXAMPLE_DIR.glob("*.yaml"))


def example(name: str) -> JSON:
    """A fresh copy of one example object, by file name."""
    doc: JSON = load_yaml(EXAMPLE_DIR / name)
    return doc


def parse_problems(obj: JSON) -> list[SpecProblem]:
    """What the operator's own parser says about an object's spec."""
    _, problems = parse(SPEC_MODELS[obj["kind"]], obj.get("spec"))
    return problems


def _split(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _parent(obj: Any, path: str) -> tuple[Any, str | int]:
    *head, last = _split(path)
    node = obj
    for part in head:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError) as exc:
            raise LookupError(f"{path}: no {part!r} on the way") from exc
    return node, last


def set_path(obj: Any, path: str, value: Any) -> None:
    """Set ``a.b.0.c``; every container on the way must exist (typos fail loudly)."""
    node, last = _parent(obj, path)
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise LookupError(f"{path}: bad list index")
        if last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)
    elif isinstance(node, dict):
        node[str(last)] = copy.deepcopy(value)
    else:
        raise LookupError(f"{path}: parent is not a container")


def delete_path(obj: Any, path: str) -> None:
    """Delete ``a.b.0.c``; it must exist."""
    node, last = _parent(obj, path)
    try:
        del node[last]
    except (KeyError, IndexError, TypeError) as exc:
        raise LookupError(f"{path}: nothing to delete") from exc


@dataclass(frozen=True)
class Edit:
    """An example with some paths deleted, then some set."""

    base: str
    set: dict[str, Any] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)

    def build(self) -> JSON:
        """The edited object."""
        obj = example(self.base)
        for path in self.delete:
            delete_path(obj, path)
        for path, value in self.set.items():
            set_path(obj, path, value)
        return obj


@dataclass(frozen=True)
class Case:
    """One invalid object of invalid_objects.yaml and who must reject it."""

    name: str
    edit: Edit
    rejected_by: str
    expect: str


def load_cases() -> list[Case]:
    """Every case of invalid_objects.yaml, checked for shape."""
    raw = load_yaml(CASES_FILE)
    cases: list[Case] = []
    for entry in raw:
        unknown = set(entry) - {"name", "base", "set", "delete", "rejected_by", "expect"}
        if unknown:
            raise ValueError(f"{entry.get('name')}: unknown keys {sorted(unknown)}")
        if entry["rejected_by"] not in REJECTERS:
            raise ValueError(f"{entry['name']}: rejected_by must be one of {REJECTERS}")
        edit = Edit(entry["base"], dict(entry.get("set") or {}), list(entry.get("delete") or []))
        if not edit.set and not edit.delete:
            raise ValueError(f"{entry['name']}: neither set nor delete")
        cases.append(Case(entry["name"], edit, entry["rejected_by"], str(entry["expect"])))
    return cases
