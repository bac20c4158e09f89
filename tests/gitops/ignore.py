"""The HTTPRoute ignore rules that docs/argocd.md, docs/flux.md and examples/gitops give, applied
the way the tools apply them, so a test can show they hide exactly the weights Tollgate writes.

Argo CD deletes what each ``jqPathExpressions`` entry selects (gojq, ``del(expr)``; here the jq
command, when installed) and each ``jsonPointers`` path; Flux's ``driftIgnoreRules`` are JSON
pointers too. A pointer to nothing removes nothing, as in both tools.
"""

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tollgate.testing.cluster import repo_root

ROOT = repo_root()
EXAMPLES = ROOT / "examples" / "gitops"
FENCED_YAML = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
Obj = dict[str, Any]
Remove = Callable[[Obj], Obj]


def documents(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def doc_blocks(path: Path) -> list[Obj]:
    """The YAML blocks of a Markdown page that parse as mappings."""
    blocks = [yaml.safe_load(b) for b in FENCED_YAML.findall(path.read_text())]
    return [b for b in blocks if isinstance(b, dict)]


def found(obj: Any, key: str) -> Iterator[Any]:
    """Every value of ``key`` anywhere in a parsed document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from found(v, key)
    elif isinstance(obj, list):
        for item in obj:
            yield from found(item, key)


def route_rules(docs: list[Obj]) -> list[Obj]:
    """The ignoreDifferences entries (Argo CD) and driftIgnoreRules (Flux) about HTTPRoutes."""
    entries = [e for d in docs for rules in found(d, "ignoreDifferences") for e in rules]
    entries += [
        {"jsonPointers": r["paths"], **(r.get("target") or {})}
        for d in docs
        for rules in found(d, "driftIgnoreRules")
        for r in rules
    ]
    return [e for e in entries if e.get("kind") == "HTTPRoute"]


def published_rules() -> dict[str, Obj]:
    """Each HTTPRoute rule the docs and examples give, by where it is written."""
    sources = {
        "docs/argocd.md": doc_blocks(ROOT / "docs" / "argocd.md"),
        "docs/flux.md": doc_blocks(ROOT / "docs" / "flux.md"),
        "examples/gitops/argocd/checkout.yaml": documents(EXAMPLES / "argocd" / "checkout.yaml"),
        "examples/gitops/flux/checkout.yaml": documents(EXAMPLES / "flux" / "checkout.yaml"),
    }
    return {
        f"{where}#{i}": rule
        for where, docs in sources.items()
        for i, rule in enumerate(route_rules(docs))
    }


def without_pointer(obj: Obj, pointer: str) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None or (isinstance(node, list) and not node):
            return
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and int(last) < len(node):
        del node[int(last)]


def has_jq() -> bool:
    return shutil.which("jq") is not None


def remover(rule: Obj) -> Remove:
    """What the tool removes from an object before comparing it, for one rule."""

    def remove(obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        for pointer in rule.get("jsonPointers") or ():
            without_pointer(out, pointer)
        expressions = rule.get("jqPathExpressions") or ()
        if expressions:
            program = " | ".join(f"del({e})" for e in expressions)
            done = subprocess.run(
                ["jq", "-c", program],
                input=json.dumps(out),
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            out = json.loads(done.stdout)
        return dict(out)

    return remove


def tollgates_weights_removed(route: Obj) -> Obj:
    """The route without the weights Tollgate writes: what a rule should remove, and only that."""
    out = copy.deepcopy(route)
    for rule in out["spec"]["rules"]:
        for ref in rule.get("backendRefs") or ():
            if ref["name"].endswith(("-primary", "-canary")):
                ref.pop("weight", None)
    return out


def hiding_problems(rule: Obj, before: Obj, during: Obj) -> list[str]:
    """Why a rule fails to hide a rollout's change of the route (before vs during), or hides
    more than Tollgate's weights."""
    remove = remover(rule)
    problems = []
    if before["spec"] == during["spec"]:
        problems.append("the rollout did not change the route: nothing to hide")
    if remove(before)["spec"] != remove(during)["spec"]:
        problems.append(f"still differs: {remove(before)['spec']} != {remove(during)['spec']}")
    for route in (before, during):
        if remove(route)["spec"] != tollgates_weights_removed(route)["spec"]:
            problems.append(f"removes other than Tollgate's weights: {remove(route)['spec']}")
    return problems
