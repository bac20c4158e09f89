"""Generate the CustomResourceDefinitions from the pydantic models.

pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses $ref,
anyOf-with-null for optionals, JSON-Schema-2020 exclusive bounds, titles and
``additionalProperties: false``. :func:`structural` rewrites it into the OpenAPI v3 subset the
API server accepts (every node typed, no $ref, no anyOf around types), keeping descriptions,
defaults, bounds, patterns and the CEL rules declared on the models.
"""

from typing import Any

import yaml
from pydantic import BaseModel

from tollgate.api.canary import CanarySpec
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.status import RolloutStatus

GROUP = "tollgate.dev"
VERSION = "v1alpha1"

_DROPPED_KEYS = {"title", "examples", "propertyNames", "$defs"}
_K8S_EXTENSIONS = (
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
)

JSON = dict[str, Any]


class SchemaError(ValueError):
    """The models use a construct the generator cannot express structurally."""


def _resolve(node: JSON, defs: JSON) -> JSON:
    """Inline $ref and collapse Optional (anyOf [X, null]) into X, keeping outer keywords."""
    outer = {k: v for k, v in node.items() if k not in ("$ref", "anyOf", "allOf")}
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return {**_resolve(target, defs), **outer}
    for key in ("anyOf", "allOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"]
            if len(options) != 1:
                raise SchemaError(f"cannot express {key} with {len(options)} branches: {node}")
            inner = _resolve(options[0], defs)
            merged = {**inner, **outer}
            # An outer validation list (e.g. on a list field) adds to the item type's own.
            for ext in ("x-kubernetes-validations",):
                if ext in inner and ext in outer:
                    merged[ext] = [*inner[ext], *outer[ext]]
            return merged
    return dict(node)


def structural(node: JSON, defs: JSON, *, keep_defaults: bool = True) -> JSON:
    """Rewrite one pydantic JSON Schema node (and its children) into a structural schema."""
    node = _resolve(node, defs)
    out: JSON = {}
    if "const" in node:
        node = {**node, "enum": [node.pop("const")]}
        node.setdefault("type", "string")
    node_type = node.get("type")
    if node_type is None:
        raise SchemaError(f"untyped schema node: {node}")
    out["type"] = node_type
    if "description" in node:
        out["description"] = node["description"]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[flag] = node[bound]
            out[bound] = True
    for key in (
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "maxProperties",
        "enum",
        "format",
    ):
        if key in node:
            out[key] = node[key]
    if keep_defaults and "default" in node and node["default"] is not None:
        out["default"] = node["default"]
    if node_type == "object":
        _object(node, out, defs, keep_defaults)
    elif node_type == "array":
        out["items"] = structural(node["items"], defs, keep_defaults=keep_defaults)
    for ext in _K8S_EXTENSIONS:
        if ext in node and ext not in out:
            out[ext] = node[ext]
    fractional = _fractional_bounds_rule(out)
    if fractional:
        out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), fractional]
    unknown = (
        set(node)
        - set(out)
        - _DROPPED_KEYS
        - {
            "properties",
            "required",
            "additionalProperties",
            "items",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "default",
            "const",
            "patternProperties",
        }
    )
    if unknown:
        raise SchemaError(f"unsupported keywords {sorted(unknown)} in {node}")
    return out


def _fractional_bounds_rule(out: JSON) -> JSON | None:
    """A CEL rule restating a number's non-integral bounds, or None when it has none.

    The API server compares an integer-valued JSON number with a bound truncated to an
    integer: ``quantile: 0`` passes ``minimum: 0.5``. CEL sees the value as a double.
    """
    if out.get("type") != "number":
        return None
    parts, words = [], []
    for key, op, strict_op, word, strict_word in (
        ("minimum", ">=", ">", "at least", "more than"),
        ("maximum", "<=", "<", "at most", "less than"),
    ):
        bound = out.get(key)
        if bound is None or float(bound).is_integer():
            continue
        strict = out.get(f"exclusive{key.capitalize()}") is True
        parts.append(f"self {strict_op if strict else op} {float(bound)!r}")
        words.append(f"{strict_word if strict else word} {bound}")
    if not parts:
        return None
    return {"rule": " && ".join(parts), "message": f"must be {' and '.join(words)}"}


def _object(node: JSON, out: JSON, defs: JSON, keep_defaults: bool) -> None:
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    patterns = node.get("patternProperties")
    key_pattern: str | None = None
    if patterns:
        if len(patterns) != 1 or extra:
            raise SchemaError(f"cannot express patternProperties {patterns}")
        ((key_pattern, extra),) = patterns.items()
    key_rule = _key_rule(key_pattern, node.get("propertyNames") or {})
    if key_rule:
        out["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), key_rule]
    if properties:
        out["properties"] = {
            name: structural(child, defs, keep_defaults=keep_defaults)
            for name, child in properties.items()
        }
        if node.get("required"):
            out["required"] = list(node["required"])
    elif isinstance(extra, dict) and extra:
        out["additionalProperties"] = structural(extra, defs, keep_defaults=keep_defaults)
    else:
        # A free-form map (e.g. model parameters): kept as given, not pruned.
        out["x-kubernetes-preserve-unknown-fields"] = True


def _key_rule(pattern: str | None, names: JSON) -> dict[str, str] | None:
    """A CEL rule for the keys of a map: Kubernetes has no patternProperties or propertyNames."""
    if set(names) - {"maxLength"}:
        raise SchemaError(f"cannot express propertyNames {names}")
    checks: list[str] = []
    wants: list[str] = []
    if "maxLength" in names:
        checks.append(f"size(k) <= {int(names['maxLength'])}")
        wants.append(f"be at most {int(names['maxLength'])} characters")
    if pattern is not None:
        literal = pattern.replace("\\", "\\\\").replace("'", "\\'")
        checks.append(f"k.matches('{literal}')")
        wants.insert(0, f"match {pattern}")
    if not checks:
        return None
    return {
        "rule": f"self.all(k, {' && '.join(checks)})",
        "message": f"keys must {' and '.join(wants)}",
    }


def model_schema(model: type[BaseModel], *, keep_defaults: bool = True) -> JSON:
    """The structural schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}), keep_defaults=keep_defaults)


def _root_schema(kind: str, spec: type[BaseModel], description: str) -> JSON:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "Versioned schema of this representation of an object.",
            },
            "kind": {"type": "string", "description": f"Always {kind}."},
            "metadata": {"type": "object"},
            "spec": model_schema(spec),
            "status": model_schema(RolloutStatus, keep_defaults=False),
        },
    }


_COMMON_COLUMNS: list[JSON] = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Rollout phase.",
    },
    {
        "name": "Weight",
        "type": "integer",
        "jsonPath": ".status.canaryWeight",
        "description": "Percent of traffic on the new version.",
    },
    {
        "name": "Step",
        "type": "integer",
        "jsonPath": ".status.currentStep",
        "description": "Steps reached.",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.reason",
        "priority": 1,
        "description": "Reason of the last transition.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _crd(kind: str, plural: str, short_names: list[str], root: JSON, columns: list[JSON]) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "tollgate",
                "app.kubernetes.io/part-of": "tollgate",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["tollgate"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def canary_crd() -> JSON:
    """The Canary CRD."""
    columns = [
        {
            "name": "Target",
            "type": "string",
            "jsonPath": ".spec.targetRef.name",
            "description": "The Deployment rolled out.",
        },
        *_COMMON_COLUMNS[:3],
        {
            "name": "Revision",
            "type": "string",
            "jsonPath": ".status.revision",
            "priority": 1,
            "description": "Revision under analysis.",
        },
        *_COMMON_COLUMNS[3:],
    ]
    root = _root_schema(
        "Canary",
        CanarySpec,
        "Canary rolls out a new pod template of a Deployment in steps, "
        "judged on SLOs, and rolls it back on its own when they break.",
    )
    return _crd("Canary", "canaries", ["tgcanary", "tgc"], root, columns)


def promptrelease_crd() -> JSON:
    """The PromptRelease CRD."""
    columns = [
        {
            "name": "Prompt",
            "type": "string",
            "jsonPath": ".spec.prompt",
            "description": "Prompt name.",
        },
        {
            "name": "Stable",
            "type": "string",
            "jsonPath": ".status.stableRevision",
            "description": "Stable version.",
        },
        {
            "name": "Candidate",
            "type": "string",
            "jsonPath": ".spec.candidate",
            "description": "Version being rolled out.",
        },
        *_COMMON_COLUMNS,
    ]
    root = _root_schema(
        "PromptRelease",
        PromptReleaseSpec,
        "PromptRelease rolls out a new prompt version per "
        "request through the in-app prompt router, judged on SLOs, and rolls it back on its own.",
    )
    return _crd("PromptRelease", "promptreleases", ["tgprompt", "tgpr"], root, columns)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated values in full: no &anchors/*aliases that some YAML tools reject."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: JSON) -> str:
    """A CRD as the YAML committed in crds/."""
    header = "# Generated from operator/tollgate/api by `make crds`. Do not edit.\n"
    return header + yaml.dump(
        crd, Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True
    )


PEERING_GROUP = "kopf.dev"


def _peering_crd(kind: str, plural: str, scope: str) -> JSON:
    """One of kopf's peering resources, as kopf documents them: an object whose status holds
    each replica's keep-alive (priority, lifetime, last seen)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{PEERING_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "tollgate"},
        },
        "spec": {
            "group": PEERING_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": scope,
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def peering_crds() -> list[JSON]:
    """kopf's peering CRDs, needed only to run more than one replica (``tollgate run
    --peering``): ClusterKopfPeering for cluster mode, KopfPeering for namespaced mode."""
    return [
        _peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
    ]


def generated_files() -> dict[str, str]:
    """File name -> content of every CRD in crds/ (kopf's peering ones in crds/peering/)."""
    return {
        f"{GROUP}_canaries.yaml": render(canary_crd()),
        f"{GROUP}_promptreleases.yaml": render(promptrelease_crd()),
        **{
            f"peering/{PEERING_GROUP}_{crd['spec']['names']['plural']}.yaml": render(crd)
            for crd in peering_crds()
        },
    }
