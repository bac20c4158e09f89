"""The committed CRDs: generated from the models, acceptable to an API server, and in agreement
with the operator's parser on every example.

Why: the CRDs are what users install; a CRD the server refuses, or one that accepts specs the
operator rejects (or the reverse), breaks every rollout. With no API server here, the checks
run against tests/crd/kube_schema.py, an offline approximation of the server's rules.
"""

import copy
from pathlib import Path
from typing import Any

import celpy
import pytest
from tests.crd.corpus import (
    CRD_DIR,
    SPEC_MODELS,
    Edit,
    crd_for,
    crd_kinds,
    example,
    example_paths,
    load_yaml,
    parse_problems,
)
from tests.crd.kube_schema import (
    BOUNDED_FORMATS,
    apply_defaults,
    cel_compile_error,
    cel_errors,
    openapi_schema,
    structural_errors,
    validate,
)

from tollgate.api.crds import generated_files
from tollgate.api.validation import parse

JSON = dict[str, Any]

GENERATED = generated_files()
KINDS = crd_kinds()
EXAMPLES = example_paths()


def _rules(node: JSON, path: str = "") -> list[tuple[str, JSON, JSON]]:
    """(where, schema node, rule) of every CEL rule under ``node``."""
    rules = node.get("x-kubernetes-validations") or []
    out = [(path or "<root>", node, rule) for rule in rules]
    for name, child in (node.get("properties") or {}).items():
        out.extend(_rules(child, f"{path}.{name}" if path else name))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out.extend(_rules(node[key], f"{path}[*]"))
    return out


def _node(schema: JSON, dotted: str) -> JSON:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


# --- drift -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_crd_matches_the_models(name: str) -> None:
    path = CRD_DIR / name
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == GENERATED[name], f"{path} differs from the models: run `make crds`"


def test_no_stray_crd_files() -> None:
    extra = sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name not in GENERATED)
    assert extra == [], f"not generated from the models (delete them or run `make crds`): {extra}"


# --- the CRDs themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_crd_envelope(kind: str) -> None:
    crd = crd_for(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"], "short names keep kubectl usable"
    assert len([v for v in spec["versions"] if v["storage"]]) == 1
    for version in spec["versions"]:
        assert version["served"] is True
        assert version["subresources"] == {"status": {}}
        columns = {c["name"] for c in version["additionalPrinterColumns"]}
        assert {"Phase", "Weight", "Step", "Age"} <= columns


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_fields_of_their_type(kind: str) -> None:
    crd = crd_for(kind)
    schema = openapi_schema(crd)
    wanted = {
        "string": {"string"},
        "integer": {"integer"},
        "number": {"number", "integer"},
        "boolean": {"boolean"},
    }
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".")
        if path == "metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        node = _node(schema, path)
        if column["type"] == "date":
            assert node.get("format") in BOUNDED_FORMATS, column
        else:
            assert node["type"] in wanted[column["type"]], column


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    assert structural_errors(openapi_schema(crd_for(kind))) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_cel_rule_compiles(kind: str) -> None:
    rules = _rules(openapi_schema(crd_for(kind)))
    assert rules, "the CRD should carry CEL rules"
    env = celpy.Environment()
    for path, node, rule in rules:
        env.compile(rule["rule"])  # raises on a syntax error
        assert cel_compile_error(rule["rule"], node) is None, (path, rule)
        assert rule.get("message"), f"{path}: {rule['rule']} has no message"


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_accepted_by_the_api_server(path: Path) -> None:
    obj = load_yaml(path)
    assert validate(crd_for(obj["kind"]), obj) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_accepted_by_the_operator(path: Path) -> None:
    obj = load_yaml(path)
    assert [str(p) for p in parse_problems(obj)] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_crd_defaults_are_the_model_defaults(path: Path) -> None:
    """The operator reads objects after the server defaulted them: that must change nothing."""
    obj = load_yaml(path)
    model = SPEC_MODELS[obj["kind"]]
    defaulted = apply_defaults(openapi_schema(crd_for(obj["kind"])), obj)
    as_written, _ = parse(model, obj["spec"])
    as_stored, problems = parse(model, defaulted["spec"])
    assert problems == []
    assert as_written is not None
    assert as_stored is not None
    assert as_stored.model_dump() == as_written.model_dump()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_model_output_is_accepted_by_the_api_server(path: Path) -> None:
    """What the operator writes back (e.g. a normalised spec) must be storable."""
    obj = load_yaml(path)
    spec, _ = parse(SPEC_MODELS[obj["kind"]], obj["spec"])
    assert spec is not None
    rewritten = {**obj, "spec": spec.to_wire()}
    assert validate(crd_for(obj["kind"]), rewritten) == []


VALID_EDITS = {
    "skip-analysis-without-checks": Edit(
        "canary-minimal.yaml", set={"spec.skipAnalysis": True}, delete=["spec.checks"]
    ),
    "istio-with-virtualservice": Edit(
        "canary.yaml",
        set={"spec.router.provider": "istio", "spec.router.virtualService": {"name": "checkout"}},
        delete=["spec.router.httpRoute"],
    ),
    "nginx-with-ingress": Edit(
        "canary-minimal.yaml",
        set={"spec.router": {"provider": "nginx", "ingress": {"name": "api"}}},
    ),
    "max-weight-equal-to-last-step": Edit(
        "promptrelease.yaml", set={"spec.analysis.maxWeight": 50}
    ),
    "custom-check-min-equal-to-max": Edit("canary.yaml", set={"spec.checks.custom.0.min": 100}),
    "target-ref-name-of-55": Edit("canary-minimal.yaml", set={"spec.targetRef.name": "a" * 55}),
    "interval-1s": Edit("canary.yaml", set={"spec.analysis.interval": "1s"}),
    "webhook-notification-with-url": Edit(
        "canary.yaml",
        set={"spec.notifications.0.url": "https://hooks.example.com/x"},
        delete=["spec.notifications.0.urlFrom"],
    ),
    "only-custom-checks": Edit(
        "canary-minimal.yaml",
        set={"spec.checks": {"custom": [{"name": "q", "query": "up", "min": 1}]}},
    ),
}


@pytest.mark.parametrize("name", sorted(VALID_EDITS))
def test_near_misses_are_accepted_by_both(name: str) -> None:
    """Edits next to the invalid cases that are fine: the rules do not over-reach."""
    obj = VALID_EDITS[name].build()
    assert validate(crd_for(obj["kind"]), obj) == []
    assert [str(p) for p in parse_problems(obj)] == []


# --- the harness can fail --------------------------------------------------------------------


def _broken(mutate: str) -> JSON:
    schema = copy.deepcopy(openapi_schema(crd_for("Canary")))
    spec = schema["properties"]["spec"]
    analysis = spec["properties"]["analysis"]
    if mutate == "untyped":
        del analysis["properties"]["interval"]["type"]
    elif mutate == "ref":
        analysis["properties"]["interval"]["$ref"] = "#/definitions/Duration"
    elif mutate == "closed-object":
        spec["additionalProperties"] = False
    elif mutate == "unbounded-list":
        del spec["properties"]["gates"]["maxItems"]
    elif mutate == "unbounded-string-in-list":
        del spec["properties"]["gates"]["items"]["properties"]["name"]["maxLength"]
    elif mutate == "bad-default":
        analysis["properties"]["stepWeight"]["default"] = 0
    elif mutate == "default-breaks-cel":
        analysis["properties"]["progressDeadline"]["default"] = "10s"
    elif mutate == "default-lacks-a-field":
        rule = "duration(self.progressDeadline) > duration(self.interval)"
        analysis["x-kubernetes-validations"][2]["rule"] = rule
    elif mutate == "no-description":
        del spec["properties"]["suspend"]["description"]
    elif mutate == "map-key-optional":
        spec["properties"]["gates"]["items"]["required"] = ["stage"]
    elif mutate == "set-of-objects":
        spec["properties"]["owners"]["x-kubernetes-list-type"] = "set"
    elif mutate == "unknown-format":
        analysis["properties"]["interval"]["format"] = "go-duration"
    elif mutate == "bad-cel":
        analysis["x-kubernetes-validations"].append({"rule": "self.stepWeight <=", "message": "x"})
    elif mutate == "unknown-cel-function":
        analysis["x-kubernetes-validations"].append(
            {"rule": "self.stepWeights.isStrictlySorted()", "message": "x"}
        )
    elif mutate == "cel-typo":
        router = spec["properties"]["router"]
        router["x-kubernetes-validations"][1]["rule"] = "has(self.virtualservice)"
    elif mutate == "status-default":
        schema["properties"]["status"]["properties"]["canaryWeight"]["default"] = 0
    elif mutate == "metadata-properties":
        schema["properties"]["metadata"]["properties"] = {"name": {"type": "string"}}
    elif mutate == "typed-any-of":
        analysis["properties"]["interval"]["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    elif mutate == "properties-and-additional":
        spec["properties"]["metrics"]["additionalProperties"] = {"type": "string"}
    elif mutate == "array-without-items":
        del spec["properties"]["owners"]["items"]
    elif mutate == "pydantic-leftovers":
        spec["properties"]["suspend"]["const"] = False
    return schema


BROKEN = {
    "untyped": "spec.analysis.interval.type: Required value",
    "ref": "$ref is not supported",
    "closed-object": "additionalProperties: Forbidden: must not be false",
    "unbounded-list": "spec.gates: list reachable by a CEL rule has no maxItems",
    "unbounded-string-in-list": "spec.gates[*].name: string in a list or map reachable",
    "bad-default": "spec.analysis.stepWeight.default: Invalid value",
    "default-breaks-cel": "progressDeadline must be longer than interval",
    "default-lacks-a-field": "spec.analysis.default: Invalid value: <root>: Invalid value",
    "no-description": "spec.suspend: property has no description",
    "map-key-optional": "'name' must be required or defaulted",
    "set-of-objects": "set lists need scalar or atomic items",
    "unknown-format": "format: Unsupported value: 'go-duration'",
    "bad-cel": "compilation failed",
    "unknown-cel-function": "undeclared reference to 'isStrictlySorted'",
    "cel-typo": "undefined field 'virtualservice'",
    "status-default": "no defaults under status",
    "metadata-properties": "metadata may only be {type: object}",
    "typed-any-of": "anyOf[0].type: Forbidden",
    "properties-and-additional": "properties and additionalProperties are mutually exclusive",
    "array-without-items": "spec.owners.items: Required value",
    "pydantic-leftovers": "unknown field 'const'",
}


@pytest.mark.parametrize("mutate", sorted(BROKEN))
def test_structural_errors_catch_a_broken_schema(mutate: str) -> None:
    errors = structural_errors(_broken(mutate))
    assert any(BROKEN[mutate] in e for e in errors), errors


def test_validate_catches_what_it_should() -> None:
    obj = example("canary.yaml")
    obj["spec"]["analysis"] = {"stepWeight": "five", "bogus": 1}
    errors = validate(crd_for(obj["kind"]), obj)
    assert any("must be of type integer" in e for e in errors), errors
    assert any('unknown field "spec.analysis.bogus"' in e for e in errors), errors
    assert any("some validation rules were not checked" in e for e in errors), errors
    assert validate(crd_for("PromptRelease"), example("canary.yaml")) != []  # wrong kind


# --- the CEL half of the harness -------------------------------------------------------------


def _tiny(rule: str, kind: str = "array", items: str = "integer") -> JSON:
    return {
        "type": kind,
        "items": {"type": items},
        "maxItems": 10,
        "x-kubernetes-validations": [{"rule": rule, "message": f"failed: {rule}"}],
    }


@pytest.mark.parametrize(
    ("rule", "value", "passes"),
    [
        ("self.isSorted()", [1, 2, 2, 3], True),
        ("self.isSorted()", [3, 1], False),
        ("self.sum() == 6", [1, 2, 3], True),
        ("self.min() == 1 && self.max() == 3", [2, 1, 3], True),
        ("self.indexOf(3) == 2 && self.lastIndexOf(1) == 3", [1, 2, 3, 1], True),
        ("self.all(x, x > 0)", [1, 0], False),
    ],
)
def test_kubernetes_list_functions(rule: str, value: list[int], passes: bool) -> None:
    assert (cel_errors(_tiny(rule), value) == []) is passes


def test_numbers_reach_cel_as_doubles() -> None:
    schema = {
        "type": "object",
        "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min>max"}],
    }
    assert cel_errors(schema, {"min": 1, "max": 2.5}) == []
    assert cel_errors(schema, {"min": 3, "max": 2.5}) == ["<root>: Invalid value: min>max"]


def test_a_rule_that_cannot_run_is_an_error_naming_it() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.b == 1"}],
    }
    errors = cel_errors(schema, {"a": 1})
    assert len(errors) == 1
    assert "'self.b == 1' could not be evaluated" in errors[0]


def test_rules_of_absent_fields_do_not_run() -> None:
    schema = {"type": "object", "properties": {"a": _tiny("false")}}
    assert cel_errors(schema, {}) == []
    assert cel_errors(schema, {"a": [1]}) == ["a: Invalid value: failed: false"]


def test_transition_rules_run_only_on_update() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.a >= oldSelf.a", "message": "no decrease"}],
    }
    assert cel_errors(schema, {"a": 1}) == []
    assert cel_errors(schema, {"a": 1}, old={"a": 2}) == ["<root>: Invalid value: no decrease"]


def test_defaults_fill_nested_defaults_and_drop_nulls() -> None:
    schema = {
        "type": "object",
        "properties": {
            "outer": {
                "type": "object",
                "default": {},
                "properties": {"inner": {"type": "integer", "default": 3}},
            },
            "gone": {"type": "string"},
        },
    }
    assert apply_defaults(schema, {"gone": None}) == {"outer": {"inner": 3}}
    assert apply_defaults(schema, {"outer": None}) == {"outer": {"inner": 3}}
    assert apply_defaults(schema, {"outer": {"inner": 4}}) == {"outer": {"inner": 4}}
